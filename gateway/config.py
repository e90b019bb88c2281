"""The gateway's configuration: one TOML file, read once, strictly validated.

The models only: :mod:`relaynet.config` reads the file and the environment (``${VAR}``,
``${VAR:-default}``, ``RELAYNET_GATEWAY__…`` overrides, paths relative to the file) and validates
with :class:`GatewayConfig`. Secrets are ``SecretStr`` and never printed. Example::

    [gateway]
    listen = "0.0.0.0:8545"
    metrics_listen = "127.0.0.1:9100"
    workers = 1                    # N processes on `listen` (SO_REUSEPORT); N > 1 needs [redis]
    devnet = false
    allow_networks = []            # e.g. ["10.20.0.0/16"]: non-global supplier ranges allowed
    private_key = "0x…"            # or private_key_file = "gateway.key"

    [settlement]
    rpc_url = "http://127.0.0.1:8545"
    deployment = "deployment.json"  # ledger.deploy.Deployment.to_json()

    [redis]                         # optional: shared state of several replicas
    url = "redis://127.0.0.1:6379/0"
    state_dir = "gateway-state"     # this replica's key snapshot and usage journal (outages)

    [keys]
    file = "keys.json"              # API keys when no Redis is configured
    reload_interval = 2.0

    [services.eth]                  # the services served, each with its chain spec
    spec = "eth.toml"               # or: catalogue = "eth"

Every other table ([limits], [relay], [cache], [qos], [ws]) has defaults.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "REMOVED_KEYS",
    "CacheConfig",
    "GatewayConfig",
    "KeysConfig",
    "LimitsConfig",
    "QosConfig",
    "RedisConfig",
    "RelayConfig",
    "ServerConfig",
    "ServiceConfig",
    "SettlementConfig",
    "WsConfig",
    "parse_listen",
]

#: options that no longer exist, refused with "was removed: delete the line" (and why)
REMOVED_KEYS: dict[str, str] = {
    "qos.prefetch_blocks": "rollover prefetch was never wired",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"listen address must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


class ServerConfig(_Strict):
    listen: str = "127.0.0.1:8545"
    metrics_listen: str | None = "127.0.0.1:9100"
    devnet: bool = False
    # supplier address ranges called even though they are not global (CIDRs; DESIGN §4)
    allow_networks: tuple[str, ...] = ()
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    drain_timeout: float = Field(default=10.0, gt=0)
    #: seconds between /readyz turning 503 and closing the listener on SIGTERM
    drain_seconds: float = Field(default=5.0, ge=0, le=300)
    #: serve HTTPS on ``listen`` with this certificate (chain) and key, PEM files
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_format: Literal["text", "json"] = "text"
    #: None: the ``--log-level`` of ``relaynet gateway run``; SIGHUP applies a change
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    #: one log line per request (logger ``relaynet.gateway.access``)
    access_log: bool = False
    #: gateway processes sharing ``listen`` (SO_REUSEPORT; more than one needs [redis]):
    #: see gateway.workers
    workers: int = Field(default=1, ge=1, le=64)

    @field_validator("listen", "metrics_listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
        return v

    @model_validator(mode="after")
    def _one_key(self) -> ServerConfig:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of gateway.private_key and gateway.private_key_file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("gateway.tls_cert and gateway.tls_key go together")
        return self

    def key_bytes(self) -> bytes:
        """The gateway's secp256k1 private key (32 bytes)."""
        if self.private_key is not None:
            text = self.private_key.get_secret_value()
        else:
            assert self.private_key_file is not None
            text = self.private_key_file.read_text()
        text = text.strip().removeprefix("0x")
        key = bytes.fromhex(text)
        if len(key) != 32:
            raise ValueError("the gateway private key must be 32 bytes")
        return key


class SettlementConfig(_Strict):
    rpc_url: str
    deployment: Path
    poll_interval: float = Field(default=0.2, gt=0)
    # blocks a session's H_n must be deep before the gateway signs for it (at most the
    # deployment's G, checked when the deployment is read)
    confirmations: int = Field(default=0, ge=0)


class RedisConfig(_Strict):
    url: SecretStr
    prefix: str = "relaynet:gw:"
    retry_after: float = Field(default=2.0, gt=0)  # seconds before trying Redis again
    # serving through an outage (DESIGN §4): heartbeats give R, the number of live replicas
    heartbeat_interval: float = Field(default=5.0, gt=0)
    heartbeat_ttl: float = Field(default=15.0, gt=0)
    # this replica's own files: key snapshot, usage journal, replica id (default: beside the
    # config file, "gateway-state-<listen port>"; a writable volume of its own in production)
    state_dir: Path | None = None

    @model_validator(mode="after")
    def _ttl(self) -> RedisConfig:
        if self.heartbeat_ttl <= self.heartbeat_interval:
            raise ValueError("redis.heartbeat_ttl must exceed redis.heartbeat_interval")
        return self


