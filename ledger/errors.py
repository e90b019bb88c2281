"""The errors of ``ledger/``: one hierarchy rooted at :class:`protocol.errors.RelaynetError`.

Chain RPC failures (connection refused, timeouts, JSON-RPC errors) and contract reverts are
translated here, at the edge, so callers never see ``aiohttp`` or ``web3`` exceptions:

- :class:`ChainUnavailable` — the settlement chain's RPC did not answer (retryable);
- :class:`ChainRPCError` — it answered with a JSON-RPC error that is not a revert;
- :class:`TransactionReverted` — a call or transaction was refused by a contract; ``reason``
  carries the contract's revert string (``assert ..., "reason"`` in Vyper);
- :class:`TransactionTimeout` — a transaction was sent but no receipt arrived in time;
- :class:`DeploymentError` — a deployment file is missing, malformed or names no contract.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)

from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "ChainRPCError",
    "ChainUnavailable",
    "DeploymentError",
    "LedgerError",
    "TransactionReverted",
    "TransactionTimeout",
    "revert_reason",
    "translate_errors",
]


class LedgerError(RelaynetError):
    """Base of every expected failure of the settlement-chain client and follower
    (``INTERNAL`` unless a subclass names its code)."""


class ChainUnavailable(LedgerError):
    """The settlement chain's RPC endpoint could not be reached or timed out."""

    code = ErrorCode.BACKEND_UNAVAILABLE


class ChainRPCError(LedgerError):
    """The RPC endpoint answered with an error that is not a contract revert (``INTERNAL``)."""


class TransactionReverted(LedgerError):
    """A contract refused a call or transaction; ``reason`` is its revert string."""

    code = ErrorCode.MALFORMED_INPUT

    def __init__(self, reason: str, *, action: str = "", tx_hash: bytes | None = None) -> None:
        self.reason = reason
        self.action = action
        self.tx_hash = tx_hash
        prefix = f"{action}: " if action else ""
        super().__init__(f"{prefix}reverted: {reason or '(no reason given)'}")


class TransactionTimeout(LedgerError):
    """A transaction was sent but no receipt arrived within the deadline."""

    code = ErrorCode.BACKEND_TIMEOUT

    def __init__(self, message: str, *, tx_hash: bytes | None = None) -> None:
        self.tx_hash = tx_hash
        super().__init__(message)


class DeploymentError(LedgerError):
    """A deployment description is missing, malformed, or does not match the chain."""

    code = ErrorCode.MALFORMED_INPUT


_REVERT_PREFIX = re.compile(
    r"^\s*(execution reverted|VM Exception while processing transaction)"
    r"(:\s*(revert)?\s*)?",
    re.IGNORECASE,
)


def revert_reason(exc: BaseException) -> str:
    """The human reason of a web3 revert exception: ``"execution reverted: x"`` gives ``x``."""
    message = getattr(exc, "message", None) or (str(exc.args[0]) if exc.args else str(exc))
    if isinstance(message, dict):  # some providers put the whole error object here
        message = str(message.get("message", message))
    text = str(message).strip()
    stripped = _REVERT_PREFIX.sub("", text, count=1).strip()
    return stripped


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Translate ``aiohttp`` / ``web3`` failures raised inside the block into ledger errors.

    ``action`` names what was attempted (e.g. ``"stake_supplier"``); it prefixes the message.
    ``LedgerError`` raised inside passes through untouched.
    """
    try:
        yield
    except LedgerError:
        raise
    except (ContractLogicError, ContractCustomError, ContractPanicError) as exc:
        raise TransactionReverted(revert_reason(exc), action=action) from exc
    except (aiohttp.ClientError, OSError, ProviderConnectionError) as exc:
        raise ChainUnavailable(f"{action}: settlement chain unreachable: {exc}") from exc
    except (TimeoutError, TimeExhausted) as exc:
        raise ChainUnavailable(f"{action}: settlement chain timed out") from exc
    except Web3RPCError as exc:
        text = str(getattr(exc, "message", exc))
        if "revert" in text.lower():
            raise TransactionReverted(revert_reason(exc), action=action) from exc
        raise ChainRPCError(f"{action}: {text}") from exc
    except Web3Exception as exc:
        raise ChainRPCError(f"{action}: {exc}") from exc
