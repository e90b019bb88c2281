"""``relaynet token``: token balances and transfers (the RLY token of the settlement chain).
See :mod:`relaynet.commands.staking_common` for the shared options."""

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


@app.command("balance")
def balance(
    address: Annotated[
        str | None, typer.Argument(help="Address (default: the keystore's account).")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the token (and gas) balance of ADDRESS."""

    async def action() -> None:
        who = (
            parse_address(address)
            if address
            else KeyOptions(keystore, passphrase_env, passphrase_file).load().address
        )
        async with open_client(ChainOptions(rpc_url, deployment), None) as client:
            tokens = await client.balance(who)
            gas = await client.eth_balance(who)
        if as_json:
            emit_json({"address": checksum(who), "balance": str(tokens), "eth_wei": str(gas)})
            return
        typer.echo(f"{checksum(who)}: {format_amount(tokens)}; gas balance {gas} wei")

    run(action)


@app.command("transfer")
def transfer(
    to: Annotated[str, typer.Argument(help="Recipient address.")],
    amount: Annotated[str, typer.Argument(help="Amount: base units, or e.g. 1.5rly.")],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Transfer AMOUNT tokens to TO."""
    recipient = parse_address(to)
    value = parse_amount(amount)

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            have = await client.balance()
            confirm(
                [
                    f"Transfer {format_amount(value)} from {checksum(key.address)} "
                    f"(balance {format_amount(have)}) to {checksum(recipient)}"
                ],
                yes,
            )
            print_receipt("transferred", await client.transfer(recipient, value))

    run(action)
