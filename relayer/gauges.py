"""The account and disk gauges: read every ``metrics.account_interval`` seconds, off the hot path.

What an operator alerts on before the relayer runs dry (deploy/prometheus/rules): the gas
balance against what one claim and its proof cost now, the stake, what open claims lock of it
(each claim locks ``slash_multiplier`` × what it claims) and the headroom left, the token
balance, and the data folder's free disk. A failed read leaves the last values (and
``account_refreshed_timestamp_seconds``) as they were and is logged once per failure streak.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from protocol.errors import RelaynetError
from relayer.metrics import RelayerMetrics
from relayer.units import eth, rly

if TYPE_CHECKING:
    from ledger.client import LedgerClient

__all__ = ["Account", "AccountGauges", "AccountReader", "LedgerAccount"]

log = logging.getLogger("relaynet.relayer.gauges")


@dataclass(frozen=True, slots=True)
class Account:
    """One reading of the supplier's account."""

    gas_wei: int
    gas_price: int
    tokens: int
    stake: int
    locked: int

    @property
    def headroom(self) -> int:
        return max(self.stake - self.locked, 0)


class AccountReader(Protocol):
    async def read(self) -> Account: ...


class LedgerAccount:
    """:class:`AccountReader` over a ``ledger.client.LedgerClient`` of the supplier."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client

    async def read(self) -> Account:
        from ledger.errors import translate_errors

        client = self.client
        state = await client.supplier()
        with translate_errors("eth_gasPrice"):
            price = int(await client.w3.eth.gas_price)
        return Account(
            gas_wei=await client.eth_balance(),
            gas_price=price,
            tokens=await client.balance(),
            stake=state.stake,
            locked=state.locked,
        )


class AccountGauges:
    """Sets the account and disk gauges of ``metrics`` from ``reader`` and ``data_dir``."""

    def __init__(
        self,
        metrics: RelayerMetrics,
        reader: AccountReader | None,
        data_dir: Path,
        *,
        claim_gas: int,
    ) -> None:
        self.metrics = metrics
        self.reader = reader
        self.data_dir = data_dir
        self.claim_gas = claim_gas
        self._failing = False

    async def refresh(self) -> Account | None:
        """One reading of the disk and (when there is a reader) the account."""
        self._disk()
        if self.reader is None:
            return None
        try:
            account = await self.reader.read()
        except (RelaynetError, OSError) as exc:
            if not self._failing:
                log.warning("cannot read the account for its gauges: %s", exc)
            self._failing = True
            return None
        if self._failing:
            log.info("account gauges read again")
        self._failing = False
        m = self.metrics
        m.gas_balance.set(account.gas_wei)
        m.claim_gas_cost.set(self.claim_gas * account.gas_price)
        m.token_balance.set(account.tokens)
        m.stake.set(account.stake)
        m.stake_locked.set(account.locked)
        m.stake_headroom.set(account.headroom)
        m.account_refreshed.set(time.time())
        return account

    def _disk(self) -> None:
        try:
            usage = shutil.disk_usage(self.data_dir)
        except OSError:
            return
        self.metrics.data_free_bytes.set(usage.free)
        self.metrics.data_free_ratio.set(usage.free / usage.total if usage.total else 0.0)

    async def run(self, interval: Callable[[], float]) -> None:
        """Refresh every ``interval()`` seconds (cancelled at shutdown); log the account once."""
        first = True
        while True:
            account = await self.refresh()
            if first and account is not None:
                first = False
                log.info(
                    "account: gas %s (a claim and its proof cost %s now), stake %s, locked %s,"
                    " headroom %s, balance %s",
                    eth(account.gas_wei),
                    eth(self.claim_gas * account.gas_price),
                    rly(account.stake),
                    rly(account.locked),
                    rly(account.headroom),
                    rly(account.tokens),
                )
            await asyncio.sleep(interval())
