"""The relayer's payload checks (DESIGN §3.3), in-process against real aiohttp backends:
the payload rule in its place in the order, ``max_index`` on POST and WebSocket, the WebSocket
check split (header through the signature on the upgrade, payload on the first frame), the
per-app stream cap, and the budget refund when a push's log write fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import WS_CLOSE_RELAY_ERROR, Domain, decode_ws_frame, encode_relay_request
from relayer.app import Relayer, RelayerKeys
from relayer.relaylog import SessionKey
from session.memory import MemorySnapshot
from session.snapshot import SessionShape
from tests.support.relay_client import SignedRelay, high_s, rpc, sign_relay
from tests.support.snapshots import relayer_client, relayer_config, served_snapshot, set_chain

SHAPE = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
DOMAIN = Domain(31337, b"\x5e" * 20)
SID = "devnet"
CU_PRICE = 10
N = 2
SMUGGLED = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","Method":"eth_sendRawTransaction"}'


@dataclass
class World:
    supplier: AccountKey
    app: AccountKey
    relayer: Relayer
    client: TestClient
    hits: list[bytes]
    ws_opened: list[int]


def _snapshot(supplier: AccountKey, receipt: ReceiptKey, app: AccountKey) -> MemorySnapshot:
    snap = served_snapshot(
        SHAPE, SID, cu_price=CU_PRICE, supplier=supplier.address, receipt_key=receipt.public_key
    )
    snap.set_app(app.address, SID)
    snap.set_app_stake(app.address, 1, 10**9)
    return set_chain(snap, range(100, 200), SHAPE.B0 + 2 * SHAPE.L + 3)  # inside session 2


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    hits: list[bytes] = []
    ws_opened: list[int] = []

    async def backend(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response(body=b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}')

    async def ws_backend(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ws_opened.append(1)
        async for msg in ws:
            hits.append(msg.data.encode() if isinstance(msg.data, str) else msg.data)
            await ws.send_str('{"jsonrpc":"2.0","id":1,"result":"0xsub"}')
            await ws.send_str('{"jsonrpc":"2.0","method":"eth_subscription","params":{}}')
        return ws

    backend_app = web.Application()
    backend_app.router.add_post("/", backend)
    backend_app.router.add_get("/ws", ws_backend)
    backend_server = TestServer(backend_app)
    await backend_server.start_server()
    supplier, receipt, app = AccountKey.generate(), ReceiptKey.generate(), AccountKey.generate()
    cfg = relayer_config(
        tmp_path / "data",
        {
            SID: {
                "chain": "devnet",
                "backends": {"rpc": str(backend_server.make_url("/"))},
                "ws_backend": str(backend_server.make_url("/ws")).replace("http", "ws", 1),
            },
        },
        server={"max_streams_per_app": 2},
    )
    snap = _snapshot(supplier, receipt, app)
    relayer, client = await relayer_client(cfg, RelayerKeys(supplier, receipt), snap, DOMAIN)
    yield World(supplier, app, relayer, client, hits, ws_opened)
    await client.close()
    await backend_server.close()


def _sign(w: World, payload: bytes = rpc("eth_blockNumber"), **kw: object) -> SignedRelay:
    args: dict[str, object] = {
        "service_id": SID,
        "app": w.app.address,
        "supplier": w.supplier.address,
        "n": N,
        "payload": payload,
    }
    args.update(kw)
    return sign_relay(DOMAIN, w.app, **args)  # type: ignore[arg-type]


async def _code(w: World, relay: SignedRelay, **headers: str) -> tuple[int, str]:
    resp = await w.client.post("/v1/relay", data=relay.payload, headers=relay.headers(**headers))
    doc = orjson.loads(await resp.read())
    assert "Relay-Receipt" not in resp.headers
    return resp.status, str(doc["code"])


async def test_payload_rule_in_its_place_in_the_order(world: World) -> None:
    w = world
    assert await _code(w, _sign(w, SMUGGLED)) == (400, "INVALID_PAYLOAD")
    assert await _code(w, _sign(w, b'{"jsonrpc":"2.0","id":1,"method":')) == (
        400,
        "INVALID_PAYLOAD",
    )
    assert await _code(w, _sign(w, b"[" + rpc("eth_blockNumber") + b"]")) == (
        400,
        "BATCH_NOT_RELAYABLE",
    )
    # the rule runs before compute units, the digest and the signature
    assert await _code(w, _sign(w, SMUGGLED, cu=7)) == (400, "INVALID_PAYLOAD")
    forged = _sign(w, SMUGGLED)
    bad_sig = encode_relay_request(forged.header_bytes, high_s(forged.signature))
    assert await _code(w, forged, **{"Relay-Request": bad_sig}) == (400, "INVALID_PAYLOAD")
    # ... and after the header: a smuggled payload to the wrong supplier is WRONG_SUPPLIER
    other = _sign(w, SMUGGLED, supplier=b"\x07" * 20)
    assert (await _code(w, other))[1] == "WRONG_SUPPLIER"
    # a plain POST carries max_index 0
    assert await _code(w, _sign(w, max_index=1)) == (400, "MALFORMED_HEADER")
    assert w.hits == []
    good = _sign(w)
    ok = await w.client.post("/v1/relay", data=good.payload, headers=good.headers())
    assert ok.status == 200 and w.hits == [good.payload]


async def _upgrade_status(w: World, relay: SignedRelay, **headers: str) -> tuple[int, str]:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await w.client.ws_connect("/v1/relay", headers=relay.headers(**headers))
    return refused.value.status, refused.value.message


async def _first_frame_close(w: World, relay: SignedRelay, frame: bytes) -> tuple[int, str]:
    ws = await w.client.ws_connect("/v1/relay", headers=relay.headers())
    await ws.send_bytes(frame)
    msg = await ws.receive(timeout=30)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    await ws.close()
    return int(msg.data), str(msg.extra)


async def test_websocket_header_on_the_upgrade_payload_on_the_first_frame(world: World) -> None:
    w = world
    sub = rpc("eth_subscribe", ["newHeads"])
    # max_index 0 on an upgrade, and a bad signature: refused before the upgrade is accepted
    assert (await _upgrade_status(w, _sign(w, sub)))[0] == 400
    forged = _sign(w, sub, max_index=4)
    bad = encode_relay_request(forged.header_bytes, high_s(forged.signature))
    assert (await _upgrade_status(w, forged, **{"Relay-Request": bad}))[0] == 401
    # payload checks on the first frame: close 4002 with the code, nothing sent on
    smuggled = _sign(w, SMUGGLED, max_index=4)
    assert await _first_frame_close(w, smuggled, SMUGGLED) == (
        WS_CLOSE_RELAY_ERROR,
        "INVALID_PAYLOAD",
    )
    signed = _sign(w, sub, max_index=4)
    assert await _first_frame_close(w, signed, rpc("eth_subscribe", ["logs"])) == (
        WS_CLOSE_RELAY_ERROR,
        "PAYLOAD_HASH_MISMATCH",
    )
    wrong_cu = _sign(w, sub, max_index=4, cu=3)
    assert await _first_frame_close(w, wrong_cu, sub) == (
        WS_CLOSE_RELAY_ERROR,
        "BAD_COMPUTE_UNITS",
    )
    assert w.ws_opened == [] and w.hits == []
    # and a good stream runs
    good = _sign(w, sub, max_index=4)
    async with w.client.ws_connect("/v1/relay", headers=good.headers()) as ws:
        await ws.send_bytes(sub)
        first = await ws.receive(timeout=30)
        assert decode_ws_frame(first.data)[0] == 0
    assert w.hits == [sub]


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_streams_capped_per_app(world: World) -> None:
    w = world
    sub = rpc("eth_subscribe", ["newHeads"])
    held = []
    for _ in range(2):
        relay = _sign(w, sub, max_index=8)
        ws = await w.client.ws_connect("/v1/relay", headers=relay.headers())
        await ws.send_bytes(sub)
        assert decode_ws_frame((await ws.receive(timeout=30)).data)[0] == 0
        held.append(ws)
    status, _ = await _upgrade_status(w, _sign(w, sub, max_index=8))
    assert status == 429  # RATE_LIMITED on the upgrade
    await held.pop().close()
    await _until(lambda: w.relayer.websocket.streams_of(w.app.address) == 1, "stream released")
    relay = _sign(w, sub, max_index=8)
    async with w.client.ws_connect("/v1/relay", headers=relay.headers()) as ws:
        await ws.send_bytes(sub)
        assert decode_ws_frame((await ws.receive(timeout=30)).data)[0] == 0
    for ws in held:
        await ws.close()


async def test_push_refunded_when_its_log_write_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    sub = rpc("eth_subscribe", ["newHeads"])
    relay = _sign(w, sub, max_index=8)
    log = w.relayer.relay_log
    real_append = log.append
    writes: list[int] = []

    def failing_append(session_log: object, key: bytes, leaf: bytes) -> int:
        writes.append(1)
        if len(writes) > 1:  # index 0 is written; the first push hits a full disk
            raise OSError(28, "No space left on device")
        return real_append(session_log, key, leaf)  # type: ignore[arg-type]

    monkeypatch.setattr(log, "append", failing_append)
    async with w.client.ws_connect("/v1/relay", headers=relay.headers()) as ws:
        await ws.send_bytes(sub)
        assert decode_ws_frame((await ws.receive(timeout=30)).data)[0] == 0
        closing = await ws.receive(timeout=30)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert (closing.data, closing.extra) == (WS_CLOSE_RELAY_ERROR, "INTERNAL")
    used = w.relayer.meter.used(SessionKey(SID, w.app.address, N))
    assert used == CU_PRICE  # index 0 only: the unlogged push was refunded
