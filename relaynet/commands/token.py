"""``relaynet token``: token balances and transfers (the RLY token of the settlement chain).
Shared options and the action wrapper: :mod:`relaynet.commands.staking_common`."""

from __future__ import annotations

from typing import Annotated

import typer

from relaynet.commands.staking_common import (
    Action,
    checksum,
    command,
    format_amount,
    format_gas,
    parse_address,
    parse_amount,
)

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@command(app, "balance", key=True, prints_json=True)
async def balance(
    action: Action,
    address: Annotated[
        str | None, typer.Argument(help="Address (default: the keystore's account).")
    ] = None,
) -> None:
    """Show the token (and gas) balance of ADDRESS."""
    who = action.who(address, "ADDRESS")
    async with action.client() as client:
        tokens = await client.balance(who)
        gas = await client.eth_balance(who)
    doc = {"address": checksum(who), "balance": str(tokens), "eth_wei": str(gas)}
    action.show(doc, [f"{checksum(who)}: {format_amount(tokens)}; gas {format_gas(gas)}"])


@command(app, "transfer", sends=True)
async def transfer(
    action: Action,
    to: Annotated[str, typer.Argument(help="Recipient address.")],
    amount: Annotated[str, typer.Argument(help="Amount, e.g. 1.5rly or 5base.")],
) -> None:
    """Transfer AMOUNT tokens to TO."""
    recipient = parse_address(to, "TO")
    value = parse_amount(amount, "AMOUNT")
    key = action.account()
    async with action.client(signer=True) as client:
        have = await client.balance()
        line = (
            f"Transfer {format_amount(value)} from {checksum(key.address)} "
            f"(balance {format_amount(have)}) to {checksum(recipient)}"
        )
        await action.send("transferred", [line], lambda: client.transfer(recipient, value))
