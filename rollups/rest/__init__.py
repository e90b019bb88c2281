"""REST-like calls (Cosmos REST, CometBFT URI GET) behind the JSON-RPC-shaped handler interface.

DESIGN §3.3: for a REST-like service the relay payload is the canonical JSON
``{"body":"<b64>","method":"GET","path":"/…","query":"a=1"}``
(:func:`protocol.payload.rest_payload`). This module is the seam the gateway and the relayer use
for such calls, without knowing which RPC type they serve:

Gateway, for a client's plain HTTP call (``GET /v1/<service>/<key>/cosmos/bank/…?a=1``)::

    call = rest_call(svc.handler, svc.spec, "GET", "/cosmos/bank/…", "a=1", body)
    # call.raw is the canonical payload to sign and relay; plan / cache as for JSON-RPC
    plan = svc.handler.plan(svc.spec, call)
    # a refusal: status, body = rest_error(exc)

Relayer, before forwarding a verified payload::

    call = handler.parse_relay(payload)          # REST-capable handlers accept both kinds
    http = backend_request(handler, call)        # None: POST the payload as is (JSON-RPC)
    if http is not None:
        send(http.method, http.url(backend_url), http.body)

A handler that serves REST-like calls implements :class:`RestCapable` (an extension of
:class:`~rollups.handler.RpcHandler`; handlers without it refuse REST calls as "method not
found"). A REST call is a :class:`~rollups.handler.Call` whose ``raw`` is the canonical payload,
whose ``method`` is the route name the spec prices (``get.cosmos.bank.v1beta1.balances``,
``block``), whose ``params`` is a dict (CometBFT URI: the decoded query; Cosmos REST:
``{"method", "path", "query"}``) and whose ``id`` is ``None``. The gateway answers the client
with the backend's status (``Relay-Backend-Status``) and body as they are. The probe requests of
a REST-only handler (Cosmos REST) are GETs with a ``path`` for a direct probe, and carry the
canonical payload in ``body``, which is what a gateway relays to probe a supplier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl

import orjson

from protocol.errors import ErrorCode, ProtocolError
from protocol.payload import RestRequest, parse_rest_payload, rest_payload
from rollups.errors import (
    InvalidRequestError,
    MethodNotAllowedError,
    MethodNotFoundError,
    RequestError,
    WritesDisabledError,
)
from rollups.handler import Call, RpcHandler
from rollups.spec import ChainSpec

__all__ = [
    "REST_PAYLOAD_PREFIX",
    "HttpRequest",
    "RestCapable",
    "backend_request",
    "escape_url_part",
    "is_rest_payload",
    "parse_rest_call",
    "query_params",
    "rest_call",
    "rest_error",
]

#: Every canonical REST payload starts with these bytes (keys are sorted; "body" is first).
REST_PAYLOAD_PREFIX = b'{"body":"'


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The HTTP request a relayer sends to the backend for a REST-like call."""

    method: str
    path: str
    query: str
    body: bytes

    def url(self, base: str) -> str:
        """``base`` (the backend URL of the call's role) joined with path and query."""
        target = base.rstrip("/") + self.path
        return f"{target}?{self.query}" if self.query else target

    @property
    def content_type(self) -> str | None:
        return "application/json" if self.body else None


@runtime_checkable
class RestCapable(Protocol):
    """A handler that also takes REST-like calls (extension of ``RpcHandler``)."""

    def rest_call(self, spec: ChainSpec, request: RestRequest) -> Call:
        """The call of a client's REST request (``call.raw`` = the canonical payload).
        Raises ``MethodNotFoundError`` for a route the RPC type does not have."""
        ...

    def http_request(self, call: Call) -> HttpRequest | None:
        """The backend request of a REST-like call; ``None`` for a JSON-RPC call."""
        ...


def is_rest_payload(payload: bytes) -> bool:
    """Whether ``payload`` has the shape of a canonical REST-like payload (cheap test)."""
    return payload.startswith(REST_PAYLOAD_PREFIX)


