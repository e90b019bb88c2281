"""Every Prometheus metric of the gateway, declared together (``relaynet_gateway_*``).

Each gateway builds one :class:`GatewayMetrics` on its own registry (so several gateways can
live in one process in tests) and serves it on the metrics port. Label sets are fixed.

The request path counts through :meth:`GatewayMetrics.child`: a plain cell per label set that
adds to ints and floats on the event loop's thread, with no lock (prometheus_client takes one
per operation). The cells are folded into the Prometheus series before every collection (a
scrape, ``render``, ``registry.collect()``) and once a second, so series and names are the
ones Prometheus always saw.
"""

from __future__ import annotations

import bisect
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

__all__ = ["CIRCUIT_VALUES", "Cell", "GatewayMetrics"]

NS = "relaynet_gateway"
CIRCUIT_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Cell:
    """One label set's pending changes: ``inc``, ``observe`` and ``set`` without a lock; folded
    into its Prometheus child by :meth:`flush` (on the loop's thread, like every change)."""

    __slots__ = ("_bounds", "_buckets", "_child", "_count", "_set", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._count = 0.0  # counter increments
        self._sum = 0.0  # histogram: observed total
        self._set: float | None = None  # gauge: the last value set
        bounds = getattr(child, "_upper_bounds", None)
        self._bounds: list[float] | None = list(bounds) if bounds is not None else None
        self._buckets = [0] * len(bounds) if bounds is not None else []

    def inc(self, amount: float = 1) -> None:
        self._count += amount

    def set(self, value: float) -> None:
        self._set = value

    def observe(self, value: float) -> None:
        assert self._bounds is not None
        self._buckets[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        child = self._child
        if self._count:
            child.inc(self._count)
            self._count = 0.0
        if self._set is not None:
            child.set(self._set)
            self._set = None
        if self._sum or any(self._buckets):
            for i, n in enumerate(self._buckets):
                if n:
                    child._buckets[i].inc(n)  # prometheus_client keeps no public bulk observe
                    self._buckets[i] = 0
            child._sum.inc(self._sum)
            self._sum = 0.0


class _Flush:
    """A collector that collects nothing: it folds the cells in before the others collect."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        self._metrics.flush()
        return []


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        r.register(_Flush(self))  # registered first: collected first
        if registry is None:  # process_cpu_seconds, process_resident_memory_bytes, …
            ProcessCollector(registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Cell] = {}
        #: (service, method) → True for methods in the handler's table (see method_calls)
        self.known_methods: dict[tuple[str, str], bool] = {}
        self.method_calls = Counter(
            f"{NS}_method_calls",
            "Client calls by service and method (methods outside the handler's table: unknown)",
            ["service", "method"],
            registry=r,
        )
        self.requests = Counter(
            f"{NS}_requests",
            "Client calls by service, method class and outcome",
            ["service", "method_class", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            f"{NS}_request_seconds",
            "Time to answer one client HTTP request",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.relays = Counter(
            f"{NS}_relays",
            "Relay attempts by supplier and outcome",
            ["service", "supplier", "outcome"],
            registry=r,
        )
        self.relay_seconds = Histogram(
            f"{NS}_relay_seconds",
            "Time of one relay attempt",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            f"{NS}_cache", "Cache look-ups and stores", ["service", "result"], registry=r
        )
        self.retries = Counter(f"{NS}_retries", "Retried attempts", ["service"], registry=r)
        self.hedges = Counter(
            f"{NS}_hedges", "Hedged attempts (fired / won)", ["service", "result"], registry=r
        )
        self.selected = Counter(
            f"{NS}_selected",
            "Suppliers chosen by selection",
            ["service", "supplier"],
            registry=r,
        )
        self.circuit = Gauge(
            f"{NS}_circuit_state",
            "Breaker state (0 closed, 1 half-open, 2 open)",
            ["service", "supplier"],
            registry=r,
        )
        self.supplier_height = Gauge(
            f"{NS}_supplier_height",
            "Latest height a supplier reported",
            ["service", "supplier"],
            registry=r,
        )
        self.key_requests = Counter(
            f"{NS}_key_requests", "Usage per API key", ["key_id", "service"], registry=r
        )
        self.refused = Counter(
            f"{NS}_refused", "Requests refused by the gateway itself", ["reason"], registry=r
        )
        self.receipts = Counter(f"{NS}_receipts", "Receipts checked", ["result"], registry=r)
        self.inflight = Gauge(f"{NS}_inflight", "Client requests in flight", registry=r)
        self.ws_connections = Gauge(f"{NS}_ws_connections", "Open client WebSockets", registry=r)
        self.subscriptions = Gauge(f"{NS}_subscriptions", "Live client subscriptions", registry=r)
        self.resubscriptions = Counter(
            f"{NS}_resubscriptions", "Upstream streams replaced", ["reason"], registry=r
        )
        self.stream_faults = Counter(
            f"{NS}_stream_faults",
            "Upstream streams a supplier broke (DESIGN §4 faults), by kind",
            ["service", "supplier", "kind"],
            registry=r,
        )
        self.stream_frames = Counter(
            f"{NS}_stream_frames",
            "Pushed frames received from upstream streams (duplicates included)",
            ["service", "supplier"],
            registry=r,
        )
        self.stream_windows = Counter(
            f"{NS}_stream_windows",
            "Upstream streams signed, by max_index",
            ["service", "max_index"],
            registry=r,
        )
        self.pushes = Counter(
            f"{NS}_pushes",
            "Pushes delivered to clients (counted against quotas)",
            ["service"],
            registry=r,
        )
        self.sessions = Counter(
            f"{NS}_sessions_hydrated", "Sessions hydrated", ["when"], registry=r
        )
        self.disagreements = Counter(
            f"{NS}_quorum_disagreements",
            "Quorum reads whose suppliers answered different bytes (DESIGN §4)",
            ["service", "method"],
            registry=r,
        )
        self.lies = Counter(
            f"{NS}_supplier_lies",
            "Malformed or lying supplier answers (refusal codes of the lie group, bad status "
            "or receipt hash, heights above the floor rule, answers over the cap)",
            ["service", "supplier", "kind"],
            registry=r,
        )
        self.error_rate = Gauge(
            f"{NS}_supplier_error_rate",
            "Selection's failure EWMA of a supplier (lies count in it)",
            ["service", "supplier"],
            registry=r,
        )
        self.answer_bytes = Gauge(
            f"{NS}_answer_bytes", "Answer bytes buffered now (against the budget)", registry=r
        )
        self.answer_bytes_peak = Gauge(
            f"{NS}_answer_bytes_peak", "Most answer bytes ever buffered at once", registry=r
        )
        self.answer_shed = Gauge(
            f"{NS}_answer_shed", "Answers refused because the budget was full", registry=r
        )
        self.store_degraded = Gauge(
            f"{NS}_store_degraded", "1 while the shared store (Redis) is unreachable", registry=r
        )

    def child(self, metric: Any, *labels: str) -> Cell:
        """A lock-free :class:`Cell` for ``metric.labels(*labels)``, memoised (the hot path
        calls this per request); Prometheus sees its changes at the next :meth:`flush`."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = Cell(metric.labels(*labels))
        return found

    def flush(self) -> None:
        """Fold every cell's pending changes into its Prometheus series."""
        for cell in self._children.values():
            cell.flush()

    def forget_supplier(self, service: str, supplier: str) -> None:
        """Drop every series (and memoised child) of a supplier that left the sessions in use,
        so that its last values (an open circuit, say) do not stay on the dashboard."""
        for metric in vars(self).values():
            names = getattr(metric, "_labelnames", ())
            if "supplier" not in names or "service" not in names:
                continue
            at_service, at_supplier = names.index("service"), names.index("supplier")
            for values in list(metric._metrics):  # prometheus_client keeps no public index
                if values[at_service] == service and values[at_supplier] == supplier:
                    metric.remove(*values)
        for key in [k for k in self._children if service in k[1] and supplier in k[1]]:
            del self._children[key]

    def render(self) -> bytes:
        return generate_latest(self.registry)
