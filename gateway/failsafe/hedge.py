"""Hedging: after a delay without an answer, send the same idempotent call to another supplier.

:class:`Hedger` owns only the delay: a fixed floor, or a multiple of the observed latency
(EWMA) so that hedges fire on the slow tail rather than on every call.

>>> h = Hedger(floor=0.05, factor=3.0)
>>> h.delay()
0.05
>>> h.observe(0.1); round(h.delay(), 3)
0.3
"""

from __future__ import annotations

__all__ = ["Hedger"]


class Hedger:
    def __init__(self, *, floor: float, factor: float = 3.0, alpha: float = 0.2) -> None:
        self._floor = floor
        self._factor = factor
        self._alpha = alpha
        self._ewma: float | None = None

    def observe(self, latency: float) -> None:
        """Feed one successful attempt's latency."""
        if self._ewma is None:
            self._ewma = latency
        else:
            self._ewma += self._alpha * (latency - self._ewma)

    def delay(self) -> float:
        """Seconds to wait for the first attempt before sending a hedge."""
        if self._ewma is None:
            return self._floor
        return max(self._floor, self._factor * self._ewma)
