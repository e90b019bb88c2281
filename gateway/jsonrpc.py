"""JSON-RPC framing at the gateway's edge: split a client body into calls, keep raw bytes.

The gateway never re-serialises what a client or a backend wrote: a batch element is relayed as
the exact bytes the client sent, and an answer is passed back as the exact bytes the backend
wrote. This module keeps only the raw-byte work — batch splitting and ``id`` spans; whether a
call may be relayed at all is the payload rule of :mod:`protocol.payload` (DESIGN §3.3), the
same function a relayer applies. A body that is not JSON at all is -32700; a call that is JSON
but breaks the rule comes back ``invalid`` and is answered -32600 by the gateway, never relayed.

>>> body = b'[{"jsonrpc":"2.0","id": 7 ,"method":"status"}, 3]'
>>> req = parse_body(body)
>>> [c.raw_id for c in req.calls], req.is_batch
([b'7', b'null'], True)
>>> req.calls[1].invalid
True
>>> parse_body(b'{"jsonrpc":"2.0","id":1,"method":"a","Method":"b"}').calls[0].invalid
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest, ClientReason
from protocol.payload import (
    PayloadError,
    check_jsonrpc_payload,
    member_spans,
    split_batch,
)
from protocol.payload import (
    value_end as _value_end,
)

__all__ = [
    "Call",
    "ClientRequest",
    "id_template",
    "member_span",
    "parse_body",
    "split_array",
    "value_end",
]

#: a body that can only be one JSON object (or not JSON at all): never a batch
_OBJECT = re.compile(rb"[ \t\n\r]*\{")
# the id of an invalid call, echoed in its -32600 answer when it is a plain id
_PLAIN_ID = re.compile(rb'null|-?(?:0|[1-9][0-9]*)|"(?:[^"\\]|\\.)*"', re.DOTALL)


def value_end(data: bytes, pos: int) -> int:
    """The index just past the JSON value starting at ``pos`` (ValueError when malformed)."""
    try:
        return _value_end(data, pos)
    except PayloadError as exc:
        raise ValueError(exc.message) from None


def split_array(data: bytes) -> list[bytes]:
    """The raw bytes of each element of a JSON array (whitespace around elements dropped)."""
    try:
        elements = split_batch(data)
    except PayloadError as exc:
        raise ValueError(exc.message) from None
    if elements is None:
        raise ValueError("not an array")
    return elements


def member_span(data: bytes, name: bytes) -> tuple[int, int] | None:
    """The (start, end) of the value of top-level member ``name`` of a JSON object, or None
    (the first one when the name repeats; ValueError when the object is malformed)."""
    try:
        members = member_spans(data)
    except PayloadError as exc:
        raise ValueError(exc.message) from None
    for key, start, end in members or ():
        if key == name:
            return start, end
    return None


def id_template(answer: bytes) -> tuple[bytes, bytes] | None:
    """Split an answer object around its ``id`` value: ``prefix + raw_id + suffix`` rebuilds
    it for another client id (used by the cache). None when the answer has no ``id``."""
    try:
        span = member_span(answer, b"id")
    except ValueError:
        return None
    if span is None:
        return None
    return answer[: span[0]], answer[span[1] :]


@dataclass(slots=True)  # not frozen: one per call on the hot path
class Call:
    """One JSON-RPC call as the client sent it."""

    raw: bytes  # the client's bytes for this call
    raw_id: bytes  # the client's bytes for its id; b"null" when absent or unreadable
    method: str
    params: Any
    is_notification: bool
    invalid: bool  # breaks the payload rule: answered -32600 by the gateway itself
    id: str | int | None = None  # the id's value (None: absent, null, or an invalid call)


@dataclass(slots=True)  # not frozen: one per request on the hot path
class ClientRequest:
    calls: tuple[Call, ...]
    is_batch: bool


def _invalid_id(raw: bytes) -> bytes:
    """The id to echo for a call refused by the payload rule: the first top-level ``id`` when
    it is a plain id, else ``null``."""
    try:
        span = member_span(raw, b"id")
    except ValueError:
        return b"null"
    if span is None or not _PLAIN_ID.fullmatch(raw, span[0], span[1]):
        return b"null"
    return raw[span[0] : span[1]]


def _call(raw: bytes, *, single: bool) -> Call:
    try:
        p = check_jsonrpc_payload(raw)
    except PayloadError as exc:
        if single and exc.not_json:
            raise BadRequest("Parse error", reason=ClientReason.PARSE_ERROR) from None
        return Call(raw, _invalid_id(raw), "", None, False, True)
    return Call(raw, p.raw_id, p.method, p.params, p.notification, False, p.id)


def parse_body(body: bytes, *, max_batch: int | None = None) -> ClientRequest:
    """Split a client body into calls. A body that is not JSON raises
    ``BadRequest(PARSE_ERROR)``; an empty batch raises ``BadRequest(INVALID_REQUEST)``; a
    batch over ``max_batch`` raises ``BadRequest(BATCH_TOO_LARGE)``. Calls that break the
    payload rule come back ``invalid``."""
    if body[:1] == b"{" or _OBJECT.match(body):  # one call: the payload rule parses it, once
        return ClientRequest((_call(body, single=True),), False)
    try:
        elements = split_batch(body)
    except PayloadError as exc:
        raise BadRequest("Parse error", reason=ClientReason.PARSE_ERROR) from exc
    if elements is None:
        return ClientRequest((_call(body, single=True),), False)
    if not elements:
        raise BadRequest("Invalid request", reason=ClientReason.INVALID_REQUEST)
    if max_batch is not None and len(elements) > max_batch:
        raise BadRequest(
            f"batch of {len(elements)} exceeds the limit of {max_batch}",
            reason=ClientReason.BATCH_TOO_LARGE,
        )
    return ClientRequest(tuple(_call(raw, single=False) for raw in elements), True)
