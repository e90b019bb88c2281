"""The relayer's one configuration, parsed once per process (TOML file, pydantic, strict).

The models only: :mod:`relaynet.config` reads the file and the environment (``${VAR}``,
``${VAR:-default}``, ``RELAYNET_RELAYER__…`` overrides, paths relative to the file) and validates
with :class:`RelayerConfig` (strict: ``extra="forbid"``).
Secrets (the keystore passphrase, backend headers such as a node's token) are ``SecretStr`` and
are redacted whenever the config is printed. ``dump_config`` writes the same format back
(``relaynet relayer init`` uses it).

Example::

    data_dir = "data"

    [keys]
    supplier_keystore = "keys/supplier.json"
    passphrase = "${RELAYER_PASSPHRASE}"
    receipt_key = "keys/receipt.key"

    [chain]
    rpc_url = "http://127.0.0.1:8545"
    deployment = "deployment.json"

    [server]
    host = "0.0.0.0"
    port = 8081

    [metrics]
    port = 9101

    [services.eth]
    chain = "eth"                       # catalogue name, or a spec file path
    backends = { rpc = "http://127.0.0.1:8545" }
    headers = { "X-Node-Token" = "secret" }
    timeout = 10.0
    allow_writes = true
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from relayer.errors import ConfigError

__all__ = [
    "ChainConfig",
    "ClaimsConfig",
    "KeysConfig",
    "LogConfig",
    "MetricsConfig",
    "RelayerConfig",
    "ServerConfig",
    "ServiceConfig",
    "dump_config",
]

DEFAULT_BACKEND_ROLE = "rpc"
_SERVICE_ID = re.compile(r"^[a-z0-9_-]{1,32}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeysConfig(_Strict):
    """The supplier's account keystore (Ethereum v3 JSON) and its ed25519 receipt key file."""

    supplier_keystore: Path
    passphrase: SecretStr = SecretStr("")
    passphrase_file: Path | None = None
    receipt_key: Path


class ChainConfig(_Strict):
    """The settlement chain: its RPC and the deployment file (contract addresses, shape)."""

    rpc_url: str
    deployment: Path
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    # blocks a boundary hash must be deep before the relayer acts on it (at most the
    # deployment's G, checked when the deployment is read)
    confirmations: int = Field(default=0, ge=0)


class ServerConfig(_Strict):
    """Where relays are served (``/v1/relay``); TLS when both certificate and key are given."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_grace: float = Field(default=5.0, ge=0)
    log_format: Literal["text", "json"] = "text"
    #: None: the ``--log-level`` of ``relaynet relayer run``; SIGHUP applies a change
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    #: concurrent WebSocket streams one app may hold here (DESIGN §4; RATE_LIMITED past it)
    max_streams_per_app: int = Field(default=2048, gt=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


class MetricsConfig(_Strict):
    """Prometheus metrics on their own port (``port = 0``: any free port)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9101, ge=0, le=65535)
    #: seconds between reads of the account gauges (gas, stake, headroom) and the disk's
    account_interval: float = Field(default=30.0, gt=0)


class ClaimsConfig(_Strict):
    """When and how claims, proofs and settlements are submitted.

    ``min_reward = "gas"`` (the default) skips a claim whose expected reward is below its
    expected gas: ``(claim_gas_estimate + proof_gas_estimate × P(proof)) × gas price`` wei,
    priced in token base units at ``tokens_per_gas_wei`` (base units one wei is worth; 1.0: one
    RLY per ETH). A number is a fixed floor in base units instead (``0`` claims everything).
    A skipped claim says why in the log, in ``relayer status`` and in
    ``relaynet_relayer_claims_skipped_total{reason}``.
    """

    enabled: bool = True
    min_reward: Annotated[int, Field(ge=0)] | Literal["gas"] = "gas"
    tokens_per_gas_wei: float = Field(default=1.0, ge=0)
    claim_gas_estimate: int = Field(default=400_000, ge=0)
    proof_gas_estimate: int = Field(default=400_000, ge=0)
    tick: float = Field(default=0.5, gt=0)
    retry_initial: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=30.0, gt=0)
    checkpoint_wait_blocks: int = Field(
        default=3,
        ge=0,
        le=64,
        description="checkpoint H_n, H_g, H_c after a random wait of 1..this many blocks",
    )


