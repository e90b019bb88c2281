"""Rate limit, quota and usage of API keys (DESIGN §4).

Each check-and-count is one :class:`gateway.store.base.Charge`, applied atomically by the store
(one Lua script on Redis, one synchronous step in memory); a refusal consumes nothing. How the
gateway uses it:

- :meth:`Limiter.gate` — one rate token, before the body is parsed (nothing counted yet);
- :meth:`Limiter.admit` — after parsing: the rest of the tokens (``requests - prepaid``) and
  ``requests`` counted against quota and usage;
- :meth:`Limiter.count` — quota and usage only, no rate token (e.g. a delivered WebSocket push).

Refusals raise :class:`Limited` (HTTP 429, -32005) carrying ``retry_after`` in seconds: the
HTTP surface sends it as ``Retry-After``, a WebSocket as ``data.retry_after``. While Redis is
unreachable the :class:`gateway.outage.Outage` serves this replica's share locally.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.errors import BadRequest, ClientReason
from gateway.keys import ApiKey
from gateway.outage import Outage
from gateway.store.base import Admission, Charge, Store, StoreUnavailable

__all__ = ["Limited", "Limiter", "Usage"]


class Limited(BadRequest):
    """A refusal by the limiter: 429 with ``Retry-After``."""

    def __init__(self, message: str, *, reason: ClientReason, retry_after: float) -> None:
        super().__init__(message, reason=reason)
        self.wait = retry_after  # seconds, as the limiter computed it
        self.retry_after = max(1, math.ceil(retry_after))  # whole seconds (RFC 9110)

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1 (RFC 9110 delay-seconds)."""
        return str(self.retry_after)


@dataclass(frozen=True, slots=True)
class Usage:
    key_id: str
    period_requests: int
    total_requests: int
    by_service: dict[str, int] = field(default_factory=dict)


class Limiter:
    """The key limits on the shared store, with the outage rules when Redis is the store."""

    def __init__(
        self,
        store: Store,
        *,
        outage: Outage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.outage = outage
        self._clock = clock

    def _period(self, record: ApiKey) -> int:
        return int(self._clock()) // max(1, record.quota_period)

    def _charge(
        self, record: ApiKey, service_id: str, *, tokens: float, need: int, count: int
    ) -> Charge:
        rate, burst, quota = record.rate_limit, record.burst, record.quota
        period = record.quota_period
        # positional, in Charge's field order (keywords cost a dict per call on the hot path)
        return Charge(
            record.key_hash,  # tag
            rate if rate > 0 else 0.0,  # rate
            burst if burst > 1.0 else 1.0,  # burst: at least 1
            tokens,
            quota if quota > 0 else 0,  # quota
            int(self._clock()) // (period if period > 1 else 1),  # period: as _period()
            float(period) + 60.0,  # period_ttl
            need,
            count,
            service_id,  # service
        )

    def _admission(self, record: ApiKey, charge: Charge) -> Awaitable[Admission]:
        """The store's verdict on ``charge`` (while Redis is away, this replica's share). Without
        the outage rules this is the store's own coroutine: no step of its own to await."""
        if self.outage is None:
            return self._store.admit(charge)
        return self._outage_admission(self.outage, record, charge)

    async def _outage_admission(self, outage: Outage, record: ApiKey, charge: Charge) -> Admission:
        adm: Admission | None = None
        if not outage.degraded:
            try:
                adm = await self._store.admit(charge)
            except StoreUnavailable:
                outage.lost()
        if adm is None:
            adm = await outage.admit_local(record, charge)
        return adm

    def _refusal(self, record: ApiKey, adm: Admission) -> Limited:
        if adm.reason == "rate":
            return Limited(
                "rate limit exceeded",
                reason=ClientReason.RATE_LIMITED,
                retry_after=adm.retry_after,
            )
        period = max(1, record.quota_period)
        left = period - self._clock() % period
        return Limited("quota exceeded", reason=ClientReason.QUOTA_EXCEEDED, retry_after=left)

    async def gate(self, record: ApiKey, service_id: str) -> None:
        """One rate token before the body is parsed; refused too when the quota is spent.
        A key without a rate limit or a quota has nothing to gate: answered without a store
        call (with Redis that is one round trip of the two per request; usage is still counted
        at admit, which also notices a lost Redis)."""
        if record.rate_limit <= 0 and record.quota <= 0:
            return
        charge = self._charge(record, service_id, tokens=1.0, need=1, count=0)
        adm = await self._admission(record, charge)
        if not adm.ok:
            raise self._refusal(record, adm)

    async def admit(
        self, record: ApiKey, service_id: str, requests: int = 1, *, prepaid: int = 0
    ) -> None:
        """Take ``requests - prepaid`` rate tokens and count ``requests`` against quota and
        usage, all or nothing; :class:`Limited` when over."""
        charge = self._charge(
            record,
            service_id,
            tokens=float(max(0, requests - prepaid)),
            need=requests,
            count=requests,
        )
        adm = await self._admission(record, charge)
        if not adm.ok:
            raise self._refusal(record, adm)

    async def count(self, record: ApiKey, service_id: str, requests: int = 1) -> None:
        """Count ``requests`` against quota and usage without a rate token (a push)."""
        charge = self._charge(record, service_id, tokens=0.0, need=requests, count=requests)
        adm = await self._admission(record, charge)
        if not adm.ok:
            raise self._refusal(record, adm)

    async def usage(self, record: ApiKey) -> Usage:
        services = list(record.services)
        counts = await self._store.limit_counts(record.key_hash, self._period(record), services)
        return Usage(
            key_id=record.key_id,
            period_requests=counts[0],
            total_requests=counts[1],
            by_service=dict(zip(services, counts[2:], strict=True)),
        )
