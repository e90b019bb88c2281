"""JSON-RPC over WebSocket: plain calls through the router, subscriptions on relay streams.

The upgrade (:func:`handle_ws`), in steps: the key's allowed origins (a browser origin not
listed is refused, 403) → the quorum (``?quorum=N`` / ``Relay-Quorum``: N above the signing
session's distinct suppliers is refused, 400 -32602) → accept, answering ``Relay-Request-Id``
→ serve the socket's messages → close its subscriptions.

A message (:meth:`ClientSocket.on_message`): parse and admit (N per call under quorum N) →
a batch, a subscription call, or one call through the same router as HTTP (quorum reads by
the HTTP rules, :mod:`gateway.quorum`). What is a subscription call, how the client names a
subscription and what a push's identity is: the service's ``rollups/`` handler says
(``subscription``, ``SubscriptionIds``, ``notification_identity``, ``notification_result``,
``rewrite_notification``, ``unsubscribe_result``); nothing here knows a chain.

A subscription is served by upstream relay streams (DESIGN §3.3 WebSocket transport), opened
through :class:`~gateway.relay_client.RelayClient` — the gateway's one upstream seam — on
``redundancy`` distinct suppliers (``quorum + 1`` with a quorum). A stream that ends is judged
(:mod:`gateway.streams`) and replaced; one nearing its ``max_index`` and the old session's at
rollover are closed once their successor confirmed, so the client sees no gap. Pushes go
through the subscription's :class:`~gateway.streams.Agreement`: forwarded at the first copy,
or at the quorum's N-th identical copy from distinct suppliers; later copies are dropped; a
differing copy, or an event some streams sent and the quorum never agreed on within the relay
deadline, is a disagreement (logged and counted). An event that only one stream saw because
the others subscribed just after it can count as one, at start-up only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from aiohttp import WSMsgType, web

import gateway.quorum as quorum
from gateway.batch import run_batch
from gateway.errors import BadRequest, ClientReason, GatewayError, jsonrpc_error_object
from gateway.jsonrpc import Call as ClientCall
from gateway.jsonrpc import parse_body
from gateway.limiter import Limited
from gateway.relay_client import (
    Broken,
    Closed,
    Frame,
    RelayClient,
    RelayStream,
    StreamUnavailable,
    Target,
)
from gateway.router import ClientContext
from gateway.selection import Qos
from gateway.streams import (
    Agreement,
    Decision,
    Ending,
    Fault,
    Verdict,
    check_index,
    ending,
    grown_window,
    replace_at,
    stream_window,
)
from rollups.errors import RequestError
from rollups.handler import Call, SubscriptionCall, SubscriptionIds
from session.windows import windows
from transport.logs import REQUEST

if TYPE_CHECKING:
    from gateway.server import Gateway
    from gateway.store.base import Store

__all__ = ["Upstream", "handle_ws", "websocket_handler"]

log = logging.getLogger("relaynet.gateway")

REQUEST_ID = "Relay-Request-Id"
_TICK = 0.2
CLOSE_QUOTA = 4429  # the key's quota is spent (after a JSON-RPC error notification)
CLOSE_REVOKED = 1008  # policy violation: the key was revoked


@dataclass(frozen=True, slots=True)
class Upstream:
    """What client sockets use besides the request path (built by the composition root):
    the upstream seam, selection, and the store holding the per-key subscription leases."""

    client: RelayClient
    qos: Qos
    store: Store


WsHandler = Callable[[web.Request, "Gateway", ClientContext], Awaitable[web.StreamResponse]]


def websocket_handler(upstream: Upstream) -> WsHandler:
    """The upgrade handler for :func:`gateway.server.add_routes`."""

    async def handler(request: web.Request, gw: Gateway, ctx: ClientContext) -> web.StreamResponse:
        return await handle_ws(request, gw, ctx, upstream)

    return handler


# -- the upgrade -----------------------------------------------------------------------------
async def handle_ws(
    request: web.Request, gw: Gateway, ctx: ClientContext, upstream: Upstream
) -> web.StreamResponse:
    """Origin → quorum → accept with ``Relay-Request-Id`` → serve → close. A refusal raises
    ``GatewayError`` before the upgrade (the HTTP route answers it)."""
    check_origin(gw, ctx, request.headers.get("Origin"))
    check_quorum(gw, ctx)
    ws = web.WebSocketResponse(max_msg_size=gw.config.limits.max_ws_message_bytes, heartbeat=30.0)
    fields = REQUEST.get()
    if fields is not None and "request_id" in fields:
        ws.headers[REQUEST_ID] = str(fields["request_id"])
    await ws.prepare(request)
    await ClientSocket(gw, upstream, ctx, ws).serve()
    return ws


def check_origin(gw: Gateway, ctx: ClientContext, origin: str | None) -> None:
    """A key with allowed origins: a browser (it sends ``Origin``) from another origin may
    not open a socket with it (CORS does not guard WebSockets: the gateway must)."""
    origins = gw.keys.lookup_hash(ctx.client_id).origins
    if origins and origin is not None and origin not in origins:
        raise BadRequest("this origin may not use the key", reason=ClientReason.ORIGIN_NOT_ALLOWED)


def check_quorum(gw: Gateway, ctx: ClientContext) -> None:
    """A quorum above the signing session's distinct suppliers: -32602, HTTP 400."""
    if ctx.quorum <= 1:
        return
    view = gw.sessions.signing(ctx.service.service_id, ctx.app)
    try:
        quorum.check_suppliers(view, ctx.quorum)
    except quorum.QuorumRefused as exc:
        raise BadRequest(exc.message, reason=ClientReason.INVALID_PARAMS) from exc


