"""The in-memory store driver: one process, the single-machine default and Redis fallback."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.store.base import Admission, Charge, limit_names

__all__ = ["MemoryStore"]

_NO_COUNT: tuple[int, float | None] = (0, None)  # an absent counter: 0, no expiry


class MemoryStore:
    """Everything of :class:`gateway.store.base.Store` in dicts, with expiry on read."""

    name = "memory"

    def __init__(
        self, *, max_cache_entries: int = 100_000, clock: Callable[[], float] | None = None
    ) -> None:
        self._now: Callable[[], float] = clock or time.monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._counters: dict[str, tuple[int, float | None]] = {}
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max_cache = max_cache_entries
        self._votes: dict[str, tuple[dict[str, set[str]], float]] = {}
        self._qos: dict[str, dict[str, tuple[bytes, float]]] = {}
        self._floors: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._pins: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._leases: dict[str, dict[str, float]] = {}

    def _time(self) -> float:
        return self._now()

    async def take(self, bucket: str, rate: float, burst: float, cost: float = 1.0) -> bool:
        now = self._time()
        tokens, ts = self._buckets.get(bucket, (burst, now))
        tokens = min(burst, tokens + (now - ts) * rate)
        ok = tokens >= cost
        if ok:
            tokens -= cost
        self._buckets[bucket] = (tokens, now)
        return ok

    async def admit(self, charge: Charge) -> Admission:
        """The Redis script's semantics, in one synchronous step (atomic in the event loop)."""
        c = charge
        bucket, quota, usage, usage_svc = limit_names(c.tag, c.period, c.service)
        now = self._now()  # one reading for the whole step
        bucketed = c.rate > 0 and c.tokens > 0
        tokens = 0.0
        if bucketed:
            tokens, ts = self._buckets.get(bucket, (c.burst, now))
            tokens = min(c.burst, tokens + max(0.0, now - ts) * c.rate)
            if tokens < c.tokens:
                return Admission(False, "rate", (c.tokens - tokens) / c.rate)
        used = 0
        if c.quota > 0 or c.count <= 0:  # (a count below gives the period's count anyway)
            used = self._counter_at(quota, now)
            if c.quota > 0 and used + c.need > c.quota:
                return Admission(False, "quota", 0.0, used)
        if bucketed:
            self._buckets[bucket] = (tokens - c.tokens, now)
        if c.count > 0:
            used = self._incr_at(now, quota, c.count, c.period_ttl)
            self._incr_at(now, usage, c.count)
            self._incr_at(now, usage_svc, c.count)
        return Admission(True, "", 0.0, used)

    async def limit_counts(self, tag: str, period: int, services: list[str]) -> list[int]:
        _, quota, usage, _ = limit_names(tag, period, "")
        names = [quota, usage] + [limit_names(tag, period, s)[3] for s in services]
        return [await self.counter(n) for n in names]

    async def incr(self, counter: str, amount: int = 1, ttl: float | None = None) -> int:
        return self._incr_at(self._time(), counter, amount, ttl)

    def _incr_at(self, now: float, counter: str, amount: int, ttl: float | None = None) -> int:
        value, expires = self._counters.get(counter, _NO_COUNT)
        if expires is not None and expires <= now:
            value, expires = 0, None
        if expires is None and ttl is not None and value == 0:
            expires = now + ttl
        value += amount
        self._counters[counter] = (value, expires)
        return value

    async def counter(self, counter: str) -> int:
        return self._counter_at(counter, self._time())

    def _counter_at(self, counter: str, now: float) -> int:
        value, expires = self._counters.get(counter, _NO_COUNT)
        if expires is not None and expires <= now:
            return 0
        return value

    async def cache_get(self, key: str) -> bytes | None:
        item = self._cache.get(key)
        if item is None:
            return None
        if item[1] <= self._time():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return item[0]

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        self._cache[key] = (value, self._time() + ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_cache:
            self._cache.popitem(last=False)

    async def vote(self, key: str, digest: str, voter: str, ttl: float) -> int:
        now = self._time()
        entry = self._votes.get(key)
        if entry is None or entry[1] <= now:
            if len(self._votes) > self._max_cache:
                self._votes = {k: v for k, v in self._votes.items() if v[1] > now}
            entry = ({}, now + ttl)
            self._votes[key] = entry
        voters = entry[0].setdefault(digest, set())
        voters.add(voter)
        return len(voters)

    async def floor_raise(self, key: str, value: int, ttl: float) -> int:
        now = self._time()
        current = await self.floor_get(key)
        floor = value if current is None else max(current, value)
        self._floors[key] = (floor, now + ttl)
        self._floors.move_to_end(key)
        while len(self._floors) > self._max_cache:
            self._floors.popitem(last=False)
        return floor

    async def floor_get(self, key: str) -> int | None:
        item = self._floors.get(key)
        if item is None:
            return None
        if item[1] <= self._time():
            del self._floors[key]
            return None
        return item[0]

    async def pin_put(self, key: str, value: bytes, ttl: float) -> None:
        self._pins[key] = (value, self._time() + ttl)
        self._pins.move_to_end(key)
        while len(self._pins) > self._max_cache:
            self._pins.popitem(last=False)

    async def pin_get(self, key: str) -> bytes | None:
        item = self._pins.get(key)
        if item is None:
            return None
        if item[1] <= self._time():
            del self._pins[key]
            return None
        return item[0]

    async def qos_publish(self, scope: str, member: str, value: bytes, ttl: float) -> None:
        self._qos.setdefault(scope, {})[member] = (value, self._time() + ttl)

    async def qos_read(self, scope: str) -> dict[str, bytes]:
        now = self._time()
        return {m: v for m, (v, exp) in self._qos.get(scope, {}).items() if exp > now}

    async def lease(self, scope: str, holder: str, limit: int, ttl: float) -> bool:
        now = self._time()
        held = {h: exp for h, exp in self._leases.get(scope, {}).items() if exp > now}
        if holder not in held and len(held) >= limit:
            self._leases[scope] = held
            return False
        held[holder] = now + ttl
        self._leases[scope] = held
        return True

    async def release(self, scope: str, holder: str) -> None:
        held = self._leases.get(scope)
        if held is not None:
            held.pop(holder, None)
            if not held:
                del self._leases[scope]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
