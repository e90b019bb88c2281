"""transport.fastserve: the fast POST path in front of a real aiohttp app on a real socket."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from transport.fastserve import FastRequest, FastResponse, FastSite
from transport.http1 import HttpClient

PATH = "/v1/relay"


class App:
    def __init__(self) -> None:
        self.fast = 0
        self.slow = 0
        self.release = asyncio.Event()
        self.release.set()
        self.runner: web.AppRunner | None = None
        self.site: FastSite | None = None

    async def fast_handler(self, request: FastRequest) -> FastResponse:
        self.fast += 1
        await self.release.wait()
        return FastResponse(
            200, b"fast:" + request.body, headers=(("X-Seen", request.headers[b"x-tag"].decode()),)
        )

    async def post(self, request: web.Request) -> web.Response:
        self.slow += 1
        body = await request.read()
        return web.Response(body=b"aiohttp:" + body)

    async def get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str("echo:" + msg.data)
            return ws
        return web.Response(text="get")

    @property
    def url(self) -> str:
        assert self.site is not None
        return f"http://127.0.0.1:{self.site.port}{PATH}"


@pytest.fixture
async def app() -> AsyncIterator[App]:
    a = App()
    webapp = web.Application(client_max_size=1000)
    webapp.router.add_post(PATH, a.post)
    webapp.router.add_get(PATH, a.get)
    a.runner = web.AppRunner(webapp, access_log=None, shutdown_timeout=5)
    await a.runner.setup()
    fast = a.fast_handler
    a.site = FastSite(
        a.runner, "127.0.0.1", 0, route=lambda p: fast if p == PATH else None, max_body=1000
    )
    await a.site.start()
    yield a
    a.release.set()
    await a.runner.cleanup()


async def _raw(port: int, data: bytes, *, until: int = 1) -> bytes:
    """Send ``data`` on one connection; read until ``until`` answers arrived or EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    try:
        while got.count(b"HTTP/1.1 ") < until or not _complete(got):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            got += chunk
    finally:
        writer.close()
    return got


def _complete(data: bytes) -> bool:
    end = data.rfind(b"HTTP/1.1 ")
    head_end = data.find(b"\r\n\r\n", end)
    if head_end < 0:
        return False
    for line in data[end:head_end].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(data) - head_end - 4 >= int(line.split(b":")[1])
    return True


def _post(body: bytes, tag: str = "t", extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nX-Tag: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
        PATH.encode(),
        tag.encode(),
        extra,
        len(body),
        body,
    )


async def test_hot_post_is_served_by_the_fast_path_and_the_rest_by_aiohttp(app: App) -> None:
    # a connection a GET went through stays aiohttp's: one connection per call here
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.post(app.url, data=b"one", headers={"X-Tag": "a"}) as r:
            assert (r.status, await r.read(), r.headers["X-Seen"]) == (200, b"fast:one", "a")
        async with s.get(app.url) as r:
            assert await r.text() == "get"
        async with s.post(app.url + "?q=1", data=b"two", headers={"X-Tag": "b"}) as r:
            assert await r.read() == b"fast:two"  # the query does not change the route
        async with s.post(app.url.replace(PATH, "/other"), data=b"x") as r:
            assert r.status == 404  # aiohttp's router
    assert (app.fast, app.slow) == (2, 0)


async def test_same_url_upgrades_to_websocket(app: App) -> None:
    async with aiohttp.ClientSession() as s, s.ws_connect(app.url) as ws:
        await ws.send_str("hi")
        assert (await ws.receive(timeout=10)).data == "echo:hi"


async def test_keep_alive_and_pipelining_across_the_hand_over(app: App) -> None:
    assert app.site is not None
    get = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % PATH.encode()
    data = await _raw(app.site.port, _post(b"1") + _post(b"2") + get + _post(b"3"), until=4)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"fast:1", b"fast:2", b"get", b"aiohttp:3"]  # aiohttp keeps it after
    assert (app.fast, app.slow) == (2, 1)


