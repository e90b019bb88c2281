"""A minimal HTTP/1.1 client for the relay hot path: one asyncio Protocol per connection,
httptools' parser, a keep-alive pool per origin.

It does what the two hops need (gateway → relayer, relayer → backend) and nothing else:
requests with a body and fixed headers, complete responses read into memory. What it saves
against a general client is per-call work: the request line, ``Host`` and the fixed headers of
an origin are built once (:class:`Route`), a call writes one buffer, and the response is parsed
by C callbacks into one object.

Limits, each a :class:`HttpError` subclass the caller maps to its own codes:

* the response head (status line and headers) is at most ``max_head_bytes`` (``HeadTooLarge``);
* the body at most the call's ``max_body`` (``BodyTooLarge``) — counted while reading, so an
  oversized answer is cut off, never buffered whole;
* connecting takes at most ``connect_timeout`` and the whole call at most ``within`` seconds
  (``TimeoutError``: the request may have been sent);
* a refused, reset or closed connection is ``ConnectFailed`` (nothing sent) or
  ``ConnectionLost`` (maybe sent). A pooled connection the server closed while it sat idle
  is retried once on a fresh one when not a byte of the answer had arrived.

Redirects are never followed (the status comes back as it is). Names are resolved by the
``resolve`` hook when one is given (the gateway's address guard), else by the loop.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl as _ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "BodyTooLarge",
    "Budget",
    "ConnectFailed",
    "ConnectionLost",
    "HeadTooLarge",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "OverBudget",
    "Resolve",
    "Route",
]


class Budget(Protocol):
    """A shared bound on bytes being read at once (the gateway's answer budget)."""

    def take(self, n: int) -> bool: ...

    def give(self, n: int) -> None: ...


Resolve = Callable[[str, int], Awaitable[list[str]]]
"""``resolve(host, port)`` → the addresses to try, in order; raises to refuse the name."""

_DEFAULT_MAX_HEAD = 64 * 1024
_IDLE_REUSE = 15.0  # seconds an idle pooled connection is trusted to still be open
_CLOCK_RESOLUTION = 0.001  # loop timers fire to the millisecond (uvloop rounds to it)


class HttpError(Exception):
    """A call failed below HTTP (no complete response)."""


class ConnectFailed(HttpError):
    """No connection could be made: nothing was sent."""


class ConnectionLost(HttpError):
    """The connection closed or broke before the whole answer arrived: maybe sent."""


class HeadTooLarge(HttpError):
    """The response's status line and headers exceed the client's limit."""


class BodyTooLarge(HttpError):
    """The response body exceeds the call's limit."""


class OverBudget(HttpError):
    """Reading the answer would pass the shared budget (``Budget.take`` said no)."""


@dataclass(slots=True)  # not frozen: one is built per call (frozen costs a setattr per field)
class HttpResponse:
    status: int
    headers: Mapping[bytes, bytes]  # lower-case names; the first of repeated names
    body: bytes

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Route:
    """One method and URL with its fixed headers, the request head prefix built once."""

    scheme: str
    host: str
    port: int
    prefix: bytes  # "METHOD /path HTTP/1.1\r\nHost: …\r\n<fixed headers>"
    #: ``(scheme, host, port)``, the pool's key: built once, not per call
    origin: tuple[str, str, int] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", (self.scheme, self.host, self.port))

    @classmethod
    def build(cls, method: str, url: str, headers: Mapping[str, str] | None = None) -> Route:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.hostname
        host_header = parts.netloc.rsplit("@", 1)[-1]
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if any(c in url for c in " \t\r\n\0"):  # urlsplit would drop some silently
            raise ValueError(f"URL with whitespace or control characters: {url!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
        for name, value in (headers or {}).items():
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        return cls(scheme, host, port, ("\r\n".join(lines) + "\r\n").encode("latin-1"))


_BAD_NAME = re.compile(r"[ \t\r\n:]")
_GOOD_NAMES: set[str] = set()  # header names already checked (a per-call header's is fixed)


def _check_header(name: str, value: str) -> None:
    if name not in _GOOD_NAMES:
        if not name or _BAD_NAME.search(name):
            raise ValueError(f"bad header {name!r}")
        if len(_GOOD_NAMES) < 256:
            _GOOD_NAMES.add(name)
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"bad header {name!r}")


def _message(prefix: bytes, body: bytes, extra_headers: Iterable[tuple[str, str]]) -> bytes:
    """The request's bytes: the route's head, the per-call headers, length and body."""
    if extra_headers:
        head = prefix
        for name, value in extra_headers:
            _check_header(name, value)
            head += f"{name}: {value}\r\n".encode("latin-1")
        prefix = head
    return b"%sContent-Length: %d\r\n\r\n%s" % (prefix, len(body), body)


class _Conn(asyncio.Protocol):
    """One connection: at most one call in flight; parser callbacks fill the answer."""

    __slots__ = (
        "_body",
        "_body_size",
        "_budget",
        "_fut",
        "_head_size",
        "_header_bytes",
        "_headers",
        "_held",
        "_in_head",
        "_loop",
        "_max_body",
        "_max_error_body",
        "_max_head",
        "_parser",
        "_status",
        "closed",
        "deadline",
        "got_bytes",
        "idle_since",
        "origin",
        "transport",
    )

    def __init__(self, origin: tuple[str, str, int], max_head: int) -> None:
        self.origin = origin
        self._max_head = max_head
        self._loop = asyncio.get_running_loop()  # once: each call is a getpid() in 3.11
        self._parser = httptools.HttpResponseParser(self)  # one per connection, reused
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._fut: asyncio.Future[HttpResponse] | None = None
        self.idle_since = 0.0
        self.deadline = 0.0  # of the call in flight (the client's sweep ends it then)
        self.got_bytes = False
        self._reset(0, 0, None)

    def _reset(self, max_body: int, max_error_body: int, budget: Budget | None) -> None:
        self._max_error_body = max_error_body
        self._budget = budget
        self._held = 0
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._header_bytes = 0
        self._in_head = True
        self._max_body = max_body
        self._status = 0

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self._fut is None:  # bytes nobody asked for: the connection is unusable
            self._fail(ConnectionLost("unsolicited bytes from the server"))
            return
        if self._in_head:
            before = self._head_size
            self._head_size = before + len(data)
            if self._head_size > self._max_head >= before:  # from here on the head may pass
                self._header_bytes = before  # the limit: count it (all bytes so far are head)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own error (a size limit)
            if not isinstance(cause, HttpError):
                cause = ConnectionLost(f"malformed answer: {exc}")
            self._fail(cause)
        else:
            if self._in_head and self._head_size > self._max_head:
                self._fail(HeadTooLarge(f"response head over {self._max_head} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        fut = self._fut
        if fut is None or fut.done():
            return
        self._fut = None
        if not self._in_head and self._until_eof():
            fut.set_result(self._answer())  # a body delimited by the connection's end
        else:
            fut.set_exception(ConnectionLost(f"connection closed mid-answer ({exc or 'eof'})"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_size > self._max_head:  # a head within the bytes read so far is not
            self._header_bytes += len(name) + len(value) + 4  # counted header by header
            if self._header_bytes > self._max_head:
                raise HeadTooLarge(f"response head over {self._max_head} bytes")
        self._headers.setdefault(name.lower(), value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._status = self._parser.get_status_code()
        if self._status != 200:
            self._max_body = min(self._max_body, self._max_error_body)
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit():
            declared = int(length)
            if declared > self._max_body:
                raise BodyTooLarge(f"answer of {declared} bytes over {self._max_body}")
            if self._budget is not None:
                self._reserve(declared)

    def on_body(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > self._max_body:
            raise BodyTooLarge(f"answer over {self._max_body} bytes")
        if self._budget is not None and self._body_size > self._held:
            self._reserve(self._body_size)
        self._body.append(chunk)

    def _reserve(self, total: int) -> None:
        if self._budget is None or total <= self._held:
            return
        if not self._budget.take(total - self._held):
            raise OverBudget("the answers being read would pass the budget")
        self._held = total

    def give_back(self) -> None:
        """Return the bytes this answer held in the budget (the caller owns the body now)."""
        if self._budget is not None and self._held:
            self._budget.give(self._held)
        self._held = 0

    def on_message_complete(self) -> None:
        fut = self._fut
        self._fut = None
        if fut is None or fut.done():
            return
        answer = self._answer()
        if not self._parser.should_keep_alive():
            self.closed = True
        fut.set_result(answer)

    # -- the client side --------------------------------------------------------------------
    def _until_eof(self) -> bool:
        return b"content-length" not in self._headers and b"transfer-encoding" not in self._headers

    def _answer(self) -> HttpResponse:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        return HttpResponse(self._status, self._headers, body)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        fut, self._fut = self._fut, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def send(
        self, data: bytes, max_body: int, max_error_body: int, budget: Budget | None
    ) -> asyncio.Future[HttpResponse]:
        assert self.transport is not None and self._fut is None
        self._reset(max_body, max_error_body, budget)
        self.got_bytes = False
        fut = self._fut = self._loop.create_future()
        self.transport.write(data)
        return fut

    def abort(self) -> None:
        self.closed = True
        self._fut = None
        if self.transport is not None:
            self.transport.abort()

    def expire(self) -> None:
        """The call in flight reached its deadline: TimeoutError, and the connection goes."""
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_exception(TimeoutError("no complete answer in time"))
        self.abort()


class _Gate:
    """At most ``limit`` calls at once to one origin: a count of free slots and the callers
    waiting, in order. A freed slot passes straight to the first waiter still waiting; a
    waiter that gives up (its deadline, a cancel) after a slot was passed to it passes it on."""

    __slots__ = ("_waiters", "free")

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self, within: float) -> None:
        """Wait for a slot (none is free), for at most ``within`` seconds (TimeoutError)."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(within):
                await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.give()  # the slot reached us as we gave up: it goes on
            else:  # still queued: leave the queue (only live waiters are in it)
                self._waiters.remove(fut)
            raise

    def give(self) -> None:
        """Free a slot: to the first waiter (each one still waiting), else back to the count."""
        if self._waiters:
            self._waiters.popleft().set_result(None)
        else:
            self.free += 1


class HttpClient:
    """Keep-alive pools per origin; ``request`` sends one call and returns its whole answer."""

    def __init__(
        self,
        *,
        resolve: Resolve | None = None,
        max_idle_per_origin: int = 256,
        max_head_bytes: int = _DEFAULT_MAX_HEAD,
        ssl_context: _ssl.SSLContext | None = None,
        routes: int = 4096,
        limit_per_origin: int = 0,
    ) -> None:
        self._resolve = resolve
        self._max_idle = max_idle_per_origin
        self._max_head = max_head_bytes
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self._routes: dict[tuple[str, str, tuple[tuple[str, str], ...]], Route] = {}
        self._max_routes = routes
        self._closed = False
        self._limit = limit_per_origin
        self._gates: dict[tuple[str, str, int], _Gate] = {}
        # deadlines: one loop timer for every call in flight, armed at or before the earliest
        # deadline of the connections in ``_busy`` (a timer per call costs ~2 µs to arm+cancel)
        self._busy: set[_Conn] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def route(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> Route:
        """The (cached) route of ``method url`` with these fixed headers."""
        key = (method, url, tuple(headers.items()) if headers else ())
        route = self._routes.get(key)
        if route is None:
            route = Route.build(method, url, headers)
            if len(self._routes) >= self._max_routes:
                self._routes.clear()
            self._routes[key] = route
        return route

    async def request(
        self,
        route: Route,
        body: bytes,
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
        within: float,
        connect_timeout: float | None = None,
        max_body: int = 64 * 1024 * 1024,
        max_error_body: int | None = None,
        budget: Budget | None = None,
    ) -> HttpResponse:
        """Send ``body`` on ``route`` (plus per-call headers) and return the whole answer.

        The body is read under ``max_body`` (``max_error_body`` when the status is not 200)
        and, with a ``budget``, under that shared bound too; what it held there is given
        back before this returns or raises. One coroutine a call: the slot, the message and
        the exchange (:meth:`_exchange`) are plain calls."""
        gate = None
        if self._limit:
            gate = self._gates.get(route.origin)
            if gate is None:
                gate = self._gates[route.origin] = _Gate(self._limit)
            if gate.free:
                gate.free -= 1  # free: no suspension, no timer
            else:  # waiting for a slot counts against the call's time
                within = await self._wait_for_slot(gate, within)
        try:
            data = _message(route.prefix, body, extra_headers)
            error_max = max_body if max_error_body is None else max_error_body
            conn = self._pooled(route.origin)
            # a pooled connection knows its loop (get_running_loop() is a getpid() in 3.11)
            loop = conn._loop if conn is not None else asyncio.get_running_loop()
            deadline = loop.time() + within
            for attempt in (0, 1):
                if attempt:
                    conn = self._pooled(route.origin)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(route, deadline, connect_timeout)
                try:
                    return await self._exchange(
                        conn, data, max_body, error_max, budget, loop, deadline
                    )
                except ConnectionLost:
                    if reused and not attempt and not conn.got_bytes:
                        continue  # a stale keep-alive connection: once more on a fresh one
                    raise
                finally:
                    self._done(conn)
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if gate is not None:
                gate.give()

    async def _wait_for_slot(self, gate: _Gate, within: float) -> float:
        """Wait for a slot of ``gate``; the time left of ``within`` once it is ours (a slot
        that came too late is passed on: TimeoutError, nothing sent)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        await gate.wait(within)
        within = deadline - loop.time()
        if within <= 0:
            gate.give()
            raise TimeoutError("no connection slot in time")
        return within

    def _exchange(
        self,
        conn: _Conn,
        data: bytes,
        max_body: int,
        max_error_body: int,
        budget: Budget | None,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
    ) -> asyncio.Future[HttpResponse]:
        """Write ``data`` on ``conn``: the answer's future, the call under the deadline sweep
        until :meth:`_done`."""
        fut = conn.send(data, max_body, max_error_body, budget)
        conn.deadline = deadline
        self._busy.add(conn)
        if deadline < self._timer_at or loop is not self._timer_loop:
            self._arm(loop, deadline)
        return fut

    def _done(self, conn: _Conn) -> None:
        """The call on ``conn`` ended: out of the sweep, budget given back, and the connection
        pooled when its answer came whole (else it goes)."""
        self._busy.discard(conn)
        if conn._held:
            conn.give_back()
        if conn._fut is None:  # answered (a closed connection is not pooled, see _release)
            self._release(conn)
        else:  # the caller gave up mid-call (cancelled): the connection goes
            conn.abort()

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._sweep, loop)
        self._timer_at = at
        self._timer_loop = loop

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """The deadline timer: end every call whose deadline came (within the clock's
        millisecond), then arm the timer for the earliest deadline still ahead."""
        self._timer = None
        self._timer_at = math.inf
        due = loop.time() + _CLOCK_RESOLUTION
        earliest = math.inf
        for conn in list(self._busy):
            if conn.deadline <= due:
                self._busy.discard(conn)
                conn.expire()
            elif conn.deadline < earliest:
                earliest = conn.deadline
        if earliest < math.inf:
            self._arm(loop, earliest)

    def _pooled(self, origin: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the warmest
            if not conn.closed and now - conn.idle_since < _IDLE_REUSE:
                return conn
            conn.abort()
        return None

    def _release(self, conn: _Conn) -> None:
        if conn.closed or self._closed:
            conn.abort()
            return
        idle = self._idle.get(conn.origin)
        if idle is None:
            idle = self._idle[conn.origin] = deque()
        if len(idle) >= self._max_idle:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, route: Route, deadline: float, connect_timeout: float | None) -> _Conn:
        loop = asyncio.get_running_loop()
        budget = deadline - loop.time()
        if connect_timeout is not None:
            budget = min(budget, connect_timeout)
        ssl_ctx: _ssl.SSLContext | None = None
        if route.scheme == "https":
            ssl_ctx = self._ssl or _ssl.create_default_context()
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                hosts = (
                    await self._resolve(route.host, route.port) if self._resolve else [route.host]
                )
                last: OSError | None = None
                for host in hosts:
                    try:
                        _, proto = await loop.create_connection(
                            lambda: _Conn(route.origin, self._max_head),
                            host,
                            route.port,
                            ssl=ssl_ctx,
                            server_hostname=route.host if ssl_ctx else None,
                        )
                        return proto
                    except OSError as exc:
                        last = exc
                where = f"{route.host}:{route.port}"
                raise ConnectFailed(f"cannot connect to {where}: {last}") from last
        except TimeoutError:
            raise TimeoutError(f"connecting to {route.host}:{route.port} timed out") from None

    async def close(self) -> None:
        self._closed = True  # calls in flight still end by their deadlines (the timer stays)
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()