class LogConfig(_Strict):
    """The relay log. A settled (or skipped) session's log and its retired marker are deleted
    ``retention_hours`` after the claim finished (0: the log at once, the marker kept).
    ``fsync_fault_file`` is for tests only: while that file exists, the number written in it
    is taken and that many following fsyncs fail (``EIO``)."""

    retention_hours: float = Field(default=168.0, ge=0)
    fsync_fault_file: Path | None = None


class ServiceConfig(_Strict):
    """One served service: its chain spec, backend URL(s) by role and how to call them."""

    chain: str = Field(description="chain spec name in the rollups catalogue, or a spec file path")
    backends: dict[str, str]
    ws_backend: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(default=3.0, gt=0)
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    allow_writes: bool = True
    max_connections: int = Field(default=256, gt=0)

    @model_validator(mode="after")
    def _has_default_backend(self) -> ServiceConfig:
        if DEFAULT_BACKEND_ROLE not in self.backends:
            raise ValueError(f"backends must name a {DEFAULT_BACKEND_ROLE!r} URL")
        for role, url in self.backends.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend {role!r}: not an http(s) URL: {url!r}")
        lowered = {name.lower() for name in self.headers}
        if lowered & {"host", "content-length", "transfer-encoding", "connection"}:
            raise ValueError(
                "headers may not set Host, Content-Length, Transfer-Encoding, Connection"
            )
        return self

    def header_values(self) -> dict[str, str]:
        """The configured backend headers, secrets revealed (for the forwarder only)."""
        return {name: value.get_secret_value() for name, value in self.headers.items()}


class RelayerConfig(_Strict):
    """Everything ``relaynet relayer run`` needs, validated."""

    data_dir: Path
    keys: KeysConfig
    chain: ChainConfig
    server: ServerConfig = ServerConfig()
    metrics: MetricsConfig = MetricsConfig()
    claims: ClaimsConfig = ClaimsConfig()
    log: LogConfig = LogConfig()
    services: dict[str, ServiceConfig]

    @model_validator(mode="after")
    def _service_ids(self) -> RelayerConfig:
        if not self.services:
            raise ValueError("at least one service is required")
        for sid in self.services:
            if not _SERVICE_ID.match(sid):
                raise ValueError(f"service id {sid!r}: 1-32 characters of [a-z0-9_-]")
        return self

    def passphrase(self) -> str:
        """The keystore passphrase: ``passphrase_file`` when given, else ``passphrase``."""
        if self.keys.passphrase_file is not None:
            try:
                return self.keys.passphrase_file.read_text().rstrip("\n")
            except OSError as exc:
                raise ConfigError(f"passphrase file: {exc}") from exc
        return self.keys.passphrase.get_secret_value()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _table(name: str, model: BaseModel) -> list[str]:
    lines = [f"[{name}]"]
    for field_name in type(model).model_fields:
        value = getattr(model, field_name)
        if value is None:
            continue
        lines.append(f"{field_name} = {_toml_value(value)}")
    return [*lines, ""]


def dump_config(cfg: RelayerConfig) -> str:
    """The config as TOML, secrets included (the file is written 0600 by the caller)."""
    lines = [f"data_dir = {_toml_value(cfg.data_dir)}", ""]
    lines += _table("keys", cfg.keys)
    lines += _table("chain", cfg.chain)
    lines += _table("server", cfg.server)
    lines += _table("metrics", cfg.metrics)
    lines += _table("claims", cfg.claims)
    if cfg.log != LogConfig():
        lines += _table("log", cfg.log)
    for sid, svc in cfg.services.items():
        lines += _table(f"services.{sid}", svc)
    return "\n".join(lines)
