"""``relaynet supplier``: stake, top up, move an endpoint, unstake, withdraw and inspect a
supplier (node runners).

``stake`` registers the account's services with their relay endpoint URLs and the ed25519
receipt key (read from its key file; only the public key goes on chain). ``top-up`` adds stake
and ``set-endpoint`` moves one service's endpoint without unstaking. Shared options and the
action wrapper: :mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from relaynet.commands.staking_common import (
    Action,
    CliError,
    checksum,
    command,
    format_amount,
    parse_amount,
)
from relaynet.keyfiles import read_receipt_key

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


def _parse_service(text: str) -> tuple[str, str]:
    sid, sep, url = text.partition("=")
    if not sep or not sid.strip() or not url.strip():
        raise CliError(f"--service {text!r}: write it as SERVICE_ID=ENDPOINT_URL")
    return sid.strip(), url.strip()


@command(app, "stake", sends=True)
async def stake(
    action: Action,
    amount: Annotated[str, typer.Option("--amount", help="Stake, e.g. 1000rly or 5base.")],
    service: Annotated[
        list[str],
        typer.Option("--service", help="SERVICE_ID=ENDPOINT_URL (repeat for several)."),
    ],
    receipt_key: Annotated[
        Path, typer.Option("--receipt-key", help="The ed25519 receipt key file.")
    ],
) -> None:
    """Stake as a supplier of one or more services."""
    value = parse_amount(amount, "--amount")
    services = dict(_parse_service(s) for s in service)
    if len(services) != len(service):
        raise CliError("--service: a service is named twice — give each service once")
    receipt = read_receipt_key(receipt_key)
    key = action.account()
    async with action.client(signer=True) as client:
        current = await client.supplier()
        if current.status.name != "NONE":
            raise CliError(
                f"{checksum(key.address)} is already a supplier ({current.status.name.lower()})"
                " — add stake with `relaynet supplier top-up`, move an endpoint with "
                "`relaynet supplier set-endpoint`"
            )
        balance = await client.balance()
        lines = [
            f"Stake {format_amount(value)} from {checksum(key.address)} "
            f"(balance {format_amount(balance)}) as a supplier of:",
            *(f"  {sid}  ->  {url}" for sid, url in services.items()),
            f"receipt key 0x{receipt.public_key.hex()}",
        ]
        await action.send(
            "staked", lines, lambda: client.stake_supplier(value, services, receipt.public_key)
        )


@command(app, "top-up", sends=True)
async def top_up(
    action: Action,
    amount: Annotated[str, typer.Option("--amount", help="Stake to add, e.g. 500rly.")],
) -> None:
    """Add stake to a staked supplier (its services and endpoints stay as they are)."""
    value = parse_amount(amount, "--amount")
    async with action.client(signer=True) as client:
        state = await client.supplier()
        line = (
            f"Add {format_amount(value)} to supplier {checksum(state.address)} "
            f"(stake {format_amount(state.stake)})"
        )
        await action.send("topped up", [line], lambda: client.top_up_supplier(value))
        typer.echo(f"stake now {format_amount((await client.supplier()).stake)}")


@command(app, "set-endpoint", sends=True)
async def set_endpoint(
    action: Action,
    service: Annotated[
        str, typer.Option("--service", help="SERVICE_ID=NEW_ENDPOINT_URL (one service).")
    ],
) -> None:
    """Move one service's relay endpoint without unstaking (gateways pick it up next session)."""
    sid, url = _parse_service(service)
    async with action.client(signer=True) as client:
        state = await client.supplier()
        if sid not in state.endpoints:
            staked = ", ".join(state.endpoints) or "none"
            raise CliError(
                f"--service {sid}: {checksum(state.address)} does not serve {sid!r} "
                f"(its services: {staked})"
            )
        line = f"Move {sid} of supplier {checksum(state.address)}: {state.endpoints[sid]} -> {url}"
        await action.send("endpoint set", [line], lambda: client.set_endpoint(sid, url))


@command(app, "unstake", sends=True)
async def unstake(action: Action) -> None:
    """Leave every service from the next session; the stake unbonds."""
    async with action.client(signer=True) as client:
        state = await client.supplier()
        line = (
            f"Unstake supplier {checksum(state.address)} (stake "
            f"{format_amount(state.stake)}, services {', '.join(state.endpoints) or '-'})"
        )
        await action.send("unstaked", [line], client.unstake_supplier)
        typer.echo(f"withdrawable from session {(await client.supplier()).withdrawable_session}")


@command(app, "withdraw", sends=True)
async def withdraw(action: Action) -> None:
    """Withdraw the stake once unbonding is over and no claim is open."""
    async with action.client(signer=True) as client:
        state = await client.supplier()
        line = f"Withdraw {format_amount(state.stake)} to {checksum(state.address)}"
        await action.send("withdrawn", [line], client.withdraw_supplier)


@command(app, "status", key=True, prints_json=True)
async def status(
    action: Action,
    address: Annotated[
        str | None, typer.Option("--address", help="Supplier address (default: the keystore's).")
    ] = None,
) -> None:
    """Show a supplier's stake, services, locks and unbonding."""
    who = action.who(address)
    async with action.client() as client:
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
    lines = [
        f"supplier {doc['address']}: {doc['status']}",
        f"  stake   {format_amount(s.stake)}, locked {format_amount(s.locked)}",
        f"  claims  {s.open_claims} open",
        f"  receipt key {doc['receipt_key']}",
        *(f"  service {sid}  ->  {url}" for sid, url in s.endpoints.items()),
    ]
    if s.status.name == "UNBONDING":
        lines.append(f"  withdrawable from session {s.withdrawable_session} (now {session})")
    action.show(doc, lines)
