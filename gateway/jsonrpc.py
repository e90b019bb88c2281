"""JSON-RPC framing at the gateway's edge: split a client body into calls, keep raw bytes.

The gateway never re-serialises what a client or a backend wrote: a batch element is relayed as
the exact bytes the client sent, and an answer is passed back as the exact bytes the backend
wrote. :func:`value_end` is a small JSON scanner that finds where a value ends, so elements and
``id`` members can be cut out of a body without re-encoding them.

>>> body = b'[{"jsonrpc":"2.0","id": 7 ,"method":"eth_chainId"}, 3]'
>>> req = parse_body(body)
>>> [c.raw_id for c in req.calls], req.is_batch
([b'7', b'null'], True)
>>> req.calls[1].invalid
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import BadRequest, ClientReason

__all__ = [
    "Call",
    "ClientRequest",
    "id_template",
    "member_span",
    "parse_body",
    "split_array",
    "value_end",
]

_WS = b" \t\r\n"
# ids nodes accept: strings, null, and integers in 64 bits (fractions and bigger numbers are
# refused as "Invalid request" with a null id, as nodes do)
_ID_MIN, _ID_MAX = -(1 << 63), 1 << 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


def _skip_ws(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] in _WS:
        pos += 1
    return pos


def value_end(data: bytes, pos: int) -> int:
    """The index just past the JSON value starting at ``pos`` (ValueError when malformed)."""
    pos = _skip_ws(data, pos)
    if pos >= len(data):
        raise ValueError("unexpected end of JSON")
    first = data[pos]
    if first == 0x22:  # "
        m = _STRING.match(data, pos)
        if m is None:
            raise ValueError("unterminated string")
        return m.end()
    if first in (0x5B, 0x7B):  # [ {
        depth = 0
        n = len(data)
        while pos < n:
            ch = data[pos]
            if ch == 0x22:
                m = _STRING.match(data, pos)
                if m is None:
                    raise ValueError("unterminated string")
                pos = m.end()
                continue
            if ch in (0x5B, 0x7B):
                depth += 1
            elif ch in (0x5D, 0x7D):
                depth -= 1
                if depth == 0:
                    return pos + 1
            pos += 1
        raise ValueError("unterminated container")
    m = _SCALAR.match(data, pos)
    if m is None:
        raise ValueError("bad JSON value")
    return m.end()


def split_array(data: bytes) -> list[bytes]:
    """The raw bytes of each element of a JSON array (whitespace around elements dropped)."""
    pos = _skip_ws(data, 0)
    if pos >= len(data) or data[pos] != 0x5B:
        raise ValueError("not an array")
    pos = _skip_ws(data, pos + 1)
    out: list[bytes] = []
    if pos < len(data) and data[pos] == 0x5D:
        return out
    while True:
        start = _skip_ws(data, pos)
        end = value_end(data, start)
        out.append(data[start:end])
        pos = _skip_ws(data, end)
        if pos >= len(data):
            raise ValueError("unterminated array")
        if data[pos] == 0x2C:
            pos += 1
            continue
        if data[pos] == 0x5D:
            return out
        raise ValueError("expected , or ]")


def member_span(data: bytes, name: bytes) -> tuple[int, int] | None:
    """The (start, end) of the value of top-level member ``name`` of a JSON object, or None."""
    pos = _skip_ws(data, 0)
    if pos >= len(data) or data[pos] != 0x7B:
        return None
    pos = _skip_ws(data, pos + 1)
    if pos < len(data) and data[pos] == 0x7D:
        return None
    while pos < len(data):
        key_start = _skip_ws(data, pos)
        key_end = value_end(data, key_start)
        pos = _skip_ws(data, key_end)
        if pos >= len(data) or data[pos] != 0x3A:
            return None
        v_start = _skip_ws(data, pos + 1)
        v_end = value_end(data, v_start)
        if data[key_start + 1 : key_end - 1] == name:
            return v_start, v_end
        pos = _skip_ws(data, v_end)
        if pos < len(data) and data[pos] == 0x2C:
            pos += 1
            continue
        return None
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


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC call as the client sent it."""

    raw: bytes  # the client's bytes for this call
    raw_id: bytes  # the client's bytes for its id; b"null" when absent or unreadable
    method: str
    params: Any
    is_notification: bool
    invalid: bool  # not a JSON-RPC request: answered -32600 by the gateway itself


@dataclass(frozen=True, slots=True)
class ClientRequest:
    calls: tuple[Call, ...]
    is_batch: bool


def _raw_id(raw: bytes, has_id: bool, value: object = None) -> bytes:
    if not has_id:
        return b"null"
    if isinstance(value, int | str):  # fast path: the compact form, written as such
        compact = orjson.dumps(value)
        if raw.count(b'"id":' + compact) == 1 and raw.count(b'"id"') == 1:
            return compact
    try:
        span = member_span(raw, b"id")
    except ValueError:
        span = None
    return raw[span[0] : span[1]] if span else b"null"


def _call(raw: bytes, obj: Any) -> Call:
    if not isinstance(obj, dict):
        return Call(raw, b"null", "", None, False, True)
    has_id = "id" in obj
    id_value = obj.get("id")
    id_ok = (
        not has_id
        or id_value is None
        or isinstance(id_value, str)
        or (
            isinstance(id_value, int)
            and not isinstance(id_value, bool)
            and _ID_MIN <= id_value < _ID_MAX
        )
    )
    raw_id = _raw_id(raw, has_id, id_value) if id_ok else b"null"
    method = obj.get("method")
    params = obj.get("params")
    valid = (
        id_ok
        and obj.get("jsonrpc") == "2.0"
        and isinstance(method, str)
        and bool(method)
        and (params is None or isinstance(params, list | dict))
    )
    return Call(
        raw=raw,
        raw_id=raw_id,
        method=method if isinstance(method, str) else "",
        params=params,
        is_notification=not has_id,
        invalid=not valid,
    )


def parse_body(body: bytes, *, max_batch: int | None = None) -> ClientRequest:
    """Split a client body into calls. Malformed JSON raises ``BadRequest(PARSE_ERROR)``; an
    empty batch raises ``BadRequest(INVALID_REQUEST)``; a batch over ``max_batch`` raises
    ``BadRequest(BATCH_TOO_LARGE)``. Elements that are not requests come back ``invalid``."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("Parse error", reason=ClientReason.PARSE_ERROR) from exc
    if isinstance(parsed, list):
        if not parsed:
            raise BadRequest("Invalid request", reason=ClientReason.INVALID_REQUEST)
        if max_batch is not None and len(parsed) > max_batch:
            raise BadRequest(
                f"batch of {len(parsed)} exceeds the limit of {max_batch}",
                reason=ClientReason.BATCH_TOO_LARGE,
            )
        try:
            raws = split_array(body)
        except ValueError as exc:  # orjson accepted it, so this is our scanner's limit
            raise BadRequest("Parse error", reason=ClientReason.PARSE_ERROR) from exc
        if len(raws) != len(parsed):
            raise BadRequest("Parse error", reason=ClientReason.PARSE_ERROR)
        return ClientRequest(tuple(_call(r, o) for r, o in zip(raws, parsed, strict=True)), True)
    return ClientRequest((_call(body, parsed),), False)
