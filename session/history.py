"""A value with history by session: records ``(from_session, value)``, read back per session.

This is the one rule every history of DESIGN §3 follows (lengths, positions, parameters, app
stakes, delegations): a change made while session ``m`` is current is recorded with
``from_session = m + 1``; a second change for the same ``from_session`` overwrites the record;
the value in session ``n`` is that of the latest record with ``from_session <= n``.

Reads are a binary search over the ``from_session`` list, O(log k) for k records.

>>> h: History[int] = History()
>>> h.set(3, 10); h.set(5, 20); h.set(5, 25)
>>> h.at(2), h.at(3), h.at(4), h.at(5), h.at(99)
(None, 10, 10, 25, 25)
>>> h.records()
[(3, 10), (5, 25)]
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Generic, TypeVar

from session.errors import HistoryError

__all__ = ["History"]

T = TypeVar("T")


class History(Generic[T]):
    """Records ``(from_session, value)`` in increasing ``from_session`` order."""

    __slots__ = ("_froms", "_values")

    def __init__(self) -> None:
        self._froms: list[int] = []
        self._values: list[T] = []

    def set(self, from_session: int, value: T) -> None:
        """Write the record for ``from_session``: overwrite it if it is the latest one, append
        it if it is newer; an older ``from_session`` raises :class:`HistoryError`."""
        if from_session < 0:
            raise HistoryError(f"from_session must be >= 0, got {from_session}")
        if self._froms:
            last = self._froms[-1]
            if from_session == last:
                self._values[-1] = value
                return
            if from_session < last:
                raise HistoryError(
                    f"record for session {from_session} is older than the latest ({last})"
                )
        self._froms.append(from_session)
        self._values.append(value)

    def at(self, n: int) -> T | None:
        """The value of the latest record with ``from_session <= n``, or None if there is none."""
        i = bisect_right(self._froms, n)
        return self._values[i - 1] if i else None

    def latest(self) -> T | None:
        """The value of the newest record (what every later session sees), or None."""
        return self._values[-1] if self._values else None

    def records(self) -> list[tuple[int, T]]:
        """Every record, oldest first."""
        return list(zip(self._froms, self._values, strict=True))

    def __len__(self) -> int:
        return len(self._froms)

    def __repr__(self) -> str:
        return f"History({self.records()!r})"
