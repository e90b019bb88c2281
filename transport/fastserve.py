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
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import httptools
from aiohttp import web

__all__ = [
    "FastFront",
    "FastRequest",
    "FastResponse",
    "FastSite",
    "FrontProtocol",
    "Response",
    "header_lines",
    "render",
]

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


@dataclass(slots=True)  # not frozen: one is built per request (frozen costs a setattr per field)
class FastResponse:
    status: int
    body: bytes
    content_type: str | None = "application/json"
    #: (name, value) pairs, in order (a tuple, or a dict's ``items()`` as they are)
    headers: Collection[tuple[str, str]] = ()
    #: header lines rendered already (:func:`header_lines`), sent before ``headers``: a
    #: handler renders a constant block once, not per response
    head: bytes = b""


class Response(Protocol):
    """What a fast handler answers: a :class:`FastResponse`, or an object of the handler's own
    with the same fields, written as it is (no conversion per request). ``headers`` are
    (name, value) pairs or a dict, sent after ``head``."""

    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def headers(self) -> Collection[tuple[str, str]] | dict[str, str]: ...

    @property
    def head(self) -> bytes: ...


Handler = Callable[[FastRequest], Awaitable[Response]]
_Job = tuple[Handler, FastRequest, bool]  # a request to answer: handler, request, keep-alive
Route = Callable[[str], Handler | None]  # path → handler, or None for aiohttp (asked once a path)
_TARGETS_KEPT = 1024  # request targets whose path, query and route the front remembers


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


_STATUS_LINES: dict[int, bytes] = {}  # status -> its status line
_CONTENT_TYPES: dict[str, bytes] = {}  # content type -> its header line


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status"))
        if len(_STATUS_LINES) < 1000:
            _STATUS_LINES[status] = line
    return line


def _content_type_line(content_type: str) -> bytes:
    line = _CONTENT_TYPES.get(content_type)
    if line is None:
        line = b"Content-Type: %s\r\n" % content_type.encode("latin-1")
        if len(_CONTENT_TYPES) < 64:
            _CONTENT_TYPES[content_type] = line
    return line


def header_lines(pairs: Iterable[tuple[str, str]]) -> bytes:
    """One ``Name: value`` line (CRLF-ended, latin-1) per pair, in order; empty for none."""
    text = "\r\n".join(map(": ".join, pairs))
    return (text + "\r\n").encode("latin-1") if text else b""


def render(response: Response, *, keep_alive: bool) -> bytes:
    """The response's bytes: status line, headers, body (status and content-type lines are
    built once per value)."""
    status, content_type, headers = response.status, response.content_type, response.headers
    lines = b""
    if type(headers) is dict:
        lines = header_lines(headers.items())
    elif headers:
        lines = header_lines(cast(Collection[tuple[str, str]], headers))
    return b"".join(
        (
            # (the kept line, else the function that builds and keeps it)
            _STATUS_LINES.get(status) or _status_line(status),
            b""
            if content_type is None
            else _CONTENT_TYPES.get(content_type) or _content_type_line(content_type),
            b"Content-Length: %d\r\n" % len(response.body),
            response.head,
            lines,
            b"\r\n" if keep_alive else b"Connection: close\r\n\r\n",
            response.body,
        )
    )


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
        #: request target → (path, query, its route's handler): a target is parsed and routed
        #: once (bounded: the table starts over when full)
        self.targets: dict[bytes, tuple[str, str, Handler | None]] = {}

    def target(self, raw: bytes) -> tuple[str, str, Handler | None]:
        """``(path, query, handler)`` of a request target (``route`` asked once per target)."""
        kept = self.targets.get(raw)
        if kept is None:
            url = httptools.parse_url(raw)
            path = url.path.decode("latin-1")
            query = url.query
            kept = (path, query.decode("latin-1") if query else "", self.route(path))
            if len(self.targets) >= _TARGETS_KEPT:
                self.targets.clear()
            self.targets[raw] = kept
        return kept

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


