"""``relaynet app``: stake an application for one service, delegate to gateways, unstake,
withdraw and inspect it. Shared options and the action wrapper:
:mod:`relaynet.commands.staking_common`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from relaynet.commands import staking_common as common

if TYPE_CHECKING:
    from ledger.client import AppState

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)

GatewayArg = Annotated[
    str, typer.Argument(help="The gateway's address (`relaynet gateway status` shows it).")
]


@common.command(app, "stake", sends=True)
async def stake(
    action: common.Action,
    amount: common.AmountOpt,
    service: Annotated[str, typer.Option("--service", help="The service the app pays for.")],
) -> None:
    """Stake the account as an application of SERVICE (in force from the next session)."""
    purpose = f"as an application of {service}"
    await action.pay(
        amount,
        purpose,
        lambda client, value: client.stake_app(service, value),
        minimum="min_stake_app",
    )


def _delegation(name: str, verb: str, word: str, help_text: str) -> None:
    async def change(action: common.Action, gateway: GatewayArg) -> None:
        target = common.parse_address(gateway, "GATEWAY")
        me = common.checksum(action.account().address)
        async with action.client(signer=True) as client:
            line = f"{verb} app {me} {word} gateway {common.checksum(target)}"
            await action.send(f"{name}d", [line], lambda: getattr(client, name)(target))

    change.__doc__ = help_text
    common.command(app, name, sends=True)(change)


_delegation("delegate", "Delegate", "to", "Let GATEWAY sign relays for this app (next session on).")
_delegation(
    "undelegate", "Undelegate", "from", "Stop GATEWAY signing for this app (next session on)."
)


def _describe(a: AppState, session: int) -> tuple[dict[str, Any], list[str]]:
    doc = {
        "service": a.service_id,
        "open_claims": a.open_claims,
        "delegations": [common.checksum(g) for g in a.delegations],
    }
    lines = [
        f"  service {a.service_id or '-'}, stake {common.format_amount(a.stake)}",
        f"  claims  {a.open_claims} open",
        *(f"  delegates to {common.checksum(g)}" for g in a.delegations),
    ]
    return common.describe_stake("application", a, session, doc, lines)


common.add_lifecycle(app, common.Role("app", "app", "service_id", _describe))
