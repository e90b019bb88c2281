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

from ledger.client import LedgerClient
from ledger.deploy import Deployment
from ledger.errors import LedgerError
from protocol.encoding import address_from_hex
from relayer.config import load_config
from relayer.status import collect_status
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


async def _chain(
    rpc_url: str, layout: Layout, addresses: list[str]
) -> tuple[int, int, dict[str, int]]:
    deployment = Deployment.from_json(layout.deployment.read_text())
    client = LedgerClient(rpc_url, deployment)
    try:
        head = await client.block_number()
        balances = {a: await client.balance(address_from_hex(a)) for a in addresses}
    finally:
        await client.close()
    return head, session_of(head, deployment.shape.B0, deployment.shape.L), balances


def collect(state: DevnetState, layout: Layout) -> DevnetStatus:
    """One reading of every relayer's records and of the chain."""
    addresses = [r.address for r in state.relayers]
    error: str | None = None
    head: int | None = None
    session: int | None = None
    balances: dict[str, int] = {}
    try:
        head, session, balances = asyncio.run(_chain(state.settlement.rpc_url, layout, addresses))
    except (LedgerError, OSError, ValueError) as exc:
        error = f"settlement chain unreachable: {exc}"
    try:
        baseline = json.loads(layout.baseline.read_text()).get("balances", {})
    except (OSError, ValueError):
        baseline = {}
    configs = layout.relayer_configs()
    rows: list[dict[str, Any]] = []
    for i, relayer in enumerate(state.relayers):
        row: dict[str, Any] = {
            "name": f"relayer{i + 1}",
            "address": relayer.address,
            "pid": relayer.pid,
            "running": is_alive(relayer.pid),
            "sessions": 0,
            "relays": 0,
            "claims_by_state": {},
            "proofs": 0,
            "rewards": 0,
        }
        if i < len(configs):
            report = collect_status(load_config(configs[i]), with_chain=False)
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
        if relayer.address in balances:
            row["balance"] = balances[relayer.address]
            row["earned"] = balances[relayer.address] - int(baseline.get(relayer.address, 0))
        rows.append(row)
    return DevnetStatus(head, session, rows, error)


def _rly(amount: int) -> str:
    value = Decimal(amount) / Decimal(10**18)
    return f"{value:.6f}"


def render(status: DevnetStatus) -> str:
    lines: list[str] = []
    if status.error:
        lines.append(status.error)
    else:
        lines.append(f"settlement head {status.head}, session {status.session}")
    lines.append("")
    lines.append(
        f"{'relayer':<9} {'address':<13} {'up':<4} {'sessions':>8} {'relays':>7} "
        f"{'claims settled/all':>18} {'proofs':>6} {'rewards RLY':>12} {'balance +RLY':>13}  "
        "claims by state"
    )
    for r in status.relayers:
        by_state = r["claims_by_state"]
        states = ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) or "-"
        settled = f"{by_state.get('settled', 0)}/{sum(by_state.values())}"
        earned = _rly(r["earned"]) if "earned" in r else "?"
        lines.append(
            f"{r['name']:<9} {r['address'][:6] + '…' + r['address'][-4:]:<13} "
            f"{'yes' if r['running'] else 'no':<4} {r['sessions']:>8} {r['relays']:>7} "
            f"{settled:>18} {r['proofs']:>6} {_rly(r['rewards']):>12} {earned:>13}  {states}"
        )
    lines.append("")
    lines.append(
        f"total: {status.relays} relays, {status.settled} claims settled, "
        f"{status.grown} relayer balance(s) grew"
    )
    return "\n".join(lines)


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
                f"no settled claim with a grown balance within {timeout:.0f}s:\n{render(status)}"
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
