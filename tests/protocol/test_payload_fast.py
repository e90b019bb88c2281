"""The payload rule's fast accept path (``protocol.payload._plain_request``) against the full
pass alone (``_scanned_request``): the same verdict, code, message and accepted fields on the
known answers, fresh vectors, the edges of the fast path and generated requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.payload import (
    JsonRpcPayload,
    PayloadError,
    _plain_request,
    _scanned_request,
    _strict_object,
    check_jsonrpc_payload,
)
from relaynet import payload_vectors


def _by_scan(payload: bytes) -> JsonRpcPayload:
    """The rule without the fast path."""
    data, _ = _strict_object(payload)
    return _scanned_request(data.decode("utf-8"))


def _outcome(check: Any, payload: bytes) -> tuple[object, ...]:
    try:
        p = check(payload)
    except PayloadError as exc:
        return ("refused", exc.code, exc.not_json, exc.message)
    # the id's and params' types too: 1 == 1.0 == True would hide a float or a bool
    return ("accepted", p, type(p.id), json.dumps(p.params, sort_keys=True))


def _same(payload: bytes) -> None:
    assert _outcome(check_jsonrpc_payload, payload) == _outcome(_by_scan, payload), payload


def _took_fast_path(payload: bytes) -> bool:
    data, document = _strict_object(payload)
    return _plain_request(data, document) is not None


def test_known_answers_and_fresh_vectors_agree(kat: dict[str, Any], seed: int) -> None:
    cases = kat["payloads"] + payload_vectors.generate(seed)
    payloads = [bytes.fromhex(c["payload"][2:]) for c in cases if c["type"] == "jsonrpc"]
    assert len(payloads) >= 40
    for payload in payloads:
        _same(payload)
    assert sum(_took_fast_path(p) for p in payloads if _outcome(_by_scan, p)[0] == "accepted")


@pytest.mark.parametrize(
    ("payload", "fast"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","pending"]}', True),
        (b' {"method" : "x" ,\n"jsonrpc":"2.0" ,"id":"s\xc3\xa9" ,"params" :\t{"a":[1]}} ', True),
        (b'{"jsonrpc":"2.0","method":"x"}', True),  # a notification, no params
        (b'{"jsonrpc":"2.0","method":"x","id":null,"params":null}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":-7}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":0}', False),  # "0" or "-0": read by the scan
        (b'{"jsonrpc":"2.0","method":"x","id":-0}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":18446744073709551616}', False),  # a float to orjson
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[18446744073709551616,1.5]}', True),
        # params orjson may not read exactly (floats, deeper values): read again by the scan
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[{"a":18446744073709551616}]}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":{"a":[-9223372036854775809]}}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[[[1.5]],{"b":{"c":1}}]}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[[[18446744073709551616]],{}]}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[{"a":1,"b":2,"a":3},true,null]}', True),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[{"id":2}]}', False),  # "id" twice
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":["method"]}', False),  # a key's text
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":["\\"method\\""]}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"method":"y"}', False),  # repeated
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":[],"params":{}}', False),
        (b'{"jsonrpc":"2.0","\\u006dethod":"x","id":1}', False),
        (b'{"jsonrpc":"2.0","method":"x\\u0062","id":1}', False),
        (b'{"jsonrpc":"2.0","method":"","id":1}', False),
        (b'{"jsonrpc":"2.0","method":7,"id":1}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":true}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":1.0}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":[1]}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":"p"}', False),
        (b'{"jsonrpc":"2.0","method":"x","id":1,"params":false}', False),
        (b'{"jsonrpc":2.0,"method":"x","id":1}', False),
        (b'{"jsonrpc":"2.0 ","method":"x","id":1}', False),
        (b'{"method":"x","id":1}', False),
    ],
)
def test_fast_path_edges(payload: bytes, fast: bool) -> None:
    _same(payload)
    assert _took_fast_path(payload) is fast


_KEYS = ["jsonrpc", "id", "method", "params", "Method", "paramſ", "\\u0069d", "x"]
_BIG = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    _BIG,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["2.0", "jsonrpc", "method", '"id"', "params", "\\", ""]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=6,
)
_RAW_VALUES = st.one_of(
    _VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)),
    _VALUES.map(json.dumps),
    st.sampled_from(['"2.0"', '"eth_call"', "-0", "0", "1E2", '"e\\u0074h"', "[]", "{}", "null"]),
)
_IDS = st.one_of(
    st.sampled_from(["-0", "0", "-1", "7", "null", '""', "1.0", "true", "1e2", '"\\u0041"']),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    _BIG.map(str),
    st.text(max_size=5).map(lambda t: json.dumps(t, ensure_ascii=False)),
)
_PARAMS = st.one_of(
    st.lists(_BIG | st.integers() | st.text(max_size=3), max_size=3).map(json.dumps),
    st.lists(_VALUES, max_size=3).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.dictionaries(st.text(max_size=3), _VALUES, max_size=2).map(json.dumps),
    _RAW_VALUES,
)
_WS = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """A request, mostly valid: the two required members, an id and params or not, sometimes
    other values or extra members (repeats, unknown or escaped keys), in any order."""
    odd = st.integers(0, 7).map(lambda n: n == 0)  # one in eight
    version = st.sampled_from(['"2.0 "', "2", "null"]) if draw(odd) else st.just('"2.0"')
    method = _RAW_VALUES if draw(odd) else st.sampled_from(['"eth_call"', '"x"', '"é"'])
    members = [("jsonrpc", draw(version)), ("method", draw(method))]
    if draw(st.booleans()):
        members.append(("id", draw(_IDS)))
    if draw(st.booleans()):
        members.append(("params", draw(_PARAMS)))
    members += draw(
        st.lists(st.tuples(st.sampled_from(_KEYS), _RAW_VALUES), max_size=2)
        if draw(odd)
        else st.just([])
    )
    ordered = draw(st.permutations(members))
    body = ",".join(f'{draw(_WS)}"{k}"{draw(_WS)}:{draw(_WS)}{v}' for k, v in ordered)
    return f"{draw(_WS)}{{{body}{draw(_WS)}}}".encode()


@settings(max_examples=600, deadline=None)
@given(_requests())
def test_generated_requests_agree(payload: bytes) -> None:
    _same(payload)
