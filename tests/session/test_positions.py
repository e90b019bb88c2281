"""Position histories (DESIGN §3.2) against the ``histories`` vectors, plus properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session import History, HistoryError, InvalidSessionInput, PositionHistory


def addr(i: int) -> bytes:
    return bytes([0xA0 + i]) * 20


def run_ops(ops: list[dict[str, Any]]) -> PositionHistory:
    history = PositionHistory()
    for op in ops:
        supplier = bytes.fromhex(op["supplier"][2:])
        if op["op"] == "stake":
            history.stake(supplier, op["session"])
        else:
            assert op["op"] == "unstake"
            history.unstake(supplier, op["session"])
    return history


def test_histories_vectors(kat: dict[str, Any]) -> None:
    cases = kat["histories"]
    assert cases
    for case in cases:
        history = run_ops(case["ops"])
        assert history.lengths() == case["lengths"], case
        assert history.positions() == case["positions"], case
        # The follower's path: replaying the records gives the same history.
        replayed = PositionHistory.from_records(case["lengths"], case["positions"])
        assert replayed.lengths() == case["lengths"]
        assert replayed.positions() == case["positions"]
        last = max(op["session"] for op in case["ops"]) + 2
        for n in range(last + 1):
            assert replayed.occupants(n) == history.occupants(n)


def test_stake_unstake_rules() -> None:
    a, b, c, d = addr(0), addr(1), addr(2), addr(3)
    h = PositionHistory()
    assert [h.stake(a, 1), h.stake(b, 1), h.stake(c, 1)] == [0, 1, 2]
    assert h.length(1) == 0 and h.length(2) == 3
    # Leaver not last: the last supplier moves into its position.
    assert h.unstake(a, 2) == 0
    assert h.occupants(2) == [a, b, c] and h.occupants(3) == [c, b]
    # Leaver last: only the length changes.
    assert h.unstake(b, 4) == 1
    assert h.occupants(5) == [c] and h.positions()[1] == [
        {"from_session": 2, "supplier": "0x" + b.hex()}
    ]
    # Several changes in one session see the pending list and overwrite the same record.
    h.stake(d, 6)
    h.unstake(c, 6)
    assert h.occupants(7) == [d]
    assert h.lengths()[-1] == {"from_session": 7, "length": 1}
    assert h.positions()[0][-1] == {"from_session": 7, "supplier": "0x" + d.hex()}
    # History stays readable.
    assert h.occupants(2) == [a, b, c] and h.occupants(5) == [c] and h.occupants(100) == [d]
    assert h.pending() == [d] and h.position_of(d) == 0 and h.position_of(a) is None


def test_invalid_operations() -> None:
    a, b = addr(0), addr(1)
    h = PositionHistory()
    h.stake(a, 5)
    with pytest.raises(HistoryError):
        h.stake(a, 5)  # already holds a position (pending)
    with pytest.raises(HistoryError):
        h.unstake(b, 5)  # holds none
    with pytest.raises(HistoryError):
        h.stake(b, 3)  # earlier than an existing record
    with pytest.raises(HistoryError):
        h.occupant(0, 5)  # length(5) == 0
    with pytest.raises(HistoryError):
        h.occupant(1, 6)
    with pytest.raises(HistoryError):
        h.set_length(-1, 7)
    with pytest.raises(InvalidSessionInput):
        h.stake(b"\x01" * 19, 6)
    with pytest.raises(InvalidSessionInput):
        PositionHistory.from_records([], [[{"from_session": 1, "supplier": "0xzz"}]])
    assert h.occupant(0, 6) == a
    err = HistoryError("x")
    assert err.code.value == "MALFORMED_INPUT"


def test_history_overwrite_and_order() -> None:
    h: History[int] = History()
    assert h.at(10) is None and h.latest() is None and len(h) == 0
    h.set(3, 1)
    h.set(3, 2)
    h.set(7, 3)
    assert h.records() == [(3, 2), (7, 3)]
    assert [h.at(n) for n in (2, 3, 6, 7, 8)] == [None, 2, 2, 3, 3]
    with pytest.raises(HistoryError):
        h.set(5, 9)


# -- properties -------------------------------------------------------------------------------

SUPPLIERS = [addr(i) for i in range(8)]

op_lists = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, len(SUPPLIERS) - 1)),  # (session step, supplier)
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=op_lists)
def test_positions_hold_distinct_staked_suppliers_and_history_is_stable(
    ops: list[tuple[int, int]],
) -> None:
    """Against a plain list model: stake appends, unstake swaps the last in and pops."""
    history = PositionHistory()
    model: list[bytes] = []  # the pending list
    effective: dict[int, list[bytes]] = {}  # session -> list in force (fixed once it is current)
    frozen: dict[int, list[bytes]] = {}  # reads taken when the session was current
    session = 0
    for step, who in ops:
        if step:
            # Sessions session+1 .. session+step become current: their lists are now fixed.
            for m in range(session + 1, session + step + 1):
                effective[m] = list(model)
            session += step
        for m in range(session + 1):
            if m not in frozen:
                frozen[m] = history.occupants(m)
        supplier = SUPPLIERS[who]
        if supplier in model:
            p = model.index(supplier)
            assert history.unstake(supplier, session) == p
            model[p] = model[-1]
            model.pop()
        else:
            assert history.stake(supplier, session) == len(model)
            model.append(supplier)
    effective[session + 1] = list(model)
    for n in range(session + 3):
        occupants = history.occupants(n)
        assert len(set(occupants)) == len(occupants) == history.length(n)
        assert occupants == effective.get(n, model if n > session else []), n
        if n in frozen:
            assert occupants == frozen[n]
    # Every record replays to the same history.
    replayed = PositionHistory.from_records(history.lengths(), history.positions())
    assert replayed.lengths() == history.lengths()
    assert replayed.positions() == history.positions()
