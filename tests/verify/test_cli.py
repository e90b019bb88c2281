"""``relaynet verify``'s mistakes: one line ``error: …`` and exit 1, never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.anvil import free_port
from protocol.relay import RelayHeader, encode_relay_request
from relaynet.cli import app

DEPLOYMENT = {
    "chain_id": 31337,
    "rpc_url": "http://127.0.0.1:1",
    "contracts": {},
    "token": "0x" + "11" * 20,
    "settlement": "0x" + "22" * 20,
    "genesis_block": 1,
    "shape": {"B0": 1, "L": 10, "G": 2, "CO": 1, "CW": 5, "PO": 0, "PW": 5, "S": 6},
}
RELAYED: dict[str, Any] = {
    "request": '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
    "response": '{"jsonrpc":"2.0","id":1,"result":"0x1"}',
    "headers": {"Relay-Request": "AAAA", "Relay-Receipt": "AAAA", "Relay-Supplier": "0x01"},
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "dep.json").write_text(json.dumps(DEPLOYMENT))
    return tmp_path


def run(files: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", "--deployment", str(files / "dep.json"), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def write(files: Path, doc: object) -> str:
    path = files / "ex.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --url URL --data BODY, or --exchange FILE"),
        (("--url", "http://127.0.0.1:1/v1/x"), "give --url URL --data BODY"),
        (("--exchange", "nope.json"), "no such file"),
        (("--exchange", "x.json", "--url", "http://a"), "leave out --url and --data"),
        (("--url", "ftp://x", "--data", "{}"), "give an http:// or https:// URL"),
        (("--url", "http://a", "--data", "{}", "-H", "nocolon"), "write it as 'Name: value'"),
    ],
)
def test_usage_mistakes_say_what_to_do(files: Path, args: tuple[str, ...], message: str) -> None:
    code, out = run(files, *args)
    assert code == 1 and "error: " in out and message in out


def test_a_saved_exchange_that_is_not_one_is_refused(files: Path) -> None:
    (files / "bad.json").write_text("{nope")
    assert "is not JSON" in run(files, "--exchange", str(files / "bad.json"))[1]
    code, out = run(files, "--exchange", write(files, {**RELAYED, "extra": 1}))
    assert code == 1 and "unknown field 'extra'" in out
    code, out = run(files, "--exchange", write(files, {**RELAYED, "headers": {}}))
    assert code == 1 and "no Relay-Request header: nothing to verify" in out


def test_an_unreachable_chain_is_an_error_not_a_verdict(files: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    doc = {**RELAYED, "headers": {**RELAYED["headers"]}}
    payload = hashlib.sha256(RELAYED["request"].encode()).digest()
    header = RelayHeader(1, "eth", b"\1" * 20, b"\1" * 20, b"\1" * 20, 0, payload, b"\0" * 16, 0, 1)
    doc["headers"]["Relay-Request"] = encode_relay_request(header.encode(), b"\0" * 65)
    doc["headers"]["Relay-Supplier"] = "0x" + "01" * 20
    code, out = run(files, "--rpc-url", url, "--exchange", write(files, doc))
    assert code == 1 and "cannot reach the chain" in out


def test_a_lone_cache_hit_exits_non_zero(files: Path) -> None:
    code, out = run(
        files, "--exchange", write(files, {**RELAYED, "headers": {"Relay-Cache": "hit"}})
    )
    assert code == 1 and "not verifiable (answered by the cache)" in out


def test_a_deployment_with_a_bad_settlement_address_is_named(files: Path) -> None:
    (files / "dep.json").write_text(json.dumps({**DEPLOYMENT, "settlement": "0xnothex"}))
    code, out = run(files, "--exchange", write(files, RELAYED))
    assert code == 1 and "settlement '0xnothex' is not an address" in out
