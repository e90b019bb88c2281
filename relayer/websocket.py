"""The WebSocket relay (DESIGN §3.3): one signed request, a stream of receipted frames.

The ``Relay-Request`` header rides on the upgrade request and is checked, through the
signature, before upgrading (a refusal is an ordinary relay-layer HTTP error); ``max_index``
must be at least 1, and at most ``max_streams_per_app`` streams of one app run at once
(``RATE_LIMITED`` on the upgrade). The gateway's first frame is the request payload; it is
checked (payload rule, compute units, payload hash, budget — a failure closes 4002 with the
code) and sent to the service's WebSocket backend. Every backend message becomes one frame
``uint64(index) ‖ response_hash ‖ receipt_sig ‖ body`` (status 101 in the hash), recorded in
the session log before it is sent, index 0 first. The stream closes with 4000 once it reached
``max_index``, 4001 when the session's grace ends, 4002 on a relay-layer error (reason = code).
"""

from __future__ import annotations

import asyncio
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
)
from relayer.errors import RelayRefused
from relayer.interfaces import (
    RelayRecorder,
    RelayVerifier,
    ServedRelay,
    SignedHeader,
    VerifiedHeader,
    VerifiedRelay,
)
from relayer.metrics import RelayerMetrics
from relayer.server import RelayService

__all__ = ["DEFAULT_MAX_STREAMS_PER_APP", "WebSocketRelay"]

_FIRST_FRAME_TIMEOUT = 10.0
_GRACE_POLL = 0.25
#: Concurrent streams one app may hold on this relayer (DESIGN §4).
DEFAULT_MAX_STREAMS_PER_APP = 2048


class WebSocketRelay:
    """``GET /v1/relay`` with ``Upgrade: websocket``."""

    def __init__(
        self,
        service: RelayService,
        verifier: RelayVerifier,
        recorder: RelayRecorder,
        metrics: RelayerMetrics,
        *,
        max_streams_per_app: int = DEFAULT_MAX_STREAMS_PER_APP,
    ) -> None:
        self._service = service
        self._max_streams = max_streams_per_app
        self._streams: dict[bytes, int] = {}
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
            vh = self._verifier.check_header(request.headers.get("Relay-Request"), stream=True)
            if vh.service.ws_backend is None:
                raise RelayRefused(
                    ErrorCode.METHOD_DENIED, f"{vh.service.service_id} has no WebSocket backend"
                )
            signed = self._verifier.check_signature(vh)
            app = vh.ctx.key.app
            if self._streams.get(app, 0) >= self._max_streams:
                raise RelayRefused(
                    ErrorCode.RATE_LIMITED,
                    f"the app already holds {self._max_streams} streams on this relayer",
                )
        except RelaynetError as exc:
            return self._service.refuse(exc)
        self._streams[app] = self._streams.get(app, 0) + 1
        try:
            ws = web.WebSocketResponse(max_msg_size=vh.service.max_body_bytes)
            await ws.prepare(request)
            self._metrics.ws_streams.inc()
            try:
                await self._stream(ws, vh, signed)
            finally:
                self._metrics.ws_streams.dec()
        finally:
            left = self._streams[app] - 1
            if left:
                self._streams[app] = left
            else:
                del self._streams[app]
        return ws

    def streams_of(self, app: bytes) -> int:
        """Streams the app holds open on this relayer now."""
        return self._streams.get(app, 0)

    async def _stream(
        self, ws: web.WebSocketResponse, vh: VerifiedHeader, signed: SignedHeader
    ) -> None:
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
            relay = self._verifier.check_first_frame(vh, signed, payload)
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
            self._verifier.release(relay)
            await _close(ws, WS_CLOSE_RELAY_ERROR, ErrorCode.BACKEND_UNAVAILABLE.value)
            return
        # read the gateway's side too: pings are answered and its close is seen (aiohttp
        # handles both inside receive(); a gateway counts a missing pong as a fault)
        reader = asyncio.create_task(_drain(ws))
        try:
            await (backend.send_str(payload.decode()) if text else backend.send_bytes(payload))
            await self._pump(ws, backend, relay)
        finally:
            reader.cancel()
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
            if self._verifier.grace_ended(ctx):
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
                    self._verifier.release(relay)
                await _close(ws, WS_CLOSE_RELAY_ERROR, ErrorCode.BACKEND_UNAVAILABLE.value)
                return
            body = msg.data.encode() if msg.type is WSMsgType.TEXT else bytes(msg.data)
            try:
                served = self._record(relay, index, body)
            except (RelaynetError, OSError) as exc:  # OSError: the log write failed
                if index == 0:
                    self._verifier.release(relay)
                code = exc.code if isinstance(exc, RelaynetError) else ErrorCode.INTERNAL
                grace = code is ErrorCode.SESSION_EXPIRED
                await _close(
                    ws, WS_CLOSE_GRACE_ENDED if grace else WS_CLOSE_RELAY_ERROR, code.value
                )
                return
            answered = True
            try:
                await ws.send_bytes(
                    encode_ws_frame(index, served.response_hash, served.receipt_sig, body)
                )
            except (ConnectionError, RuntimeError):
                return  # the gateway closed the stream meanwhile
            if index >= relay.max_index:
                await _close(ws, WS_CLOSE_MAX_INDEX, "MAX_INDEX")
                return
            index += 1

    def _record(self, relay: VerifiedRelay, index: int, body: bytes) -> ServedRelay:
        """Frame ``index`` of the stream: index 0 answers the request, later ones are pushes,
        each charged to the app's budget like a relay of its own."""
        if index == 0:
            return self._recorder.record(relay, WS_STATUS, body)
        return self._recorder.record_push(relay, index, body)


async def _drain(ws: web.WebSocketResponse) -> None:
    """Discard what the gateway sends after its first frame (nothing is expected)."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        async for _msg in ws:
            pass


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.close(code=code, message=reason.encode())
