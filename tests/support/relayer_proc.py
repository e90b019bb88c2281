"""Start ``relaynet relayer run`` as a real subprocess — for relayer, gateway and devnet tests.

Typical use (the keys are the supplier's staked account and registered receipt key)::

    files = write_relayer_files(
        tmp_path / "r1",
        rpc_url=chain.url,
        deployment=network.deployment,          # ledger.deploy.Deployment (or its JSON text)
        account=supplier_key,                   # protocol.keys.AccountKey
        receipt=receipt_key,                    # protocol.keys.ReceiptKey
        services={"devnet": ServiceBackend(backend.url)},
    )
    with RelayerProcess(files) as relayer:      # started on free ports, waits for /readyz
        relayer.relay_url                       # http://127.0.0.1:<port>/v1/relay
        relayer.kill()                          # kill -9
        relayer.start()                         # again, same data folder

``files.port`` is decided when the files are written, so the endpoint to stake is known before
the process starts: ``files.relay_url``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.anvil import free_port
from protocol.keys import AccountKey, ReceiptKey
from tests.support.process import ServerProcess, toml_str

__all__ = ["RelayerFiles", "RelayerProcess", "ServiceBackend", "write_relayer_files"]

PASSPHRASE = "relayer-test-passphrase"


@dataclass(frozen=True)
class ServiceBackend:
    """One served service in the config: backend URL, chain spec and call settings."""

    url: str
    chain: str = "devnet"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    max_body_bytes: int = 1 << 20
    allow_writes: bool = True
    ws_url: str | None = None


@dataclass(frozen=True)
class RelayerFiles:
    """What :func:`write_relayer_files` wrote."""

    directory: Path
    config: Path
    port: int
    metrics_port: int
    supplier: bytes
    tls: bool = False  # serves https:// (server.tls_cert / tls_key)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def relay_url(self) -> str:
        return f"{self.url}/v1/relay"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"


def write_relayer_files(
    directory: Path,
    *,
    rpc_url: str,
    deployment: Any,
    account: AccountKey,
    receipt: ReceiptKey,
    services: Mapping[str, ServiceBackend],
    port: int | None = None,
    metrics_port: int | None = None,
    claims: Mapping[str, Any] | None = None,
    poll_interval: float = 0.1,
    tls: tuple[Path, Path] | None = None,
) -> RelayerFiles:
    """Keystore and receipt key (0600), deployment JSON and ``relayer.toml`` in ``directory``."""
    from protocol.keys import encrypt_keystore
    from relayer.keyfiles import write_receipt_key

    directory.mkdir(parents=True, exist_ok=True)
    keys = directory / "keys"
    keys.mkdir(exist_ok=True, mode=0o700)
    # a cheap KDF keeps tests fast; the format is the same keystore v3 the CLI writes
    keystore = encrypt_keystore(account.private_key, PASSPHRASE, kdf="pbkdf2", iterations=1000)
    fd = os.open(keys / "supplier.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(keystore)
    write_receipt_key(keys / "receipt-key.json", receipt, overwrite=True)
    text = deployment if isinstance(deployment, str) else deployment.to_json()
    (directory / "deployment.json").write_text(text)
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    lines = [
        'data_dir = "data"',
        "",
        "[keys]",
        'supplier_keystore = "keys/supplier.json"',
        'receipt_key = "keys/receipt-key.json"',
        'passphrase = "${RELAYER_PASSPHRASE}"',
        "",
        "[chain]",
        f"rpc_url = {toml_str(rpc_url)}",
        'deployment = "deployment.json"',
        f"poll_interval = {poll_interval}",
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "shutdown_grace = 1.0",
        *(
            [f"tls_cert = {toml_str(str(tls[0]))}", f"tls_key = {toml_str(str(tls[1]))}"]
            if tls
            else []
        ),
        "",
        "[metrics]",
        f"port = {metrics_port}",
        "",
        "[claims]",
        "tick = 0.2",
        "retry_initial = 0.2",
        "retry_max = 2.0",
    ]
    # tests count claims: every one is made whatever its gas (override with claims=...)
    for name, value in {"min_reward": 0, **(claims or {})}.items():
        lines.append(
            f"{name} = {value!r}"
            if not isinstance(value, bool)
            else f"{name} = {'true' if value else 'false'}"
        )
    # tests look for a settled session's log gone: no retention period
    lines += ["", "[log]", "retention_hours = 0"]
    for sid, svc in services.items():
        lines += [
            "",
            f"[services.{sid}]",
            f"chain = {toml_str(svc.chain)}",
            f"backends = {{ rpc = {toml_str(svc.url)} }}",
            f"timeout = {svc.timeout}",
            "connect_timeout = 1.0",
            f"max_body_bytes = {svc.max_body_bytes}",
            f"allow_writes = {'true' if svc.allow_writes else 'false'}",
        ]
        if svc.ws_url:
            lines.append(f"ws_backend = {toml_str(svc.ws_url)}")
        if svc.headers:
            inner = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in svc.headers.items())
            lines.append(f"headers = {{ {inner} }}")
    config = directory / "relayer.toml"
    config.write_text("\n".join(lines) + "\n")
    os.chmod(config, 0o600)
    return RelayerFiles(directory, config, port, metrics_port, account.address, tls is not None)


@dataclass
class RelayerProcess(ServerProcess):
    """``relaynet relayer run --config …`` as a subprocess; stdout/stderr go to ``relayer.log``."""

    files: RelayerFiles

    role = "relayer"

    @property
    def relay_url(self) -> str:
        return self.files.relay_url

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "RELAYER_PASSPHRASE": PASSPHRASE}