async def test_requests_arriving_in_pieces_are_served_whole_and_in_order(app: App) -> None:
    """A head and a body split across reads (the body's length known from the head before the
    body is here), then a pipelined request cut mid-head: each answered once, whole."""
    assert app.site is not None
    first, second = _post(b"a" * 300, tag="one"), _post(b"b" * 40, tag="two")
    stream = first + second
    cuts = [20, len(first) - 310, len(first) - 150, len(first) + 30, len(stream)]
    reader, writer = await asyncio.open_connection("127.0.0.1", app.site.port)
    try:
        start = 0
        for cut in cuts:
            writer.write(stream[start:cut])
            await writer.drain()
            await asyncio.sleep(0.02)  # separate reads on the server (not asserted)
            start = cut
        got = b""
        while got.count(b"HTTP/1.1 ") < 2 or not _complete(got):
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk, f"connection closed after {got!r}"
            got += chunk
    finally:
        writer.close()
    answers = [part.split(b"\r\n\r\n", 1) for part in got.split(b"HTTP/1.1 ")[1:]]
    assert [body for _, body in answers] == [b"fast:" + b"a" * 300, b"fast:" + b"b" * 40]
    assert [b"X-Seen: one" in answers[0][0], b"X-Seen: two" in answers[1][0]] == [True, True]
    assert (app.fast, app.slow) == (2, 0)


async def test_a_connection_s_requests_share_one_task_that_ends_with_the_connection() -> None:
    """One task per connection, not per request: a connection's requests in turn are answered
    by the same task (another connection has its own), and that task ends when the connection
    closes, is handed to aiohttp, or the server drains while it waits."""
    tasks: list[asyncio.Task[object] | None] = []

    async def fast(request: FastRequest) -> FastResponse:
        tasks.append(asyncio.current_task())
        return FastResponse(200, b"ok")

    async def get(request: web.Request) -> web.Response:
        return web.Response(text="get")

    webapp = web.Application()
    webapp.router.add_get(PATH, get)
    runner = web.AppRunner(webapp, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = FastSite(runner, "127.0.0.1", 0, route=lambda p: fast, max_body=100)
    await site.start()

    async def ended(task: asyncio.Task[object] | None) -> bool:
        for _ in range(500):  # bounded: a few loop turns are enough
            if task is not None and task.done():
                return True
            await asyncio.sleep(0.01)
        return False

    try:
        conns = [await asyncio.open_connection("127.0.0.1", site.port) for _ in range(3)]
        for reader, writer in conns:
            for _ in range(3):
                writer.write(_post(b"x"))
                assert (await asyncio.wait_for(reader.readuntil(b"ok"), 10)).startswith(
                    b"HTTP/1.1 200 "
                )
        assert len(tasks) == 9 and len(set(tasks)) == 3
        assert tasks[0] is tasks[1] is tasks[2] and not any(t.done() for t in tasks if t)
        closed, handed, idle = (conn[1] for conn in conns)
        closed.close()  # the client goes away while its task waits
        assert await ended(tasks[0])
        handed.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % PATH.encode())
        assert (await asyncio.wait_for(conns[1][0].readuntil(b"get"), 10)).endswith(b"get")
        assert await ended(tasks[3])  # aiohttp serves the connection from then on
        assert not tasks[6] or not tasks[6].done()
        await runner.cleanup()  # the drain closes the idle connection: its task ends
        assert await ended(tasks[6])
        handed.close()
        idle.close()
    finally:
        await runner.cleanup()


async def test_header_limits_answer_431_and_odd_requests_go_to_aiohttp(app: App) -> None:
    assert app.site is not None
    huge = _post(b"x", extra=b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 8000) for i in range(120)))
    assert (await _raw(app.site.port, huge)).startswith(b"HTTP/1.1 431 ")
    # a body over the limit, chunked, duplicated headers, HTTP/1.0: aiohttp's own answers
    too_big = await _raw(app.site.port, _post(b"y" * 2000))
    assert too_big.startswith(b"HTTP/1.1 413 ")
    chunked = (
        b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        % PATH.encode()
    )
    assert (await _raw(app.site.port, chunked)).endswith(b"aiohttp:ab")
    dup = _post(b"zz", extra=b"Content-Length: 2\r\n")
    assert not (await _raw(app.site.port, dup)).endswith(b"fast:zz")
    assert app.fast == 0


