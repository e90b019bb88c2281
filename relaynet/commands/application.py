"""``relaynet app``: stake an application for one service, delegate to gateways, unstake,
withdraw and inspect it. See :mod:`relaynet.commands.staking_common` for the shared options."""

from __future__ import annotations

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

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.command("stake")
def stake(
    service: Annotated[str, typer.Option("--service", help="The service the app pays for.")],
    amount: Annotated[str, typer.Option("--amount", help="Stake: base units, or e.g. 100rly.")],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Stake the account as an application of SERVICE (in force from the next session)."""
    value = parse_amount(amount)

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            balance = await client.balance()
            confirm(
                [
                    f"Stake {format_amount(value)} from {checksum(key.address)} "
                    f"(balance {format_amount(balance)}) as an application of {service}"
                ],
                yes,
            )
            print_receipt("staked", await client.stake_app(service, value))

    run(action)


@app.command("delegate")
def delegate(
    gateway: Annotated[str, typer.Argument(help="The gateway's address.")],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Let GATEWAY sign relays for this app (from the next session)."""
    target = parse_address(gateway)

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            confirm([f"Delegate app {checksum(key.address)} to gateway {checksum(target)}"], yes)
            print_receipt("delegated", await client.delegate(target))

    run(action)


@app.command("undelegate")
def undelegate(
    gateway: Annotated[str, typer.Argument(help="The gateway's address.")],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Stop GATEWAY signing for this app (from the next session)."""
    target = parse_address(gateway)

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            confirm(
                [f"Undelegate app {checksum(key.address)} from gateway {checksum(target)}"], yes
            )
            print_receipt("undelegated", await client.undelegate(target))

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
    """Unstake the app from the next session; the stake unbonds."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.app()
            confirm(
                [
                    f"Unstake app {checksum(key.address)} (service {state.service_id or '-'}, "
                    f"stake {format_amount(state.stake)})"
                ],
                yes,
            )
            print_receipt("unstaked", await client.unstake_app())
            after = await client.app()
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
    """Withdraw the app's remaining stake once unbonding is over and no claim is open."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.app()
            confirm([f"Withdraw {format_amount(state.stake)} to {checksum(key.address)}"], yes)
            print_receipt("withdrawn", await client.withdraw_app())

    run(action)


@app.command("status")
def status(
    address: Annotated[
        str | None, typer.Option("--address", help="App address (default: the keystore's).")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an application's service, stake, delegations and unbonding."""

    async def action() -> None:
        who = (
            parse_address(address)
            if address
            else KeyOptions(keystore, passphrase_env, passphrase_file).load().address
        )
        async with open_client(ChainOptions(rpc_url, deployment), None) as client:
            a = await client.app(who)
            session = await client.current_session()
        doc = {
            "address": checksum(a.address),
            "status": a.status.name.lower(),
            "service": a.service_id,
            "stake": str(a.stake),
            "open_claims": a.open_claims,
            "delegations": [checksum(g) for g in a.delegations],
            "unstake_session": a.unstake_session,
            "withdrawable_session": a.withdrawable_session,
            "current_session": session,
        }
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"application {doc['address']}: {doc['status']}")
        typer.echo(f"  service {a.service_id or '-'}, stake {format_amount(a.stake)}")
        typer.echo(f"  claims  {a.open_claims} open")
        for g in a.delegations:
            typer.echo(f"  delegates to {checksum(g)}")
        if a.status.name == "UNBONDING":
            typer.echo(f"  withdrawable from session {a.withdrawable_session} (now {session})")

    run(action)
