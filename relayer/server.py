"""The relay HTTP surface: ``POST /v1/relay`` (the hot path), the WebSocket relay on the same
path, ``GET /healthz`` and ``GET /readyz``; and the separate metrics app.

The hot path is the pipeline of ``interfaces.py`` in five visible steps — size, verify,
forward, record, answer — typed against its Protocols only. Relay-layer failures become
``{code, message, retryable}`` with the status of ``protocol.errors.ERROR_TABLE``; only an
unexpected bug reaches the outermost ``except`` and answers ``INTERNAL``.

Every relay has a request id — the gateway's ``Relay-Request-Id`` when it sends a well-formed
one, else a new one — carried by every log line written while it is handled
(:mod:`transport.logs`) and returned in ``Relay-Request-Id``. Refusals and answers are logged at
debug level.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from protocol.errors import ERROR_TABLE, ErrorCode, RelaynetError, error_body
from relayer.errors import BackendError, RelayRefused
from relayer.interfaces import (
    BackendTransport,
    RelayRecorder,
    RelayVerifier,
    VerifiedRelay,
)
from relayer.metrics import RelayerMetrics
from relayer.tally import Tally
from transport.fastserve import FastRequest, FastResponse
from transport.logs import REQUEST, new_request_id

__all__ = ["RELAY_PATH", "RelayService", "error_response", "metrics_app", "relay_app"]

log = logging.getLogger("relaynet.relayer")

RELAY_PATH = "/v1/relay"
REQUEST_ID = "Relay-Request-Id"
_JSON = "application/json"
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def request_id(sent: str | None) -> str:
    """The gateway's request id when well-formed (1-64 of ``[A-Za-z0-9_.:-]``), else a new one:
    a client's header never puts arbitrary text in the logs."""
    if sent is not None and _REQUEST_ID.fullmatch(sent):
        return sent
    return new_request_id()


def _error_answer(code: ErrorCode, message: str) -> FastResponse:
    return FastResponse(ERROR_TABLE[code].http_status, orjson.dumps(error_body(code, message)))


def _with_id(answer: FastResponse, rid: str) -> FastResponse:
    return FastResponse(
        answer.status, answer.body, answer.content_type, (*answer.headers, (REQUEST_ID, rid))
    )


def error_response(code: ErrorCode, message: str) -> web.Response:
    """A relay-layer error: no receipt, the stable JSON body, the table's HTTP status."""
    return web.Response(
        body=orjson.dumps(error_body(code, message)),
        status=ERROR_TABLE[code].http_status,
        content_type=_JSON,
    )


