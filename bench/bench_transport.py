"""CPU per request of ``transport/`` against aiohttp and a bare httptools server, same run.

Server side: each server answers a trivial ``POST /`` with a fixed JSON body, in its own process
(pinned to CPU 0 when there are two), driven by ``wrk -t1 -c16`` (on CPU 1); the row is the
server process's CPU time (user + system, from ``/proc``) per answered request.

* ``front``: :class:`transport.fastserve.FastSite` with a trivial fast route (what the
  gateway's and relayer's hot ``POST`` routes stand on);
* ``aiohttp``: an aiohttp handler (``await request.read()``, ``web.Response``);
* ``httptools``: a bare asyncio Protocol over httptools (the floor: parse, write, nothing else);
* ``httptools+task``: the same answering from a task per request (an async handler's floor).

Client side: this process sends ``--requests`` calls (``--connections`` at once, keep-alive) to
the bare server with :class:`transport.http1.HttpClient` and with an ``aiohttp.ClientSession``;
the row is this process's CPU time per call.

    python -m bench.bench_transport [--seconds 3] [--requests 20000] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["main"]

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'
SERVERS = ("front", "aiohttp", "httptools+task", "httptools")


# --- servers (each in its own process: ``python -m bench.bench_transport --serve KIND PORT``) --


class _Bare:
    """The floor: httptools parses, every complete request gets the fixed answer."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(ANSWER), ANSWER)
    )

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(self.RESPONSE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def eof_received(self) -> None:
        return None


class _BareTask(_Bare):
    """The floor of an async handler: the same, answering from a task per request."""

    def on_message_complete(self) -> None:
        asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        if self.transport is not None:
            self.transport.write(self.RESPONSE)


async def _serve(kind: str, port: int) -> None:
    from aiohttp import web

    from transport.fastserve import FastRequest, FastResponse, FastSite

    if kind.startswith("httptools"):
        loop = asyncio.get_running_loop()
        factory = _BareTask if kind == "httptools+task" else _Bare
        server = await loop.create_server(factory, "127.0.0.1", port)  # type: ignore[arg-type]
        await server.serve_forever()
        return

    async def trivial(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    async def fast(request: FastRequest) -> FastResponse:
        return FastResponse(200, ANSWER)

    app = web.Application()
    app.router.add_post("/", trivial)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if kind == "front":
        site: web.TCPSite = FastSite(
            runner, "127.0.0.1", port, route=lambda p: fast if p == "/" else None, max_body=1 << 20
        )
    else:
        site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    await asyncio.Event().wait()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(kind: str, cpu: str | None):  # type: ignore[no-untyped-def]
    port = _free_port()
    cmd = [sys.executable, "-m", "bench.bench_transport", "--serve", kind, str(port)]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    proc = subprocess.Popen(cmd)
    try:
        for _ in range(300):  # 30 s at most
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the {kind} server did not start")
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


_LUA = 'wrk.method = "POST"\nwrk.body = \'%s\'\nwrk.headers["Content-Type"] = "application/json"\n'


def _server_row(kind: str, seconds: float, connections: int, cpus: tuple[str | None, str | None]):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp, _server(kind, cpus[0]) as (port, pid):
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA % BODY.decode())
        wrk = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
        if cpus[1] is not None:
            wrk = ["taskset", "-c", cpus[1], *wrk]
        url = f"http://127.0.0.1:{port}/"
        subprocess.run([*wrk[:-2], "-d1s", *wrk[-2:], url], capture_output=True, check=True)
        before = _cpu(pid)
        out = subprocess.run([*wrk, url], capture_output=True, text=True, check=True).stdout
        used = _cpu(pid) - before
    requests = int(out.split(" requests in ")[0].split()[-1])
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"{kind}: wrk saw errors:\n{out}")
    rps = float(out.split("Requests/sec:")[1].split()[0])
    return rps, used / requests * 1e6


# --- clients -------------------------------------------------------------------------------------


async def _drive(call: Callable[[], Awaitable[bytes]], requests: int, connections: int) -> float:
    """CPU µs of this process per call, ``connections`` calls at once."""
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if await call() != ANSWER:
                raise RuntimeError("wrong answer")

    await asyncio.gather(*(worker() for _ in range(connections)))  # warm the pool
    left = requests
    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return (time.process_time() - start) / requests * 1e6


async def _client_rows(port: int, requests: int, connections: int) -> dict[str, float]:
    import aiohttp

    from transport.http1 import HttpClient

    url = f"http://127.0.0.1:{port}/"
    client = HttpClient()
    route = client.route("POST", url, {"Content-Type": "application/json"})

    async def ours() -> bytes:
        return (await client.request(route, BODY, within=10)).body

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )

    async def theirs() -> bytes:
        async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
            return await r.read()

    try:
        rows = {}
        for name, call in (("http1 client", ours), ("aiohttp client", theirs)):
            rows[name] = await _drive(call, requests, connections)
        return rows
    finally:
        await client.close()
        await session.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_transport", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk time per server row")
    parser.add_argument("--requests", type=int, default=20_000, help="calls per client row")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import uvloop

    if args.serve:
        uvloop.run(_serve(args.serve[0], int(args.serve[1])))
        return
    cpus: tuple[str | None, str | None] = ("0", "1") if (os.cpu_count() or 1) >= 2 else (None, None)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    title = f"server (wrk -t1 -c{args.connections})"
    print(f"{title:28s} {'req/s':>9s} {'CPU µs/req':>11s}")
    floor = None
    for kind in reversed(SERVERS):
        rps, cpu = _server_row(kind, args.seconds, args.connections, cpus)
        floor = floor or cpu
        print(f"{kind:28s} {rps:9,.0f} {cpu:11.1f}  ({cpu / floor:.2f}× httptools)")
    with _server("httptools", cpus[0]) as (port, _):
        if cpus[1] is not None:
            os.sched_setaffinity(0, {int(cpus[1])})
        rows = uvloop.run(_client_rows(port, args.requests, args.connections))
    title = f"client ({args.connections} at once)"
    print(f"{title:28s} {'':>9s} {'CPU µs/call':>11s}")
    for name, cpu in rows.items():
        print(f"{name:28s} {'':>9s} {cpu:11.1f}")


if __name__ == "__main__":
    main()
