"""The failures of session arithmetic and of the in-memory registry snapshot.

Every class is a :class:`protocol.errors.RelaynetError` carrying one stable code from
``protocol.errors.ErrorCode``; callers on the relay path turn them into relay errors as they are.
"""

from __future__ import annotations

from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "HistoryError",
    "InvalidSessionInput",
    "MissingHistory",
    "SessionError",
    "SessionExpired",
    "SessionNotStarted",
    "SnapshotNotReady",
    "UnknownService",
]


class SessionError(RelaynetError):
    """Base of every failure raised by ``session/``."""

    code = ErrorCode.INTERNAL


class InvalidSessionInput(SessionError):
    """A malformed input: bad service id, address or hash length, negative session or height
    before genesis, a slot count out of range."""

    code = ErrorCode.MALFORMED_INPUT


class HistoryError(SessionError):
    """An operation that cannot be applied to a history: a record older than the latest one,
    staking a supplier that already holds a position, unstaking one that holds none, or
    reading a position that does not exist in the session."""

    code = ErrorCode.MALFORMED_INPUT


class SessionNotStarted(SessionError):
    """The relayer has not yet seen block ``start(n) - 1`` (retryable: the gateway may sign
    for ``n - 1`` while it is in grace, or retry shortly)."""

    code = ErrorCode.SESSION_NOT_STARTED


class SessionExpired(SessionError):
    """The relayer's head is past ``grace_end(n)``: relays of session ``n`` are refused."""

    code = ErrorCode.SESSION_EXPIRED


class UnknownService(SessionError, KeyError):
    """The service is not registered (a ``KeyError`` too, as ``RegistrySnapshot`` documents)."""

    code = ErrorCode.UNKNOWN_SERVICE

    def __str__(self) -> str:
        return self.message


class MissingHistory(SessionError, KeyError):
    """No record is in force for the session asked (e.g. parameters read before their first
    record); a ``KeyError`` too."""

    code = ErrorCode.INTERNAL

    def __str__(self) -> str:
        return self.message


class SnapshotNotReady(SessionError):
    """The snapshot has not been given its session shape yet (the follower sets it first)."""

    code = ErrorCode.INTERNAL
