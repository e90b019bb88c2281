"""The gateway's HTTP surface: routes, CORS, body limits, errors — the client-facing edge.

``POST /v1/{service}`` (key in ``Authorization: Bearer``) and ``POST /v1/{service}/{key}``;
the same paths upgrade to WebSocket; REST-like calls (CometBFT URI GETs, Cosmos REST) at
``GET|POST /v1/{service}/{key}/{path}``; ``OPTIONS`` for browsers; ``/healthz`` and ``/readyz``.
Every refusal is a JSON-RPC error body with a stable code; a client's mistake is never a 5xx.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web

from gateway.batch import run_batch
from gateway.cache import split_id
from gateway.errors import (
    BadRequest,
    ClientReason,
    GatewayError,
    ResponseTooLarge,
    jsonrpc_error_body,
)
from gateway.jsonrpc import Call, parse_body
from gateway.keys import KEY_PREFIX, ApiKey, KeyRing
from gateway.metrics import GatewayMetrics
from gateway.quorum import QuorumRefused, parse_quorum
from gateway.router import CallAnswer, ClientContext
from gateway.services import Service
from gateway.state import GATEWAY, Gateway
from protocol.encoding import address_from_hex
from protocol.errors import ProtocolError
from rollups.errors import RequestError
from rollups.rest import rest_call, rest_error
from transport.fastserve import header_lines
from transport.logs import REQUEST

__all__ = ["GATEWAY", "Gateway", "add_routes", "handle_rest", "metrics_app", "redact"]

log = logging.getLogger("relaynet.gateway")
access = logging.getLogger("relaynet.gateway.access")
REQUEST_ID = "Relay-Request-Id"

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Relay-Quorum",
    "Access-Control-Expose-Headers": (
        "Relay-Supplier, Relay-Request, Relay-Receipt, Relay-Backend-Status, Relay-Cache, "
        "Relay-Request-Id"
    ),
    "Access-Control-Max-Age": "86400",
}
JSON = "application/json"
_CORS_LINES = header_lines(CORS_HEADERS.items())  # the wide CORS block, rendered once


#: Serves a client's WebSocket upgrade (``gateway.ws.websocket_handler``). The composition root
#: (``gateway.app``) passes it to :func:`add_routes`, so this module does not import
#: ``gateway.ws`` (which imports it back for the ``Gateway`` type).
WsHandler = Callable[[web.Request, Gateway, ClientContext], Awaitable[web.StreamResponse]]
WEBSOCKETS: web.AppKey[WsHandler] = web.AppKey("websockets")


class Reply:
    """An HTTP answer in the gateway's own terms: the fast front writes it as it is (a
    :class:`transport.fastserve.Response`: no aiohttp objects, no copy on the hot path), an
    aiohttp route sends it as a ``web.Response``.

    Its headers are :data:`CORS_HEADERS` (while ``cors`` holds: ``head``, rendered once)
    followed by ``headers``, which the reply owns: the outermost boundary adds
    ``Relay-Request-Id`` there and narrows CORS (:meth:`narrow_cors`)."""

    __slots__ = ("body", "content_type", "cors", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = JSON,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = {} if headers is None else headers
        self.cors = True
        self.content_type = content_type if body else None

    @property
    def head(self) -> bytes:
        """The CORS block as the fast front sends it, before ``headers``."""
        return _CORS_LINES if self.cors else b""

    def all_headers(self) -> dict[str, str]:
        """Every header, in the order sent."""
        return {**CORS_HEADERS, **self.headers} if self.cors else dict(self.headers)

    def narrow_cors(self, origin: str | None, origins: Sequence[str]) -> None:
        """A key with allowed origins: CORS headers only for a listed origin, naming it (after
        the others, as :func:`_narrow_cors` leaves them)."""
        self.cors = False
        if origin is not None and origin in origins:
            self.headers.update(_cors_for(origin))


def web_response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body or None,
        content_type=reply.content_type,
        headers=reply.all_headers(),
    )


def _refusal_headers(exc: GatewayError) -> dict[str, str]:
    if exc.retry_after is not None:
        return {"Retry-After": str(exc.retry_after)}
    return {}


def _error_response(exc: GatewayError, raw_id: bytes = b"null") -> Reply:
    return Reply(exc.http_status, jsonrpc_error_body(exc, raw_id), _refusal_headers(exc))


class RequestIds:
    """Request ids as :func:`transport.logs.new_request_id` makes them (16 random hex digits:
    no clock, no counter, nothing to learn from one), drawn from the OS 512 at a time; a
    forked worker starts its own batch."""

    __slots__ = ("_at", "_hex")

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._hex, self._at = "", 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex, at = os.urandom(8 * 512).hex(), 0
        self._at = at + 16
        return self._hex[at : at + 16]


request_ids = RequestIds()

_KEY_LIKE = re.compile(re.escape(KEY_PREFIX) + r"[0-9A-Za-z]+")


def redact(text: str, request: web.Request) -> str:
    """``text`` without the request's API key (path or header) nor anything shaped like one."""
    key = presented_key(request)
    if key:
        text = text.replace(key, "<key>")
    return _KEY_LIKE.sub(KEY_PREFIX + "<key>", text)


