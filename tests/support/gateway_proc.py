"""Start ``relaynet gateway run`` as a real subprocess — for gateway, devnet and bench runs.

Typical use::

    files = write_gateway_files(
        tmp_path / "gw",
        rpc_url=chain.url,                      # the settlement chain
        deployment=network.deployment,          # ledger.deploy.Deployment (or its JSON text)
        account=gateway_key,                    # protocol.keys.AccountKey (staked gateway)
        services={"devnet": "devnet"},          # service id -> catalogue name or spec path
        redis_url=None,                         # or redis_server.url (then keys live in Redis)
        devnet=True,                            # allow loopback supplier endpoints
    )
    key = add_key(files, {"devnet": app_hex}, rate_limit=100, quota=0)
    with GatewayProcess(files) as gw:           # waits for /readyz
        gw.rpc_url("devnet", key)               # http://127.0.0.1:<port>/v1/devnet/<key>
        gw.ws_url("devnet", key)
        gw.kill() / gw.stop() (SIGTERM, drains) / gw.start()
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.anvil import free_port
from protocol.keys import AccountKey
from tests.support.process import ServerProcess, toml_str, toml_value

__all__ = ["GatewayFiles", "GatewayProcess", "add_key", "write_gateway_files"]


@dataclass(frozen=True)
class GatewayFiles:
    directory: Path
    config: Path
    port: int
    metrics_port: int
    redis_url: str | None
    tls: bool = False  # serves https:// (gateway.tls_cert / tls_key)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def keys_file(self) -> Path:
        return self.directory / "keys.json"


def write_gateway_files(
    directory: Path,
    *,
    rpc_url: str,
    deployment: Any,
    account: AccountKey,
    services: Mapping[str, str],
    redis_url: str | None = None,
    devnet: bool = True,
    port: int | None = None,
    metrics_port: int | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> GatewayFiles:
    """``gateway.toml``, the deployment JSON, the key file (0600) in ``directory``.

    ``tables`` adds or overrides settings, e.g. ``{"relay": {"hedge_delay": 0.1}}``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = deployment if isinstance(deployment, str) else deployment.to_json()
    (directory / "deployment.json").write_text(text)
    key_file = directory / "gateway.key"
    key_file.write_text("0x" + account.private_key.hex())
    os.chmod(key_file, 0o600)
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    sections: dict[str, dict[str, Any]] = {
        "gateway": {
            "listen": f"127.0.0.1:{port}",
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "devnet": devnet,
            "private_key_file": "gateway.key",
            "drain_timeout": 5.0,
            "drain_seconds": 0,
        },
        "settlement": {"rpc_url": rpc_url, "deployment": "deployment.json", "poll_interval": 0.1},
        "keys": {"reload_interval": 0.2},
        "qos": {"probe_interval": 0.5},
    }
    if redis_url is not None:
        sections["redis"] = {"url": redis_url, "retry_after": 0.5}
    else:
        sections["keys"]["file"] = "keys.json"
    for name, values in (tables or {}).items():
        sections.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for sid, source in services.items():
        lines.append(f"[services.{sid}]")
        if source.endswith(".toml"):
            lines.append(f"spec = {toml_str(source)}")
        else:
            lines.append(f"catalogue = {toml_str(source)}")
        lines.append("")
    config = directory / "gateway.toml"
    config.write_text("\n".join(lines))
    os.chmod(config, 0o600)
    tls = "tls_cert" in sections["gateway"]
    return GatewayFiles(directory, config, port, metrics_port, redis_url, tls)


def add_key(
    files: GatewayFiles | Path,
    services: Mapping[str, str],
    *,
    env: Mapping[str, str] | None = None,
    name: str = "test",
    rate_limit: float = 0.0,
    burst: float = 100.0,
    quota: int = 0,
    quota_period: int = 86_400,
    quorum: int = 1,
    origins: tuple[str, ...] = (),
) -> str:
    """Create an API key in the gateway's key store (file or Redis); returns the key.

    ``files`` is what :func:`write_gateway_files` wrote, or any gateway config file (read with
    ``env`` for its ``${VAR}`` references)."""
    from gateway.app import build_store, key_backend
    from gateway.keys import ApiKey, generate_key, hash_key
    from relaynet.config import load_gateway as load_config

    config = files if isinstance(files, Path) else files.config
    cfg = load_config(config, env=env)
    key = generate_key()
    record = ApiKey(
        key_hash=hash_key(key),
        name=name,
        services=dict(services),
        rate_limit=rate_limit,
        burst=burst,
        quota=quota,
        quota_period=quota_period,
        quorum=quorum,
        origins=origins,
        created=time.time(),
    )

    async def put() -> None:
        store = build_store(cfg)
        try:
            await key_backend(cfg, store).put(record)
        finally:
            await store.close()

    asyncio.run(put())
    return key


@dataclass
class GatewayProcess(ServerProcess):
    """``relaynet gateway run --config …`` as a subprocess; output goes to ``gateway.log``."""

    files: GatewayFiles

    role = "gateway"
    stop_timeout = 15.0

    def rpc_url(self, service: str, key: str | None = None) -> str:
        return f"{self.url}/v1/{service}" + (f"/{key}" if key else "")

    def ws_url(self, service: str, key: str | None = None) -> str:
        return self.rpc_url(service, key).replace("http", "ws", 1)  # https -> wss
