"""The Redis store driver: limits, usage, cache, votes and QoS shared by gateway replicas.

Token buckets run as one Lua script using Redis's own clock, so replicas on different machines
agree. Every Redis failure becomes :class:`StoreUnavailable` at this edge.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.store.base import StoreUnavailable

__all__ = ["RedisStore"]


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

    @property
    def client(self) -> aioredis.Redis:
        return self._r

    async def take(self, bucket: str, rate: float, burst: float, cost: float = 1.0) -> bool:
        try:
            ok = await self._take(keys=[f"{self._p}tb:{bucket}"], args=[rate, burst, cost])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return bool(ok)

    async def incr(self, counter: str, amount: int = 1, ttl: float | None = None) -> int:
        ms = math.ceil(ttl * 1000) if ttl else 0
        try:
            v = await self._incr(keys=[f"{self._p}c:{counter}"], args=[amount, ms])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return int(v)

    async def counter(self, counter: str) -> int:
        try:
            v = await self._r.get(f"{self._p}c:{counter}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return int(v) if v is not None else 0

    async def cache_get(self, key: str) -> bytes | None:
        try:
            v = await self._r.get(f"{self._p}k:{key}")
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return _b(v) if v is not None else None

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._r.set(f"{self._p}k:{key}", value, px=max(1, math.ceil(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def vote(self, key: str, digest: str, voter: str, ttl: float) -> int:
        try:
            v = await self._vote(
                keys=[f"{self._p}v:{key}:{digest}"], args=[voter, max(1, math.ceil(ttl * 1000))]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return int(v)

    async def qos_publish(self, scope: str, member: str, value: bytes, ttl: float) -> None:
        key = f"{self._p}q:{scope}:{member}"
        try:
            await self._r.set(key, value, px=max(1, math.ceil(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

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
        try:
            ok = await self._lease(
                keys=[f"{self._p}l:{scope}"], args=[holder, limit, max(1, math.ceil(ttl * 1000))]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        return bool(ok)

    async def release(self, scope: str, holder: str) -> None:
        try:
            await self._r.zrem(f"{self._p}l:{scope}", holder)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._r.aclose()
