"""Finality-aware cache decisions shared by every RPC type (the rules eRPC uses).

* about a block at or below the finalized height, or addressed by hash: final (``ttl=None``) —
  it can never change;
* about the head or an unfinalized block: briefly at most (``spec.cache.head_ttl``; 0 turns it
  off);
* about a block above the head, pending or node-local state: never;
* failures and ``null`` results: never (:func:`rollups.jsonrpc.is_cacheable_answer`).

EVM block parameters (tags, hashes, log filters) are read in :mod:`rollups.evm.cache`.
"""

from __future__ import annotations

from enum import IntEnum

from rollups.handler import CachePolicy, Heights

__all__ = ["Finality", "height_finality", "not_cached", "policy_for"]


class Finality(IntEnum):
    """How settled an answer is; the lower of two wins when combining."""

    NEVER = 0
    BRIEF = 1
    FINAL = 2


def not_cached(reason: str) -> CachePolicy:
    return CachePolicy(cacheable=False, key=None, ttl=0.0, reason=reason)


def height_finality(height: int, heights: Heights, noun: str = "height") -> tuple[Finality, str]:
    """How final an answer about ``height`` is (``noun`` names it in the reason).

    >>> height_finality(5, Heights(latest=10, finalized=8))
    (<Finality.FINAL: 2>, 'height 5 is final')
    >>> height_finality(11, Heights(latest=10, finalized=8))[1]
    'height 11 is above the head 10'
    """
    if heights.latest is not None and height > heights.latest:
        return Finality.NEVER, f"{noun} {height} is above the head {heights.latest}"
    if heights.finalized is not None and height <= heights.finalized:
        return Finality.FINAL, f"{noun} {height} is final"
    return Finality.BRIEF, f"{noun} {height} is not final yet"


def policy_for(key: str, finality: Finality, reason: str, head_ttl: float) -> CachePolicy:
    """The cache policy of a decided finality."""
    if finality is Finality.FINAL:
        return CachePolicy(cacheable=True, key=key, ttl=None, reason=reason)
    if finality is Finality.BRIEF and head_ttl > 0:
        return CachePolicy(cacheable=True, key=key, ttl=head_ttl, reason=reason)
    if finality is Finality.BRIEF:
        return not_cached(f"{reason}; head answers are not cached (head_ttl = 0)")
    return not_cached(reason)
