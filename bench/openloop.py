"""A constant-rate (open-loop) HTTP load generator: latency at a fixed request rate.

wrk's ``delay()`` pauses every connection alike, so requests leave in bursts and a "half of
peak" run measures queueing of its own making. Here request ``i`` is *due* at ``t0 + i / rate``
whatever happened to the earlier ones; it goes out on an idle keep-alive connection (a new one
when none is idle, up to ``--connections``; past that it waits for one), and its latency counts
from when it was due — a server that falls behind sees its queueing in the figures
(no coordinated omission).

    python -m bench.openloop URL --rate 500 --duration 5 --body '{"jsonrpc":"2.0",...}'

Prints one JSON line: rate asked and achieved, p50/p90/p99 in ms, sent, answered, bad (non-200
or no ``"result"``), late (sent more than 1 ms after due: the generator itself fell behind).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import cast

import httptools

__all__ = ["Result", "run"]


@dataclass
class Result:
    rate: float
    achieved: float
    latencies: list[float] = field(default_factory=list)  # seconds, from due to answered
    sent: int = 0
    bad: int = 0
    late: int = 0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int]:
        return {
            "rate": self.rate,
            "achieved": round(self.achieved, 1),
            "p50_ms": round(self.quantile(0.5) * 1000, 3),
            "p90_ms": round(self.quantile(0.9) * 1000, 3),
            "p99_ms": round(self.quantile(0.99) * 1000, 3),
            "sent": self.sent,
            "answered": len(self.latencies),
            "bad": self.bad,
            "late": self.late,
        }


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request at a time; calls ``done`` with each answer."""

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due = 0.0
        self.body = bytearray()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.gen.lost(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        ok = self.parser.get_status_code() == 200 and b'"result"' in self.body
        self.body = bytearray()
        self.gen.answered(self, self.due, ok)

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)


class _Generator:
    def __init__(self, url: str, body: bytes, connections: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.max_connections = connections
        self.idle: collections.deque[_Conn] = collections.deque()
        self.opening = 0
        self.open: set[_Conn] = set()
        self.waiting: collections.deque[float] = collections.deque()  # due times
        self.result: Result | None = None
        self.expected = -1  # answers to wait for, once every request went out
        self.finished = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def dispatch(self, due: float) -> None:
        assert self.result is not None
        self.result.sent += 1
        if self.loop.time() - due > 0.001:
            self.result.late += 1
        if self.idle:
            self.idle.pop().send(self.request, due)
            return
        self.waiting.append(due)
        if len(self.open) + self.opening < self.max_connections:
            self.opening += 1
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Conn(self), self.host, self.port
            )
        except OSError:
            return
        finally:
            self.opening -= 1
        self.open.add(conn)
        self._next(conn)

    def _next(self, conn: _Conn) -> None:
        if self.waiting:
            conn.send(self.request, self.waiting.popleft())
        else:
            self.idle.append(conn)

    def answered(self, conn: _Conn, due: float, ok: bool) -> None:
        assert self.result is not None
        if ok:
            self.result.latencies.append(self.loop.time() - due)
        else:
            self.result.bad += 1
        if len(self.result.latencies) + self.result.bad == self.expected:
            self.finished.set()
        self._next(conn)

    def lost(self, conn: _Conn) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    async def run(self, rate: float, duration: float) -> Result:
        self.result = Result(rate=rate, achieved=0.0)
        interval = 1.0 / rate
        start = self.loop.time() + 0.01
        total = int(rate * duration)
        i = 0
        while i < total:
            now = self.loop.time()
            while i < total and start + i * interval <= now:
                self.dispatch(start + i * interval)
                i += 1
            await asyncio.sleep(max(0.0, start + i * interval - self.loop.time()))
        self.expected = total
        if len(self.result.latencies) + self.result.bad < total:
            with contextlib.suppress(TimeoutError):  # answers still in flight: 5 s at most
                await asyncio.wait_for(self.finished.wait(), 5.0)
        self.result.achieved = len(self.result.latencies) / max(1e-9, duration)
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.close()
        return self.result


async def run(
    url: str, body: bytes, *, rate: float, duration: float, connections: int = 64
) -> Result:
    """Send ``rate`` requests per second for ``duration`` seconds; latencies from due time."""
    return await _Generator(url, body, connections).run(rate, duration)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64, help="most connections open")
    parser.add_argument("--body", default='{"jsonrpc":"2.0","id":1,"method":"x","params":[]}')
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(
            args.url,
            args.body.encode(),
            rate=args.rate,
            duration=args.duration,
            connections=args.connections,
        )
    )
    print(json.dumps(result.summary()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