async def test_an_answer_in_flight_is_delivered_through_shutdown(app: App) -> None:
    assert app.site is not None and app.runner is not None
    app.release.clear()
    pending = asyncio.create_task(_raw(app.site.port, _post(b"late")))
    while app.fast == 0:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(app.runner.cleanup())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # draining: waits for the answer in flight
    app.release.set()
    answer = await asyncio.wait_for(pending, 10)
    assert answer.endswith(b"fast:late") and b"Connection: close" in answer
    await asyncio.wait_for(stopping, 10)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", app.site.port)


async def test_an_idle_fast_connection_is_closed_after_the_keepalive() -> None:
    webapp = web.Application()
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()

    async def fast(request: FastRequest) -> FastResponse:
        return FastResponse(200, b"ok")

    site = FastSite(runner, "127.0.0.1", 0, route=lambda p: fast, max_body=100, keepalive=0.3)
    await site.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"ok"), 10)
        assert first.startswith(b"HTTP/1.1 200 ")
        # then idle: the server closes it (EOF) within a few sweeps
        assert await asyncio.wait_for(reader.read(100), 10) == b""
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_failing_handler_answers_500_and_logs_no_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The front's last resort: 500 and the connection closed; the log line never holds the
    path (a gateway's path holds the client's API key)."""
    webapp = web.Application()
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()

    async def broken(request: FastRequest) -> FastResponse:
        raise RuntimeError("handler bug")

    site = FastSite(runner, "127.0.0.1", 0, route=lambda p: broken, max_body=100)
    await site.start()
    try:
        secret = "rn_live_0123456789abcdefSECRET"
        with caplog.at_level("ERROR", logger="relaynet.transport"):
            got = await _raw(
                site.port,
                b"POST /v1/eth/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                % secret.encode(),
            )
        assert got.startswith(b"HTTP/1.1 500 ")
        assert any("unexpected failure" in r.getMessage() for r in caplog.records)
        assert secret not in caplog.text
    finally:
        await runner.cleanup()


@pytest.mark.slow  # runs openssl for a certificate
async def test_tls_front_serves_fast_posts_and_hands_the_rest_to_aiohttp(tmp_path: Path) -> None:
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def get(request: web.Request) -> web.Response:
        return web.Response(text="aiohttp-get")

    async def fast(request: FastRequest) -> FastResponse:
        return FastResponse(200, b"fast:" + request.body)

    webapp = web.Application()
    webapp.router.add_get(PATH, get)
    runner = web.AppRunner(webapp, access_log=None)
    await runner.setup()
    site = FastSite(
        runner,
        "127.0.0.1",
        0,
        route=lambda p: fast if p == PATH else None,
        max_body=100,
        ssl_context=server_ctx,
    )
    await site.start()
    client = HttpClient(ssl_context=client_ctx)
    try:
        url = f"https://localhost:{site.port}{PATH}"
        answer = await client.request(client.route("POST", url), b"tls", within=10)
        assert (answer.status, answer.body) == (200, b"fast:tls")
        got = await client.request(client.route("GET", url), b"", within=10)
        assert got.body == b"aiohttp-get"  # the upgrade-style hand-over works under TLS too
    finally:
        await client.close()
        await runner.cleanup()


def test_a_request_target_is_parsed_and_routed_once_and_the_table_is_bounded() -> None:
    from transport import fastserve

    asked: list[str] = []

    async def handler(request: FastRequest) -> FastResponse:
        return FastResponse(200, b"")

    def route(path: str) -> fastserve.Handler | None:
        asked.append(path)
        return handler if path == PATH else None

    front = fastserve.FastFront(route, lambda: asyncio.Protocol())
    assert front.target(b"/v1/relay?a=1&b=%20") == (PATH, "a=1&b=%20", handler)
    assert front.target(b"/v1/relay?a=1&b=%20")[2] is handler
    assert front.target(b"/other") == ("/other", "", None)
    assert asked == [PATH, "/other"]  # each target's route asked once
    for i in range(fastserve._TARGETS_KEPT + 10):
        front.target(b"/v1/relay?n=%d" % i)
    assert len(front.targets) <= fastserve._TARGETS_KEPT
