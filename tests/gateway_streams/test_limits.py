"""Subscription limits (DESIGN §4 "Limits"), on two gateway replicas sharing a real Redis:
64 subscriptions per socket, a per-key cap across replicas (leases in the shared store), each
delivered push counted once against the key's quota (at exhaustion a JSON-RPC error
notification, then close 4429), and a revoked key's sockets closed with 1008."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.app import build_store, key_backend
from gateway.keys import hash_key
from relaynet.config import load_gateway as load_config
from tests.gateway_streams.net import SERVICE, StreamNet, gateway_files, until
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PER_KEY = 66  # above one socket's 64, so both caps can be shown with one key
QUOTA = 8


@dataclass
class Replicas:
    net: StreamNet
    files: list[GatewayFiles]
    procs: list[GatewayProcess]
    key: str  # the caps' key
    quota_key: str
    revoked_key: str

    def ws_url(self, replica: int, key: str) -> str:
        return self.procs[replica].ws_url(SERVICE, key)


@pytest.fixture(scope="module")
def replicas(streamnet: StreamNet, redis_server: RedisServer) -> Iterator[Replicas]:
    tables = {
        "ws": {"redundancy": 1, "max_subscriptions_per_key": PER_KEY, "lease_ttl": 30.0},
        "keys": {"reload_interval": 0.5},
    }
    files = [
        gateway_files(streamnet, f"replica{i}", tables, redis_url=redis_server.url)
        for i in range(2)
    ]
    services = {SERVICE: streamnet.app_hex}
    key = add_key(files[0], services, name="caps")
    quota_key = add_key(files[0], services, name="quota", quota=QUOTA)
    revoked_key = add_key(files[0], services, name="revoked")
    procs: list[GatewayProcess] = []
    try:
        for f in files:
            procs.append(GatewayProcess(f).start())
        yield Replicas(streamnet, files, procs, key, quota_key, revoked_key)
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop()


class Client:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            self.messages.append(orjson.loads(msg.data))

    def answer(self, id_: int) -> dict[str, Any] | None:
        return next((m for m in self.messages if m.get("id") == id_), None)

    async def call(self, id_: int, method: str, params: list[Any]) -> dict[str, Any]:
        await self.ws.send_bytes(
            orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        )
        await until(lambda: self.answer(id_) is not None, f"the answer to {id_}")
        found = self.answer(id_)
        assert found is not None
        return found

    async def subscribe(self, id_: int) -> dict[str, Any]:
        return await self.call(id_, "eth_subscribe", ["newHeads"])

    def pushes(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("method") == "eth_subscription"]

    async def close(self) -> None:
        self.task.cancel()
        await self.ws.close()


async def test_the_65th_subscription_on_a_socket_and_the_key_cap_across_replicas(
    replicas: Replicas,
) -> None:
    async with aiohttp.ClientSession() as http:
        a = Client(await http.ws_connect(replicas.ws_url(0, replicas.key)))
        b = Client(await http.ws_connect(replicas.ws_url(1, replicas.key)))
        # request ids from 100: the liar's script leaves them honest
        answers = await asyncio.gather(*(a.subscribe(100 + i) for i in range(64)))
        assert all(isinstance(x.get("result"), str) for x in answers), answers
        refused = await a.subscribe(200)
        assert refused["error"]["code"] == -32005, refused
        assert "socket" in refused["error"]["message"]
        # the other replica sees the key's 64 leases: two more fit under the cap, no third
        for i in range(PER_KEY - 64):
            assert isinstance((await b.subscribe(300 + i))["result"], str)
        over = await b.subscribe(400)
        assert over["error"]["code"] == -32005, over
        assert "key" in over["error"]["message"]
        # one given back on replica 0: replica 1 may take it
        assert (await a.call(500, "eth_unsubscribe", [answers[0]["result"]]))["result"] is True
        again = await b.subscribe(401)
        assert isinstance(again.get("result"), str), again
        await a.close()
        await b.close()


async def test_pushes_count_against_the_quota_then_4429(replicas: Replicas) -> None:
    net = replicas.net
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(replicas.ws_url(0, replicas.quota_key))
        client = Client(ws)
        assert isinstance((await client.subscribe(600))["result"], str)  # 1 of the quota
        deadline = time.monotonic() + 60
        while not ws.closed:
            assert time.monotonic() < deadline, client.messages
            before = len(client.pushes())
            await asyncio.to_thread(net.backend.rpc, "evm_mine")
            await until(
                lambda b=before: len(client.pushes()) > b or ws.closed, "a push or the close"
            )
        await client.task
        pushes = client.pushes()
        assert len(pushes) == QUOTA - 1, len(pushes)  # each delivered once, counted once
        numbers = [int(p["params"]["result"]["number"], 16) for p in pushes]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        last = client.messages[-1]
        assert last["error"]["code"] == -32005 and last["id"] is None, last
        assert ws.close_code == 4429


async def test_a_revoked_keys_socket_is_closed_1008(replicas: Replicas) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(replicas.ws_url(1, replicas.revoked_key))
        client = Client(ws)
        assert isinstance((await client.subscribe(700))["result"], str)
        await asyncio.to_thread(revoke, replicas.files[0], replicas.revoked_key)
        await until(lambda: ws.closed, "the revoked key's socket to close", deadline=20)
        await client.task
        assert ws.close_code == 1008


def revoke(files: GatewayFiles, key: str) -> None:
    cfg = load_config(files.config)

    async def run() -> None:
        store = build_store(cfg)
        try:
            backend = key_backend(cfg, store)
            record = (await backend.load())[hash_key(key)]
            await backend.put(replace(record, revoked=True))
        finally:
            await store.close()

    asyncio.run(run())
