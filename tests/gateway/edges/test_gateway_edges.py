"""The gateway subprocess at its edges: a supplier registered under a name that resolves to
loopback (``localhost``) is refused over HTTP and WebSocket outside devnet mode and reached
when ``allow_networks`` lists loopback; the rate limit is taken before the body is parsed;
429 carries Retry-After; no API key reaches the log — refusals and an unhandled error alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.keys import generate_key
from gateway.server import outermost
from ledger.anvil import AnvilProcess
from ledger.bootstrap import AppSpec, GatewaySpec, ServiceSpec, dev_account
from tests.support.gateway_net import SERVICE, Net, keyed_gateway, net_gateway_files, post
from tests.support.gateway_proc import GatewayProcess
from tests.support.relayer_net import Relayer, stake_relayers, start_all
from tests.support.relayer_proc import RelayerProcess, ServiceBackend

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHAIN_ID = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'


def start_localhost_net(tmp: Path) -> Net:
    """One relayer whose on-chain endpoint names ``localhost`` (not an IP literal)."""
    settlement = AnvilProcess().start()
    backend = AnvilProcess().start()
    try:
        app, gw_key = dev_account(7), dev_account(8)
        svc = {SERVICE: ServiceBackend(backend.url, ws_url=backend.ws_url)}
        network, files = stake_relayers(
            tmp,
            settlement.url,
            [Relayer(dev_account(1), svc, host="localhost")],
            services=[ServiceSpec(SERVICE)],
            apps=[AppSpec(key=app, service_id=SERVICE, gateways=[gw_key.address])],
            gateways=[GatewaySpec(key=gw_key)],
        )
        relayers = [RelayerProcess(f) for f in files]
        net = Net(tmp, settlement, backend, network, app, gw_key, files, relayers)
        start_all(relayers)
        return net
    except BaseException:
        backend.stop()
        settlement.stop()
        raise


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with start_localhost_net(tmp_path_factory.mktemp("edges")) as n:
        yield n


def gateway(
    net: Net, name: str, tables: dict[str, dict[str, Any]], **limits: Any
) -> tuple[GatewayProcess, str]:
    """A gateway outside devnet mode, and a key made before it starts."""
    return keyed_gateway(net, net_gateway_files(net, name, tables, devnet=False), **limits)


async def subscribe(url: str) -> dict[str, Any]:
    """Open a newHeads subscription; the answer, and the first push when there is one."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
        answer: dict[str, Any] = orjson.loads((await ws.receive(timeout=30)).data)
        return answer


@pytest.mark.parametrize("allowed", [False, True])
def test_supplier_named_localhost_needs_allow_networks(net: Net, allowed: bool) -> None:
    # the WebSocket first, probes rare: its upstream connect is the first contact with the
    # supplier (an HTTP refusal or a probe could otherwise have excluded it already)
    tables: dict[str, dict[str, Any]] = {
        "relay": {"max_attempts": 1, "deadline": 10.0},
        "qos": {"probe_interval": 600.0},
    }
    if allowed:
        tables["gateway"] = {"allow_networks": ["127.0.0.0/8", "::1/128"]}
    gw, key = gateway(net, f"gw-allowed-{allowed}", tables)
    ws_answer = asyncio.run(subscribe(gw.ws_url(SERVICE, key)))
    status, body, _ = post(gw.rpc_url(SERVICE, key), CHAIN_ID)
    answer = orjson.loads(body)
    if allowed:
        assert status == 200 and answer["result"] == "0x7a69", body
        assert str(ws_answer.get("result", "")).startswith("0x"), ws_answer
    else:  # the key is good: the refusal is the supplier's address
        assert status not in (401, 403, 429) and "result" not in answer, body
        assert "error" in ws_answer and "result" not in ws_answer, ws_answer
    gw.stop()


def test_rate_token_taken_before_parsing_and_keys_never_logged(net: Net) -> None:
    gw, key = gateway(
        net,
        "gw-limits",
        {"gateway": {"allow_networks": ["127.0.0.0/8", "::1/128"]}},
        rate_limit=0.001,
        burst=2,
    )
    url = gw.rpc_url(SERVICE, key)
    status, body, _ = post(url, b"{not json")  # refused by the parser, after the token
    assert status in (200, 400) and b"error" in body
    assert post(url, CHAIN_ID)[0] == 200
    status, body, headers = post(url, CHAIN_ID)
    assert status == 429 and int(headers["Retry-After"]) >= 1, body
    unknown = generate_key()
    assert post(gw.rpc_url(SERVICE, unknown), CHAIN_ID)[0] == 401
    bearer = generate_key()
    assert post(gw.rpc_url(SERVICE), CHAIN_ID, {"Authorization": f"Bearer {bearer}"})[0] == 401
    gw.stop()
    log_text = gw.log_path.read_text(errors="replace")
    for k in (key, unknown, bearer):
        assert k not in log_text


async def test_unhandled_error_logs_the_path_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = generate_key()

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError(f"boom while serving {request.path}")

    app = web.Application()
    app.router.add_post("/v1/{service}/{key}", outermost(broken))
    app.router.add_post("/v1/{service}", outermost(broken))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with caplog.at_level(logging.DEBUG):
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/v1/eth/{key}", data=b"{}") as r:
                    assert r.status == 502
                    assert key not in await r.text()
                async with http.post(
                    f"http://127.0.0.1:{port}/v1/eth?k={key}",
                    data=b"{}",
                    headers={"Authorization": f"Bearer {key}"},
                ) as r:
                    assert r.status == 502
    finally:
        await runner.cleanup()
    logged = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert "unhandled error on /v1/eth/" in logged  # the error is logged, with its path
    assert "RuntimeError" in logged
    assert key not in logged and key[3:] not in logged
