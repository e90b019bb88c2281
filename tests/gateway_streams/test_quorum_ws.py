"""WebSocket quorum and the upgrade's checks (DESIGN §4, issues 16 and 17), on the stream test
network (real anvils, two real relayer subprocesses, the scripted liar as the third supplier,
a gateway subprocess).

``?quorum=2`` on the upgrade: each subscription keeps three streams on distinct suppliers and a
push reaches the client at its second agreeing copy — every block once, in order, through a
relayer kill; a supplier whose pushes differ is outvoted, logged and counted. The upgrade
answers ``Relay-Request-Id``, refuses a quorum above the session's distinct suppliers (400,
-32602) and a browser origin the key does not list (403)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from tests.gateway_streams.net import (
    SERVICE,
    WINDOW,
    StreamNet,
    gateway_files,
    metric_sum,
    scrape,
    until,
)
from tests.support.gateway_proc import GatewayProcess, add_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DISAGREE = "relaynet_gateway_quorum_disagreements_total"
BLOCK_TIME = 0.3


class Client:
    """One client socket: answers by id, pushes in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.answers: dict[Any, Any] = {}
        self.pushes: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            if "id" in data:
                self.answers[data["id"]] = data
            else:
                self.pushes.append(data["params"])

    async def call(self, id_: int, method: str, params: list[Any]) -> Any:
        await self.ws.send_bytes(
            orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        )
        await until(lambda: id_ in self.answers, f"the answer to {id_}")
        return self.answers[id_]

    def numbers(self) -> list[int]:
        return [int(p["result"]["number"], 16) for p in self.pushes]

    async def close(self) -> None:
        self.task.cancel()
        await self.ws.close()


def mine(net: StreamNet) -> int:
    net.backend.rpc("evm_mine")
    return net.backend.block_number()


def confirmed(net: StreamNet, request_id: int) -> bool:
    """The liar's stream for ``request_id`` answered index 0 (it is subscribed on the node)."""
    return any(u.frames for u in net.liar.upgrades_for(request_id))


def quorum_url(net: StreamNet, n: int) -> str:
    return f"{net.ws_url}?quorum={n}"


async def mine_and_see(net: StreamNet, client: Client, blocks: int) -> list[int]:
    """Mine ``blocks`` blocks at a chain's pace, each seen by the client before the next."""
    numbers = []
    for _ in range(blocks):
        await asyncio.sleep(BLOCK_TIME)  # the chain's pace, not a synchronisation
        number = await asyncio.to_thread(mine, net)
        numbers.append(number)
        await until(lambda n=number: n in client.numbers(), f"block {number}")
    return numbers


async def test_a_supplier_pushing_a_different_payload_is_outvoted(streamnet: StreamNet) -> None:
    net = streamnet
    liar = "0x" + net.liar_address.hex()
    net.liar.script[910] = "different"  # same block hash, another stateRoot, signed
    before = net.metric(DISAGREE, method="eth_subscribe")
    async with aiohttp.ClientSession() as http:
        client = Client(await http.ws_connect(quorum_url(net, 2)))
        assert isinstance((await client.call(910, "eth_subscribe", ["newHeads"]))["result"], str)
        await until(lambda: confirmed(net, 910), "the liar's stream", 60)
        numbers = await mine_and_see(net, client, 5)
        # every liar copy is outvoted, before or after the honest two agreed
        await until(
            lambda: net.metric(DISAGREE, method="eth_subscribe") >= before + len(numbers),
            "a disagreement per block",
        )
        await client.close()
    assert client.numbers() == numbers
    for push in client.pushes:
        block = await asyncio.to_thread(
            net.backend.rpc, "eth_getBlockByNumber", [push["result"]["number"], False]
        )
        assert push["result"]["stateRoot"] == block["stateRoot"] != "0x" + "66" * 32
    # no disagreement counted that the liar did not cause
    lies = sum(len(u.frames) - 1 for u in net.liar.upgrades_for(910))
    assert net.metric(DISAGREE, method="eth_subscribe") <= before + lies
    assert net.gateway is not None
    text = net.gateway.log_path.read_text()
    assert f"quorum disagreement: service={SERVICE} method=eth_subscribe suppliers={liar}" in text


