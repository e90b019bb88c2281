"""MemorySnapshot as a RegistrySnapshot, and hydrate over it (vectors and endpoints)."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import pytest

from session import (
    HistoryError,
    InvalidSessionInput,
    MemorySnapshot,
    MissingHistory,
    RegistrySnapshot,
    ServiceInfo,
    ServiceParams,
    SessionShape,
    SnapshotNotReady,
    SupplierInfo,
    UnknownService,
    hydrate,
    session_seed,
    windows,
)
from tests.support.snapshots import economic

SHAPE = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
OWNER = b"\x0f" * 20


def addr(i: int) -> bytes:
    return bytes([i]) * 20


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def block_hash(height: int) -> bytes:
    return height.to_bytes(32, "big")


def supplier_info(i: int, services: tuple[str, ...] = ("eth",)) -> SupplierInfo:
    return SupplierInfo(
        address=addr(i),
        stake=1000 + i,
        receipt_key=bytes([i]) * 32,
        endpoints={s: f"http://127.0.0.1:{9000 + i}/{s}" for s in services},
    )


def snapshot_is_registry(snapshot: RegistrySnapshot) -> RegistrySnapshot:
    return snapshot  # mypy checks that MemorySnapshot is accepted as a RegistrySnapshot


def test_memory_snapshot_is_a_registry_snapshot() -> None:
    snapshot = MemorySnapshot()
    assert isinstance(snapshot, RegistrySnapshot)
    assert snapshot_is_registry(snapshot) is snapshot
    with pytest.raises(SnapshotNotReady):
        snapshot.shape()
    snapshot.set_shape(SHAPE)
    assert snapshot.shape() == SHAPE


def test_histories_read_latest_record_at_or_before_n() -> None:
    snap = MemorySnapshot(SHAPE)
    app, gw1, gw2 = addr(0x40), addr(0x50), addr(0x51)
    with pytest.raises(MissingHistory):
        snap.economic_params(0)
    snap.set_economic_params(1, economic(5))
    snap.set_economic_params(4, economic(7))
    snap.set_economic_params(4, economic(8))  # same session: overwritten
    assert [snap.economic_params(n).cu_price for n in (1, 3, 4, 50)] == [5, 5, 8, 8]
    with pytest.raises(HistoryError):
        snap.set_economic_params(3, economic(1))

    with pytest.raises(KeyError):  # documented by RegistrySnapshot
        snap.service_params("eth", 1)
    snap.register_service(ServiceInfo(service_id="eth", owner=OWNER, name="Ethereum"))
    snap.set_service_params("eth", 2, ServiceParams(1, 100, 0))
    snap.set_service_params("eth", 6, ServiceParams(2, 100, 4))
    with pytest.raises(MissingHistory):
        snap.service_params("eth", 1)
    assert snap.service_params("eth", 5).cu_per_relay == 1
    assert snap.service_params("eth", 6).difficulty_bits == 4
    assert snap.service("eth") is not None and snap.service("btc") is None

    assert snap.app_stake(app, 3) == 0 and snap.app_service(app) is None
    snap.set_app(app, "eth")
    snap.set_app_stake(app, 3, 500)
    snap.set_app_stake(app, 9, 200)
    assert [snap.app_stake(app, n) for n in (2, 3, 8, 9, 99)] == [0, 500, 500, 200, 200]
    assert snap.app_service(app) == "eth"
    snap.set_app(app, None)
    assert snap.app_service(app) is None

    snap.set_gateway_stake(gw1, 1, True, 1)
    snap.set_gateway_stake(gw2, 1, True, 1)
    snap.set_delegation(app, gw1, 3, True, 1)
    snap.set_delegation(app, gw2, 4, True, 1)
    snap.set_delegation(app, gw1, 6, False)
    assert [snap.delegated(app, gw1, n) for n in (2, 3, 5, 6)] == [False, True, True, False]
    assert snap.delegations(app, 5) == [gw1, gw2]
    assert [snap.signer_ok(app, gw1, n) for n in (2, 3, 5, 6)] == [False, True, True, False]
    assert snap.delegations(app, 6) == [gw2]
    assert not snap.delegated(app, addr(0x52), 5)

    snap.set_head(1234)
    assert snap.head() == 1234
    snap.set_block_hash(99, block_hash(99))
    snap.set_block_hash(129, block_hash(129))
    snap.prune_block_hashes(100)
    assert snap.block_hash(99) is None and snap.block_hash(129) == block_hash(129)
    with pytest.raises(InvalidSessionInput):
        snap.set_block_hash(1, b"\x00" * 31)
    with pytest.raises(InvalidSessionInput):
        snap.set_app_stake(b"\x00" * 19, 1, 5)


def test_sessions_vectors_through_memory_snapshot(kat: dict[str, Any]) -> None:
    for case in kat["sessions"]:
        n, service_id = case["n"], case["service_id"]
        shape = SessionShape(B0=0, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=case["S"])
        snap = MemorySnapshot(shape)
        snap.register_service(ServiceInfo(service_id=service_id, owner=OWNER))
        for record in case["lengths"]:
            snap.set_length(service_id, record["length"], record["from_session"])
        for p, records in enumerate(case["positions"]):
            for record in records:
                snap.set_position(service_id, p, h2b(record["supplier"]), record["from_session"])
        snap.set_block_hash(windows(shape, n).h_n_block, h2b(case["block_hash"]))
        got = hydrate(snap, service_id, h2b(case["app"]), n)
        if case["C"] == 0:
            assert got is None
            continue
        assert got is not None
        assert "0x" + got.seed.hex() == case["seed"] == "0x" + got.session_id.hex()
        assert ["0x" + s.hex() for s in got.slots] == case["slots"]
        assert ["0x" + s.address.hex() for s in got.suppliers] == case["suppliers"]
        for entry in got.suppliers:
            assert entry.endpoint is None and entry.receipt_key is None  # not in the registry
            assert entry.slots == tuple(j for j, s in enumerate(got.slots) if s == entry.address)


def test_hydrate_with_endpoints_and_history() -> None:
    snap = MemorySnapshot(SHAPE)
    snap.register_service(ServiceInfo(service_id="eth", owner=OWNER))
    snap.register_service(ServiceInfo(service_id="base", owner=OWNER))
    app = addr(0x40)
    # Session 1 current: three suppliers stake for eth (effective from session 2).
    for i in (1, 2, 3):
        snap.stake_supplier("eth", supplier_info(i, ("eth", "base")), current_session=1)
    snap.stake_supplier("base", supplier_info(4, ("base",)), current_session=1)
    # Session 4 current: supplier 1 leaves eth; supplier 3 takes its position from session 5.
    assert snap.unstake_supplier("eth", addr(1), current_session=4) == 0
    for n in range(0, 8):
        snap.set_block_hash(windows(SHAPE, n).h_n_block, block_hash(windows(SHAPE, n).h_n_block))

    assert hydrate(snap, "eth", app, 1) is None  # C = 0
    assert snap.length("eth", 1) == 0 and snap.length("eth", 2) == 3 and snap.length("eth", 5) == 2
    assert snap.length("unknown", 3) == 0
    with pytest.raises(UnknownService) as unknown:
        hydrate(snap, "btc", app, 3)
    assert unknown.value.code.value == "UNKNOWN_SERVICE"
    with pytest.raises(UnknownService):
        snap.occupant("btc", 0, 3)

    s3 = hydrate(snap, "eth", app, 3)
    assert s3 is not None
    w3 = windows(SHAPE, 3)
    assert s3.windows == w3 and s3.n == 3 and s3.app == app and s3.service_id == "eth"
    assert s3.seed == session_seed(block_hash(w3.h_n_block), "eth", app, 3)
    assert len(s3.slots) == SHAPE.S
    assert set(s3.slots) <= {addr(1), addr(2), addr(3)}
    for entry in s3.suppliers:
        i = entry.address[0]
        assert entry.endpoint == f"http://127.0.0.1:{9000 + i}/eth"
        assert entry.receipt_key == bytes([i]) * 32
        assert entry.slots and all(s3.slots[j] == entry.address for j in entry.slots)
        assert s3.supplier(entry.address) is entry
        assert s3.slot_indexes(entry.address) == entry.slots
    assert sorted(j for e in s3.suppliers for j in e.slots) == list(range(SHAPE.S))
    assert s3.supplier(addr(4)) is None and s3.slot_indexes(addr(4)) == ()

    s5 = hydrate(snap, "eth", app, 5)
    assert s5 is not None
    assert set(s5.slots) <= {addr(2), addr(3)}
    # Supplier 1 withdrew entirely: a past session still hydrates, without its endpoint.
    snap.remove_supplier(addr(1))
    again = hydrate(snap, "eth", app, 3)
    assert again is not None and again.slots == s3.slots
    for entry in again.suppliers:
        assert (entry.endpoint is None) == (entry.address == addr(1))

    b = hydrate(snap, "base", app, 2)
    assert b is not None
    assert [e.endpoint for e in b.suppliers] == ["http://127.0.0.1:9004/base"]

    # H_n not known yet: no session.
    later = windows(SHAPE, 8)
    assert snap.block_hash(later.h_n_block) is None
    assert hydrate(snap, "eth", app, 8) is None
    with pytest.raises(InvalidSessionInput):
        hydrate(snap, "eth", addr(1)[:19], 3)


def test_doctests() -> None:
    # session.slots / session.windows name the re-exported functions, so import by name.
    for name in ("history", "positions", "slots", "windows"):
        module = importlib.import_module(f"session.{name}")
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, name
