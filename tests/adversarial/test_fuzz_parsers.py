"""Fuzzers over every parser a client or a supplier reaches (pure functions; hypothesis).

Properties: a parser fails only with its own expected error (never an unhandled exception),
and what it accepts is what it must be — in particular, a payload the rule accepts is read by
a Go backend (case-insensitive keys, last match wins) as exactly the call the gateway priced,
and a gateway call that is not ``invalid`` passes the rule (nothing invalid is relayed).
``HYPOTHESIS_PROFILE=fuzz`` (``make fuzz``) runs them long.
"""

from __future__ import annotations

import json
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.jsonrpc import parse_body
from protocol.errors import ProtocolError
from protocol.payload import (
    PayloadError,
    check_jsonrpc_payload,
    check_rest_path,
    check_rest_payload,
    rest_payload,
)
from protocol.relay import (
    RELAY_HEADER_SIZE,
    decode_receipt,
    decode_relay_request,
    decode_ws_frame,
    encode_receipt,
    encode_ws_frame,
)
from tests.adversarial.fuzzing import FUZZ, hostile_bytes, paths
from tests.adversarial.gobackend import go_decode

_FIELDS = {"jsonrpc", "id", "method", "params"}


@FUZZ
@given(hostile_bytes())
def test_fuzz_payload_rule(payload: bytes) -> None:
    try:
        p = check_jsonrpc_payload(payload)
    except PayloadError:
        return
    # accepted: one object, only the four keys, and Go runs exactly this call
    doc = json.loads(payload)
    assert isinstance(doc, dict) and set(doc) <= _FIELDS
    assert go_decode(payload) == go_decode(payload, first_wins=True) == doc
    top = json.loads(payload, object_pairs_hook=lambda pairs: pairs)
    assert len({k for k, _ in top}) == len(top)  # no repeated key
    assert all(f'"{k}"'.encode() in payload for k, _ in top)  # keys written without escapes
    assert doc["jsonrpc"] == "2.0" and doc["method"] == p.method and p.method
    assert doc.get("params") == p.params
    assert ("id" not in doc) == p.notification
    if not p.notification:
        assert json.loads(p.raw_id) == doc["id"] == p.id


@FUZZ
@given(hostile_bytes())
def test_fuzz_gateway_body_and_batch_parsing(body: bytes) -> None:
    try:
        req = parse_body(body, max_batch=50)
    except BadRequest as exc:
        assert exc.http_status < 500
        return
    for call in req.calls:
        json.loads(call.raw_id)  # the id echoed back is JSON
        if not call.invalid:  # would be relayed: it must pass the rule
            assert check_jsonrpc_payload(call.raw).method == call.method
            assert call.raw in body


def _dot_segment(path: str) -> bool:
    """Independent reading of the path rule: decode once (urllib), split on / and \\."""
    decoded = urllib.parse.unquote_to_bytes(path)
    return any(s in (b".", b"..") for s in decoded.replace(b"\\", b"/").split(b"/"))


@FUZZ
@given(paths())
def test_fuzz_rest_paths(path: str) -> None:
    try:
        check_rest_path(path)
    except PayloadError:
        assert _dot_segment(path)
    else:
        assert not _dot_segment(path)


@FUZZ
@given(
    st.sampled_from(["GET", "POST", "PUT", "get", ""]),
    paths(),
    st.text(max_size=20),
    st.binary(max_size=40),
    st.integers(0, 6),
    st.integers(0, 255),
)
def test_fuzz_rest_payload(
    method: str, path: str, query: str, body: bytes, cut: int, byte: int
) -> None:
    try:
        payload = rest_payload(method, path, query, body)
    except PayloadError:
        return
    assert method in ("GET", "POST") and not _dot_segment(path)
    request = check_rest_payload(payload)
    assert (request.method, request.path, request.query, request.body) == (
        method,
        path,
        query,
        body,
    )
    mutated = bytearray(payload)
    mutated[min(cut, len(mutated) - 1)] = byte
    try:
        again = check_rest_payload(bytes(mutated))
    except PayloadError:
        return
    assert rest_payload(again.method, again.path, again.query, again.body) == bytes(mutated)


@FUZZ
@given(st.one_of(st.text(max_size=400), st.binary(max_size=300).map(lambda b: b.hex())))
def test_fuzz_relay_request_header(value: str) -> None:
    try:
        header, header_bytes, sig = decode_relay_request(value)
    except ProtocolError:
        return
    assert len(header_bytes) == RELAY_HEADER_SIZE and len(sig) == 65
    assert header.encode() == header_bytes


@FUZZ
@given(st.binary(min_size=220, max_size=224), st.integers(0, 221), st.integers(0, 255))
def test_fuzz_relay_request_mutated(raw: bytes, at: int, byte: int) -> None:
    import base64

    data = bytearray(raw[: RELAY_HEADER_SIZE + 65])
    data[0] = 1
    data[min(at, len(data) - 1)] = byte
    try:
        header, header_bytes, _ = decode_relay_request(base64.b64encode(bytes(data)).decode())
    except ProtocolError:
        return
    assert header.encode() == header_bytes


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=120).map(lambda b: b.hex())))
def test_fuzz_relay_receipt_header(value: str) -> None:
    try:
        rh, sig = decode_receipt(value)
    except ProtocolError:
        return
    assert len(rh) == 32 and len(sig) == 64
    assert decode_receipt(encode_receipt(rh, sig)) == (rh, sig)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_ws_frames_from_a_relayer(data: bytes) -> None:
    try:
        index, rh, sig, body = decode_ws_frame(data)
    except ProtocolError:
        assert len(data) < 104
        return
    assert encode_ws_frame(index, rh, sig, body) == data


@FUZZ
@given(hostile_bytes())
def test_fuzz_ws_first_frame_from_a_gateway(frame: bytes) -> None:
    """A gateway's first frame is a payload: the same rule, the same errors."""
    try:
        check_jsonrpc_payload(frame)
    except PayloadError as exc:
        assert exc.code.value in ("INVALID_PAYLOAD", "BATCH_NOT_RELAYABLE")
