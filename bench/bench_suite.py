"""The performance table of the README: one proxy hop's physical limit against our full path.

In one run, on this machine, each forwarding target answering a read the gateway never caches
(``eth_getBalance`` at ``pending``; the trivial handler and the cache hit answer
``eth_chainId``). Every server process is pinned to the servers' CPUs; the table gives CPU
per request per process (user and system), p50 unloaded and at about half the peak rate:

* **anvil direct** — the backend itself;
* **trivial aiohttp** — an aiohttp handler (uvloop) returning a fixed answer: the reference of
  DESIGN §6's cache-hit bar;
* **bare forwarder** — a one-hop aiohttp forwarder (uvloop, keep-alive pool) → anvil: the
  reference of every ratio;
* **nginx proxy_pass** — nginx (one worker, upstream keep-alive) → anvil: the physical limit of
  one proxy hop;
* **gateway → relayer → anvil** — ``relaynet gateway run`` (cache off) signing a relay per call
  to ``relaynet relayer run`` (every check, receipt, durable log) → anvil;
* **gateway cache hit** — the same gateway with its cache on, answering from memory.

Load comes from ``wrk`` (one thread) pinned with ``taskset`` to the last CPU and every server
pinned to the others (when there are at least two CPUs). Peak: ``--connections`` for
``--duration`` seconds after a warm-up; unloaded latency: one connection. Every answer is
checked (HTTP 200 and a JSON-RPC ``result``), so errors never count as throughput. ``wrk``,
``nginx`` and ``taskset`` are required: a missing one stops the run with what to install.

The table's rows run tens of seconds apart and the host's speed drifts between them, so the
run ends with the full-path bar measured in pairs (``--pairs``, :func:`paired`): the forwarder
and the full path loaded in turn, seconds apart; ``--paired N`` runs only that.

    python -m bench suite
    python -m bench.bench_suite --duration 5 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
CALL = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
BODY = json.dumps(CALL, separators=(",", ":")).encode()
# the forwarding rows: a request the gateway never caches (DESIGN §6)
UNCACHED = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_getBalance",
        "params": ["0x" + "11" * 20, "pending"],
    },
    separators=(",", ":"),
).encode()
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'
TOOLS = {"wrk": "wrk", "nginx": "nginx", "taskset": "util-linux"}


class BenchError(RuntimeError):
    """The benchmark cannot run as specified (a tool is missing, a server did not start)."""


@dataclass(frozen=True)
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    idle_p50_ms: float
    half_p50_ms: float  # p50 at about half the peak rate
    requests: int
    errors: int
    cpu_ms: dict[str, float]  # server process -> CPU ms per request at peak
    sys_ms: dict[str, float]  # of which in the kernel (system time)


# --- reference servers (each runs as its own process: `python -m bench.bench_suite --serve …`) --


def forwarder_app(target: str, path: str = "/") -> Any:
    """A minimal aiohttp forwarder: POST body → ``target`` → body back (the reference hop), with
    the same client settings as the relayer's."""
    import aiohttp
    from aiohttp import web

    session: aiohttp.ClientSession | None = None

    async def forward(request: web.Request) -> web.Response:
        assert session is not None
        body = await request.read()
        async with session.post(
            target, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            data = await resp.read()
            return web.Response(body=data, status=resp.status, content_type="application/json")

    async def client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        nonlocal session
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        yield
        await session.close()

    app = web.Application()
    app.cleanup_ctx.append(client_ctx)
    app.router.add_post(path, forward)
    return app


def _serve(kind: str, port: int, target: str) -> None:
    import uvloop
    from aiohttp import web

    async def trivial(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    if kind == "trivial":
        app = web.Application()
        app.router.add_post("/", trivial)
    else:
        app = forwarder_app(target)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- processes ---------------------------------------------------------------------------------


_GIVEN: set[int] = set()  # ports handed out in this run: bind(0) may offer one again


def _free_port() -> int:
    from ledger.anvil import free_port

    for _ in range(100):
        port = free_port()
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise BenchError("no free port on 127.0.0.1 not handed out already")


def _post(url: str, body: bytes = BODY, timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - loopback benchmark servers
        url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _answers(url: str) -> bool:
    """Whether ``url`` answers the JSON-RPC call with HTTP 200 (False while it is starting)."""
    try:
        return _post(url, timeout=1)[0] == 200
    except (urllib.error.URLError, OSError):
        return False


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Procs:
    """Every process this run starts; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
        )
        log.close()
        self.procs.append((name, proc))
        return proc.pid

    def wait(self, name: str, ready: object, timeout: float = 60.0) -> None:
        proc = dict(self.procs)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited ({proc.returncode}):\n{self.tail(name)}")
            if callable(ready) and ready():
                return
            time.sleep(0.1)
        raise BenchError(f"{name} not ready within {timeout}s:\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            lines = (self.workdir / f"{name}.log").read_text(errors="replace").splitlines()
            return "\n".join(lines[-20:])
        return ""

    def pid(self, name: str) -> int:
        return dict(self.procs)[name].pid

    def stop(self, name: str | None = None) -> None:
        from ledger.anvil import stop_child

        for n, proc in list(self.procs):
            if name is not None and n != name:
                continue
            stop_child(proc, 10)
            self.procs.remove((n, proc))


def _pin(pid: int, cpus: str | None) -> None:
    """Pin every thread of ``pid`` and of its descendants (a gateway's forked workers) to
    ``cpus`` (servers away from the load generator)."""
    if cpus is None:
        return
    for each in [pid, *_descendants(pid)]:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", cpus, str(each)], check=True, capture_output=True
        )


# --- wrk ---------------------------------------------------------------------------------------


_LUA = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("bad") end
  io.write(string.format("BENCH p50=%%d p99=%%d requests=%%d bad=%%d errors=%%d\\n",
    latency:percentile(50), latency:percentile(99), summary.requests, n,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout))
end
"""


def _lua_string(data: bytes) -> str:
    return '"' + data.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk(
    url: str,
    *,
    connections: int,
    duration: float,
    cpu: str | None,
    workdir: Path,
    body: bytes = BODY,
) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, requests, bad answers + socket errors)."""
    script = workdir / "bench.lua"
    lua = _LUA % _lua_string(body)
    script.write_text(lua)
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if out.returncode != 0:
        raise BenchError(f"wrk failed on {url}: {out.stderr or out.stdout}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    mine = re.search(r"BENCH p50=(\d+) p99=(\d+) requests=(\d+) bad=(\d+) errors=(\d+)", out.stdout)
    if rps is None or mine is None:
        raise BenchError(f"cannot read wrk's output:\n{out.stdout}")
    p50, p99, requests, bad, errors = (int(x) for x in mine.groups())
    return float(rps.group(1)), p50 / 1000, p99 / 1000, requests, bad + errors


def _open_loop(
    url: str, body: bytes, *, rate: float, duration: float, cpu: str | None
) -> tuple[float, int]:
    """(p50 ms, bad or lost answers) of ``bench.openloop`` sending ``rate`` requests/s (pinned
    to the load CPU). A generator that fell behind (requests sent over 1 ms late) is reported
    on stderr: its p50 then includes its own queueing."""
    cmd = [
        sys.executable,
        "-m",
        "bench.openloop",
        url,
        "--rate",
        f"{max(1.0, rate):.1f}",
        "--duration",
        str(duration),
        "--body",
        body.decode(),
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=False, env=_python_env()
    )
    if out.returncode != 0:
        raise BenchError(f"openloop failed on {url}: {out.stderr or out.stdout}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    if summary["late"] > summary["sent"] // 10:
        print(
            f"  open loop at {rate:,.0f}/s: {summary['late']} of {summary['sent']} sent late",
            file=sys.stderr,
            flush=True,
        )
    return summary["p50_ms"], summary["sent"] - summary["answered"]


# --- the targets -------------------------------------------------------------------------------


def _nginx_conf(workdir: Path, port: int, upstream_port: int) -> Path:
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = workdir / "nginx"
    tmp.mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    return conf


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


@dataclass(frozen=True)
class _Network:
    settlement_url: str
    deployment_json: str
    gateway_key: bytes
    app_hex: str
    relayer_port: int


def _stake(settlement_url: str, relayer_port: int) -> tuple[_Network, bytes, bytes]:
    """Deploy, stake one supplier (its relay URL fixed in advance), one app, one gateway."""
    from ledger.bootstrap import (
        AppSpec,
        GatewaySpec,
        ServiceSpec,
        SupplierSpec,
        bootstrap_network,
        dev_account,
    )
    from protocol.keys import ReceiptKey

    supplier, app, gateway = dev_account(1), dev_account(2), dev_account(3)
    receipt = ReceiptKey.generate()
    network = asyncio.run(
        bootstrap_network(
            settlement_url,
            services=[ServiceSpec("eth")],
            suppliers=[
                SupplierSpec(
                    key=supplier,
                    endpoints={"eth": f"http://127.0.0.1:{relayer_port}/v1/relay"},
                    receipt_key=receipt,
                )
            ],
            apps=[AppSpec(key=app, service_id="eth", gateways=[gateway.address])],
            gateways=[GatewaySpec(key=gateway)],
        )
    )
    net = _Network(
        settlement_url,
        network.deployment.to_json(),
        gateway.private_key,
        "0x" + app.address.hex(),
        relayer_port,
    )
    return net, supplier.private_key, receipt.seed


def _write_relayer(
    workdir: Path, net: _Network, supplier: bytes, seed: bytes, backend: str
) -> Path:
    from protocol.keys import AccountKey, ReceiptKey, encrypt_keystore
    from relayer.keyfiles import write_receipt_key

    d = workdir / "relayer"
    keys = d / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    fd = os.open(keys / "supplier.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            encrypt_keystore(
                AccountKey(supplier).private_key, "bench", kdf="pbkdf2", iterations=1000
            )
        )
    write_receipt_key(keys / "receipt-key.json", ReceiptKey(seed), overwrite=True)
    (d / "deployment.json").write_text(net.deployment_json)
    config = d / "relayer.toml"
    config.write_text(
        f"""data_dir = "data"
[keys]
supplier_keystore = "keys/supplier.json"
passphrase = "bench"
receipt_key = "keys/receipt-key.json"
[chain]
rpc_url = "{net.settlement_url}"
deployment = "deployment.json"
[server]
host = "127.0.0.1"
port = {net.relayer_port}
[metrics]
port = 0
[claims]
enabled = false
[services.eth]
chain = "devnet"
backends = {{ rpc = "{backend}" }}
"""
    )
    os.chmod(config, 0o600)
    return config


def _write_gateway(
    workdir: Path,
    net: _Network,
    name: str,
    port: int,
    cache: bool,
    *,
    workers: int = 1,
    redis_url: str | None = None,
) -> tuple[Path, str]:
    from gateway.keys import ApiKey, FileKeyBackend, generate_key, hash_key

    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    key_file = d / "gateway.key"
    key_file.write_text("0x" + net.gateway_key.hex())
    os.chmod(key_file, 0o600)
    (d / "deployment.json").write_text(net.deployment_json)
    api_key = generate_key()
    record = ApiKey(hash_key(api_key), "bench", {"eth": net.app_hex}, rate_limit=0.0)
    asyncio.run(FileKeyBackend(d / "keys.json").put(record))
    config = d / "gateway.toml"
    config.write_text(
        f"""[gateway]
listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{_free_port()}"
devnet = true
private_key_file = "gateway.key"
[settlement]
rpc_url = "{net.settlement_url}"
deployment = "deployment.json"
[keys]
file = "keys.json"
[cache]
enabled = {"true" if cache else "false"}
agreement = 1
[services.eth]
catalogue = "devnet"
"""
        + (f'[redis]\nurl = "{redis_url}"\n' if redis_url else "")
    )
    if workers > 1:
        text = config.read_text().replace("[gateway]\n", f"[gateway]\nworkers = {workers}\n", 1)
        config.write_text(text)
    return config, f"http://127.0.0.1:{port}/v1/eth/{api_key}"


# --- the run -----------------------------------------------------------------------------------


def _check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({TOOLS[t] for t in missing}))
        raise BenchError(
            f"missing {', '.join(missing)}: install Debian's {packages} (apt-get install "
            f"{packages}); `make bench` does it"
        )


def _cpus() -> tuple[str | None, str | None]:
    """(servers' CPUs, load generator's CPU), or (None, None) on one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return ",".join(str(c) for c in cpus[:-1]), str(cpus[-1])


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (nginx's worker), from ``/proc``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[-1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _descendants(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        out += [child, *_descendants(child)]
    return out


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time so far of ``pid`` and its live descendants (a gateway's
    forked workers): ``/proc/<pid>/stat`` fields 14 and 15."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[-1].split()
            user, system = user + int(fields[11]) / tick, system + int(fields[12]) / tick
    return user, system


def _profile(
    pids: dict[str, int], duration: float, out: Path | None
) -> list[subprocess.Popen[bytes]]:
    """py-spy (native frames, speedscope) on each Python server while the peak run lasts."""
    if out is None:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        if name == "anvil":
            continue
        procs.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--native",
                    "-r",
                    "200",
                    "-f",
                    "speedscope",
                    "-d",
                    str(max(1, round(duration))),
                    "-p",
                    str(pid),
                    "-o",
                    str(out / f"{name}.speedscope.json"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs


def _measure(
    name: str,
    url: str,
    body: bytes,
    *,
    args: argparse.Namespace,
    load_cpu: str | None,
    workdir: Path,
    servers: dict[str, int],
) -> Row:
    status, answer = _post(url, body)
    if status != 200 or b'"result"' not in answer:
        raise BenchError(f"{name}: {url} answered {status} {answer[:200]!r}")
    load = {"cpu": load_cpu, "workdir": workdir, "body": body}
    _wrk(url, connections=args.connections, duration=1, **load)  # type: ignore[arg-type]
    before = {n: _cpu_seconds(pid) for n, pid in servers.items()}
    rps, p50, p99, requests, errors = _wrk(
        url,
        connections=args.connections,
        duration=args.duration,
        **load,  # type: ignore[arg-type]
    )
    after = {n: _cpu_seconds(pid) for n, pid in servers.items()}
    if args.profile:  # a run of its own: py-spy's pauses must not count in the figures
        spies = _profile(servers, args.duration, Path(args.profile) / _slug(name))
        _wrk(
            url, connections=args.connections, duration=args.duration, cpu=load_cpu, workdir=workdir
        )
        for spy in spies:
            spy.wait(timeout=60)
    n_req = max(1, requests)
    cpu_ms = {n: (sum(after[n]) - sum(before[n])) * 1000 / n_req for n in servers}
    sys_ms = {n: (after[n][1] - before[n][1]) * 1000 / n_req for n in servers}
    _, idle_p50, _, _, idle_errors = _wrk(
        url,
        connections=1,
        duration=args.idle_duration,
        **load,  # type: ignore[arg-type]
    )
    # half of peak at a constant rate (open loop: no bursts of wrk's delay(), no coordinated
    # omission), latency counted from when each request was due
    half_p50, half_errors = _open_loop(
        url, body, rate=rps / 2, duration=args.idle_duration, cpu=load_cpu
    )
    return Row(
        name,
        rps,
        p50,
        p99,
        idle_p50,
        half_p50,
        requests,
        errors + idle_errors + half_errors,
        cpu_ms,
        sys_ms,
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run(args: argparse.Namespace) -> list[Row]:
    from ledger.anvil import find_anvil
    from relaynet.devnet.supervisor import server_command

    _check_tools()
    server_cpus, load_cpu = _cpus()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="relaynet-bench-") as tmp:
        workdir = Path(tmp)
        procs = Procs(workdir)
        env = _python_env()
        try:
            anvil_port, settle_port = _free_port(), _free_port()
            for name, port in (("anvil", anvil_port), ("settlement", settle_port)):
                procs.start(
                    name,
                    [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                )
            anvil_url = f"http://127.0.0.1:{anvil_port}"
            procs.wait("anvil", lambda: _answers(anvil_url))
            settle_url = f"http://127.0.0.1:{settle_port}"
            procs.wait("settlement", lambda: _answers(settle_url))
            _pin(procs.pid("anvil"), server_cpus)
            _pin(procs.pid("settlement"), server_cpus)

            def measure(name: str, url: str, *servers: str, body: bytes = UNCACHED) -> None:
                if not _wanted(args, name):
                    return
                pids = {s: procs.pid(s) for s in servers}
                row = _measure(
                    name, url, body, args=args, load_cpu=load_cpu, workdir=workdir, servers=pids
                )
                rows.append(row)
                print(f"  measured {name}: {row.rps:,.0f} req/s", file=sys.stderr, flush=True)

            measure("anvil direct", anvil_url, "anvil")

            for kind, label in (
                ("trivial", "trivial aiohttp handler"),
                ("forwarder", "bare aiohttp forwarder"),
            ):
                if not _wanted(args, label):
                    continue
                port = _free_port()
                procs.start(
                    kind,
                    [
                        sys.executable,
                        "-m",
                        "bench.bench_suite",
                        "--serve",
                        kind,
                        "--port",
                        str(port),
                        "--target",
                        anvil_url,
                    ],
                    env=env,
                )
                url = f"http://127.0.0.1:{port}/"
                procs.wait(kind, lambda url=url: _answers(url))
                _pin(procs.pid(kind), server_cpus)
                measure(label, url, kind, "anvil", body=BODY if kind == "trivial" else UNCACHED)
                procs.stop(kind)

            if _wanted(args, "nginx proxy_pass"):
                _measure_nginx(procs, workdir, anvil_port, server_cpus, measure)
            if args.workers <= 1 and not any(_wanted(args, r) for r in _GATEWAY_ROWS.values()):
                return rows

            net, supplier, seed = _stake(settle_url, _free_port())
            relayer_cfg = _write_relayer(workdir, net, supplier, seed, anvil_url)
            renv = dict(env)
            procs.start(
                "relayer",
                server_command("relayer", relayer_cfg, "--log-level", "warning"),
                env=renv,
            )
            procs.wait("relayer", lambda: _get_ok(f"http://127.0.0.1:{net.relayer_port}/readyz"))
            _pin(procs.pid("relayer"), server_cpus)
            for name, cache in (("gateway", False), ("gateway-cache", True)):
                label = _GATEWAY_ROWS[name]
                if not _wanted(args, label):
                    continue
                port = _free_port()
                config, url = _write_gateway(workdir, net, name, port, cache)
                _start_gateway(procs, name, config, port, server_cpus)
                measure(label, url, name, "relayer", "anvil", body=BODY if cache else UNCACHED)
                procs.stop(name)
            if args.workers > 1:
                _measure_workers(args, procs, net, server_cpus, measure)
        finally:
            procs.stop()
    return rows


def paired(args: argparse.Namespace) -> list[tuple[float, float]]:
    """The full-path bar measured in pairs: the bare forwarder and gateway → relayer → anvil
    (every process started once, pinned as in :func:`run`) loaded in turn, ``args.paired``
    rounds. The machine's speed drifts (shared hosts: anvil's own CPU per request moves by
    tens of percent between runs minutes apart), so each round's ratio compares two runs
    seconds apart. Returns ``(throughput ratio, CPU-per-relay ratio)`` per round."""
    from ledger.anvil import find_anvil
    from relaynet.devnet.supervisor import server_command

    _check_tools()
    server_cpus, load_cpu = _cpus()
    ratios: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="relaynet-bench-") as tmp:
        workdir = Path(tmp)
        procs = Procs(workdir)
        env = _python_env()
        try:
            anvil_port, settle_port, fwd_port = _free_port(), _free_port(), _free_port()
            for name, port in (("anvil", anvil_port), ("settlement", settle_port)):
                procs.start(
                    name, [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--silent"]
                )
            anvil_url = f"http://127.0.0.1:{anvil_port}"
            settle_url = f"http://127.0.0.1:{settle_port}"
            procs.wait("anvil", lambda: _answers(anvil_url))
            procs.wait("settlement", lambda: _answers(settle_url))
            serve = ["-m", "bench.bench_suite", "--serve", "forwarder", "--port", str(fwd_port)]
            procs.start("forwarder", [sys.executable, *serve, "--target", anvil_url], env=env)
            fwd_url = f"http://127.0.0.1:{fwd_port}/"
            procs.wait("forwarder", lambda: _answers(fwd_url))
            net, supplier, seed = _stake(settle_url, _free_port())
            relayer_cfg = _write_relayer(workdir, net, supplier, seed, anvil_url)
            procs.start(
                "relayer", server_command("relayer", relayer_cfg, "--log-level", "warning"), env=env
            )
            procs.wait("relayer", lambda: _get_ok(f"http://127.0.0.1:{net.relayer_port}/readyz"))
            gw_port = _free_port()
            config, gw_url = _write_gateway(workdir, net, "gateway", gw_port, False)
            _start_gateway(procs, "gateway", config, gw_port, server_cpus)
            for name in ("anvil", "settlement", "forwarder", "relayer"):
                _pin(procs.pid(name), server_cpus)
            targets = {
                "forwarder": (fwd_url, ("forwarder", "anvil")),
                "full": (gw_url, ("gateway", "relayer", "anvil")),
            }
            for name, (url, _) in targets.items():
                status, answer = _post(url, UNCACHED)
                if status != 200 or b'"result"' not in answer:
                    raise BenchError(f"{name}: {url} answered {status} {answer[:200]!r}")
            for i in range(args.paired):
                got: dict[str, tuple[float, float]] = {}
                for name, (url, servers) in targets.items():
                    load = {"cpu": load_cpu, "workdir": workdir, "body": UNCACHED}
                    _wrk(url, connections=args.connections, duration=1, **load)  # type: ignore[arg-type]
                    pids = {s: procs.pid(s) for s in servers}
                    before = {s: sum(_cpu_seconds(pid)) for s, pid in pids.items()}
                    rps, _, _, requests, errors = _wrk(
                        url,
                        connections=args.connections,
                        duration=args.duration,
                        **load,  # type: ignore[arg-type]
                    )
                    after = {s: sum(_cpu_seconds(pid)) for s, pid in pids.items()}
                    if errors:
                        raise BenchError(f"{name}: {errors} errors under load")
                    cpu = sum(after[s] - before[s] for s in pids) * 1000 / max(requests, 1)
                    got[name] = (rps, cpu)
                pair = (got["full"][0] / got["forwarder"][0], got["forwarder"][1] / got["full"][1])
                ratios.append(pair)
                print(
                    f"  round {i + 1}: forwarder {got['forwarder'][0]:,.0f} req/s "
                    f"({got['forwarder'][1]:.3f} ms CPU), full path {got['full'][0]:,.0f} req/s "
                    f"({got['full'][1]:.3f} ms CPU): ratio {pair[0]:.2f} (CPU {pair[1]:.2f}), "
                    f"load {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            procs.stop()
    return ratios


def render_paired(ratios: list[tuple[float, float]]) -> str:
    ordered = sorted(r[0] for r in ratios)
    cpu = sorted(r[1] for r in ratios)
    return (
        f"full path ÷ bare forwarder in {len(ratios)} paired rounds: throughput median "
        f"{ordered[len(ordered) // 2]:.2f} (min {ordered[0]:.2f}, max {ordered[-1]:.2f}); "
        f"CPU per relay median {cpu[len(cpu) // 2]:.2f} (bar ≥ 0.50)"
    )


_GATEWAY_ROWS = {"gateway": "gateway → relayer → anvil", "gateway-cache": "gateway cache hit"}
#: ``--only`` names → the rows they select
ROWS = {
    "anvil": "anvil direct",
    "trivial": "trivial aiohttp handler",
    "forwarder": "bare aiohttp forwarder",
    "nginx": "nginx proxy_pass",
    "gateway": _GATEWAY_ROWS["gateway"],
    "cache": _GATEWAY_ROWS["gateway-cache"],
}


def _wanted(args: argparse.Namespace, label: str) -> bool:
    """Whether the row ``label`` is measured in this run (``--only``; all by default)."""
    return not args.only or label in {ROWS[name] for name in args.only}


def _measure_nginx(
    procs: Procs, workdir: Path, anvil_port: int, cpus: str | None, measure: Callable[..., None]
) -> None:
    nginx_port = _free_port()
    conf = _nginx_conf(workdir, nginx_port, anvil_port)
    procs.start("nginx", ["nginx", "-c", str(conf), "-p", str(workdir)])
    nginx_url = f"http://127.0.0.1:{nginx_port}/"
    procs.wait("nginx", lambda: _answers(nginx_url))
    _pin(procs.pid("nginx"), cpus)
    for worker in _children(procs.pid("nginx")):
        _pin(worker, cpus)
    measure("nginx proxy_pass", nginx_url, "anvil")
    procs.stop("nginx")


def _start_gateway(
    procs: Procs, name: str, config: Path, port: int, cpus: str | None, settle: float = 0
) -> None:
    """``relaynet gateway run`` until /readyz answers (plus ``settle`` seconds: every forked
    worker listening, each once its follower caught up), then pinned with its workers."""
    from relaynet.devnet.supervisor import server_command

    argv = server_command("gateway", config, "--log-level", "warning")
    procs.start(name, argv, env=_python_env())
    procs.wait(name, lambda: _get_ok(f"http://127.0.0.1:{port}/readyz"))
    time.sleep(settle)
    _pin(procs.pid(name), cpus)


def _measure_workers(
    args: argparse.Namespace,
    procs: Procs,
    net: _Network,
    server_cpus: str | None,
    measure: Callable[..., None],
) -> None:
    """The full path through a gateway with Redis, as one process and as ``--workers`` forked
    workers (every worker pinned, their CPU summed): what sharing state through Redis costs
    per request, and what the extra processes give on the servers' CPUs."""
    redis_port = _free_port()
    redis = shutil.which("redis-server")
    if redis is None:
        raise BenchError("--workers needs redis-server (apt-get install redis-server)")
    procs.start(
        "redis",
        [
            redis,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )
    procs.wait("redis", lambda: _redis_up(redis_port))
    _pin(procs.pid("redis"), server_cpus)
    for name, workers in (("gateway-redis", 1), ("gateway-workers", args.workers)):
        port = _free_port()
        config, url = _write_gateway(
            procs.workdir,
            net,
            name,
            port,
            False,
            workers=workers,
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
        )
        _start_gateway(procs, name, config, port, server_cpus, settle=2.0 if workers > 1 else 0)
        label = f"gateway, Redis, {workers} worker" + ("s" if workers > 1 else "")
        measure(label, url, name, "relayer", "anvil", "redis")
        procs.stop(name)


def _redis_up(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


def render(rows: list[Row], args: argparse.Namespace) -> str:
    base = next((r for r in rows if r.name == "bare aiohttp forwarder"), None)
    server_cpus, load_cpu = _cpus()
    pinning = (
        f"servers on CPU {server_cpus}, wrk on CPU {load_cpu}" if load_cpu else "no pinning (1 CPU)"
    )
    lines = [
        "eth_getBalance at pending (trivial handler and cache hit: eth_chainId), "
        f"wrk -t1 -c{args.connections} for {args.duration:g}s (p50 idle: -c1 for "
        f"{args.idle_duration:g}s); {pinning}; {os.cpu_count()} CPUs; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
        f"| {'target':<26} | {'req/s':>9} | {'× forwarder':>11} | {'p50 ms':>7} | {'p99 ms':>7} "
        f"| {'p50 idle ms':>11} | {'p50 ½ peak':>10} | {'errors':>6} |",
        f"|{'-' * 28}|{'-' * 10}:|{'-' * 12}:|{'-' * 8}:|{'-' * 8}:|{'-' * 12}:|{'-' * 11}:"
        f"|{'-' * 7}:|",
    ]
    for r in rows:
        ratio = f"{r.rps / base.rps:.2f}" if base and base.rps else "-"
        lines.append(
            f"| {r.name:<26} | {r.rps:>9,.0f} | {ratio:>11} | {r.p50_ms:>7.2f} | {r.p99_ms:>7.2f} "
            f"| {r.idle_p50_ms:>11.2f} | {r.half_p50_ms:>10.2f} | {r.errors:>6} |"
        )
    by = {r.name: r for r in rows}
    full, hit, trivial = (
        by.get("gateway → relayer → anvil"),
        by.get("gateway cache hit"),
        by.get("trivial aiohttp handler"),
    )
    lines.append("")
    if base and full:
        lines.append(
            f"bar throughput: full path {full.rps / base.rps:.0%} of the forwarder (bar ≥ 50 %)"
        )
    if hit and trivial:
        lines.append(
            f"bar cache hit: {hit.rps / trivial.rps:.0%} of a trivial aiohttp handler (bar ≥ 70 %)"
        )
    for r in rows:
        if r.cpu_ms:
            lines.append(
                f"CPU ms per request, {r.name}: "
                + ", ".join(
                    f"{n} {ms:.2f} (sys {r.sys_ms.get(n, 0):.2f})" for n, ms in r.cpu_ms.items()
                )
            )
    anvil = by.get("anvil direct")
    if full and anvil:
        added = (full.idle_p50_ms - anvil.idle_p50_ms) / 2
        half = (full.half_p50_ms - anvil.half_p50_ms) / 2
        lines.append(
            f"added p50 per hop (gateway and relayer hops; bar ≤ 1 ms): idle {added:.2f} ms, "
            f"at half of peak {half:.2f} ms"
        )
    fwd_cpu = base and sum(base.cpu_ms.values())
    if full and fwd_cpu:
        lines.append(
            f"CPU per relay: full path {sum(full.cpu_ms.values()):.2f} ms, forwarder (with "
            f"anvil) {fwd_cpu:.2f} ms: ratio {fwd_cpu / sum(full.cpu_ms.values()):.2f} "
            "(the throughput ratio when the servers' CPU is the limit)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per peak run")
    parser.add_argument("--idle-duration", type=float, default=2.0, help="seconds at -c1")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also measure the full path with Redis as 1 and as N gateway workers (N > 1)",
    )
    parser.add_argument(
        "--profile", default="", help="write py-spy profiles (speedscope) of each server here"
    )
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=[],
        help=f"measure only these rows, comma-separated, of: {', '.join(ROWS)} (default: all)",
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        help="only the full-path bar: forwarder and full path loaded in turn, N rounds",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="after the table, the full-path bar measured in N pairs as --paired does (0: not)",
    )
    parser.add_argument("--serve", choices=("trivial", "forwarder"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    unknown = [name for name in args.only if name not in ROWS]
    if unknown:
        parser.error(f"--only: unknown row {', '.join(unknown)} (known: {', '.join(ROWS)})")
    if args.serve:
        _serve(args.serve, args.port, args.target)
        return
    if args.paired > 0:
        print(render_paired(paired(args)), flush=True)
        return
    rows = run(args)
    print(render(rows, args), flush=True)
    if args.pairs > 0 and _wanted(args, ROWS["forwarder"]) and _wanted(args, ROWS["gateway"]):
        # the table's two rows ran tens of seconds apart on a host whose speed drifts
        print(render_paired(paired(argparse.Namespace(**{**vars(args), "paired": args.pairs}))))


if __name__ == "__main__":
    main(sys.argv[1:])
