"""Every Prometheus metric of the relayer, declared together, namespaced ``relaynet_relayer_*``.

Each :class:`RelayerMetrics` owns its own registry (several relayers may share one process in
tests). Label sets are fixed: ``service`` is a configured service id, ``outcome`` one of
:data:`OUTCOMES`, ``code`` a wire error code, ``state`` a claim state.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

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
        ProcessCollector(registry=r)  # process CPU, memory, open files of this process

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, subsystem=SUBSYSTEM, registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, namespace=NAMESPACE, subsystem=SUBSYSTEM, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(
                name,
                doc,
                labels,
                buckets=buckets,
                namespace=NAMESPACE,
                subsystem=SUBSYSTEM,
                registry=r,
            )

        self.relays = counter("relays", "Relays by service and outcome", "service", "outcome")
        self.refused = counter("refused", "Refused relays by error code", "code")
        self.verify_seconds = histogram(
            "verify_seconds", "Time to verify a relay (all checks)", _FAST_BUCKETS
        )
        self.backend_seconds = histogram(
            "backend_seconds", "Backend round-trip time", _BACKEND_BUCKETS, "service"
        )
        self.fsync_seconds = histogram(
            "log_fsync_seconds", "Group-commit fsync latency", _FAST_BUCKETS
        )
        self.fsync_batch = histogram(
            "log_fsync_batch_records",
            "Records made durable by one group commit",
            (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
        )
        self.log_bytes = counter("log_bytes", "Bytes appended to session logs")
        self.open_sessions = gauge("open_sessions", "Session logs open for appends")
        self.fsync_failures = counter(
            "log_fsync_failures",
            "Relay log fsyncs that failed (the segment is sealed and its records rewritten)",
        )
        self.log_write_failures = counter(
            "log_write_failures",
            "Relay log writes that failed (the segment is sealed, the relay refused)",
        )
        self.log_state = gauge(
            "log_state",
            "Relay log state: 0 ok, 1 rewriting after a failed fsync (refusing), 2 broken",
        )
        self.ws_streams = gauge("ws_streams", "Open WebSocket relay streams")
        self.claims = counter("claims", "Claims by final state", "state")
        self.claims_skipped = counter(
            "claims_skipped",
            "Claims not made, by reason: no_relays, no_mined_relays, below_gas (the expected"
            " reward would not pay the claim's gas), below_min_reward",
            "reason",
        )
        self.proofs = counter("proofs", "Proofs by final state", "state")
        self.settlements = counter("settlements", "Settlements submitted", "state")
        self.checkpoints = counter("checkpoints", "Checkpoints submitted")
        self.rewards = counter("rewards_tokens", "Supplier rewards earned (token base units)")
        self.gas = counter("gas_spent_wei", "Gas spent on claims, proofs, settles (wei)")
        self.chain_errors = counter(
            "chain_errors", "Failed settlement-chain calls (retried)", "action"
        )
        self.unclaimable_relays = counter(
            "unclaimable_relays",
            "Answered relays of sessions a settlement-chain reorganisation re-drew so that this"
            " supplier holds no slot in them (never claimed)",
        )
        self.reorg_rechecks = counter(
            "reorg_rechecks",
            "Claims re-checked after a settlement-chain reorganisation, by what was found",
            "outcome",
        )
        self.follower_head = gauge("follower_head", "Latest block the registry snapshot saw")
        # the account, read off the hot path every ``gauges_interval`` (relayer.gauges)
        self.gas_balance = gauge("gas_balance_wei", "The supplier account's ETH for gas (wei)")
        self.claim_gas_cost = gauge(
            "claim_gas_cost_wei", "What one claim and its proof cost at the current gas price (wei)"
        )
        self.token_balance = gauge(
            "token_balance", "The supplier account's RLY outside the stake (base units)"
        )
        self.stake = gauge("stake", "The supplier's stake (base units)")
        self.stake_locked = gauge(
            "stake_locked", "Stake locked by open claims (slash_multiplier × each claim)"
        )
        self.stake_headroom = gauge(
            "stake_headroom", "Stake not locked by open claims: what new claims can lock"
        )
        self.account_refreshed = gauge(
            "account_refreshed_timestamp_seconds", "When the account gauges were last read"
        )
        self.data_free_bytes = gauge("data_free_bytes", "Free bytes on the data folder's disk")
        self.data_free_ratio = gauge(
            "data_free_ratio", "Free share (0..1) of the data folder's disk"
        )
        self.logs_pruned = counter(
            "logs_pruned", "Settled sessions' relay logs and retired markers deleted (retention)"
        )

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)
