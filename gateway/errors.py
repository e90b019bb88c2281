"""The gateway's failures and how each reaches a client: HTTP status and JSON-RPC error.

One table (:data:`CLIENT_ERRORS`) maps every client-facing reason to its HTTP status and its
JSON-RPC code, so the numbers are stable and live in one place. Relay-layer failures coming back
from relayers keep the wire code of ``protocol.errors`` and decide retries from its table.
A client's mistake is never a 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "CLIENT_ERRORS",
    "BadRequest",
    "ClientReason",
    "GatewayError",
    "NoSupplier",
    "ReasonInfo",
    "RelayFailed",
    "ResponseTooLarge",
    "jsonrpc_error_body",
    "jsonrpc_error_object",
]


class ClientReason(StrEnum):
    """Stable reasons a gateway answers itself (never renumber: clients match on them)."""

    PARSE_ERROR = "PARSE_ERROR"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_PARAMS = "INVALID_PARAMS"  # e.g. a quorum out of 1–5 (DESIGN §4)
    UNAUTHORIZED = "UNAUTHORIZED"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    SERVICE_NOT_ALLOWED = "SERVICE_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    METHOD_DENIED = "METHOD_DENIED"
    NO_SESSION = "NO_SESSION"
    NO_SUPPLIER = "NO_SUPPLIER"
    QUORUM_UNAVAILABLE = "QUORUM_UNAVAILABLE"  # fewer eligible suppliers than the quorum
    RELAY_FAILED = "RELAY_FAILED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    OVERLOADED = "OVERLOADED"  # too many answers buffered at once: shed load
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"  # no supplier could answer within the cap


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    http_status: int
    jsonrpc_code: int
    code: ErrorCode


CLIENT_ERRORS: dict[ClientReason, ReasonInfo] = {
    ClientReason.PARSE_ERROR: ReasonInfo(200, -32700, ErrorCode.MALFORMED_INPUT),
    ClientReason.INVALID_REQUEST: ReasonInfo(200, -32600, ErrorCode.MALFORMED_INPUT),
    ClientReason.INVALID_PARAMS: ReasonInfo(400, -32602, ErrorCode.MALFORMED_INPUT),
    ClientReason.UNAUTHORIZED: ReasonInfo(401, -32001, ErrorCode.SIGNER_NOT_DELEGATED),
    ClientReason.RATE_LIMITED: ReasonInfo(429, -32005, ErrorCode.RATE_LIMITED),
    ClientReason.QUOTA_EXCEEDED: ReasonInfo(429, -32005, ErrorCode.RATE_LIMITED),
    ClientReason.UNKNOWN_SERVICE: ReasonInfo(404, -32601, ErrorCode.UNKNOWN_SERVICE),
    ClientReason.SERVICE_NOT_ALLOWED: ReasonInfo(403, -32001, ErrorCode.APP_NOT_STAKED),
    ClientReason.PAYLOAD_TOO_LARGE: ReasonInfo(413, -32600, ErrorCode.PAYLOAD_TOO_LARGE),
    ClientReason.BATCH_TOO_LARGE: ReasonInfo(413, -32600, ErrorCode.BATCH_NOT_RELAYABLE),
    ClientReason.METHOD_DENIED: ReasonInfo(200, -32601, ErrorCode.METHOD_DENIED),
    ClientReason.NO_SESSION: ReasonInfo(503, -32603, ErrorCode.APP_NOT_STAKED),
    ClientReason.NO_SUPPLIER: ReasonInfo(503, -32603, ErrorCode.BACKEND_UNAVAILABLE),
    ClientReason.QUORUM_UNAVAILABLE: ReasonInfo(503, -32005, ErrorCode.BACKEND_UNAVAILABLE),
    ClientReason.RELAY_FAILED: ReasonInfo(502, -32603, ErrorCode.BACKEND_UNAVAILABLE),
    ClientReason.SHUTTING_DOWN: ReasonInfo(503, -32603, ErrorCode.INTERNAL),
    ClientReason.OVERLOADED: ReasonInfo(503, -32005, ErrorCode.RATE_LIMITED),
    ClientReason.RESPONSE_TOO_LARGE: ReasonInfo(200, -32005, ErrorCode.PAYLOAD_TOO_LARGE),
}


class GatewayError(RelaynetError):
    """Base of every expected gateway failure; carries a :class:`ClientReason`."""

    reason: ClientReason = ClientReason.RELAY_FAILED
    retry_after: int | None = None  # seconds, sent as ``Retry-After`` when set

    def __init__(self, message: str, *, reason: ClientReason | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(message, code=CLIENT_ERRORS[self.reason].code)

    @property
    def http_status(self) -> int:
        return CLIENT_ERRORS[self.reason].http_status

    @property
    def jsonrpc_code(self) -> int:
        return CLIENT_ERRORS[self.reason].jsonrpc_code


class BadRequest(GatewayError):
    """A client mistake: bad key, unknown service, malformed JSON, over a limit (4xx / 200)."""

    reason = ClientReason.INVALID_REQUEST


class NoSupplier(GatewayError):
    """No session or no eligible supplier for the request (503)."""

    reason = ClientReason.NO_SUPPLIER


class RelayFailed(GatewayError):
    """Every attempt failed. ``relay_code`` is the relay-layer code a client may see: set only
    when every supplier tried refused from §3.3's view-dependent or retryable groups (a lie
    or a supplier-specific refusal is never shown as the client's own)."""

    reason = ClientReason.RELAY_FAILED

    def __init__(self, message: str, *, relay_code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.relay_code = relay_code


class ResponseTooLarge(GatewayError):
    """Every supplier tried answered over the call's size cap (-32005)."""

    reason = ClientReason.RESPONSE_TOO_LARGE


def jsonrpc_error_object(raw_id: bytes, code: int, message: str) -> bytes:
    """One JSON-RPC error answer object with the client's id copied as raw bytes."""
    return (
        b'{"jsonrpc":"2.0","id":'
        + raw_id
        + b',"error":{"code":'
        + str(code).encode()
        + b',"message":'
        + orjson.dumps(message)
        + b"}}"
    )


def jsonrpc_error_body(error: GatewayError, raw_id: bytes = b"null") -> bytes:
    """The JSON-RPC body for a gateway error answered to the whole request."""
    return jsonrpc_error_object(raw_id, error.jsonrpc_code, error.message)
