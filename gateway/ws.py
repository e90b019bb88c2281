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
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from gateway.batch import run_batch
from gateway.errors import BadRequest, ClientReason, GatewayError, jsonrpc_error_object
from gateway.jsonrpc import Call as ClientCall
from gateway.jsonrpc import parse_body
from gateway.limiter import Limited
from gateway.relay_client import Target
from gateway.router import ClientContext
from gateway.streams import (
    Ending,
    Fault,
    Verdict,
    check_index,
    ending,
    grown_window,
    replace_at,
    stream_window,
)
from protocol.errors import ProtocolError
from protocol.relay import WS_STATUS, decode_ws_frame, verify_receipt
from rollups.errors import RequestError
from rollups.handler import Call, SubscriptionCall
from session.windows import windows

if TYPE_CHECKING:
    from gateway.state import Gateway
    from gateway.store.base import Store

__all__ = ["handle_ws"]

log = logging.getLogger("relaynet.gateway")

_SEEN_MAX = 4096
_TICK = 0.2
CLOSE_QUOTA = 4429  # the key's quota is spent (after a JSON-RPC error notification)
CLOSE_REVOKED = 1008  # policy violation: the key was revoked


@dataclass
class Stream:
    """One upstream relay stream of one subscription, signed for ``max_index`` pushes."""

    target: Target
    ws: aiohttp.ClientWebSocketResponse
    digest: bytes
    upstream_id: str
    max_index: int
    index: int = 0  # the last index delivered (0: the answer to the subscribe call)
    task: asyncio.Task[None] | None = None
    closing: bool = False  # closed by the gateway: never a fault
    confirmation: object = None  # the node's result for the subscribe call
    replacement: Stream | None = None  # opened because this one neared max_index

    @property
    def expiring(self) -> bool:
        """Its replacement is due (index ``max_index − max(4, w/4)`` reached)."""
        return self.index >= replace_at(self.max_index)


@dataclass
class Subscription:
    gw_id: str
    payload: bytes
    compute_units: int
    window: int  # the window its next streams are signed with (doubles when replacing late)
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
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    deliver_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # suppliers that sit this subscription out, with the session they are out for
    # (a fault: not again this session; a non-lie 4002: skipped until the next session)
    excluded: set[tuple[bytes, int]] = field(default_factory=set)
    closed: bool = False  # unsubscribed, or its socket is gone


