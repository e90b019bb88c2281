"""protocol.payload: the canonical REST-like payload and the JSON-RPC batch test
(the payload rule itself: tests/protocol/test_payload_rule.py)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError
from protocol.payload import RestRequest, is_jsonrpc_batch, parse_rest_payload, rest_payload

URL_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
methods = st.sampled_from(["GET", "POST"])
paths = (
    st.text(alphabet=URL_CHARS, max_size=80)
    .map(lambda p: "/" + p)
    .filter(lambda p: not _dot_segment(p))
)


def _dot_segment(path: str) -> bool:
    decoded = urllib.parse.unquote_to_bytes(path)
    return any(s in (b".", b"..") for s in decoded.replace(b"\\", b"/").split(b"/"))


queries = st.text(alphabet=URL_CHARS, max_size=80).filter(lambda q: not q.startswith("?"))


@given(methods, paths, queries, st.binary(max_size=200))
def test_canonical_json_and_round_trip(method: str, path: str, query: str, body: bytes) -> None:
    payload = rest_payload(method, path, query, body)
    expected = json.dumps(
        {"method": method, "path": path, "query": query, "body": base64.b64encode(body).decode()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()
    assert payload == expected
    assert parse_rest_payload(payload) == RestRequest(method, path, query, body)


def test_known_payload() -> None:
    assert rest_payload("POST", "/a", "", b"hi") == (
        b'{"body":"aGk=","method":"POST","path":"/a","query":""}'
    )


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("get", "/a", ""),
        ("PUT", "/a", ""),
        ("DELETE", "/a", ""),
        ("GET", "/a/../b", ""),
        ("", "/a", ""),
        ("G E", "/a", ""),
        ("GET", "a", ""),
        ("GET", "", ""),
        ("GET", "/a b", ""),
        ("GET", '/a"', ""),
        ("GET", "/a\\", ""),
        ("GET", "/é", ""),
        ("GET", "/a\n", ""),
        ("GET", "/a", "?x=1"),
        ("GET", "/a", "x=1 2"),
        ("GET", "/a", "x=ü"),
    ],
)
def test_refused_fields(method: str, path: str, query: str) -> None:
    with pytest.raises(ProtocolError) as err:
        rest_payload(method, path, query, b"")
    assert err.value.code is ErrorCode.INVALID_PAYLOAD


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"[]",
        b"{}",
        b'{"body":"","method":"GET","path":"/a"}',
        b'{"body":"","method":"GET","path":"/a","query":"","x":""}',
        b'{"method":"GET","body":"","path":"/a","query":""}',  # unsorted
        b'{"body":"", "method":"GET","path":"/a","query":""}',  # whitespace
        b'{"body":"aGk","method":"GET","path":"/a","query":""}',  # unpadded base64
        b'{"body":"aG-=","method":"GET","path":"/a","query":""}',  # urlsafe alphabet
        b'{"body":1,"method":"GET","path":"/a","query":""}',
        b'{"body":"","method":"G\\u0045T","path":"/a","query":""}',  # escaped
        b'{"body":"","method":"GET","path":"/a","query":""}\n',
        b'\xff{"body":"","method":"GET","path":"/a","query":""}',
        b'{"body":"","body":"","method":"GET","path":"/a","query":""}',  # duplicate key
    ],
)
def test_non_canonical_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_rest_payload(payload)
    assert err.value.code is ErrorCode.INVALID_PAYLOAD


@given(st.binary(max_size=120))
def test_random_payloads_never_escape(payload: bytes) -> None:
    try:
        parsed = parse_rest_payload(payload)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.INVALID_PAYLOAD
    else:
        assert rest_payload(parsed.method, parsed.path, parsed.query, parsed.body) == payload


@pytest.mark.parametrize(
    ("payload", "batch"),
    [
        (b"[]", True),
        (b' \t\r\n[{"jsonrpc":"2.0"}]', True),
        (b'{"jsonrpc":"2.0","method":"eth_chainId"}', False),
        (b"", False),
        (b"   ", False),
        (b'"["', False),
        (b"\xef\xbb\xbf[]", False),  # a BOM is not JSON whitespace
    ],
)
def test_is_jsonrpc_batch(payload: bytes, batch: bool) -> None:
    assert is_jsonrpc_batch(payload) is batch
