"""``relaynet supplier``: stake, unstake, withdraw and inspect a supplier (node runners).

``stake`` registers the account's services with their relay endpoint URLs and the ed25519
receipt key (read from its key file; only the public key goes on chain). See
:mod:`relaynet.commands.staking_common` for the options every command shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relaynet.commands.staking_common import DEFAULT_DEPLOYMENT as _DEPLOYMENT
from relaynet.commands.staking_common import (
    ChainOptions,
    DeploymentOpt,
    JsonOpt,
    KeyOptions,
    KeystoreOpt,
    PassEnvOpt,
    PassFileOpt,
    RpcUrlOpt,
    YesOpt,
    checksum,
    confirm,
    emit_json,
    format_amount,
    open_client,
    parse_address,
    parse_amount,
    print_receipt,
    run,
)
from relaynet.keyfiles import read_receipt_key

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


def _parse_service(text: str) -> tuple[str, str]:
    sid, sep, url = text.partition("=")
    if not sep or not sid or not url:
        raise typer.BadParameter(f"{text!r}: expected SERVICE_ID=ENDPOINT_URL")
    return sid.strip(), url.strip()


@app.command("stake")
def stake(
    amount: Annotated[str, typer.Option("--amount", help="Stake: base units, or e.g. 100rly.")],
    service: Annotated[
        list[str],
        typer.Option("--service", help="SERVICE_ID=ENDPOINT_URL (repeat for several)."),
    ],
    receipt_key: Annotated[
        Path, typer.Option("--receipt-key", help="The ed25519 receipt key file.")
    ],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Stake as a supplier of one or more services."""
    value = parse_amount(amount)
    services = dict(_parse_service(s) for s in service)
    if len(services) != len(service):
        raise typer.BadParameter("a service is named twice", param_hint="--service")

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        receipt = read_receipt_key(receipt_key)
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            balance = await client.balance()
            lines = [
                f"Stake {format_amount(value)} from {checksum(key.address)} "
                f"(balance {format_amount(balance)}) as a supplier of:",
                *(f"  {sid}  ->  {url}" for sid, url in services.items()),
                f"receipt key 0x{receipt.public_key.hex()}",
            ]
            confirm(lines, yes)
            result = await client.stake_supplier(value, services, receipt.public_key)
            print_receipt("staked", result)

    run(action)


@app.command("unstake")
def unstake(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Leave every service from the next session; the stake unbonds."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.supplier()
            confirm(
                [
                    f"Unstake supplier {checksum(key.address)} (stake "
                    f"{format_amount(state.stake)}, services {', '.join(state.endpoints) or '-'})"
                ],
                yes,
            )
            result = await client.unstake_supplier()
            print_receipt("unstaked", result)
            after = await client.supplier()
            typer.echo(f"withdrawable from session {after.withdrawable_session}")

    run(action)


@app.command("withdraw")
def withdraw(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Withdraw the stake once unbonding is over and no claim is open."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.supplier()
            confirm([f"Withdraw {format_amount(state.stake)} to {checksum(key.address)}"], yes)
            result = await client.withdraw_supplier()
            print_receipt("withdrawn", result)

    run(action)


@app.command("status")
def status(
    address: Annotated[
        str | None, typer.Option("--address", help="Supplier address (default: the keystore's).")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a supplier's stake, services, locks and unbonding."""

    async def action() -> None:
        who = (
            parse_address(address)
            if address
            else KeyOptions(keystore, passphrase_env, passphrase_file).load().address
        )
        async with open_client(ChainOptions(rpc_url, deployment), None) as client:
            s = await client.supplier(who)
            session = await client.current_session()
        doc = {
            "address": checksum(s.address),
            "status": s.status.name.lower(),
            "stake": str(s.stake),
            "locked": str(s.locked),
            "open_claims": s.open_claims,
            "receipt_key": "0x" + s.receipt_key.hex(),
            "endpoints": dict(s.endpoints),
            "unstake_session": s.unstake_session,
            "withdrawable_session": s.withdrawable_session,
            "current_session": session,
        }
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"supplier {doc['address']}: {doc['status']}")
        typer.echo(f"  stake   {format_amount(s.stake)}, locked {format_amount(s.locked)}")
        typer.echo(f"  claims  {s.open_claims} open")
        typer.echo(f"  receipt key {doc['receipt_key']}")
        for sid, url in s.endpoints.items():
            typer.echo(f"  service {sid}  ->  {url}")
        if s.status.name == "UNBONDING":
            typer.echo(f"  withdrawable from session {s.withdrawable_session} (now {session})")

    run(action)
