"""Exceptions of ``rollups/``: refused specs and refused requests.

Every class carries a relay error code (``protocol.errors.ErrorCode``). Request refusals also
carry the JSON-RPC error code a backend node would answer with, so a gateway or relayer that
refuses a call itself answers exactly like the node would (DESIGN §6 "transparency"):

=========================  =======================  =======
class                      relay code               JSON-RPC
=========================  =======================  =======
``ParseError``             MALFORMED_INPUT          -32700
``InvalidRequestError``    MALFORMED_INPUT          -32600
``BatchNotRelayableError`` BATCH_NOT_RELAYABLE      -32600
``MethodNotFoundError``    METHOD_DENIED            -32601
``MethodDeniedError``      METHOD_DENIED            -32601
``WritesDisabledError``    METHOD_DENIED            -32601
``InvalidParamsError``     MALFORMED_INPUT          -32602
=========================  =======================  =======
"""

from __future__ import annotations

from typing import ClassVar

from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "BatchNotRelayableError",
    "InvalidParamsError",
    "InvalidRequestError",
    "MethodDeniedError",
    "MethodNotAllowedError",
    "MethodNotFoundError",
    "ParseError",
    "RequestError",
    "RollupsError",
    "SpecError",
    "UnknownRpcTypeError",
    "WritesDisabledError",
]


class RollupsError(RelaynetError):
    """Base of every expected failure raised by ``rollups/`` (``INTERNAL`` unless a subclass
    names its code)."""


class SpecError(RollupsError):
    """A chain spec (or catalogue) was refused; the message says what to fix and where."""

    code = ErrorCode.MALFORMED_INPUT


class UnknownRpcTypeError(SpecError):
    """No handler is registered for an RPC type."""


class RequestError(RollupsError):
    """A request refused before it reached a backend; ``jsonrpc_code`` is the code to show."""

    code = ErrorCode.MALFORMED_INPUT
    jsonrpc_code: ClassVar[int] = -32600


class ParseError(RequestError):
    """The payload is not JSON."""

    jsonrpc_code = -32700


class InvalidRequestError(RequestError):
    """JSON, but not a JSON-RPC 2.0 request object (or an empty batch): -32600."""


class BatchNotRelayableError(RequestError):
    """A relay carries exactly one request; the gateway splits batches."""

    code = ErrorCode.BATCH_NOT_RELAYABLE


class _MethodRefused(RequestError):
    """The method (or route) is not relayed: ``METHOD_DENIED`` on the wire, -32601 in JSON-RPC."""

    code = ErrorCode.METHOD_DENIED
    jsonrpc_code = -32601


class MethodNotFoundError(_MethodRefused):
    """The method is unknown to this RPC type (and no spec override names it)."""


class MethodNotAllowedError(_MethodRefused):
    """A REST-like route called with an HTTP method it does not take (405, gRPC code 12)."""


class MethodDeniedError(_MethodRefused):
    """The method is known but never relayed (admin, personal, miner, test methods …)."""


class WritesDisabledError(MethodDeniedError):
    """A write, and the operator (or the spec) does not allow writes."""


class InvalidParamsError(RequestError):
    """The params are refused (e.g. Arbitrum ``arbtrace_*`` above the classic block range)."""

    jsonrpc_code = -32602
