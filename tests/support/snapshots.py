"""In-memory registry snapshots for tests that run the relayer or the claimer without a chain."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from session.memory import MemorySnapshot
from session.snapshot import EconomicParams, ServiceInfo, ServiceParams, SessionShape, SupplierInfo

__all__ = [
    "block_hash",
    "economic",
    "relayer_client",
    "relayer_config",
    "served_snapshot",
    "set_chain",
]


def economic(cu_price: int) -> EconomicParams:
    """Economic parameters with every claim proved (probability 100 %, no threshold)."""
    return EconomicParams(
        cu_price=cu_price,
        proof_probability_bps=10_000,
        proof_threshold=0,
        slash_multiplier_bps=10_000,
        settle_bounty_bps=1000,
        mint_shares=(9000, 500, 500),
        max_stream_relays=1000,
    )


def served_snapshot(
    shape: SessionShape,
    service: str,
    *,
    cu_price: int,
    supplier: bytes,
    receipt_key: bytes,
    stake: int = 10**20,
    endpoints: Mapping[str, str] | None = None,
) -> MemorySnapshot:
    """One service (1 CU a relay) with one staked supplier, from session 0 (its endpoint a
    placeholder unless ``endpoints`` is given)."""
    snap = MemorySnapshot(shape)
    snap.set_economic_params(0, economic(cu_price))
    snap.register_service(ServiceInfo(service, b"\x01" * 20))
    snap.set_service_params(service, 0, ServiceParams(1, 100, 0))
    where = {service: "http://x"} if endpoints is None else dict(endpoints)
    snap.stake_supplier(service, SupplierInfo(supplier, stake, receipt_key, where), 0)
    return snap


def block_hash(height: int) -> bytes:
    """A made-up block hash of ``height``."""
    return hashlib.sha256(height.to_bytes(8, "big")).digest()


def set_chain(snap: MemorySnapshot, hashes: range, head: int) -> MemorySnapshot:
    """Block hashes at ``hashes`` (:func:`block_hash`) and the head at ``head``."""
    for h in hashes:
        snap.set_block_hash(h, block_hash(h))
    snap.set_head(head)
    return snap


def relayer_config(data: Path, services: Mapping[str, Any], **tables: Any) -> Any:
    """A relayer config for an in-process relayer: no claims, a chain that is never called."""
    from relaynet.config import parse_relayer

    return parse_relayer(
        {
            "data_dir": str(data),
            "keys": {"supplier_keystore": "k", "receipt_key": "r"},
            "chain": {"rpc_url": "http://127.0.0.1:1", "deployment": "d.json"},
            "claims": {"enabled": False},
            **tables,
            "services": dict(services),
        },
        env={},
    )


async def relayer_client(cfg: Any, keys: Any, snap: MemorySnapshot, domain: Any) -> Any:
    """The relayer built in-process on ``snap`` (no backend probes) and a started test client
    on its web app: ``(relayer, client)``."""
    from aiohttp.test_utils import TestClient, TestServer

    from relayer.app import build_relayer

    relayer = build_relayer(cfg, keys, snapshot=snap, domain=domain, probe_backends=False)
    client = TestClient(TestServer(relayer.web_app()))
    await client.start_server()
    return relayer, client
