"""Request payloads — the bytes whose sha256 is a relay header's ``payload_hash`` (DESIGN §3.3).

Owns: the canonical JSON of a REST-like call (Cosmos REST, CometBFT URI) and the test for a
JSON-RPC batch. A JSON-RPC payload is the HTTP body byte for byte and needs no encoding here.

The REST-like payload is exactly
``{"body":"<base64>","method":"GET","path":"/…","query":"a=1"}``: these four keys, sorted, no
whitespace, every value an ASCII string. To keep the bytes unambiguous across implementations
(no JSON escapes to agree on), method, path and query are limited to printable ASCII without
``"`` or ``\\`` — URLs carry anything else percent-encoded — and the body is padded base64.

>>> rest_payload("GET", "/cosmos/bank/v1beta1/balances/cosmos1", "pagination.limit=4", b"")
b'{"body":"","method":"GET","path":"/cosmos/bank/v1beta1/balances/cosmos1","query":"pagination.limit=4"}'
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Final

from protocol.errors import ProtocolError

__all__ = ["RestRequest", "is_jsonrpc_batch", "parse_rest_payload", "rest_payload"]

_METHOD: Final = re.compile(r"[A-Z]{1,16}")
#: Printable ASCII except space, '"' and '\\' (URL characters as sent, percent-encoded).
_URL_PART: Final = re.compile(r"[!#-\[\]-~]*")
_BATCH: Final = re.compile(rb"[ \t\n\r]*\[")


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST-like call: method, path (starts with ``/``), query (no ``?``), raw body."""

    method: str
    path: str
    query: str
    body: bytes


def _check(method: str, path: str, query: str, body: bytes) -> None:
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ProtocolError("REST payload: method must be 1-16 uppercase ASCII letters")
    if not isinstance(path, str) or not path.startswith("/") or not _URL_PART.fullmatch(path):
        raise ProtocolError(
            "REST payload: path must start with '/' and hold printable ASCII"
            " (percent-encode space, '\"' and '\\')"
        )
    if not isinstance(query, str) or not _URL_PART.fullmatch(query) or query.startswith("?"):
        raise ProtocolError(
            "REST payload: query must be printable ASCII without a leading '?'"
            " (percent-encode space, '\"' and '\\')"
        )
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ProtocolError("REST payload: body must be bytes")


def rest_payload(method: str, path: str, query: str, body: bytes) -> bytes:
    """The canonical JSON payload of a REST-like call (keys sorted, no whitespace)."""
    _check(method, path, query, body)
    b64 = binascii.b2a_base64(bytes(body), newline=False).decode("ascii")
    return (f'{{"body":"{b64}","method":"{method}","path":"{path}","query":"{query}"}}').encode(
        "ascii"
    )


def parse_rest_payload(payload: bytes) -> RestRequest:
    """Read a canonical REST-like payload back; MALFORMED_INPUT unless it is byte for byte
    what :func:`rest_payload` produces for its fields."""
    try:
        document = json.loads(bytes(payload).decode("ascii"))
    except (UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ProtocolError("REST payload: not ASCII JSON") from exc
    if not isinstance(document, dict) or set(document) != {"body", "method", "path", "query"}:
        raise ProtocolError(
            'REST payload: expected exactly the keys "body", "method", "path", "query"'
        )
    values = (document["method"], document["path"], document["query"], document["body"])
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError("REST payload: every value must be a string")
    method, path, query, b64 = values
    try:
        body = binascii.a2b_base64(b64.encode("ascii"), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ProtocolError("REST payload: body is not padded base64") from exc
    if rest_payload(method, path, query, body) != bytes(payload):
        raise ProtocolError("REST payload: not in canonical form")
    return RestRequest(method, path, query, body)


def is_jsonrpc_batch(payload: bytes) -> bool:
    """True when the first non-whitespace byte is ``[`` (a batch is never one relay)."""
    return _BATCH.match(payload) is not None