class RelayService:
    """The handlers; holds the pipeline's stages, built by the composition root."""

    def __init__(
        self,
        verifier: RelayVerifier,
        transport: BackendTransport,
        recorder: RelayRecorder,
        metrics: RelayerMetrics,
        ready: Callable[[], bool],
    ) -> None:
        self.verifier = verifier
        self.transport = transport
        self.recorder = recorder
        self.metrics = metrics
        self.ready = ready
        self.not_ready_reason: Callable[[], str] = lambda: "follower catching up"
        tally = self.tally = Tally()  # no lock per relay; folded in when scraped
        sids = list(verifier.services)
        self._answered = {s: tally.count(metrics.relays.labels(s, "answered")) for s in sids}
        self._backend_error = {
            s: tally.count(metrics.relays.labels(s, "backend_error")) for s in sids
        }
        self._backend_seconds = {s: tally.timings(metrics.backend_seconds.labels(s)) for s in sids}
        self._verify_seconds = tally.timings(metrics.verify_seconds)
        self._refused_by_code = {
            code: tally.count(metrics.refused.labels(code.value)) for code in ErrorCode
        }
        self._refused = tally.count(metrics.relays.labels("-", "refused"))

    def refuse(self, exc: RelaynetError) -> web.Response:
        """A refusal on aiohttp (counted by its code)."""
        answer = self._refuse_answer(exc)
        return web.Response(body=answer.body, status=answer.status, content_type=_JSON)

    def _refuse_answer(self, exc: RelaynetError) -> FastResponse:
        self._refused_by_code[exc.code].inc()
        self._refused.inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("refused %s: %s", exc.code.value, exc.message)
        return _error_answer(exc.code, exc.message)

    async def relay(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/relay`` on aiohttp (the fast path serves it with :meth:`relay_fast`)."""
        try:
            self.verifier.check_size(request.content_length)
            payload = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self.refuse(
                RelayRefused(ErrorCode.PAYLOAD_TOO_LARGE, "body exceeds the relayer's limit")
            )
        except RelaynetError as exc:
            return self.refuse(exc)
        rid = request_id(request.headers.get(REQUEST_ID))
        REQUEST.set({"request_id": rid})
        answer = await self.answer(request.headers.get("Relay-Request"), payload, rid)
        return web.Response(
            body=answer.body,
            status=answer.status,
            headers={"Content-Type": answer.content_type or _JSON, **dict(answer.headers)},
        )

    def relay_fast(self, request: FastRequest) -> Awaitable[FastResponse]:
        """``POST /v1/relay`` on the fast front (``transport.fastserve``): the request id is
        set here, then the front awaits :meth:`answer` itself (one coroutine less a relay)."""
        value = request.headers.get(b"relay-request")
        sent = request.headers.get(b"relay-request-id")
        rid = request_id(None if sent is None else sent.decode("latin-1"))
        REQUEST.set({"request_id": rid})
        return self.answer(None if value is None else value.decode("latin-1"), request.body, rid)

    async def answer(self, relay_request: str | None, payload: bytes, rid: str) -> FastResponse:
        """verify → forward → record → answer, for a body already read within the limit;
        every answer carries the request id ``rid``. Whatever fails after verify releases the
        relay (refund, key freed): nothing recorded is charged."""
        started = time.perf_counter()
        try:
            self.recorder.check_writable()  # a failing relay log refuses before the backend
            relay = self.verifier.verify(relay_request, payload)
        except RelaynetError as exc:
            return _with_id(self._refuse_answer(exc), rid)
        sid = relay.service.service_id
        try:
            self.recorder.check_open(relay.ctx)  # a session retired for claims: no backend call
            forwarded = time.perf_counter()
            self._verify_seconds.observe(forwarded - started)
            try:  # forward: the relay's own request, a complete answer or BackendError
                answer = await self.transport.send(relay.backend_request())
            except BackendError:
                self._backend_error[sid].inc()
                raise
            self._backend_seconds[sid].observe(time.perf_counter() - forwarded)
            served = self.recorder.record(relay, answer.status, answer.body)
        except BaseException as exc:
            self.verifier.release(relay)
            return _with_id(self._failed(relay, exc), rid)
        self._answered[sid].inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "answered %s session %d app 0x%s: backend status %d",
                relay.service.service_id,
                relay.ctx.key.n,
                relay.ctx.key.app.hex(),
                answer.status,
            )
        return FastResponse(
            200,
            answer.body,
            answer.content_type,
            (
                ("Relay-Backend-Status", str(answer.status)),
                ("Relay-Receipt", served.receipt_header),
                (REQUEST_ID, rid),
            ),
        )

    def _failed(self, relay: VerifiedRelay, exc: BaseException) -> FastResponse:
        """The answer to a released relay: the backend's failure, a refusal (the session
        closed meanwhile), or INTERNAL when the log write failed; anything else re-raised."""
        if isinstance(exc, BackendError):
            return _error_answer(exc.code, exc.message)
        if isinstance(exc, RelaynetError):
            return self._refuse_answer(exc)
        if isinstance(exc, OSError):  # the log write failed: nothing recorded, nothing charged
            log.exception("%s: writing the relay log failed", relay.service.service_id)
            return _error_answer(ErrorCode.INTERNAL, "the relay could not be recorded")
        raise exc

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.json_response({"ready": True})
        return web.json_response({"ready": False, "reason": self.not_ready_reason()}, status=503)


@web.middleware
async def _outermost(
    request: web.Request, handler: Callable[[web.Request], object]
) -> web.StreamResponse:
    """The server's boundary: an unexpected failure answers INTERNAL, never a traceback."""
    try:
        response = await handler(request)  # type: ignore[misc]
    except web.HTTPException:
        raise
    except Exception:  # the outermost boundary of the server
        log.exception("unexpected failure serving %s", request.path)
        return error_response(ErrorCode.INTERNAL, "internal error")
    assert isinstance(response, web.StreamResponse)
    return response


def relay_app(
    service: RelayService, ws_handler: Callable[..., object] | None = None
) -> web.Application:
    """The public app: relays, health and readiness."""
    app = web.Application(client_max_size=service.verifier.max_body_bytes, middlewares=[_outermost])
    app.router.add_post(RELAY_PATH, service.relay)
    if ws_handler is not None:
        app.router.add_get(RELAY_PATH, ws_handler)  # type: ignore[arg-type]
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/readyz", service.readyz)
    return app


def metrics_app(
    metrics: RelayerMetrics, before_render: Callable[[], None] | None = None
) -> web.Application:
    """Metrics on their own port; ``before_render`` folds in what was counted without a lock
    (:meth:`relayer.tally.Tally.flush`)."""

    async def render(request: web.Request) -> web.Response:
        if before_render is not None:
            before_render()
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", render)
    return app
