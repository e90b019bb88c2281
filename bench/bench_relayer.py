"""Relayer throughput and added latency (DESIGN §6 "throughput" and "latency").

Everything in one run, against the same anvil backend:

* **anvil** — the backend itself (what every path below ends at);
* **forwarder** — a bare one-hop aiohttp forwarder (uvloop, keep-alive client pool): the bar's
  reference;
* **relayer** — ``relaynet relayer run`` as a subprocess: header decode, every check, EIP-712
  digest, ecrecover, sha256, ed25519 receipt, ``os.write`` to the session log with group-commit
  fsync — the full path.

Each relay must be a distinct signed request (replays are refused), so requests are signed in
advance and wrk's Lua script walks through them. Load: ``wrk`` pinned with ``taskset`` (CPU 1;
the server under test on CPU 0) when installed, else an aiohttp load generator. Peak is measured
at ``--connections`` (default 32) for ``--duration`` seconds; added latency per hop at 1
connection (p50/p99 minus the layer below). Bar: relayer ≥ 50 % of the forwarder's relays/s.

    python -m bench relayer
    python -m bench.bench_relayer --duration 5 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench import bench_gateway

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'


@dataclass
class Result(bench_gateway.Result):
    """bench_gateway's row, and how many relays were sent."""

    requests: int
    cpu_ms: float = 0.0  # the relayer's CPU (user+sys, every thread) per relay
    sys_ms: float = 0.0


# --- the bare forwarder (runs as its own process) ---------------------------------------------


def serve_forwarder(port: int, target: str) -> None:
    """A minimal aiohttp forwarder: POST body → target → body back (the reference hop)."""
    import uvloop
    from aiohttp import web

    from bench.bench_suite import forwarder_app

    uvloop.install()
    web.run_app(
        forwarder_app(target, "/v1/relay"), host="127.0.0.1", port=port, access_log=None, print=None
    )


# --- load generation ---------------------------------------------------------------------------


def _lua(requests: list[tuple[str, bytes]], path: str) -> str:
    lines = ["local reqs = {"]
    for header, body in requests:
        lines.append(f'{{"{header}", "{body.decode().replace(chr(34), chr(92) + chr(34))}"}},')
    lines += [
        "}",
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  if i > #reqs then i = 1 end",
        "  local r = reqs[i]",
        f'  return wrk.format("POST", "{path}", {{["Relay-Request"] = r[1], '
        '["Content-Type"] = "application/json"}, r[2])',
        "end",
    ]
    return "\n".join(lines)


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(
    name: str,
    url: str,
    requests: list[tuple[str, bytes]],
    connections: int,
    duration: float,
    cpu: str | None,
    workdir: Path,
) -> Result:
    script = workdir / f"{name.replace(' ', '_')}.lua"
    script.write_text(_lua(requests, "/v1/relay" if url.endswith("/v1/relay") else "/"))
    base = url.removesuffix("/v1/relay")
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        base,
    ]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")

    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return Result(name, rps, pct("50"), pct("99"), errors, total)


