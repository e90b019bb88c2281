"""``relaynet devnet status``: sessions, relays, claims, proofs and rewards per relayer.

Reads each relayer's data folder (:func:`relayer.status.collect_status`) and the settlement
chain (head, session, token balances against the baseline taken when the devnet came up).
:func:`wait_for_settlement` polls until a claim has settled and a relayer's balance has grown,
redrawing one progress line meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from ledger.client import LedgerClient, SupplierState
from ledger.deploy import Deployment
from ledger.errors import LedgerError
from protocol.encoding import address_from_hex, address_to_checksum, address_to_hex
from relayer.status import collect_status
from relaynet.config import load_relayer
from relaynet.devnet.state import DevnetError, DevnetState, Layout
from relaynet.devnet.supervisor import is_alive
from session.windows import session_of

__all__ = ["DevnetStatus", "collect", "render", "wait_for_settlement"]


@dataclass(frozen=True)
class DevnetStatus:
    """Plain data: ``to_json()`` is what ``status --json`` prints."""

    head: int | None
    session: int | None
    relayers: list[dict[str, Any]]
    error: str | None = None

    @property
    def settled(self) -> int:
        return sum(int(r["claims_by_state"].get("settled", 0)) for r in self.relayers)

    @property
    def grown(self) -> int:
        return sum(1 for r in self.relayers if r.get("earned", 0) > 0)

    @property
    def relays(self) -> int:
        return sum(int(r["relays"]) for r in self.relayers)

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "session": self.session,
            "settled_claims": self.settled,
            "relayers_with_grown_balance": self.grown,
            "relays": self.relays,
            "relayers": self.relayers,
            "error": self.error,
        }


@dataclass(frozen=True)
class _ChainView:
    head: int
    session: int
    balances: dict[str, int]  # lowercase address -> token balance
    suppliers: dict[str, SupplierState]  # lowercase address -> every staked supplier


async def _chain(rpc_url: str, layout: Layout, addresses: list[str]) -> _ChainView:
    from relaynet.commands.staking_common import staked_suppliers

    deployment = Deployment.from_json(layout.deployment.read_text())
    client = LedgerClient(rpc_url, deployment)
    try:
        head = await client.block_number()
        suppliers = {address_to_hex(s.address): s for s in await staked_suppliers(client)}
        wanted = {a.lower() for a in addresses} | set(suppliers)
        balances = {a: await client.balance(address_from_hex(a)) for a in sorted(wanted)}
    finally:
        await client.close()
    session = session_of(head, deployment.shape.B0, deployment.shape.L)
    return _ChainView(head, session, balances, suppliers)


def _row(name: str, address: str) -> dict[str, Any]:
    return {
        "name": name,
        "address": address_to_checksum(address_from_hex(address)),
        "pid": None,
        "running": None,
        "sessions": 0,
        "relays": 0,
        "claims_by_state": {},
        "proofs": 0,
        "rewards": 0,
    }


def collect(state: DevnetState, layout: Layout) -> DevnetStatus:
    """One reading of every relayer's records and of the chain: the devnet's relayers, and
    every other supplier staked on its chain (staked later, from any shell)."""
    error: str | None = None
    view: _ChainView | None = None
    try:
        view = asyncio.run(
            _chain(state.settlement.rpc_url, layout, [r.address for r in state.relayers])
        )
    except (LedgerError, OSError, ValueError) as exc:
        error = f"settlement chain unreachable: {exc}"
    try:
        baseline = json.loads(layout.baseline.read_text()).get("balances", {})
    except (OSError, ValueError):
        baseline = {}
    baseline = {str(k).lower(): int(v) for k, v in baseline.items()}
    configs = layout.relayer_configs()
    rows: list[dict[str, Any]] = []
    for i, relayer in enumerate(state.relayers):
        row = _row(f"relayer{i + 1}", relayer.address)
        row["pid"] = relayer.pid
        row["running"] = is_alive(relayer.pid)
        if i < len(configs):
            report = collect_status(load_relayer(configs[i], check_files=False), with_chain=False)
            row["sessions"] = report["sessions_served"]
            row["relays"] = sum(report["relays_per_service"].values())
            row["relays_per_service"] = report["relays_per_service"]
            row["claims_by_state"] = report["claims_by_state"]
            row["proofs"] = sum(
                1
                for c in report["claims"]
                if c["proof_required"] and c["state"] in ("proved", "settled")
            )
            row["rewards"] = report["rewards"]
        rows.append(row)
    if view is not None:
        ours = {r.address.lower() for r in state.relayers}
        rows.extend(_row("supplier", a) for a in view.suppliers if a not in ours)
        for row in rows:
            key = row["address"].lower()
            supplier = view.suppliers.get(key)
            row["staked"] = supplier is not None and supplier.status.name == "STAKED"
            row["services"] = sorted(supplier.endpoints) if supplier is not None else []
            if key in view.balances:
                row["balance"] = view.balances[key]
                if row["pid"] is not None:
                    row["earned"] = view.balances[key] - baseline.get(key, 0)
    head = view.head if view is not None else None
    session = view.session if view is not None else None
    return DevnetStatus(head, session, rows, error)


def _rly(amount: int) -> str:
    value = Decimal(amount) / Decimal(10**18)
    return f"{value:.6f}"


def render(status: DevnetStatus) -> str:
    """The status as a table with a header, one row per staked supplier."""
    from relaynet.commands.tables import render_table

    title = (
        status.error
        if status.error
        else f"settlement head {status.head}, session {status.session}: every staked supplier"
    )
    rows = []
    for r in status.relayers:
        by_state = r["claims_by_state"]
        up = "-" if r["running"] is None else ("yes" if r["running"] else "no")
        rows.append(
            [
                r["name"],
                r["address"],
                up,
                "?" if "staked" not in r else ("yes" if r["staked"] else "no"),
                ",".join(r.get("services", [])) or "-",
                r["sessions"],
                r["relays"],
                f"{by_state.get('settled', 0)}/{sum(by_state.values())}",
                r["proofs"],
                _rly(r["rewards"]),
                _rly(r["earned"]) if "earned" in r else "-",
                ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "-",
            ]
        )
    return render_table(
        title,
        [
            "name",
            "address",
            "up",
            "staked",
            "services",
            "sessions",
            "relays",
            "settled/claims",
            "proofs",
            "rewards RLY",
            "balance +RLY",
            "claims by state",
        ],
        rows,
        right=("sessions", "relays", "settled/claims", "proofs", "rewards RLY", "balance +RLY"),
        caption=(
            f"total: {status.relays} relays, {status.settled} claims settled, "
            f"{status.grown} relayer balance(s) grew"
        ),
    )


_SPIN = "|/-\\"


def wait_for_settlement(
    state: DevnetState,
    layout: Layout,
    *,
    timeout: float,
    interval: float = 2.0,
    out: TextIO | None = None,
    done: Callable[[DevnetStatus], bool] | None = None,
) -> DevnetStatus:
    """Poll until ``done`` (default: a claim settled and a balance grew) or ``timeout``.

    Draws one progress line (redrawn in place on a terminal)."""
    stream = out or sys.stderr
    tty = stream.isatty()
    finished = done or (lambda s: s.settled > 0 and s.grown > 0)
    deadline = time.monotonic() + timeout
    tick = 0
    while True:
        status = collect(state, layout)
        if finished(status):
            if tty:
                stream.write("\r\033[K")
            return status
        if time.monotonic() >= deadline:
            if tty:
                stream.write("\n")
            raise DevnetError(
                f"no settled claim with a grown balance within {timeout:.0f}s "
                f"({status.relays} relays, {status.settled} claims settled) — "
                "see `relaynet devnet status`"
            )
        by_state: dict[str, int] = {}
        for r in status.relayers:
            for k, v in r["claims_by_state"].items():
                by_state[k] = by_state.get(k, 0) + int(v)
        claims = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "none yet"
        line = (
            f"{_SPIN[tick % len(_SPIN)]} head {status.head} session {status.session} | "
            f"relays {status.relays} | claims: {claims} | waiting for settlement "
            f"({deadline - time.monotonic():.0f}s left)"
        )
        stream.write(("\r\033[K" + line) if tty else line + "\n")
        stream.flush()
        tick += 1
        time.sleep(interval)
