"""EVM block parameters read for cache decisions (:mod:`rollups.finality` decides).

* about a block at or below the finalized height, or pinned by a block hash: final
  (``ttl=None``) — it can never change;
* about ``latest`` / ``safe`` / ``finalized`` tags or an unfinalized block: briefly at most
  (``spec.cache.head_ttl``; 0 turns it off);
* about ``pending``, a future block, or node-local state: never;
* failures and ``null`` results: never (:func:`rollups.jsonrpc.is_cacheable_answer`).

Transactions looked up by hash are decided by the answer's ``blockNumber``.
"""

from __future__ import annotations

from typing import Any

from rollups.evm.blocks import BlockRef, block_ref, parse_quantity
from rollups.finality import Finality
from rollups.handler import Heights

__all__ = ["answer_block_number", "logs_finality", "ref_finality"]


def ref_finality(ref: BlockRef, heights: Heights) -> tuple[Finality, str]:
    """How final an answer about block ``ref`` is, given what the gateway knows."""
    if ref.kind == "hash":
        return Finality.FINAL, "pinned by block hash"
    if ref.kind == "tag":
        if ref.tag == "earliest":
            return Finality.FINAL, "the genesis block never changes"
        if ref.tag == "pending":
            return Finality.NEVER, "pending state is never cached"
        return Finality.BRIEF, f"{ref.tag!r} moves with the head"
    if ref.kind == "number" and ref.number is not None:
        n = ref.number
        if heights.latest is not None and n > heights.latest:
            return Finality.NEVER, f"block {n} is above the head {heights.latest}"
        if heights.finalized is not None and n <= heights.finalized:
            return Finality.FINAL, f"block {n} is finalized (<= {heights.finalized})"
        if heights.finalized is None:
            return Finality.BRIEF, f"block {n}: finalized height unknown"
        return Finality.BRIEF, f"block {n} is not finalized yet (> {heights.finalized})"
    return Finality.NEVER, "unreadable block parameter"


def logs_finality(params: list[Any], heights: Heights) -> tuple[Finality, str]:
    """A log filter: final when pinned by blockHash or both ends are finalized."""
    flt = params[0] if params else None
    if not isinstance(flt, dict):
        return Finality.NEVER, "unreadable log filter"
    if "blockHash" in flt:
        return ref_finality(block_ref({"blockHash": flt["blockHash"]}), heights)
    low = ref_finality(block_ref(flt.get("fromBlock")), heights)
    high = ref_finality(block_ref(flt.get("toBlock")), heights)
    worst = min(low, high, key=lambda fr: fr[0])
    return worst[0], f"log range: {worst[1]}"


def answer_block_number(result: Any) -> int | None:
    """The block an answer object is about (``blockNumber`` of a tx/receipt, ``number`` of a
    block or header), or ``None``."""
    if not isinstance(result, dict):
        return None
    for name in ("blockNumber", "number"):
        if name in result:
            return parse_quantity(result[name])
    return None
