"""``relaynet app``: stake an application for one service, delegate to gateways, unstake,
withdraw and inspect it. Shared options and the action wrapper:
:mod:`relaynet.commands.staking_common`."""

from __future__ import annotations

from typing import Annotated

import typer

from relaynet.commands.staking_common import (
    Action,
    checksum,
    command,
    format_amount,
    parse_address,
    parse_amount,
)

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)

GatewayArg = Annotated[
    str, typer.Argument(help="The gateway's address (`relaynet gateway status` shows it).")
]


@command(app, "stake", sends=True)
async def stake(
    action: Action,
    service: Annotated[str, typer.Option("--service", help="The service the app pays for.")],
    amount: Annotated[str, typer.Option("--amount", help="Stake, e.g. 100rly or 5base.")],
) -> None:
    """Stake the account as an application of SERVICE (in force from the next session)."""
    value = parse_amount(amount, "--amount")
    key = action.account()
    async with action.client(signer=True) as client:
        balance = await client.balance()
        line = (
            f"Stake {format_amount(value)} from {checksum(key.address)} "
            f"(balance {format_amount(balance)}) as an application of {service}"
        )
        await action.send("staked", [line], lambda: client.stake_app(service, value))


@command(app, "delegate", sends=True)
async def delegate(action: Action, gateway: GatewayArg) -> None:
    """Let GATEWAY sign relays for this app (from the next session)."""
    target = parse_address(gateway, "GATEWAY")
    me = checksum(action.account().address)
    async with action.client(signer=True) as client:
        line = f"Delegate app {me} to gateway {checksum(target)}"
        await action.send("delegated", [line], lambda: client.delegate(target))


@command(app, "undelegate", sends=True)
async def undelegate(action: Action, gateway: GatewayArg) -> None:
    """Stop GATEWAY signing for this app (from the next session)."""
    target = parse_address(gateway, "GATEWAY")
    me = checksum(action.account().address)
    async with action.client(signer=True) as client:
        line = f"Undelegate app {me} from gateway {checksum(target)}"
        await action.send("undelegated", [line], lambda: client.undelegate(target))


@command(app, "unstake", sends=True)
async def unstake(action: Action) -> None:
    """Unstake the app from the next session; the stake unbonds."""
    async with action.client(signer=True) as client:
        state = await client.app()
        line = (
            f"Unstake app {checksum(state.address)} (service {state.service_id or '-'}, "
            f"stake {format_amount(state.stake)})"
        )
        await action.send("unstaked", [line], client.unstake_app)
        typer.echo(f"withdrawable from session {(await client.app()).withdrawable_session}")


@command(app, "withdraw", sends=True)
async def withdraw(action: Action) -> None:
    """Withdraw the app's remaining stake once unbonding is over and no claim is open."""
    async with action.client(signer=True) as client:
        state = await client.app()
        line = f"Withdraw {format_amount(state.stake)} to {checksum(state.address)}"
        await action.send("withdrawn", [line], client.withdraw_app)


@command(app, "status", key=True, prints_json=True)
async def status(
    action: Action,
    address: Annotated[
        str | None, typer.Option("--address", help="App address (default: the keystore's).")
    ] = None,
) -> None:
    """Show an application's service, stake, delegations and unbonding."""
    who = action.who(address)
    async with action.client() as client:
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
    lines = [
        f"application {doc['address']}: {doc['status']}",
        f"  service {a.service_id or '-'}, stake {format_amount(a.stake)}",
        f"  claims  {a.open_claims} open",
        *(f"  delegates to {checksum(g)}" for g in a.delegations),
    ]
    if a.status.name == "UNBONDING":
        lines.append(f"  withdrawable from session {a.withdrawable_session} (now {session})")
    action.show(doc, lines)
