"""What ``relaynet relayer status`` shows: read from the data folder, and the chain when asked.

Sessions served (logs and claim records), relays per service, each claim with its state (and
why it was skipped or failed), rewards earned, gas spent, and the supplier's stake and token
balance.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from protocol.encoding import address_from_hex, address_to_checksum
from protocol.errors import RelaynetError
from relayer.claimer import ClaimStore
from relayer.config import RelayerConfig
from relayer.relaylog import SessionKey, iter_records
from relayer.units import rly

__all__ = ["CLAIM_COLUMNS", "claim_rows", "collect_status", "render_status"]


def _log_counts(cfg: RelayerConfig) -> dict[SessionKey, int]:
    root = cfg.data_dir / "logs"
    counts: dict[SessionKey, int] = {}
    for path in sorted(root.glob("*/*.log")):
        try:
            key = SessionKey.from_path(path)
            counts[key] = sum(1 for _ in iter_records(path))
        except (RelaynetError, OSError):
            continue
    return counts


def _checksum(address: str) -> str:
    try:
        return address_to_checksum(address_from_hex(address.lower()))
    except RelaynetError:
        return address


def _supplier_address(cfg: RelayerConfig) -> str | None:
    try:
        doc = json.loads(cfg.keys.supplier_keystore.read_text())
    except (OSError, ValueError):
        return None
    address = doc.get("address") if isinstance(doc, dict) else None
    if not address:
        return None
    try:
        return address_to_checksum(address_from_hex("0x" + str(address).lower().removeprefix("0x")))
    except RelaynetError:
        return None


async def _chain_figures(cfg: RelayerConfig, address: str) -> dict[str, Any]:
    from ledger.client import LedgerClient
    from ledger.deploy import Deployment

    deployment = Deployment.from_json(cfg.chain.deployment.read_text())
    client = LedgerClient(cfg.chain.rpc_url, deployment)
    try:
        who = bytes.fromhex(address[2:])
        supplier = await client.supplier(who)
        return {
            "head": await client.block_number(),
            "stake": supplier.stake,
            "locked": supplier.locked,
            "balance": await client.balance(who),
            "eth_balance": await client.eth_balance(who),
            "open_claims": supplier.open_claims,
        }
    finally:
        await client.close()


def collect_status(
    cfg: RelayerConfig,
    *,
    with_chain: bool = True,
    progress: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """Everything the status command prints, as plain data."""
    store = ClaimStore(cfg.data_dir / "claims")
    claims = store.all()
    logs = _log_counts(cfg)
    per_service: Counter[str] = Counter()
    sessions: set[tuple[str, str, int]] = set()
    for key, count in logs.items():
        per_service[key.service_id] += count
        sessions.add((key.service_id, "0x" + key.app.hex(), key.n))
    for c in claims:
        if (c.service_id, c.app, c.n) not in sessions:
            per_service[c.service_id] += c.relays
            sessions.add((c.service_id, c.app, c.n))
    states: Counter[str] = Counter(c.state.value for c in claims)
    report: dict[str, Any] = {
        "supplier": _supplier_address(cfg),
        "sessions_served": len(sessions),
        "open_logs": len(logs),
        "relays_per_service": dict(per_service),
        "claims_by_state": dict(states),
        "claims": [
            {
                "service": c.service_id,
                "app": _checksum(c.app),
                "session": c.n,
                "state": c.state.value,
                "relays": c.relays,
                "sum": c.sum,
                "claimed": c.claimed,
                "proof_required": c.required,
                "reward": c.reward,
                "gas_wei": c.gas_wei,
                "reason": c.reason,
            }
            for c in claims
        ],
        "rewards": sum(c.reward for c in claims),
        "gas_spent_wei": sum(c.gas_wei for c in claims),
    }
    if with_chain and report["supplier"]:
        if progress is not None:
            progress(f"reading stake and balance from {cfg.chain.rpc_url} …")
        try:
            report["chain"] = asyncio.run(_chain_figures(cfg, report["supplier"]))
        except (RelaynetError, OSError) as exc:
            report["chain"] = {"error": str(exc)}
    return report


def _eth(wei: int) -> str:
    return f"{int(wei) / 10**18:.6f} ETH"


def claim_rows(report: dict[str, Any], last: int | None = None) -> list[list[str]]:
    """The claims of the ``last`` sessions (all when None), newest first, as table rows under
    :data:`CLAIM_COLUMNS`."""
    claims = sorted(report["claims"], key=lambda c: (c["session"], c["service"]), reverse=True)
    if last is not None:
        newest = sorted({c["session"] for c in claims}, reverse=True)[:last]
        claims = [c for c in claims if c["session"] in newest]
    return [
        [
            c["service"],
            str(c["session"]),
            c["app"],
            c["state"],
            str(c["relays"]),
            rly(c["claimed"]),
            rly(c["reward"]),
            c["reason"] or "",
        ]
        for c in claims
    ]


CLAIM_COLUMNS = ("service", "session", "app", "state", "relays", "claimed", "reward", "note")


def render_status(report: dict[str, Any]) -> str:
    """The summary lines (the claims table is :func:`claim_rows`)."""
    lines = [
        f"supplier        {report['supplier']}",
        f"sessions served {report['sessions_served']} ({report['open_logs']} with a log on disk)",
        "relays          "
        + (", ".join(f"{s}: {n}" for s, n in sorted(report["relays_per_service"].items())) or "-"),
        "claims          "
        + (", ".join(f"{s}: {n}" for s, n in sorted(report["claims_by_state"].items())) or "-"),
        f"rewards         {rly(report['rewards'])}",
        f"gas spent       {_eth(report['gas_spent_wei'])}",
    ]
    chain = report.get("chain")
    if chain:
        if "error" in chain:
            lines.append(f"chain           unreachable: {chain['error']}")
        else:
            lines.append(
                f"stake           {rly(chain['stake'])} (locked {rly(chain['locked'])}, "
                f"open claims {chain['open_claims']})"
            )
            lines.append(
                f"balance         {rly(chain['balance'])}, {_eth(chain['eth_balance'])} for gas"
            )
    return "\n".join(lines)
