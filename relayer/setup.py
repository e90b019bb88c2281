"""Setting a relayer up: its keys, its config and a check of its backends.

``relaynet relayer init`` asks for what is missing and prints; everything else happens here:

- :func:`create_relayer` writes the supplier keystore and the receipt key (both 0600, in a
  0700 ``keys/`` folder) and ``relayer.toml`` (0600; the passphrase stays a ``${VAR}``
  reference or a file path, never the secret), refusing to overwrite unless asked;
- the settlement RPC URL defaults to the one the deployment file holds;
- :func:`check_backends` probes each service's backend with its chain spec (chain identity
  and health);
- :func:`stake_command` is the ``relaynet supplier stake …`` line to run next.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from protocol.encoding import address_to_checksum
from protocol.errors import ErrorCode, RelaynetError
from protocol.keys import AccountKey, ReceiptKey
from relayer.config import RelayerConfig, dump_config
from relayer.keyfiles import write_account_key, write_receipt_key

__all__ = [
    "BackendCheck",
    "RelayerPlan",
    "RelayerSetup",
    "SetupError",
    "check_backends",
    "create_relayer",
    "deployment_rpc_url",
    "relay_endpoint",
    "stake_command",
]


class SetupError(RelaynetError):
    """The relayer could not be set up (the message names the file or option and the fix)."""

    code = ErrorCode.MALFORMED_INPUT


@dataclass(frozen=True)
class RelayerPlan:
    """What to set up: services and their backends, the chain, where to listen, the secret."""

    directory: Path
    services: Mapping[str, str]  # service id -> backend URL
    deployment: Path
    rpc_url: str | None = None  # None: the deployment file's
    chains: Mapping[str, str] = field(default_factory=dict)  # service id -> chain spec
    headers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    host: str = "0.0.0.0"
    port: int = 8081
    metrics_port: int = 9101
    passphrase_env: str | None = None  # the config references ${passphrase_env} …
    passphrase_file: Path | None = None  # … or this file

    @property
    def config_path(self) -> Path:
        return self.directory / "relayer.toml"

    @property
    def keystore(self) -> Path:
        return self.directory / "keys" / "supplier.json"

    @property
    def receipt_key(self) -> Path:
        return self.directory / "keys" / "receipt-key.json"


@dataclass(frozen=True)
class RelayerSetup:
    """What :func:`create_relayer` wrote."""

    plan: RelayerPlan
    config: RelayerConfig
    address: bytes
    receipt_public_key: bytes

    @property
    def address_checksum(self) -> str:
        return address_to_checksum(self.address)


@dataclass(frozen=True)
class BackendCheck:
    service: str
    ok: bool
    message: str


def deployment_rpc_url(path: Path) -> str:
    """The settlement RPC URL a deployment file holds."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SetupError(
            f"deployment file {Path(path).absolute()} not found — pass --deployment FILE "
            "(a devnet writes .devnet/deployment.json)"
        ) from None
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read deployment file {Path(path).absolute()}: {exc}") from None
    url = doc.get("rpc_url") if isinstance(doc, dict) else None
    if not isinstance(url, str) or not url:
        raise SetupError(f"deployment file {path} holds no rpc_url — pass --rpc-url URL")
    return url


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _raw_config(plan: RelayerPlan, rpc_url: str) -> dict[str, Any]:
    keys: dict[str, str] = {
        "supplier_keystore": str(plan.keystore),
        "receipt_key": str(plan.receipt_key),
    }
    if plan.passphrase_file is not None:
        keys["passphrase_file"] = str(plan.passphrase_file.resolve())
    else:
        keys["passphrase"] = "${" + str(plan.passphrase_env) + "}"
    return {
        "data_dir": str(plan.directory / "data"),
        "keys": keys,
        "chain": {"rpc_url": rpc_url, "deployment": str(plan.deployment.resolve())},
        "server": {"host": plan.host, "port": plan.port},
        "metrics": {"port": plan.metrics_port},
        "services": {
            sid: {
                "chain": plan.chains.get(sid, sid),
                "backends": {"rpc": url},
                "headers": dict(plan.headers.get(sid, {})),
            }
            for sid, url in plan.services.items()
        },
    }


def create_relayer(plan: RelayerPlan, passphrase: str, *, force: bool = False) -> RelayerSetup:
    """Generate the keys and write them and ``relayer.toml`` (see the module doc)."""
    if not plan.services:
        raise SetupError("name at least one --service SERVICE=BACKEND_URL")
    if plan.passphrase_file is None and plan.passphrase_env is None:
        raise SetupError("give --passphrase-env NAME or --passphrase-file PATH")
    if plan.config_path.exists() and not force:
        raise SetupError(f"{plan.config_path} exists (use --force to overwrite)")
    rpc_url = plan.rpc_url or deployment_rpc_url(plan.deployment)
    raw = _raw_config(plan, rpc_url)
    # refuse a bad plan before any key is written (${VAR} stays literal in the written file)
    try:
        config = RelayerConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SetupError(f"the relayer config would be refused: `{key}`: {message}") from None

    keys_dir = plan.keystore.parent
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    account = AccountKey.generate()
    receipt = ReceiptKey.generate()
    write_account_key(plan.keystore, account, passphrase, overwrite=force)
    write_receipt_key(plan.receipt_key, receipt, overwrite=force)
    _write_private(plan.config_path, dump_config(config))
    return RelayerSetup(plan, config, account.address, receipt.public_key)


async def check_backends(cfg: RelayerConfig) -> list[BackendCheck]:
    """Probe every service's backend against its chain spec."""
    import aiohttp

    from relayer.pricing import resolve_spec
    from rollups.health import probe

    checks: list[BackendCheck] = []
    async with aiohttp.ClientSession() as session:
        for sid, svc in cfg.services.items():
            try:
                spec = resolve_spec(svc.chain)
            except RelaynetError as exc:
                checks.append(BackendCheck(sid, False, f"{sid}: {exc.message}"))
                continue
            health = await probe(spec, dict(svc.backends), session, headers=svc.header_values())
            if health.ok:
                text = f"{sid}: backend ok — chain {health.chain_id}, height {health.height}"
            else:
                text = f"{sid}: backend check failed — {health.status}: {health.reason}"
            checks.append(BackendCheck(sid, health.ok, text))
    return checks


def relay_endpoint(plan: RelayerPlan, public_url: str | None) -> str:
    """The URL to stake: ``public_url`` (or the listen address) ending in ``/v1/relay``."""
    host = "127.0.0.1" if plan.host == "0.0.0.0" else plan.host
    endpoint = (public_url or f"http://{host}:{plan.port}").rstrip("/")
    return endpoint if endpoint.endswith("/v1/relay") else endpoint + "/v1/relay"


def stake_command(setup: RelayerSetup, *, stake: str, public_url: str | None) -> str:
    """The ``relaynet supplier stake …`` command for what :func:`create_relayer` wrote."""
    plan = setup.plan
    endpoint = relay_endpoint(plan, public_url)
    services = " ".join(f"--service {sid}={endpoint}" for sid in plan.services)
    secret = (
        f"--passphrase-file {plan.passphrase_file.resolve()}"
        if plan.passphrase_file is not None
        else f"--passphrase-env {plan.passphrase_env}"
    )
    return (
        f"relaynet supplier stake --amount {stake} {services} "
        f"--receipt-key {plan.receipt_key} --keystore {plan.keystore} {secret} "
        f"--rpc-url {setup.config.chain.rpc_url} --deployment {plan.deployment.resolve()}"
    )
