"""JSON-RPC 2.0 mechanics shared by every JSON-RPC handler (EVM, CometBFT, Celestia).

Owns: parsing payloads into :class:`~rollups.handler.Call` objects (single and batch), the
error bodies a refusal answers with (codes a backend would use: -32700 parse error, -32600
invalid request, -32601 method not found, -32602 invalid params), whether an answer may be
cached at all (:func:`is_cacheable_answer`), canonical cache keys, and reading ``result`` /
``error`` out of an answer without trusting it.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import Any

import orjson

from protocol.errors import ErrorCode
from protocol.payload import PayloadError, check_jsonrpc_payload, member_spans, split_batch
from rollups.errors import (
    BatchNotRelayableError,
    InvalidRequestError,
    ParseError,
    RequestError,
)
from rollups.handler import Call, InvalidCall, JsonId, ParsedRequest

__all__ = [
    "JsonRpcCode",
    "answer_error",
    "answer_result",
    "cache_key",
    "canonical_params",
    "decode_answer",
    "error_of",
    "error_response",
    "is_cacheable_answer",
    "jsonrpc_error",
    "parse_payload",
    "parse_single",
]

_NO_RESULT = object()


class JsonRpcCode(IntEnum):
    """The JSON-RPC 2.0 error codes relaynet answers with itself."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    LIMIT_EXCEEDED = -32005


def jsonrpc_error(id_: JsonId, code: int, message: str, data: Any = None) -> bytes:
    """A JSON-RPC 2.0 error body: ``{"jsonrpc":"2.0","id":…,"error":{"code","message"[,"data"]}}``.

    >>> jsonrpc_error(1, -32601, "method not found")
    b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found"}}'
    """
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "error": error})


def error_response(id_: JsonId, exc: RequestError) -> bytes:
    """The JSON-RPC error body for a refused request (its ``jsonrpc_code`` and message)."""
    return jsonrpc_error(id_, exc.jsonrpc_code, exc.message)


def _refusal(exc: PayloadError) -> RequestError:
    """The rollups error of a payload-rule refusal, keeping its relay code."""
    if exc.code is ErrorCode.BATCH_NOT_RELAYABLE:
        return BatchNotRelayableError(
            "a relay carries exactly one JSON-RPC request; the gateway splits batches"
        )
    cls = ParseError if exc.not_json else InvalidRequestError
    what = "parse error" if exc.not_json else "invalid request"
    return cls(f"{what}: {exc.message}", code=ErrorCode.INVALID_PAYLOAD)


def _call(raw: bytes) -> Call:
    try:
        p = check_jsonrpc_payload(raw)
    except PayloadError as exc:
        raise _refusal(exc) from None
    return Call(method=p.method, params=p.params, id=p.id, raw=raw, notification=p.notification)


def _id_of(raw: bytes) -> JsonId:
    try:
        spans = member_spans(raw) or ()
    except PayloadError:
        return None
    for key, start, end in spans:
        if key == b"id":
            try:
                value = orjson.loads(raw[start:end])
            except orjson.JSONDecodeError:
                return None
            if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
                return value
            return None
    return None


def parse_single(payload: bytes) -> Call:
    """One request object (the relay payload) under the payload rule (DESIGN §3.3): a batch
    raises ``BatchNotRelayableError``, bytes that are not JSON ``ParseError`` and any other
    breach ``InvalidRequestError``, both with the relay code ``INVALID_PAYLOAD``."""
    return _call(payload)


def parse_payload(payload: bytes, max_batch: int | None = None) -> ParsedRequest:
    """A client payload: one object or a batch (elements keep the client's order and their
    raw bytes; each is held to the payload rule)."""
    try:
        elements = split_batch(payload)
    except PayloadError as exc:
        raise _refusal(exc) from None
    if elements is None:
        return ParsedRequest(calls=(_call(payload),), batch=False)
    if not elements:
        raise InvalidRequestError("invalid request: empty batch")
    if max_batch is not None and len(elements) > max_batch:
        raise InvalidRequestError(
            f"invalid request: batch of {len(elements)} requests exceeds the limit of {max_batch}"
        )
    calls: list[Call | InvalidCall] = []
    for raw in elements:
        try:
            calls.append(_call(raw))
        except RequestError as exc:
            calls.append(InvalidCall(id=_id_of(raw), error=exc))
    return ParsedRequest(calls=tuple(calls), batch=True)


def _canonical(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower() if value[:2] in ("0x", "0X") else value
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def canonical_params(params: Any) -> bytes:
    """Params as canonical bytes: hex strings lower-cased, object keys sorted, no spaces.

    >>> canonical_params(["0xAbC", {"b": 1, "a": "latest"}])
    b'["0xabc",{"a":"latest","b":1}]'
    """
    return orjson.dumps(_canonical(params), option=orjson.OPT_SORT_KEYS)


def cache_key(service_id: str, method: str, params: Any) -> str:
    """``<service>:<method>:<sha256 of canonical params, 32 hex>`` — equal questions, one key."""
    digest = hashlib.sha256(canonical_params(params)).hexdigest()[:32]
    return f"{service_id}:{method}:{digest}"


def decode_answer(body: bytes) -> dict[str, Any] | None:
    """The answer object, or ``None`` when the body is not a single JSON-RPC 2.0 answer."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        return None
    if ("result" in data) == ("error" in data):
        return None
    return data


def answer_result(body: bytes) -> Any:
    """The ``result`` of a successful answer; raises ``ValueError`` when there is none."""
    data = decode_answer(body)
    if data is None or "result" not in data:
        raise ValueError("not a successful JSON-RPC answer")
    return data["result"]


def answer_error(body: bytes) -> tuple[int, str] | None:
    """``(code, message)`` of an error answer, else ``None``."""
    data = decode_answer(body)
    return None if data is None else error_of(data)


def error_of(data: dict[str, Any]) -> tuple[int, str] | None:
    """:func:`answer_error` of an answer :func:`decode_answer` gave already."""
    if "error" not in data:
        return None
    error = data["error"]
    if not isinstance(error, dict):
        return (JsonRpcCode.INTERNAL_ERROR, "malformed error object")
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, int) else int(JsonRpcCode.INTERNAL_ERROR),
        message if isinstance(message, str) else "",
    )


def is_cacheable_answer(body: bytes) -> bool:
    """May this answer be cached at all? Only a well-formed success with a non-null result:
    failures are never cached, and ``null`` usually means "not known (yet)"."""
    data = decode_answer(body)
    return data is not None and data.get("result", None) is not None
