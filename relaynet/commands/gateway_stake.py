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

from protocol.errors import RelaynetError
from relaynet.commands import staking_common as common
from relaynet.commands.problems import explain

if TYPE_CHECKING:
    from ledger.client import LedgerClient

__all__ = ["add_to", "delegators", "set_url", "stake", "status"]


@common.command(None, "stake", sends=True)
async def stake(
    action: common.Action,
    url: Annotated[str, typer.Option("--url", help="The gateway's public URL.")],
    amount: common.AmountOpt,
) -> None:
    """Stake the account as a gateway (apps may then delegate to it)."""
    await action.pay(
        amount,
        f"as a gateway at {url}",
        lambda client, value: client.stake_gateway(value, url),
        minimum="min_stake_gateway",
    )


@common.command(None, "set-url", sends=True)
async def set_url(
    action: common.Action,
    url: Annotated[str, typer.Option("--url", help="The gateway's new public URL.")],
) -> None:
    """Change the gateway's public URL on chain."""
    async with action.client(signer=True) as client:
        state = await client.gateway()
        line = f"Move gateway {common.checksum(state.address)}: {state.url or '-'} -> {url}"
        await action.send("url set", [line], lambda: client.set_gateway_url(url))


async def delegators(client: LedgerClient, gateway: bytes) -> dict[bytes, str | None]:
    """Apps delegating to ``gateway`` now (app address -> its service), from the chain's
    ``Delegated`` events checked against each app's current delegation list."""
    events = await common.event_args(client, "Apps", "Delegated", None, gateway)
    seen = {bytes(e["app"]) for e in events}
    out: dict[bytes, str | None] = {}
    for app in sorted(seen):
        state = await client.app(app)
        if gateway in state.delegations:
            out[app] = state.service_id
    return out


def _gateway_from_config(path: Path) -> tuple[bytes, str, Path]:
    """The address, settlement RPC URL and deployment file a gateway config names."""
    from protocol.keys import AccountKey
    from relaynet.config import load_gateway

    try:
        cfg = load_gateway(path)
        key = AccountKey(cfg.gateway.key_bytes())
    except (OSError, ValueError, RelaynetError) as exc:
        raise common.CliError(explain(path, exc)) from None
    return key.address, cfg.settlement.rpc_url, cfg.settlement.deployment


@common.command(None, "status", key=True, prints_json=True)
async def status(
    action: common.Action,
    address: common.AddressOpt = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A gateway config: its key, chain and deployment."),
    ] = None,
) -> None:
    """Address (for `relaynet app delegate`), stake, URL, delegating apps and their services."""
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
        "address": common.checksum(who),
        "status": g.status.name.lower(),
        "stake": str(g.stake),
        "url": g.url,
        "delegations": {common.checksum(a): s for a, s in apps.items()},
        "services": services,
        "withdrawable_session": g.withdrawable_session,
    }
    lines = [
        f"gateway {doc['address']}: {doc['status']}",
        f"  stake   {common.format_amount(g.stake)}, url {g.url or '-'}",
        f"  apps delegating ({len(apps)}):",
        *(f"    {common.checksum(a)}  service {s or '-'}" for a, s in apps.items()),
        f"  services {', '.join(services) or '-'}",
        f"apps delegate to it with: relaynet app delegate {doc['address']}",
    ]
    action.show(doc, lines)


def add_to(app: typer.Typer) -> None:
    """Add the staking commands to the gateway command group."""
    for name, fn in (("stake", stake), ("set-url", set_url), ("status", status)):
        app.command(name)(fn)
    common.add_lifecycle(app, common.Role("gateway", "gateway"))
