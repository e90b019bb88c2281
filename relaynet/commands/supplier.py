"""``relaynet supplier``: stake, top up, move an endpoint, unstake, withdraw and inspect a
supplier (node runners).

``stake`` registers the account's services with their relay endpoint URLs and the ed25519
receipt key (read from its key file; only the public key goes on chain). ``top-up`` adds stake
and ``set-endpoint`` moves one service's endpoint without unstaking. Shared options and the
action wrapper: :mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.keyfiles import read_receipt_key
from relaynet.commands import staking_common as common

if TYPE_CHECKING:
    from ledger.client import SupplierState

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


def _parse_service(text: str) -> tuple[str, str]:
    sid, sep, url = text.partition("=")
    if not sep or not sid.strip() or not url.strip():
        raise common.CliError(f"--service {text!r}: write it as SERVICE_ID=ENDPOINT_URL")
    return sid.strip(), url.strip()


@common.command(app, "stake", sends=True)
async def stake(
    action: common.Action,
    amount: common.AmountOpt,
    service: Annotated[
        list[str],
        typer.Option("--service", help="SERVICE_ID=ENDPOINT_URL (repeat for several)."),
    ],
    receipt_key: Annotated[
        Path, typer.Option("--receipt-key", help="The ed25519 receipt key file.")
    ],
) -> None:
    """Stake as a supplier of one or more services."""
    value = common.parse_amount(amount, "--amount")
    services = dict(_parse_service(s) for s in service)
    if len(services) != len(service):
        raise common.CliError("--service: a service is named twice — give each service once")
    receipt = read_receipt_key(receipt_key)
    key = action.account()
    async with action.client(signer=True) as client:
        current = await client.supplier()
        if current.status.name != "NONE":
            raise common.CliError(
                f"{common.checksum(key.address)} is already a supplier "
                f"({current.status.name.lower()})"
                " — add stake with `relaynet supplier top-up`, move an endpoint with "
                "`relaynet supplier set-endpoint`"
            )
        await common.check_minimum(client, "min_stake_supplier", value, f"--amount {amount}")
        await action.spend(
            client,
            "Stake",
            value,
            "as a supplier of:",
            lambda: client.stake_supplier(value, services, receipt.public_key),
            done="staked",
            details=(
                *(f"  {sid}  ->  {url}" for sid, url in services.items()),
                f"receipt key 0x{receipt.public_key.hex()}",
            ),
        )


@common.command(app, "set-endpoint", sends=True)
async def set_endpoint(
    action: common.Action,
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
            raise common.CliError(
                f"--service {sid}: {common.checksum(state.address)} does not serve {sid!r} "
                f"(its services: {staked})"
            )
        who = common.checksum(state.address)
        line = f"Move {sid} of supplier {who}: {state.endpoints[sid]} -> {url}"
        await action.send("endpoint set", [line], lambda: client.set_endpoint(sid, url))


def _describe(s: SupplierState, session: int) -> tuple[dict[str, Any], list[str]]:
    doc = {
        "locked": str(s.locked),
        "open_claims": s.open_claims,
        "receipt_key": "0x" + s.receipt_key.hex(),
        "endpoints": dict(s.endpoints),
    }
    lines = [
        f"  stake   {common.format_amount(s.stake)}, locked {common.format_amount(s.locked)}",
        f"  claims  {s.open_claims} open",
        f"  receipt key {doc['receipt_key']}",
        *(f"  service {sid}  ->  {url}" for sid, url in s.endpoints.items()),
    ]
    return common.describe_stake("supplier", s, session, doc, lines)


common.add_lifecycle(app, common.Role("supplier", "supplier", "endpoints", _describe))
