"""Sending transactions from one account: nonces, fees, receipts, replacement of stuck ones.

:class:`TxSender` owns the nonce of one account. Many transactions may be fired in a row (even
concurrently, e.g. with ``asyncio.gather``): nonces are handed out under a lock in call order,
starting from the chain's pending count and resynchronised whenever the node says the local
count is wrong. Each transaction is

1. estimated (``eth_estimateGas``), so a transaction that would revert is refused with the
   contract's reason before anything is sent (pass ``gas`` to skip this);
2. signed locally (EIP-1559, ``max_fee = 2 × base_fee + tip``) and sent raw;
3. awaited: the receipt is polled; when none arrives within ``replace_after`` seconds the same
   nonce is re-signed with fees raised by ``fee_bump_pct`` percent (nodes need ≥ 10 %) and sent
   again; whichever version is mined first wins;
4. checked: a mined transaction with status 0 is replayed with ``eth_call`` to recover the
   revert reason, and raised as :class:`~ledger.errors.TransactionReverted`.

Every chain failure leaves as a :mod:`ledger.errors` exception (translated at this edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from ledger.errors import (
    ChainRPCError,
    ChainUnavailable,
    LedgerError,
    TransactionReverted,
    TransactionTimeout,
    translate_errors,
)
from protocol.keys import AccountKey

__all__ = ["TxReceipt", "TxSender"]

_NONCE_ERRORS = ("nonce too low", "nonce too high", "invalid nonce", "already known")


@dataclass(frozen=True)
class TxReceipt:
    """A mined, successful transaction."""

    tx_hash: bytes
    block_number: int
    gas_used: int
    logs: tuple[Mapping[str, Any], ...] = field(default_factory=tuple, repr=False)
    replacements: int = 0  # how many times it was re-sent with a higher fee

    @property
    def tx_hash_hex(self) -> str:
        return "0x" + self.tx_hash.hex()


@dataclass
class _Pending:
    nonce: int
    tx: dict[str, Any]
    hashes: list[bytes]


class TxSender:
    """Signs and sends the transactions of one account, keeping its nonce locally."""

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        account: AccountKey,
        *,
        chain_id: int | None = None,
        receipt_timeout: float = 120.0,
        replace_after: float = 20.0,
        fee_bump_pct: int = 25,
        poll_interval: float = 0.05,
        gas_margin_pct: int = 25,
    ) -> None:
        if fee_bump_pct < 10:
            raise ValueError("fee_bump_pct must be at least 10 (nodes refuse smaller bumps)")
        self._w3 = w3
        self._account = account
        self._checksum = AsyncWeb3.to_checksum_address(account.address)
        self._chain_id = chain_id
        self.receipt_timeout = receipt_timeout
        self.replace_after = replace_after
        self.fee_bump_pct = fee_bump_pct
        self.poll_interval = poll_interval
        self.gas_margin_pct = gas_margin_pct
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None
        # the latest hashes broadcast, replacements included (bounded; for tests and logs)
        self.sent_hashes: deque[bytes] = deque(maxlen=256)

    @property
    def address(self) -> bytes:
        return self._account.address

    async def send(
        self,
        to: str,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        headroom: int = 0,
        action: str = "transaction",
    ) -> TxReceipt:
        """Send one transaction and wait for its receipt (see the module docstring).
        ``headroom``: gas added to the estimate for work the call may find when it is mined
        but not when it was estimated (blocks mined in between)."""
        call: dict[str, Any] = {
            "from": self._checksum,
            "to": AsyncWeb3.to_checksum_address(to),
            "data": "0x" + data.hex(),
            "value": value,
        }
        if gas is None:
            with translate_errors(action):
                estimate = await self._w3.eth.estimate_gas(call, "pending")  # type: ignore[arg-type]
            gas = int(estimate) * (100 + self.gas_margin_pct) // 100 + 10_000 + headroom
        pending = await self._broadcast(call, gas, action)
        return await self._await_receipt(pending, call, action)

    async def resync(self) -> None:
        """Forget the local nonce; the next send reads the pending count from the chain."""
        async with self._lock:
            self._next_nonce = None

    # -- steps ---------------------------------------------------------------------------

    async def _broadcast(self, call: dict[str, Any], gas: int, action: str) -> _Pending:
        async with self._lock:
            for attempt in range(3):
                with translate_errors(action):
                    if self._chain_id is None:
                        self._chain_id = int(await self._w3.eth.chain_id)
                    if self._next_nonce is None:
                        self._next_nonce = int(
                            await self._w3.eth.get_transaction_count(self._checksum, "pending")
                        )
                    max_fee, tip = await self._fees()
                tx = {
                    "type": 2,
                    "chainId": self._chain_id,
                    "nonce": self._next_nonce,
                    "to": call["to"],
                    "data": call["data"],
                    "value": call["value"],
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                }
                try:
                    tx_hash = await self._send_signed(tx, action)
                except ChainRPCError as exc:
                    if attempt < 2 and any(s in str(exc).lower() for s in _NONCE_ERRORS):
                        self._next_nonce = None  # out of step with the node: reread
                        continue
                    raise
                self._next_nonce += 1
                return _Pending(nonce=int(tx["nonce"]), tx=tx, hashes=[tx_hash])
        raise ChainRPCError(f"{action}: could not find a usable nonce")  # pragma: no cover

    async def _fees(self) -> tuple[int, int]:
        block = await self._w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        try:
            tip = int(await self._w3.eth.max_priority_fee)
        except Web3RPCError:
            tip = 1_000_000_000
        tip = max(tip, 1)
        return 2 * base + tip, tip

    async def _send_signed(self, tx: dict[str, Any], action: str) -> bytes:
        signed = Account.sign_transaction(tx, self._account.private_key)
        with translate_errors(action):
            tx_hash = bytes(await self._w3.eth.send_raw_transaction(signed.raw_transaction))
        self.sent_hashes.append(tx_hash)
        return tx_hash

    async def _replace(self, pending: _Pending, action: str) -> None:
        """Re-sign the same nonce with fees raised by ``fee_bump_pct`` and send it again."""
        tx = dict(pending.tx)
        bump = 100 + self.fee_bump_pct
        tx["maxFeePerGas"] = int(tx["maxFeePerGas"]) * bump // 100 + 1
        tx["maxPriorityFeePerGas"] = int(tx["maxPriorityFeePerGas"]) * bump // 100 + 1
        try:
            tx_hash = await self._send_signed(tx, action)
        except ChainRPCError as exc:
            text = str(exc).lower()
            if any(s in text for s in _NONCE_ERRORS):
                return  # an earlier version was mined meanwhile; the poll will find it
            if "underpriced" in text:
                pending.tx = tx  # the node wants a bigger bump: the next one starts higher
                return
            raise
        pending.tx = tx
        pending.hashes.append(tx_hash)

    async def _await_receipt(
        self, pending: _Pending, call: dict[str, Any], action: str
    ) -> TxReceipt:
        deadline = time.monotonic() + self.receipt_timeout
        next_replace = time.monotonic() + self.replace_after
        while True:
            try:
                for tx_hash in reversed(pending.hashes):
                    receipt = await self._receipt(tx_hash, action)
                    if receipt is not None:
                        return await self._check(receipt, tx_hash, pending, call, action)
            except ChainUnavailable:
                pass  # the transaction is out: keep polling until the deadline
            now = time.monotonic()
            if now >= deadline:
                raise TransactionTimeout(
                    f"{action}: no receipt for nonce {pending.nonce} after "
                    f"{self.receipt_timeout:.0f}s (last hash 0x{pending.hashes[-1].hex()})",
                    tx_hash=pending.hashes[-1],
                )
            if now >= next_replace:
                with contextlib.suppress(ChainUnavailable):
                    await self._replace(pending, action)
                next_replace = now + self.replace_after
            await asyncio.sleep(self.poll_interval)

    async def _receipt(self, tx_hash: bytes, action: str) -> Mapping[str, Any] | None:
        with translate_errors(action):
            try:
                return await self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None

    async def _check(
        self,
        receipt: Mapping[str, Any],
        tx_hash: bytes,
        pending: _Pending,
        call: dict[str, Any],
        action: str,
    ) -> TxReceipt:
        block_number = int(receipt["blockNumber"])
        if int(receipt["status"]) != 1:
            reason = await self._replay_reason(call, block_number, action)
            raise TransactionReverted(reason, action=action, tx_hash=tx_hash)
        return TxReceipt(
            tx_hash=tx_hash,
            block_number=block_number,
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(receipt["logs"]),
            replacements=len(pending.hashes) - 1,
        )

    async def _replay_reason(self, call: dict[str, Any], block_number: int, action: str) -> str:
        """Replay a failed transaction with ``eth_call`` to recover the revert reason."""
        try:
            with translate_errors(action):
                await self._w3.eth.call(call, max(block_number - 1, 0))  # type: ignore[arg-type]
        except TransactionReverted as exc:
            return exc.reason
        except LedgerError:
            return "(reason unavailable)"
        return "(reverted on chain; succeeds when replayed)"