def presented_key(request: web.Request) -> str | None:
    """The API key from the path or ``Authorization: Bearer`` (never forwarded anywhere)."""
    key = request.match_info.get("key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def client_context(gw: Gateway, request: web.Request) -> tuple[ClientContext, ApiKey]:
    """Authenticate and route: 401 bad key, 404 unknown service, 403 service not on the key."""
    record = _key_record(gw, request)
    service_id = request.match_info["service"]
    known = gw.contexts.get((record.key_hash, service_id))
    svc = known[1].service if known is not None else gw.services.get(service_id)
    if gw.sessions.snapshot.service(service_id) is None and gw.ready():
        raise BadRequest(
            f"service {service_id!r} is not registered", reason=ClientReason.UNKNOWN_SERVICE
        )
    if known is not None and known[0] is record:  # this record and service, seen before
        ctx = known[1]
    else:
        ctx = _new_context(record, svc)
        if len(gw.contexts) >= 4096:
            gw.contexts.clear()
        gw.contexts[(record.key_hash, service_id)] = (record, ctx)
    if record.origins:  # the outermost boundary narrows CORS to them (see _guarded)
        fields = REQUEST.get()
        if fields is not None:
            fields["_origins"] = record.origins
    return ctx, record


def _key_record(gw: Gateway, request: web.Request) -> ApiKey:
    """The presented key's record (401 when unknown or revoked). The fast front hashed a path's
    key once for its path (``FastRpcRequest.key_digest``): the ring judges that digest."""
    digest = getattr(request, "key_digest", None)
    if digest is not None:
        return gw.keys.lookup_hash(digest)
    return gw.keys.lookup(presented_key(request))


def _new_context(record: ApiKey, svc: Service) -> ClientContext:
    """The service's paying app under this key (403 when the key may not use it)."""
    service_id = svc.service_id
    app_hex = KeyRing.app_for(record, service_id)
    try:
        app = _app_address(app_hex)
    except ProtocolError as exc:
        raise BadRequest(
            f"the key's app for {service_id!r} is not an address",
            reason=ClientReason.SERVICE_NOT_ALLOWED,
        ) from exc
    return ClientContext(record.key_hash, record.key_id, svc, app)


@functools.lru_cache(maxsize=4096)
def _app_address(app_hex: str) -> bytes:
    return address_from_hex(app_hex)


def _answer_headers(answers: Sequence[CallAnswer]) -> dict[str, str]:
    """The Relay-* headers of a response (DESIGN §4): one entry per answer object in body
    order, ``-`` for an object answered from the cache or by the gateway; ``Relay-Cache``
    only when an entry is a hit; a lone hit carries only ``Relay-Cache: hit`` (the others
    would not verify against the rewritten id). The CORS block is the :class:`Reply`'s."""
    if len(answers) == 1:
        return _single_headers(answers[0])
    headers: dict[str, str] = {}
    relayed = any(a.source == "relay" for a in answers)
    hits = any(a.source == "cache" for a in answers)
    if relayed:
        headers["Relay-Supplier"] = ",".join(_entry(a, a.supplier) for a in answers)
        headers["Relay-Request"] = ",".join(_entry(a, a.relay_request) for a in answers)
        headers["Relay-Receipt"] = ",".join(_entry(a, a.relay_receipt) for a in answers)
        headers["Relay-Backend-Status"] = ",".join(a.backend_statuses for a in answers)
    if hits:
        headers["Relay-Cache"] = ",".join("hit" if a.source == "cache" else "-" for a in answers)
    return headers


def _single_headers(answer: CallAnswer) -> dict[str, str]:
    """:func:`_answer_headers` of one answer object (the common case, without the joins)."""
    if answer.source == "relay":
        return {
            "Relay-Supplier": answer.supplier or "-",
            "Relay-Request": answer.relay_request or "-",
            "Relay-Receipt": answer.relay_receipt or "-",
            "Relay-Backend-Status": answer.backend_statuses,
        }
    if answer.source == "cache":
        return {"Relay-Cache": "hit"}
    return {}


def _entry(answer: CallAnswer, value: str | None) -> str:
    return (value or "-") if answer.source == "relay" else "-"


def _service_label(gw: Gateway | None, request: web.Request) -> str:
    """The request's service as a metric and log label: a configured id, else ``unknown``."""
    service = request.match_info.get("service", "")
    return service if gw is not None and service in gw.services else "unknown"


class RequestScope:
    """One client HTTP request's bookkeeping, the same for JSON-RPC and REST: counted in
    flight, timed, and its :class:`GatewayError` counted, logged (5xx) and answered in the
    route's shape (``refusal``)."""

    __slots__ = ("cells", "gw", "raw_id", "service", "started")

    def __init__(self, gw: Gateway, request: web.Request) -> None:
        self.gw = gw
        self.started = time.perf_counter()
        fields = REQUEST.get()  # the outermost boundary's log fields name it already
        self.service = fields["service"] if fields is not None else _service_label(gw, request)
        self.cells = gw.metrics.service_cells(self.service)
        self.raw_id = b"null"  # the JSON-RPC id a refusal answers (a single call's, once read)

    def count(self, answer: CallAnswer) -> None:
        self.cells.requests(answer.method_class, _OUTCOMES.get(answer.source, "gateway")).inc()

    def refused(self, exc: GatewayError) -> None:
        if exc.http_status >= 500:
            log.warning("%s: %s: %s", self.service, exc.reason.value, exc.message)
        metrics = self.gw.metrics
        metrics.child(metrics.refused, exc.reason.value).inc()
        self.cells.requests("none", exc.reason.value.lower()).inc()


_OUTCOMES = {"relay": "relayed", "cache": "cached"}
#: what a route answers: a :class:`Reply`, or an aiohttp response it sent itself (WebSocket)
Answer = Reply | web.StreamResponse
Body = Callable[[Gateway, web.Request, RequestScope], Awaitable[Answer]]
Refusal = Callable[[GatewayError, RequestScope], Reply]
Handler = Callable[[web.Request], Awaitable[Answer]]


async def in_scope(request: web.Request, body: Body, refusal: Refusal) -> Answer:
    """Run a route's ``body`` in a :class:`RequestScope` (the one prologue and epilogue)."""
    gw = request.app[GATEWAY]
    scope = RequestScope(gw, request)
    gw.inflight += 1  # the inflight gauge reads this at scrape time (see create_app)
    try:
        return await body(gw, request, scope)
    except GatewayError as exc:
        scope.refused(exc)
        return refusal(exc, scope)
    finally:
        gw.inflight -= 1
        scope.cells.seconds.observe(time.perf_counter() - scope.started)


async def _gated_body(
    gw: Gateway, request: web.Request, ctx: ClientContext, record: ApiKey
) -> bytes:
    """One token taken before parsing (the call's full count is admitted once it is known),
    then the body, within the size limit."""
    await gw.limiter.gate(record, ctx.service.service_id)
    return await _read_body(request, gw.config.limits.max_body_bytes)


def handle_rpc(request: web.Request) -> Awaitable[Answer]:
    """``POST /v1/{service}[/{key}]``: a JSON-RPC call or batch (or a WebSocket upgrade)."""
    return in_scope(request, _rpc, _rpc_refusal)


def _rpc_refusal(exc: GatewayError, scope: RequestScope) -> Reply:
    return _error_response(exc, scope.raw_id)


async def _rpc(gw: Gateway, request: web.Request, scope: RequestScope) -> Answer:
    ctx, record = client_context(gw, request)
    ctx = _with_quorum(ctx, request, record)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await request.app[WEBSOCKETS](request, gw, ctx)
    if request.method != "POST":
        raise BadRequest("use POST (or a WebSocket upgrade)")
    body = await _gated_body(gw, request, ctx, record)
    # a quorum read never reads the cache (DESIGN §4)
    front = _front_hit(gw, ctx, body, scope) if ctx.quorum == 1 else None
    if front is not None:  # a repeat of a final, cached answer: no parsing needed
        await gw.limiter.admit(record, ctx.service.service_id, 1, prepaid=1)
        gw.metrics.child(gw.metrics.key_requests, ctx.key_id, ctx.service.service_id).inc()
        return front
    req = parse_body(body, max_batch=gw.config.limits.max_batch)
    if not req.is_batch:
        scope.raw_id = req.calls[0].raw_id
    _note_method("batch" if req.is_batch else req.calls[0].method)
    for call in req.calls:
        _count_method(scope, ctx.service, call.method)
    # N legs count N against the key's limits (DESIGN §4)
    await gw.limiter.admit(record, ctx.service.service_id, len(req.calls) * ctx.quorum, prepaid=1)
    gw.metrics.child(gw.metrics.key_requests, ctx.key_id, ctx.service.service_id).inc(
        len(req.calls)
    )
    if req.is_batch:
        return await _batch(gw, ctx, req.calls, scope)
    answer = await gw.router.execute(ctx, req.calls[0])
    scope.count(answer)
    body = b"" if answer.status == 204 else answer.body
    return Reply(answer.status, body, _single_headers(answer))


async def _batch(
    gw: Gateway, ctx: ClientContext, calls: Sequence[Call], scope: RequestScope
) -> Reply:
    batch = await run_batch(gw.router, ctx, calls, concurrency=gw.config.relay.batch_concurrency)
    for a in batch.answers:
        scope.count(a)
    return Reply(batch.status, batch.body, _answer_headers(batch.shown))


def _with_quorum(
    ctx: ClientContext, request: web.Request, record: ApiKey, *, url: bool = True
) -> ClientContext:
    """The call's quorum: ``Relay-Quorum``, else ``?quorum=`` (``url``: not on a REST-like
    call, whose query is the backend's), else the key's default."""
    try:
        in_url = request.query.get("quorum") if url else None
        n = parse_quorum(request.headers.get("Relay-Quorum", in_url))
    except QuorumRefused as exc:
        raise BadRequest(exc.message, reason=ClientReason.INVALID_PARAMS) from exc
    n = n if n is not None else record.quorum
    return ctx if n == ctx.quorum else dataclasses.replace(ctx, quorum=n)


# grpc-gateway codes of the gateway's own refusals of REST calls, by HTTP status
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 429: 8, 504: 4}


