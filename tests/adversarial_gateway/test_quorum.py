"""Quorum reads (DESIGN §4): N distinct suppliers at once, byte identity, every leg's receipt
checked, the -32098 disagreement with every signed answer (verified by ``verify/``), the
refusals, and N legs counted against the key's limits.

Real parts: settlement and backend anvils, two relayer subprocesses, the gateway as a
subprocess; the third supplier is the scripted :class:`~tests.adversarial_gateway.liar.
LyingRelayer` (a staked supplier; honest until a test sets its mode). Every test reads the
signing session first: a quorum of N needs N distinct suppliers in it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from web3 import Web3

from ledger.bootstrap import dev_account
from tests.adversarial_gateway.conftest import SERVICE, LiarNet
from tests.support.gateway_net import post
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files
from verify import ChainReader, Exchange, UrllibTransport, verify_exchange

pytestmark = pytest.mark.slow  # starts processes (anvil, relayers, a gateway)

ACCOUNT = "0x" + "22" * 20


@pytest.fixture
def net(liarnet: LiarNet) -> Iterator[LiarNet]:
    """The liar holds a slot of the signing session (so a full quorum includes it)."""
    liarnet.liar.mode = "honest"
    liarnet.liar_in_session()
    yield liarnet
    liarnet.liar.mode = "honest"


def _call(method: str, params: list[Any], id_: object = "t1") -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})


def _chain(net: LiarNet) -> ChainReader:
    dep = net.network.deployment
    return ChainReader(UrllibTransport(net.settlement.url), bytes.fromhex(dep.settlement[2:]))


def _verify(net: LiarNet, request: bytes, response: bytes, headers: dict[str, str]) -> Any:
    exchange = {"request": request.decode(), "response": response.decode(), "headers": headers}
    return verify_exchange(Exchange.from_json(exchange), _chain(net))


def _metric(net: LiarNet, name: str, **labels: str) -> float:
    with urllib.request.urlopen(net.gateway.metrics_url, timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


ETHERS_DIR = Path(__file__).resolve().parents[2] / "tools" / "ethers"
ETHERS_DAPP = Path(__file__).with_name("ethers_dapp.cjs")


def _two_distinct_suppliers(net: LiarNet) -> set[bytes]:
    """The signing session's suppliers once it has two distinct ones (read first: with few
    relayers a session sometimes has one, where a quorum of 2 is rightly refused)."""
    for _ in range(10):
        suppliers = net.session_suppliers()
        if len(suppliers) >= 2:
            return suppliers
        status, data, _ = post(net.rpc_url, _call("eth_chainId", []), {"Relay-Quorum": "2"})
        assert status == 400 and orjson.loads(data)["error"]["code"] == -32602, data
        for _ in range(net.network.deployment.shape.L):  # the next session
            net.settlement.rpc("anvil_mine", ["0x1"])
            time.sleep(0.05)
    raise AssertionError("no session with two distinct suppliers in 10")


def _ethers(url: str, quorum: str) -> dict[str, Any]:
    """The unchanged ethers v6 dApp (``ethers_dapp.cjs``) run by node against ``url``."""
    assert (ETHERS_DIR / "node_modules" / "ethers").is_dir(), "run `make setup` (tools/ethers)"
    env = {**os.environ, "ETHERS_DIR": str(ETHERS_DIR), "URL": url, "QUORUM": quorum}
    env["ACCOUNT"] = Web3.to_checksum_address(ACCOUNT)
    done = subprocess.run(
        ["node", str(ETHERS_DAPP)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_ethers_with_relay_quorum_2_works_unchanged(net: LiarNet) -> None:
    """An ethers JsonRpcProvider (its own batching and all) with the ``Relay-Quorum: 2``
    header, then with ``?quorum=2`` on the URL: the same reads as a plain session, and every
    answer object a group of two distinct suppliers of the session."""
    suppliers = _two_distinct_suppliers(net)
    for url, header in ((net.rpc_url, "2"), (net.rpc_url + "?quorum=2", "")):
        out = _ethers(url, header)
        assert out["chainId"] == "31337" and out["balance"] == "0" and out["block0"] == 0, out
        assert out["blockNumber"] >= 0 and out["seen"], out
        for seen in out["seen"]:
            assert seen["supplier"] is not None, out  # relayed (no cache in this gateway)
            for group, status in zip(
                seen["supplier"].split(","), seen["status"].split(","), strict=True
            ):
                legs = group.split()
                assert len(legs) == 2 and len(set(legs)) == 2, seen
                assert {bytes.fromhex(s[2:]) for s in legs} <= suppliers, seen
                assert status.split() == ["200", "200"], seen


def test_web3_with_relay_quorum_2_works_unchanged(net: LiarNet) -> None:
    suppliers = net.session_suppliers()
    assert len(suppliers) >= 2  # the liar and at least one honest relayer
    w3 = Web3(Web3.HTTPProvider(net.rpc_url, request_kwargs={"headers": {"Relay-Quorum": "2"}}))
    assert w3.eth.chain_id == 31337
    assert w3.eth.get_balance(Web3.to_checksum_address(ACCOUNT), 0) == 0
    assert w3.eth.get_block(0)["number"] == 0
    # the headers list one group of two legs, each from a distinct supplier, each verified
    request = _call("eth_getBalance", [ACCOUNT, "0x0"], 7)
    status, body, headers = post(net.rpc_url, request, {"Relay-Quorum": "2"})
    assert status == 200 and orjson.loads(body)["result"] == "0x0"
    legs = headers["Relay-Supplier"].split(" ")
    assert len(legs) == 2 and len(set(legs)) == 2 and "," not in headers["Relay-Supplier"]
    assert {bytes.fromhex(s[2:]) for s in legs} <= suppliers
    assert headers["Relay-Backend-Status"] == "200 200"
    assert len(headers["Relay-Receipt"].split(" ")) == 2
    report = _verify(net, request, body, headers)
    assert report.ok and len(report.results) == 2, report.lines()
    # ?quorum=2 on the URL and the key's own default do the same
    for url, extra in (
        (net.rpc_url + "?quorum=2", {}),
        (net.gateway.rpc_url(SERVICE, net.quorum_key), {}),
    ):
        status, body, headers = post(url, request, extra)
        assert status == 200 and len(headers["Relay-Supplier"].split(" ")) == 2, headers


@pytest.mark.parametrize(
    ("what", "body", "quorum"),
    [
        ("a write", _call("eth_sendRawTransaction", ["0x00"]), "2"),
        ("a stateful call", _call("eth_newFilter", [{}]), "2"),
        ("a subscription over HTTP", _call("eth_subscribe", ["newHeads"]), "2"),
        ("a quorum above 5", _call("eth_chainId", []), "6"),
        ("a quorum of 0", _call("eth_chainId", []), "0"),
        ("a quorum that is not a number", _call("eth_chainId", []), "two"),
    ],
)
def test_quorum_refusals(net: LiarNet, what: str, body: bytes, quorum: str) -> None:
    served = sum(net.liar.served.values())
    status, data, _ = post(net.rpc_url, body, {"Relay-Quorum": quorum})
    assert status == 400, (what, data)
    assert orjson.loads(data)["error"]["code"] == -32602, (what, data)
    assert sum(net.liar.served.values()) == served


def test_a_quorum_above_the_sessions_distinct_suppliers_is_refused(net: LiarNet) -> None:
    distinct = len(net.session_suppliers())
    status, data, _ = post(
        net.rpc_url, _call("eth_chainId", []), {"Relay-Quorum": str(distinct + 1)}
    )
    assert status == 400 and orjson.loads(data)["error"]["code"] == -32602, data
    assert "distinct supplier" in orjson.loads(data)["error"]["message"]
    status, data, _ = post(net.rpc_url, _call("eth_chainId", []), {"Relay-Quorum": str(distinct)})
    assert status == 200 and orjson.loads(data)["result"] == "0x7a69", data


def test_each_leg_counts_against_the_keys_quota(net: LiarNet) -> None:
    """quota 3: one quorum-2 read takes 2; a second would take 4 > 3 (429)."""
    url = net.gateway.rpc_url(SERVICE, net.quota_key)
    body = _call("eth_chainId", [])
    status, data, _ = post(url, body, {"Relay-Quorum": "2"})
    assert status == 200, data
    status, data, _ = post(url, body, {"Relay-Quorum": "2"})
    assert status == 429 and orjson.loads(data)["error"]["code"] == -32005, data


def _disagreement(net: LiarNet, block: str) -> tuple[bytes, bytes, dict[str, Any]]:
    distinct = len(net.session_suppliers())  # every supplier is a leg: the liar is one
    request = _call("eth_getBalance", [ACCOUNT, block], "t-q")
    status, body, _ = post(net.rpc_url, request, {"Relay-Quorum": str(distinct)}, timeout=60)
    assert status == 200, body
    error = orjson.loads(body)["error"]
    assert error["code"] == -32098 and error["message"] == "suppliers disagree", body
    answers = error["data"]["answers"]
    assert len(answers) == distinct
    assert len({a["supplier"] for a in answers}) == distinct
    assert net.liar_hex in {a["supplier"] for a in answers}
    bodies = {base64.b64decode(a["body_base64"]) for a in answers}
    assert len(bodies) == 2 and all(a["backend_status"] == 200 for a in answers)
    return request, body, error


def test_a_disagreement_returns_every_signed_answer_and_each_verifies(net: LiarNet) -> None:
    before = _metric(net, "relaynet_gateway_quorum_disagreements_total", method="eth_getBalance")
    net.liar.mode = "differ"
    served = net.liar.served["differ"]
    request, body, _ = _disagreement(net, "0x0")
    assert net.liar.served["differ"] == served + 1  # a fixed block: asked once, no retry
    report = _verify(net, request, body, {})
    assert report.ok, report.lines()
    assert {"0x" + r.proven.supplier.hex() for r in report.results if r.proven} >= {net.liar_hex}
    after = _metric(net, "relaynet_gateway_quorum_disagreements_total", method="eth_getBalance")
    assert after == before + 1
    log = net.gateway.log_path.read_text()
    assert "quorum disagreement: service=devnet method=eth_getBalance" in log
    assert net.liar_hex in log


def test_a_head_dependent_disagreement_is_asked_again_once(net: LiarNet) -> None:
    net.liar.mode = "differ"
    served = net.liar.served["differ"]
    _disagreement(net, "latest")
    assert net.liar.served["differ"] == served + 2  # fresh relays after one block time


def test_every_legs_receipt_signature_is_checked(net: LiarNet) -> None:
    """The liar signs its receipts with a key that is not its own (the response hash is
    right): with every supplier needed as a leg, the quorum cannot be met — never an answer
    carrying the liar's leg."""
    distinct = len(net.session_suppliers())
    net.liar.mode = "signature"
    for i in range(5):
        request = _call("eth_getBalance", [ACCOUNT, "0x0"], f"t-s{i}")
        status, body, headers = post(net.rpc_url, request, {"Relay-Quorum": str(distinct)})
        assert net.liar_hex not in headers.get("Relay-Supplier", ""), (status, body)
        assert "result" not in orjson.loads(body), body
    assert net.liar.served["signature"] >= 1


