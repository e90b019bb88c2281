"""The CometBFT and celestia-node stand-ins: OpenAPI param validation, JWT permission levels,
WebSocket subscriptions, the ``python -m`` entries, and the health probe against them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ledger.anvil import free_port
from rollups import parse_spec, probe
from rollups.catalogue import catalogue
from rollups.celestia import METHODS, Permission
from rollups.handler import HealthStatus
from rollups.standins import (
    CelestiaStandIn,
    CometBftStandIn,
    make_token,
    start_celestia,
    start_cometbft,
    verify_token,
)
from rollups.standins.openapi import routes

SECRET = b"stand-in test secret"
NAMESPACE = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAMJ/xGlNMdE="  # the fixture blob's namespace
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def comet() -> AsyncIterator[CometBftStandIn]:
    standin = await start_cometbft("rollchain_262144-1", block_time=0, start_height=5)
    yield standin
    await standin.close()


@pytest.fixture
async def node() -> AsyncIterator[CelestiaStandIn]:
    standin = await start_celestia(SECRET, "mocha-4", block_time=0, start_height=5)
    yield standin
    await standin.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def rpc(
    http: aiohttp.ClientSession,
    url: str,
    method: str,
    params: Any,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.post(url, json=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


# valid params for every documented route (from the OpenAPI file's own examples)
VALID: dict[str, dict[str, Any]] = {
    "broadcast_tx_sync": {"tx": "dGVzdA=="},
    "broadcast_tx_async": {"tx": "dGVzdDI="},
    "check_tx": {"tx": "dGVzdA=="},
    "blockchain": {"minHeight": "1", "maxHeight": "3"},
    **{
        route: {"height": "2"}
        for route in ("header", "block", "block_results", "commit", "consensus_params")
    },
    "validators": {"height": "2", "page": "1", "per_page": "30"},
    "genesis_chunked": {"chunk": "0"},
    "unconfirmed_txs": {"limit": "30"},
    "tx_search": {"query": "tx.height=1"},
    "block_search": {"query": "block.height=1"},
    "abci_query": {"path": "/store/bank", "data": "00", "height": "2"},
    "broadcast_evidence": {"evidence": "ZXZpZGVuY2U="},
}
SKIP_POST = {
    "dial_seeds",
    "dial_peers",
    "broadcast_tx_commit",
    "tx",
    "header_by_hash",
    "block_by_hash",
}


async def test_every_documented_route_answers_with_valid_params(
    comet: CometBftStandIn, http: aiohttp.ClientSession
) -> None:
    served = [r for r in routes() if r not in SKIP_POST]
    assert len(served) == 24
    for route in served:
        status, answer = await rpc(http, comet.url, route, VALID.get(route, {}))
        assert status == 200 and "result" in answer, (route, answer)
    status, answer = await rpc(http, comet.url, "status", {})
    result = answer["result"]
    assert result["node_info"]["network"] == "rollchain_262144-1"
    assert result["sync_info"]["latest_block_height"] == "5"
    assert result["sync_info"]["catching_up"] is False
    _, block = await rpc(http, comet.url, "block", ["3"])  # positional, in the route's order
    assert block["result"]["block"]["header"]["height"] == "3"
    block_hash = block["result"]["block_id"]["hash"]
    _, by_hash = await rpc(http, comet.url, "block_by_hash", {"hash": "0x" + block_hash})
    assert by_hash["result"]["block"]["header"]["height"] == "3"


@pytest.mark.parametrize(
    ("method", "params", "fragment"),
    [
        ("tx_search", {}, "missing required parameter 'query'"),
        ("block", {"height": "tall"}, "must be an integer"),
        ("block", {"hieght": "1"}, "unknown parameter 'hieght'"),
        ("tx", {"hash": "AB", "prove": "maybe"}, "must be true or false"),
        ("abci_query", {"path": "/a"}, "missing required parameter 'data'"),
        ("block", ["1", "2"], "at most 1 params"),
    ],
)
async def test_params_are_validated_against_the_openapi_file(
    comet: CometBftStandIn,
    http: aiohttp.ClientSession,
    method: str,
    params: Any,
    fragment: str,
) -> None:
    status, answer = await rpc(http, comet.url, method, params)
    assert status == 200
    assert answer["error"]["code"] == -32602 and answer["error"]["message"] == "Invalid params"
    assert fragment in answer["error"]["data"]


async def test_uri_gets_unsafe_and_websocket_only_routes(
    comet: CometBftStandIn, http: aiohttp.ClientSession
) -> None:
    async with http.get(comet.url + "/block?height=4") as resp:
        answer = await resp.json()
        assert resp.status == 200 and answer["id"] == -1
        assert answer["result"]["block"]["header"]["height"] == "4"
    async with http.get(comet.url + '/abci_query?path="/store/acc"&data=0x01') as resp:
        assert resp.status == 200
    async with http.get(comet.url + "/abci_query?path=/store/acc&data=0x01") as resp:
        assert resp.status == 500
        assert "quoted" in (await resp.json())["error"]["data"]
    async with http.get(comet.url + "/block?height=99") as resp:
        assert "must be less than or equal to the current blockchain height" in await resp.text()
    for route in ("dial_peers", "unsafe_flush_mempool", "subscribe", "no_such_route"):
        _, answer = await rpc(http, comet.url, route, {})
        assert answer["error"]["code"] == -32601, route
        async with http.get(f"{comet.url}/{route}") as resp:
            assert resp.status == 404
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "health"},
        {"jsonrpc": "2.0", "id": 2, "method": "block", "params": {"height": "x"}},
    ]
    async with http.post(comet.url, json=batch) as resp:
        answers = await resp.json()
    assert [a["id"] for a in answers] == [1, 2] and "error" in answers[1]


async def test_websocket_subscribe_and_broadcast(
    comet: CometBftStandIn, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(comet.ws_url) as ws:
        await ws.send_json(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "subscribe",
                "params": {"query": "tm.event='NewBlock'"},
            }
        )
        assert (await ws.receive_json(timeout=5))["result"] == {}
        _, sent = await rpc(http, comet.url, "broadcast_tx_sync", {"tx": "aGVsbG8="})
        tx_hash = sent["result"]["hash"]
        await comet.advance(1)
        event = await ws.receive_json(timeout=5)
        assert event["id"] == 7 and event["result"]["query"] == "tm.event='NewBlock'"
        assert event["result"]["data"]["value"]["block"]["header"]["height"] == "6"
        await ws.send_json({"jsonrpc": "2.0", "id": 8, "method": "status", "params": {}})
        assert (await ws.receive_json(timeout=5))["result"]["sync_info"][
            "latest_block_height"
        ] == "6"
    _, found = await rpc(http, comet.url, "tx", {"hash": "0x" + tx_hash})
    assert found["result"]["height"] == "6"
    _, again = await rpc(http, comet.url, "broadcast_tx_sync", {"tx": "aGVsbG8="})
    assert "tx already exists in cache" in again["error"]["data"]


LEVELS = [None, Permission.PUBLIC, Permission.READ, Permission.WRITE, Permission.ADMIN]


@pytest.mark.parametrize("level", LEVELS, ids=lambda p: "no-token" if p is None else p.value)
async def test_jwt_permission_levels(
    node: CelestiaStandIn, http: aiohttp.ClientSession, level: Permission | None
) -> None:
    token = make_token(SECRET, level) if level is not None else None
    held = level or Permission.PUBLIC
    samples = {
        "header.NetworkHead": [],
        "blob.GetAll": [2, [NAMESPACE]],
        "das.SamplingStats": [],
        "state.Balance": [],
        "blob.Submit": [[{"namespace": NAMESPACE, "data": "AA==", "share_version": 0}], {}],
        "state.Transfer": ["celestia1x", "1", {}],
        "node.Info": [],
        "node.AuthNew": [["read"]],
        "p2p.Info": [],
    }
    for method, params in samples.items():
        needed = METHODS[method].permission
        status, answer = await rpc(http, node.url, method, params, token)
        assert status == 200
        if held.allows(needed):
            assert "result" in answer, (method, held, answer)
        else:
            assert answer["error"]["code"] == 1
            assert answer["error"]["message"] == (
                f"missing permission to invoke '{method}' (need '{needed.value}')"
            )


async def test_bad_tokens_removed_modules_and_long_polls(
    node: CelestiaStandIn, http: aiohttp.ClientSession
) -> None:
    forged = make_token(b"another node", Permission.ADMIN)
    status, _ = await rpc(http, node.url, "header.NetworkHead", [], forged)
    assert status == 401
    assert verify_token(SECRET, make_token(SECRET, "write")) == {
        Permission.PUBLIC,
        Permission.READ,
        Permission.WRITE,
    }
    read = node.token(Permission.READ)
    _, answer = await rpc(http, node.url, "da.Get", [1, "AA==", []], read)
    assert answer["error"] == {"code": -32601, "message": "method 'da.Get' not found"}
    _, head = await rpc(http, node.url, "header.NetworkHead", [], read)
    assert (
        head["result"]["header"]["height"] == "5"
        and head["result"]["header"]["chain_id"] == "mocha-4"
    )
    _, blobs = await rpc(http, node.url, "blob.GetAll", [2, [NAMESPACE]], read)
    assert blobs["result"][0]["namespace"] == NAMESPACE
    _, future = await rpc(http, node.url, "header.GetByHeight", [50], read)
    assert "from the future" in future["error"]["message"]
    waiting = asyncio.create_task(rpc(http, node.url, "header.WaitForHeight", [7], read))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await node.advance(2)
    _, waited = await asyncio.wait_for(waiting, 5)
    assert waited["result"]["header"]["height"] == "7"
    _, refused = await rpc(http, node.url, "header.Subscribe", [], read)
    assert "WebSocket" in refused["error"]["message"]


async def test_header_subscribe_over_websocket(
    node: CelestiaStandIn, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {node.token(Permission.READ)}"}
    async with http.ws_connect(node.ws_url, headers=headers) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "header.Subscribe", "params": []})
        channel = (await ws.receive_json(timeout=5))["result"]
        assert isinstance(channel, int)
        await node.advance(1)
        pushed = await ws.receive_json(timeout=5)
        assert pushed["method"] == "xrpc.ch.val" and pushed["params"][0] == channel
        assert pushed["params"][1]["header"]["height"] == "6"
    async with http.ws_connect(node.ws_url) as ws:  # no token: public only
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "header.Subscribe", "params": []})
        assert "missing permission" in (await ws.receive_json(timeout=5))["error"]["message"]


async def test_the_probe_against_the_stand_ins(
    comet: CometBftStandIn, node: CelestiaStandIn, http: aiohttp.ClientSession
) -> None:
    rollchain = catalogue()["rollchain-rpc"]
    health = await probe(rollchain, comet.url, http)
    assert health.ok and health.height == 5 and health.chain_id == "rollchain_262144-1"
    mainnet = catalogue()["celestia-consensus"]
    wrong = await probe(mainnet, comet.url, http)
    assert wrong.status is HealthStatus.WRONG_CHAIN
    rest = await probe(catalogue()["rollchain-rest"], comet.url, http)
    assert rest.ok and rest.height == 5
    mocha = catalogue()["celestia-mocha"]
    ok = await probe(mocha, node.url, http, token=node.token(Permission.READ))
    assert ok.ok and ok.height == 5 and ok.chain_id == "mocha-4"
    no_token = await probe(mocha, node.url, http)
    assert no_token.status is HealthStatus.BAD_ANSWER and "missing permission" in no_token.reason
    wrong_net = await probe(catalogue()["celestia"], node.url, http, token=node.token("read"))
    assert wrong_net.status is HealthStatus.WRONG_CHAIN
    comet.catching_up = True
    assert (await probe(rollchain, comet.url, http)).status is HealthStatus.SYNCING
    unreachable = parse_spec({**rollchain.model_dump(by_alias=True, exclude_none=True)})
    gone = await probe(unreachable, f"http://127.0.0.1:{free_port()}", http, probe_timeout=1)
    assert gone.status is HealthStatus.UNREACHABLE


@pytest.mark.slow  # starts the stand-ins as processes
def test_python_m_entries_start_and_serve() -> None:
    port_c, port_n = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rollups.standins.cometbft", "--port", str(port_c)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rollups.standins.celestia",
                "--port",
                str(port_n),
                "--jwt-secret",
                SECRET.hex(),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ),
    ]
    try:
        lines = [p.stdout.readline() for p in procs[:1]]  # type: ignore[union-attr]
        assert "stand-in listening" in lines[0]
        out = procs[1].stdout
        assert out is not None
        read_line = out.readline()
        assert read_line.startswith("read token:")
        token = read_line.split(":", 1)[1].strip()
        out.readline()
        assert "stand-in listening" in out.readline()

        async def check() -> None:
            async with aiohttp.ClientSession() as http:
                _, status = await rpc(http, f"http://127.0.0.1:{port_c}", "status", {})
                assert status["result"]["node_info"]["network"] == "rollchain_262144-1"
                _, head = await rpc(
                    http, f"http://127.0.0.1:{port_n}", "header.LocalHead", [], token
                )
                assert head["result"]["header"]["chain_id"] == "mocha-4"

        asyncio.run(check())
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