def _rest_refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    grpc = _GRPC_CODES.get(status, 14 if status >= 500 else 3)  # else UNAVAILABLE / INVALID
    body = orjson.dumps({"code": grpc, "message": message, "details": []})
    return Reply(status, body, headers)


def _rest_target(request: web.Request) -> tuple[str, str]:
    """Path below ``/v1/{service}/{key}`` and query, both as sent (still URL-encoded)."""
    raw_path, _, query = request.raw_path.partition("?")
    parts = raw_path.split("/", 4)  # "", "v1", service, key, the rest
    return "/" + (parts[4] if len(parts) > 4 else ""), query


def handle_rest(request: web.Request) -> Awaitable[Answer]:
    """A REST-like call (CometBFT URI GET, Cosmos REST) at ``/v1/{service}/{key}/{path}``:
    relayed as the canonical REST payload (DESIGN §3.3) and answered with the backend's
    status and body as they are; refusals are grpc-gateway-shaped error bodies."""
    return in_scope(request, _rest, _rest_scope_refusal)


def _rest_scope_refusal(exc: GatewayError, scope: RequestScope) -> Reply:
    return _rest_refusal(exc.http_status, exc.message, _refusal_headers(exc))


async def _rest(gw: Gateway, request: web.Request, scope: RequestScope) -> Answer:
    ctx, record = client_context(gw, request)
    ctx = _with_quorum(ctx, request, record, url=False)
    body = await _gated_body(gw, request, ctx, record)
    path, query = _rest_target(request)
    svc = ctx.service
    try:
        call = rest_call(svc.handler, svc.spec, request.method, path, query, body)
        await gw.limiter.admit(record, svc.service_id, ctx.quorum, prepaid=1)
        gw.metrics.child(gw.metrics.key_requests, ctx.key_id, svc.service_id).inc()
        answer = await gw.router.execute_rest(ctx, call)
    except RequestError as exc:
        scope.cells.requests("denied", "gateway").inc()
        status, err = rest_error(exc)
        return Reply(status, err)
    except ResponseTooLarge:
        return _rest_refusal(429, "response too large")  # grpc RESOURCE_EXHAUSTED
    scope.count(answer)
    return Reply(answer.status, answer.body, _single_headers(answer))


