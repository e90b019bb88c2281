"""Every Prometheus metric of the relayer, declared together, namespaced ``relaynet_relayer_*``.

Each :class:`RelayerMetrics` owns its own registry (several relayers may share one process in
tests). Label sets are fixed: ``service`` is a configured service id, ``outcome`` one of
:data:`OUTCOMES`, ``code`` a wire error code, ``state`` a claim state.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["OUTCOMES", "RelayerMetrics"]

NAMESPACE = "relaynet"
SUBSYSTEM = "relayer"
OUTCOMES = ("answered", "refused", "backend_error")

_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_BACKEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class RelayerMetrics:
    """The relayer's metrics and the registry they are exported from."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.relays = Counter(
            "relays",
            "Relays by service and outcome",
            ["service", "outcome"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.refused = Counter(
            "refused",
            "Refused relays by error code",
            ["code"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.verify_seconds = Histogram(
            "verify_seconds",
            "Time to verify a relay (all checks)",
            buckets=_FAST_BUCKETS,
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.backend_seconds = Histogram(
            "backend_seconds",
            "Backend round-trip time",
            ["service"],
            buckets=_BACKEND_BUCKETS,
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.fsync_seconds = Histogram(
            "log_fsync_seconds",
            "Group-commit fsync latency",
            buckets=_FAST_BUCKETS,
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.fsync_batch = Histogram(
            "log_fsync_batch_records",
            "Records made durable by one group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.log_bytes = Counter(
            "log_bytes",
            "Bytes appended to session logs",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.open_sessions = Gauge(
            "open_sessions",
            "Session logs open for appends",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.fsync_failures = Counter(
            "log_fsync_failures",
            "Relay log fsyncs that failed (the segment is sealed and its records rewritten)",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.log_write_failures = Counter(
            "log_write_failures",
            "Relay log writes that failed (the segment is sealed, the relay refused)",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.log_state = Gauge(
            "log_state",
            "Relay log state: 0 ok, 1 rewriting after a failed fsync (refusing), 2 broken",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.ws_streams = Gauge(
            "ws_streams",
            "Open WebSocket relay streams",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.claims = Counter(
            "claims",
            "Claims by final state",
            ["state"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.proofs = Counter(
            "proofs",
            "Proofs by final state",
            ["state"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.settlements = Counter(
            "settlements",
            "Settlements submitted",
            ["state"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.checkpoints = Counter(
            "checkpoints",
            "Checkpoints submitted",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.rewards = Counter(
            "rewards_tokens",
            "Supplier rewards earned (token units)",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.gas = Counter(
            "gas_spent_wei",
            "Gas spent on claims, proofs, settles (wei)",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.chain_errors = Counter(
            "chain_errors",
            "Failed settlement-chain calls (retried)",
            ["action"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.unclaimable_relays = Counter(
            "unclaimable_relays",
            "Answered relays of sessions a settlement-chain reorganisation re-drew so that this"
            " supplier holds no slot in them (never claimed)",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.reorg_rechecks = Counter(
            "reorg_rechecks",
            "Claims re-checked after a settlement-chain reorganisation, by what was found",
            ["outcome"],
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )
        self.follower_head = Gauge(
            "follower_head",
            "Latest block the registry snapshot saw",
            namespace=NAMESPACE,
            subsystem=SUBSYSTEM,
            registry=r,
        )

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)
