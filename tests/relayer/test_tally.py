"""Metric updates counted without a lock export exactly what prometheus_client would have."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from relayer.tally import Tally


def _samples(registry: CollectorRegistry, prefix: str) -> list[str]:
    """The exposition lines of one metric family, names and values (``_created`` left out)."""
    text = generate_latest(registry).decode()
    return [
        line.removeprefix(prefix)
        for line in text.splitlines()
        if line.startswith(prefix) and "_created" not in line
    ]


def test_tally_exports_what_direct_updates_export() -> None:
    registry = CollectorRegistry()
    buckets = (0.001, 0.01, 0.1)
    direct = Histogram("direct", "d", ["s"], buckets=buckets, registry=registry)
    tallied = Histogram("tallied", "t", ["s"], buckets=buckets, registry=registry)
    counter = Counter("count", "c", ["s"], registry=registry)
    tally = Tally()
    timings = tally.timings(tallied.labels("a"))
    count = tally.count(counter.labels("a"))
    values = (0.0005, 0.001, 0.0010001, 0.05, 0.1, 3.0)  # bounds themselves fall in their bucket
    for value in values[:4]:
        timings.observe(value)
        direct.labels("a").observe(value)
        count.inc()
    tally.flush()
    assert _samples(registry, "tallied") == _samples(registry, "direct")
    for value in values[4:]:  # a second flush adds to the first
        timings.observe(value)
        direct.labels("a").observe(value)
        count.inc()
    assert _samples(registry, "tallied") != _samples(registry, "direct")  # not yet flushed
    tally.flush()
    tally.flush()  # nothing new: nothing added twice
    assert _samples(registry, "tallied") == _samples(registry, "direct")
    assert _samples(registry, "count_total") == [f'{{s="a"}} {float(len(values))}']


def test_timings_fold_what_they_keep_without_a_scrape() -> None:
    """Observations are kept as values until a flush; past ``FOLD_AT`` of them they are put in
    their buckets at once (memory stays bounded), and the export is the same either way."""
    registry = CollectorRegistry()
    buckets = (0.001, 0.01)
    direct = Histogram("direct", "d", buckets=buckets, registry=registry)
    tallied = Histogram("tallied", "t", buckets=buckets, registry=registry)
    timings = Tally().timings(tallied)
    values = [0.0005, 0.005, 0.5] * (timings.FOLD_AT // 3 + 10)
    for value in values:
        timings.observe(value)
        direct.observe(value)
        assert len(timings._values) < timings.FOLD_AT
    timings.flush()
    assert _samples(registry, "tallied") == _samples(registry, "direct")
