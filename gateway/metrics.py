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

__all__ = ["CIRCUIT_VALUES", "Cell", "GatewayMetrics", "ServiceCells", "SupplierCells"]

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


class SupplierCells:
    """The cells one relay attempt to a supplier touches, looked up once per supplier."""

    __slots__ = ("circuit", "error_rate", "selected", "success")

    def __init__(self, metrics: GatewayMetrics, service: str, supplier: str) -> None:
        self.selected = metrics.child(metrics.selected, service, supplier)
        self.success = metrics.child(metrics.relays, service, supplier, "success")
        self.circuit = metrics.child(metrics.circuit, service, supplier)
        self.error_rate = metrics.child(metrics.error_rate, service, supplier)


class ServiceCells:
    """The cells a client request to one service touches (by its bounded service label),
    looked up once per label: its latency, its calls by method class and outcome, and its
    calls by method (``method`` is the handler table's name, or ``unknown``)."""

    __slots__ = ("_by_method", "_metrics", "_outcomes", "_service", "seconds")

    def __init__(self, metrics: GatewayMetrics, service: str) -> None:
        self._metrics = metrics
        self._service = service
        self.seconds = metrics.child(metrics.request_seconds, service)
        self._outcomes: dict[tuple[str, str], Cell] = {}  # (method class, outcome): bounded
        self._by_method: dict[str, Cell] = {}  # the table's methods and "unknown": bounded

    def requests(self, method_class: str, outcome: str) -> Cell:
        cell = self._outcomes.get((method_class, outcome))
        if cell is None:
            m = self._metrics
            cell = m.child(m.requests, self._service, method_class, outcome)
            self._outcomes[(method_class, outcome)] = cell
        return cell

    def method(self, method: str) -> Cell | None:
        """The per-method cell of ``method`` once :meth:`learn` saw it (None before)."""
        return self._by_method.get(method)

    def learn(self, method: str, in_table: bool) -> Cell:
        """The per-method cell of ``method``: its own when ``in_table`` (remembered), else
        the ``unknown`` one (a client's method text never becomes a label nor a key)."""
        label = method if in_table else "unknown"
        cell = self._by_method.get(label)
        if cell is None:
            m = self._metrics
            cell = self._by_method[label] = m.child(m.method_calls, self._service, label)
        return cell


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
        self._suppliers: dict[tuple[str, str], SupplierCells] = {}
        self._services: dict[str, ServiceCells] = {}
        self.method_calls = self._counter(
            "method_calls",
            "Client calls by service and method (methods outside the handler's table: unknown)",
            "service",
            "method",
        )
        self.requests = self._counter(
            "requests",
            "Client calls by service, method class and outcome",
            "service",
            "method_class",
            "outcome",
        )
        self.request_seconds = self._histogram(
            "request_seconds", "Time to answer one client HTTP request", "service"
        )
        self.relays = self._counter(
            "relays", "Relay attempts by supplier and outcome", "service", "supplier", "outcome"
        )
        self.relay_seconds = self._histogram(
            "relay_seconds", "Time of one relay attempt", "service"
        )
        self.cache = self._counter("cache", "Cache look-ups and stores", "service", "result")
        self.retries = self._counter("retries", "Retried attempts", "service")
        self.hedges = self._counter("hedges", "Hedged attempts (fired / won)", "service", "result")
        self.selected = self._counter(
            "selected", "Suppliers chosen by selection", "service", "supplier"
        )
        self.circuit = self._gauge(
            "circuit_state", "Breaker state (0 closed, 1 half-open, 2 open)", "service", "supplier"
        )
        self.supplier_height = self._gauge(
            "supplier_height", "Latest height a supplier reported", "service", "supplier"
        )
        self.key_requests = self._counter("key_requests", "Usage per API key", "key_id", "service")
        self.refused = self._counter("refused", "Requests refused by the gateway itself", "reason")
        self.receipts = self._counter("receipts", "Receipts checked", "result")
        self.inflight = self._gauge("inflight", "Client requests in flight")
        self.ws_connections = self._gauge("ws_connections", "Open client WebSockets")
        self.subscriptions = self._gauge("subscriptions", "Live client subscriptions")
        self.resubscriptions = self._counter(
            "resubscriptions", "Upstream streams replaced", "reason"
        )
        self.stream_faults = self._counter(
            "stream_faults",
            "Upstream streams a supplier broke (DESIGN §4 faults), by kind",
            "service",
            "supplier",
            "kind",
        )
        self.stream_frames = self._counter(
            "stream_frames",
            "Pushed frames received from upstream streams (duplicates included)",
            "service",
            "supplier",
        )
        self.stream_windows = self._counter(
            "stream_windows", "Upstream streams signed, by max_index", "service", "max_index"
        )
        self.pushes = self._counter(
            "pushes", "Pushes delivered to clients (counted against quotas)", "service"
        )
        self.sessions = self._counter("sessions_hydrated", "Sessions hydrated", "when")
        self.disagreements = self._counter(
            "quorum_disagreements",
            "Quorum reads whose suppliers answered different bytes (DESIGN §4)",
            "service",
            "method",
        )
        self.lies = self._counter(
            "supplier_lies",
            "Malformed or lying supplier answers (refusal codes of the lie group, bad status "
            "or receipt hash, heights above the floor rule, answers over the cap)",
            "service",
            "supplier",
            "kind",
        )
        self.error_rate = self._gauge(
            "supplier_error_rate",
            "Selection's failure EWMA of a supplier (lies count in it)",
            "service",
            "supplier",
        )
        self.answer_bytes = self._gauge(
            "answer_bytes", "Answer bytes buffered now (against the budget)"
        )
        self.answer_bytes_peak = self._gauge(
            "answer_bytes_peak", "Most answer bytes ever buffered at once"
        )
        self.answer_shed = self._gauge("answer_shed", "Answers refused because the budget was full")
        self.store_degraded = self._gauge(
            "store_degraded", "1 while the shared store (Redis) is unreachable"
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"{NS}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"{NS}_{name}", doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, *labels: str) -> Histogram:
        return Histogram(
            f"{NS}_{name}", doc, labels, buckets=_LATENCY_BUCKETS, registry=self.registry
        )

    def child(self, metric: Any, *labels: str) -> Cell:
        """A lock-free :class:`Cell` for ``metric.labels(*labels)``, memoised (the hot path
        calls this per request); Prometheus sees its changes at the next :meth:`flush`."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = Cell(metric.labels(*labels))
        return found

    def service_cells(self, service: str) -> ServiceCells:
        """The memoised :class:`ServiceCells` of a service label (a configured service id or
        ``unknown``: bounded)."""
        cells = self._services.get(service)
        if cells is None:
            cells = self._services[service] = ServiceCells(self, service)
        return cells

    def supplier_cells(self, service: str, supplier: str) -> SupplierCells:
        """The memoised :class:`SupplierCells` of ``supplier`` (0x hex) serving ``service``."""
        cells = self._suppliers.get((service, supplier))
        if cells is None:
            cells = self._suppliers[(service, supplier)] = SupplierCells(self, service, supplier)
        return cells

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
        self._suppliers.pop((service, supplier), None)

    def render(self) -> bytes:
        return generate_latest(self.registry)
