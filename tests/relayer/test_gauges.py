"""The account gauges' arithmetic: headroom is stake minus what open claims lock, a claim's cost
is its gas at the price read; a failed read keeps the last values and says so once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from protocol.errors import RelaynetError
from relayer.gauges import Account, AccountGauges
from relayer.metrics import RelayerMetrics


class Reads:
    """The readings of a supplier account, in turn (an exception: the chain did not answer)."""

    def __init__(self, *readings: Account | RelaynetError) -> None:
        self.readings = list(readings)

    async def read(self) -> Account:
        reading = self.readings.pop(0)
        if isinstance(reading, RelaynetError):
            raise reading
        return reading


def _value(m: RelayerMetrics, name: str) -> float | None:
    return m.registry.get_sample_value(f"relaynet_relayer_{name}")


async def test_headroom_is_the_stake_open_claims_do_not_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = RelayerMetrics()
    first = Account(gas_wei=5 * 10**15, gas_price=2, tokens=7, stake=1000, locked=400)
    gauges = AccountGauges(
        m,
        Reads(first, RelaynetError("down"), RelaynetError("down"), first),
        tmp_path,
        claim_gas=800_000,
    )
    assert await gauges.refresh() == first
    assert _value(m, "stake_headroom") == 600
    assert _value(m, "stake_locked") == 400 and _value(m, "stake") == 1000
    assert _value(m, "claim_gas_cost_wei") == 1_600_000
    assert _value(m, "gas_balance_wei") == 5 * 10**15 and _value(m, "token_balance") == 7
    assert (_value(m, "data_free_bytes") or 0) > 0
    with caplog.at_level(logging.WARNING, logger="relaynet.relayer.gauges"):
        assert await gauges.refresh() is None
        assert await gauges.refresh() is None
    assert caplog.text.count("cannot read the account") == 1  # once per failure streak
    assert _value(m, "stake_headroom") == 600  # the last reading stays
    assert Account(0, 0, 0, stake=10, locked=25).headroom == 0  # slashed below its locks
