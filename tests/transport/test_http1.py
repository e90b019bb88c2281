"""transport.http1 against real sockets: raw asyncio servers that answer as we script them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from transport.http1 import (
    BodyTooLarge,
    ConnectFailed,
    ConnectionLost,
    HeadTooLarge,
    HttpClient,
    Route,
)

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of one request, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def _answers_once(response: bytes) -> Handler:
    """A server that reads one request, writes ``response`` and closes the connection (without
    "Connection: close": a client learns it only on its next call)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(response)
        await writer.drain()

    return handler


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/rpc?x=1"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler) -> Server:
        s = Server(handler)
        s.server = await asyncio.start_server(s._serve, "127.0.0.1", 0)
        servers.append(s)
        return s

    yield start
    for s in servers:
        assert s.server is not None
        s.server.close()


def echo(server_ref: list[Server], extra: bytes = b"") -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await _read_request(reader)) is not None:
            server_ref[0].requests.append(req)
            body = b"echo:" + req[1]
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: a\r\nX-Twice: b\r\n"
                + extra
                + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    return handler


def test_keep_alive_under_uvloop() -> None:
    """The servers run on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_keep_alive_reuses_one_connection_and_sends_headers_once_built())


async def test_keep_alive_reuses_one_connection_and_sends_headers_once_built() -> None:
    ref: list[Server] = []
    server = Server(echo(ref))
    ref.append(server)
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    client = HttpClient()
    try:
        route = client.route("POST", server.url, {"Content-Type": "application/json"})
        assert client.route("POST", server.url, {"Content-Type": "application/json"}) is route
        for i in range(5):
            answer = await client.request(
                route, b"[%d]" % i, extra_headers=[("Relay-Request", f"r{i}")], within=5
            )
            assert answer.status == 200
            assert answer.body == b"echo:[%d]" % i
            assert answer.header(b"content-type") == "text/plain"
            assert answer.header(b"x-twice") == "a"  # the first of repeated names
        assert server.connections == 1
        head, body = server.requests[3]
        assert head.startswith(b"POST /rpc?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nContent-Type: application/json\r\n" in head
        assert b"\r\nRelay-Request: r3\r\n" in head
        assert body == b"[3]"
    finally:
        await client.close()
        server.server.close()


async def test_concurrent_calls_open_their_own_connections(serve) -> None:  # type: ignore[no-untyped-def]
    ref: list[Server] = []
    server = await serve(echo(ref))
    ref.append(server)
    client = HttpClient()
    try:
        route = client.route("POST", server.url)
        answers = await asyncio.gather(
            *(client.request(route, b"%d" % i, within=5) for i in range(8))
        )
        assert sorted(a.body for a in answers) == sorted(b"echo:%d" % i for i in range(8))
        assert server.connections == 8
        await client.request(route, b"again", within=5)
        assert server.connections == 8  # pooled
    finally:
        await client.close()


async def test_chunked_and_close_delimited_bodies(serve) -> None:  # type: ignore[no-untyped-def]
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    server = await serve(chunked)
    client = HttpClient()
    try:
        route = client.route("POST", server.url)
        answer = await client.request(route, b"x", within=5)
        assert (answer.status, answer.body) == (500, b"abcde")
        answer = await client.request(route, b"y", within=5)
        assert (answer.status, answer.body) == (200, b"until the end")
    finally:
        await client.close()


async def test_oversized_body_is_cut_off(serve) -> None:  # type: ignore[no-untyped-def]
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(100):
                writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def declared(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    client = HttpClient()
    try:
        for handler in (big, declared):
            server = await serve(handler)
            route = client.route("POST", server.url)
            with pytest.raises(BodyTooLarge):
                await client.request(route, b"x", within=5, max_body=10_000)
        server = await serve(big)
        answer = await client.request(client.route("POST", server.url), b"x", within=5)
        assert len(answer.body) == 100 * 1024  # the same answer under the default cap
    finally:
        await client.close()


async def test_oversized_head_is_refused(serve) -> None:  # type: ignore[no-untyped-def]
    async def fat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(200):
            writer.write(b"X-Pad-%d: %s\r\n" % (i, b"p" * 100))
        writer.write(b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    server = await serve(fat)
    client = HttpClient(max_head_bytes=8 * 1024)
    try:
        with pytest.raises(HeadTooLarge):
            await client.request(client.route("POST", server.url), b"x", within=5)
    finally:
        await client.close()


@pytest.mark.parametrize("first_read", [0, 4 * 1024, 7 * 1024, 8 * 1024 + 500])
async def test_the_head_limit_holds_however_the_head_is_split(serve, first_read: int) -> None:  # type: ignore[no-untyped-def]
    """A head of 9 KB against an 8 KB limit is refused whether it comes in one read or its
    first part (under or over the limit) arrives before the rest; a head under the limit with
    a body larger than it, in one write, is answered."""
    pads = b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"p" * 100) for i in range(80))  # ~9 KB
    head = b"HTTP/1.1 200 OK\r\n" + pads + b"Content-Length: 2\r\n\r\n"

    async def split(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if first_read:
            writer.write(head[:first_read])
            await writer.drain()
            await asyncio.sleep(0.05)  # most often a read of its own (either way: refused)
        writer.write(head[first_read:] + b"{}")
        await writer.drain()

    body = b"b" * (20 * 1024)
    fits = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    client = HttpClient(max_head_bytes=8 * 1024)
    try:
        server = await serve(split)
        with pytest.raises(HeadTooLarge):
            await client.request(client.route("POST", server.url), b"x", within=5)
        server = await serve(_answers_once(fits))
        answer = await client.request(client.route("POST", server.url), b"x", within=5)
        assert answer.body == body
    finally:
        await client.close()


async def test_timeout_and_refused_connection(serve) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(30)

    server = await serve(silent)
    client = HttpClient()
    try:
        with pytest.raises(TimeoutError):
            await client.request(client.route("POST", server.url), b"x", within=0.2)
        assert server.server is not None
        port = server.server.sockets[0].getsockname()[1]
        server.server.close()
        await server.server.wait_closed()
        dead = client.route("POST", f"http://127.0.0.1:{port}/")
        with pytest.raises(ConnectFailed):
            await client.request(dead, b"x", within=5)
    finally:
        await client.close()


async def test_stale_pooled_connection_is_retried_once_but_a_mid_answer_loss_is_not(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    server = await serve(_answers_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    client = HttpClient()
    try:
        route = client.route("POST", server.url)
        for _ in range(3):
            assert (await client.request(route, b"x", within=5)).body == b"ok"
        assert server.connections == 3

        cutter = await serve(_answers_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart"))
        with pytest.raises(ConnectionLost):
            await client.request(client.route("POST", cutter.url), b"x", within=5)
        assert cutter.connections == 1  # maybe sent: never repeated
    finally:
        await client.close()


async def test_redirect_is_returned_not_followed_and_bad_urls_refused(serve) -> None:  # type: ignore[no-untyped-def]
    moved = b"HTTP/1.1 307 Moved\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n"
    server = await serve(_answers_once(moved))
    client = HttpClient()
    try:
        answer = await client.request(client.route("POST", server.url), b"x", within=5)
        assert answer.status == 307
        assert server.connections == 1
        with pytest.raises(ValueError):
            Route.build("POST", "ftp://example.com/")
        with pytest.raises(ValueError):
            Route.build("POST", "http://example.com/", {"X": "a\r\nInjected: 1"})
        with pytest.raises(ValueError):  # nothing smuggled into the request line
            Route.build("GET", "http://example.com/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b")
        with pytest.raises(ValueError):
            Route.build("GET", "http://example.com/a\r\nX-Injected:1")
        with pytest.raises(ValueError):
            await client.request(
                client.route("POST", server.url), b"", extra_headers=[("X", "b\nc")], within=5
            )
        # a per-call header's name once checked is trusted; its value never is
        for bad in [("X", "b\rc"), ("X", "b\0c"), ("Bad Name", "v"), ("X:Y", "v"), ("", "v")]:
            with pytest.raises(ValueError):
                await client.request(
                    client.route("POST", server.url), b"", extra_headers=[bad], within=5
                )
    finally:
        await client.close()


async def test_resolve_hook_decides_the_address_and_can_refuse(serve) -> None:  # type: ignore[no-untyped-def]
    ref: list[Server] = []
    server = await serve(echo(ref))
    ref.append(server)
    assert server.server is not None
    port = server.server.sockets[0].getsockname()[1]
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        if host == "refused.example":
            raise ConnectFailed("refused by policy")
        return ["127.0.0.1"]

    client = HttpClient(resolve=resolve)
    try:
        answer = await client.request(
            client.route("POST", f"http://node.example:{port}/"), b"x", within=5
        )
        assert answer.body == b"echo:x"
        assert b"Host: node.example:%d\r\n" % port in server.requests[0][0]
        with pytest.raises(ConnectFailed, match="policy"):
            await client.request(
                client.route("POST", f"http://refused.example:{port}/"), b"x", within=5
            )
        assert asked == [("node.example", port), ("refused.example", port)]
    finally:
        await client.close()


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.high = 0

    def take(self, n: int) -> bool:
        if self.in_use + n > self.limit:
            return False
        self.in_use += n
        self.high = max(self.high, self.in_use)
        return True

    def give(self, n: int) -> None:
        self.in_use -= n


async def test_budget_bounds_reading_and_is_given_back_and_errors_have_their_own_cap(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    async def sized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await _read_request(reader)) is not None:
            n = int(req[1])
            status = b"200 OK" if n < 50_000 else b"503 Busy"
            writer.write(b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
            writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (n % 50_000, b"b" * (n % 50_000)))
            await writer.drain()

    server = await serve(sized)
    client = HttpClient()
    budget = _Budget(10_000)
    try:
        route = client.route("POST", server.url)
        answer = await client.request(route, b"8000", within=5, budget=budget)
        assert len(answer.body) == 8000 and budget.high == 8000 and budget.in_use == 0
        from transport.http1 import OverBudget

        with pytest.raises(OverBudget):
            await client.request(route, b"12000", within=5, budget=budget)
        assert budget.in_use == 0
        # a non-200 answer is read under its own (smaller) cap
        with pytest.raises(BodyTooLarge):
            await client.request(route, b"52000", within=5, max_error_body=1000)
        answer = await client.request(route, b"50500", within=5, max_error_body=1000)
        assert (answer.status, len(answer.body)) == (503, 500)
    finally:
        await client.close()


# --- deadlines and the per-origin limit ---------------------------------------------------------

_BOUND = 15.0  # a bound no correct call comes near: a call past it hung past its deadline


async def _bounded(aw: Awaitable[T]) -> T:
    """``aw`` — or AssertionError when it is still running after :data:`_BOUND` seconds (its
    own TimeoutError, at its deadline, passes through)."""
    bound = asyncio.timeout(_BOUND)
    try:
        async with bound:
            return await aw
    except TimeoutError:
        if bound.expired():
            raise AssertionError("a call outlived its deadline") from None
        raise


class _Held:
    """A server whose answers wait: a request with body ``b`` is answered once the test
    calls ``answer(b)`` (before or after it arrives)."""

    def __init__(self) -> None:
        self.ready: dict[bytes, asyncio.Event] = {}

    def answer(self, body: bytes) -> None:
        self.ready.setdefault(body, asyncio.Event()).set()

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await _read_request(reader)) is not None:
            await self.ready.setdefault(req[1], asyncio.Event()).wait()
            body = b"held:" + req[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()


def _is_the_calls_own_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) and "in time" in str(exc)


async def test_a_call_never_outlives_its_deadline_whatever_else_is_in_flight(serve) -> None:  # type: ignore[no-untyped-def]
    """Each call ends at its own deadline: a short call behind a long one in flight, a call
    after earlier calls answered (whatever timer they left), calls with mixed deadlines."""
    held = _Held()
    server = await serve(held.handler)
    client = HttpClient()
    route = client.route("POST", server.url)

    async def call(body: bytes, within: float) -> bytes:
        return (await client.request(route, body, within=within)).body

    try:
        long = asyncio.create_task(call(b"long", 60.0))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError) as short:  # not held up by the 60 s call
            await _bounded(call(b"short", 0.2))
        assert _is_the_calls_own_timeout(short.value)
        assert not long.done()
        held.answer(b"long")
        assert await _bounded(long) == b"held:long"

        # answered calls with short deadlines, then a silent one with a longer deadline
        for i in range(3):
            held.answer(b"%d" % i)
            assert await _bounded(call(b"%d" % i, 0.3)) == b"held:%d" % i
        with pytest.raises(TimeoutError) as later:
            await _bounded(call(b"later", 0.6))
        assert _is_the_calls_own_timeout(later.value)

        # many at once, deadlines out of order: each ends by its own
        withins = [1.5, 0.2, 0.9, 0.4, 1.2, 0.3]
        results = await _bounded(
            asyncio.gather(
                *(call(b"m%d" % i, w) for i, w in enumerate(withins)), return_exceptions=True
            )
        )
        assert all(_is_the_calls_own_timeout(r) for r in results), results
    finally:
        await client.close()


async def test_the_per_origin_limit_bounds_waiters_by_their_deadline(serve) -> None:  # type: ignore[no-untyped-def]
    held = _Held()
    server = await serve(held.handler)
    client = HttpClient(limit_per_origin=1)
    route = client.route("POST", server.url)
    try:
        first = asyncio.create_task(client.request(route, b"a", within=60.0))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):  # waiting for the one slot counts against the call
            await _bounded(client.request(route, b"b", within=0.2))
        assert server.connections == 1 and not first.done()
        held.answer(b"a")
        assert (await _bounded(first)).body == b"held:a"
    finally:
        await client.close()


async def test_the_per_origin_limit_hands_a_freed_slot_on_and_loses_none_to_a_cancel(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    held = _Held()
    server = await serve(held.handler)
    client = HttpClient(limit_per_origin=2)
    route = client.route("POST", server.url)
    try:
        calls = [
            asyncio.create_task(client.request(route, b"%d" % i, within=60.0)) for i in range(5)
        ]
        await asyncio.sleep(0.05)
        assert server.connections == 2  # two in flight, three waiting
        calls[2].cancel()  # a waiter gives up: its place is not a slot
        with pytest.raises(asyncio.CancelledError):
            await calls[2]
        for body in (b"0", b"1", b"3", b"4"):
            held.answer(body)
        answers = await _bounded(asyncio.gather(calls[0], calls[1], calls[3], calls[4]))
        assert sorted(a.body for a in answers) == [b"held:0", b"held:1", b"held:3", b"held:4"]
        assert server.connections == 2  # the freed slots went on with their connections
        # every slot is free again: two more at once still go through
        held.answer(b"x")
        again = await _bounded(
            asyncio.gather(*(client.request(route, b"x", within=60.0) for _ in range(2)))
        )
        assert [a.body for a in again] == [b"held:x", b"held:x"]
    finally:
        await client.close()


async def test_a_slot_passed_to_a_waiter_that_is_cancelled_goes_on() -> None:
    """The race the per-origin gate must survive: a freed slot is passed to a waiter, which is
    cancelled before it runs; the slot goes to the next waiter, none is lost or doubled."""
    from transport.http1 import _Gate

    gate = _Gate(1)
    gate.free -= 1  # one call holds the only slot
    second = asyncio.create_task(gate.wait(60.0))
    third = asyncio.create_task(gate.wait(60.0))
    await asyncio.sleep(0)
    gate.give()  # passed to the second waiter ...
    second.cancel()  # ... which gives up before it runs
    with pytest.raises(asyncio.CancelledError):
        await second
    await _bounded(third)  # the third has it
    assert gate.free == 0
    gate.give()
    assert gate.free == 1
    with pytest.raises(TimeoutError):  # and a waiter's deadline holds
        gate.free = 0
        await _bounded(gate.wait(0.1))
    gate.give()
    assert gate.free == 1  # the timed-out waiter left nothing behind


async def test_a_cancelled_call_leaves_no_connection_in_the_pool(serve) -> None:  # type: ignore[no-untyped-def]
    """A caller that gives up mid-call (cancelled) takes its connection down with it: the
    next call gets a fresh connection and its own answer, never the late one."""
    held = _Held()
    server = await serve(held.handler)
    client = HttpClient()
    route = client.route("POST", server.url)
    try:
        first = asyncio.create_task(client.request(route, b"a", within=60.0))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        held.answer(b"a")  # the late answer goes to a connection the client closed
        held.answer(b"b")
        assert (await _bounded(client.request(route, b"b", within=5))).body == b"held:b"
        assert server.connections == 2
    finally:
        await client.close()
