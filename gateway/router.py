"""One client call from admission to answer: plan, cache, pin, select, relay, retry, hedge.

The hot path, in order (:meth:`Router.execute`):

1. ``plan``      — ``rollups/`` classifies the method and prices it (denied → JSON-RPC error);
2. ``cache``     — a finality-aware hit is answered with the client's own id;
3. ``route``     — stateful calls go to the supplier pinned to their filter id; others to
                   a supplier picked by QoS score (weighted random);
4. ``relay``     — signed per DESIGN §3.3; retried on another supplier (idempotent calls, or
                   writes that provably never reached a backend), hedged after a delay (reads):
                   :class:`gateway.failsafe.attempts.Attempts`;
5. ``settle``    — a head height (the handler's floor rule) never goes backwards for a client;
                   heights feed QoS;
                   agreeing answers enter the cache; filter handles are pinned.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

import gateway.quorum as quorum
from gateway.cache import AnswerCache, FrontCache, split_id
from gateway.config import RelayConfig
from gateway.errors import NoSupplier, RelayFailed, ResponseTooLarge, jsonrpc_error_object
from gateway.failsafe.attempts import Attempts
from gateway.failsafe.hedge import Hedger
from gateway.failsafe.retry import Outcome, RetryState
from gateway.jsonrpc import Call as ClientCall
from gateway.metrics import CIRCUIT_VALUES, Cell, GatewayMetrics, SupplierCells
from gateway.relay_client import RelayAnswer, RelayClient, RelayError, Target
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionBook, SessionView
from gateway.store.base import Store, StoreUnavailable
from protocol.errors import ErrorCode, Refusal
from rollups.answers import FloorRule
from rollups.errors import MethodNotFoundError, RequestError
from rollups.handler import CachePolicy, Call, CallPlan, Heights, MethodClass, RetryMode

__all__ = ["CallAnswer", "ClientContext", "Router"]

_METHOD_NOT_FOUND = b"Method not found"
FLOOR_TTL = 3600.0  # a client's floor outlives an hour of silence, no more
PIN_TTL = 3600.0  # a filter a node forgot answers "filter not found" anyway
# Cache hits only for ids every backend accepts (others get the backend's own refusal).
_PLAIN_ID = re.compile(rb'-?[0-9]{1,15}|"[^"\\]{0,128}"')
# enum members bound once (looked up on their class, each costs ~0.1 us per call)
_SUBSCRIPTION, _LONG_POLL = MethodClass.SUBSCRIPTION, MethodClass.LONG_POLL
_ANY, _NEVER = RetryMode.ANY, RetryMode.NEVER
_LABELS = {cls: cls.value for cls in MethodClass}  # a method class's metrics label
_CLOSED = CIRCUIT_VALUES["closed"]  # a success closes the supplier's breaker


@dataclass(frozen=True, slots=True)
class ClientContext:
    """Who is calling: the key (its hash names the client), the service, the paying app."""

    client_id: str
    key_id: str
    service: Service
    app: bytes
    quorum: int = 1  # DESIGN §4: legs that must agree (Relay-Quorum, ?quorum=, key default)


@dataclass(slots=True)  # not frozen: one per call on the hot path (frozen costs per field)
class CallAnswer:
    """The answer to one call. ``body`` is the backend's bytes when ``source == "relay"``."""

    status: int
    body: bytes
    source: str  # "relay" | "cache" | "gateway"
    supplier: str | None = None
    relay_request: str | None = None
    relay_receipt: str | None = None
    method_class: str = "invalid"
    legs: int = 1  # a quorum read's group: the Relay-* entries list this many legs

    @property
    def backend_status(self) -> int | None:
        """The backend's HTTP status (``Relay-Backend-Status``) of a relayed answer."""
        return self.status if self.source == "relay" else None

    @property
    def backend_statuses(self) -> str:
        """The ``Relay-Backend-Status`` entry: one status per leg, space-separated."""
        if self.source != "relay":
            return "-"
        if self.legs == 1:
            return str(self.status)
        return " ".join([str(self.status)] * self.legs)