def query_params(query: str) -> dict[str, str]:
    """A query string as a dict (the last value of a repeated key wins, blanks kept).

    >>> query_params("height=5&prove=true")
    {'height': '5', 'prove': 'true'}
    """
    return dict(parse_qsl(query, keep_blank_values=True))


def escape_url_part(text: str) -> str:
    """Percent-encode what a canonical payload cannot hold as is (space, ``"``, ``\\``,
    control and non-ASCII characters, as UTF-8); everything else stays as sent.

    >>> escape_url_part('path="/store"&data=0x00')
    'path=%22/store%22&data=0x00'
    """
    if all(33 <= ord(ch) <= 126 and ch not in '"\\' for ch in text):
        return text
    out = []
    for ch in text:
        if 33 <= ord(ch) <= 126 and ch not in '"\\':
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def parse_rest_call(payload: bytes) -> RestRequest:
    """A canonical REST-like payload read back; ``InvalidRequestError`` when it is not one."""
    try:
        return parse_rest_payload(payload)
    except ProtocolError as exc:
        raise InvalidRequestError(
            f"invalid request: {exc.message}", code=ErrorCode.INVALID_PAYLOAD
        ) from exc


def rest_call(
    handler: RpcHandler, spec: ChainSpec, method: str, path: str, query: str, body: bytes
) -> Call:
    """Gateway: the call of a client's REST request to a service (path below the service).

    ``path`` and ``query`` are taken as sent (still URL-encoded); characters a canonical
    payload cannot hold (space, ``"``, ``\\``, non-ASCII) are percent-encoded first, which
    a backend decodes to the same value. Raises ``MethodNotFoundError`` when the service's RPC
    type takes no REST calls, and ``InvalidRequestError`` when the method is not 1-16 uppercase
    letters or the path does not start with ``/``.
    """
    path, query = escape_url_part(path), escape_url_part(query)
    if method not in ("GET", "POST"):
        raise MethodNotAllowedError(f"Method Not Allowed: {spec.service_id} takes GET and POST")
    if not isinstance(handler, RestCapable):
        raise MethodNotFoundError(
            f"{spec.service_id} is a {spec.rpc_type} service: it takes JSON-RPC POSTs, "
            "not REST calls"
        )
    try:
        rest_payload(method, path, query, body)  # validates the fields, path rule included
    except ProtocolError as exc:
        raise InvalidRequestError(
            f"invalid request: {exc.message}", code=ErrorCode.INVALID_PAYLOAD
        ) from exc
    return handler.rest_call(spec, RestRequest(method, path, query, body))


def backend_request(handler: RpcHandler, call: Call) -> HttpRequest | None:
    """Relayer: the HTTP request for a REST-like call; ``None`` means POST ``call.raw``."""
    if isinstance(handler, RestCapable):
        return handler.http_request(call)
    return None


#: HTTP status of a refusal of a REST call, by exception class (most specific first).
_REST_STATUS: tuple[tuple[type[RequestError], int, int], ...] = (
    # (class, HTTP status, gRPC code as grpc-gateway reports it)
    (WritesDisabledError, 403, 7),  # PERMISSION_DENIED
    (MethodNotAllowedError, 405, 12),  # UNIMPLEMENTED (grpc-gateway answers 501 there)
    (MethodNotFoundError, 404, 5),  # NOT_FOUND, body {"code": 5, "message": "Not Found"}
)


def rest_error(exc: RequestError) -> tuple[int, bytes]:
    """HTTP status and body for a refused REST call, shaped like grpc-gateway's errors
    (``{"code": <grpc code>, "message": "…", "details": []}``) so Cosmos clients read them."""
    from rollups.errors import MethodDeniedError

    status, grpc = 400, 3  # INVALID_ARGUMENT
    for cls, http_status, grpc_code in _REST_STATUS:
        if isinstance(exc, cls):
            status, grpc = http_status, grpc_code
            break
    else:
        if isinstance(exc, MethodDeniedError):
            status, grpc = 403, 7
    message = "Not Found" if grpc == 5 else exc.message
    body = orjson.dumps({"code": grpc, "message": message, "details": []})
    return status, body
