"""The verifier's failures: one base class, a stable code on each (``protocol.errors``).

- :class:`ExchangeError` — the saved exchange or the answer's headers cannot be read
  (MALFORMED_INPUT): nothing was checked.
- :class:`ChainError` — the chain could not be read (BACKEND_UNAVAILABLE): nothing was decided.
- :class:`CheckFailed` — one named check of the algorithm failed: the answer is refused.
"""

from __future__ import annotations

from protocol.errors import ErrorCode, RelaynetError

__all__ = ["ChainError", "CheckFailed", "ExchangeError", "VerifyError"]


class VerifyError(RelaynetError):
    """Base of every failure raised by ``verify/``."""

    code = ErrorCode.MALFORMED_INPUT


class ExchangeError(VerifyError):
    """The exchange (bodies and headers) is not in the form DESIGN §4 describes
    (``MALFORMED_INPUT``, like every verifier failure without a code of its own)."""


class ChainError(VerifyError):
    """The settlement chain's RPC endpoint failed or answered something unreadable."""

    code = ErrorCode.BACKEND_UNAVAILABLE


class CheckFailed(VerifyError):
    """A check of the verification algorithm failed; ``check`` names it (README, "Verifying
    an answer")."""

    def __init__(self, check: str, message: str, *, code: ErrorCode) -> None:
        super().__init__(f"{check}: {message}", code=code)
        self.check = check
        self.reason = message
