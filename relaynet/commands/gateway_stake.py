"""``relaynet gateway stake|unstake|withdraw``: a gateway's stake on the settlement chain.

The gateway command group (``relaynet/commands/gateway.py``) calls :func:`add_to` to mount
these commands. See :mod:`relaynet.commands.staking_common` for the shared options.
"""

from __future__ import annotations

from typing import Annotated

import typer

from relaynet.commands.staking_common import DEFAULT_DEPLOYMENT as _DEPLOYMENT
from relaynet.commands.staking_common import (
    ChainOptions,
    DeploymentOpt,
    KeyOptions,
    KeystoreOpt,
    PassEnvOpt,
    PassFileOpt,
    RpcUrlOpt,
    YesOpt,
    checksum,
    confirm,
    format_amount,
    open_client,
    parse_amount,
    print_receipt,
    run,
)

__all__ = ["add_to", "stake", "unstake", "withdraw"]


def stake(
    amount: Annotated[str, typer.Option("--amount", help="Stake: base units, or e.g. 100rly.")],
    url: Annotated[str, typer.Option("--url", help="The gateway's public URL.")],
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Stake the account as a gateway (apps may then delegate to it)."""
    value = parse_amount(amount)

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            have = await client.balance()
            confirm(
                [
                    f"Stake {format_amount(value)} from {checksum(key.address)} "
                    f"(balance {format_amount(have)}) as a gateway at {url}"
                ],
                yes,
            )
            print_receipt("staked", await client.stake_gateway(value, url))

    run(action)


def unstake(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Unstake the gateway; the stake unbonds."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.gateway()
            confirm(
                [f"Unstake gateway {checksum(key.address)} (stake {format_amount(state.stake)})"],
                yes,
            )
            print_receipt("unstaked", await client.unstake_gateway())
            after = await client.gateway()
            typer.echo(f"withdrawable from session {after.withdrawable_session}")

    run(action)


def withdraw(
    rpc_url: RpcUrlOpt = None,
    deployment: DeploymentOpt = _DEPLOYMENT,
    keystore: KeystoreOpt = None,
    passphrase_env: PassEnvOpt = None,
    passphrase_file: PassFileOpt = None,
    yes: YesOpt = False,
) -> None:
    """Withdraw the gateway's stake once unbonding is over."""

    async def action() -> None:
        key = KeyOptions(keystore, passphrase_env, passphrase_file).load()
        async with open_client(ChainOptions(rpc_url, deployment), key) as client:
            state = await client.gateway()
            confirm([f"Withdraw {format_amount(state.stake)} to {checksum(key.address)}"], yes)
            print_receipt("withdrawn", await client.withdraw_gateway())

    run(action)


def add_to(app: typer.Typer) -> None:
    """Add ``stake``, ``unstake`` and ``withdraw`` to the gateway command group."""
    app.command("stake")(stake)
    app.command("unstake")(unstake)
    app.command("withdraw")(withdraw)
