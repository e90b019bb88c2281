"""Budget metering per (app, session): refuse past the limit, refund, restore."""

from __future__ import annotations

import pytest

from protocol.errors import ErrorCode
from relayer.budget import BudgetMeter
from relayer.errors import RelayRefused
from relayer.relaylog import SessionKey

KEY = SessionKey("eth", b"\x01" * 20, 3)


def test_charge_until_the_limit_then_refuse() -> None:
    meter = BudgetMeter()
    b = meter.account(KEY, 10)
    for _ in range(5):
        b.charge(2)
    with pytest.raises(RelayRefused) as exc:
        b.charge(1)
    assert exc.value.code is ErrorCode.APP_OVER_BUDGET
    assert b.used == 10
    b.refund(2)
    b.charge(2)


def test_restore_before_first_use_and_forget() -> None:
    meter = BudgetMeter()
    meter.restore(KEY, 7)
    b = meter.account(KEY, 10)
    assert b.used == 7 and b.remaining == 3
    meter.forget(KEY)
    assert meter.used(KEY) == 0
