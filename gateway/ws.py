"""JSON-RPC over WebSocket, and ``eth_subscribe`` with the gateway's own subscription ids.

Plain calls on a client socket go through the same router as HTTP (one relay each). A
subscription is served by upstream relay streams (DESIGN §3.3 WebSocket transport): the
gateway signs ``eth_subscribe`` with ``max_index`` messages paid, opens the relayer's socket,
and rewrites each pushed notification to the client's stable subscription id. Other RPC types'
subscriptions (CometBFT ``subscribe``, Celestia ``header.Subscribe``) ride the same streams;
their handler (``subscription``, ``rewrite_notification``) names the topic and rewrites the id.

Seamlessness: each subscription keeps ``redundancy`` streams on different suppliers and drops
duplicate notifications (by block hash / log position / value). A stream that ends (relayer
killed, ``max_index`` reached, session grace over) is replaced; at session rollover the new
session's streams are opened and confirmed before the old ones are closed. So the client sees
no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from gateway.batch import run_batch
from gateway.errors import GatewayError, jsonrpc_error_object
from gateway.jsonrpc import Call as ClientCall
from gateway.jsonrpc import parse_body
from gateway.relay_client import Target
from gateway.router import ClientContext
from protocol.errors import ProtocolError
from protocol.relay import WS_STATUS, decode_ws_frame, verify_receipt
from rollups.errors import RequestError
from rollups.handler import Call, SubscriptionCall

if TYPE_CHECKING:
    from gateway.server import Gateway

__all__ = ["handle_ws"]

_SEEN_MAX = 4096
_TICK = 0.2


def _dedupe_key(body: bytes) -> bytes:
    """What makes a notification the same event on two streams."""
    try:
        data = orjson.loads(body)
        result = data["params"]["result"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return hashlib.sha256(body).digest()
    if isinstance(result, dict):
        ident: tuple[object, ...]
        if "logIndex" in result:
            ident = (result.get("blockHash"), result.get("logIndex"), result.get("removed"))
        elif "hash" in result:
            ident = ("head", result.get("hash"))
        else:
            ident = ("obj", orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode())
        return hashlib.sha256(orjson.dumps(ident)).digest()
    return hashlib.sha256(orjson.dumps(result)).digest()


@dataclass
class Stream:
    """One upstream relay stream of one subscription."""

    target: Target
    ws: aiohttp.ClientWebSocketResponse
    digest: bytes
    upstream_id: str
    max_index: int
    index: int = 0
    task: asyncio.Task[None] | None = None
    closing: bool = False
    confirmation: object = None  # the node's result for the subscribe call

    @property
    def expiring(self) -> bool:
        return self.index >= self.max_index - 2


@dataclass
class Subscription:
    gw_id: str
    payload: bytes
    compute_units: int
    # non-EVM subscriptions (CometBFT ``subscribe``, Celestia ``header.Subscribe``…): their
    # topic, and the id their pushed messages carry to the client (handler-rewritten)
    generic: bool = False
    topic: str | None = None
    rewrite_id: str | None = None
    streams: list[Stream] = field(default_factory=list)
    seen: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    manager: asyncio.Task[None] | None = None
    refusal: bytes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class ClientSocket:
    """One client WebSocket: its calls, its subscriptions, one send lock."""

    def __init__(self, gw: Gateway, ctx: ClientContext, ws: web.WebSocketResponse) -> None:
        self.gw = gw
        self.ctx = ctx
        self.ws = ws
        self.subs: dict[str, Subscription] = {}
        self._send_lock = asyncio.Lock()
        self._channels = itertools.count(1)
        cfg = gw.config.ws
        self.max_index = cfg.max_index
        self.redundancy = cfg.redundancy

    async def send(self, data: bytes) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(data.decode())

    # -- client messages ---------------------------------------------------------------
    async def on_message(self, data: bytes) -> None:
        try:
            req = parse_body(data, max_batch=self.gw.config.limits.max_batch)
            record = self.gw.keys.lookup_hash(self.ctx.client_id)
            await self.gw.limiter.admit(record, self.ctx.service.service_id, len(req.calls))
        except GatewayError as exc:
            await self.send(jsonrpc_error_object(b"null", exc.jsonrpc_code, exc.message))
            return
        if req.is_batch:
            batch = await run_batch(self.gw.router, self.ctx, req.calls)
            if batch.body:
                await self.send(batch.body)
            return
        call = req.calls[0]
        generic = None if call.invalid else self._generic_subscription(call)
        if generic is not None or (
            not call.invalid and call.method in ("eth_subscribe", "eth_unsubscribe")
        ):
            if generic is not None:
                body, sub = await self.generic_subscription_call(call, generic)
            else:
                body, sub = await self.subscription_call(call)
            await self.send(body)
            if sub is not None:
                sub.ready.set()  # notifications only after the client has its id
            return
        try:
            answer = await self.gw.router.execute(self.ctx, call)
            body = answer.body
        except GatewayError as exc:
            body = jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message)
        if body:
            await self.send(body)

    async def subscription_call(self, call: ClientCall) -> tuple[bytes, Subscription | None]:
        svc = self.ctx.service
        params = call.params if isinstance(call.params, list) else []
        if call.method == "eth_unsubscribe":
            sid = params[0] if params and isinstance(params[0], str) else None
            sub = self.subs.pop(sid, None) if sid else None
            if sub is not None:
                await self._close_sub(sub)
                self.gw.metrics.subscriptions.dec()
            return _result(call.raw_id, b"true" if sub is not None else b"false"), None
        rcall = Call(method=call.method, params=call.params, id=None, raw=call.raw)
        try:
            plan = svc.handler.plan(svc.spec, rcall)
        except RequestError as exc:
            return jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message), None
        sub = Subscription("0x" + secrets.token_hex(16), call.raw, plan.compute_units)
        try:
            first = await self._open_stream(sub, exclude=set())
        except GatewayError as exc:
            return jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message), None
        if first is None:
            # the backend refused the subscription itself: its own answer is the client's
            refusal = sub.refusal or jsonrpc_error_object(
                call.raw_id, -32603, "no supplier could open the subscription"
            )
            return refusal, None
        self.subs[sub.gw_id] = sub
        self.gw.metrics.subscriptions.inc()
        sub.manager = asyncio.create_task(self._manage(sub))
        return _result(call.raw_id, orjson.dumps(sub.gw_id)), sub

    def _generic_subscription(self, call: ClientCall) -> SubscriptionCall | None:
        """The handler's reading of a non-EVM subscription call (None: not one)."""
        if call.method.startswith("eth_"):
            return None
        rcall = Call(method=call.method, params=call.params, id=None, raw=call.raw)
        return self.ctx.service.handler.subscription(rcall)

    async def generic_subscription_call(
        self, call: ClientCall, info: SubscriptionCall
    ) -> tuple[bytes, Subscription | None]:
        """CometBFT ``subscribe`` / ``unsubscribe`` and Celestia ``*.Subscribe``: upstream
        streams as for ``eth_subscribe``; the client's confirmation is the node's own result
        (CometBFT ``{}``: its events then carry the subscribe request's id) or, when the node
        answers a channel id (Celestia), a stable channel id of the gateway's own."""
        svc = self.ctx.service
        if not info.subscribe:
            gone = [
                s
                for s in self.subs.values()
                if s.generic and (info.subscription_id is None or s.topic == info.subscription_id)
            ]
            for sub in gone:
                self.subs.pop(sub.gw_id, None)
                await self._close_sub(sub)
                self.gw.metrics.subscriptions.dec()
            return _result(call.raw_id, b"{}"), None
        rcall = Call(method=call.method, params=call.params, id=None, raw=call.raw)
        try:
            plan = svc.handler.plan(svc.spec, rcall)
        except RequestError as exc:
            return jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message), None
        sub = Subscription(
            "0x" + secrets.token_hex(16), call.raw, plan.compute_units, True, info.topic
        )
        try:
            first = await self._open_stream(sub, exclude=set())
        except GatewayError as exc:
            return jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message), None
        if first is None:
            refusal = sub.refusal or jsonrpc_error_object(
                call.raw_id, -32603, "no supplier could open the subscription"
            )
            return refusal, None
        if first.upstream_id:  # a channel id: the client gets one of ours, stable
            channel = next(self._channels)
            sub.rewrite_id = str(channel)
            reply = _result(call.raw_id, str(channel).encode())
        else:  # events answer the subscribe request's id
            sub.rewrite_id = call.raw_id.decode().strip('"')
            reply = _result(call.raw_id, orjson.dumps(first.confirmation))
        self.subs[sub.gw_id] = sub
        self.gw.metrics.subscriptions.inc()
        sub.manager = asyncio.create_task(self._manage(sub))
        return reply, sub

    # -- upstream streams ---------------------------------------------------------------
    async def _open_stream(self, sub: Subscription, exclude: set[bytes]) -> Stream | None:
        """Open, sign and confirm one upstream stream; None when every try failed."""
        gw = self.gw
        sid = self.ctx.service.service_id
        view = gw.sessions.signing(sid, self.ctx.app)
        tried = set(exclude)
        for _ in range(len(view.targets)):
            supplier = gw.router.qos.choose(sid, view.suppliers, exclude=tried)
            if supplier is None:
                return None
            tried.add(supplier)
            target = view.target(supplier)
            if target is None:
                continue
            stream = await self._connect(sub, target)
            if stream is not None:
                stream.task = asyncio.create_task(self._pump(sub, stream))
                sub.streams.append(stream)
                return stream
        return None

    async def _connect(self, sub: Subscription, target: Target) -> Stream | None:
        gw = self.gw
        client = gw.router.client
        signed = client.sign(target, sub.payload, sub.compute_units, max_index=self.max_index)
        try:
            ws = await client.http.ws_connect(
                target.endpoint,
                headers={"Relay-Request": signed.relay_request},
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                max_msg_size=gw.config.limits.max_ws_message_bytes,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status >= 500:  # a refusal (e.g. session not started yet) is not a fault
                gw.router.qos.record_failure(target.service_id, target.supplier)
            return None
        except (aiohttp.ClientError, OSError, TimeoutError):
            gw.router.qos.record_failure(target.service_id, target.supplier)
            return None
        try:
            await ws.send_bytes(sub.payload)
            msg = await ws.receive(timeout=gw.config.relay.timeout)
            if msg.type is not WSMsgType.BINARY:
                raise ProtocolError("no confirmation frame")
            index, _rhash, _rsig, body = self._check_frame(target, signed.digest, msg.data)
            if index != 0:
                raise ProtocolError("first frame is not index 0")
            confirmation = orjson.loads(body)
            upstream_id = confirmation.get("result")
            if sub.generic and "result" in confirmation and "error" not in confirmation:
                # a channel id (Celestia) or an empty object (CometBFT)
                ok = not isinstance(upstream_id, bool)
                upstream_id = str(upstream_id) if isinstance(upstream_id, int | str) else ""
            else:
                ok = isinstance(upstream_id, str)
            if not ok or not isinstance(upstream_id, str):
                sub.refusal = body
                await ws.close()
                return None
        except (
            ProtocolError,
            orjson.JSONDecodeError,
            TimeoutError,
            aiohttp.ClientError,
            AttributeError,
        ):
            gw.router.qos.record_failure(target.service_id, target.supplier)
            await ws.close()
            return None
        stream = Stream(target, ws, signed.digest, upstream_id, self.max_index)
        stream.confirmation = confirmation.get("result")
        return stream

    def _check_frame(
        self, target: Target, digest: bytes, data: bytes
    ) -> tuple[int, bytes, bytes, bytes]:
        index, rhash, rsig, body = decode_ws_frame(data)
        expected = hashlib.sha256(WS_STATUS.to_bytes(2, "big") + body).digest()
        if rhash != expected or target.receipt_key is None:
            raise ProtocolError("bad stream receipt")
        verify_receipt(target.receipt_key, digest, index, rhash, rsig)
        return index, rhash, rsig, body

    async def _pump(self, sub: Subscription, stream: Stream) -> None:
        marker = b'"subscription":"' + stream.upstream_id.encode() + b'"'
        replacement = b'"subscription":"' + sub.gw_id.encode() + b'"'
        handler = self.ctx.service.handler
        try:
            await sub.ready.wait()
            async for msg in stream.ws:
                if msg.type is not WSMsgType.BINARY:
                    break
                try:
                    index, _h, _s, body = self._check_frame(stream.target, stream.digest, msg.data)
                except ProtocolError:
                    break
                stream.index = index
                if sub.rewrite_id is not None:  # non-EVM: the handler rewrites the id
                    body = handler.rewrite_notification(body, sub.rewrite_id)
                    key = hashlib.sha256(body).digest()
                else:
                    key = _dedupe_key(body)
                    body = body.replace(marker, replacement, 1)
                if key in sub.seen:
                    continue
                sub.seen[key] = None
                while len(sub.seen) > _SEEN_MAX:
                    sub.seen.popitem(last=False)
                await self.send(body)
        finally:
            if not stream.closing:
                self.gw.metrics.resubscriptions.labels("stream_ended").inc()
            with contextlib.suppress(Exception):
                await stream.ws.close()

    async def _manage(self, sub: Subscription) -> None:
        """Keep ``redundancy`` live streams in the signing session; roll over seamlessly."""
        gw = self.gw
        sid = self.ctx.service.service_id
        while True:
            await asyncio.sleep(_TICK)
            sub.streams = [s for s in sub.streams if s.task is not None and not s.task.done()]
            try:
                n = gw.sessions.signing(sid, self.ctx.app).n
            except GatewayError:
                continue
            current = [s for s in sub.streams if s.target.n == n and not s.expiring]
            if len(current) < self.redundancy:
                exclude = {s.target.supplier for s in current}
                opened = await self._open_stream(sub, exclude)
                if opened is None:
                    continue
                gw.metrics.resubscriptions.labels("opened").inc()
                current.append(opened)
            # the new session's streams are confirmed: the old ones may go
            for s in sub.streams:
                if s.target.n != n and current:
                    s.closing = True
                    await s.ws.close()
                    gw.metrics.resubscriptions.labels("rollover").inc()

    async def _close_sub(self, sub: Subscription) -> None:
        if sub.manager is not None:
            sub.manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.manager
        for s in sub.streams:
            s.closing = True
            await s.ws.close()
            if s.task is not None:
                s.task.cancel()

    async def close(self) -> None:
        for sub in list(self.subs.values()):
            await self._close_sub(sub)
            self.gw.metrics.subscriptions.dec()
        self.subs.clear()


def _result(raw_id: bytes, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + raw_id + b',"result":' + result + b"}"


async def handle_ws(request: web.Request, gw: Gateway, ctx: ClientContext) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=gw.config.limits.max_ws_message_bytes, heartbeat=30.0)
    await ws.prepare(request)
    client = ClientSocket(gw, ctx, ws)
    gw.metrics.ws_connections.inc()
    tasks: set[asyncio.Task[None]] = set()
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                data = msg.data.encode()
            elif msg.type is WSMsgType.BINARY:
                data = bytes(msg.data)
            else:
                break
            task = asyncio.create_task(client.on_message(data))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for t in tasks:
            t.cancel()
        await client.close()
        gw.metrics.ws_connections.dec()
    return ws