class KeysConfig(_Strict):
    file: Path | None = None
    reload_interval: float = Field(default=2.0, gt=0)


class LimitsConfig(_Strict):
    max_body_bytes: int = Field(default=1 << 20, ge=256)
    max_batch: int = Field(default=100, ge=1)
    max_ws_message_bytes: int = Field(default=1 << 20, ge=256)


class RelayConfig(_Strict):
    #: CA bundle (PEM) that relayers' https:// and wss:// certificates are verified against;
    #: the system's default bundle when unset. Verification is always on.
    ca_file: Path | None = None
    timeout: float = Field(default=2.0, gt=0)  # per attempt
    deadline: float = Field(default=5.0, gt=0)  # per client call, all attempts
    max_attempts: int = Field(default=3, ge=1)
    hedge_delay: float | None = Field(default=0.2, gt=0)  # None: no hedging
    # share of receipt signatures verified off the critical path (DESIGN §6); answers after a
    # failure and answers entering the cache are always verified, the response hash always
    receipt_check: float = Field(default=0.1, ge=0, le=1)
    connections: int = Field(default=256, ge=1)
    session_lag: int = Field(default=1, ge=0)  # blocks a relayer may lag the gateway's head
    batch_concurrency: int = Field(default=32, ge=1)
    answer_budget: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)  # bytes, all answers


class CacheConfig(_Strict):
    enabled: bool = True
    agreement: int = Field(default=2, ge=1)  # distinct suppliers that must agree
    max_entries: int = Field(default=100_000, ge=1)  # memory driver


class QosConfig(_Strict):
    probe_interval: float = Field(default=1.0, gt=0)
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    max_height_lag: int = Field(default=3, ge=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown: float = Field(default=5.0, gt=0)


class WsConfig(_Strict):
    """Subscriptions over WebSocket (DESIGN §4): stream windows, redundancy and limits."""

    window: int = Field(default=32, ge=1)  # pushes a stream signature pays for at first
    redundancy: int = Field(default=2, ge=1)  # upstream streams per subscription
    heartbeat: float = Field(default=30.0, gt=0)  # an upstream's pong is due within this
    max_subscriptions_per_socket: int = Field(default=64, ge=1)
    max_subscriptions_per_key: int = Field(default=1000, ge=1)  # across replicas (leases)
    lease_ttl: float = Field(default=30.0, gt=0)  # a replica renews its leases at ttl/3


class ServiceConfig(_Strict):
    """One service the gateway serves: its chain spec from a file or the catalogue."""

    spec: Path | None = None
    catalogue: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ServiceConfig:
        if (self.spec is None) == (self.catalogue is None):
            raise ValueError("give exactly one of spec (a file) and catalogue (a name)")
        return self


class GatewayConfig(_Strict):
    gateway: ServerConfig
    settlement: SettlementConfig
    redis: RedisConfig | None = None
    keys: KeysConfig = KeysConfig()
    limits: LimitsConfig = LimitsConfig()
    relay: RelayConfig = RelayConfig()
    cache: CacheConfig = CacheConfig()
    qos: QosConfig = QosConfig()
    ws: WsConfig = WsConfig()
    services: dict[str, ServiceConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_store(self) -> GatewayConfig:
        if self.redis is None and self.keys.file is None:
            raise ValueError("configure [redis] or keys.file: API keys must live somewhere")
        return self

    @model_validator(mode="after")
    def _workers_share(self) -> GatewayConfig:
        if self.gateway.workers > 1 and self.redis is None:
            raise ValueError(
                f"gateway.workers = {self.gateway.workers} needs [redis]: the workers share API "
                "keys, limits, cache, floors, pins and QoS through it — add a [redis] table "
                "or set gateway.workers = 1"
            )
        return self


def file_defaults(data: dict[str, object]) -> None:
    """Defaults that depend on other keys, filled in before paths resolve against the file's
    folder: each replica's ``redis.state_dir`` is ``gateway-state-<listen port>`` (one directory
    per replica, also when two configs share a folder)."""
    redis, server = data.get("redis"), data.get("gateway")
    if isinstance(redis, dict) and isinstance(server, dict):
        port = str(server.get("listen", "127.0.0.1:8545")).rpartition(":")[2]
        redis.setdefault("state_dir", f"gateway-state-{port}")
