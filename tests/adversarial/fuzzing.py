"""Shared pieces of the fuzzers: the example budget and strategies for hostile payloads.

The budget comes from ``HYPOTHESIS_PROFILE``: ``ci`` (default — a few seconds in all, run by
``make test``) or ``fuzz`` (``make fuzz``: long runs). Settings are applied per test with
:data:`FUZZ`, never globally, so other test modules keep their own.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["FUZZ", "FUZZ_SLOW", "hostile_bytes", "jsonrpc_like", "near_valid", "paths"]

_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
_EXAMPLES = {"ci": 100, "fuzz": 20_000}.get(_PROFILE, 100)
_SLOW_EXAMPLES = {"ci": 25, "fuzz": 2_000}.get(_PROFILE, 25)

#: Per-parser fuzzers (pure functions: cheap examples).
FUZZ = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=_PROFILE == "ci",
)
#: Fuzzers that go through a real server over HTTP (one request per example).
FUZZ_SLOW = settings(
    FUZZ,
    max_examples=_SLOW_EXAMPLES,
    suppress_health_check=list(HealthCheck),
)

_KEYS = [
    '"jsonrpc"',
    '"id"',
    '"method"',
    '"params"',
    '"Method"',
    '"METHOD"',
    '"PARAMS"',
    '"paramſ"',
    '"\\u006dethod"',
    '"m\\u0065thod"',
    '"\u212aey"',
    '"Id"',
    '"extra"',
    '""',
    '"jsonrpc\\u0000"',
]
_VALUES = [
    '"2.0"',
    '"2\\u002e0"',
    '"1.0"',
    "2.0",
    "1",
    "-0",
    "18446744073709551616",
    "1.5",
    "1e3",
    "true",
    "null",
    '"x"',
    '""',
    '"eth_chainId"',
    '"eth_c\\u0068ainId"',
    '"eth_sendRawTransaction"',
    "[]",
    "{}",
    '[1,"a",{"Method":"b"}]',
    '{"k":[1,2]}',
    "[[[[[[[[]]]]]]]]",
    "NaN",
    "Infinity",
    '"\\ud800"',
    '"\u00ff"',
]
_WS = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])


@st.composite
def jsonrpc_like(draw: st.DrawFn) -> bytes:
    """Objects (sometimes arrays of them) built from keys and values that probe the rule:
    folded and escaped keys, repeats, odd values; then maybe a few byte mutations."""
    members = draw(
        st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from(_VALUES), _WS, _WS), max_size=6)
    )
    base = [('"jsonrpc"', '"2.0"', "", ""), ('"method"', '"eth_chainId"', "", "")]
    if draw(st.booleans()):
        members = base + members
    order = draw(st.permutations(members))
    text = "{" + ",".join(f"{a}{k}{b}:{b}{v}{a}" for k, v, a, b in order) + "}"
    if draw(st.integers(0, 9)) == 0:
        text = "[" + text + "," + text + "]"
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(0, 3)) if draw(st.booleans()) else 0):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 2))
        byte = draw(st.integers(0, 255))
        if op == 0:
            data[at] = byte
        elif op == 1:
            data.insert(at, byte)
        else:
            del data[at]
    return bytes(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A request that is valid or one step from it: the four keys in any order, values of
    every type, at most one hostile member added."""
    members = [('"jsonrpc"', draw(st.sampled_from(['"2.0"', '"2\\u002e0"', '"2.0 "'])))]
    members.append(
        ('"method"', draw(st.sampled_from(['"eth_chainId"', '"a"', '"eth_c\\u0068ainId"'])))
    )
    if draw(st.booleans()):
        members.append(('"params"', json.dumps(draw(_JSON))))
    if draw(st.booleans()):
        members.append(('"id"', json.dumps(draw(_JSON))))
    if draw(st.integers(0, 3)) == 0:
        members.append((draw(st.sampled_from(_KEYS)), draw(st.sampled_from(_VALUES))))
    order = draw(st.permutations(members))
    ws = draw(_WS)
    return ("{" + ",".join(f"{ws}{k}{ws}:{v}" for k, v in order) + "}").encode()


def hostile_bytes() -> st.SearchStrategy[bytes]:
    """Anything a client could send: structured probes, raw bytes and nested brackets."""
    deep = st.integers(100, 1200).map(
        lambda d: b'{"jsonrpc":"2.0","id":1,"method":"a","params":' + b"[" * d + b"]" * d + b"}"
    )
    return st.one_of(jsonrpc_like(), near_valid(), near_valid(), st.binary(max_size=300), deep)


def paths() -> st.SearchStrategy[str]:
    """REST paths heavy in dots, slashes, backslashes and percent escapes."""
    piece = st.sampled_from(
        [
            ".",
            "..",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "%25",
            "%252e",
            "/",
            "\\",
            "a",
            "ibc",
            "v1beta1",
            "%",
            "%2",
            "%zz",
            "~",
            "%7e",
            "é",
        ]
    )
    return st.lists(piece, max_size=12).map(lambda parts: "/" + "".join(parts))