@dataclass(slots=True)
class _AttemptCells:
    """What every attempt for one service touches, looked up once: its hedge delay and the
    metric cells labelled without a supplier (never forgotten, unlike a supplier's)."""

    hedger: Hedger
    relay_seconds: Cell
    verified: Cell
    skipped: Cell


@dataclass(slots=True)
class _Step:
    """What the later steps of one (non-quorum) call share."""

    plan: CallPlan  # step 1's (``plan.call``: the call as ``rollups/`` sees it)
    cls: str  # the plan's method class (metrics label)
    view: SessionView
    heights: Heights | None  # known when there is a cache policy
    rule: FloorRule | None
    policy: CachePolicy | None

    @property
    def settles(self) -> bool:
        """Is there a floor to hold or a cache to offer the answer to (step 5)?"""
        return self.rule is not None or (self.policy is not None and self.policy.cacheable)


def _gateway_error(call: ClientCall, code: int, message: str, cls: str) -> CallAnswer:
    return CallAnswer(
        200, jsonrpc_error_object(call.raw_id, code, message), "gateway", method_class=cls
    )


class Router:
    def __init__(
        self,
        *,
        sessions: SessionBook,
        client: RelayClient,
        qos: Qos,
        cache: AnswerCache | None,
        metrics: GatewayMetrics,
        config: RelayConfig,
        store: Store | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store  # floors and pins, shared by replicas (None: this process only)
        self.client = client
        client.on_late_lie = self._late_lie
        self._evictions: set[asyncio.Task[None]] = set()
        self.qos = qos
        self.cache = cache
        self.metrics = metrics
        self.cfg = config
        self.front = FrontCache()
        self._services: dict[str, _AttemptCells] = {}
        self._floors: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._pins: OrderedDict[tuple[str, str, str], tuple[int, bytes]] = OrderedDict()

    # -- the hot path: plan → cache → route → relay → settle ---------------------------
    async def execute(self, ctx: ClientContext, call: ClientCall) -> CallAnswer:
        """Answer one call; never raises for the client's input (GatewayError for outages)."""
        plan = self._plan(ctx, call)
        if isinstance(plan, CallAnswer):  # invalid or denied: the gateway answers
            return plan
        if ctx.quorum > 1:
            return await self._quorum(ctx, call, plan.call, plan)
        if plan.method_class is _SUBSCRIPTION:
            return _gateway_error(call, -32601, _METHOD_NOT_FOUND.decode(), _LABELS[_SUBSCRIPTION])
        step = self._prepare(ctx, call, plan)
        if step.policy is not None:  # only then may the cache answer
            hit = await self._cached(ctx, call, step)
            if hit is not None:
                return hit
        try:
            relayed = await self._route(ctx, step.view, plan, call.raw)
        except ResponseTooLarge as exc:
            return _gateway_error(call, exc.jsonrpc_code, "response too large", step.cls)
        if step.settles:
            return await self._settle(ctx, call, step, relayed)
        return _agreed((relayed,), step.cls)

    def _plan(self, ctx: ClientContext, call: ClientCall) -> CallPlan | CallAnswer:
        """Step 1: classify and price the call (``rollups/``); a refusal is an answer."""
        if call.invalid:
            return _gateway_error(call, -32600, "Invalid request", "invalid")
        svc = ctx.service
        rcall = Call(call.method, call.params, call.id, call.raw, call.is_notification)
        try:
            plan = svc.handler.plan(svc.spec, rcall)
        except RequestError as exc:
            message = (
                "Method not found"
                if exc.jsonrpc_code == -32601 and not _known(svc, call.method)
                else exc.message
            )
            return _gateway_error(call, exc.jsonrpc_code, message, "denied")
        return plan

    def _prepare(self, ctx: ClientContext, call: ClientCall, plan: CallPlan) -> _Step:
        """The session to sign for, the heights the handler judges by, the floor rule and the
        cache policy (only for ids every backend accepts: others get the backend's refusal)."""
        svc = ctx.service
        view = self.sessions.signing(svc.service_id, ctx.app)
        rule = svc.handler.floor_rule(svc.spec, plan.call)
        policy = heights = None  # only a cache reads the heights
        if self.cache is not None and not call.is_notification and _PLAIN_ID.fullmatch(call.raw_id):
            heights = self._heights(svc, view)
            policy = svc.handler.cache_policy(svc.spec, plan.call, heights)
        return _Step(plan, _LABELS[plan.method_class], view, heights, rule, policy)

    async def _cached(self, ctx: ClientContext, call: ClientCall, step: _Step) -> CallAnswer | None:
        """Step 2: a finality-aware hit, answered with the client's own id."""
        policy, sid = step.policy, ctx.service.service_id
        if self.cache is None or policy is None or not policy.cacheable or policy.key is None:
            return None
        try:
            hit = await self.cache.lookup(policy.key, call.raw_id)
        except StoreUnavailable:
            hit = None
        if hit is not None and step.rule is not None and not await self._above_floor(ctx, hit.body):
            hit = None  # a floored answer never goes backwards, cached or not
        if hit is None:
            self.metrics.child(self.metrics.cache, sid, "miss").inc()
            return None
        self.metrics.child(self.metrics.cache, sid, "hit").inc()
        if hit.final:  # a repeat of the same bytes is answered before parsing
            parts = split_id(call.raw)
            if parts is not None and parts[1] == call.raw_id:
                self.front.put(sid, parts[0], hit)
        return CallAnswer(
            hit.status,
            hit.body,
            "cache",
            hit.supplier,
            hit.relay_request,
            hit.relay_receipt,
            step.cls,
        )

    async def _settle(
        self, ctx: ClientContext, call: ClientCall, step: _Step, relayed: RelayAnswer
    ) -> CallAnswer:
        """Step 5: the client's floor holds, heights feed QoS, agreeing answers enter the cache."""
        cls = step.cls
        if step.rule is not None:
            floored = await self._settle_floor(ctx, step.view, step.plan, step.rule, call, relayed)
            if isinstance(floored, bytes):  # the client's floor, answered by the gateway
                return CallAnswer(200, floored, "gateway", method_class=cls)
            relayed = floored
        if step.policy is not None and step.policy.cacheable:
            assert step.heights is not None
            await self._offer(ctx.service, step.plan.call, relayed, step.heights)
        return _agreed((relayed,), cls)

    async def _quorum(
        self, ctx: ClientContext, call: ClientCall, rcall: Call, plan: CallPlan
    ) -> CallAnswer:
        """A quorum read (DESIGN §4, :mod:`gateway.quorum`): never from the cache; an
        agreement may fill it, a disagreement is the -32098 answer with every signed leg."""
        svc = ctx.service
        cls = plan.method_class.value
        view = self.sessions.signing(svc.service_id, ctx.app)
        try:
            quorum.admit(plan, view, ctx.quorum)
        except quorum.QuorumRefused as exc:
            body = jsonrpc_error_object(call.raw_id, -32602, exc.message)
            return CallAnswer(400, body, "gateway", method_class=cls)
        heights = self._heights(svc, view)
        try:
            result = await quorum.quorum_read(self, svc, view, plan, call.raw, ctx.quorum)
        except ResponseTooLarge as exc:
            return _gateway_error(call, exc.jsonrpc_code, "response too large", cls)
        if isinstance(result, quorum.Disagreed):
            quorum.log_disagreement(svc.service_id, call.method, result.legs)
            self.metrics.child(self.metrics.disagreements, svc.service_id, call.method).inc()
            body = quorum.disagreement_body(call.raw_id, result.legs)
            return CallAnswer(200, body, "gateway", method_class=cls)
        legs = result.legs
        rule = svc.handler.floor_rule(svc.spec, rcall)
        if rule is not None:  # an agreed head height: the floor rules of a single read
            floored = await quorum.settle_floor(self, ctx, view, rule, call.raw_id, legs)
            if floored is not None:
                return CallAnswer(200, floored, "gateway", method_class=cls)
        if self.cache is not None and not call.is_notification and _PLAIN_ID.fullmatch(call.raw_id):
            if svc.handler.cache_policy(svc.spec, rcall, heights).cacheable:
                for leg in legs:
                    await self._offer(svc, rcall, leg, heights)
        return _agreed(legs, cls)

    async def _offer(
        self, svc: Service, rcall: Call, answer: RelayAnswer, heights: Heights
    ) -> None:
        """Vote for a relayed answer in the cache; failures are never cached."""
        assert self.cache is not None
        if answer.status != 200:
            return
        try:  # an answer enters the cache (or counts in its quorum) only verified
            self.client.confirm(answer)
        except RelayError:
            self.lied(svc.service_id, answer.supplier, "answer")
            self.metrics.child(self.metrics.receipts, "failed").inc()
            return
        check = svc.handler.check_answer(svc.spec, rcall, answer.status, answer.body)
        if not check.valid or check.error:
            return
        store = svc.handler.store_policy(svc.spec, rcall, answer.body, heights)
        if not store.cacheable or store.key is None:
            return
        try:
            stored = await self.cache.offer(
                store.key,
                store.ttl,
                status=answer.status,
                body=answer.body,
                supplier="0x" + answer.supplier.hex(),
                relay_request=answer.relay_request,
                relay_receipt=answer.relay_receipt,
            )
        except StoreUnavailable:
            stored = False
        if stored:
            self.metrics.cache.labels(svc.service_id, "store").inc()

    async def execute_rest(self, ctx: ClientContext, call: Call) -> CallAnswer:
        """Answer one REST-like call (``call.raw`` is the canonical payload, DESIGN §3.3):
        the backend's status and body as they are. Refusals raise ``RequestError`` (the
        caller answers them with ``rollups.rest.rest_error``); outages raise GatewayError."""
        svc = ctx.service
        plan = svc.handler.plan(svc.spec, call)
        cls = plan.method_class.value
        if plan.method_class is MethodClass.SUBSCRIPTION:
            raise MethodNotFoundError(f"{call.method} needs a WebSocket")
        view = self.sessions.signing(svc.service_id, ctx.app)
        if ctx.quorum > 1:  # DESIGN §4 for REST-like reads too (QuorumRefused: the caller's)
            result = await quorum.rest_read(self, svc, view, plan, ctx.quorum)
            if isinstance(result, bytes):  # the disagreement's bare -32098 object
                return CallAnswer(200, result, "gateway", method_class=cls)
            return _agreed(result.legs, cls)
        return _agreed((await self._route(ctx, view, plan, call.raw),), cls)

    # -- steps -------------------------------------------------------------------------
    def _heights(self, svc: Service, view: SessionView) -> Heights:
        latest = self.qos.median_height(svc.service_id, view.suppliers)
        if latest is None:
            return Heights(None, None)
        return Heights.from_latest(latest, svc.spec.finality_depth)

    def _route(
        self, ctx: ClientContext, view: SessionView, plan: CallPlan, payload: bytes
    ) -> Awaitable[RelayAnswer]:
        """Step 3: a stateful call goes to the supplier pinned to its handle (and a handle it
        creates is pinned); any other to whom :meth:`relay`'s selection picks."""
        if plan.pinning is None:
            return self.relay(ctx.service, view, plan, payload)
        return self._route_pinned(ctx, view, plan, payload)

    async def _route_pinned(
        self, ctx: ClientContext, view: SessionView, plan: CallPlan, payload: bytes
    ) -> RelayAnswer:
        pin = plan.pinning
        assert pin is not None
        if pin.handle is not None:
            pinned = await self._pinned(ctx, view, pin.handle)
            if pinned is not None:
                return await self.relay(ctx.service, pinned[0], plan, payload, pinned_to=pinned[1])
        answer = await self.relay(ctx.service, view, plan, payload)
        if pin is not None and pin.creates and answer.status == 200:
            handle = ctx.service.handler.read_handle(answer.body)
            if handle is not None:
                await self._pin(ctx, handle, view.n, answer.supplier)
        return answer

    def _pin_key(self, ctx: ClientContext, handle: str) -> tuple[str, str, str]:
        return (ctx.client_id, ctx.service.service_id, handle.lower())

    async def _pin(self, ctx: ClientContext, handle: str, n: int, supplier: bytes) -> None:
        """Pin a filter handle to the supplier holding it (shared by replicas)."""
        key = self._pin_key(ctx, handle)
        self._pins[key] = (n, supplier)
        while len(self._pins) > 100_000:
            self._pins.popitem(last=False)
        if self.store is not None:
            try:
                await self.store.pin_put(":".join(key), n.to_bytes(8, "big") + supplier, PIN_TTL)
            except StoreUnavailable:
                return

    async def _pinned(
        self, ctx: ClientContext, view: SessionView, handle: str
    ) -> tuple[SessionView, bytes] | None:
        key = self._pin_key(ctx, handle)
        entry = self._pins.get(key)
        if entry is None and self.store is not None:
            try:
                raw = await self.store.pin_get(":".join(key))
            except StoreUnavailable:
                raw = None
            if raw is not None and len(raw) == 28:  # another replica created the filter
                entry = (int.from_bytes(raw[:8], "big"), raw[8:])
        if entry is None:
            return None
        n, supplier = entry
        if view.target(supplier) is not None:
            return view, supplier
        old = self.sessions.view(ctx.service.service_id, ctx.app, n)
        if old is not None and old.target(supplier) is not None:
            # the pinned supplier left the session: its relays are accepted until n's grace end
            return old, supplier
        return None

    # -- floors ------------------------------------------------------------------------
    def _floor_key(self, ctx: ClientContext) -> tuple[str, str]:
        return (ctx.client_id, ctx.service.service_id)

    async def _floor(self, ctx: ClientContext) -> int | None:
        """The client's floor: the shared store's (every replica's), else this process's."""
        key = self._floor_key(ctx)
        local = self._floors.get(key)
        if self.store is None:
            return local
        try:
            shared = await self.store.floor_get(f"{key[0]}:{key[1]}")
        except StoreUnavailable:
            return local
        if shared is None or (local is not None and local > shared):
            return local
        return shared

    async def _above_floor(self, ctx: ClientContext, body: bytes) -> bool:
        """Is the height in ``body`` at or above the client's floor (or is there none)?"""
        height = ctx.service.handler.read_height(body)
        floor = await self._floor(ctx)
        return floor is None or (height is not None and height >= floor)

    async def _raise_floor(self, ctx: ClientContext, height: int) -> None:
        key = self._floor_key(ctx)
        if height > self._floors.get(key, -1):
            self._floors[key] = height
        self._floors.move_to_end(key)
        while len(self._floors) > 100_000:
            self._floors.popitem(last=False)
        if self.store is not None:
            try:
                await self.store.floor_raise(f"{key[0]}:{key[1]}", height, FLOOR_TTL)
            except StoreUnavailable:
                return

    def _height_limit(self, svc: Service, view: SessionView, rule: FloorRule) -> int | None:
        """The highest height the rule lets in now (None: fewer than two recent reports)."""
        return rule.limit(self.qos.recent_heights(svc.service_id, view.suppliers, rule.window))

    async def _settle_floor(
        self,
        ctx: ClientContext,
        view: SessionView,
        plan: CallPlan,
        rule: FloorRule,
        call: ClientCall,
        answer: RelayAnswer,
    ) -> RelayAnswer | bytes:
        """The head height never goes backwards for a client, and enters the client's floor
        only within the rule (DESIGN §4). Returns the answer, or the gateway's own answer
        (bytes) holding the floor."""
        svc = ctx.service
        if answer.status != 200:
            return answer
        height = svc.handler.read_height(answer.body)
        if height is None:
            return answer
        self.qos.observe_height(svc.service_id, answer.supplier, height)  # a report too
        limit = self._height_limit(svc, view, rule)
        floor = await self._floor(ctx)
        if floor is not None and height < floor:
            # never backwards: ask the highest supplier once, else answer the floor ourselves
            best = max(
                (s for s in view.suppliers if s != answer.supplier),
                key=lambda s: self.qos.stats(svc.service_id, s).height or -1,
                default=None,
            )
            if best is not None and (self.qos.stats(svc.service_id, best).height or -1) >= floor:
                try:
                    retry = await self.relay(svc, view, plan, call.raw, pinned_to=best)
                except RelayFailed:
                    retry = None
                if retry is not None:
                    h2 = svc.handler.read_height(retry.body)
                    if h2 is not None and h2 >= floor and (limit is None or h2 <= limit):
                        if rule.admits(h2, self._recent(svc, view, rule)):
                            await self._raise_floor(ctx, h2)
                        return retry
            return svc.handler.height_answer(call.raw_id, floor)
        if limit is not None and height <= limit:
            await self._raise_floor(ctx, height)
        return answer

    def _recent(self, svc: Service, view: SessionView, rule: FloorRule) -> list[int]:
        return self.qos.recent_heights(svc.service_id, view.suppliers, rule.window)

    async def other_session(
        self, sid: str, view: SessionView, code: ErrorCode | None
    ) -> SessionView | None:
        """The session to sign for after a relayer refused ``view.n`` for its timing:
        ``n - 1`` in grace when it has not seen ``n`` start, ``n + 1`` when ``n`` is over for
        it; otherwise wait a moment (after EXPIRED: for our follower's next pass, it lags) and
        take the signing session."""
        alt: SessionView | None = None
        if code is ErrorCode.SESSION_NOT_STARTED:
            alt = self.sessions.fallback(sid, view.app, view.n)
        elif code is ErrorCode.SESSION_EXPIRED:
            alt = self.sessions.view(sid, view.app, view.n + 1)
        if alt is None or not alt.targets:
            if code is ErrorCode.SESSION_EXPIRED:
                await self.sessions.catch_up()
            else:
                await asyncio.sleep(0.05)
            try:
                alt = self.sessions.signing(sid, view.app)
            except NoSupplier:
                return None
        if code is ErrorCode.SESSION_EXPIRED and alt.n < view.n:
            return None  # view.n is over for a relayer, so is every earlier one: wait, not back
        return alt if alt.n != view.n and alt.targets else None

    # -- relaying with retries and hedges ----------------------------------------------
    def _service(self, service_id: str) -> _AttemptCells:
        cells = self._services.get(service_id)
        if cells is None:
            m = self.metrics
            cells = self._services[service_id] = _AttemptCells(
                Hedger(floor=self.cfg.hedge_delay or 1.0),
                m.child(m.relay_seconds, service_id),
                m.child(m.receipts, "verified"),
                m.child(m.receipts, "skipped"),
            )
        return cells

    async def attempt(
        self,
        svc: Service,
        target: Target,
        plan: CallPlan,
        payload: bytes,
        per_try: float,
        inline: bool = False,
    ) -> RelayAnswer:
        sid = svc.service_id
        supplier_hex = "0x" + target.supplier.hex()
        cells = self.metrics.supplier_cells(sid, supplier_hex)
        cells.selected.inc()
        try:
            answer = await self.client.relay(
                target,
                payload,
                plan.compute_units,
                attempt_timeout=per_try,
                max_bytes=svc.handler.answer_cap(svc.spec, plan.call),
                inline=inline,
            )
        except RelayError as exc:
            self._blame(sid, target.supplier, exc)
            self.metrics.child(self.metrics.relays, sid, supplier_hex, exc.outcome.value).inc()
            self._circuit(sid, target.supplier)
            raise
        except asyncio.CancelledError:
            self.metrics.relays.labels(sid, supplier_hex, "cancelled").inc()
            raise
        self._succeeded(sid, target.supplier, cells, answer)
        return answer

    def _succeeded(
        self, sid: str, supplier: bytes, cells: SupplierCells, answer: RelayAnswer
    ) -> None:
        """An attempt answered: its latency feeds selection, the hedge delay and metrics."""
        latency = answer.latency
        st = self.qos.record_success(sid, supplier, latency)
        service = self._services.get(sid) or self._service(sid)
        service.hedger.observe(latency)
        service.relay_seconds.observe(latency)
        (service.verified if answer.receipt_checked else service.skipped).inc()
        cells.success.inc()
        cells.circuit.set(_CLOSED)
        cells.error_rate.set(st.error_rate)

    def _blame(self, sid: str, supplier: bytes, exc: RelayError) -> None:
        """Count a failed attempt in selection by §3.3's refusal classes: a lie is penalised,
        a supplier-specific or view-dependent refusal is not, an outage counts as a failure;
        an oversized answer waits until another supplier answered within the cap."""
        if exc.oversized or exc.refusal in (Refusal.SUPPLIER, Refusal.VIEW):
            return
        if exc.lie:
            self.lied(
                sid, supplier, "refusal" if exc.relay_code != ErrorCode.BAD_RECEIPT else "answer"
            )
            return
        if exc.refused:
            self.qos.refuse(sid, supplier, exc.message)
        self.qos.record_failure(sid, supplier)
        if exc.outcome is Outcome.UNSENT and exc.relay_code is None:
            # nothing listens there: open its breaker now, a probe comes back later
            self.qos.stats(sid, supplier).breaker.trip()

    def _late_lie(self, target: Target) -> None:
        """A sampled receipt signature failed after its answer went out (DESIGN §6): a lie
        against the supplier, and what it put in the caches is evicted."""
        self.metrics.child(self.metrics.receipts, "failed").inc()
        self.lied(target.service_id, target.supplier, "late receipt")
        supplier = "0x" + target.supplier.hex()
        self.front.evict_supplier(supplier)
        if self.cache is not None:
            task = asyncio.get_running_loop().create_task(self._evict(supplier))
            self._evictions.add(task)
            task.add_done_callback(self._evictions.discard)

    async def _evict(self, supplier: str) -> None:
        assert self.cache is not None
        try:
            await self.cache.evict_supplier(supplier)
        except StoreUnavailable:
            return  # the entries expire on their own; the supplier is penalised already

    def lied(self, sid: str, supplier: bytes, kind: str) -> None:
        self.qos.record_lie(sid, supplier)
        self.metrics.child(self.metrics.lies, sid, "0x" + supplier.hex(), kind).inc()
        self._circuit(sid, supplier)

    def _circuit(self, sid: str, supplier: bytes) -> None:
        st = self.qos.stats(sid, supplier)
        cells = self.metrics.supplier_cells(sid, "0x" + supplier.hex())
        cells.circuit.set(CIRCUIT_VALUES[st.breaker.state.value])
        cells.error_rate.set(st.error_rate)

    def bad_height(self, svc: Service, view: SessionView, plan: CallPlan, body: bytes) -> bool:
        """A head height above what the floor rule admits: one supplier pushing it up."""
        rule = svc.handler.floor_rule(svc.spec, plan.call)
        if rule is None:
            return False
        height = svc.handler.read_height(body)
        limit = self._height_limit(svc, view, rule)
        return height is not None and limit is not None and height > limit

    def relay(
        self,
        svc: Service,
        view: SessionView,
        plan: CallPlan,
        payload: bytes,
        *,
        pinned_to: bytes | None = None,
    ) -> Coroutine[Any, Any, RelayAnswer]:
        """Step 4: relay one payload within ``view``, retried and hedged by the plan's rules
        (:class:`gateway.failsafe.attempts.Attempts`; its ``run()``, to await)."""
        cfg, rules = self.cfg, plan.retry
        if plan.method_class is _LONG_POLL:
            per_try, budget = rules.timeout, max(cfg.deadline, rules.timeout)
        else:
            per_try, budget = min(cfg.timeout, rules.timeout), cfg.deadline
        hedger = None
        if rules.hedge and cfg.hedge_delay is not None and pinned_to is None:
            hedger = self._service(svc.service_id).hedger
        retry = RetryState(
            max_attempts=1 if pinned_to is not None else cfg.max_attempts,
            idempotent=rules.mode is _ANY,
            allowed=rules.mode is not _NEVER,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        return Attempts(
            self,
            svc,
            view,
            plan,
            payload,
            retry,
            per_try,
            deadline,
            hedger,
            pinned_to=pinned_to,
            loop=loop,
        ).run()


def _agreed(legs: tuple[RelayAnswer, ...], cls: str) -> CallAnswer:
    """A relayed answer: one leg, or a quorum's group with its legs space-separated in every
    Relay-* header."""
    if len(legs) == 1:
        one = legs[0]
        return CallAnswer(
            one.status,
            one.body,
            "relay",
            "0x" + one.supplier.hex(),
            one.relay_request,
            one.relay_receipt,
            cls,
        )
    return CallAnswer(
        legs[0].status,
        legs[0].body,
        "relay",
        " ".join("0x" + a.supplier.hex() for a in legs),
        " ".join(a.relay_request for a in legs),
        " ".join(a.relay_receipt for a in legs),
        cls,
        legs=len(legs),
    )


def _known(svc: Service, method: str) -> bool:
    return svc.handler.method_policy(svc.spec, method).known
