"""The ``payloads`` section of the protocol vectors (DESIGN §3.3, the payload and path rules).

:func:`generate` writes fresh cases in the format of ``tests/vectors/protocol-kat.json``:
``{"type": "jsonrpc"|"rest", "payload": "0x…", "valid": bool, "code"?: …, "note": …}``. Each
case is *built* to have its verdict (a valid request, then one breach of one clause of the
rule), and the generator refuses to write a case the project's rule judges otherwise, so a
file it writes is both a test of another implementation and of this one. :func:`check`
recomputes a case's verdict.
"""

from __future__ import annotations

import base64
import json
import random
import urllib.parse
from collections.abc import Callable
from typing import Any

from protocol.encoding import to_hex
from protocol.errors import ErrorCode
from protocol.payload import MAX_NESTING, PayloadError, check_jsonrpc_payload, check_rest_payload

__all__ = ["check", "generate", "verdict"]

Case = dict[str, Any]
_INVALID = ErrorCode.INVALID_PAYLOAD.value
_BATCH = ErrorCode.BATCH_NOT_RELAYABLE.value
_METHODS = ("eth_chainId", "eth_getBalance", "eth_call", "status", "blob.Get", "abci_query", "x")
_WS = ("", " ", "\n", "\t", " \r\n ")


def verdict(kind: str, payload: bytes) -> str | None:
    """The code the rule refuses ``payload`` with, or None when it is accepted."""
    try:
        if kind == "jsonrpc":
            check_jsonrpc_payload(payload)
        else:
            check_rest_payload(payload)
    except PayloadError as exc:
        return exc.code.value
    return None


def check(case: Case) -> list[str]:
    """The disagreements between a case and the project's rule (empty: it agrees)."""
    payload = bytes.fromhex(case["payload"].removeprefix("0x"))
    expected = None if case["valid"] else case["code"]
    got = verdict(case["type"], payload)
    if got != expected:
        return [f"{case['note']}: expected {expected or 'valid'}, got {got or 'valid'}"]
    return []


# -- JSON-RPC -----------------------------------------------------------------------------------


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.randrange(7 if depth < 3 else 4)
    if roll == 0:
        return rng.randrange(-(10**6), 10**6)
    if roll == 1:
        return rng.choice(["", "latest", "0x" + rng.randbytes(4).hex(), "é", 'q"\\'])
    if roll == 2:
        return rng.choice([True, False, None])
    if roll == 3:
        return 1.5
    if roll in (4, 5):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["to", "data", "Method", "method", "PARAMS", "from"]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _request(rng: random.Random) -> list[tuple[str, str]]:
    """The members of a valid request, as (raw key, raw value) in a random order."""
    members = [("jsonrpc", '"2.0"'), ("method", json.dumps(rng.choice(_METHODS)))]
    if rng.random() < 0.8:
        params = rng.choice([[_value(rng) for _ in range(rng.randrange(3))], {"k": _value(rng)}])
        members.append(("params", "null" if rng.random() < 0.1 else json.dumps(params)))
    if rng.random() < 0.85:
        ident = rng.choice(
            [str(rng.randrange(-(2**70), 2**70)), json.dumps(rng.choice(["a", "", 'x"y'])), "null"]
        )
        members.append(("id", ident))
    rng.shuffle(members)
    return members


def _encode(rng: random.Random, members: list[tuple[str, str]]) -> bytes:
    ws = rng.choice(_WS)
    body = ",".join(f'{ws}"{k}"{ws}:{ws}{v}' for k, v in members)
    return f"{rng.choice(_WS)}{{{body}{ws}}}{rng.choice(_WS)}".encode()


def _set(members: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in members if k != key]
    return [*out, (key, value)]


def _flip_case(rng: random.Random, key: str) -> str:
    while True:
        flipped = "".join(c.upper() if rng.random() < 0.5 else c for c in key)
        if flipped != key:
            return flipped


def _escape_one(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text))
    return text[:i] + f"\\u{ord(text[i]):04x}" + text[i + 1 :]


_Breach = Callable[[random.Random, list[tuple[str, str]]], tuple[bytes, str]]


