"""What a gateway accepts from suppliers: answer size caps and the height-floor rule.

Both are per service (``[answers]`` of the chain spec) and asked of the handler
(``RpcHandler.answer_cap``, ``RpcHandler.floor_rule``), so the gateway never names a method.

The floor rule (DESIGN §4): a client's head height never goes backwards, and a height enters
that floor only when it is at most the allowed lag above the **lower median** of the heights
the session's suppliers reported in the last ``window`` seconds; with fewer than two reports
the floor does not rise — one supplier cannot push it up.

>>> rule = FloorRule(max_lead=10)
>>> rule.admits(105, [100, 101, 10**12])   # lower median 101
True
>>> rule.admits(0xFFFFFFFFFF, [100, 101, 0xFFFFFFFFFF])
False
>>> rule.admits(100, [100])                 # fewer than two reports: the floor stays
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rollups.spec import ChainSpec

__all__ = ["FLOOR_WINDOW", "FloorRule", "answer_cap", "floor_rule", "lower_median"]

#: Seconds a supplier's reported height counts towards the lower median.
FLOOR_WINDOW = 30.0


def lower_median(values: Sequence[int]) -> int:
    """The lower median: the middle value, the lower of the two middles for an even count.

    >>> lower_median([5, 1, 9, 7])
    5
    """
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True, slots=True)
class FloorRule:
    """A floored call (the head height): how far above the reports a height may enter."""

    max_lead: int  # blocks
    window: float = FLOOR_WINDOW

    def limit(self, reported: Sequence[int]) -> int | None:
        """The highest height that may enter a floor now, or None (fewer than two reports)."""
        if len(reported) < 2:
            return None
        return lower_median(reported) + self.max_lead

    def admits(self, height: int, reported: Sequence[int]) -> bool:
        limit = self.limit(reported)
        return limit is not None and height <= limit


def floor_rule(spec: ChainSpec) -> FloorRule:
    """The spec's rule: ``allowed_lag`` seconds over ``block_time`` (1 s when unknown), at
    least one block."""
    block_time = spec.block_time or 1.0
    return FloorRule(max_lead=max(1, math.ceil(spec.answers.allowed_lag / block_time)))


def answer_cap(spec: ChainSpec, *, large: bool) -> int:
    """The cap of one answer: ``large_max_bytes`` for the large class (traces and logs)."""
    return spec.answers.large_max_bytes if large else spec.answers.max_bytes
