"""A fast path in front of an aiohttp server for a few hot ``POST`` routes.

Every connection starts on :class:`FrontProtocol`. It frames each request itself — the head up
to the blank line (at most ``max_head`` bytes, else ``431``), parsed by httptools, then exactly
``Content-Length`` body bytes — and answers it with the route's handler when the request is a
plain ``POST`` to a fast route. Anything else (another method or path, a WebSocket upgrade, a
chunked or ``Expect`` body, HTTP/1.0) hands the connection to aiohttp *before aiohttp has seen
a byte*: the untouched bytes of that request and everything after it are passed to a fresh
aiohttp protocol, which serves the connection from then on. So the same URL still upgrades to
a WebSocket, and health, metrics and every other route stay aiohttp's.

:class:`FastSite` is a ``web.TCPSite`` that listens with this front; on shutdown it stops
accepting, waits for the fast requests in flight (the runner's shutdown timeout) and closes
idle fast connections, before aiohttp drains its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import httptools
from aiohttp import web

__all__ = ["FastFront", "FastRequest", "FastResponse", "FastSite", "FrontProtocol"]

log = logging.getLogger("relaynet.transport")

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    409: b"Conflict",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@dataclass(slots=True)
class FastRequest:
    path: str  # the path without the query
    headers: dict[bytes, bytes]  # lower-case names; a repeated name is refused (400)
    body: bytes
    peer: Any
    query: str = ""  # the raw query string (no ``?``), as sent


@dataclass(frozen=True, slots=True)
class FastResponse:
    status: int
    body: bytes
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[FastRequest], Awaitable[FastResponse]]
Route = Callable[[str], Handler | None]  # path → handler, or None for aiohttp


def _error(status: int, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        % (
            status,
            _REASONS.get(status, b"Error"),
            len(message),
        )
        + b"Connection: close\r\n\r\n"
        + message
    )


def render(response: FastResponse, *, keep_alive: bool) -> bytes:
    head = [b"HTTP/1.1 %d %s\r\n" % (response.status, _REASONS.get(response.status, b"Status"))]
    if response.content_type is not None:
        head.append(b"Content-Type: %s\r\n" % response.content_type.encode("latin-1"))
    head.append(b"Content-Length: %d\r\n" % len(response.body))
    for name, value in response.headers:
        head.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    if not keep_alive:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(response.body)
    return b"".join(head)


class FastFront:
    """The shared state of every front connection: routes, limits, in-flight requests."""

    def __init__(
        self,
        route: Route,
        fallback: Callable[[], asyncio.Protocol],
        *,
        max_head: int = 8190 + 100 * 8190,
        max_line: int = 8190,
        max_body: int = 1024 * 1024,
        keepalive: float = 75.0,
    ) -> None:
        self.route = route
        self.keepalive = keepalive  # an idle connection is closed after this (aiohttp's 75 s)
        self.fallback = fallback
        self.max_head = max_head
        self.max_line = max_line
        self.max_body = max_body
        self.inflight: set[asyncio.Task[None]] = set()
        self.connections: set[FrontProtocol] = set()
        self.closing = False

    def protocol(self) -> FrontProtocol:
        return FrontProtocol(self)

    def sweep(self) -> None:
        """Close connections idle (no request in flight) for longer than ``keepalive``; runs
        every few seconds instead of a timer per request."""
        now = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            if conn.task is None and now - conn.last_active > self.keepalive:
                conn.close()

    async def drain(self, grace: float) -> None:
        """Stop taking requests, wait for those in flight, close idle connections."""
        self.closing = True
        for conn in list(self.connections):
            if conn.task is None:
                conn.close()
        if self.inflight:
            await asyncio.wait(set(self.inflight), timeout=grace)
        for conn in list(self.connections):
            conn.close()


class _Head:
    """httptools callbacks for one request head."""

    __slots__ = ("bad", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.bad = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in self.headers:
            self.bad = True  # a repeated header on the fast path: never guess which one counts
        self.headers[key] = value


class FrontProtocol(asyncio.Protocol):
    """One client connection until it is handed to aiohttp (if ever)."""

    def __init__(self, front: FastFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.task: asyncio.Task[None] | None = None
        self.handed = False
        self.paused = False
        self.last_active = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = asyncio.get_running_loop().time()
        self.buf += data
        if self.task is None:
            self._next()
        elif len(self.buf) > self.front.max_head + self.front.max_body and not self.paused:
            assert self.transport is not None
            self.transport.pause_reading()  # pipelined bytes wait for the answer in flight
            self.paused = True

    def close(self) -> None:
        if self.transport is not None and not self.handed:
            self.transport.close()

    # -- framing ----------------------------------------------------------------------------
    def _next(self) -> None:
        """Start the next buffered request, if its head and body are all here."""
        if self.transport is None or self.handed:
            return
        if self.paused:
            self.transport.resume_reading()
            self.paused = False
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.front.max_head:
                self._refuse(431, b"request header fields too large")
            return
        if end + 4 > self.front.max_head:
            self._refuse(431, b"request header fields too large")
            return
        line_end = buf.find(b"\r\n")
        if line_end > self.front.max_line:
            self._hand_over()  # aiohttp answers an overlong request line as it always has
            return
        if not buf.startswith(b"POST "):
            self._hand_over()
            return
        head = _Head()
        parser = httptools.HttpRequestParser(head)
        try:
            parser.feed_data(buf[: end + 4])
        except httptools.HttpParserUpgrade:
            self._hand_over()
            return
        except httptools.HttpParserError:
            self._hand_over()  # aiohttp says what is wrong with it
            return
        headers = head.headers
        if (
            head.bad
            or parser.get_http_version() != "1.1"
            or b"transfer-encoding" in headers
            or b"upgrade" in headers
            or b"expect" in headers
        ):
            self._hand_over()
            return
        url = httptools.parse_url(head.url)
        path = url.path.decode("latin-1")
        handler = self.front.route(path)
        if handler is None:
            self._hand_over()
            return
        length_raw = headers.get(b"content-length", b"0")
        if not length_raw.isdigit() or len(length_raw) > 12:
            self._hand_over()
            return
        length = int(length_raw)
        if length > self.front.max_body:
            self._hand_over()  # the route's own refusal (aiohttp's handler checks the size)
            return
        total = end + 4 + length
        if len(buf) < total:
            return  # the body is still coming
        body = buf[end + 4 : total]
        self.buf = buf[total:]
        keep_alive = headers.get(b"connection", b"").lower() != b"close"
        peer = self.transport.get_extra_info("peername")
        request = FastRequest(path, headers, body, peer, (url.query or b"").decode("latin-1"))
        task = asyncio.get_running_loop().create_task(self._serve(handler, request, keep_alive))
        self.task = task
        self.front.inflight.add(task)
        task.add_done_callback(self.front.inflight.discard)

    async def _serve(self, handler: Handler, request: FastRequest, keep_alive: bool) -> None:
        try:
            response = await handler(request)
            data = render(response, keep_alive=keep_alive and not self.front.closing)
        except Exception:  # the outermost boundary of the fast path
            log.exception("unexpected failure serving %s", request.path)
            data = _error(500, b"internal error")
            keep_alive = False
        self.task = None
        self.last_active = asyncio.get_running_loop().time()
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep_alive or self.front.closing:
            self.transport.close()
            return
        if self.buf:
            self._next()

    def _refuse(self, status: int, message: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_error(status, message))
        self.transport.close()
        self.buf = b""

    def _hand_over(self) -> None:
        """aiohttp serves this connection from the current request on."""
        assert self.transport is not None
        self.handed = True
        self.front.connections.discard(self)
        if self.paused:
            self.transport.resume_reading()
            self.paused = False
        proto = self.front.fallback()
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        data, self.buf = self.buf, b""
        if data:
            proto.data_received(data)


class FastSite(web.TCPSite):
    """A ``TCPSite`` whose connections start on the fast front (see the module doc)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        route: Route,
        max_body: int,
        keepalive: float = 75.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        server = runner.server
        assert server is not None
        fallback = cast(Callable[[], asyncio.Protocol], server)
        self.front = FastFront(route, fallback, max_body=max_body, keepalive=keepalive)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.front.protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.front.keepalive / 2))
            self.front.sweep()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await super().stop()
        with contextlib.suppress(Exception):
            await self.front.drain(self._runner._shutdown_timeout)
