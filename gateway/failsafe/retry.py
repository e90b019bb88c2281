"""Retry decisions: may a failed attempt be sent again, and where.

The caller classifies what happened to an attempt (:class:`Outcome`); :class:`RetryState`
decides, under the call's retry mode, whether another attempt may go and whether it must go to
another supplier. Writes are retried only when the attempt provably never reached a backend.

>>> s = RetryState(max_attempts=3, idempotent=False)
>>> s.after(Outcome.UNSENT), s.after(Outcome.MAYBE_SENT)
(True, False)
>>> r = RetryState(max_attempts=2, idempotent=True)
>>> r.after(Outcome.MAYBE_SENT), r.after(Outcome.RETRYABLE)
(True, False)
"""

from __future__ import annotations

import random
from enum import Enum

__all__ = ["Outcome", "RetryState", "backoff"]


class Outcome(Enum):
    SUCCESS = "success"
    UNSENT = "unsent"  # never reached a backend (refused connection or relay check)
    RETRYABLE = "retryable"  # the relayer says retry elsewhere (backend down, over budget …)
    MAYBE_SENT = "maybe_sent"  # timed out or broke mid-flight: the backend may have acted
    FATAL = "fatal"  # a final answer or a refusal another supplier would repeat


class RetryState:
    """Counts attempts of one call and decides on each failure."""

    def __init__(self, *, max_attempts: int, idempotent: bool, allowed: bool = True) -> None:
        self.max_attempts = max_attempts
        self.idempotent = idempotent
        self.allowed = allowed  # False: never (stateful calls pinned to one supplier)
        self.attempts = 1

    def after(self, outcome: Outcome) -> bool:
        """After a failed attempt: may another one go? (Counts it when it may.)"""
        if outcome in (Outcome.SUCCESS, Outcome.FATAL) or not self.allowed:
            return False
        if self.attempts >= self.max_attempts:
            return False
        if not self.idempotent and outcome is not Outcome.UNSENT:
            return False
        self.attempts += 1
        return True


def backoff(attempt: int, *, base: float = 0.05, cap: float = 1.0) -> float:
    """Full-jitter exponential backoff for attempt ``attempt`` (1-based)."""
    return random.uniform(0, min(cap, base * (2 ** max(0, attempt - 1))))
