"""The devnet's key files and server configs, each validated by the server's own config model.

Relayer folders ``relayer<N>/`` hold ``relayer.toml`` (:class:`relayer.config.RelayerConfig`,
written with :func:`relayer.config.dump_config`), the supplier keystore (a light PBKDF2 KDF:
these are anvil's public dev keys), the passphrase file and the receipt key. ``gateway/`` holds
``gateway.toml`` (:class:`gateway.config.GatewayConfig`), the gateway key and ``keys.json`` with
one API key per app.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.keys import ApiKey, FileKeyBackend, generate_key, hash_key
from ledger.deploy import Deployment
from protocol.encoding import address_to_hex
from protocol.keys import encrypt_keystore
from relayer.config import dump_config
from relayer.keyfiles import write_receipt_key
from relaynet.config import parse_gateway, parse_relayer
from relaynet.devnet.plan import DevnetPlan, RelayerPlan
from relaynet.devnet.state import Layout
from rollups.standins.jwt import make_token

__all__ = [
    "DEVNET_PASSPHRASE",
    "gateway_toml",
    "write_api_keys",
    "write_deployment",
    "write_gateway_files",
    "write_relayer_files",
]

DEVNET_PASSPHRASE = "devnet"  # noqa: S105 — anvil's dev keys are public anyway


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_relayer_files(layout: Layout, plan: DevnetPlan, relayer: RelayerPlan) -> Path:
    """Keys and ``relayer.toml`` for one relayer; returns the config path."""
    directory = layout.relayer_dir(relayer.index)
    keys = directory / "keys"
    _write_private(
        keys / "supplier.json",
        encrypt_keystore(
            relayer.account.private_key, DEVNET_PASSPHRASE, kdf="pbkdf2", iterations=10_000
        ),
    )
    _write_private(keys / "passphrase", (DEVNET_PASSPHRASE + "\n").encode())
    write_receipt_key(keys / "receipt-key.json", relayer.receipt, overwrite=True)
    celestia_token = make_token(plan.celestia_secret, "read")
    services: dict[str, Any] = {}
    for svc in plan.services:
        backend = plan.backend_of(svc)
        entry: dict[str, Any] = {
            "chain": svc.spec,
            "backends": {"rpc": backend.url},
            "timeout": 10.0,
            "connect_timeout": 1.0,
        }
        if backend.ws_url:
            entry["ws_backend"] = backend.ws_url
        if backend.kind == "celestia":
            entry["headers"] = {"Authorization": f"Bearer {celestia_token}"}
        services[svc.service_id] = entry
    data: dict[str, Any] = {
        "data_dir": "data",
        "keys": {
            "supplier_keystore": "keys/supplier.json",
            "passphrase_file": "keys/passphrase",
            "receipt_key": "keys/receipt-key.json",
        },
        "chain": {
            "rpc_url": plan.settlement_url,
            "deployment": str(layout.deployment.resolve()),
            "poll_interval": 0.2,
            "confirmations": 0,  # the devnet's anvil never reorganises
        },
        "server": {"host": "127.0.0.1", "port": relayer.port, "shutdown_grace": 1.0},
        "metrics": {"host": "127.0.0.1", "port": relayer.metrics_port},
        # the devnet's claims earn less than their gas: claim them anyway (min_reward 0)
        "claims": {"tick": 0.5, "retry_initial": 0.5, "retry_max": 5.0, "min_reward": 0},
        "services": services,
    }
    cfg = parse_relayer(data, base=directory.resolve(), env={})
    config = directory / "relayer.toml"
    _write_private(config, dump_config(cfg).encode())
    return config


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def gateway_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def write_gateway_files(layout: Layout, plan: DevnetPlan) -> Path:
    """``gateway.toml`` (devnet mode: loopback suppliers allowed) and the gateway key."""
    directory = layout.gateway_dir
    _write_private(directory / "gateway.key", ("0x" + plan.gateway.private_key.hex()).encode())
    tables: dict[str, dict[str, Any]] = {
        "gateway": {
            "listen": f"127.0.0.1:{plan.gateway_port}",
            "metrics_listen": f"127.0.0.1:{plan.gateway_metrics_port}",
            "devnet": True,
            "private_key_file": "gateway.key",
            "drain_timeout": 3.0,
            "drain_seconds": 0,
        },
        "settlement": {
            "rpc_url": plan.settlement_url,
            "deployment": str(layout.deployment.resolve()),
            "poll_interval": 0.2,
            "confirmations": 0,  # the devnet's anvil never reorganises
        },
        "keys": {"file": "keys.json", "reload_interval": 1.0},
        "qos": {"probe_interval": 1.0},
    }
    for svc in plan.services:
        tables[f"services.{svc.service_id}"] = {"catalogue": svc.spec}
    text = gateway_toml(tables)
    parse_gateway(text, base=directory.resolve(), env={})  # refuse what it would refuse
    config = directory / "gateway.toml"
    _write_private(config, text.encode())
    return config


async def write_api_keys(layout: Layout, plan: DevnetPlan) -> dict[str, str]:
    """One API key per app (no rate limit), stored hashed in the gateway's keys file.

    Returns service id → the key (shown to the user, kept in state.json)."""
    backend = FileKeyBackend(layout.gateway_dir / "keys.json")
    out: dict[str, str] = {}
    for sid, app in plan.apps.items():
        key = generate_key()
        await backend.put(
            ApiKey(
                key_hash=hash_key(key),
                name=f"devnet-{sid}",
                services={sid: address_to_hex(app.address)},
                rate_limit=0.0,
                created=time.time(),
            )
        )
        out[sid] = key
    return out


def write_deployment(layout: Layout, deployment: Deployment) -> None:
    layout.deployment.write_text(deployment.to_json())