class FrontProtocol(asyncio.Protocol):
    """One client connection until it is handed to aiohttp (if ever).

    One httptools parser serves the connection's requests in turn: it is fed each request's
    head once it is complete (the callbacks below collect the URL and headers) and, once the
    request is served from here, its body, so it stands ready for the next one. Anything
    handed to aiohttp leaves the parser behind."""

    def __init__(self, front: FastFront) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.task: asyncio.Task[None] | None = None  # the task, while a request is in flight
        self._worker: asyncio.Task[None] | None = None  # the connection's task (see _serve)
        self._wake: asyncio.Future[_Job | None] | None = None  # what it waits on, idle
        self.handed = False
        self.paused = False
        self._loop = asyncio.get_running_loop()  # once: each call is a getpid() in 3.11
        self.last_active = self._loop.time()
        self._peer: Any = None
        self._parser = httptools.HttpRequestParser(self)
        # the request whose head was parsed and whose body is still coming
        self._pending: tuple[Handler, FastRequest, int, int, bool] | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._repeated = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._peer = self.transport.get_extra_info("peername")
        self.front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None
        self._stop_waiting()

    def data_received(self, data: bytes) -> None:
        self.last_active = self._loop.time()
        if self.buf:
            self.buf += data
        else:
            self.buf = data
        if self.task is None:
            self._next()
        elif len(self.buf) > self.front.max_head + self.front.max_body and not self.paused:
            assert self.transport is not None
            self.transport.pause_reading()  # pipelined bytes wait for the answer in flight
            self.paused = True

    def close(self) -> None:
        if self.transport is not None and not self.handed:
            self.transport.close()

    # -- httptools callbacks ----------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in self._headers:
            self._repeated = True  # a repeated header on the fast path: never guess which one
        self._headers[key] = value

    # -- framing ----------------------------------------------------------------------------
    def _next(self) -> None:
        """Start the next buffered request, if its head and body are all here."""
        if self.transport is None or self.handed:
            return
        if self.paused:
            self.transport.resume_reading()
            self.paused = False
        pending = self._pending
        if pending is None:
            pending = self._pending = self._head()
            if pending is None:
                return
        handler, request, head_end, total, keep_alive = pending
        buf = self.buf
        if len(buf) < total:
            return  # the body is still coming
        self._pending = None
        request.body = body = buf[head_end:total]
        self.buf = buf[total:]
        if body:
            self._parser.feed_data(body)  # the parser stands ready for the next request
        job = (handler, request, keep_alive)
        wake, worker = self._wake, self._worker
        if wake is None or worker is None:  # the connection's first fast request
            worker = self._worker = self._loop.create_task(self._serve(job))
        else:  # its task waits for this request
            self._wake = None
            wake.set_result(job)
        self.task = worker
        self.front.inflight.add(worker)

    def _head(self) -> tuple[Handler, FastRequest, int, int, bool] | None:
        """Parse the buffered request's head: (handler, request without its body, head and
        total bytes, keep-alive), or None (incomplete, refused, or handed to aiohttp)."""
        buf = self.buf
        front = self.front
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > front.max_head:
                self._refuse(431, b"request header fields too large")
            return None
        if end + 4 > front.max_head:
            self._refuse(431, b"request header fields too large")
            return None
        line_end = buf.find(b"\r\n", 0, front.max_line + 1)
        if (
            line_end < 0
            or not buf.startswith(b"POST ")
            or buf[line_end - 9 : line_end] != b" HTTP/1.1"
        ):
            # aiohttp answers an overlong request line as it always has, and serves the rest
            self._hand_over()
            return None
        self._url = b""
        headers: dict[bytes, bytes] = {}
        self._headers = headers
        self._repeated = False
        parser = self._parser
        try:
            parser.feed_data(buf[: end + 4])
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            # a WebSocket upgrade is aiohttp's, and so is saying what is wrong with a request
            self._hand_over()
            return None
        if (
            self._repeated
            or b"transfer-encoding" in headers
            or b"upgrade" in headers
            or b"expect" in headers
        ):
            self._hand_over()
            return None
        path, query, handler = front.target(self._url)
        if handler is None:
            self._hand_over()
            return None
        length_raw = headers.get(b"content-length", b"0")
        if not length_raw.isdigit() or len(length_raw) > 12:
            self._hand_over()
            return None
        length = int(length_raw)
        if length > front.max_body:
            self._hand_over()  # the route's own refusal (aiohttp's handler checks the size)
            return None
        keep_alive = headers.get(b"connection", b"").lower() != b"close"
        request = FastRequest(path, headers, b"", self._peer, query)
        return handler, request, end + 4, end + 4 + length, keep_alive

    async def _serve(self, job: _Job | None) -> None:
        """The connection's task: answers its fast requests in turn, waiting in between (a
        task per connection, not per request: a request in flight is the task in
        ``front.inflight``). It ends with the connection, a ``Connection: close``, a drain,
        or the connection's hand-over to aiohttp."""
        front = self.front
        mine = self.task  # set by _next before this first runs
        try:
            while job is not None:
                handler, request, keep_alive = job
                try:
                    response = await handler(request)
                    data = render(response, keep_alive=keep_alive and not front.closing)
                except Exception:  # the outermost boundary of the fast path
                    # never the path: a gateway's holds the client's API key
                    log.exception("unexpected failure serving a fast request")
                    data = _error(500, b"internal error")
                    keep_alive = False
                self.task = None
                front.inflight.discard(mine)
                self.last_active = self._loop.time()
                transport = self.transport
                if transport is None:
                    return
                transport.write(data)
                if not keep_alive or front.closing:
                    transport.close()
                    return
                wake = self._wake = self._loop.create_future()
                if self.buf:
                    self._next()  # a request already here is taken at once
                job = await wake
        finally:
            self._wake = self._worker = None
            front.inflight.discard(mine)

    def _stop_waiting(self) -> None:
        """The connection's task, waiting for a request that will not come, ends."""
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set_result(None)

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
        self._stop_waiting()
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
