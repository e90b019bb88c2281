"""Keep serving when Redis goes away: a primary store with a memory fallback.

Each call goes to the primary; when it raises :class:`StoreUnavailable` the call is answered
from the fallback and the primary is left alone for ``retry_after`` seconds. Limits and cache
then hold per replica until Redis is back — the gateway keeps answering clients.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.store.base import Admission, Charge, Store, StoreUnavailable

__all__ = ["FallbackStore"]

T = TypeVar("T")


class FallbackStore:
    def __init__(
        self,
        primary: Store,
        fallback: Store,
        *,
        retry_after: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self._retry_after = retry_after
        self._down_until = 0.0
        self._on_change = on_change
        self.name = f"{primary.name}+{fallback.name}"

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    async def _run(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if time.monotonic() >= self._down_until:
            try:
                result = await primary()
            except StoreUnavailable:
                was_up = self._down_until == 0.0
                self._down_until = time.monotonic() + self._retry_after
                if was_up and self._on_change is not None:
                    self._on_change(False)
            else:
                if self._down_until != 0.0:
                    self._down_until = 0.0
                    if self._on_change is not None:
                        self._on_change(True)
                return result
        return await fallback()

    async def take(self, bucket: str, rate: float, burst: float, cost: float = 1.0) -> bool:
        return await self._run(
            lambda: self.primary.take(bucket, rate, burst, cost),
            lambda: self.fallback.take(bucket, rate, burst, cost),
        )

    async def admit(self, charge: Charge) -> Admission:
        return await self._run(
            lambda: self.primary.admit(charge), lambda: self.fallback.admit(charge)
        )

    async def limit_counts(self, tag: str, period: int, services: list[str]) -> list[int]:
        return await self._run(
            lambda: self.primary.limit_counts(tag, period, services),
            lambda: self.fallback.limit_counts(tag, period, services),
        )

    async def incr(self, counter: str, amount: int = 1, ttl: float | None = None) -> int:
        return await self._run(
            lambda: self.primary.incr(counter, amount, ttl),
            lambda: self.fallback.incr(counter, amount, ttl),
        )

    async def counter(self, counter: str) -> int:
        return await self._run(
            lambda: self.primary.counter(counter), lambda: self.fallback.counter(counter)
        )

    async def cache_get(self, key: str) -> bytes | None:
        return await self._run(
            lambda: self.primary.cache_get(key), lambda: self.fallback.cache_get(key)
        )

    async def cache_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._run(
            lambda: self.primary.cache_put(key, value, ttl),
            lambda: self.fallback.cache_put(key, value, ttl),
        )

    async def vote(self, key: str, digest: str, voter: str, ttl: float) -> int:
        return await self._run(
            lambda: self.primary.vote(key, digest, voter, ttl),
            lambda: self.fallback.vote(key, digest, voter, ttl),
        )

    async def floor_raise(self, key: str, value: int, ttl: float) -> int:
        return await self._run(
            lambda: self.primary.floor_raise(key, value, ttl),
            lambda: self.fallback.floor_raise(key, value, ttl),
        )

    async def floor_get(self, key: str) -> int | None:
        return await self._run(
            lambda: self.primary.floor_get(key), lambda: self.fallback.floor_get(key)
        )

    async def pin_put(self, key: str, value: bytes, ttl: float) -> None:
        await self._run(
            lambda: self.primary.pin_put(key, value, ttl),
            lambda: self.fallback.pin_put(key, value, ttl),
        )

    async def pin_get(self, key: str) -> bytes | None:
        return await self._run(
            lambda: self.primary.pin_get(key), lambda: self.fallback.pin_get(key)
        )

    async def qos_publish(self, scope: str, member: str, value: bytes, ttl: float) -> None:
        await self._run(
            lambda: self.primary.qos_publish(scope, member, value, ttl),
            lambda: self.fallback.qos_publish(scope, member, value, ttl),
        )

    async def qos_read(self, scope: str) -> dict[str, bytes]:
        return await self._run(
            lambda: self.primary.qos_read(scope), lambda: self.fallback.qos_read(scope)
        )

    async def lease(self, scope: str, holder: str, limit: int, ttl: float) -> bool:
        return await self._run(
            lambda: self.primary.lease(scope, holder, limit, ttl),
            lambda: self.fallback.lease(scope, holder, limit, ttl),
        )

    async def release(self, scope: str, holder: str) -> None:
        await self._run(
            lambda: self.primary.release(scope, holder),
            lambda: self.fallback.release(scope, holder),
        )

    async def ping(self) -> bool:
        return await self.primary.ping()

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()
