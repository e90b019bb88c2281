"""``relaynet gateway stake|top-up|set-url|unstake|withdraw|status``: a gateway on the
settlement chain.

The gateway command group (``relaynet/commands/gateway.py``) calls :func:`add_to` to mount
these commands. ``status`` is how an app owner learns the address to ``relaynet app delegate``:
it takes the gateway's config (``--config``, its key gives the address), an ``--address`` or a
keystore. Shared options and the action wrapper: :mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relaynet.commands.staking_common import (
    Action,
    CliError,
    checksum,
    command,
    format_amount,
    parse_amount,
)

if TYPE_CHECKING:
    from ledger.client import LedgerClient

__all__ = ["add_to", "delegators", "stake", "status", "unstake", "withdraw"]


@command(None, "stake", sends=True)
async def stake(
    action: Action,
    amount: Annotated[str, typer.Option("--amount", help="Stake, e.g. 100rly or 5base.")],
    url: Annotated[str, typer.Option("--url", help="The gateway's public URL.")],
) -> None:
    """Stake the account as a gateway (apps may then delegate to it)."""
    value = parse_amount(amount, "--amount")
    key = action.account()
    async with action.client(signer=True) as client:
        have = await client.balance()
        line = (
            f"Stake {format_amount(value)} from {checksum(key.address)} "
            f"(balance {format_amount(have)}) as a gateway at {url}"
        )
        await action.send("staked", [line], lambda: client.stake_gateway(value, url))


@command(None, "top-up", sends=True)
async def top_up(
    action: Action,
    amount: Annotated[str, typer.Option("--amount", help="Stake to add, e.g. 50rly.")],
) -> None:
    """Add stake to a staked gateway."""
    value = parse_amount(amount, "--amount")
    async with action.client(signer=True) as client:
        state = await client.gateway()
        line = f"Add {format_amount(value)} to gateway {checksum(state.address)}"
        await action.send("topped up", [line], lambda: client.top_up_gateway(value))


@command(None, "set-url", sends=True)
async def set_url(
    action: Action,
    url: Annotated[str, typer.Option("--url", help="The gateway's new public URL.")],
) -> None:
    """Change the gateway's public URL on chain."""
    async with action.client(signer=True) as client:
        state = await client.gateway()
        line = f"Move gateway {checksum(state.address)}: {state.url or '-'} -> {url}"
        await action.send("url set", [line], lambda: client.set_gateway_url(url))


@command(None, "unstake", sends=True)
async def unstake(action: Action) -> None:
    """Unstake the gateway; the stake unbonds."""
    async with action.client(signer=True) as client:
        state = await client.gateway()
        line = f"Unstake gateway {checksum(state.address)} (stake {format_amount(state.stake)})"
        await action.send("unstaked", [line], client.unstake_gateway)
        typer.echo(f"withdrawable from session {(await client.gateway()).withdrawable_session}")


@command(None, "withdraw", sends=True)
async def withdraw(action: Action) -> None:
    """Withdraw the gateway's stake once unbonding is over."""
    async with action.client(signer=True) as client:
        state = await client.gateway()
        line = f"Withdraw {format_amount(state.stake)} to {checksum(state.address)}"
        await action.send("withdrawn", [line], client.withdraw_gateway)


async def delegators(client: LedgerClient, gateway: bytes) -> dict[bytes, str | None]:
    """Apps delegating to ``gateway`` now (app address -> its service), from the chain's
    ``DelegationSet`` events checked against each app's current delegation list."""
    apps_address = client.deployment.contracts["Apps"]
    logs = await client.w3.eth.get_logs(
        {
            "address": client.w3.to_checksum_address(apps_address),
            "fromBlock": client.deployment.genesis_block,
            "toBlock": "latest",
            "topics": [
                "0x" + client.events.topic("Apps", "DelegationSet").hex(),
                None,
                "0x" + gateway.rjust(32, b"\0").hex(),
            ],
        }
    )
    seen = {bytes(e.args["app"]) for e in client.events.decode_all(logs)}
    out: dict[bytes, str | None] = {}
    for app in sorted(seen):
        state = await client.app(app)
        if gateway in state.delegations:
            out[app] = state.service_id
    return out


def _gateway_from_config(path: Path) -> tuple[bytes, str, Path]:
    """The address, settlement RPC URL and deployment file a gateway config names."""
    from gateway.config import load_config
    from protocol.keys import AccountKey

    try:
        cfg = load_config(path)
        key = AccountKey(cfg.gateway.key_bytes())
    except (OSError, ValueError) as exc:
        raise CliError(f"--config {path}: {str(exc).splitlines()[0]}") from None
    return key.address, cfg.settlement.rpc_url, cfg.settlement.deployment


@command(None, "status", key=True, prints_json=True)
async def status(
    action: Action,
    address: Annotated[
        str | None, typer.Option("--address", help="Gateway address (default: the keystore's).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A gateway config: its key, chain and deployment."),
    ] = None,
) -> None:
    """The gateway's address (to give `relaynet app delegate`), stake, URL, the apps delegating
    to it and their services."""
    if config is not None and address is None:
        who, rpc_url, deployment = _gateway_from_config(config)
        action.rpc_url = action.rpc_url or rpc_url
        action.deployment = deployment
    else:
        who = action.who(address)
    async with action.client() as client:
        g = await client.gateway(who)
        apps = await delegators(client, who)
    services = sorted({s for s in apps.values() if s})
    doc = {
        "address": checksum(who),
        "status": g.status.name.lower(),
        "stake": str(g.stake),
        "url": g.url,
        "delegations": {checksum(a): s for a, s in apps.items()},
        "services": services,
        "withdrawable_session": g.withdrawable_session,
    }
    lines = [
        f"gateway {doc['address']}: {doc['status']}",
        f"  stake   {format_amount(g.stake)}, url {g.url or '-'}",
        f"  apps delegating ({len(apps)}):",
        *(f"    {checksum(a)}  service {s or '-'}" for a, s in apps.items()),
        f"  services {', '.join(services) or '-'}",
        f"apps delegate to it with: relaynet app delegate {doc['address']}",
    ]
    action.show(doc, lines)


def add_to(app: typer.Typer) -> None:
    """Add the staking commands to the gateway command group."""
    for name, fn in (
        ("stake", stake),
        ("top-up", top_up),
        ("set-url", set_url),
        ("unstake", unstake),
        ("withdraw", withdraw),
        ("status", status),
    ):
        app.command(name)(fn)