def _front_hit(gw: Gateway, ctx: ClientContext, body: bytes, scope: RequestScope) -> Reply | None:
    if body[:1] != b"{" or not gw.router.front:  # nothing there yet: no need to cut the id
        return None
    parts = split_id(body)
    if parts is None:
        return None
    sid = ctx.service.service_id
    hit = gw.router.front.get(sid, parts[0])
    if hit is None:
        return None
    gw.metrics.child(gw.metrics.cache, sid, "hit").inc()
    scope.cells.requests("read", "cached").inc()
    return Reply(hit.status, hit.prefix + parts[1] + hit.suffix, {"Relay-Cache": "hit"})


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"body over {limit} bytes", reason=ClientReason.PAYLOAD_TOO_LARGE)
    if request.content_length is not None:
        return await request.read()  # within client_max_size (limit + 1)
    body = b""
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"body over {limit} bytes", reason=ClientReason.PAYLOAD_TOO_LARGE)
    return body


def _narrow_cors(headers: dict[str, str], origin: str | None, origins: Sequence[str]) -> None:
    """A key with allowed origins: CORS headers only for a listed origin, naming it."""
    for name in CORS_HEADERS:
        headers.pop(name, None)
    if origin is not None and origin in origins:
        headers.update(_cors_for(origin))