class ClientSocket:
    """One client WebSocket: its calls, its subscriptions, one send lock."""

    def __init__(self, gw: Gateway, ctx: ClientContext, ws: web.WebSocketResponse) -> None:
        self.gw = gw
        self.ctx = ctx
        self.ws = ws
        self.subs: dict[str, Subscription] = {}
        self._send_lock = asyncio.Lock()
        self._channels = itertools.count(1)
        self.cfg = gw.config.ws
        self.redundancy = self.cfg.redundancy
        self._pending = 0  # subscribe calls being opened (they hold a slot)
        self._store: Store = gw.store
        self._lease_scope = f"ws-subs:{ctx.client_id}"
        self.shut = False

    async def send(self, data: bytes) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.send_str(data.decode())

    async def shut_down(self, code: int, message: bytes | None = None) -> None:
        """Close the client's socket (quota spent: 4429 after ``message``; revoked: 1008)."""
        if self.shut:
            return
        self.shut = True
        if message is not None:
            await self.send(message)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code)

    # -- client messages ---------------------------------------------------------------
    async def on_message(self, data: bytes) -> None:
        try:
            req = parse_body(data, max_batch=self.gw.config.limits.max_batch)
            record = self.gw.keys.lookup_hash(self.ctx.client_id)
            await self.gw.limiter.admit(record, self.ctx.service.service_id, len(req.calls))
        except GatewayError as exc:
            await self.send(_error(b"null", exc))
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

    # -- limits: 64 per socket, 1,000 per key across replicas (leases) -------------------
    async def _take_slot(self, raw_id: bytes, gw_id: str) -> bytes | None:
        """Reserve a subscription slot; the refusal to send when there is none."""
        cap = self.cfg.max_subscriptions_per_socket
        if len(self.subs) + self._pending >= cap:
            return jsonrpc_error_object(
                raw_id, -32005, f"too many subscriptions on this socket (limit {cap})"
            )
        per_key = self.cfg.max_subscriptions_per_key
        try:
            held = await self._store.lease(self._lease_scope, gw_id, per_key, self.cfg.lease_ttl)
        except GatewayError:
            held = True  # the store is away: the per-socket cap still holds
        if not held:
            return jsonrpc_error_object(
                raw_id, -32005, f"too many subscriptions for this key (limit {per_key})"
            )
        self._pending += 1
        return None

    async def _free_slot(self, gw_id: str) -> None:
        with contextlib.suppress(GatewayError):
            await self._store.release(self._lease_scope, gw_id)

    async def _renew_leases(self) -> None:
        for gw_id in list(self.subs):
            with contextlib.suppress(GatewayError):
                await self._store.lease(
                    self._lease_scope, gw_id, self.cfg.max_subscriptions_per_key, self.cfg.lease_ttl
                )

    async def watch(self) -> None:
        """Housekeeping while the socket is open: a revoked key's socket is closed (1008)
        within the key reload interval; the subscription leases are renewed."""
        interval = self.gw.config.keys.reload_interval
        renew_every = self.cfg.lease_ttl / 3
        last_renewal = time.monotonic()
        while not self.ws.closed:
            await asyncio.sleep(interval / 2)
            try:
                self.gw.keys.lookup_hash(self.ctx.client_id)
            except GatewayError:
                await self.shut_down(CLOSE_REVOKED)
                return
            if time.monotonic() - last_renewal >= renew_every:
                last_renewal = time.monotonic()
                await self._renew_leases()

    def _new_subscription(
        self, gw_id: str, call: ClientCall, compute_units: int, topic: str | None = None
    ) -> Subscription:
        return Subscription(
            gw_id,
            call.raw,
            compute_units,
            self.cfg.window,
            generic=topic is not None,
            topic=topic,
        )

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
        gw_id = "0x" + secrets.token_hex(16)
        refused = await self._take_slot(call.raw_id, gw_id)
        if refused is not None:
            return refused, None
        sub = self._new_subscription(gw_id, call, plan.compute_units)
        try:
            first = await self._first_stream(sub, call.raw_id)
            if isinstance(first, bytes):
                await self._free_slot(gw_id)
                return first, None
            self._adopt(sub)
        finally:
            self._pending -= 1
        return _result(call.raw_id, orjson.dumps(sub.gw_id)), sub

    async def _first_stream(self, sub: Subscription, raw_id: bytes) -> Stream | bytes:
        """The subscription's first stream, or the refusal the client gets."""
        try:
            first = await self._open_stream(sub, exclude=set())
        except GatewayError as exc:
            return jsonrpc_error_object(raw_id, exc.jsonrpc_code, exc.message)
        if first is None:
            # the backend refused the subscription itself: its own answer is the client's
            return sub.refusal or jsonrpc_error_object(
                raw_id, -32603, "no supplier could open the subscription"
            )
        return first

    def _adopt(self, sub: Subscription) -> None:
        self.subs[sub.gw_id] = sub
        self.gw.metrics.subscriptions.inc()
        sub.manager = asyncio.create_task(self._manage(sub))

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
        gw_id = "0x" + secrets.token_hex(16)
        refused = await self._take_slot(call.raw_id, gw_id)
        if refused is not None:
            return refused, None
        sub = self._new_subscription(gw_id, call, plan.compute_units, info.topic or "")
        try:
            first = await self._first_stream(sub, call.raw_id)
            if isinstance(first, bytes):
                await self._free_slot(gw_id)
                return first, None
            if first.upstream_id:  # a channel id: the client gets one of ours, stable
                channel = next(self._channels)
                sub.rewrite_id = str(channel)
                reply = _result(call.raw_id, str(channel).encode())
            else:  # events answer the subscribe request's id
                sub.rewrite_id = call.raw_id.decode().strip('"')
                reply = _result(call.raw_id, orjson.dumps(first.confirmation))
            self._adopt(sub)
        finally:
            self._pending -= 1
        return reply, sub

    # -- upstream streams ---------------------------------------------------------------
    def _max_stream_relays(self, n: int) -> int:
        try:
            return self.gw.sessions.snapshot.economic_params(n).max_stream_relays
        except (KeyError, LookupError, ValueError):
            return self.cfg.window

    async def _open_stream(self, sub: Subscription, exclude: set[bytes]) -> Stream | None:
        """Open, sign and confirm one upstream stream; None when every try failed."""
        gw = self.gw
        sid = self.ctx.service.service_id
        view = gw.sessions.signing(sid, self.ctx.app)
        tried = set(exclude) | {s for s, n in sub.excluded if n == view.n}
        w = stream_window(sub.window, self._max_stream_relays(view.n))
        for _ in range(len(view.targets)):
            supplier = gw.router.qos.choose(sid, view.suppliers, exclude=tried)
            if supplier is None:
                return None
            tried.add(supplier)
            target = view.target(supplier)
            if target is None:
                continue
            stream = await self._connect(sub, target, w)
            if stream is not None:
                gw.metrics.child(gw.metrics.stream_windows, sid, str(w)).inc()
                stream.task = asyncio.create_task(self._pump(sub, stream))
                sub.streams.append(stream)
                return stream
        return None

    async def _connect(self, sub: Subscription, target: Target, w: int) -> Stream | None:
        gw = self.gw
        client = gw.router.client
        signed = client.sign(target, sub.payload, sub.compute_units, max_index=w)
        try:
            ws = await client.http.ws_connect(
                target.endpoint,
                headers={"Relay-Request": signed.relay_request},
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                max_msg_size=gw.config.limits.max_ws_message_bytes,
                heartbeat=self.cfg.heartbeat,
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
            verdict: Verdict | None = None
            if msg.type is WSMsgType.CLOSE:  # refused on the first frame (4002 and its code)
                verdict = self._on_close(target, 0, w, msg.data, msg.extra)
            elif msg.type is not WSMsgType.BINARY:
                verdict = Verdict(Ending.FAULT, Fault.BAD_FRAME, "no index-0 frame")
            else:
                try:
                    index, body = self._check_frame(target, signed.digest, msg.data)
                except ProtocolError as exc:
                    verdict = Verdict(Ending.FAULT, Fault.BAD_RECEIPT, exc.message)
                else:
                    if index != 0:
                        verdict = Verdict(Ending.FAULT, Fault.BAD_FRAME, f"first index {index}")
            if verdict is not None:
                self._judge(sub, target, verdict)
                await ws.close()
                return None
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
        stream = Stream(target, ws, signed.digest, upstream_id, w)
        stream.confirmation = confirmation.get("result")
        return stream

    def _check_frame(self, target: Target, digest: bytes, data: bytes) -> tuple[int, bytes]:
        """A frame's index and body, its receipt checked in full (``ProtocolError`` if bad)."""
        index, rhash, rsig, body = decode_ws_frame(data)
        expected = hashlib.sha256(WS_STATUS.to_bytes(2, "big") + body).digest()
        if rhash != expected or target.receipt_key is None:
            raise ProtocolError("bad stream receipt")
        verify_receipt(target.receipt_key, digest, index, rhash, rsig)
        return index, body

    def _fault(self, sub: Subscription, target: Target, fault: Fault, detail: str) -> None:
        """A supplier broke a stream: not used for this subscription again this session,
        and counted in selection."""
        gw = self.gw
        sub.excluded.add((target.supplier, target.n))
        gw.router.qos.record_failure(target.service_id, target.supplier)
        supplier = "0x" + target.supplier.hex()
        gw.metrics.stream_faults.labels(target.service_id, supplier, fault.value).inc()
        log.warning("stream fault by %s on %s: %s (%s)", supplier, target.service_id, fault, detail)

    async def _pump(self, sub: Subscription, stream: Stream) -> None:
        """Deliver one stream's pushes in index order; judge how it ends (DESIGN §4)."""
        target = stream.target
        sid = target.service_id
        frames = self.gw.metrics.child(
            self.gw.metrics.stream_frames, sid, "0x" + target.supplier.hex()
        )
        verdict: Verdict | None = None
        try:
            await sub.ready.wait()
            while verdict is None:
                msg = await stream.ws.receive()
                if stream.closing:
                    return  # closed by the gateway: whatever comes now is not a fault
                if msg.type is WSMsgType.BINARY:
                    verdict = await self._on_frame(sub, stream, msg.data)
                    frames.inc()
                elif msg.type is WSMsgType.CLOSE:
                    verdict = self._on_close(
                        target, stream.index, stream.max_index, msg.data, msg.extra
                    )
                elif msg.type is WSMsgType.ERROR and isinstance(
                    msg.data, aiohttp.ServerTimeoutError
                ):
                    verdict = Verdict(Ending.FAULT, Fault.NO_PONG, str(msg.data))
                elif msg.type is WSMsgType.TEXT:
                    verdict = Verdict(Ending.FAULT, Fault.BAD_FRAME, "a text frame")
                else:
                    verdict = ending(None, "", last_index=0, max_index=0, head=0, grace_end=0)
        finally:
            if verdict is not None and not stream.closing:
                self._judge(sub, target, verdict)
            stream.closing = True
            with contextlib.suppress(Exception):
                await stream.ws.close()
            sub.wake.set()

    async def _on_frame(self, sub: Subscription, stream: Stream, data: bytes) -> Verdict | None:
        try:
            index, body = self._check_frame(stream.target, stream.digest, data)
        except ProtocolError as exc:
            return Verdict(Ending.FAULT, Fault.BAD_RECEIPT, exc.message)
        wrong = check_index(stream.index + 1, index)
        if wrong is None and index > stream.max_index:
            wrong = Fault.JUMP
        if wrong is not None:
            detail = f"index {index} after {stream.index} (max {stream.max_index})"
            return Verdict(Ending.FAULT, wrong, detail)
        stream.index = index
        if stream.expiring:
            sub.wake.set()  # its replacement is due
        if index == stream.max_index and stream.replacement is None:
            # the replacement came too late: sign larger windows from now on
            n = stream.target.n
            sub.window = grown_window(sub.window, self._max_stream_relays(n))
        await self._deliver(sub, body)
        return None

    def _on_close(
        self, target: Target, last_index: int, max_index: int, code: object, reason: object
    ) -> Verdict:
        snapshot = self.gw.sessions.snapshot
        return ending(
            code if isinstance(code, int) else None,
            reason if isinstance(reason, str) else "",
            last_index=last_index,
            max_index=max_index,
            head=snapshot.head(),
            grace_end=windows(snapshot.shape(), target.n).grace_end,
        )

    def _judge(self, sub: Subscription, target: Target, verdict: Verdict) -> None:
        if verdict.kind is Ending.FAULT:
            assert verdict.fault is not None
            self._fault(sub, target, verdict.fault, verdict.detail)
            self.gw.metrics.resubscriptions.labels("fault").inc()
        elif verdict.kind is Ending.SKIP:
            sub.excluded.add((target.supplier, target.n))
            self.gw.metrics.resubscriptions.labels("skipped").inc()
        else:
            self.gw.metrics.resubscriptions.labels("stream_ended").inc()

    async def _deliver(self, sub: Subscription, body: bytes) -> None:
        """Send a push once (duplicates from the other streams dropped), counted once
        against the key's quota."""
        handler = self.ctx.service.handler
        key = handler.notification_identity(body)
        async with sub.deliver_lock:
            if key in sub.seen or self.shut:
                return
            sub.seen[key] = None
            while len(sub.seen) > _SEEN_MAX:
                sub.seen.popitem(last=False)
            if not await self._count_push():
                return
            rewrite = sub.rewrite_id if sub.rewrite_id is not None else sub.gw_id
            await self.send(handler.rewrite_notification(body, rewrite))
        self.gw.metrics.child(self.gw.metrics.pushes, self.ctx.service.service_id).inc()

    async def _count_push(self) -> bool:
        """One push against the key's quota (no rate limit: the client did not ask for it).
        At exhaustion: a JSON-RPC error notification, then close 4429."""
        gw = self.gw
        try:
            record = gw.keys.lookup_hash(self.ctx.client_id)
            await gw.limiter.count(record, self.ctx.service.service_id)
        except BadRequest as exc:
            if exc.reason is ClientReason.QUOTA_EXCEEDED:
                await self.shut_down(CLOSE_QUOTA, _error(b"null", exc))
                return False
            if exc.reason is ClientReason.UNAUTHORIZED:
                await self.shut_down(CLOSE_REVOKED)
                return False
            return True
        except GatewayError:
            return True  # the store is away: deliver (limits hold per replica meanwhile)
        return True

    async def _manage(self, sub: Subscription) -> None:
        """Keep ``redundancy`` live streams in the signing session: replace a stream nearing
        its ``max_index`` (closing it once the replacement answered index 0) and roll over to a
        new session the same way, so the client sees no gap."""
        gw = self.gw
        sid = self.ctx.service.service_id
        while not sub.closed:
            # (not asyncio.wait_for: on 3.11 it can swallow the cancellation of _close_sub)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK):
                    await sub.wake.wait()
            sub.wake.clear()
            sub.streams = [s for s in sub.streams if s.task is not None and not s.task.done()]
            try:
                n = gw.sessions.signing(sid, self.ctx.app).n
            except GatewayError:
                continue
            live = [s for s in sub.streams if not s.closing]
            current = [s for s in live if s.target.n == n and not s.expiring]
            due = [s for s in live if s.target.n == n and s.expiring and s.replacement is None]
            while len(current) < self.redundancy:
                exclude = {s.target.supplier for s in current}
                opened = await self._open_stream(sub, exclude)
                if opened is None:
                    break
                gw.metrics.resubscriptions.labels("opened").inc()
                current.append(opened)
                if due:  # its replacement answered index 0: the old one may go
                    old = due.pop(0)
                    old.replacement = opened
                    await self._retire(old, "replaced")
            if current:  # the new session's streams are confirmed: the old ones may go
                for s in live:
                    if s.target.n != n:
                        await self._retire(s, "rollover")

    async def _retire(self, stream: Stream, why: str) -> None:
        if stream.closing:
            return
        stream.closing = True  # a close by the gateway is never a fault
        with contextlib.suppress(Exception):
            await stream.ws.close()
        self.gw.metrics.resubscriptions.labels(why).inc()

    async def _close_sub(self, sub: Subscription) -> None:
        sub.closed = True
        if sub.manager is not None:
            sub.manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.manager
        for s in sub.streams:
            s.closing = True
            with contextlib.suppress(Exception):
                await s.ws.close()
            if s.task is not None:
                s.task.cancel()
        await self._free_slot(sub.gw_id)

    async def close(self) -> None:
        for sub in list(self.subs.values()):
            await self._close_sub(sub)
            self.gw.metrics.subscriptions.dec()
        self.subs.clear()


def _error(raw_id: bytes, exc: GatewayError) -> bytes:
    """A JSON-RPC error object; a limiter's refusal carries ``data.retry_after`` (seconds)."""
    if isinstance(exc, Limited):
        return orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": orjson.Fragment(raw_id),
                "error": {
                    "code": exc.jsonrpc_code,
                    "message": exc.message,
                    "data": {"retry_after": int(exc.retry_after_header)},
                },
            }
        )
    return jsonrpc_error_object(raw_id, exc.jsonrpc_code, exc.message)


def _result(raw_id: bytes, result: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":' + raw_id + b',"result":' + result + b"}"


async def handle_ws(request: web.Request, gw: Gateway, ctx: ClientContext) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=gw.config.limits.max_ws_message_bytes, heartbeat=30.0)
    await ws.prepare(request)
    client = ClientSocket(gw, ctx, ws)
    gw.metrics.ws_connections.inc()
    tasks: set[asyncio.Task[None]] = set()
    watcher = asyncio.create_task(client.watch())
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
        watcher.cancel()
        for t in tasks:
            t.cancel()
        await client.close()
        gw.metrics.ws_connections.dec()
    return ws
