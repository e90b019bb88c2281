"""``relaynet supplier``: stake, top up, move an endpoint, unstake, withdraw and inspect a
supplier (node runners).

``stake`` registers the account's services with their relay endpoint URLs and the ed25519
receipt key (read from its key file; only the public key goes on chain). ``top-up`` adds stake
and ``set-endpoint`` moves one service's endpoint without unstaking. ``add-service`` and
``remove-service`` change what a staked supplier serves from the next session;
``rotate-receipt-key`` writes a new receipt key into the relayer's key file (0600, earlier keys
kept for their sessions) and sets it on chain from the next session — the running relayer
re-reads the file and signs each session with the key valid at it. Shared options and the
action wrapper: :mod:`relaynet.commands.staking_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.keyfiles import read_receipt_key, read_receipt_keys, rotate_receipt_key_file
from relaynet.commands import staking_common as common
from session.windows import session_of

if TYPE_CHECKING:
    from ledger.client import LedgerClient, SupplierState

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


def _serves(state: SupplierState, sid: str) -> None:
    """Refuse a service the supplier does not serve, naming the ones it does."""
    if sid not in state.endpoints:
        staked = ", ".join(state.endpoints) or "none"
        raise common.CliError(
            f"--service {sid}: {common.checksum(state.address)} does not serve {sid!r} "
            f"(its services: {staked})"
        )


OneServiceOpt = Annotated[
    str, typer.Option("--service", help="SERVICE_ID=ENDPOINT_URL (one service).")
]


@common.command(app, "set-endpoint", sends=True)
async def set_endpoint(action: common.Action, service: OneServiceOpt) -> None:
    """Move one service's relay endpoint without unstaking (gateways pick it up next session)."""
    sid, url = _parse_service(service)
    async with action.client(signer=True) as client:
        state = await client.supplier()
        _serves(state, sid)
        who = common.checksum(state.address)
        line = f"Move {sid} of supplier {who}: {state.endpoints[sid]} -> {url}"
        await action.send("endpoint set", [line], lambda: client.set_endpoint(sid, url))


async def _staked(client: LedgerClient) -> SupplierState:
    state = await client.supplier()
    if state.status.name != "STAKED":
        raise common.CliError(
            f"{common.checksum(state.address)} is not a staked supplier "
            f"({state.status.name.lower()}) — stake first with `relaynet supplier stake`"
        )
    return state


async def _from_next_session(client: LedgerClient, block: int | None = None) -> str:
    """``session N (block B)``: when a change made now (or mined in ``block``) takes effect —
    the session after the one it was made in."""
    shape = await client.shape()
    if block is None:
        n = await client.current_session() + 1
    else:
        n = session_of(block, shape.B0, shape.L) + 1
    return f"session {n} (block {shape.B0 + n * shape.L})"


@common.command(app, "add-service", sends=True)
async def add_service(action: common.Action, service: OneServiceOpt) -> None:
    """Serve one more service, from the next session, without unstaking."""
    sid, url = _parse_service(service)
    async with action.client(signer=True) as client:
        state = await _staked(client)
        if sid in state.endpoints:
            raise common.CliError(
                f"--service {sid}: {common.checksum(state.address)} already serves {sid!r} — "
                "move its endpoint with `relaynet supplier set-endpoint`"
            )
        if await client.service(sid) is None:
            raise common.CliError(
                f"--service {sid}: no service {sid!r} is registered on chain — see "
                "`relaynet chain list`"
            )
        when = await _from_next_session(client)
        line = f"Serve {sid} at {url} as supplier {common.checksum(state.address)} from {when}"
        tx = await action.send("service added", [line], lambda: client.add_service(sid, url))
        when = await _from_next_session(client, tx.block_number)
        typer.echo(f"gateways send {sid} relays to {url} from {when}")


@common.command(app, "remove-service", sends=True)
async def remove_service(
    action: common.Action,
    service: Annotated[str, typer.Option("--service", help="SERVICE_ID to stop serving.")],
) -> None:
    """Stop serving one service from the next session (the stake stays)."""
    sid = service.strip()
    async with action.client(signer=True) as client:
        state = await _staked(client)
        _serves(state, sid)
        if len(state.endpoints) == 1:
            raise common.CliError(
                f"--service {sid}: it is the supplier's last service — unstake instead "
                "(`relaynet supplier unstake`)"
            )
        when = await _from_next_session(client)
        line = f"Stop serving {sid} as supplier {common.checksum(state.address)} from {when}"
        tx = await action.send("service removed", [line], lambda: client.remove_service(sid))
        when = await _from_next_session(client, tx.block_number)
        typer.echo(
            f"no new {sid} sessions from {when}; keep the relayer serving {sid} until the "
            "sessions already drawn are over"
        )


@common.command(app, "rotate-receipt-key", sends=True)
async def rotate_receipt_key(
    action: common.Action,
    receipt_key: Annotated[
        Path,
        typer.Option(
            "--receipt-key",
            help="The relayer's receipt key file (keys/receipt-key.json): the new key is "
            "written into it, earlier keys kept.",
        ),
    ],
) -> None:
    """A new ed25519 receipt key, in force from the next session."""
    held = read_receipt_keys(receipt_key)
    async with action.client(signer=True) as client:
        state = await _staked(client)
        if state.receipt_key not in {k.public_key for k in held}:
            raise common.CliError(
                f"--receipt-key {receipt_key}: the receipt key on chain "
                f"0x{state.receipt_key.hex()} is not in this file — pass the relayer's receipt "
                "key file"
            )
        when = await _from_next_session(client)
        line = (
            f"Rotate the receipt key of supplier {common.checksum(state.address)} "
            f"(now 0x{state.receipt_key.hex()}) from {when}; the new key goes into {receipt_key}"
        )
        action.confirm([line])
        _old, new = rotate_receipt_key_file(receipt_key)  # before the chain: never lost
        action.yes = True
        tx = await action.send(
            "receipt key set", [], lambda: client.rotate_receipt_key(new.public_key)
        )
        when = await _from_next_session(client, tx.block_number)
        typer.echo(
            f"new receipt key 0x{new.public_key.hex()} signs from {when}; earlier sessions "
            f"keep the old key (both are in {receipt_key}, mode 0600). A running relayer "
            "re-reads the file by itself: no restart."
        )


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
