"""The one interface behind the gateway's shared state: limits, usage, cache, votes, QoS.

A driver holds: token buckets (rate limits), counters (quota and usage), a cache of answers
with a time to live, agreement votes (which suppliers returned which answer digest), clients'
height floors and filter pins (DESIGN §4: shared by replicas), QoS observations published by
each replica, and leases (subscriptions per key across replicas). ``memory.MemoryStore``
serves one process; ``redis.RedisStore`` shares it between replicas;
``fallback.FallbackStore`` keeps serving from memory while Redis is away.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import GatewayError

__all__ = ["Admission", "Charge", "Store", "StoreUnavailable", "limit_names"]


class StoreUnavailable(GatewayError):
    """The store's backend cannot be reached (Redis down, timed out)."""


@dataclass(slots=True)  # not frozen: one per call on the hot path
class Charge:
    """One limiter check-and-count (DESIGN §4), applied whole or not at all: a refusal
    consumes nothing. Every counter of a key is named under ``tag`` (the key's hash), so the
    Redis driver's script touches one hash slot (Redis Cluster-safe)."""

    tag: str
    rate: float  # bucket refill per second (0: no rate limit)
    burst: float
    tokens: float  # taken from the bucket
    quota: int  # requests per period (0: no quota)
    period: int  # index of the current quota period
    period_ttl: float  # lifetime of the period's counter, seconds
    need: int  # requests the quota must still have room for
    count: int  # requests counted against quota and usage
    service: str


@dataclass(slots=True)  # not frozen: one per call on the hot path (frozen costs per field)
class Admission:
    ok: bool
    reason: str = ""  # "rate" or "quota" when refused
    retry_after: float = 0.0  # rate refusals: seconds until the bucket holds the tokens
    used: int = 0  # the period's quota count after the call


@functools.lru_cache(maxsize=4096)
def limit_names(tag: str, period: int, service: str) -> tuple[str, str, str, str]:
    """Bucket, period quota counter, total usage, usage of one service — one key's names."""
    base = "{" + tag + "}"
    return f"{base}:tb", f"{base}:q:{period}", f"{base}:u", f"{base}:u:{service}"


class Store(Protocol):
    """Shared state of the gateway. Every method may raise :class:`StoreUnavailable`."""

    name: str

    async def take(self, bucket: str, rate: float, burst: float, cost: float = 1.0) -> bool:
        """Token bucket: refill at ``rate``/s up to ``burst``; take ``cost`` if available."""
        ...

    async def admit(self, charge: Charge) -> Admission:
        """Check and count one :class:`Charge` atomically (bucket, quota, usage)."""
        ...

    async def limit_counts(self, tag: str, period: int, services: list[str]) -> list[int]:
        """A key's counters: [period quota count, total usage, usage per service...]."""
        ...

    async def incr(self, counter: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add to a counter (created at 0, expiring ``ttl`` seconds after creation)."""
        ...

    async def counter(self, counter: str) -> int:
        """A counter's value (0 when absent)."""
        ...

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None: ...

    async def vote(self, key: str, digest: str, voter: str, ttl: float) -> int:
        """Record that ``voter`` answered ``digest`` for ``key``; the number of distinct voters
        for that digest so far."""
        ...

    async def floor_raise(self, key: str, value: int, ttl: float) -> int:
        """Raise the floor ``key`` to ``value`` when that is higher (an atomic max shared by
        every replica) and keep it ``ttl`` more seconds; the floor after the call."""
        ...

    async def floor_get(self, key: str) -> int | None:
        """The floor ``key`` (None when absent or expired)."""
        ...

    async def pin_put(self, key: str, value: bytes, ttl: float) -> None:
        """Pin a node-local handle (a filter id) to the supplier holding it."""
        ...

    async def pin_get(self, key: str) -> bytes | None: ...

    async def qos_publish(self, scope: str, member: str, value: bytes, ttl: float) -> None:
        """Publish one observation (e.g. a supplier's height) for other replicas."""
        ...

    async def qos_read(self, scope: str) -> dict[str, bytes]:
        """Every live observation of ``scope`` by member."""
        ...

    async def lease(self, scope: str, holder: str, limit: int, ttl: float) -> bool:
        """Take or renew ``holder``'s lease in ``scope`` for ``ttl`` seconds: True when it is
        held (renewed, or taken while fewer than ``limit`` live leases exist)."""
        ...

    async def release(self, scope: str, holder: str) -> None:
        """Give a lease back (nothing when it is not held)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
