"""The payload rule (DESIGN §3.3): every verdict of the known answers' ``payloads`` section,
the Go-decoder smuggling forms, and the linear top-level scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import ErrorCode
from protocol.payload import (
    MAX_NESTING,
    PayloadError,
    check_jsonrpc_payload,
    check_rest_path,
)
from relaynet import payload_vectors, vectors


def test_kat_payloads(kat: dict[str, Any]) -> None:
    cases = kat["payloads"]
    assert len(cases) >= 58
    wrong = []
    for case in cases:
        payload = bytes.fromhex(case["payload"].removeprefix("0x"))
        expected = None if case["valid"] else ErrorCode(case["code"]).value
        got = payload_vectors.verdict(case["type"], payload)
        if got != expected:
            wrong.append((case["note"], expected, got))
    assert wrong == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[],"Method":"eth_blockNumber"}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","PARAMS":[]}',
        '{"jsonrpc":"2.0","id":1,"method":"a","paramſ":[]}'.encode(),
        '{"jsonrpc":"2.0","id":1,"method":"a","\u212aey":[]}'.encode(),
        b'{"jsonrpc":"2.0","id":1,"method":"a","\\u006dethod":"b"}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":[],"params":{}}',
        b'{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"a"}',
        b'{"jsonrpc":"2.0","id":1,"method":"a\\u0062"}',
        b'{"jsonrpc":"2.0","id":1e0,"method":"a"}',
        b'{"jsonrpc":"2.0","id":-0.0,"method":"a"}',
        b'{"jsonrpc":"2.0","id":[],"method":"a"}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":true}',
        b'{"jsonrpc":2.0,"id":1,"method":"a"}',
    ],
)
def test_smuggled_forms_are_invalid(payload: bytes) -> None:
    with pytest.raises(PayloadError) as err:
        check_jsonrpc_payload(payload)
    assert err.value.code is ErrorCode.INVALID_PAYLOAD
    assert not err.value.not_json


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"\xef\xbb\xbf{}",
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":[Infinity]}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":[1e400]}',
        b"{'jsonrpc':'2.0'}",
        b'{"jsonrpc":"2.0","id":1,"method":"a",}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":["\\ud800"]}',
        b'{"jsonrpc":"2.0","id":1,"method":"a","params":'
        + b"[" * MAX_NESTING
        + b"]" * MAX_NESTING
        + b"}",
    ],
)
def test_not_json_at_all(payload: bytes) -> None:
    with pytest.raises(PayloadError) as err:
        check_jsonrpc_payload(payload)
    assert err.value.code is ErrorCode.INVALID_PAYLOAD
    assert err.value.not_json


def test_accepted_request_fields() -> None:
    p = check_jsonrpc_payload(
        b'{"params":[{"Method":"x","method":"y"}] ,"id" : "a\\"b", "method":"m","jsonrpc":"2.0"}'
    )
    assert (p.method, p.id, p.raw_id, p.notification) == ("m", 'a"b', b'"a\\"b"', False)
    assert p.params == [{"Method": "x", "method": "y"}]
    big = check_jsonrpc_payload(b'{"jsonrpc":"2.0","id":-123456789012345678901234,"method":"m"}')
    assert big.id == -123456789012345678901234
    assert big.raw_id == b"-123456789012345678901234"
    note = check_jsonrpc_payload(b'{"jsonrpc":"2.0","method":"m","params":null}')
    assert (note.notification, note.raw_id, note.params) == (True, b"null", None)
    deep = b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1)
    check_jsonrpc_payload(b'{"jsonrpc":"2.0","id":1,"method":"a","params":' + deep + b"}")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/cosmos/tx/v1beta1/simulate/../txs", False),
        ("/cosmos/%2e%2e/txs", False),
        ("/cosmos/%2E%2e/txs", False),
        ("/cosmos/.%2E/txs", False),
        ("/cosmos/x%2F..%2Fy", False),
        ("/cosmos/x%5C..%5Cy", False),
        ("/cosmos/x%2f.", False),
        ("/.", False),
        ("/..", False),
        ("/a/./b", False),
        ("/cosmos/bank/v1beta1/denoms_metadata/ibc%2F27394FB092D2ECCD", True),
        ("/cosmos/%252e%252e/x", True),
        ("/cosmos/...", True),
        ("/cosmos/.x/..y", True),
        ("/cosmos/%2", True),
        ("/", True),
    ],
)
def test_path_rule(path: str, ok: bool) -> None:
    if ok:
        check_rest_path(path)
    else:
        with pytest.raises(PayloadError) as err:
            check_rest_path(path)
        assert err.value.code is ErrorCode.INVALID_PAYLOAD


def test_doctests() -> None:
    import doctest

    import protocol.payload

    result = doctest.testmod(protocol.payload)
    assert result.attempted >= 9 and result.failed == 0


@pytest.mark.parametrize("fixed", [0, 1, None])
def test_fresh_payload_vectors(fixed: int | None, seed: int) -> None:
    cases = payload_vectors.generate(seed if fixed is None else fixed)
    assert [f for c in cases for f in payload_vectors.check(c)] == []
    kinds = {(c["type"], c["valid"], c.get("code")) for c in cases}
    assert kinds == {
        ("jsonrpc", True, None),
        ("jsonrpc", False, "INVALID_PAYLOAD"),
        ("jsonrpc", False, "BATCH_NOT_RELAYABLE"),
        ("rest", True, None),
        ("rest", False, "INVALID_PAYLOAD"),
    }
    assert set(cases[0]) == {"type", "payload", "valid", "note"}
    flipped = dict(next(c for c in cases if c["valid"]), valid=False, code="INVALID_PAYLOAD")
    assert payload_vectors.check(flipped) != []


def test_dev_vectors_writes_the_payloads_section(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    from typer.testing import CliRunner

    from relaynet.cli import app

    result = CliRunner().invoke(app, ["dev", "vectors", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["payloads"]) >= 60
    assert vectors.check({"payloads": data["payloads"]}) == []