def test_too_few_eligible_suppliers_is_32005_with_retry_after(net: LiarNet) -> None:
    """A caught liar's breaker is open for a moment: a quorum needing it is then -32005
    with ``Retry-After`` (never a leg sent to it as a last resort)."""
    distinct = len(net.session_suppliers())
    net.liar.mode = "signature"
    seen: list[tuple[int, dict[str, Any], dict[str, str]]] = []
    for i in range(60):  # bounded: a lie opens the breaker, the next call finds it open
        request = _call("eth_getBalance", [ACCOUNT, "0x0"], f"t-e{i}")
        status, body, headers = post(net.rpc_url, request, {"Relay-Quorum": str(distinct)})
        seen.append((status, orjson.loads(body), headers))
        if status == 503:
            break
    status, body, headers = seen[-1]
    assert status == 503, seen
    assert body["error"]["code"] == -32005 and "eligible" in body["error"]["message"], body
    assert int(headers["Retry-After"]) >= 1


@pytest.fixture
def cached(net: LiarNet, tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """A second gateway on the same network with its cache on (the module's has it off)."""
    files = write_gateway_files(
        tmp_path / "gw-cache",
        rpc_url=net.settlement.url,
        deployment=net.network.deployment,
        account=dev_account(8),
        services={SERVICE: "devnet"},
        tables={"relay": {"hedge_delay": 30.0}, "qos": {"probe_interval": 0.3}},
    )
    key = add_key(files, {SERVICE: "0x" + net.network.apps[0].key.address.hex()})
    gateway = GatewayProcess(files).start()
    try:
        yield gateway, gateway.rpc_url(SERVICE, key)
    finally:
        gateway.stop()


def test_an_agreed_quorum_answer_fills_the_cache_and_plain_reads_hit_it(
    net: LiarNet, cached: tuple[GatewayProcess, str]
) -> None:
    """A quorum read never reads the cache, but its agreed legs fill it: the plain reads
    after it are hits. (``eth_chainId`` is final whatever the heights: no TTL to race.)"""
    _gateway, url = cached
    _two_distinct_suppliers(net)
    chain_id = _call("eth_chainId", [], "c0")
    status, body, headers = post(url, chain_id, {"Relay-Quorum": "2"})
    assert status == 200 and len(headers["Relay-Supplier"].split(" ")) == 2, (body, headers)
    assert "Relay-Cache" not in headers
    for i in range(1, 4):
        status, again, headers = post(url, chain_id.replace(b'"c0"', b'"c%d"' % i))
        assert status == 200 and headers.get("Relay-Cache") == "hit", headers
        assert orjson.loads(again)["result"] == orjson.loads(body)["result"] == "0x7a69"
    status, _, headers = post(url, chain_id, {"Relay-Quorum": "2"})
    assert status == 200 and "Relay-Cache" not in headers  # never answered from the cache


def test_a_disagreement_fills_no_cache(net: LiarNet, cached: tuple[GatewayProcess, str]) -> None:
    """A disagreement (the liar differs) stores nothing, though the honest legs among its
    answers agree with each other (two votes would store a final answer)."""
    _gateway, url = cached
    distinct = len(_two_distinct_suppliers(net))
    net.liar.mode = "differ"
    chain_id = _call("eth_chainId", [], "t-c1")  # the liar lies to "t…" ids
    status, body, _ = post(url, chain_id, {"Relay-Quorum": str(distinct)}, timeout=60)
    assert orjson.loads(body)["error"]["code"] == -32098, body
    net.liar.mode = "honest"
    status, body, headers = post(url, chain_id.replace(b'"t-c1"', b'"t-c2"'))
    assert status == 200 and "Relay-Cache" not in headers, headers  # relayed: nothing stored
    assert orjson.loads(body)["result"] == "0x7a69" and headers["Relay-Supplier"].startswith("0x")