async def test_quorum_2_gets_every_block_once_in_order_through_a_relayer_kill(
    streamnet: StreamNet,
) -> None:
    """On a gateway with ``redundancy = 1``: quorum 2 still keeps three streams."""
    net = streamnet
    killed = "0x" + net.honest[0].hex()
    files = gateway_files(net, "redundancy1", {"ws": {"redundancy": 1, "window": WINDOW}})
    key = await asyncio.to_thread(add_key, files, {SERVICE: net.app_hex})
    gateway = await asyncio.to_thread(GatewayProcess(files).start)
    try:
        async with aiohttp.ClientSession() as http:
            client = Client(await http.ws_connect(gateway.ws_url(SERVICE, key) + "?quorum=2"))
            answer = await client.call(900, "eth_subscribe", ["newHeads"])
            sub = answer["result"]
            assert isinstance(sub, str) and sub.startswith("0x"), answer
            # three streams: the liar (honest for this id) holds the third
            await until(lambda: confirmed(net, 900), "the third stream", 60)
            # calls on a quorum socket follow the HTTP quorum rules (the liar serves no
            # plain relays: its legs fail and are replaced by the honest relayers)
            read = await client.call(901, "eth_chainId", [])
            assert read.get("result") == "0x7a69", read
            write = await client.call(902, "eth_sendRawTransaction", ["0x00"])
            assert write["error"]["code"] == -32602, write
            numbers = await mine_and_see(net, client, 6)
            net.relayers[0].kill()  # one of the three streams dies
            numbers += await mine_and_see(net, client, 6)
            await client.close()
        got = client.numbers()
        assert got == numbers, (got, numbers)  # every block once, in order
        assert all(p["subscription"] == sub for p in client.pushes)
        head = await asyncio.to_thread(
            net.backend.rpc, "eth_getBlockByNumber", [hex(numbers[-1]), False]
        )
        assert client.pushes[-1]["result"]["hash"] == head["hash"]
        # the kill hit a stream of this subscription; agreement never failed
        metrics = await asyncio.to_thread(scrape, gateway.metrics_url)
        assert metric_sum(metrics, "relaynet_gateway_stream_faults_total", supplier=killed) >= 1
        assert metric_sum(metrics, DISAGREE) == 0, metrics
    finally:
        gateway.stop()
        if net.relayers[0].pid is None:
            await asyncio.to_thread(net.relayers[0].start)


# -- the upgrade ---------------------------------------------------------------------------
def upgrade(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A WebSocket upgrade by hand: the status, headers and (for a refusal) body."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        found = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        length = int(found.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(status_line.split()[1]), found, body


def test_the_upgrade_carries_a_request_id_and_refuses_an_impossible_quorum(
    streamnet: StreamNet,
) -> None:
    status, headers, _ = upgrade(streamnet.ws_url)
    assert status == 101
    request_id = headers.get("relay-request-id", "")
    assert len(request_id) == 16 and int(request_id, 16) >= 0, headers
    assert upgrade(streamnet.ws_url)[1]["relay-request-id"] != request_id
    # three distinct suppliers in the session: a quorum of 4 cannot be had
    status, headers, body = upgrade(quorum_url(streamnet, 4))
    assert status == 400, (status, body)
    error = orjson.loads(body)["error"]
    assert error["code"] == -32602 and "distinct supplier" in error["message"], error
    assert len(headers["relay-request-id"]) == 16
    status, _, body = upgrade(quorum_url(streamnet, 9))
    assert status == 400 and orjson.loads(body)["error"]["code"] == -32602, body
    assert upgrade(quorum_url(streamnet, 3))[0] == 101


def test_the_upgrade_applies_the_keys_allowed_origins(streamnet: StreamNet) -> None:
    net = streamnet
    assert net.gateway is not None and net.gateway_files is not None
    key = add_key(
        net.gateway_files, {SERVICE: net.app_hex}, name="browser", origins=("https://ok.example",)
    )
    url = net.gateway.ws_url(SERVICE, key)
    deadline = time.monotonic() + 30
    while upgrade(url)[0] == 401:  # the key reloads within the reload interval
        assert time.monotonic() < deadline, "the new key never loaded"
        time.sleep(0.1)
    status, headers, body = upgrade(url, {"Origin": "https://evil.example"})
    assert status == 403, (status, body)
    assert orjson.loads(body)["error"]["code"] == -32001
    assert "access-control-allow-origin" not in headers
    assert upgrade(url, {"Origin": "https://ok.example"})[0] == 101
    assert upgrade(url)[0] == 101  # not a browser: no Origin, nothing to check
    # a key without allowed origins: any origin
    assert upgrade(net.ws_url, {"Origin": "https://evil.example"})[0] == 101
