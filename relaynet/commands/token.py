"""``relaynet token``: token balances and transfers (the RLY token of the settlement chain).
Shared options and the action wrapper: :mod:`relaynet.commands.staking_common`."""

from __future__ import annotations

from typing import Annotated

import typer

from relaynet.commands import staking_common as common

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@common.command(app, "balance", key=True, prints_json=True)
async def balance(
    action: common.Action,
    address: Annotated[
        str | None, typer.Argument(help="Address (default: the keystore's account).")
    ] = None,
) -> None:
    """Show the token (and gas) balance of ADDRESS."""
    who = action.who(address, "ADDRESS")
    async with action.client() as client:
        tokens = await client.balance(who)
        gas = await client.eth_balance(who)
    doc = {"address": common.checksum(who), "balance": str(tokens), "eth_wei": str(gas)}
    action.show(
        doc,
        [f"{common.checksum(who)}: {common.format_amount(tokens)}; gas {common.format_gas(gas)}"],
    )


@common.command(app, "transfer", sends=True)
async def transfer(
    action: common.Action,
    to: Annotated[str, typer.Argument(help="Recipient address.")],
    amount: Annotated[str, typer.Argument(help="Amount, e.g. 1.5rly or 5base.")],
) -> None:
    """Transfer AMOUNT tokens to TO."""
    recipient = common.parse_address(to, "TO")
    await action.pay(
        amount,
        f"to {common.checksum(recipient)}",
        lambda client, value: client.transfer(recipient, value),
        verb="Transfer",
        done="transferred",
        option="AMOUNT",
    )
