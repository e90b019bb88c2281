"""Supplier selection: a quality score per (service, supplier) and weighted random choice.

The score combines latency (EWMA), error rate (EWMA of failures), block-height lag against the
**median** height reported by the session's suppliers, the chain-id check, and the circuit
breaker. Suppliers on the wrong chain, with an open breaker, or behind by more than
``max_height_lag`` are not chosen while a better one exists; among the rest the choice is random
with probability proportional to the score, so load spreads while the fast get more.

>>> q = Qos(max_height_lag=2)
>>> a, b, c = b"a" * 20, b"b" * 20, b"c" * 20
>>> for s, h in ((a, 100), (b, 101), (c, 90)): q.observe_height("eth", s, h)
>>> q.median_height("eth", [a, b, c])
100
>>> sorted(q.eligible("eth", [a, b, c]))
[b'aaaaaaaaaaaaaaaaaaaa', b'bbbbbbbbbbbbbbbbbbbb']
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from gateway.failsafe.breaker import Breaker, BreakerState

__all__ = ["Qos", "SupplierStats"]

_SETS = (set, frozenset)
_CLOSED, _HALF_OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN


@dataclass
class SupplierStats:
    """What the gateway has learnt about one supplier serving one service."""

    breaker: Breaker
    latency: float | None = None  # EWMA, seconds
    error_rate: float = 0.0  # EWMA of 0 (ok) / 1 (failure)
    height: int | None = None
    height_at: float = 0.0
    chain_ok: bool | None = None
    refused: str | None = None  # endpoint refused (private address …): never chosen
    requests: int = 0
    failures: int = 0
    lies: int = 0  # malformed or lying answers (DESIGN §3.3's lie group, bad heights, caps)
    extra: dict[str, float] = field(default_factory=dict)


class Qos:
    """Scores and picks suppliers; fed by relay outcomes and health probes."""

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        max_height_lag: int = 3,
        breaker_failures: int = 3,
        breaker_cooldown: float = 5.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alpha = alpha
        self._max_lag = max_height_lag
        self._bf = breaker_failures
        self._bc = breaker_cooldown
        self._rng = rng or random.Random()
        self._clock = clock
        self._stats: dict[tuple[str, bytes], SupplierStats] = {}

    def stats(self, service: str, supplier: bytes) -> SupplierStats:
        key = (service, supplier)
        st = self._stats.get(key)
        if st is None:
            st = SupplierStats(
                breaker=Breaker(failures=self._bf, cooldown=self._bc, clock=self._clock)
            )
            self._stats[key] = st
        return st

    def all_stats(self) -> dict[tuple[str, bytes], SupplierStats]:
        return self._stats

    # -- observations ------------------------------------------------------------------
    def record_success(self, service: str, supplier: bytes, latency: float) -> SupplierStats:
        st = self._stats.get((service, supplier)) or self.stats(service, supplier)
        st.requests += 1
        st.latency = (
            latency if st.latency is None else st.latency + self._alpha * (latency - st.latency)
        )
        st.error_rate += self._alpha * (0.0 - st.error_rate)
        st.breaker.record_success()
        return st

    def record_failure(self, service: str, supplier: bytes) -> None:
        st = self.stats(service, supplier)
        st.requests += 1
        st.failures += 1
        st.error_rate += self._alpha * (1.0 - st.error_rate)
        st.breaker.record_failure()

    def record_lie(self, service: str, supplier: bytes) -> None:
        """A malformed or lying answer: a failure that also opens the breaker at once, so the
        liar is skipped until its cooldown ends and then only gets a single probe."""
        st = self.stats(service, supplier)
        st.lies += 1
        self.record_failure(service, supplier)
        st.breaker.trip()

    def recent_heights(self, service: str, suppliers: Iterable[bytes], window: float) -> list[int]:
        """Heights the suppliers reported within the last ``window`` seconds."""
        now = self._clock()
        out: list[int] = []
        for s in suppliers:
            st = self.stats(service, s)
            if st.height is not None and now - st.height_at <= window:
                out.append(st.height)
        return out

    def observe_height(self, service: str, supplier: bytes, height: int) -> None:
        st = self.stats(service, supplier)
        if st.height is None or height >= st.height or self._clock() - st.height_at > 30.0:
            st.height = height  # a height not repeated for 30 s may be replaced by a lower one
            st.height_at = self._clock()

    def observe_chain(self, service: str, supplier: bytes, ok: bool) -> None:
        st = self.stats(service, supplier)
        st.chain_ok = ok
        if not ok:
            st.breaker.trip()

    def refuse(self, service: str, supplier: bytes, reason: str) -> None:
        self.stats(service, supplier).refused = reason

    # -- scoring -----------------------------------------------------------------------
    def median_height(self, service: str, suppliers: Iterable[bytes]) -> int | None:
        heights = [h for s in suppliers if (h := self.stats(service, s).height) is not None]
        if not heights:
            return None
        if len(heights) == 1:
            return heights[0]
        heights.sort()
        return heights[(len(heights) - 1) // 2]  # statistics.median_low, without its checks

    def _usable(self, st: SupplierStats) -> bool:
        return st.refused is None and st.chain_ok is not False and st.breaker.would_allow()

    def eligible(
        self,
        service: str,
        suppliers: Sequence[bytes],
        exclude: Iterable[bytes] = (),
        *,
        median: int | None = None,
    ) -> list[bytes]:
        """Suppliers that may be chosen now: usable, and not lagging while others are not
        (``median``: the suppliers' median height, when the caller has it already)."""
        skip = exclude if isinstance(exclude, _SETS) else set(exclude)
        usable = [s for s in suppliers if s not in skip and self._usable(self.stats(service, s))]
        if median is None:
            median = self.median_height(service, suppliers)
        if median is None:
            return usable
        fresh = [
            s
            for s in usable
            if (h := self.stats(service, s).height) is None or median - h <= self._max_lag
        ]
        return fresh or usable

    def score(self, st: SupplierStats, median: int | None) -> float:
        """A supplier's weight in the random choice (its stats ``st``)."""
        latency = st.latency if st.latency is not None else 0.0  # unknown: optimistic, try it
        score = 1.0 / (0.005 + latency)
        score *= (1.0 - st.error_rate) ** 2 + 0.01
        if median is not None and st.height is not None and st.height < median:
            score /= 1 + (median - st.height)
        if st.breaker.state is _HALF_OPEN:
            score *= 0.1
        return score

    def choose(
        self, service: str, suppliers: Sequence[bytes], exclude: Iterable[bytes] = ()
    ) -> bytes | None:
        """Pick one supplier (weighted random), or None when every one is excluded or
        unusable. A half-open breaker hands out its single probe to the one picked.

        The same rules as :meth:`eligible` (and :meth:`median_height`), in one pass over the
        suppliers' stats: this runs for every relayed call."""
        skip = exclude if isinstance(exclude, _SETS) else set(exclude)
        if len(suppliers) == 1:  # the median is its own height: never lagging
            only = suppliers[0]
            st = self._stats.get((service, only)) or self.stats(service, only)
            if only in skip or st.refused is not None or st.chain_ok is False:
                return None
            if st.breaker.state is _CLOSED:  # allow() says yes and takes nothing
                return only
            if not st.breaker.would_allow():
                return only  # its breaker is open: better a try than a certain failure
            return only if st.breaker.allow() else None
        pairs = [(s, self.stats(service, s)) for s in suppliers]
        heights = [st.height for _, st in pairs if st.height is not None]
        median: int | None = None
        if heights:
            heights.sort()
            median = heights[(len(heights) - 1) // 2]
        usable = [(s, st) for s, st in pairs if s not in skip and self._usable(st)]
        if median is not None:
            lag = self._max_lag
            fresh = [p for p in usable if p[1].height is None or median - p[1].height <= lag]
            usable = fresh or usable
        if not usable:
            # every breaker is open: better a try than a certain failure (never a refused
            # endpoint or a wrong chain)
            spare = [
                (s, st)
                for s, st in pairs
                if s not in skip and st.refused is None and st.chain_ok is not False
            ]
            if not spare:
                return None
            return min(spare, key=lambda p: p[1].error_rate)[0]
        while usable:
            if len(usable) == 1:  # no choice to weigh
                pick = usable[0]
            else:
                weights = [self.score(st, median) for _, st in usable]
                pick = self._rng.choices(usable, weights=weights, k=1)[0]
            if pick[1].breaker.allow():
                return pick[0]
            usable.remove(pick)
        return None
