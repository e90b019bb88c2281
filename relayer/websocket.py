"""The WebSocket relay (DESIGN §3.3): one signed request, a stream of receipted frames.

The ``Relay-Request`` header rides on the upgrade request and is checked before upgrading (a
refusal is an ordinary relay-layer HTTP error). The gateway's first frame is the request
payload; it is checked (compute units, replay, signature, payload hash, budget) and sent to the
service's WebSocket backend. Every backend message becomes one frame
``uint64(index) ‖ response_hash ‖ receipt_sig ‖ body`` (status 101 in the hash), recorded in
the session log before it is sent, index 0 first. The stream closes with 4000 once it reached
``max_index``, 4001 when the session's grace ends, 4002 on a relay-layer error (reason = code).
"""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import WSMsgType, web

from protocol.errors import ErrorCode, RelaynetError
from protocol.relay import (
    WS_CLOSE_GRACE_ENDED,
    WS_CLOSE_MAX_INDEX,
    WS_CLOSE_RELAY_ERROR,
    WS_STATUS,
    encode_ws_frame,
    relay_key,
)
from relayer.errors import RelayRefused
from relayer.metrics import RelayerMetrics
from relayer.recorder import Recorder, ServedRelay
from relayer.server import RelayService
from relayer.verify import VerifiedHeader, VerifiedRelay, Verifier

__all__ = ["WebSocketRelay"]

_FIRST_FRAME_TIMEOUT = 10.0
_GRACE_POLL = 0.25


class WebSocketRelay:
    """``GET /v1/relay`` with ``Upgrade: websocket``."""

    def __init__(
        self,
        service: RelayService,
        verifier: Verifier,
        recorder: Recorder,
        metrics: RelayerMetrics,
    ) -> None:
        self._service = service
        self._verifier = verifier
        self._recorder = recorder
        self._metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            self._recorder.check_writable()
            vh = self._verifier.check_header(request.headers.get("Relay-Request"))
            if vh.service.ws_backend is None:
                raise RelayRefused(
                    ErrorCode.METHOD_DENIED, f"{vh.service.service_id} has no WebSocket backend"
                )
        except RelaynetError as exc:
            return self._service.refuse(exc)
        ws = web.WebSocketResponse(max_msg_size=vh.service.max_body_bytes)
        await ws.prepare(request)
        self._metrics.ws_streams.inc()
        try:
            await self._stream(ws, vh)
        finally:
            self._metrics.ws_streams.dec()
        return ws

    async def _stream(self, ws: web.WebSocketResponse, vh: VerifiedHeader) -> None:
        try:
            msg = await ws.receive(timeout=_FIRST_FRAME_TIMEOUT)
        except TimeoutError:
            await _close(ws, WS_CLOSE_RELAY_ERROR, ErrorCode.MALFORMED_HEADER.value)
            return
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        text = msg.type is WSMsgType.TEXT
        payload = msg.data.encode() if text else bytes(msg.data)
        try:
            relay = self._verifier.check_payload(vh, payload)
        except RelaynetError as exc:
            self._service.refuse(exc)
            await _close(ws, WS_CLOSE_RELAY_ERROR, exc.code.value)
            return
        svc = relay.service
        assert svc.ws_backend is not None
        try:
            backend = await self._client().ws_connect(
                svc.ws_backend,
                headers=dict(svc.headers),
                timeout=aiohttp.ClientWSTimeout(ws_close=svc.connect_timeout),
            )
        except (aiohttp.ClientError, OSError, TimeoutError):
            self._verifier.abandon(relay)
            await _close(ws, WS_CLOSE_RELAY_ERROR, ErrorCode.BACKEND_UNAVAILABLE.value)
            return
        try:
            await (backend.send_str(payload.decode()) if text else backend.send_bytes(payload))
            await self._pump(ws, backend, relay)
        finally:
            await backend.close()
            if not ws.closed:
                await ws.close()

    async def _pump(
        self,
        ws: web.WebSocketResponse,
        backend: aiohttp.ClientWebSocketResponse,
        relay: VerifiedRelay,
    ) -> None:
        ctx = relay.ctx
        index = 0
        answered = False
        while True:
            if self._verifier.snapshot.head() >= ctx.windows.grace_end:
                await _close(ws, WS_CLOSE_GRACE_ENDED, "GRACE_ENDED")
                return
            try:
                msg = await backend.receive(timeout=_GRACE_POLL)
            except TimeoutError:
                if ws.closed:
                    return
                continue
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if not answered:
                    self._verifier.abandon(relay)
                await _close(ws, WS_CLOSE_RELAY_ERROR, ErrorCode.BACKEND_UNAVAILABLE.value)
                return
            body = msg.data.encode() if msg.type is WSMsgType.TEXT else bytes(msg.data)
            try:
                served = self._record(relay, index, body)
            except RelayRefused as exc:
                if index == 0:
                    self._verifier.abandon(relay)
                grace = exc.code is ErrorCode.SESSION_EXPIRED
                await _close(
                    ws, WS_CLOSE_GRACE_ENDED if grace else WS_CLOSE_RELAY_ERROR, exc.code.value
                )
                return
            answered = True
            await ws.send_bytes(
                encode_ws_frame(index, served.response_hash, served.receipt_sig, body)
            )
            if index >= relay.header.max_index:
                await _close(ws, WS_CLOSE_MAX_INDEX, "MAX_INDEX")
                return
            index += 1

    def _record(self, relay: VerifiedRelay, index: int, body: bytes) -> ServedRelay:
        """Frame ``index`` of the stream: index 0 answers the request, later ones are pushes,
        each charged to the app's budget like a relay of its own."""
        if index == 0:
            return self._recorder.record(relay, WS_STATUS, body)
        relay.ctx.budget.charge(relay.cost)
        return self._recorder.record_leaf(
            relay.ctx,
            relay.header_bytes,
            relay.request_sig,
            relay.digest,
            relay_key(relay.digest, index),
            index,
            WS_STATUS,
            body,
        )


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=code, message=reason.encode())
