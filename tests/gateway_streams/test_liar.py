"""A lying supplier's streams (DESIGN §4 "Streams pay only for pushes delivered", issue 11):
index jumps and repeats, bad receipts, early 4000 and 4001, 4002 with a lie, a dropped
connection and a missing pong are faults — the stream is closed, the liar is not used again for
that subscription this session and is counted — while the client's subscription carries on from
the honest suppliers (real relayer subprocesses on anvil) with no gap and no duplicate, and the
honest relayers bill only the pushes they delivered."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from tests.gateway_streams.conftest import SCRIPT
from tests.gateway_streams.net import WINDOW, StreamNet, logged_leaves, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

FAULT_KIND = {
    "jump": "jump",
    "jump999": "jump",
    "repeat": "repeat",
    "badreceipt": "bad_receipt",
    "early4000": "early_4000",
    "early4001": "early_4001",
    "lie4002": "lie_4002",
    "invented4002": "lie_4002",
    "drop": "no_close_frame",
    "nopong": "no_pong",
}
BLOCKS = 20  # more than two windows of every honest stream
BLOCK_TIME = 0.3


class Client:
    """One client socket on the gateway: answers by id, pushes by subscription id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.answers: dict[Any, Any] = {}
        self.pushes: dict[str, list[dict[str, Any]]] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            if "id" in data:
                self.answers[data["id"]] = data
            else:
                sub = data["params"]["subscription"]
                self.pushes.setdefault(sub, []).append(data["params"]["result"])

    async def call(self, id_: int, method: str, params: list[Any]) -> Any:
        await self.ws.send_bytes(
            orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        )
        await until(lambda: id_ in self.answers, f"the answer to {id_}")
        return self.answers[id_]


def seen(client: Client, sub: str, number: int) -> bool:
    return any(int(h["number"], 16) == number for h in client.pushes.get(sub, []))


def mine(net: StreamNet) -> int:
    net.backend.rpc("evm_mine")
    return net.backend.block_number()


async def test_a_lying_supplier_is_dropped_and_the_subscriptions_go_on(
    streamnet: StreamNet,
) -> None:
    """One subscription per lie, all at once on one socket (the liar holds one of each
    subscription's three streams); blocks come at a steady pace, like a chain's."""
    net = streamnet
    liar_hex = "0x" + net.liar_address.hex()
    async with aiohttp.ClientSession() as http:
        client = Client(await http.ws_connect(net.ws_url))
        subs: dict[int, str] = {}
        for request_id in SCRIPT:
            answer = await client.call(request_id, "eth_subscribe", ["newHeads"])
            assert isinstance(answer.get("result"), str), answer
            subs[request_id] = answer["result"]
        # redundancy 3 on 3 suppliers: the liar serves one stream of every subscription
        await until(lambda: all(net.liar.upgrades_for(r) for r in SCRIPT), "the liar's streams", 60)
        numbers: list[int] = []
        for _ in range(BLOCKS):
            await asyncio.sleep(BLOCK_TIME)  # the chain's pace, not a synchronisation
            number = await asyncio.to_thread(mine, net)
            numbers.append(number)
            await until(
                lambda n=number: all(seen(client, s, n) for s in subs.values()),
                f"block {number} on every subscription",
            )
        await until(
            lambda: all(
                net.liar.upgrades_for(r)[0].ended for r, b in SCRIPT.items() if b != "honest"
            ),
            "the end of every lying stream",
        )
        for request_id, behaviour in SCRIPT.items():
            sub = subs[request_id]
            got = [int(h["number"], 16) for h in client.pushes[sub]]
            assert got == numbers, (behaviour, got)  # no gap, no duplicate
            answer = await client.call(1000 + request_id, "eth_unsubscribe", [sub])
            assert answer["result"] is True
            ups = net.liar.upgrades_for(request_id)
            assert ups[0].max_index == WINDOW  # a signature pays for one small window only
            if behaviour != "honest":  # never asked again for this subscription
                assert len(ups) == 1, (behaviour, ups)
            kind = FAULT_KIND.get(behaviour)
            if kind is not None:
                faults = net.metric(
                    "relaynet_gateway_stream_faults_total", supplier=liar_hex, kind=kind
                )
                assert faults >= 1, (behaviour, net.metrics())
        client.task.cancel()
        await client.ws.close()

    # every fault was the liar's, one per lying subscription; its skip and its honest
    # stream were not counted
    total = net.metric("relaynet_gateway_stream_faults_total")
    liar_faults = net.metric("relaynet_gateway_stream_faults_total", supplier=liar_hex)
    assert liar_faults == total == len(FAULT_KIND), net.metrics()
    assert net.metric("relaynet_gateway_stream_faults_total", kind="lie_4002") == 2
    assert net.metric("relaynet_gateway_stream_faults_total", kind="jump") == 2

    # undelivered indices are not billed: each honest stream's leaves are 0, 1, …, k in order,
    # at most what the gateway received (plus one in flight as the gateway closed it), and
    # far below the windows signed
    received = sum(
        net.metric("relaynet_gateway_stream_frames_total", supplier="0x" + s.hex())
        for s in net.honest
    )
    windows = {WINDOW << k for k in range(8)}
    streams: dict[bytes, list[int]] = {}
    signed = 0
    for relayer in net.relayers:
        for leaf in logged_leaves(relayer):
            if leaf.max_index == 0:
                continue  # a plain relay (the gateway's health probes)
            assert leaf.max_index in windows, leaf.max_index
            if leaf.index == 0:
                signed += leaf.max_index
            streams.setdefault(leaf.digest_header, []).append(leaf.index)
    pushes = 0
    for indices in streams.values():
        assert indices == list(range(len(indices))), indices
        pushes += len(indices) - 1
    print(
        f"honest streams {len(streams)}, indices signed {signed}, pushes logged {pushes}, "
        f"frames received {received}, pushes delivered {BLOCKS * len(SCRIPT)}"
    )
    assert received <= pushes <= received + len(streams), (pushes, received, len(streams))
    assert pushes < signed // 2, (pushes, signed)