# -- one subscription and its streams --------------------------------------------------------
@dataclass
class Stream:
    """One upstream relay stream of one subscription, signed for ``max_index`` pushes."""

    relay: RelayStream
    upstream_id: str  # the node's own subscription id (``""``: none)
    confirmation: object  # the node's result for the subscribe call
    joined: float  # when its index-0 answer arrived (loop time)
    index: int = 0  # the last index delivered (0: the answer to the subscribe call)
    task: asyncio.Task[None] | None = None
    closing: bool = False  # closed by the gateway: never a fault
    replacement: Stream | None = None  # opened because this one neared max_index

    @property
    def target(self) -> Target:
        return self.relay.target

    @property
    def max_index(self) -> int:
        return self.relay.max_index

    @property
    def expiring(self) -> bool:
        """Its replacement is due (index ``max_index − max(4, w/4)`` reached)."""
        return self.index >= replace_at(self.max_index)


@dataclass
class Subscription:
    gw_id: str  # the gateway's own id (the client's name under ``SubscriptionIds.GATEWAY``)
    payload: bytes
    method: str
    compute_units: int
    window: int  # the window its next streams are signed with (doubles when replacing late)
    ids: SubscriptionIds
    agreement: Agreement
    topic: str | None = None
    rewrite_id: str = ""  # the id its pushes carry to the client
    streams: list[Stream] = field(default_factory=list)
    manager: asyncio.Task[None] | None = None
    refusal: bytes | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    deliver_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # suppliers that sit this subscription out, with the session they are out for
    # (a fault: not again this session; a non-lie 4002: skipped until the next session)
    excluded: set[tuple[bytes, int]] = field(default_factory=set)
    closed: bool = False  # unsubscribed, or its socket is gone

    @property
    def quorum(self) -> int:
        return self.agreement.quorum


