"""The claimer's view of the settlement chain: an adapter over :class:`ledger.client.LedgerClient`.

Translates the relayer's :class:`relayer.interfaces.SettlementChain` (claims named by
``(app, service, n)``) into the client's calls (claims named by their id) and its receipts into
:class:`relayer.interfaces.TxReceipt` with the gas actually paid.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.client import ClaimStatus as LedgerClaimStatus
from ledger.client import LedgerClient, claim_id_of
from ledger.errors import LedgerError, translate_errors
from ledger.tx import TxReceipt as LedgerReceipt
from protocol.trie import Node
from relayer.interfaces import ChainClaim, ClaimStatus, TxReceipt

__all__ = ["LedgerChain"]

_STATUS = {
    LedgerClaimStatus.NONE: ClaimStatus.NONE,
    LedgerClaimStatus.OPEN: ClaimStatus.OPEN,
    LedgerClaimStatus.PROVED: ClaimStatus.PROVED,
    LedgerClaimStatus.SETTLED: ClaimStatus.SETTLED,
    LedgerClaimStatus.VOIDED: ClaimStatus.VOIDED,
}


class LedgerChain:
    """:class:`SettlementChain` for the supplier account of ``client``."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client
        self.supplier = client.address

    def _id(self, app: bytes, service_id: str, n: int) -> bytes:
        return claim_id_of(self.supplier, app, service_id, n)

    async def _receipt(self, receipt: LedgerReceipt, **extra: int) -> TxReceipt:
        with translate_errors("eth_getTransactionReceipt"):
            raw = await self.client.w3.eth.get_transaction_receipt(receipt.tx_hash)  # type: ignore[arg-type]
        price = int(raw.get("effectiveGasPrice", 0) or 0)
        return TxReceipt(receipt.tx_hash_hex, receipt.gas_used, price, extra)

    async def head(self) -> int:
        return await self.client.block_number()

    async def resync(self) -> None:
        if self.client.sender is not None:
            await self.client.sender.resync()

    async def block_hash(self, height: int) -> bytes | None:
        with translate_errors("eth_getBlockByNumber"):
            block = await self.client.w3.eth.get_block(height)
        value = block.get("hash")
        return bytes(value) if value is not None else None

    async def recorded_hashes(self, n: int) -> tuple[bytes | None, bytes | None, bytes | None]:
        return await self.client.checkpoints(n)

    async def checkpoint(self) -> TxReceipt:
        return await self._receipt(await self.client.checkpoint())

    async def gas_price(self) -> int:
        with translate_errors("eth_gasPrice"):
            return int(await self.client.w3.eth.gas_price)

    async def claim_state(self, app: bytes, service_id: str, n: int) -> ChainClaim:
        state = await self.client.claim_state(self._id(app, service_id, n))
        if state is None:
            return ChainClaim(ClaimStatus.NONE)
        return ChainClaim(_STATUS[state.status], state.root_digest)

    async def claim(
        self, app: bytes, service_id: str, n: int, slots: tuple[int, ...], root48: bytes
    ) -> TxReceipt:
        result = await self.client.claim(app, service_id, n, slots, root48)
        return await self._receipt(result.receipt, claimed=result.claimed)

    async def prove(
        self, app: bytes, service_id: str, n: int, leaf: bytes, siblings: Sequence[object]
    ) -> TxReceipt:
        nodes = [s for s in siblings if isinstance(s, Node)]
        receipt = await self.client.prove(self._id(app, service_id, n), leaf, nodes)
        return await self._receipt(receipt)

    async def settle(self, app: bytes, service_id: str, n: int) -> TxReceipt:
        result = await self.client.settle(self._id(app, service_id, n))
        if result.receipt is None:
            raise LedgerError("settle: no receipt")
        return await self._receipt(
            result.receipt,
            paid=result.paid,
            supplier=result.supplier_share,
            slashed=result.slashed,
            valid=int(result.valid),
        )

    async def balance(self) -> int:
        return await self.client.balance()

    async def stake(self) -> int:
        return (await self.client.supplier()).stake
