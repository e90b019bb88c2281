"""Upstream relay streams as DESIGN §4 rules them ("Streams pay only for pushes delivered",
and a quorum's agreement on a WebSocket).

Pure decisions, no I/O: how many pushes a stream signature pays for, when its replacement is
opened, whether a frame's index is the next one, and what each way a relayer ends a stream
means — not a fault, a skip (that supplier sits out the subscription until the next session),
or a fault (stream closed, supplier not used for the subscription again this session, counted
in selection) — and when a push is forwarded: at its first copy, or with a quorum at the
copy that makes it the quorum's (:class:`Agreement`).

>>> stream_window(32, 1000), stream_window(32, 16), grown_window(32, 1000), grown_window(512, 1000)
(32, 16, 64, 1000)
>>> replace_at(32), replace_at(8), replace_at(4)
(24, 4, 1)
>>> check_index(3, 3), check_index(3, 999), check_index(3, 2)
(None, <Fault.JUMP: 'jump'>, <Fault.REPEAT: 'repeat'>)
>>> ending(4000, "MAX_INDEX", last_index=32, max_index=32, head=0, grace_end=100).kind.value
'done'
>>> ending(4000, "MAX_INDEX", last_index=5, max_index=32, head=0, grace_end=100).fault
<Fault.EARLY_MAX_INDEX: 'early_4000'>
>>> ending(4002, "BACKEND_UNAVAILABLE", last_index=5, max_index=32, head=0, grace_end=100).kind
<Ending.SKIP: 'skip'>
>>> ending(4002, "BAD_SIGNATURE", last_index=5, max_index=32, head=0, grace_end=100).fault
<Fault.LIE: 'lie_4002'>
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.errors import Refusal, refusal_of
from protocol.relay import WS_CLOSE_GRACE_ENDED, WS_CLOSE_MAX_INDEX, WS_CLOSE_RELAY_ERROR

__all__ = [
    "Agreement",
    "Decision",
    "Ending",
    "Fault",
    "Offered",
    "Pending",
    "Verdict",
    "check_index",
    "ending",
    "grown_window",
    "is_lie",
    "replace_at",
    "stream_window",
]

GRACE_SLACK = 2  # a 4001 is in time once the gateway's head is this close to grace_end(n)


class Fault(StrEnum):
    """Ways a supplier breaks a stream (each closes it and counts against the supplier)."""

    JUMP = "jump"  # an index past the next one (e.g. straight to max_index to bill a window)
    REPEAT = "repeat"  # an index already delivered
    BAD_RECEIPT = "bad_receipt"  # response hash or signature wrong, or an undecodable frame
    BAD_FRAME = "bad_frame"  # a text frame, or a first frame that is not index 0
    EARLY_MAX_INDEX = "early_4000"  # 4000 before index max_index
    EARLY_GRACE = "early_4001"  # 4001 while the session's grace is still far
    LIE = "lie_4002"  # 4002 with a code of the lie group (or not in the table)
    NO_CLOSE_FRAME = "no_close_frame"  # the connection dropped without a close frame
    NO_PONG = "no_pong"  # no pong within the heartbeat


class Ending(StrEnum):
    DONE = "done"  # ended as the protocol says: not a fault
    SKIP = "skip"  # not a fault, but the supplier sits out the subscription this session
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Ending
    fault: Fault | None = None
    detail: str = ""


def stream_window(window: int, max_stream_relays: int) -> int:
    """``w = min(window, max_stream_relays(n))``: the ``max_index`` a stream is signed with."""
    return max(1, min(window, max_stream_relays))


def grown_window(window: int, max_stream_relays: int) -> int:
    """The window after a replacement came too late: doubled, up to ``max_stream_relays``."""
    return max(1, min(window * 2, max_stream_relays))


def replace_at(w: int) -> int:
    """The index at which a stream's replacement is opened: ``w − max(4, w/4)`` (at least 1,
    so that a stream serves one push before a tiny window asks for its successor)."""
    return max(1, w - max(4, w // 4))


def check_index(expected: int, index: int) -> Fault | None:
    """Frames carry 0, 1, 2, … in order; anything else is a jump or a repeat."""
    if index == expected:
        return None
    return Fault.JUMP if index > expected else Fault.REPEAT


def is_lie(code: str) -> bool:
    """Is a 4002 reason a lie (§3.3's lie group, or a code not in the table)?"""
    return refusal_of(code)[1] is Refusal.LIE


def ending(
    code: int | None, reason: str, *, last_index: int, max_index: int, head: int, grace_end: int
) -> Verdict:
    """What a relayer's close frame means (``code`` None: there was no close frame)."""
    if code is None:
        return Verdict(Ending.FAULT, Fault.NO_CLOSE_FRAME, "connection lost without a close frame")
    if code == WS_CLOSE_MAX_INDEX:
        if last_index == max_index:
            return Verdict(Ending.DONE)
        return Verdict(
            Ending.FAULT, Fault.EARLY_MAX_INDEX, f"4000 after index {last_index} of {max_index}"
        )
    if code == WS_CLOSE_GRACE_ENDED:
        if head >= grace_end - GRACE_SLACK:
            return Verdict(Ending.DONE)
        return Verdict(Ending.FAULT, Fault.EARLY_GRACE, f"4001 at head {head}, grace {grace_end}")
    if code == WS_CLOSE_RELAY_ERROR:
        if is_lie(reason):
            return Verdict(Ending.FAULT, Fault.LIE, f"4002 {reason[:64]!r}")
        return Verdict(Ending.SKIP, None, f"4002 {reason}")
    # any other close (going away, server restart): not a fault, but no churn on that supplier
    return Verdict(Ending.SKIP, None, f"close {code}")


class Decision(StrEnum):
    FORWARD = "forward"  # the agreeing copy that completes the quorum: send it to the client
    WAIT = "wait"  # fewer identical copies than the quorum so far
    DROP = "drop"  # this event went to the client already


@dataclass(frozen=True, slots=True)
class Offered:
    decision: Decision
    outvoted: tuple[bytes, ...] = ()  # suppliers whose copy differs from the forwarded one


@dataclass(slots=True)
class Pending:
    """The copies of one event not agreed yet: content digest → suppliers that sent it."""

    first_seen: float
    copies: dict[bytes, set[bytes]] = field(default_factory=dict)

    def suppliers(self) -> set[bytes]:
        return set().union(*self.copies.values())


class Agreement:
    """Pushes of one subscription's streams, forwarded at their ``quorum``-th identical copy
    from distinct suppliers (DESIGN §4; ``quorum`` 1: the first copy, duplicates dropped).

    An event is named by the handler's identity key and its copies compared by ``content``
    (the push's ``result`` bytes: each node writes its own subscription id).

    >>> a = Agreement(quorum=2)
    >>> a.offer(b"h1", b"x", b"A", 0.0).decision, a.offer(b"h1", b"y", b"L", 0.1).decision
    (<Decision.WAIT: 'wait'>, <Decision.WAIT: 'wait'>)
    >>> a.offer(b"h1", b"x", b"A", 0.15).decision  # one supplier counts once
    <Decision.WAIT: 'wait'>
    >>> a.offer(b"h1", b"x", b"B", 0.2)
    Offered(decision=<Decision.FORWARD: 'forward'>, outvoted=(b'L',))
    >>> a.offer(b"h1", b"x", b"L2", 0.3).decision, a.offer(b"h1", b"z", b"M", 0.3).outvoted
    (<Decision.DROP: 'drop'>, (b'M',))
    >>> a.offer(b"h2", b"q", b"A", 1.0).decision, len(a.expire(before=2.0)), len(a.pending)
    (<Decision.WAIT: 'wait'>, 1, 0)
    """

    def __init__(self, quorum: int, keep: int = 4096) -> None:
        self.quorum = quorum
        self.keep = keep
        self.pending: OrderedDict[bytes, Pending] = OrderedDict()
        self.delivered: OrderedDict[bytes, bytes] = OrderedDict()  # identity → content

    def offer(self, identity: bytes, content: bytes, supplier: bytes, now: float) -> Offered:
        agreed = self.delivered.get(identity)
        if agreed is not None:
            return Offered(Decision.DROP, () if agreed == content else (supplier,))
        entry = self.pending.get(identity)
        if entry is None:
            entry = self.pending[identity] = Pending(now)
            while len(self.pending) > self.keep:
                self.pending.popitem(last=False)
        holders = entry.copies.setdefault(content, set())
        holders.add(supplier)
        if len(holders) < self.quorum:
            return Offered(Decision.WAIT)
        del self.pending[identity]
        self.delivered[identity] = content
        while len(self.delivered) > self.keep:
            self.delivered.popitem(last=False)
        outvoted = entry.suppliers() - holders
        return Offered(Decision.FORWARD, tuple(sorted(outvoted)))

    def expire(self, before: float) -> list[Pending]:
        """Events first seen before ``before`` that never reached the quorum (forgotten)."""
        stale = [k for k, p in self.pending.items() if p.first_seen < before]
        return [self.pending.pop(k) for k in stale]