async def _aiohttp_load(
    name: str, url: str, requests: list[tuple[str, bytes]], connections: int, duration: float
) -> Result:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    index = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal index, errors
        while time.perf_counter() < deadline and index < len(requests):
            header, body = requests[index]
            index += 1
            t0 = time.perf_counter()
            async with session.post(
                url,
                data=body,
                headers={"Relay-Request": header, "Content-Type": "application/json"},
            ) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
        await asyncio.gather(*(worker(s) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        name,
        len(latencies) / elapsed,
        statistics.median(latencies),
        latencies[int(len(latencies) * 0.99) - 1],
        errors,
        len(latencies),
    )


def _load(
    name: str,
    url: str,
    requests: list[tuple[str, bytes]],
    connections: int,
    duration: float,
    workdir: Path,
    use_wrk: bool,
) -> Result:
    if use_wrk:
        return _wrk(name, url, requests, connections, duration, "1", workdir)
    return asyncio.run(_aiohttp_load(name, url, requests, connections, duration))


# --- set-up: chain, network, relayer -------------------------------------------------------------


def _sign_many(count: int, ctx: dict[str, object]) -> list[tuple[str, bytes]]:
    import hashlib

    from protocol.keys import AccountKey
    from protocol.relay import (
        Domain,
        RelayHeader,
        encode_relay_request,
        request_digest_of_bytes,
        sign_request,
    )

    app: AccountKey = ctx["app"]  # type: ignore[assignment]
    domain: Domain = ctx["domain"]  # type: ignore[assignment]
    phash = hashlib.sha256(PAYLOAD).digest()
    out = []
    for _ in range(count):
        header = RelayHeader(
            1,
            "devnet",
            app.address,
            app.address,
            ctx["supplier"],  # type: ignore[arg-type]
            ctx["n"],  # type: ignore[arg-type]
            phash,
            os.urandom(16),
            0,
            1,
        )
        hb = header.encode()
        sig = sign_request(request_digest_of_bytes(hb, domain), app)
        out.append((encode_relay_request(hb, sig), PAYLOAD))
    return out


def _start(cmd: list[str], cpu: str | None, log: Path) -> subprocess.Popen[bytes]:
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(  # noqa: S310 — a loopback http URL
                url, data=PAYLOAD, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=1):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _with_cpu(pid: int, run: Callable[[], Result]) -> Result:
    """``run()``, a load run against the relayer, with its CPU per request (user+sys of every
    thread of ``pid``)."""
    from bench.bench_suite import _cpu_seconds

    user0, sys0 = _cpu_seconds(pid)
    result = run()
    user1, sys1 = _cpu_seconds(pid)
    n = max(1, result.requests)
    result.cpu_ms = ((user1 - user0) + (sys1 - sys0)) * 1000 / n
    result.sys_ms = (sys1 - sys0) * 1000 / n
    return result


def run(
    duration: float, connections: int, rounds: int = 2, profile: Path | None = None
) -> tuple[list[Result], dict[str, float]]:
    from ledger.anvil import AnvilProcess, free_port
    from ledger.bootstrap import AppSpec, ServiceSpec
    from protocol.encoding import address_from_hex
    from protocol.keys import AccountKey, ReceiptKey
    from protocol.relay import Domain
    from session.windows import session_of
    from tests.support.relayer_net import Relayer, stake_relayers
    from tests.support.relayer_proc import RelayerProcess, ServiceBackend

    use_wrk = shutil.which("wrk") is not None
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-relayer-") as tmp_name,
        AnvilProcess() as chain,
        AnvilProcess() as backend,
    ):
        tmp = Path(tmp_name)
        supplier, receipt, app = AccountKey.generate(), ReceiptKey.generate(), AccountKey.generate()
        network, (files,) = stake_relayers(
            tmp,
            chain.url,
            [Relayer(supplier, {"devnet": ServiceBackend(backend.url)}, receipt)],
            services=[ServiceSpec("devnet")],
            apps=[AppSpec(app, "devnet", stake=10**26)],
            claims={"enabled": False},
            token_funding=10**26 * 2,
        )
        if shutil.which("taskset"):  # anvil shares CPU 1 with the load generator
            subprocess.run(
                ["taskset", "-pc", "1", str(backend.pid)], capture_output=True, check=False
            )
        fwd_port = free_port()
        forwarder = _start(
            [
                sys.executable,
                "-m",
                "bench.bench_relayer",
                "--serve-forwarder",
                str(fwd_port),
                backend.url,
            ],
            "0",
            tmp / "forwarder.log",
        )
        relayer = RelayerProcess(files)
        try:
            relayer.start()
            relayer_pid = relayer.pid
            assert relayer_pid is not None
            if shutil.which("taskset") and relayer.pid:
                subprocess.run(
                    ["taskset", "-apc", "0", str(relayer.pid)], capture_output=True, check=False
                )
            _wait_http(f"http://127.0.0.1:{fwd_port}/v1/relay")
            d = network.deployment
            shape = d.shape
            ctx: dict[str, object] = {
                "app": app,
                "supplier": supplier.address,
                "domain": Domain(d.chain_id, address_from_hex(d.settlement)),
                "n": session_of(chain.block_number(), shape.B0, shape.L),
            }
            plain = [("", PAYLOAD)] * 1000
            fwd_url = f"http://127.0.0.1:{fwd_port}/v1/relay"
            _load("warm", fwd_url, plain, connections, 1, tmp, use_wrk)
            _load("warm", relayer.relay_url, _sign_many(500, ctx), 4, 1, tmp, use_wrk)
            # peak: the two paths alternate (``rounds`` times) so that a noisy neighbour hits
            # both alike; the best round of each is kept
            best: dict[str, Result] = {}

            def keep(r: Result) -> None:
                if r.name not in best or r.rps > best[r.name].rps:
                    best[r.name] = r

            for _ in range(rounds):
                keep(
                    _load("anvil (direct)", backend.url, plain, connections, duration, tmp, use_wrk)
                )
                fwd = _load("bare forwarder", fwd_url, plain, connections, duration, tmp, use_wrk)
                keep(fwd)
                # enough distinct requests for the relayer's rate, which may beat the forwarder's
                # (a replayed one is refused cheaply and would flatter the figures)
                rate = max(fwd.rps, best["relayer"].rps if "relayer" in best else 0, 5000)
                signed = _sign_many(int(rate * (duration + 1) * 1.5) + 2000, ctx)
                url = relayer.relay_url
                keep(
                    _with_cpu(
                        relayer_pid,
                        partial(_load, "relayer", url, signed, connections, duration, tmp, use_wrk),
                    )
                )
            if profile is not None:  # a run of its own: py-spy's pauses stay out of the figures
                from bench.bench_suite import _profile

                signed = _sign_many(int(best["relayer"].rps * (duration + 1) * 1.5) + 2000, ctx)
                spies = _profile({"relayer": relayer_pid}, duration, profile)
                _load("profiled", relayer.relay_url, signed, connections, duration, tmp, use_wrk)
                for spy in spies:
                    spy.wait(timeout=60)
            # added latency at low load (1 connection)
            one = max(1.0, duration / 2)
            for _ in range(rounds):
                keep(_load("anvil c=1", backend.url, plain, 1, one, tmp, use_wrk))
                fwd1 = _load("bare forwarder c=1", fwd_url, plain, 1, one, tmp, use_wrk)
                keep(fwd1)
                signed1 = _sign_many(int(max(fwd1.rps, 2000) * (one + 1) * 1.5) + 500, ctx)
                keep(
                    _with_cpu(
                        relayer_pid,
                        partial(_load, "relayer c=1", url, signed1, 1, one, tmp, use_wrk),
                    )
                )
            results = list(best.values())
            fsync = _fsync_figures(relayer.metrics_url)
        finally:
            relayer.stop()
            forwarder.terminate()
            forwarder.wait(timeout=10)
    return results, fsync


