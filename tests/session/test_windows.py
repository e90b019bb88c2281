"""Windows and relay acceptance (DESIGN §3.2) against the ``windows`` vectors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaynet.vectors import shape_of
from session import (
    InvalidSessionInput,
    RelayStatus,
    SessionExpired,
    SessionNotStarted,
    SessionShape,
    accepts_relays,
    check_relay_session,
    fallback_session,
    relay_status,
    session_of,
    signing_session,
    windows,
)
from session.errors import SessionError

FIELDS = (
    "start",
    "end",
    "grace_end",
    "claim_open",
    "claim_close",
    "proof_open",
    "proof_close",
    "h_n_block",
    "h_g_block",
    "h_c_block",
)


def test_windows_vectors(kat: dict[str, Any]) -> None:
    cases = kat["windows"]
    assert cases
    for case in cases:
        w = windows(shape_of(case, S=6), case["n"])
        out = case["out"]
        assert w.n == case["n"]
        for field in FIELDS:
            assert getattr(w, field) == out[field], (field, case)
        assert set(out["session_of"]) == {str(h) for h in case["heights"]}
        for height, n in out["session_of"].items():
            assert session_of(int(height), case["B0"], case["L"]) == n


shapes = st.builds(
    SessionShape,
    B0=st.integers(0, 10_000),
    L=st.integers(1, 100),
    G=st.integers(0, 20),
    CO=st.integers(0, 20),
    CW=st.integers(1, 40),
    PO=st.integers(0, 20),
    PW=st.integers(1, 40),
    S=st.integers(1, 32),
)


@given(shape=shapes, n=st.integers(0, 10_000))
def test_windows_are_ordered_and_cover_their_session(shape: SessionShape, n: int) -> None:
    w = windows(shape, n)
    assert w.start - 1 == w.h_n_block < w.start <= w.end < w.claim_open <= w.claim_close
    assert w.grace_end == w.end + shape.G == w.h_g_block
    assert w.claim_close < w.proof_open <= w.proof_close
    assert w.h_c_block == w.claim_close
    assert session_of(w.start, shape.B0, shape.L) == n
    assert session_of(w.end, shape.B0, shape.L) == n
    assert session_of(w.end + 1, shape.B0, shape.L) == n + 1
    assert w.in_claim_window(w.claim_open) and w.in_claim_window(w.claim_close)
    assert not w.in_claim_window(w.claim_open - 1) and not w.claim_closed(w.claim_close)
    assert w.claim_closed(w.claim_close + 1)
    assert w.in_proof_window(w.proof_open) and w.in_proof_window(w.proof_close)
    assert not w.in_proof_window(w.proof_open - 1) and w.proof_closed(w.proof_close + 1)


def test_relay_status_boundaries() -> None:
    shape = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    # session 3: start 130, end 139, grace_end 141; H_n is block 129.
    expected = {
        100: RelayStatus.NOT_STARTED,
        128: RelayStatus.NOT_STARTED,
        129: RelayStatus.CURRENT,
        130: RelayStatus.CURRENT,
        139: RelayStatus.CURRENT,
        140: RelayStatus.IN_GRACE,
        141: RelayStatus.EXPIRED,  # H_g(3) is known at grace_end: no relay may be added then
        142: RelayStatus.EXPIRED,
        10_000: RelayStatus.EXPIRED,
    }
    for head, status in expected.items():
        assert relay_status(head, 3, shape) is status
        assert accepts_relays(head, 3, shape) is status.accepted
    with pytest.raises(SessionNotStarted) as not_started:
        check_relay_session(128, 3, shape)
    assert not_started.value.code.value == "SESSION_NOT_STARTED" and not_started.value.retryable
    with pytest.raises(SessionExpired) as expired:
        check_relay_session(142, 3, shape)
    assert expired.value.code.value == "SESSION_EXPIRED" and not expired.value.retryable
    assert check_relay_session(129, 3, shape).start == 130
    assert check_relay_session(140, 3, shape).grace_end == 141
    with pytest.raises(SessionExpired):
        check_relay_session(141, 3, shape)


@given(shape=shapes, n=st.integers(0, 500), offset=st.integers(-50, 200))
def test_accepts_relays_matches_design_rule(shape: SessionShape, n: int, offset: int) -> None:
    w = windows(shape, n)
    head = w.start + offset
    assert accepts_relays(head, n, shape) == (w.start - 1 <= head < w.grace_end)


@given(shape=shapes, head_offset=st.integers(0, 5_000), data=st.data())
def test_signing_session_is_accepted_by_lagging_relayers(
    shape: SessionShape, head_offset: int, data: st.DataObject
) -> None:
    head = shape.B0 + head_offset
    lag = data.draw(st.integers(0, min(shape.L, shape.G)))
    n = signing_session(head, shape, lag=lag)
    current = session_of(head, shape.B0, shape.L)
    last_block_without_grace = shape.G == 0 and head == windows(shape, current).end
    assert n in (current, current - 1, current + 1)
    assert n != current + 1 or last_block_without_grace
    for relayer_head in range(max(shape.B0, head - lag), head + 1):
        assert accepts_relays(relayer_head, n, shape), (relayer_head, n, lag)
    assert signing_session(head, shape) == current + (1 if last_block_without_grace else 0)


def test_signing_and_fallback_sessions() -> None:
    shape = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    # relayers accept session 3 while their head is below grace_end(3) = 141, so the gateway
    # stops signing for it at 141 (one block earlier than under the old rule)
    assert [signing_session(h, shape, lag=3) for h in (139, 140, 141, 142, 143)] == [3, 3, 4, 4, 4]
    assert [signing_session(h, shape, lag=1) for h in (139, 140, 141)] == [3, 4, 4]
    assert signing_session(100, shape, lag=5) == 0
    assert fallback_session(140, 4, shape) == 3
    assert fallback_session(141, 4, shape) is None
    assert fallback_session(142, 4, shape) is None
    assert fallback_session(105, 0, shape) is None


def test_invalid_inputs() -> None:
    shape = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    for call in (
        lambda: session_of(99, 100, 10),
        lambda: session_of(100, 100, 0),
        lambda: windows(shape, -1),
        lambda: signing_session(120, shape, lag=-1),
    ):
        with pytest.raises(InvalidSessionInput) as info:
            call()
        assert isinstance(info.value, SessionError)
        assert info.value.code.value == "MALFORMED_INPUT"
