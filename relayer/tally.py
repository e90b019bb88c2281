"""Per-relay metric updates without a lock per call, exported when the metrics are scraped.

``prometheus_client`` takes a lock for every ``inc`` and ``observe`` (it has no lock-free
mode); on the relay path that was several locked operations per relay. The request path runs
on one event loop thread, so it counts into plain integers here instead, and
:meth:`Tally.flush` adds them to the Prometheus children just before each scrape renders them.
The exported names, labels and values are the same (a scrape sees everything counted before
it).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

__all__ = ["Count", "Tally", "Timings"]


class Count:
    """A counter child's increments, added to it on flush."""

    __slots__ = ("_child", "n")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.n = 0

    def inc(self) -> None:
        self.n += 1

    def flush(self) -> None:
        n, self.n = self.n, 0
        if n:
            self._child.inc(n)


class Timings:
    """A histogram child's observations, added to it on flush. ``observe`` only keeps the value;
    the values are put in their buckets (Prometheus' ``le`` rule: the first bound at or above the
    value) on flush, or once :data:`FOLD_AT` are kept (memory stays bounded without scrapes)."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum", "_values")

    FOLD_AT = 4096

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._values: list[float] = []

    def observe(self, value: float) -> None:
        values = self._values
        values.append(value)
        if len(values) >= self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        values, self._values = self._values, []
        counts, bounds, total = self._counts, self._bounds, self._sum
        for value in values:  # in order, one at a time: the same sum a direct update makes
            counts[bisect_left(bounds, value)] += 1
            total += value
        self._sum = total

    def flush(self) -> None:
        self._fold()
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._sum = self._sum, 0.0
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)
        if any(counts):
            self._child._sum.inc(total)


class Tally:
    """Every :class:`Count` and :class:`Timings` of one server, flushed together."""

    def __init__(self) -> None:
        self._parts: list[Count | Timings] = []

    def count(self, child: Any) -> Count:
        part = Count(child)
        self._parts.append(part)
        return part

    def timings(self, child: Any) -> Timings:
        part = Timings(child)
        self._parts.append(part)
        return part

    def flush(self) -> None:
        for part in self._parts:
            part.flush()
