"""A scripted malicious relayer: a staked supplier's endpoint that speaks the relay wire
protocol (DESIGN §3.3 WebSocket transport) and lies as told.

It runs an aiohttp server on its own thread and loop. For each stream it reads the gateway's
first frame, subscribes on the real backend (anvil's WebSocket) and relays the node's messages
as frames ``uint64(index) ‖ response_hash ‖ receipt_sig ‖ body`` with valid receipts of its own
receipt key — only the indices and the way it ends are what ``script`` (request id → behaviour)
says. Every upgrade is recorded (request id, signed ``max_index``), so a test can tell whether
the gateway came back to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from protocol.keys import ReceiptKey
from protocol.relay import (
    WS_STATUS,
    Domain,
    RelayHeader,
    decode_relay_request,
    encode_ws_frame,
    request_digest,
    response_hash,
    sign_receipt,
)
from tests.support.threaded_app import ThreadedApp

BEHAVIOURS = (
    "honest",
    "jump",  # the first push as index max_index: bill the whole window at once
    "jump999",  # the first push as index 999, far past the window
    "repeat",  # index 1 twice
    "early4000",  # 4000 after index 1
    "early4001",  # 4001 while the session's grace is far
    "lie4002",  # 4002 BAD_SIGNATURE (a code of the lie group)
    "invented4002",  # 4002 with a code not in the table
    "skip4002",  # 4002 BACKEND_UNAVAILABLE: not a fault
    "drop",  # the connection dropped without a close frame
    "nopong",  # silent, and no pong
    "badreceipt",  # a push whose receipt does not verify
    "different",  # every push with a changed result (same block hash), correctly signed
)


@dataclass
class Upgrade:
    request_id: object
    max_index: int
    supplier: bytes
    ended: bool = False
    frames: list[int] = field(default_factory=list)


class LiarRelayer(ThreadedApp):
    name = "liar-relayer"
    shutdown_timeout = 0.5

    def __init__(
        self,
        receipt: ReceiptKey,
        backend_ws: str,
        domain: Domain,
        script: Mapping[object, str],
    ) -> None:
        super().__init__()
        self.receipt = receipt
        self.backend_ws = backend_ws
        self.domain = domain
        self.script = dict(script)
        self.upgrades: list[Upgrade] = []
        self._lock = threading.Lock()

    def upgrades_for(self, request_id: object) -> list[Upgrade]:
        with self._lock:
            return [u for u in self.upgrades if u.request_id == request_id]

    # -- lifecycle -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/relay", self._handle)
        return app

    # -- one stream ----------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        header, header_bytes, _sig = decode_relay_request(request.headers["Relay-Request"])
        del header_bytes
        digest = request_digest(header, self.domain)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        first = await ws.receive(timeout=10)
        payload = first.data if isinstance(first.data, bytes) else first.data.encode()
        request_id = orjson.loads(payload).get("id")
        behaviour = self.script.get(request_id, "honest")
        up = Upgrade(request_id, header.max_index, header.supplier)
        with self._lock:
            self.upgrades.append(up)

        def frame(index: int, body: bytes, *, forge: bool = False) -> bytes:
            rhash = response_hash(WS_STATUS, body)
            sig = sign_receipt(self.receipt, digest, index, rhash)
            if forge:
                sig = bytes(64)
            up.frames.append(index)
            return encode_ws_frame(index, rhash, sig, body)

        async def gateway_side() -> None:
            async for msg in ws:  # pings answered by hand, except when told not to
                if msg.type is WSMsgType.PING and behaviour != "nopong":
                    await ws.pong(msg.data)

        reader = asyncio.create_task(gateway_side())
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(self.backend_ws) as node,
            ):
                await node.send_bytes(payload)
                answer = await node.receive(timeout=10)
                await ws.send_bytes(frame(0, _bytes(answer.data)))
                pushes = 0
                async for msg in node:
                    if ws.closed or reader.done():
                        break
                    body = _bytes(msg.data)
                    pushes += 1
                    if not await self._push(ws, request, behaviour, pushes, body, frame, header):
                        break
                # hold the stream (silent) until the gateway goes away
                if behaviour == "nopong":
                    await reader
        finally:
            up.ended = True
            reader.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _push(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        behaviour: str,
        pushes: int,
        body: bytes,
        make: Callable[..., bytes],
        header: RelayHeader,
    ) -> bool:
        """Send push number ``pushes`` as ``behaviour`` says; False ends the stream."""
        max_index = header.max_index
        if behaviour in ("honest", "different"):
            await ws.send_bytes(make(pushes, altered(body) if behaviour == "different" else body))
            if pushes >= max_index:
                await ws.close(code=4000, message=b"MAX_INDEX")
                return False
            return True
        if behaviour in ("jump", "jump999"):
            await ws.send_bytes(make(max_index if behaviour == "jump" else 999, body))
            return True  # keeps going: the gateway must be the one to stop it
        if behaviour == "repeat":
            await ws.send_bytes(make(1, body))
            return True
        if behaviour == "badreceipt":
            await ws.send_bytes(make(pushes, body, forge=pushes >= 2))
            return True
        if pushes == 1:
            await ws.send_bytes(make(1, body))
            return True
        if behaviour == "nopong":
            return False  # silent from now on
        closes = {
            "early4000": (4000, b"MAX_INDEX"),
            "early4001": (4001, b"GRACE_ENDED"),
            "lie4002": (4002, b"BAD_SIGNATURE"),
            "invented4002": (4002, b"TOTALLY_FINE"),
            "skip4002": (4002, b"BACKEND_UNAVAILABLE"),
        }
        if behaviour in closes:
            code, reason = closes[behaviour]
            await ws.close(code=code, message=reason)
            return False
        if behaviour == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()  # no close frame
            return False
        raise AssertionError(f"unknown behaviour {behaviour}")


def altered(body: bytes) -> bytes:
    """A push whose result differs from the node's in one field (the identity, the block
    hash, kept): what a supplier lying about a header would send."""
    data = orjson.loads(body)
    result = data["params"]["result"]
    result["stateRoot"] = "0x" + "66" * 32
    return orjson.dumps(data)


def _bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"not a message body: {data!r}")
