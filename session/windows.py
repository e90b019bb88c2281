"""Heights and windows of a session, and whose height counts for relays (DESIGN §3.2).

::

    n(h)        = (h - B0) // L
    start(n)    = B0 + n*L ;  end(n) = start(n) + L - 1
    grace_end   = end(n) + G
    claim window  [grace_end+CO+1, grace_end+CO+CW]
    proof window  [claim_close+PO+1, claim_close+PO+PW]
    H_n = hash of block start(n)-1, H_g = hash of grace_end(n), H_c = hash of claim_close(n)

Worked example with the devnet shape ``B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5``:

>>> from session.snapshot import SessionShape
>>> shape = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
>>> w = windows(shape, 3)
>>> (w.start, w.end, w.grace_end, w.claim_open, w.claim_close, w.proof_open, w.proof_close)
(130, 139, 141, 143, 147, 148, 152)
>>> (w.h_n_block, w.h_g_block, w.h_c_block)
(129, 141, 147)
>>> session_of(139, 100, 10), session_of(140, 100, 10)
(3, 4)

A relayer accepts session ``n`` once it has seen block ``start(n) - 1`` and while its head is
below ``grace_end(n)`` (so ``H_g(n)`` is unknown to anyone while relays can still be added):

>>> [relay_status(h, 3, shape).value for h in (128, 129, 139, 140, 141, 142)]
['not_started', 'current', 'current', 'in_grace', 'expired', 'expired']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from session.errors import InvalidSessionInput, SessionExpired, SessionNotStarted

__all__ = [
    "RelayStatus",
    "WindowShape",
    "Windows",
    "accepts_relays",
    "check_relay_session",
    "fallback_session",
    "relay_status",
    "session_of",
    "signing_session",
    "windows",
]


class WindowShape(Protocol):
    """What :func:`windows` reads: ``SessionShape`` or anything with these fields."""

    @property
    def B0(self) -> int: ...
    @property
    def L(self) -> int: ...
    @property
    def G(self) -> int: ...
    @property
    def CO(self) -> int: ...
    @property
    def CW(self) -> int: ...
    @property
    def PO(self) -> int: ...
    @property
    def PW(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Windows:
    """Every height of session ``n`` (all inclusive)."""

    n: int
    start: int
    end: int
    grace_end: int
    claim_open: int
    claim_close: int
    proof_open: int
    proof_close: int
    h_n_block: int  # start - 1: its hash is H_n (the seed)
    h_g_block: int  # grace_end: its hash is H_g (mining)
    h_c_block: int  # claim_close: its hash is H_c (proof requirement and challenge)

    def relay_status(self, head: int) -> RelayStatus:
        """Whether a relayer whose head is ``head`` accepts relays of this session."""
        if head < self.h_n_block:
            return RelayStatus.NOT_STARTED
        if head >= self.grace_end:
            return RelayStatus.EXPIRED
        if head <= self.end:
            return RelayStatus.CURRENT
        return RelayStatus.IN_GRACE

    def in_claim_window(self, height: int) -> bool:
        """Whether a claim for this session can be made at ``height``."""
        return self.claim_open <= height <= self.claim_close

    def claim_closed(self, height: int) -> bool:
        """Whether the claim window is over (``height > claim_close``)."""
        return height > self.claim_close

    def in_proof_window(self, height: int) -> bool:
        """Whether a proof for this session can be submitted at ``height``."""
        return self.proof_open <= height <= self.proof_close

    def proof_closed(self, height: int) -> bool:
        """Whether the proof window is over (``height > proof_close``)."""
        return height > self.proof_close


class RelayStatus(Enum):
    """Where a relayer's head stands for one session (DESIGN §3.2, "Whose height counts")."""

    NOT_STARTED = "not_started"  # head < start(n) - 1: answer SESSION_NOT_STARTED (retryable)
    CURRENT = "current"  # start(n) - 1 <= head <= end(n), head < grace_end(n): accepted
    IN_GRACE = "in_grace"  # end(n) < head < grace_end(n): accepted
    EXPIRED = "expired"  # head >= grace_end(n): answer SESSION_EXPIRED

    @property
    def accepted(self) -> bool:
        return self is RelayStatus.CURRENT or self is RelayStatus.IN_GRACE


