"""Request payloads — the bytes whose sha256 is a relay header's ``payload_hash`` (DESIGN §3.3).

Owns the payload rule, one pure function per kind that the gateway and the relayer both call:

* :func:`check_jsonrpc_payload` — a JSON-RPC payload is the HTTP body byte for byte. It must be
  strict JSON (RFC 8259, UTF-8 without BOM, no NaN/Infinity, nesting at most 128) holding one
  object whose top-level keys, compared on their raw bytes, are among ``jsonrpc``, ``id``,
  ``method``, ``params``, each at most once; ``jsonrpc`` is ``"2.0"``, ``method`` a non-empty
  string written without escapes, ``params`` an array, object or null, ``id`` a string, an
  integer or null. Go backends match keys case-insensitively and let the last one win, so
  ``"Method"``, ``"paramſ"``, ``"\u006dethod"`` or a second ``"method"`` would run another call
  than the one priced and authorised: all are refused. A JSON array is
  ``BATCH_NOT_RELAYABLE``; anything else breaking the rule is ``INVALID_PAYLOAD``.
* :func:`check_rest_payload` — the canonical JSON of a REST-like call (Cosmos REST, CometBFT
  URI) ``{"body":"<base64>","method":"GET","path":"/…","query":"a=1"}``: these four keys,
  sorted, no whitespace, every value printable ASCII other than space, ``"`` and ``\\``, method
  ``GET`` or ``POST``, padded base64 body; and the path rule (:func:`check_rest_path`).

The top-level key scan reads the payload once, in linear time: one regular expression walks
strings and brackets (a 120 KB raw transaction is a handful of tokens), never re-parsing a value.

>>> rest_payload("GET", "/cosmos/bank/v1beta1/balances/cosmos1", "pagination.limit=4", b"")
b'{"body":"","method":"GET","path":"/cosmos/bank/v1beta1/balances/cosmos1","query":"pagination.limit=4"}'
>>> check_jsonrpc_payload(b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}').method
'eth_chainId'
>>> check_jsonrpc_payload(b'{"jsonrpc":"2.0","method":"a","Method":"b"}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
protocol.payload.PayloadError: INVALID_PAYLOAD: top-level key "Method" is not one of ...
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "MAX_NESTING",
    "JsonRpcPayload",
    "PayloadError",
    "RestRequest",
    "check_jsonrpc_payload",
    "check_rest_path",
    "check_rest_payload",
    "is_jsonrpc_batch",
    "member_spans",
    "parse_rest_payload",
    "rest_payload",
    "split_batch",
    "value_end",
]

#: The deepest nesting of arrays and objects a payload may have (the top-level object is 1).
MAX_NESTING: Final = 128

_REST_METHODS: Final = frozenset({"GET", "POST"})
#: Printable ASCII except space, '"' and '\\' (URL characters as sent, percent-encoded).
_URL_PART: Final = re.compile(r"[!#-\[\]-~]*")
_BATCH: Final = re.compile(rb"[ \t\n\r]*\[")
_WS_RUN: Final = re.compile(r"[ \t\n\r]*")
_scan_value: Final = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # C: (value, end)
_scanstring: Final = json.decoder.scanstring  # type: ignore[attr-defined]
_ABSENT: Final = (None, 0, 0)
#: A JSON string, unrolled (no per-character alternation).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Objects nest like arrays: "{" reads as "[" and "}" as "]"; all else is dropped.
_BRACKETS: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_INTEGER: Final = re.compile(rb"-?(?:0|[1-9][0-9]*)")
_PERCENT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")
_SEGMENTS: Final = re.compile(rb"[/\\]")
_KEYS: Final = frozenset({"jsonrpc", "id", "method", "params"})
#: Each allowed key as it is written in a payload without escapes.
_QUOTED: Final = {key: f'"{key}"'.encode() for key in _KEYS}
_PARAMS_VALUE: Final = re.compile(r'"params"[ \t\n\r]*:[ \t\n\r]*')


class PayloadError(ProtocolError):
    """A payload broke the payload rule: ``INVALID_PAYLOAD`` or ``BATCH_NOT_RELAYABLE``.

    ``not_json`` is true when the bytes are not strict JSON at all (a gateway answers -32700),
    false when they are JSON but not an acceptable request (-32600)."""

    code = ErrorCode.INVALID_PAYLOAD

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, not_json: bool = False
    ) -> None:
        super().__init__(message, code=code)
        self.not_json = not_json

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


@dataclass(slots=True)  # not frozen: one per call on the hot path (frozen costs per field)
class JsonRpcPayload:
    """A JSON-RPC payload that passed the rule; ``raw_id`` is the id's bytes as written
    (``b"null"`` when absent), ``id`` its value (``None`` for a notification)."""

    method: str
    params: Any
    id: str | int | None
    raw_id: bytes
    notification: bool


def _not_json(message: str) -> PayloadError:
    return PayloadError(message, not_json=True)


def _too_deep(data: bytes) -> bool:
    """Whether arrays and objects in the strict-JSON ``data`` nest deeper than
    :data:`MAX_NESTING`. Strings are cut out and everything but brackets dropped (C speed);
    then each pass (one ``bytes.replace`` scan, which never rescans its output) deletes the
    innermost pairs, one level, so a skeleton left after ``MAX_NESTING`` passes is deeper.

    >>> _too_deep(b"[" * 128 + b'"[["' + b"]" * 128), _too_deep(b"[" * 129 + b"]" * 129)
    (False, True)
    """
    skeleton = _STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKET)
    for _ in range(MAX_NESTING):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"[]", b"")
    return bool(skeleton)


def _skip(text: str, i: int) -> int:
    """The index of the first non-whitespace character at or after ``i``."""
    m = _WS_RUN.match(text, i)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def _members(text: str) -> dict[str, tuple[Any, int, int]]:
    """The top-level members of the JSON object ``text`` (known to be strict JSON): each raw
    key (the characters between its quotes, escapes not decoded) mapped to its value and the
    value's span. One pass over the top level: each key is read by the C string scanner, each
    value by the C value scanner, and a key outside the rule or repeated is refused before its
    value is read (so at most four values are ever read)."""
    members: dict[str, tuple[Any, int, int]] = {}
    i = _skip(text, 1 + _skip(text, 0))
    if text[i] == "}":
        return members
    while True:
        _, key_end = _scanstring(text, i + 1)
        key = text[i + 1 : key_end - 1]
        if key not in _KEYS:
            raise PayloadError(f'top-level key "{key}" is not one of jsonrpc, id, method, params')
        if key in members:
            raise PayloadError(f'top-level key "{key}" appears more than once')
        start = _skip(text, _skip(text, key_end) + 1)  # past ':'
        value, end = _scan_value(text, start)
        members[key] = (value, start, end)
        i = _skip(text, end)
        if text[i] == "}":
            return members
        i = _skip(text, i + 1)  # past ','


def check_jsonrpc_payload(payload: bytes) -> JsonRpcPayload:
    """The payload rule for a JSON-RPC payload (DESIGN §3.3); raises :class:`PayloadError`.

    >>> p = check_jsonrpc_payload(b' {"method" : "x" , "jsonrpc":"2.0" ,"id":7 } ')
    >>> p.method, p.raw_id, p.notification
    ('x', b'7', False)
    >>> check_jsonrpc_payload(b'[{"jsonrpc":"2.0","id":1,"method":"a"}]')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    protocol.payload.PayloadError: BATCH_NOT_RELAYABLE: a relay carries one JSON-RPC request, ...
    """
    data, document = _strict_object(payload)
    plain = _plain_request(data, document)
    return plain if plain is not None else _scanned_request(data.decode("utf-8"))


def _strict_object(payload: bytes) -> tuple[bytes, dict[str, Any]]:
    """The payload's bytes and decoded object, once it is strict JSON, not too deep, an object
    and its decoded keys allowed; raises :class:`PayloadError` otherwise."""
    data = bytes(payload)
    try:
        document = orjson.loads(data)  # RFC 8259, UTF-8 without BOM, no NaN, depth <= 1024
    except orjson.JSONDecodeError as exc:
        raise _not_json(f"not strict JSON: {exc}") from None
    # bracket bytes (those inside strings included) bound the depth: look closer only past it
    # (and a payload of MAX_NESTING bytes or fewer cannot hold more brackets than that)
    if (
        len(data) > MAX_NESTING
        and data.count(b"[") + data.count(b"{") > MAX_NESTING
        and _too_deep(data)
    ):
        raise _not_json(f"arrays and objects nest deeper than {MAX_NESTING}")
    if type(document) is not dict:
        if isinstance(document, list):
            raise PayloadError(
                "a relay carries one JSON-RPC request, not a batch",
                code=ErrorCode.BATCH_NOT_RELAYABLE,
            )
        raise PayloadError("a JSON-RPC request is a JSON object")
    if not document.keys() <= _KEYS:  # decoded keys: "Method", "paramſ" … fail before the scan
        unknown = sorted(document.keys() - _KEYS)[0]
        raise PayloadError(f'top-level key "{unknown}" is not one of jsonrpc, id, method, params')
    return data, document


#: the backslash as an int: ``_BACKSLASH in data`` is one ``memchr`` (``b"\\" in data`` first
#: tries the needle as an int, and builds and clears a TypeError, on every call)
_BACKSLASH: Final = ord("\\")

#: Values orjson decodes exactly as the full pass's scanner does (an integer past 64 bits
#: becomes a float to orjson, so a float is never taken from it).
_EXACT: Final = frozenset({str, int, bool, type(None)})


def _exact_params(params: list[Any] | dict[str, Any]) -> bool:
    """Whether orjson's ``params`` is certainly the full pass's: its values (and those of
    arrays and objects one level down) are strings, integers, booleans or null."""
    values: Iterable[Any] = params.values() if type(params) is dict else params
    for value in values:
        kind = type(value)
        if kind in _EXACT:
            continue
        if kind is list:
            inner = value
        elif kind is dict:
            inner = value.values()
        else:
            return False
        for item in inner:
            if type(item) not in _EXACT:
                return False
    return True


def _plain_request(data: bytes, document: dict[str, Any]) -> JsonRpcPayload | None:
    """The common shape judged without the member scan, or ``None`` when the full pass must
    judge (it then gives the verdict; this never refuses). ``document`` is ``data`` decoded,
    strict JSON, an object whose decoded keys are all allowed.

    With no backslash anywhere, every raw key is its decoded key; each allowed key written
    exactly once in the whole payload (a key's opening quote follows ``{``, ``,`` or white
    space, so no other match can overlap it and ``count`` sees every one) is then at the top
    level exactly once. The values are the decoded ones; ``params`` holding anything but
    strings, integers, booleans and null (a level down included) is read again by the same C
    scanner as the full pass (orjson turns integers past 64 bits into floats); an ``id`` is
    taken only when its raw bytes follow from its value (not ``0``, which may be ``-0``).
    """
    if _BACKSLASH in data or document.get("jsonrpc") != "2.0":
        return None
    for key in document:
        if data.count(_QUOTED[key]) != 1:
            return None
    method = document.get("method")
    if type(method) is not str or not method:
        return None
    params = document.get("params")
    if params is not None:
        if type(params) is not list and type(params) is not dict:
            return None
        if not _exact_params(params):
            text = data.decode("utf-8")
            found = _PARAMS_VALUE.search(text)
            assert found is not None  # "params" is a key, written once
            params = _scan_value(text, found.end())[0]
    if "id" not in document:
        return JsonRpcPayload(method, params, None, b"null", True)
    ident = document["id"]
    if ident is None:
        return JsonRpcPayload(method, params, None, b"null", False)
    if type(ident) is str:
        return JsonRpcPayload(method, params, ident, b'"' + ident.encode() + b'"', False)
    if type(ident) is int and ident != 0:
        return JsonRpcPayload(method, params, ident, str(ident).encode(), False)
    return None


def _scanned_request(text: str) -> JsonRpcPayload:
    """The rest of the rule by the full pass over the top-level members (:func:`_members`)."""
    members = _members(text)
    if members.get("jsonrpc", _ABSENT)[0] != "2.0":
        raise PayloadError('"jsonrpc" must be present and equal "2.0"')
    method, start, end = members.get("method", _ABSENT)
    if not isinstance(method, str) or not method:
        raise PayloadError('"method" must be a non-empty string')
    if "\\" in text[start:end]:
        raise PayloadError('"method" must be written without escape sequences')
    params = members.get("params", _ABSENT)[0]
    if params is not None and not isinstance(params, list | dict):
        raise PayloadError('"params" must be an array, an object or null')
    if "id" not in members:
        return JsonRpcPayload(method, params, None, b"null", True)
    value, start, end = members["id"]
    raw_id = text[start:end].encode("utf-8")
    if value is None or isinstance(value, str):
        return JsonRpcPayload(method, params, value, raw_id, False)
    if isinstance(value, bool) or not _INTEGER.fullmatch(raw_id):
        raise PayloadError('"id" must be a string, an integer or null')
    return JsonRpcPayload(method, params, int(raw_id), raw_id, False)


def _scan_error(exc: Exception) -> PayloadError:
    return _not_json(f"not JSON: {exc}")


def split_batch(payload: bytes) -> list[bytes] | None:
    """The raw bytes of each element of a JSON array (whitespace around them dropped), or
    ``None`` when the payload is strict JSON but not an array. Raises :class:`PayloadError`
    (``not_json``) when it is not strict JSON. Linear: one pass of the C scanner.

    >>> split_batch(b' [ {"id": 1} , 7 ,"s"] ')
    [b'{"id": 1}', b'7', b'"s"']
    >>> split_batch(b'{"id": 1}') is None
    True
    """
    data = bytes(payload)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _scan_error(exc) from None
    if not isinstance(document, list):
        return None
    text = data.decode("latin-1")  # one character per byte: offsets are byte offsets
    out: list[bytes] = []
    i = _skip(text, 1 + _skip(text, 0))
    if text[i] == "]":
        return out
    try:
        while True:
            _, end = _scan_value(text, i)
            out.append(data[i:end])
            i = _skip(text, end)
            if text[i] == "]":
                return out
            i = _skip(text, i + 1)  # past ','
    except (StopIteration, ValueError, RecursionError) as exc:  # nesting past the C stack
        raise _scan_error(exc) from None


def member_spans(payload: bytes) -> list[tuple[bytes, int, int]] | None:
    """Each top-level member of a JSON object as ``(raw key, value start, value end)`` in
    order (repeats kept), or ``None`` when the payload is not a JSON object. Raises
    :class:`PayloadError` (``not_json``) when it is not JSON. Linear: one pass of the C scanner.

    >>> member_spans(b'{"a":{"id":9}, "id" : 7}')
    [(b'a', 5, 13), (b'id', 22, 23)]
    """
    data = bytes(payload)
    text = data.decode("latin-1")
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    out: list[tuple[bytes, int, int]] = []
    try:
        i = _skip(text, i + 1)
        if text[i] == "}":
            return out
        while True:
            if text[i] != '"':
                raise ValueError(f"expected a key at {i}")
            _, key_end = _scanstring(text, i + 1)
            colon = _skip(text, key_end)
            if text[colon] != ":":
                raise ValueError(f"expected ':' at {colon}")
            start = _skip(text, colon + 1)
            _, end = _scan_value(text, start)
            out.append((data[i + 1 : key_end - 1], start, end))
            i = _skip(text, end)
            if text[i] == "}":
                return out
            if text[i] != ",":
                raise ValueError(f"expected ',' or '}}' at {i}")
            i = _skip(text, i + 1)
    except (StopIteration, ValueError, IndexError, RecursionError) as exc:
        raise _scan_error(exc) from None


def value_end(payload: bytes, pos: int) -> int:
    """The offset just past the JSON value starting at ``pos`` (leading whitespace skipped);
    raises :class:`PayloadError` (``not_json``) when there is none.

    >>> value_end(b'  [1, "]"] ,', 0)
    10
    """
    text = bytes(payload).decode("latin-1")
    try:
        _, end = _scan_value(text, _skip(text, pos))
    except (StopIteration, ValueError, RecursionError) as exc:
        raise _scan_error(exc) from None
    return int(end)


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST-like call: method, path (starts with ``/``), query (no ``?``), raw body."""

    method: str
    path: str
    query: str
    body: bytes


