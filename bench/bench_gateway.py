"""Gateway throughput, added latency and cache-hit speed (DESIGN §6 "throughput", "latency",
"cache hit"), all measured in one run on the same machine.

Paths, each behind its own process, servers pinned to CPU 0 and ``wrk`` to CPU 1 (taskset):

* **anvil (direct)** — the backend;
* **bare forwarder** — a one-hop aiohttp forwarder (uvloop, pooled keep-alive) to anvil: the
  throughput reference;
* **gateway full path** — ``relaynet gateway run`` (cache off) → ``relaynet relayer run`` →
  anvil: key check, limits, session, selection, EIP-712 signing, receipt check on the gateway;
  every relayer check, durable log and receipt on the relayer. Bar: ≥ 50 % of the forwarder;
* **gateway quorum 2** — the full path with ``?quorum=2`` (DESIGN §4): two legs on distinct
  suppliers, both receipts checked in full, answered when the bytes agree (the cost of a
  quorum read against a plain one; needs two distinct suppliers in the session);
* **trivial handler** — an aiohttp handler answering a constant: the cache-hit reference;
* **gateway cache hit** — a final answer (``eth_chainId``) served from the gateway's cache once
  two suppliers agreed. Bar: ≥ 70 % of the trivial handler.

Added latency: p50 at half of the full path's peak rate (an open-loop aiohttp client), gateway
path minus anvil direct, divided by the two hops. ``wrk`` is required (``apt-get install wrk``).

    python -m bench gateway
    python -m bench.bench_gateway --duration 5 --connections 32 --rounds 2

Each path and its reference alternate ``--rounds`` times and the best round of each is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import openloop

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
READ = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
FINAL = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def serve_forwarder(port: int, target: str) -> None:
    import aiohttp
    import uvloop
    from aiohttp import web

    async def build() -> web.Application:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            async with session.post(
                target, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                return web.Response(
                    status=resp.status, body=await resp.read(), content_type="application/json"
                )

        app = web.Application()
        app.router.add_post("/", forward)
        return app

    uvloop.install()
    web.run_app(build(), host="127.0.0.1", port=port, access_log=None, print=None)


def serve_trivial(port: int) -> None:
    import uvloop
    from aiohttp import web

    answer = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _pin(pid: int | None, cpu: str) -> None:
    if pid and shutil.which("taskset"):
        subprocess.run(["taskset", "-apc", cpu, str(pid)], capture_output=True, check=False)


def _spawn(func: str, *args: str) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.bench_gateway import "
        f"{func}; {func}(*{args!r}[:1] and (int({args!r}[0]),) + {args!r}[1:])"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(REPO),
    )


def _wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(
    name: str, url: str, body: bytes, connections: int, duration: float, workdir: Path
) -> Result:
    script = workdir / f"{abs(hash(name))}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body.decode()}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, int(duration))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: .*?(\d+) timeout", out)
    return Result(
        name,
        rps,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        (int(errors.group(1)) if errors else 0) + (int(sock.group(1)) if sock else 0),
    )


def p50_at(url: str, body: bytes, rate: float, duration: float) -> float:
    """p50 in ms at a constant rate (:mod:`bench.openloop`: latency from when each was due)."""
    result = asyncio.run(openloop.run(url, body, rate=rate, duration=duration))
    return result.quantile(0.5) * 1000


def receipt_check_us(n: int = 2000) -> float:
    """Microseconds to check one receipt (sha256 of the answer + ed25519 verify)."""
    import hashlib

    from protocol.keys import ReceiptKey
    from protocol.relay import sign_receipt, verify_receipt

    key = ReceiptKey.generate()
    body = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"ab" * 64 + b'"}'
    digest = hashlib.sha256(b"d").digest()
    rhash = hashlib.sha256((200).to_bytes(2, "big") + body).digest()
    sig = sign_receipt(key, digest, 0, rhash)
    started = time.perf_counter()
    for _ in range(n):
        hashlib.sha256((200).to_bytes(2, "big") + body).digest()
        verify_receipt(key.public_key, digest, 0, rhash, sig)
    return (time.perf_counter() - started) / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_gateway")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): gateway benchmark skipped")
        return
    sys.path.insert(0, str(REPO))
    from ledger.anvil import free_port
    from tests.support.gateway_net import SERVICE, post, start_gateway_proc, start_net

    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    net = start_net(tmp, relayers=2, start_gateway=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        full = start_gateway_proc(
            net,
            name="gw-nocache",
            tables={"cache": {"enabled": False}, "relay": {"hedge_delay": 1.0}},
        )
        cached = start_gateway_proc(net, name="gw-cache")
        key_full = net.key
        key_cached = __import__("tests.support.gateway_proc", fromlist=["add_key"]).add_key(
            cached.files, {SERVICE: net.app_hex}
        )
        fport, tport = free_port(), free_port()
        procs.append(_spawn("serve_forwarder", str(fport), net.backend.url))
        procs.append(_spawn("serve_trivial", str(tport)))
        _wait_port(fport)
        _wait_port(tport)
        time.sleep(0.6)  # keys reloaded
        for pid in [
            net.backend.pid,
            *(r.pid for r in net.relayers),
            full.pid,
            cached.pid,
            *(p.pid for p in procs),
        ]:
            _pin(pid, "0")
        full_url = full.rpc_url(SERVICE, key_full)
        cached_url = cached.rpc_url(SERVICE, key_cached)
        for _ in range(30):  # two suppliers must agree before the answer is cached
            post(cached_url, FINAL)
        quorum_ok = post(full_url + "?quorum=2", READ)[0] == 200  # two distinct suppliers
        c, d = args.connections, args.duration
        paths = [
            ("anvil (direct)", net.backend.url, READ),
            ("bare forwarder", f"http://127.0.0.1:{fport}/", READ),
            ("gateway full path", full_url, READ),
            ("gateway quorum 2", full_url + "?quorum=2", READ),
            ("trivial handler", f"http://127.0.0.1:{tport}/", FINAL),
            ("gateway cache hit", cached_url, FINAL),
        ]
        # each path and its reference alternate ``rounds`` times, so that a noisy neighbour on
        # the shared machine hits both alike; the best round of each is kept
        by: dict[str, Result] = {}
        for _ in range(max(1, args.rounds)):
            for name, url, body in paths:
                r = wrk(name, url, body, c, d, tmp)
                if name not in by or r.rps > by[name].rps:
                    by[name] = r
        results = [by[name] for name, _, _ in paths]
        half = by["gateway full path"].rps / 2
        lat = {
            "anvil (direct)": p50_at(net.backend.url, READ, half, 3.0),
            "bare forwarder": p50_at(f"http://127.0.0.1:{fport}/", READ, half, 3.0),
            "gateway full path": p50_at(full_url, READ, half, 3.0),
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        net.stop()
    print(f"{'path':22} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r.name:22} {r.rps:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d}")
    ratio = by["gateway full path"].rps / by["bare forwarder"].rps
    cache_ratio = by["gateway cache hit"].rps / by["trivial handler"].rps
    added = (lat["gateway full path"] - lat["anvil (direct)"]) / 2
    print(f"\nfull path / bare forwarder : {ratio:6.1%}  (bar >= 50%)")
    if quorum_ok:
        q = by["gateway quorum 2"]
        plain = by["gateway full path"]
        print(
            f"quorum 2 / plain read     : {q.rps / plain.rps:6.1%} of the throughput, "
            f"p50 {q.p50_ms:.2f} ms vs {plain.p50_ms:.2f} ms"
        )
    else:
        print("quorum 2: the session has one distinct supplier (refused, as it should be)")
    print(f"cache hit / trivial handler: {cache_ratio:6.1%}  (bar >= 70%)")
    print(
        f"p50 at half peak ({half:.0f} req/s): anvil {lat['anvil (direct)']:.2f} ms, "
        f"forwarder {lat['bare forwarder']:.2f} ms, gateway path "
        f"{lat['gateway full path']:.2f} ms -> added per hop {added:.2f} ms (bar <= 1 ms)"
    )
    check = receipt_check_us()
    per_request = 1e6 / by["gateway full path"].rps
    print(
        f"receipt check: {check:.0f} us per answer = {check / per_request:.1%} of one full-path "
        "request's CPU budget -> the gateway checks every receipt (receipt_check = 1.0)"
    )
    print(f"(servers pinned to CPU 0, wrk to CPU 1; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