def _fsync_figures(metrics_url: str) -> dict[str, float]:
    """Group commit, from the relayer's own histograms: rounds, ≤10 ms share, mean batch."""
    import urllib.request

    with urllib.request.urlopen(metrics_url, timeout=5) as resp:  # noqa: S310
        text = resp.read().decode()

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} ([\d.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    rounds = value("relaynet_relayer_log_fsync_seconds_count")
    within = value('relaynet_relayer_log_fsync_seconds_bucket{le="0.01"}')
    records = value("relaynet_relayer_log_fsync_batch_records_sum")
    total = value("relaynet_relayer_log_fsync_seconds_sum")
    return {
        "rounds": rounds,
        "within_10ms": within / rounds if rounds else 0.0,
        "mean_ms": total / rounds * 1000 if rounds else 0.0,
        "mean_batch": records / rounds if rounds else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_relayer", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve-forwarder", nargs=2, metavar=("PORT", "TARGET"))
    parser.add_argument(
        "--profile", default="", help="write a py-spy profile (speedscope) of the relayer here"
    )
    args = parser.parse_args(argv)
    if args.serve_forwarder:
        serve_forwarder(int(args.serve_forwarder[0]), args.serve_forwarder[1])
        return
    profile = Path(args.profile) if args.profile else None
    results, fsync = run(args.duration, args.connections, args.rounds, profile)
    tool = "wrk (taskset CPU 1; servers on CPU 0)" if shutil.which("wrk") else "aiohttp load"
    print(
        f"load: {tool}, {args.connections} connections, {args.duration:.0f} s; payload eth_chainId"
    )
    print(
        f"{'path':<22} {'relays/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8} {'requests':>9}"
    )
    for r in results:
        print(
            f"{r.name:<22} {r.rps:>10.0f} {r.p50_ms:>8.3f} {r.p99_ms:>8.3f} {r.errors:>8} "
            f"{r.requests:>9}"
        )
    for r in results:
        if r.cpu_ms:
            print(f"relayer CPU per relay, {r.name}: {r.cpu_ms:.3f} ms (sys {r.sys_ms:.3f})")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    by = {r.name: r for r in results}
    ratio = by["relayer"].rps / by["bare forwarder"].rps
    print(f"relayer / bare forwarder throughput: {ratio:.0%} (bar >= 50 %)")
    a, f, rl = by["anvil c=1"], by["bare forwarder c=1"], by["relayer c=1"]
    print(
        f"added p50 at 1 connection: forwarder hop {f.p50_ms - a.p50_ms:.3f} ms, "
        f"relayer hop {rl.p50_ms - a.p50_ms:.3f} ms (bar <= 1 ms per hop)"
    )
    print(
        f"added p99 at 1 connection: forwarder hop {f.p99_ms - a.p99_ms:.3f} ms, "
        f"relayer hop {rl.p99_ms - a.p99_ms:.3f} ms"
    )
    print(
        f"group commit: {fsync['rounds']:.0f} fsync rounds, {fsync['within_10ms']:.1%} within "
        f"10 ms, mean {fsync['mean_ms']:.2f} ms, {fsync['mean_batch']:.1f} relays per fsync"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
