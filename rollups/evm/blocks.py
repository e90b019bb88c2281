"""Reading EVM block parameters: tags, quantities, hashes and EIP-1898 objects.

>>> block_ref("0x10")
BlockRef(kind='number', number=16, tag=None)
>>> block_ref({"blockHash": "0x" + "ab" * 32}).kind
'hash'
>>> block_ref(None).tag      # an absent block parameter means latest
'latest'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TAGS", "BlockRef", "block_ref", "parse_quantity"]

TAGS = frozenset({"latest", "pending", "safe", "finalized", "earliest"})
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


def parse_quantity(value: Any) -> int | None:
    """A JSON-RPC quantity (``"0x1a"``) as an int; ``None`` when it is not one.

    Lenient about leading zeros (some clients send ``"0x01"``); decimal ints are accepted too.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value[:2] in ("0x", "0X") and 2 < len(value) <= 66:
        try:
            return int(value[2:], 16)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block parameter: a ``tag``, a ``number``, a ``hash`` or ``invalid``."""

    kind: Literal["tag", "number", "hash", "invalid"]
    number: int | None = None
    tag: str | None = None


def block_ref(value: Any) -> BlockRef:
    """Read a block parameter (tag, quantity, 32-byte hash, or EIP-1898 object)."""
    if value is None:
        return BlockRef("tag", tag="latest")
    if isinstance(value, str):
        if value in TAGS:
            return BlockRef("tag", tag=value)
        if _HASH.match(value):
            return BlockRef("hash")
        number = parse_quantity(value)
        return BlockRef("number", number=number) if number is not None else BlockRef("invalid")
    if isinstance(value, dict):
        if "blockHash" in value:
            ok = isinstance(value["blockHash"], str) and _HASH.match(value["blockHash"])
            return BlockRef("hash") if ok else BlockRef("invalid")
        if "blockNumber" in value:
            return block_ref(value["blockNumber"])
        return BlockRef("invalid")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return BlockRef("number", number=value)
    return BlockRef("invalid")
