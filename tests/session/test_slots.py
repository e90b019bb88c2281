"""Seed, C, slots and suppliers (DESIGN §3.2) against the ``sessions`` vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session import (
    InvalidSessionInput,
    PositionHistory,
    distinct_suppliers,
    service_id_bytes,
    session_seed,
    slot_positions,
    slots,
)


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def b2h(raw: bytes) -> str:
    return "0x" + raw.hex()


def occupant_in(history: PositionHistory, n: int) -> Callable[[int], bytes]:
    return lambda p: history.occupant(p, n)


def test_sessions_vectors(kat: dict[str, Any]) -> None:
    cases = kat["sessions"]
    assert cases
    assert any(case["C"] == 0 for case in cases)
    for case in cases:
        n = case["n"]
        history = PositionHistory.from_records(case["lengths"], case["positions"])
        seed = session_seed(h2b(case["block_hash"]), case["service_id"], h2b(case["app"]), n)
        assert b2h(seed) == case["seed"]
        count = history.length(n)
        assert count == case["C"]
        picked = slots(seed, case["S"], count, occupant_in(history, n))
        assert [b2h(s) for s in picked] == case["slots"]
        assert [b2h(s) for s in distinct_suppliers(picked)] == case["suppliers"]


def test_seed_layout() -> None:
    h_n, app = bytes(range(32)), bytes(range(100, 120))
    expected = hashlib.sha256(
        h_n + b"op-mainnet" + b"\x00" * 22 + app + (2**40 + 5).to_bytes(8, "big")
    ).digest()
    assert session_seed(h_n, "op-mainnet", app, 2**40 + 5) == expected


def test_slot_layout() -> None:
    seed = bytes(range(32))
    positions = slot_positions(seed, 5, 7)
    for j, p in enumerate(positions):
        digest = hashlib.sha256(seed + j.to_bytes(2, "big")).digest()
        assert p == int.from_bytes(digest, "big") % 7
    assert slot_positions(seed, 5, 0) == []
    assert slots(seed, 5, 0, lambda p: pytest.fail("no occupant is read when C = 0")) == []


@given(
    seed=st.binary(min_size=32, max_size=32),
    S=st.integers(1, 64),
    C=st.integers(1, 40),
)
def test_slots_draw_existing_positions(seed: bytes, S: int, C: int) -> None:
    suppliers = [bytes([i]) * 20 for i in range(C)]
    picked = slots(seed, S, C, suppliers.__getitem__)
    assert len(picked) == S
    distinct = distinct_suppliers(picked)
    assert len(set(distinct)) == len(distinct)
    assert set(distinct) == set(picked)
    assert sorted(distinct, key=picked.index) == distinct


@pytest.mark.parametrize(
    "service_id", ["", "ETH", "eth.main", "a" * 33, "é", "eth mainnet", "eth\x00"]
)
def test_invalid_service_ids(service_id: str) -> None:
    with pytest.raises(InvalidSessionInput):
        service_id_bytes(service_id)


def test_valid_service_ids() -> None:
    assert service_id_bytes("a") == b"a" + b"\x00" * 31
    assert service_id_bytes("z" * 32) == b"z" * 32
    assert service_id_bytes("eth_main-2") == b"eth_main-2" + b"\x00" * 22


def test_invalid_seed_and_slot_inputs() -> None:
    for call in (
        lambda: session_seed(b"\x00" * 31, "eth", b"\x00" * 20, 1),
        lambda: session_seed(b"\x00" * 32, "eth", b"\x00" * 21, 1),
        lambda: session_seed(b"\x00" * 32, "eth", b"\x00" * 20, -1),
        lambda: session_seed(b"\x00" * 32, "eth", b"\x00" * 20, 2**64),
        lambda: slot_positions(b"\x00" * 32, 0, 3),
        lambda: slot_positions(b"\x00" * 32, 2**16 + 1, 3),
        lambda: slot_positions(b"\x00" * 31, 3, 3),
        lambda: slot_positions(b"\x00" * 32, 3, -1),
    ):
        with pytest.raises(InvalidSessionInput):
            call()
