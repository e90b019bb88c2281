"""The relayer's failures — one hierarchy under :class:`protocol.errors.RelaynetError`.

Relay refusals carry the wire code of DESIGN §3.3 and become the relay-layer error body at the
HTTP boundary (``server.py``); the other classes are operator-facing failures (config, log,
claims) that never reach a client as anything but ``INTERNAL``.
"""

from __future__ import annotations

from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "BackendError",
    "ClaimError",
    "ConfigError",
    "LogCorrupt",
    "LogUnavailable",
    "RelayRefused",
    "RelayerError",
]


class RelayerError(RelaynetError):
    """Base of every failure raised by ``relayer/``."""

    code = ErrorCode.INTERNAL


class RelayRefused(RelayerError):
    """A relay refused by a check; ``code`` is the wire code the client sees."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, code=code)


class BackendError(RelayerError):
    """The backend did not give a complete HTTP response (``BACKEND_UNAVAILABLE``) or not in
    time (``BACKEND_TIMEOUT``)."""

    code = ErrorCode.BACKEND_UNAVAILABLE


class ConfigError(RelayerError):
    """The relayer's configuration or key files are invalid or unreadable."""

    code = ErrorCode.MALFORMED_INPUT


class LogCorrupt(RelayerError):
    """A session log cannot be used (not a relaynet log, or damaged before its tail)."""

    code = ErrorCode.INTERNAL


class LogUnavailable(RelayRefused):
    """The relay log cannot take a record now (a failed write or fsync): the relay is refused
    with ``INTERNAL`` (retryable) rather than answered without a durable record."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INTERNAL, message)


class ClaimError(RelayerError):
    """A claim, proof, settlement or checkpoint could not be submitted (retried with backoff)."""

    code = ErrorCode.INTERNAL