def _cors_for(origin: str) -> dict[str, str]:
    return {**CORS_HEADERS, "Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def handle_options(request: web.Request) -> web.Response:
    """A preflight. A key in the path with allowed origins: refused (403, no CORS headers)
    for an origin not listed; otherwise ``*`` as for every other key."""
    gw = request.app.get(GATEWAY)
    key = request.match_info.get("key")
    if gw is not None and key:
        try:
            origins = gw.keys.lookup(key).origins
        except GatewayError:
            origins = ()
        if origins:
            origin = request.headers.get("Origin")
            if origin is None or origin not in origins:
                err = BadRequest(
                    "this origin may not use the key", reason=ClientReason.ORIGIN_NOT_ALLOWED
                )
                return web.Response(
                    status=err.http_status, body=jsonrpc_error_body(err), content_type=JSON
                )
            return web.Response(status=204, headers=_cors_for(origin))
    return web.Response(status=204, headers=CORS_HEADERS)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when ready. A Redis outage keeps it 200 with ``"redis": "degraded"`` (the replica
    serves its key snapshot): replicas must not all leave the load balancer at once."""
    gw = request.app[GATEWAY]
    ready = gw.ready() and not gw.draining
    body: dict[str, object] = {"ready": ready, "draining": gw.draining, "keys": len(gw.keys)}
    outage = gw.limiter.outage
    if outage is not None:
        body["redis"] = "degraded" if outage.degraded else "ok"
        body["replicas"] = outage.replicas
    return web.json_response(body, status=200 if ready else 503)


def outermost(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The server's outermost boundary for an aiohttp route: nothing a client sends may crash
    the gateway."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        answer = await _guarded(handler, request)
        return web_response(answer) if isinstance(answer, Reply) else answer

    return guarded


def serve_fast(request: web.Request) -> Awaitable[Answer]:
    """The outermost boundary of ``POST /v1/{service}[/{key}]`` on the fast front (which
    takes no upgrades: every answer is a :class:`Reply`)."""
    return _guarded(handle_rpc, request)


def _count_method(scope: RequestScope, svc: Service, method: str) -> None:
    """Per-method counter; a method outside the handler's table is ``unknown`` (bounded)."""
    cell = scope.cells.method(method)
    if cell is None:
        cell = scope.cells.learn(method, svc.handler.method_policy(svc.spec, method).known)
    cell.inc()


def _note_method(method: str) -> None:
    fields = REQUEST.get()
    if fields is not None:
        fields["method"] = method[:64]  # the client's text: bounded


async def _guarded(handler: Handler, request: web.Request) -> Answer:
    """Runs ``handler`` with a request id: logged with every line of the request, answered in
    ``Relay-Request-Id``, and (``access_log``) one access line: never the path nor the key."""
    gw = request.app.get(GATEWAY)
    rid = request_ids()
    fields: dict[str, object] = {"request_id": rid, "service": _service_label(gw, request)}
    token = REQUEST.set(fields)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:  # the outermost boundary: log, answer, keep serving
            response = _internal_error(exc, request)
        origins = fields.pop("_origins", None)
        if isinstance(response, Reply):
            if origins:
                response.narrow_cors(request.headers.get("Origin"), origins)  # type: ignore[arg-type]
            response.headers[REQUEST_ID] = rid
        elif not response.prepared:  # a WebSocket upgrade has sent its headers already
            if origins:
                _narrow_cors(response.headers, request.headers.get("Origin"), origins)  # type: ignore[arg-type]
            response.headers[REQUEST_ID] = rid
        if gw is not None and gw.config.gateway.access_log:
            fields["status"] = response.status
            fields["supplier"] = response.headers.get("Relay-Supplier", "-")
            fields["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            fields.setdefault("method", "-")
            access.info(
                "%s %s %s %d %.1fms supplier=%s",
                fields["request_id"],
                fields["service"],
                fields["method"],
                response.status,
                fields["latency_ms"],
                fields["supplier"],
            )
        return response
    finally:
        REQUEST.reset(token)


def _internal_error(exc: Exception, request: web.Request) -> Reply:
    # the path may hold the API key, and so may an exception's text: never logged
    trace = "".join(traceback.format_exception(exc))
    log.error("unhandled error on %s\n%s", redact(request.path, request), redact(trace, request))
    err = GatewayError(f"internal error: {type(exc).__name__}", reason=ClientReason.RELAY_FAILED)
    return _error_response(err)


def add_routes(app: web.Application, websocket: WsHandler) -> None:
    app[WEBSOCKETS] = websocket
    rpc = outermost(handle_rpc)
    # one resource per path (each request is matched against 1-2 patterns, not up to 6)
    for path in ("/v1/{service}/{key}", "/v1/{service}"):
        resource = app.router.add_resource(path)
        resource.add_route("POST", rpc)
        resource.add_route("GET", rpc)
        resource.add_route("OPTIONS", handle_options)
    rest = app.router.add_resource("/v1/{service}/{key}/{path:.+}")
    rest.add_route("OPTIONS", handle_options)
    # every other method reaches the handler: GET and POST are calls, the rest 405 / code 12
    rest.add_route("*", outermost(handle_rest))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def metrics_app(metrics: GatewayMetrics) -> web.Application:
    async def render(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", render)
    return app
