"""What the staking commands share: chain options, key loading, amounts, confirmation, output.

Used by ``relaynet supplier``, ``relaynet app``, ``relaynet gateway stake|unstake|withdraw``
and ``relaynet token``. Every command takes the settlement RPC URL (``--rpc-url``, default the
deployment's) and a deployment file (``--deployment``: a ``Deployment.to_json()`` file or a
devnet state file holding one under ``"deployment"``). Commands that send transactions take a
keystore (``--keystore``) whose passphrase comes from ``--passphrase-env NAME``,
``--passphrase-file PATH`` or a prompt; they show what will be spent and ask for confirmation
unless ``--yes``. Failures print ``error: …`` and exit 1 — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from protocol.encoding import address_from_hex, address_to_checksum
from protocol.errors import RelaynetError
from protocol.keys import AccountKey
from relaynet.keyfiles import read_account_key, resolve_passphrase

if TYPE_CHECKING:  # web3 is imported only when a command talks to the chain (fast --help)
    from ledger.client import LedgerClient
    from ledger.deploy import Deployment
    from ledger.tx import TxReceipt

__all__ = [
    "DECIMALS",
    "DEFAULT_DEPLOYMENT",
    "ChainOptions",
    "DeploymentOpt",
    "JsonOpt",
    "KeyOptions",
    "KeystoreOpt",
    "PassEnvOpt",
    "PassFileOpt",
    "RpcUrlOpt",
    "YesOpt",
    "checksum",
    "confirm",
    "emit_json",
    "format_amount",
    "load_deployment",
    "open_client",
    "parse_address",
    "parse_amount",
    "print_receipt",
    "run",
]

DECIMALS = 18
DEFAULT_DEPLOYMENT = Path(".devnet/state.json")

RpcUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="RELAYNET_RPC_URL",
        help="Settlement chain JSON-RPC URL (default: the deployment's).",
    ),
]
DeploymentOpt = Annotated[
    Path,
    typer.Option(
        "--deployment",
        envvar="RELAYNET_DEPLOYMENT",
        help="Deployment JSON, or a devnet state file (.devnet/state.json).",
    ),
]
KeystoreOpt = Annotated[
    Path | None,
    typer.Option("--keystore", envvar="RELAYNET_KEYSTORE", help="Ethereum keystore v3 file."),
]
PassEnvOpt = Annotated[
    str | None,
    typer.Option("--passphrase-env", help="Name of the environment variable with the passphrase."),
]
PassFileOpt = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="File whose first line is the passphrase."),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@dataclass(frozen=True)
class ChainOptions:
    rpc_url: str | None
    deployment: Path


@dataclass(frozen=True)
class KeyOptions:
    keystore: Path | None
    passphrase_env: str | None
    passphrase_file: Path | None

    def load(self) -> AccountKey:
        if self.keystore is None:
            raise RelaynetError("a keystore is needed: pass --keystore PATH")
        passphrase = resolve_passphrase(env_var=self.passphrase_env, file=self.passphrase_file)
        return read_account_key(self.keystore, passphrase)


def load_deployment(path: Path) -> Deployment:
    """Read a ``Deployment.to_json()`` file, or a devnet state file that holds one."""
    from ledger.deploy import Deployment
    from ledger.errors import DeploymentError

    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise DeploymentError(f"deployment file {path} not found (pass --deployment)") from exc
    except OSError as exc:
        raise DeploymentError(f"cannot read deployment file {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"deployment file {path} is not JSON: {exc}") from exc
    if isinstance(doc, Mapping) and "contracts" not in doc:
        for key in ("deployment", "ledger", "settlement"):
            inner = doc.get(key)
            if isinstance(inner, Mapping) and "contracts" in inner:
                doc = inner
                break
    if not isinstance(doc, Mapping) or "contracts" not in doc:
        raise DeploymentError(f'{path} holds no deployment (no "contracts")')
    try:
        return Deployment.from_json(json.dumps(doc))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeploymentError(f"malformed deployment in {path}: {exc}") from exc


def open_client(chain: ChainOptions, account: AccountKey | None) -> LedgerClient:
    """A :class:`LedgerClient` on the deployment's chain (``--rpc-url`` overrides its URL)."""
    from ledger.client import LedgerClient

    deployment = load_deployment(chain.deployment)
    return LedgerClient(chain.rpc_url or deployment.rpc_url, deployment, account)


def parse_amount(text: str) -> int:
    """Token amount: base units (``1000``, ``1_000``) or whole tokens (``1.5rly``, ``2 RLY``)."""
    raw = text.strip().replace("_", "").lower()
    try:
        if raw.endswith("rly"):
            value = Decimal(raw[:-3].strip()) * (Decimal(10) ** DECIMALS)
            if value != value.to_integral_value():
                raise typer.BadParameter(f"{text}: more than {DECIMALS} decimals")
            amount = int(value)
        else:
            amount = int(raw)
    except (ValueError, InvalidOperation) as exc:
        raise typer.BadParameter(
            f"{text!r} is not an amount (base units, or tokens as e.g. 1.5rly)"
        ) from exc
    if amount <= 0:
        raise typer.BadParameter(f"{text}: the amount must be positive")
    return amount


def format_amount(amount: int) -> str:
    """``1500000000000000000`` → ``1.5 RLY (1500000000000000000 base units)``."""
    whole = Decimal(amount) / (Decimal(10) ** DECIMALS)
    text = format(whole.normalize(), "f") if amount else "0"
    return f"{text} RLY ({amount} base units)"


def parse_address(text: str) -> bytes:
    try:
        return address_from_hex(text.strip())
    except RelaynetError as exc:
        raise typer.BadParameter(f"{text!r} is not a 20-byte hex address") from exc


def confirm(lines: list[str], yes: bool) -> None:
    """Show what is about to happen; ask unless ``yes`` (declining exits 1)."""
    for line in lines:
        typer.echo(line)
    if yes:
        return
    if not typer.confirm("Proceed?", default=False):
        typer.echo("aborted: nothing was sent", err=True)
        raise typer.Exit(code=1)


def print_receipt(what: str, receipt: TxReceipt) -> None:
    typer.echo(
        f"{what}: transaction {receipt.tx_hash_hex} mined in block {receipt.block_number} "
        f"(gas {receipt.gas_used})"
    )


def checksum(address: bytes) -> str:
    return address_to_checksum(address)


T = TypeVar("T")


def run(action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` on a fresh event loop; a RelaynetError becomes ``error: …``, exit 1."""
    try:
        return asyncio.run(_call(action))
    except RelaynetError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


async def _call(action: Callable[[], Awaitable[T]]) -> T:
    return await action()


def emit_json(doc: Mapping[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2, sort_keys=True))
