"""Settlement arithmetic (DESIGN §3.5) and parameter rules (§3.1): known answers and properties."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError
from protocol.settlement import (
    Payout,
    Slash,
    budget,
    challenge,
    claim_tokens,
    claimed_amount,
    pending_sessions,
    proof_economics_ok,
    proof_required,
    settle_valid,
    settle_void,
    validate_mint_shares,
    validate_slots,
    validate_windows,
)
from relaynet.vectors import claim_out


def h(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def test_kat_claims(kat: dict[str, Any]) -> None:
    valid = [case for case in kat["claims"] if case.get("valid", True)]
    invalid = [case for case in kat["claims"] if not case.get("valid", True)]
    assert valid and invalid
    for case in valid:
        root = h(case["root"])
        assert int.from_bytes(root[32:40], "big") == case["sum"]
        assert int.from_bytes(root[40:48], "big") == case["count"]
        assert claim_out(case) == case["out"]
    for case in invalid:
        with pytest.raises(ProtocolError) as info:
            claim_out(case)
        assert info.value.code is ErrorCode.MALFORMED_INPUT


def test_kat_claims_cover_both_outcomes(kat: dict[str, Any]) -> None:
    """The vectors exercise the budget cap, the stake caps and both proof decisions."""
    valid = [case for case in kat["claims"] if case.get("valid", True)]
    outs = [case["out"] for case in valid]
    assert any(out["budget"] < out["tokens"] for out in outs)
    assert any(out["paid"] < out["claimed"] for out in outs)
    assert {out["required"] for out in outs} == {True, False}


# -- worked values ---------------------------------------------------------------------------


def test_pending_sessions() -> None:
    assert pending_sessions(10, 2, 1, 5, 0, 5) == 3  # devnet: ceil(13/10) + 1
    assert pending_sessions(60, 5, 2, 20, 1, 20) == 2  # defaults: ceil(48/60) + 1
    assert pending_sessions(12, 2, 1, 5, 0, 4) == 2  # exactly one session of windows
    assert pending_sessions(5, 0, 0, 1, 0, 1) == 2
    with pytest.raises(ProtocolError):
        pending_sessions(0, 2, 1, 5, 0, 5)


def test_budget_and_tokens() -> None:
    assert budget(2, 6_000, 6, 3) == 666
    assert budget(0, 6_000, 6, 3) == 0
    assert claim_tokens(10, 3, 0) == 30
    assert claim_tokens(10, 3, 4) == 480
    assert claimed_amount(480, 666) == 480
    assert claimed_amount(700, 666) == 666
    with pytest.raises(ProtocolError):
        budget(7, 6_000, 6, 3)
    with pytest.raises(ProtocolError):
        claim_tokens(10, 3, 65)
    with pytest.raises(ProtocolError):
        claim_tokens(-1, 3, 0)


def test_proof_required() -> None:
    root, h_c = b"\x01" * 48, b"\x02" * 32
    draw = int.from_bytes(hashlib.sha256(root + h_c).digest(), "big") % 10_000
    assert proof_required(5, 5, root, h_c, 0)  # at the threshold
    assert not proof_required(4, 5, root, h_c, 0)
    assert proof_required(4, 5, root, h_c, 10_000)
    assert proof_required(4, 5, root, h_c, draw + 1)
    assert not proof_required(4, 5, root, h_c, draw)
    with pytest.raises(ProtocolError):
        proof_required(4, 5, root[:47], h_c, 0)
    with pytest.raises(ProtocolError):
        proof_required(4, 5, root, h_c, 10_001)


def test_challenge() -> None:
    h_c, sid, supplier = b"\x03" * 32, b"\x04" * 32, b"\x05" * 20
    value = int.from_bytes(hashlib.sha256(h_c + sid + supplier).digest(), "big")
    assert challenge(h_c, sid, supplier, 1) == 0
    assert challenge(h_c, sid, supplier, 1000) == value % 1000
    with pytest.raises(ProtocolError):
        challenge(h_c, sid, supplier, 0)
    with pytest.raises(ProtocolError):
        challenge(h_c, sid, supplier[:19], 10)


def test_settle_valid_gives_the_remainder_to_the_treasury() -> None:
    assert settle_valid(666, 10_000, (9000, 500, 500)) == Payout(666, 599, 33, 34)
    assert settle_valid(666, 100, [9000, 500, 500]) == Payout(100, 90, 5, 5)
    assert settle_valid(0, 100, (9000, 500, 500)) == Payout(0, 0, 0, 0)
    with pytest.raises(ProtocolError):
        settle_valid(1, 1, (9000, 500, 400))
    with pytest.raises(ProtocolError):
        settle_valid(1, 1, (9000, 1000))


def test_settle_void_is_capped_by_the_stake() -> None:
    assert settle_void(666, 30_000, 10_000, 1000) == Slash(1998, 199, 1799)
    assert settle_void(666, 30_000, 1_000, 1000) == Slash(1000, 100, 900)
    assert settle_void(666, 30_000, 0, 1000) == Slash(0, 0, 0)
    with pytest.raises(ProtocolError):
        settle_void(666, 30_000, 1_000, 10_001)


def test_validate_slots() -> None:
    validate_slots([0], 6)
    validate_slots([0, 2, 5], 6)
    for bad in ([], [0, 0], [2, 1], [6], [-1, 2], [0, 6]):
        with pytest.raises(ProtocolError) as info:
            validate_slots(bad, 6)
        assert info.value.code is ErrorCode.MALFORMED_INPUT


def test_validate_windows() -> None:
    validate_windows(2, 1, 5, 0, 5)  # devnet
    validate_windows(5, 2, 20, 1, 20)  # defaults
    validate_windows(0, 0, 1, 0, 198)  # sum 199
    for bad in ((0, 0, 1, 0, 199), (-1, 1, 5, 0, 5), (2, 1, 0, 0, 5), (2, 1, 5, 0, 0)):
        with pytest.raises(ProtocolError):
            validate_windows(*bad)


def test_proof_economics() -> None:
    assert proof_economics_ok(10_000, 10_000, 1000)  # devnet
    # defaults: 0.25 × 4 × 0.9 = 0.9 >= 0.75; the old rule's 30000 no longer passes
    assert proof_economics_ok(2500, 40_000, 1000)
    assert not proof_economics_ok(2500, 30_000, 1000)
    assert proof_economics_ok(2500, 30_000, 0)  # without a bounty the old boundary holds
    assert not proof_economics_ok(2500, 29_999, 0)
    assert proof_economics_ok(2500, 33_334, 1000)
    assert not proof_economics_ok(2500, 33_333, 1000)
    assert proof_economics_ok(5000, 20_000, 5000)
    assert not proof_economics_ok(5000, 19_999, 5000)
    assert not proof_economics_ok(0, 10**9, 0)
    assert proof_economics_ok(10_000, 0, 1000)
    with pytest.raises(ProtocolError):
        proof_economics_ok(10_001, 10_000, 0)


def test_mint_shares() -> None:
    assert validate_mint_shares([9000, 500, 500]) == (9000, 500, 500)
    for bad in ([9000, 500], [10_001, 0, -1], [5000, 5000, 1]):
        with pytest.raises(ProtocolError):
            validate_mint_shares(bad)


# -- properties ------------------------------------------------------------------------------

amounts = st.integers(0, 10**30)
bps = st.integers(0, 10_000)


@st.composite
def shares(draw: st.DrawFn) -> tuple[int, int, int]:
    supplier = draw(bps)
    owner = draw(st.integers(0, 10_000 - supplier))
    return supplier, owner, 10_000 - supplier - owner


@given(claimed=amounts, stake=amounts, mint=shares())
def test_payout_splits_exactly(claimed: int, stake: int, mint: tuple[int, int, int]) -> None:
    payout = settle_valid(claimed, stake, mint)
    assert payout.paid == min(claimed, stake)
    assert payout.supplier + payout.owner + payout.treasury == payout.paid
    assert min(payout.supplier, payout.owner, payout.treasury) >= 0
    assert payout.treasury >= payout.paid * mint[2] // 10_000
    assert payout.treasury - payout.paid * mint[2] // 10_000 <= 2  # only rounding remainders


@given(claimed=amounts, multiplier=st.integers(0, 10**6), stake=amounts, bounty=bps)
def test_slash_never_exceeds_the_stake(
    claimed: int, multiplier: int, stake: int, bounty: int
) -> None:
    slash = settle_void(claimed, multiplier, stake, bounty)
    assert 0 <= slash.slash <= stake
    assert slash.slash <= claimed * multiplier // 10_000
    assert 0 <= slash.bounty <= slash.slash
    assert slash.bounty + slash.burned == slash.slash


@given(
    h_c=st.binary(min_size=32, max_size=32),
    sid=st.binary(min_size=32, max_size=32),
    supplier=st.binary(min_size=20, max_size=20),
    total=st.integers(1, 2**64 - 1),
)
def test_challenge_is_below_the_sum(h_c: bytes, sid: bytes, supplier: bytes, total: int) -> None:
    assert 0 <= challenge(h_c, sid, supplier, total) < total


@given(n_slots=st.integers(0, 24), stake=amounts, total=st.integers(0, 2**40), price=amounts)
def test_claimed_never_exceeds_the_budget(n_slots: int, stake: int, total: int, price: int) -> None:
    cap = budget(n_slots, stake, 24, 2)
    claimed = claimed_amount(claim_tokens(total, price, 0), cap)
    assert claimed <= cap
    assert cap * 24 * 2 <= n_slots * stake


@given(p=bps, m=st.integers(0, 10**6), b=st.integers(0, 5000))
def test_economics_rule_is_monotonic(p: int, m: int, b: int) -> None:
    if proof_economics_ok(p, m, b):
        assert proof_economics_ok(p, m + 1, b)
        assert p == 10_000 or proof_economics_ok(min(p + 1, 10_000), m, b)
        assert b == 0 or proof_economics_ok(p, m, b - 1)
