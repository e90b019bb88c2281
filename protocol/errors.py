"""The wire error codes of relaynet — one table, shared by every package.

Each code carries the HTTP status a relayer answers with, whether a gateway may retry the
request on another supplier, and the JSON-RPC error code a gateway shows a client when the
failure reaches it. Packages raise their own exception classes, each carrying one of these
codes (DESIGN §3.3, "Relay error codes").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ERROR_TABLE",
    "CodeInfo",
    "ErrorCode",
    "ProtocolError",
    "Refusal",
    "RelaynetError",
    "error_body",
    "refusal_of",
]


class ErrorCode(StrEnum):
    """Stable, UPPER_SNAKE error codes. Never renumber or rename: clients match on them."""

    MALFORMED_HEADER = "MALFORMED_HEADER"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    PAYLOAD_HASH_MISMATCH = "PAYLOAD_HASH_MISMATCH"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    WRONG_SUPPLIER = "WRONG_SUPPLIER"
    SESSION_NOT_STARTED = "SESSION_NOT_STARTED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    NOT_IN_SESSION = "NOT_IN_SESSION"
    APP_NOT_STAKED = "APP_NOT_STAKED"
    SIGNER_NOT_DELEGATED = "SIGNER_NOT_DELEGATED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    BAD_COMPUTE_UNITS = "BAD_COMPUTE_UNITS"
    REPLAYED_RELAY = "REPLAYED_RELAY"
    APP_OVER_BUDGET = "APP_OVER_BUDGET"
    BATCH_NOT_RELAYABLE = "BATCH_NOT_RELAYABLE"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    METHOD_DENIED = "METHOD_DENIED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_TIMEOUT = "BACKEND_TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"
    # Decoding of protocol values outside a relay header (hex, lengths, files, proofs).
    MALFORMED_INPUT = "MALFORMED_INPUT"
    BAD_RECEIPT = "BAD_RECEIPT"
    BAD_PROOF = "BAD_PROOF"


class Refusal(StrEnum):
    """What a gateway makes of a relayer refusing a request the gateway built and checked
    itself (DESIGN §3.3). The gateway's own request cannot be malformed, so:

    ``LIE``       — the relayer blames a request that was fine: penalise it, retry elsewhere
                    when safe (never a write that may have reached a backend);
    ``SUPPLIER``  — true of this supplier only (its services, deny list, prices, size limit):
                    retry elsewhere, no penalty;
    ``VIEW``      — about whose view of the sessions is current: switch session or retry
                    elsewhere;
    ``RETRYABLE`` — a passing condition (budget, rate, backend down): retry elsewhere.

    A client sees a relay-layer refusal only when every supplier tried answered from the last
    two groups; any code a relayer invents is a lie.
    """

    LIE = "lie"
    SUPPLIER = "supplier"
    VIEW = "view"
    RETRYABLE = "retryable"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """How one code travels: HTTP status, retry rule, JSON-RPC code shown to clients, and
    what a gateway makes of a relayer answering it (:class:`Refusal`; a code a relayer has no
    business answering is a lie). ``forwarded``: the code may come back after the payload
    reached a backend (a backend failure, ``INTERNAL``), so only an idempotent call may be sent
    again; every other refusal comes before forwarding."""

    http_status: int
    retryable: bool
    jsonrpc_code: int
    refusal: Refusal = Refusal.LIE
    forwarded: bool = False


ERROR_TABLE: dict[ErrorCode, CodeInfo] = {
    ErrorCode.MALFORMED_HEADER: CodeInfo(400, False, -32600, Refusal.LIE),
    ErrorCode.UNSUPPORTED_VERSION: CodeInfo(400, False, -32600, Refusal.LIE),
    ErrorCode.PAYLOAD_TOO_LARGE: CodeInfo(413, False, -32600, Refusal.SUPPLIER),
    ErrorCode.PAYLOAD_HASH_MISMATCH: CodeInfo(400, False, -32600, Refusal.LIE),
    ErrorCode.UNKNOWN_SERVICE: CodeInfo(404, False, -32601, Refusal.SUPPLIER),
    ErrorCode.WRONG_SUPPLIER: CodeInfo(421, False, -32603, Refusal.LIE),
    ErrorCode.SESSION_NOT_STARTED: CodeInfo(425, True, -32603, Refusal.VIEW),
    ErrorCode.SESSION_EXPIRED: CodeInfo(410, False, -32603, Refusal.VIEW),
    ErrorCode.NOT_IN_SESSION: CodeInfo(403, False, -32603, Refusal.VIEW),
    ErrorCode.APP_NOT_STAKED: CodeInfo(403, False, -32003, Refusal.VIEW),
    ErrorCode.SIGNER_NOT_DELEGATED: CodeInfo(403, False, -32003, Refusal.VIEW),
    ErrorCode.BAD_SIGNATURE: CodeInfo(401, False, -32003, Refusal.LIE),
    ErrorCode.BAD_COMPUTE_UNITS: CodeInfo(400, False, -32602, Refusal.SUPPLIER),
    ErrorCode.REPLAYED_RELAY: CodeInfo(409, False, -32603, Refusal.LIE),
    ErrorCode.APP_OVER_BUDGET: CodeInfo(402, True, -32005, Refusal.RETRYABLE),
    ErrorCode.BATCH_NOT_RELAYABLE: CodeInfo(400, False, -32600, Refusal.LIE),
    ErrorCode.INVALID_PAYLOAD: CodeInfo(400, False, -32600, Refusal.LIE),
    ErrorCode.METHOD_DENIED: CodeInfo(403, False, -32601, Refusal.SUPPLIER),
    ErrorCode.BACKEND_UNAVAILABLE: CodeInfo(502, True, -32603, Refusal.RETRYABLE, True),
    ErrorCode.BACKEND_TIMEOUT: CodeInfo(504, True, -32603, Refusal.RETRYABLE, True),
    ErrorCode.RATE_LIMITED: CodeInfo(429, True, -32005, Refusal.RETRYABLE),
    ErrorCode.INTERNAL: CodeInfo(500, True, -32603, Refusal.RETRYABLE, True),
    ErrorCode.MALFORMED_INPUT: CodeInfo(400, False, -32602, Refusal.LIE),
    ErrorCode.BAD_RECEIPT: CodeInfo(502, True, -32603, Refusal.LIE),
    ErrorCode.BAD_PROOF: CodeInfo(400, False, -32602, Refusal.LIE),
}


class RelaynetError(Exception):
    """Base of every expected failure in relaynet; carries one stable code."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    @property
    def info(self) -> CodeInfo:
        return ERROR_TABLE[self.code]

    @property
    def retryable(self) -> bool:
        return ERROR_TABLE[self.code].retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message})"


class ProtocolError(RelaynetError):
    """Bad protocol input: a malformed header, hex string, length, signature or proof."""

    code = ErrorCode.MALFORMED_INPUT


def refusal_of(code: str) -> tuple[ErrorCode | None, Refusal]:
    """The code a relayer answered and its refusal class; ``(None, LIE)`` for a code that is
    not in the table (a relayer inventing codes is lying).

    >>> refusal_of("RATE_LIMITED")
    (<ErrorCode.RATE_LIMITED: 'RATE_LIMITED'>, <Refusal.RETRYABLE: 'retryable'>)
    >>> refusal_of("FATAL_CLIENT_MISTAKE")
    (None, <Refusal.LIE: 'lie'>)
    """
    try:
        known = ErrorCode(code)
    except ValueError:
        return None, Refusal.LIE
    return known, ERROR_TABLE[known].refusal


def error_body(code: ErrorCode, message: str) -> dict[str, object]:
    """The relay-layer error body: ``{"code", "message", "retryable"}`` (DESIGN §3.3)."""
    return {"code": code.value, "message": message, "retryable": ERROR_TABLE[code].retryable}