def _unhex(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def check_rest_path(path: str) -> None:
    """The path rule: percent-decode once (hex in either case), split on ``/`` and ``\\``,
    refuse a ``.`` or ``..`` component (``INVALID_PAYLOAD``).

    >>> check_rest_path("/cosmos/bank/v1beta1/denoms_metadata/ibc%2F27394FB0")
    >>> check_rest_path("/cosmos/%252e%252e/x")  # decoded once: "%2e%2e" is no dot segment
    >>> check_rest_path("/cosmos/x%2F..%2Fy")
    Traceback (most recent call last):
    ...
    protocol.payload.PayloadError: INVALID_PAYLOAD: REST payload: path has a "." or ".." segment
    """
    raw = path.encode("utf-8", "surrogatepass")
    if ord("%") in raw:  # an int: see _BACKSLASH
        raw = _PERCENT.sub(_unhex, raw)
    for segment in _SEGMENTS.split(raw):
        if segment in (b".", b".."):
            raise PayloadError('REST payload: path has a "." or ".." segment')


def _check(method: str, path: str, query: str, body: bytes) -> None:
    if not isinstance(method, str) or method not in _REST_METHODS:
        raise PayloadError("REST payload: method must be GET or POST")
    if not isinstance(path, str) or not path.startswith("/") or not _URL_PART.fullmatch(path):
        raise PayloadError(
            "REST payload: path must start with '/' and hold printable ASCII"
            " (percent-encode space, '\"' and '\\')"
        )
    if not isinstance(query, str) or not _URL_PART.fullmatch(query) or query.startswith("?"):
        raise PayloadError(
            "REST payload: query must be printable ASCII without a leading '?'"
            " (percent-encode space, '\"' and '\\')"
        )
    if not isinstance(body, bytes | bytearray | memoryview):
        raise PayloadError("REST payload: body must be bytes")
    check_rest_path(path)


def rest_payload(method: str, path: str, query: str, body: bytes) -> bytes:
    """The canonical JSON payload of a REST-like call (keys sorted, no whitespace); raises
    :class:`PayloadError` when a field breaks the rule (the path rule included)."""
    _check(method, path, query, body)
    b64 = binascii.b2a_base64(bytes(body), newline=False).decode("ascii")
    return (f'{{"body":"{b64}","method":"{method}","path":"{path}","query":"{query}"}}').encode(
        "ascii"
    )


def check_rest_payload(payload: bytes) -> RestRequest:
    """The payload rule for a REST-like payload: byte for byte what :func:`rest_payload`
    produces for its fields, path rule included; raises :class:`PayloadError`."""
    try:
        document = json.loads(bytes(payload).decode("ascii"))
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise _not_json("REST payload: not ASCII JSON") from None
    if not isinstance(document, dict) or set(document) != {"body", "method", "path", "query"}:
        raise PayloadError(
            'REST payload: expected exactly the keys "body", "method", "path", "query"'
        )
    values = (document["method"], document["path"], document["query"], document["body"])
    if not all(isinstance(v, str) for v in values):
        raise PayloadError("REST payload: every value must be a string")
    method, path, query, b64 = values
    try:
        body = binascii.a2b_base64(b64.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise PayloadError("REST payload: body is not padded base64") from None
    if rest_payload(method, path, query, body) != bytes(payload):
        raise PayloadError("REST payload: not in canonical form")
    return RestRequest(method, path, query, body)


#: The former name of :func:`check_rest_payload`.
parse_rest_payload = check_rest_payload


def is_jsonrpc_batch(payload: bytes) -> bool:
    """True when the first non-whitespace byte is ``[`` (a batch is never one relay)."""
    return _BATCH.match(payload) is not None