def _breaches() -> list[tuple[str, _Breach]]:
    def keyed(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        key = rng.choice(["jsonrpc", "id", "method", "params"])
        return _encode(rng, [*m, (_flip_case(rng, key), '"b"')]), f"cased key {key}"

    def folded(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        key = rng.choice(["paramſ", "jſonrpc", "\u212aey"])
        return _encode(rng, [*m, (key, "[]")]), f"Unicode-folding key {key!r}"

    def escaped(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        key = rng.choice([k for k, _ in m])
        rest = [(k, v) for k, v in m if k != key]
        value = dict(m)[key]
        return _encode(rng, [*rest, (_escape_one(rng, key), value)]), f"escaped key {key}"

    def repeated(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        key, value = rng.choice(m)
        return _encode(rng, [*m, (key, value)]), f"repeated key {key}"

    def unknown(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        key = rng.choice(["result", "error", "extra", "", "jsonrpc "])
        return _encode(rng, [*m, (key, "1")]), f"unknown key {key!r}"

    def version(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        if rng.random() < 0.3:
            return _encode(rng, [x for x in m if x[0] != "jsonrpc"]), "jsonrpc missing"
        value = rng.choice(['"1.0"', "2.0", '"2"', "null", '""', '"2.0 "'])
        return _encode(rng, _set(m, "jsonrpc", value)), f"jsonrpc {value}"

    def method(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        if rng.random() < 0.2:
            return _encode(rng, [x for x in m if x[0] != "method"]), "method missing"
        value = rng.choice(['""', "7", "null", "[]", '"eth_c\\u0068ainId"', '"a\\/b"'])
        return _encode(rng, _set(m, "method", value)), f"method {value}"

    def params(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        value = rng.choice(['"x"', "5", "true", "false", "1.5"])
        return _encode(rng, _set(m, "params", value)), f"params {value}"

    def ident(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        value = rng.choice(["1.5", "1e3", "1.0", "-0.0", "true", "[]", '{"a":1}', "1E2"])
        return _encode(rng, _set(m, "id", value)), f"id {value}"

    def not_json(rng: random.Random, m: list[tuple[str, str]]) -> tuple[bytes, str]:
        good = _encode(rng, m)
        kind = rng.randrange(7)
        if kind == 0:
            # cut before the object's closing brace (a cut in trailing white space would be valid)
            cut = rng.randrange(1, good.rindex(b"}") + 1)
            return good[:cut].rstrip(b"}") + b" ", "truncated"
        if kind == 1:
            return good + b" x", "trailing bytes"
        if kind == 2:
            return b"\xef\xbb\xbf" + good, "byte order mark"
        if kind == 3:
            return _encode(rng, _set(m, "params", rng.choice(["[NaN]", "[Infinity]"]))), "NaN"
        if kind == 4:
            raw = _encode(rng, _set(m, "params", '["\u00ff"]'))
            return raw.replace(b"\xc3\xbf", b"\xff"), "not UTF-8"
        if kind == 5:
            return _encode(rng, [*m[:-1], (m[-1][0], m[-1][1] + ",")]), "trailing comma"
        return good.replace(b'"', b"'", 2), "single quotes"

    return [
        ("keyed", keyed),
        ("folded", folded),
        ("escaped", escaped),
        ("repeated", repeated),
        ("unknown", unknown),
        ("version", version),
        ("method", method),
        ("params", params),
        ("id", ident),
        ("not_json", not_json),
    ]


def _jsonrpc_cases(rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    for i in range(12):
        cases.append(_case("jsonrpc", _encode(rng, _request(rng)), None, f"valid request {i}"))
    for name, breach in _breaches():
        for _ in range(3):
            payload, note = breach(rng, _request(rng))
            cases.append(_case("jsonrpc", payload, _INVALID, f"{name}: {note}"))
    deep = [("jsonrpc", '"2.0"'), ("method", '"a"')]
    for depth, code in ((MAX_NESTING - 1, None), (MAX_NESTING, _INVALID), (600, _INVALID)):
        nested = "[" * depth + "]" * depth  # the object itself is level 1
        cases.append(
            _case(
                "jsonrpc",
                _encode(rng, [*deep, ("params", nested)]),
                code,
                f"nesting {depth + 1} deep",
            )
        )
    batch = b"[" + b",".join(_encode(rng, _request(rng)) for _ in range(rng.randrange(1, 4))) + b"]"
    cases.append(_case("jsonrpc", batch, _BATCH, "batch"))
    cases.append(_case("jsonrpc", b"[]", _BATCH, "empty batch"))
    cases.append(_case("jsonrpc", json.dumps(rng.choice(_METHODS)).encode(), _INVALID, "a string"))
    return cases


# -- REST-like ----------------------------------------------------------------------------------

_SEGMENTS = (
    "cosmos",
    "bank",
    "v1beta1",
    "balances",
    "ibc%2F27394FB0",
    "%252e%252e",
    "...",
    ".x",
    "a%2Fb",
)
_DOTS = (".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2E%2E")


def _rest(method: str, path: str, query: str, body: bytes) -> bytes:
    b64 = base64.b64encode(body).decode()
    return f'{{"body":"{b64}","method":"{method}","path":"{path}","query":"{query}"}}'.encode()


def _dot_segment(path: str) -> bool:
    """The path rule read independently: decode once (urllib), split on ``/`` and ``\\``."""
    decoded = urllib.parse.unquote_to_bytes(path)
    return any(s in (b".", b"..") for s in decoded.replace(b"\\", b"/").split(b"/"))


def _rest_cases(rng: random.Random) -> list[Case]:
    cases: list[Case] = []

    def path() -> str:
        return "/" + "/".join(rng.choice(_SEGMENTS) for _ in range(rng.randrange(1, 6)))

    def body() -> bytes:
        return rng.randbytes(rng.randrange(0, 20))

    for i in range(8):
        method = rng.choice(["GET", "POST"])
        query = rng.choice(["", "a=1&b=2", "height=5", "x=%22y%22"])
        cases.append(_case("rest", _rest(method, path(), query, body()), None, f"valid call {i}"))
    for _ in range(8):
        segments = path().split("/")
        segments.insert(rng.randrange(1, len(segments) + 1), rng.choice(_DOTS))
        joined = "/".join(segments)
        if rng.random() < 0.3:  # between encoded separators
            joined = joined.replace("/", rng.choice(["%2F", "%2f", "%5C", "%5c"]))
            joined = "/" + joined.lstrip("%2Ff5Cc")
        payload = _rest(rng.choice(["GET", "POST"]), joined, "", b"")
        code = _INVALID if _dot_segment(joined) else None  # an encoded lead may hide it
        cases.append(_case("rest", payload, code, f"dot segment in {joined}"))
    good = _rest("GET", path(), "a=1", b"")
    cases += [
        _case(
            "rest",
            _rest(rng.choice(["PUT", "DELETE", "get", "HEAD"]), path(), "", b""),
            _INVALID,
            "method",
        ),
        _case("rest", _rest("GET", path()[1:], "", b""), _INVALID, "path without leading slash"),
        _case("rest", _rest("GET", path() + " x", "", b""), _INVALID, "space in path"),
        _case("rest", _rest("GET", path(), "?a=1", b""), _INVALID, "query with leading ?"),
        _case("rest", good.replace(b",", b", ", 1), _INVALID, "whitespace"),
        _case("rest", good[:-1] + b',"x":""}', _INVALID, "extra key"),
        _case(
            "rest",
            b'{"method":"GET","body":"","path":"/status","query":""}',
            _INVALID,
            "keys not sorted",
        ),
        _case(
            "rest",
            _rest("POST", path(), "", b"ab").replace(b'"YWI="', b'"YWI"'),
            _INVALID,
            "body not padded base64",
        ),
    ]
    return cases


def _case(kind: str, payload: bytes, code: str | None, note: str) -> Case:
    got = verdict(kind, payload)
    if got != code:
        raise AssertionError(f"payload vector {note!r}: built as {code}, judged {got}")
    case: Case = {"type": kind, "payload": to_hex(payload), "valid": code is None}
    if code is not None:
        case["code"] = code
    case["note"] = note
    return case


def generate(seed: int) -> list[Case]:
    """Fresh ``payloads`` cases, deterministic in ``seed``."""
    rng = random.Random(f"payloads/{seed}")
    return _jsonrpc_cases(rng) + _rest_cases(rng)