def session_of(height: int, B0: int, L: int) -> int:
    """``n(h) = (h - B0) // L``; a height before genesis raises :class:`InvalidSessionInput`.

    >>> session_of(12, 12, 60), session_of(71, 12, 60), session_of(72, 12, 60)
    (0, 0, 1)
    """
    if L <= 0:
        raise InvalidSessionInput(f"L must be positive, got {L}")
    if height < B0:
        raise InvalidSessionInput(f"height {height} is before genesis block {B0}")
    return (height - B0) // L


def windows(shape: WindowShape, n: int) -> Windows:
    """The heights of session ``n`` under ``shape`` (DESIGN §3.2)."""
    if n < 0:
        raise InvalidSessionInput(f"session must be >= 0, got {n}")
    if shape.L <= 0:
        raise InvalidSessionInput(f"L must be positive, got {shape.L}")
    start = shape.B0 + n * shape.L
    end = start + shape.L - 1
    grace_end = end + shape.G
    claim_open = grace_end + shape.CO + 1
    claim_close = grace_end + shape.CO + shape.CW
    proof_open = claim_close + shape.PO + 1
    proof_close = claim_close + shape.PO + shape.PW
    return Windows(
        n=n,
        start=start,
        end=end,
        grace_end=grace_end,
        claim_open=claim_open,
        claim_close=claim_close,
        proof_open=proof_open,
        proof_close=proof_close,
        h_n_block=start - 1,
        h_g_block=grace_end,
        h_c_block=claim_close,
    )


def relay_status(head: int, n: int, shape: WindowShape) -> RelayStatus:
    """Where a relayer with head ``head`` stands for session ``n`` (see :class:`RelayStatus`)."""
    return windows(shape, n).relay_status(head)


def accepts_relays(head: int, n: int, shape: WindowShape) -> bool:
    """Whether a relayer whose head is ``head`` accepts relays of session ``n``: it has seen
    block ``start(n) - 1`` and its head is below ``grace_end(n)``."""
    return relay_status(head, n, shape).accepted


def check_relay_session(head: int, n: int, shape: WindowShape) -> Windows:
    """The relayer's check: the windows of ``n`` when accepted, else :class:`SessionNotStarted`
    or :class:`SessionExpired`."""
    w = windows(shape, n)
    status = w.relay_status(head)
    if status is RelayStatus.NOT_STARTED:
        raise SessionNotStarted(f"session {n} starts after block {w.h_n_block}; head is {head}")
    if status is RelayStatus.EXPIRED:
        raise SessionExpired(f"session {n} ended its grace at block {w.grace_end}; head is {head}")
    return w


def signing_session(head: int, shape: WindowShape, lag: int = 0) -> int:
    """The session a gateway at ``head`` signs relays for.

    The gateway signs for ``n(head)``, which every relayer at most ``lag`` blocks behind it
    already accepts whenever ``head - lag >= start(n) - 1``. Just after a session boundary, when
    a relayer ``lag`` blocks behind may not yet have seen block ``start(n) - 1``, it signs for
    ``n - 1`` instead, as long as ``head < grace_end(n - 1)`` (relayers accept a session only
    below its grace end, so the gateway stops signing for it one block earlier than it used to).
    With ``lag`` at most
    ``min(L, G)`` the answer is accepted by every relayer whose head is in
    ``[head - lag, head]``. ``lag`` 0 or 1 always gives ``n(head)`` (a relayer one block behind
    has seen ``start(n) - 1``); a relayer further behind that still answers
    ``SESSION_NOT_STARTED`` is handled with :func:`fallback_session`.

    >>> from session.snapshot import SessionShape
    >>> shape = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    >>> [signing_session(h, shape, lag=3) for h in (139, 140, 141, 142, 143)]
    [3, 3, 4, 4, 4]
    """
    if lag < 0:
        raise InvalidSessionInput(f"lag must be >= 0, got {lag}")
    n = session_of(head, shape.B0, shape.L)
    if head >= windows(shape, n).grace_end:  # G = 0 and head = end(n): n is over, n+1 started
        return n + 1
    if n > 0:
        h_n_block = windows(shape, n).h_n_block
        if head - lag < h_n_block and head < windows(shape, n - 1).grace_end:
            return n - 1
    return n


def fallback_session(head: int, n: int, shape: WindowShape) -> int | None:
    """The session to sign for after a relayer answered ``SESSION_NOT_STARTED`` for ``n``:
    ``n - 1`` while the gateway's ``head`` is below ``grace_end(n - 1)``, else None (retry
    ``n`` later)."""
    if n <= 0:
        return None
    previous = windows(shape, n - 1)
    return n - 1 if head < previous.grace_end else None