class ClientSocket:
    """One client WebSocket: its calls, its subscriptions, one send lock."""

    def __init__(
        self, gw: Gateway, upstream: Upstream, ctx: ClientContext, ws: web.WebSocketResponse
    ) -> None:
        self.gw = gw
        self.upstream = upstream
        self.ctx = ctx
        self.ws = ws
        self.subs: dict[str, Subscription] = {}
        self._send_lock = asyncio.Lock()
        self._channels = itertools.count(1)
        self.cfg = gw.config.ws
        # quorum N keeps N + 1 streams: one may die or lie and N still agree
        self.redundancy = max(self.cfg.redundancy, ctx.quorum + 1 if ctx.quorum > 1 else 1)
        self._pending = 0  # subscribe calls being opened (they hold a slot)
        self._lease_scope = f"ws-subs:{ctx.client_id}"
        self.shut = False

    async def serve(self) -> None:
        """Each client message in its own task; housekeeping alongside; all closed at the end."""
        self.gw.metrics.ws_connections.inc()
        tasks: set[asyncio.Task[None]] = set()
        watcher = asyncio.create_task(self.watch())
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    data = msg.data.encode()
                elif msg.type is WSMsgType.BINARY:
                    data = bytes(msg.data)
                else:
                    break
                task = asyncio.create_task(self.on_message(data))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            watcher.cancel()
            for t in tasks:
                t.cancel()
            await self.close()
            self.gw.metrics.ws_connections.dec()

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
        """Parse and admit → a batch, a subscription call, or one call."""
        try:
            req = parse_body(data, max_batch=self.gw.config.limits.max_batch)
            record = self.gw.keys.lookup_hash(self.ctx.client_id)
            # N legs count N against the key's limits (DESIGN §4)
            calls = len(req.calls) * self.ctx.quorum
            await self.gw.limiter.admit(record, self.ctx.service.service_id, calls)
        except GatewayError as exc:
            await self.send(_error(b"null", exc))
            return
        if req.is_batch:
            batch = await run_batch(self.gw.router, self.ctx, req.calls)
            if batch.body:
                await self.send(batch.body)
            return
        call = req.calls[0]
        info = None if call.invalid else self._subscription_call(call)
        if info is None:
            await self._plain_call(call)
        elif info.subscribe:
            body, sub = await self.subscribe(call, info)
            await self.send(body)
            if sub is not None:
                sub.ready.set()  # notifications only after the client has its id
        else:
            await self.send(await self.unsubscribe(call, info))

    def _subscription_call(self, call: ClientCall) -> SubscriptionCall | None:
        """The handler's reading of a (un)subscribe call (None: not one)."""
        rcall = Call(method=call.method, params=call.params, id=None, raw=call.raw)
        return self.ctx.service.handler.subscription(rcall)

    async def _plain_call(self, call: ClientCall) -> None:
        try:
            answer = await self.gw.router.execute(self.ctx, call)
            body = answer.body
        except GatewayError as exc:
            body = jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message)
        if body:
            await self.send(body)

    async def subscribe(
        self, call: ClientCall, info: SubscriptionCall
    ) -> tuple[bytes, Subscription | None]:
        """Plan (price) → a slot → the first streams → the client's confirmation."""
        svc = self.ctx.service
        rcall = Call(method=call.method, params=call.params, id=None, raw=call.raw)
        try:
            plan = svc.handler.plan(svc.spec, rcall)
        except RequestError as exc:
            return jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message), None
        gw_id = "0x" + secrets.token_hex(16)
        refused = await self._take_slot(call.raw_id, gw_id)
        if refused is not None:
            return refused, None
        sub = Subscription(
            gw_id,
            call.raw,
            call.method,
            plan.compute_units,
            self.cfg.window,
            info.ids,
            Agreement(self.ctx.quorum),
            topic=info.topic,
        )
        try:
            first = await self._first_streams(sub, call.raw_id)
            if isinstance(first, bytes):
                await self._free_slot(gw_id)
                return first, None
            reply = self._confirm(sub, call.raw_id, first)
            self._adopt(sub)
        finally:
            self._pending -= 1
        return reply, sub

    def _confirm(self, sub: Subscription, raw_id: bytes, first: Stream) -> bytes:
        """The answer to the subscribe call, by how the client names a subscription: the
        gateway's id, a channel number of the gateway's, or the node's own answer (its pushes
        then carry the subscribe call's id)."""
        if sub.ids is SubscriptionIds.GATEWAY:
            sub.rewrite_id = sub.gw_id
            return _result(raw_id, orjson.dumps(sub.gw_id))
        if sub.ids is SubscriptionIds.CHANNEL:
            sub.rewrite_id = str(next(self._channels))
            return _result(raw_id, sub.rewrite_id.encode())
        sub.rewrite_id = raw_id.decode().strip('"')
        return _result(raw_id, orjson.dumps(first.confirmation))

    async def unsubscribe(self, call: ClientCall, info: SubscriptionCall) -> bytes:
        """Close the subscriptions the call names; the handler words the answer."""
        gone = [sub for sub in self.subs.values() if _names(info, sub)]
        for sub in gone:
            self.subs.pop(sub.gw_id, None)
            await self._close_sub(sub)
            self.gw.metrics.subscriptions.dec()
        return _result(call.raw_id, self.ctx.service.handler.unsubscribe_result(bool(gone)))

    async def _first_streams(self, sub: Subscription, raw_id: bytes) -> Stream | bytes:
        """The subscription's first stream — with a quorum, its first ``quorum`` streams, so
        that every push after the confirmation can agree — or the client's refusal."""
        try:
            first = await self._open_stream(sub, exclude=set())
            while first is not None and len(sub.streams) < sub.quorum:
                if await self._open_stream(sub, {s.target.supplier for s in sub.streams}) is None:
                    await self._stop_streams(sub)
                    return jsonrpc_error_object(
                        raw_id, -32005, f"quorum {sub.quorum}: too few suppliers could subscribe"
                    )
        except GatewayError as exc:
            await self._stop_streams(sub)
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

    # -- limits: 64 per socket, 1,000 per key across replicas (leases) -------------------
    async def _take_slot(self, raw_id: bytes, gw_id: str) -> bytes | None:
        """Reserve a subscription slot; the refusal to send when there is none."""
        cap = self.cfg.max_subscriptions_per_socket
        if len(self.subs) + self._pending >= cap:
            return jsonrpc_error_object(
                raw_id, -32005, f"too many subscriptions on this socket (limit {cap})"
            )
        per_key = self.cfg.max_subscriptions_per_key
        store = self.upstream.store
        try:
            held = await store.lease(self._lease_scope, gw_id, per_key, self.cfg.lease_ttl)
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
            await self.upstream.store.release(self._lease_scope, gw_id)

    async def _renew_leases(self) -> None:
        for gw_id in list(self.subs):
            with contextlib.suppress(GatewayError):
                await self.upstream.store.lease(
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

    # -- upstream streams ---------------------------------------------------------------
    def _max_stream_relays(self, n: int) -> int:
        try:
            return self.gw.sessions.snapshot.economic_params(n).max_stream_relays
        except (KeyError, LookupError, ValueError):
            return self.cfg.window

    async def _open_stream(self, sub: Subscription, exclude: set[bytes]) -> Stream | None:
        """Choose a supplier, open, sign and confirm one stream; None when every try failed."""
        sid = self.ctx.service.service_id
        view = self.gw.sessions.signing(sid, self.ctx.app)
        tried = set(exclude) | {s for s, n in sub.excluded if n == view.n}
        w = stream_window(sub.window, self._max_stream_relays(view.n))
        for _ in range(len(view.targets)):
            supplier = self.upstream.qos.choose(sid, view.suppliers, exclude=tried)
            if supplier is None:
                return None
            tried.add(supplier)
            target = view.target(supplier)
            if target is None:
                continue
            stream = await self._connect(sub, target, w)
            if stream is not None:
                self.gw.metrics.child(self.gw.metrics.stream_windows, sid, str(w)).inc()
                stream.task = asyncio.create_task(self._pump(sub, stream))
                sub.streams.append(stream)
                return stream
        return None

    async def _connect(self, sub: Subscription, target: Target, w: int) -> Stream | None:
        """Open the stream through the seam and read its index-0 answer."""
        try:
            relay = await self.upstream.client.open_stream(
                target,
                sub.payload,
                sub.compute_units,
                w,
                max_msg_size=self.gw.config.limits.max_ws_message_bytes,
                heartbeat=self.cfg.heartbeat,
            )
        except StreamUnavailable as exc:
            if exc.fault:
                self.upstream.qos.record_failure(target.service_id, target.supplier)
            return None
        try:
            async with asyncio.timeout(self.gw.config.relay.timeout):
                event = await relay.receive()
        except TimeoutError:
            event = Broken(Fault.BAD_FRAME, "no index-0 answer in time")
        stream = self._confirmed(sub, relay, event)
        if stream is None:
            await relay.close()
        return stream

    def _confirmed(
        self, sub: Subscription, relay: RelayStream, event: Frame | Closed | Broken
    ) -> Stream | None:
        """The stream when its first event is the node's confirmation at index 0; otherwise
        the ending judged (a refusal by the node kept for the client)."""
        target = relay.target
        if isinstance(event, Closed):  # refused on the first frame (4002 and its code)
            self._judge(sub, target, self._on_close(target, 0, relay.max_index, event))
            return None
        if isinstance(event, Broken) or event.index != 0:
            fault, detail = (
                (event.fault, event.detail)
                if isinstance(event, Broken)
                else (Fault.BAD_FRAME, f"first index {event.index}")
            )
            self._judge(sub, target, Verdict(Ending.FAULT, fault, detail))
            return None
        try:
            answer = orjson.loads(event.body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            self.upstream.qos.record_failure(target.service_id, target.supplier)
            return None
        result = answer.get("result")
        confirmed = "result" in answer and "error" not in answer
        upstream_id = sub.ids.read_confirmation(result) if confirmed else None
        if upstream_id is None:
            sub.refusal = event.body
            return None
        return Stream(relay, upstream_id, result, asyncio.get_running_loop().time())

    def _fault(self, sub: Subscription, target: Target, fault: Fault, detail: str) -> None:
        """A supplier broke a stream: not used for this subscription again this session,
        and counted in selection."""
        sub.excluded.add((target.supplier, target.n))
        self.upstream.qos.record_failure(target.service_id, target.supplier)
        supplier = "0x" + target.supplier.hex()
        self.gw.metrics.stream_faults.labels(target.service_id, supplier, fault.value).inc()
        log.warning("stream fault by %s on %s: %s (%s)", supplier, target.service_id, fault, detail)

    async def _pump(self, sub: Subscription, stream: Stream) -> None:
        """Deliver one stream's pushes in index order; judge how it ends (DESIGN §4)."""
        frames = self.gw.metrics.child(
            self.gw.metrics.stream_frames,
            stream.target.service_id,
            "0x" + stream.target.supplier.hex(),
        )
        verdict: Verdict | None = None
        try:
            await sub.ready.wait()
            while verdict is None:
                event = await stream.relay.receive()
                if stream.closing:
                    return  # closed by the gateway: whatever comes now is not a fault
                if isinstance(event, Frame):
                    verdict = await self._on_frame(sub, stream, event)
                    frames.inc()
                elif isinstance(event, Closed):
                    verdict = self._on_close(stream.target, stream.index, stream.max_index, event)
                else:
                    verdict = Verdict(Ending.FAULT, event.fault, event.detail)
        finally:
            if verdict is not None and not stream.closing:
                self._judge(sub, stream.target, verdict)
            stream.closing = True
            await stream.relay.close()
            sub.wake.set()

    async def _on_frame(self, sub: Subscription, stream: Stream, frame: Frame) -> Verdict | None:
        wrong = check_index(stream.index + 1, frame.index)
        if wrong is None and frame.index > stream.max_index:
            wrong = Fault.JUMP
        if wrong is not None:
            detail = f"index {frame.index} after {stream.index} (max {stream.max_index})"
            return Verdict(Ending.FAULT, wrong, detail)
        stream.index = frame.index
        if stream.expiring:
            sub.wake.set()  # its replacement is due
        if frame.index == stream.max_index and stream.replacement is None:
            # the replacement came too late: sign larger windows from now on
            sub.window = grown_window(sub.window, self._max_stream_relays(stream.target.n))
        await self._deliver(sub, stream, frame.body)
        return None

    def _on_close(self, target: Target, last_index: int, max_index: int, closed: Closed) -> Verdict:
        snapshot = self.gw.sessions.snapshot
        return ending(
            closed.code,
            closed.reason,
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

    # -- pushes to the client -----------------------------------------------------------
    async def _deliver(self, sub: Subscription, stream: Stream, body: bytes) -> None:
        """Send a push once — at its first copy, or at the quorum's agreeing copy — counted
        against the key's quota (N under quorum N); later copies dropped."""
        handler = self.ctx.service.handler
        identity = handler.notification_identity(body)
        content = (
            hashlib.sha256(handler.notification_result(body)).digest()
            if sub.quorum > 1
            else identity
        )
        now = asyncio.get_running_loop().time()
        async with sub.deliver_lock:
            if self.shut:
                return
            offered = sub.agreement.offer(identity, content, stream.target.supplier, now)
            if offered.outvoted:
                self._disagreed(sub, offered.outvoted)
            if offered.decision is not Decision.FORWARD or not await self._count_push(sub):
                return
            await self.send(handler.rewrite_notification(body, sub.rewrite_id))
        self.gw.metrics.child(self.gw.metrics.pushes, self.ctx.service.service_id).inc()

    def _disagreed(self, sub: Subscription, suppliers: tuple[bytes, ...] | set[bytes]) -> None:
        sid = self.ctx.service.service_id
        quorum.log_suppliers_disagree(sid, sub.method, sorted(suppliers))
        self.gw.metrics.child(self.gw.metrics.disagreements, sid, sub.method).inc()

    def _expire(self, sub: Subscription) -> None:
        """Events the quorum never agreed on within the relay deadline are forgotten; one is
        a disagreement when its copies differ, or when ``quorum`` streams that were up before
        it came are still up and did not agree on it."""
        now = asyncio.get_running_loop().time()
        for entry in sub.agreement.expire(before=now - self.gw.config.relay.deadline):
            witnesses = {
                s.target.supplier
                for s in sub.streams
                if not s.closing and s.joined < entry.first_seen
            }
            if len(entry.copies) > 1 or len(witnesses) >= sub.quorum:
                self._disagreed(sub, entry.suppliers())

    async def _count_push(self, sub: Subscription) -> bool:
        """One push against the key's quota — N under quorum N — (no rate limit: the client
        did not ask for it). At exhaustion: a JSON-RPC error notification, then close 4429."""
        gw = self.gw
        try:
            record = gw.keys.lookup_hash(self.ctx.client_id)
            await gw.limiter.count(record, self.ctx.service.service_id, sub.quorum)
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

    # -- keeping the streams up ---------------------------------------------------------
    async def _manage(self, sub: Subscription) -> None:
        """Keep ``redundancy`` live streams in the signing session: replace a stream nearing
        its ``max_index`` (closing it once the replacement answered index 0) and roll over to a
        new session the same way, so the client sees no gap."""
        sid = self.ctx.service.service_id
        while not sub.closed:
            # (not asyncio.wait_for: on 3.11 it can swallow the cancellation of _close_sub)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK):
                    await sub.wake.wait()
            sub.wake.clear()
            sub.streams = [s for s in sub.streams if s.task is not None and not s.task.done()]
            if sub.quorum > 1:
                self._expire(sub)
            try:
                n = self.gw.sessions.signing(sid, self.ctx.app).n
            except GatewayError:
                continue
            await self._top_up(sub, n)

    async def _top_up(self, sub: Subscription, n: int) -> None:
        """Open streams in session ``n`` up to ``redundancy``; retire what they replace."""
        live = [s for s in sub.streams if not s.closing]
        current = [s for s in live if s.target.n == n and not s.expiring]
        due = [s for s in live if s.target.n == n and s.expiring and s.replacement is None]
        while len(current) < self.redundancy:
            opened = await self._open_stream(sub, {s.target.supplier for s in current})
            if opened is None:
                break
            self.gw.metrics.resubscriptions.labels("opened").inc()
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
        await stream.relay.close()
        self.gw.metrics.resubscriptions.labels(why).inc()

    async def _stop_streams(self, sub: Subscription) -> None:
        for s in sub.streams:
            s.closing = True
            await s.relay.close()
            if s.task is not None:
                s.task.cancel()

    async def _close_sub(self, sub: Subscription) -> None:
        sub.closed = True
        if sub.manager is not None:
            sub.manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sub.manager
        await self._stop_streams(sub)
        await self._free_slot(sub.gw_id)

    async def close(self) -> None:
        for sub in list(self.subs.values()):
            await self._close_sub(sub)
            self.gw.metrics.subscriptions.dec()
        self.subs.clear()


def _names(info: SubscriptionCall, sub: Subscription) -> bool:
    """Does an unsubscribe call name ``sub``? By the gateway's id, or by topic (none: all)."""
    if info.every:
        return True
    if info.ids is SubscriptionIds.GATEWAY:
        return info.subscription_id is not None and sub.gw_id == info.subscription_id
    return info.subscription_id is None or sub.topic == info.subscription_id


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
