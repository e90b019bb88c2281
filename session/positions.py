"""Positions of one service with history (DESIGN §3.2, "Positions").

A service keeps a list of positions, each holding one active supplier; ``length(n)`` and
``occupant(p, n)`` read it back for any session ``n`` (the latest record with
``from_session <= n``). Changes made while session ``m`` is current take effect from ``m + 1``:

- staking appends the supplier at position ``length``;
- unstaking moves the supplier in the last position into the leaver's position and shortens the
  list by one (if the leaver is last, only the length changes);
- several changes in one session apply in order, each seeing the list as the earlier ones left
  it (the *pending* list for ``m + 1``); a record for ``from_session = m + 1`` that already
  exists is overwritten.

:meth:`PositionHistory.stake` / :meth:`PositionHistory.unstake` apply those rules the way the
contracts do; :meth:`PositionHistory.set_length` / :meth:`PositionHistory.set_position` write one
record each, as a follower does when it replays ``LengthSet`` / ``PositionSet`` events.

>>> a, b, c = b"\\xaa" * 20, b"\\xbb" * 20, b"\\xcc" * 20
>>> h = PositionHistory()
>>> h.stake(a, 1), h.stake(b, 1), h.stake(c, 1)
(0, 1, 2)
>>> h.unstake(a, 3)  # c moves from position 2 into position 0 from session 4
0
>>> h.length(2), h.length(3), h.length(4)
(3, 3, 2)
>>> [x.hex()[:2] for x in h.occupants(3)], [x.hex()[:2] for x in h.occupants(4)]
(['aa', 'bb', 'cc'], ['cc', 'bb'])
>>> h.lengths()
[{'from_session': 2, 'length': 3}, {'from_session': 4, 'length': 2}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from session.errors import HistoryError, InvalidSessionInput
from session.history import History

__all__ = ["LengthRecord", "PositionHistory", "PositionRecord"]

ADDRESS_SIZE = 20


class LengthRecord(TypedDict):
    """One ``LengthSet`` record, as in the ``histories`` vectors."""

    from_session: int
    length: int


class PositionRecord(TypedDict):
    """One ``PositionSet`` record, as in the ``histories`` vectors (supplier as lowercase hex)."""

    from_session: int
    supplier: str


def _check_address(supplier: bytes) -> bytes:
    if not isinstance(supplier, bytes) or len(supplier) != ADDRESS_SIZE:
        raise InvalidSessionInput("a supplier address is 20 bytes")
    return supplier


def _address_from_hex(text: str) -> bytes:
    body = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        raw = bytes.fromhex(body)
    except ValueError as exc:
        raise InvalidSessionInput(f"bad supplier hex {text!r}") from exc
    return _check_address(raw)


class PositionHistory:
    """The position list of one service, with the history of every length and position."""

    __slots__ = ("_index", "_lengths", "_max_from", "_positions")

    def __init__(self) -> None:
        self._lengths: History[int] = History()
        self._positions: list[History[bytes]] = []
        # supplier -> position in the pending list (the view every later session sees);
        # verified on use, so a stale entry is harmless.
        self._index: dict[bytes, int] = {}
        self._max_from = -1  # the newest from_session written to any record

    # -- reading ---------------------------------------------------------------------------

    def length(self, n: int) -> int:
        """``length(n)``: the number of positions in session ``n`` (0 before any record)."""
        value = self._lengths.at(n)
        return 0 if value is None else value

    def occupant(self, p: int, n: int) -> bytes:
        """``occupant(p, n)``: the supplier at position ``p`` in session ``n``; raises
        :class:`HistoryError` unless ``0 <= p < length(n)``."""
        if p < 0 or p >= self.length(n):
            raise HistoryError(f"position {p} does not exist in session {n}")
        value = self._positions[p].at(n) if p < len(self._positions) else None
        if value is None:
            raise HistoryError(f"position {p} has no supplier in session {n}")
        return value

    def occupants(self, n: int) -> list[bytes]:
        """Every supplier of session ``n``, in position order."""
        return [self.occupant(p, n) for p in range(self.length(n))]

    def pending_length(self) -> int:
        """The length of the pending list (the newest length record)."""
        value = self._lengths.latest()
        return 0 if value is None else value

    def pending(self) -> list[bytes]:
        """The pending list: what every session after the newest record sees."""
        out: list[bytes] = []
        for p in range(self.pending_length()):
            value = self._positions[p].latest() if p < len(self._positions) else None
            if value is None:
                raise HistoryError(f"position {p} has no supplier")
            out.append(value)
        return out

    def position_of(self, supplier: bytes) -> int | None:
        """The supplier's position in the pending list, or None if it holds none."""
        length = self.pending_length()
        p = self._index.get(supplier)
        if p is not None and p < length and self._positions[p].latest() == supplier:
            return p
        for q in range(min(length, len(self._positions))):
            if self._positions[q].latest() == supplier:
                self._index[supplier] = q
                return q
        return None

    # -- contract rules --------------------------------------------------------------------

    def stake(self, supplier: bytes, current_session: int) -> int:
        """Append ``supplier`` at position ``length`` from ``current_session + 1``; returns the
        position. :class:`HistoryError` if it already holds a position."""
        from_session = self._next_session(current_session)
        _check_address(supplier)
        if self.position_of(supplier) is not None:
            raise HistoryError(f"supplier 0x{supplier.hex()} already holds a position")
        p = self.pending_length()
        self.set_position(p, supplier, from_session)
        self.set_length(p + 1, from_session)
        return p

    def unstake(self, supplier: bytes, current_session: int) -> int:
        """Remove ``supplier`` from ``current_session + 1``: the last supplier moves into its
        position and the list shortens by one. Returns the position it left.
        :class:`HistoryError` if it holds no position."""
        from_session = self._next_session(current_session)
        p = self.position_of(_check_address(supplier))
        if p is None:
            raise HistoryError(f"supplier 0x{supplier.hex()} holds no position")
        last = self.pending_length() - 1
        if p != last:
            mover = self._positions[last].latest()
            if mover is None:
                raise HistoryError(f"position {last} has no supplier")
            self.set_position(p, mover, from_session)
        self.set_length(last, from_session)
        self._index.pop(supplier, None)
        return p

    def _next_session(self, current_session: int) -> int:
        if current_session < 0:
            raise InvalidSessionInput(f"session must be >= 0, got {current_session}")
        from_session = current_session + 1
        if from_session < self._max_from:
            raise HistoryError(
                f"a change in session {current_session} cannot precede records "
                f"from session {self._max_from}"
            )
        return from_session

    # -- single records (events) -----------------------------------------------------------

    def set_length(self, length: int, from_session: int) -> None:
        """Write ``LengthSet(length, from_session)`` (overwrites a record for the same
        session)."""
        if length < 0:
            raise HistoryError(f"length must be >= 0, got {length}")
        self._lengths.set(from_session, length)
        self._max_from = max(self._max_from, from_session)

    def set_position(self, p: int, supplier: bytes, from_session: int) -> None:
        """Write ``PositionSet(p, supplier, from_session)`` (overwrites a record for the same
        session)."""
        _check_address(supplier)
        if p < 0:
            raise HistoryError(f"position must be >= 0, got {p}")
        while len(self._positions) <= p:
            self._positions.append(History())
        self._positions[p].set(from_session, supplier)
        self._index[supplier] = p
        self._max_from = max(self._max_from, from_session)

    # -- export / import in the vector format ----------------------------------------------

    def lengths(self) -> list[LengthRecord]:
        """Every length record, oldest first: ``[{"from_session", "length"}]``."""
        return [{"from_session": f, "length": v} for f, v in self._lengths.records()]

    def positions(self) -> list[list[PositionRecord]]:
        """Every position's records, oldest first: ``[[{"from_session", "supplier"}]]`` with the
        supplier as lowercase ``0x`` hex."""
        return [
            [{"from_session": f, "supplier": "0x" + v.hex()} for f, v in h.records()]
            for h in self._positions
        ]

    @classmethod
    def from_records(
        cls,
        lengths: Iterable[Mapping[str, Any]],
        positions: Sequence[Iterable[Mapping[str, Any]]],
    ) -> PositionHistory:
        """Rebuild a history from :meth:`lengths` / :meth:`positions` (the vector format)."""
        history = cls()
        for record in lengths:
            history.set_length(int(record["length"]), int(record["from_session"]))
        for p, records in enumerate(positions):
            for record in records:
                supplier = _address_from_hex(str(record["supplier"]))
                history.set_position(p, supplier, int(record["from_session"]))
        return history

    def __repr__(self) -> str:
        return f"PositionHistory(lengths={self.lengths()!r}, positions={self.positions()!r})"
