"""The Redis store driver: limits, usage, cache, votes and QoS shared by gateway replicas.

The limiter's check and count (bucket, quota, usage) is one Lua script using Redis's own clock,
so replicas on different machines agree; all its keys carry the API key's hash as hash tag
(``{<hash>}``), so it runs on Redis Cluster too. Replicas keep heartbeat keys (the replica count
R of the outage rules) and replay usage counted during an outage through a ``SET NX``-guarded
script, so each journal batch counts exactly once. Every Redis failure becomes
:class:`StoreUnavailable` at this edge.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.store.base import Admission, Charge, StoreUnavailable, limit_names

__all__ = ["RedisStore"]


T = TypeVar("T")


def _ms(ttl: float) -> int:
    """A TTL in whole milliseconds, at least 1."""
    return max(1, math.ceil(ttl * 1000))


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


_TAKE = """
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2]); local cost = tonumber(ARGV[3])
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens = tonumber(v[1]); local ts = tonumber(v[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local ok = 0
if tokens >= cost then tokens = tokens - cost; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok
"""

# KEYS: bucket, quota counter, usage, usage of the service
# ARGV: rate, burst, tokens, quota, need, count, quota counter ttl (ms)
_ADMIT = """
local rate = tonumber(ARGV[1]); local burst = tonumber(ARGV[2]); local cost = tonumber(ARGV[3])
local quota = tonumber(ARGV[4]); local need = tonumber(ARGV[5]); local count = tonumber(ARGV[6])
local bucketed = rate > 0 and cost > 0
local tokens = 0; local now = 0
if bucketed then
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local v = redis.call('HMGET', KEYS[1], 't', 'ts')
  tokens = tonumber(v[1]); local ts = tonumber(v[2])
  if tokens == nil then tokens = burst; ts = now end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < cost then return {0, 'rate', tostring((cost - tokens) / rate), 0} end
end
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if quota > 0 and used + need > quota then return {0, 'quota', '0', used} end
if bucketed then
  redis.call('HSET', KEYS[1], 't', tostring(tokens - cost), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
if count > 0 then
  used = redis.call('INCRBY', KEYS[2], count)
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end
  redis.call('INCRBY', KEYS[3], count)
  redis.call('INCRBY', KEYS[4], count)
end
return {1, '', '0', used}
"""

# KEYS: replay guard, quota counter, usage, usage of the service
# ARGV: count, quota counter ttl (ms), guard ttl (ms)
_REPLAY = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
local count = tonumber(ARGV[1])
redis.call('INCRBY', KEYS[2], count)
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
redis.call('INCRBY', KEYS[3], count)
redis.call('INCRBY', KEYS[4], count)
return 1
"""

_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""

_VOTE = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SCARD', KEYS[1])
"""

# leases: a sorted set of holders scored by expiry (Redis's clock), pruned on every call
_LEASE = """
local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl + 1000)
  return 1
end
return 0
"""


_FLOOR = """
local v = tonumber(redis.call('GET', KEYS[1]))
local want = tonumber(ARGV[1])
if v == nil or want > v then v = want end
redis.call('SET', KEYS[1], string.format('%d', v), 'PX', ARGV[2])
return string.format('%d', v)
"""


class RedisStore:
    """:class:`gateway.store.base.Store` on Redis; keys live under ``prefix``."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "relaynet:gw:", timeout: float = 0.25) -> None:
        self._r: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._p = prefix
        self._take = self._r.register_script(_TAKE)
        self._incr = self._r.register_script(_INCR)
        self._vote = self._r.register_script(_VOTE)
        self._lease = self._r.register_script(_LEASE)
        self._admit = self._r.register_script(_ADMIT)
        self._replay = self._r.register_script(_REPLAY)
        self._floor = self._r.register_script(_FLOOR)

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    @staticmethod
    async def _call(op: Awaitable[T]) -> T:
        """Await one Redis operation: a Redis or socket error is :class:`StoreUnavailable`."""
        try:
            return await op
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def take(self, bucket: str, rate: float, burst: float, cost: float = 1.0) -> bool:
        ok = await self._call(self._take(keys=[f"{self._p}tb:{bucket}"], args=[rate, burst, cost]))
        return bool(ok)

    def _limit_keys(self, tag: str, period: int, service: str) -> list[str]:
        return [self._p + n for n in limit_names(tag, period, service)]

    async def admit(self, charge: Charge) -> Admission:
        c = charge
        args = [
            c.rate,
            c.burst,
            c.tokens,
            c.quota,
            c.need,
            c.count,
            _ms(c.period_ttl),
        ]
        ok, reason, retry, used = await self._call(
            self._admit(keys=self._limit_keys(c.tag, c.period, c.service), args=args)
        )
        return Admission(bool(ok), _b(reason).decode(), float(_b(retry)), int(used))

    async def limit_counts(self, tag: str, period: int, services: list[str]) -> list[int]:
        _, quota, usage, _ = self._limit_keys(tag, period, "")
        names = [quota, usage] + [self._limit_keys(tag, period, s)[3] for s in services]
        values = await self._call(self._r.mget(names))
        return [int(v) if v is not None else 0 for v in values]

    async def quota_counts(self, wanted: dict[str, int]) -> dict[str, int]:
        """The quota count of each key hash in its period (one pipelined GET per key)."""
        tags = list(wanted)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for tag in tags:
                    pipe.get(self._limit_keys(tag, wanted[tag], "")[1])
                values = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return {t: int(v) if v is not None else 0 for t, v in zip(tags, values, strict=True)}

    async def replay(
        self,
        guard: str,
        tag: str,
        period: int,
        service: str,
        count: int,
        period_ttl: float,
        guard_ttl: float = 7 * 86_400.0,
    ) -> bool:
        """Add ``count`` to a key's counters unless ``guard`` was set before (``SET NX``):
        True when this call counted it. ``guard`` is named under the key's hash tag."""
        keys = [f"{self._p}{{{tag}}}:{guard}", *self._limit_keys(tag, period, service)[1:]]
        args = [count, _ms(period_ttl), math.ceil(guard_ttl * 1000)]
        return bool(await self._call(self._replay(keys=keys, args=args)))

    async def heartbeat(self, replica: str, ttl: float) -> int:
        """Renew this replica's heartbeat key; the number of live heartbeats (>= 1)."""
        base = f"{self._p}hb:"
        try:
            await self._r.set(base + replica, b"1", px=_ms(ttl))
            live = [k async for k in self._r.scan_iter(match=base + "*", count=500)]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return max(1, len(live))

    async def incr(self, counter: str, amount: int = 1, ttl: float | None = None) -> int:
        ms = math.ceil(ttl * 1000) if ttl else 0
        v = await self._call(self._incr(keys=[f"{self._p}c:{counter}"], args=[amount, ms]))
        return int(v)

    async def counter(self, counter: str) -> int:
        v = await self._call(self._r.get(f"{self._p}c:{counter}"))
        return int(v) if v is not None else 0

    async def cache_get(self, key: str) -> bytes | None:
        v = await self._call(self._r.get(f"{self._p}k:{key}"))
        return _b(v) if v is not None else None

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(self._r.set(f"{self._p}k:{key}", value, px=_ms(ttl)))

    async def vote(self, key: str, digest: str, voter: str, ttl: float) -> int:
        v = await self._call(
            self._vote(keys=[f"{self._p}v:{key}:{digest}"], args=[voter, _ms(ttl)])
        )
        return int(v)

    async def floor_raise(self, key: str, value: int, ttl: float) -> int:
        v = await self._call(self._floor(keys=[f"{self._p}f:{key}"], args=[str(value), _ms(ttl)]))
        return int(v)

    async def floor_get(self, key: str) -> int | None:
        v = await self._call(self._r.get(f"{self._p}f:{key}"))
        return int(v) if v is not None else None

    async def pin_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call(self._r.set(f"{self._p}p:{key}", value, px=_ms(ttl)))

    async def pin_get(self, key: str) -> bytes | None:
        v = await self._call(self._r.get(f"{self._p}p:{key}"))
        return _b(v) if v is not None else None

    async def qos_publish(self, scope: str, member: str, value: bytes, ttl: float) -> None:
        key = f"{self._p}q:{scope}:{member}"
        await self._call(self._r.set(key, value, px=_ms(ttl)))

    async def qos_read(self, scope: str) -> dict[str, bytes]:
        base = f"{self._p}q:{scope}:"
        try:
            keys = [k async for k in self._r.scan_iter(match=base + "*", count=500)]
            if not keys:
                return {}
            values = await self._r.mget(keys)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        out: dict[str, bytes] = {}
        for k, v in zip(keys, values, strict=True):
            if v is not None:
                out[_b(k).decode()[len(base) :]] = _b(v)
        return out

    async def lease(self, scope: str, holder: str, limit: int, ttl: float) -> bool:
        ok = await self._call(
            self._lease(keys=[f"{self._p}l:{scope}"], args=[holder, limit, _ms(ttl)])
        )
        return bool(ok)

    async def release(self, scope: str, holder: str) -> None:
        await self._call(self._r.zrem(f"{self._p}l:{scope}", holder))

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._r.aclose()
