"""REST-like calls and non-EVM subscriptions through the gateway (issue 7): CometBFT URI
GETs, Cosmos REST, CometBFT ``subscribe`` and Celestia ``header.Subscribe``.

The network is the one of ``test_rollchains`` (its ``net`` fixture: the CometBFT stand-in
behind two relayers and a gateway); the gateway relays each call as the canonical REST payload
(DESIGN §3.3) and answers with the backend's own status and bytes.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import aiohttp
import orjson
import pytest

from tests.e2e.test_rollchains import CELESTIA, COMET, EVM_A, REST, Net

# the module-scoped network fixture, re-exported so pytest finds it here
from tests.e2e.test_rollchains import net as net

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


def test_uri_get_through_the_gateway(net: Net) -> None:
    url = f"{net.gateway.rpc_url(COMET, net.key)}/block?height=3"
    status, body, headers = _get(url)
    direct = urllib.request.urlopen(net.standins.comet.url + "/block?height=3", timeout=5).read()  # noqa: S310
    assert status == 200
    assert body == direct  # the node's own bytes
    suppliers = {"0x" + s.hex() for s in net.suppliers}
    assert headers["relay-supplier"].lower() in suppliers
    assert headers["relay-request"] and headers["relay-receipt"]
    # a quoted query is percent-encoded into the payload and still reaches the node's route
    query = f"{net.gateway.rpc_url(COMET, net.key)}/abci_query?path=%22/store/acc%22&data=0x01"
    status, body, _ = _get(query)
    assert status == 200 and orjson.loads(body)["result"]["response"]["code"] == "0"


def test_cosmos_rest_through_the_gateway(net: Net) -> None:
    base = net.gateway.rpc_url(REST, net.key)
    status, body, headers = _get(f"{base}/cosmos/bank/v1beta1/balances/cosmos1abc")
    assert status == 200, body
    assert orjson.loads(body)["balances"][0]["denom"] == "stake"
    assert "relay-receipt" in headers
    status, body, _ = _get(f"{base}/cosmos/tx/v1beta1/txs", b'{"tx_bytes":"cmVzdA=="}')
    assert status == 200 and orjson.loads(body)["tx_response"]["code"] == 0
    # the node's own refusal comes back with its own status and body
    status, body, headers = _get(f"{base}/cosmos/bank/v1beta1/balances/a-b")
    assert orjson.loads(body)["code"] == 3
    assert "relay-receipt" in headers


def test_rest_refusals_are_grpc_gateway_shaped(net: Net) -> None:
    # an EVM service takes JSON-RPC POSTs only: refused at the gateway, nothing relayed
    not_found = {"code": 5, "message": "Not Found", "details": []}
    status, body, headers = _get(f"{net.gateway.rpc_url(EVM_A, net.key)}/block?height=3")
    assert (status, orjson.loads(body)) == (404, not_found)
    assert "relay-supplier" not in headers
    # a route CometBFT does not have: grpc-gateway's 404 (it was a 501)
    status, body, headers = _get(f"{net.gateway.rpc_url(COMET, net.key)}/no_such_route")
    assert (status, orjson.loads(body)) == (404, not_found)
    assert "relay-supplier" not in headers
    # a wrong key: 401, in the same shape
    status, body, _ = _get(f"{net.gateway.rpc_url(COMET, 'not-a-key')}/status")
    assert status == 401 and set(orjson.loads(body)) == {"code", "message", "details"}
    # an unsafe CometBFT route is never relayed
    seen = len(net.standins.comet.requests)
    status, body, _ = _get(f"{net.gateway.rpc_url(COMET, net.key)}/dial_peers?peers=x")
    assert status in (403, 501) and "message" in orjson.loads(body)
    assert all("dial_peers" not in r["method"] for r in net.standins.comet.requests[seen:])


def test_json_rpc_posts_are_unchanged(net: Net) -> None:
    status, answer, _ = net.call(COMET, "status", {})
    assert status == 200 and answer["result"]["node_info"]["network"] == "rollchain_262144-1"


def test_subscriptions_through_the_gateway(net: Net) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(net.gateway.ws_url(COMET, net.key)) as ws:
                query = "tm.event='NewBlock'"
                await ws.send_json(
                    {"jsonrpc": "2.0", "id": 7, "method": "subscribe", "params": {"query": query}}
                )
                first = await ws.receive_json(timeout=10)
                assert first == {"jsonrpc": "2.0", "id": 7, "result": {}}, first
                events = [await ws.receive_json(timeout=10) for _ in range(3)]
                assert all(e["id"] == 7 and e["result"]["query"] == query for e in events)
                assert len({orjson.dumps(e) for e in events}) == 3  # no duplicates
                # plain calls still work on the same socket
                await ws.send_json({"jsonrpc": "2.0", "id": 8, "method": "health", "params": {}})
                while (answer := await ws.receive_json(timeout=10)).get("id") != 8:
                    pass
                assert answer["result"] == {}
                await ws.send_json(
                    {"jsonrpc": "2.0", "id": 9, "method": "unsubscribe", "params": {"query": query}}
                )
                while (answer := await ws.receive_json(timeout=10)).get("id") != 9:
                    pass
                assert answer["result"] == {}
            async with http.ws_connect(net.gateway.ws_url(CELESTIA, net.key)) as ws:
                await ws.send_json(
                    {"jsonrpc": "2.0", "id": 1, "method": "header.Subscribe", "params": []}
                )
                first = await ws.receive_json(timeout=10)
                channel = first["result"]
                assert isinstance(channel, int), first
                pushed = [await ws.receive_json(timeout=10) for _ in range(3)]
                assert all(p["method"] == "xrpc.ch.val" for p in pushed)
                assert all(p["params"][0] == channel for p in pushed)
                assert all(p["params"][1]["header"]["chain_id"] == "mocha-4" for p in pushed)
                heights = [int(p["params"][1]["header"]["height"]) for p in pushed]
                assert len(set(heights)) == 3  # no duplicates

    asyncio.run(asyncio.wait_for(run(), 60))
