"""Several gateway processes on one machine: ``[gateway] workers = N`` (DESIGN §6 scale-out).

The parent reads the config, imports everything, freezes the collector's view of start-up's
objects (``gc.freeze()``, so that forked children share those pages instead of copying them on
the first collection) and forks:

* **N workers**, each a whole gateway (:func:`gateway.app.serve`) listening on the same
  ``gateway.listen`` with ``SO_REUSEPORT``: the kernel spreads connections over them. They
  share API keys, limits, the cache, floors, pins, QoS and WebSocket leases through Redis, so
  ``workers > 1`` needs ``[redis]`` (the config refuses it otherwise). Each worker is its own
  replica for the outage rules (``redis.state_dir/worker-<i>``) and runs its own ledger follower:
  N followers poll the settlement chain (see :data:`FOLLOWER_COST`).
* **one metrics child** when ``metrics_listen`` is set: it serves ``/metrics`` there, reading
  every worker's own metrics listener (a loopback socket the parent bound, kept across restarts)
  at scrape time and adding a ``worker`` label to each series — one coherent view whatever
  the workers' metrics are made of. ``relaynet_gateway_worker_up``, ``…_worker_restarts`` and
  ``…_worker_pid`` come from the parent through a shared page.

The parent supervises: a child that dies is forked again (at once, or after a back-off growing
to 10 s when it keeps dying young); SIGTERM/SIGINT drains every worker (each as a lone gateway
does: /readyz 503, listener closed, in-flight requests finished) and then stops the metrics
child; SIGHUP is forwarded to the workers (each reloads what it can). A worker that fails before
its first start-up completes stops the whole gateway (a broken config is not retried forever).
Children get SIGTERM when the parent dies.

Each worker's log lines carry its index (``"worker": 1`` in JSON lines, ``[worker=1]`` in text
ones, :func:`transport.logs.tag_process`); the parent's and the metrics child's carry none.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import mmap
import os
import select
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gateway.config import GatewayConfig, parse_listen
from transport.logs import tag_process

__all__ = [
    "FOLLOWER_COST",
    "Supervisor",
    "WorkerSeat",
    "merge_expositions",
    "worker_config",
]

log = logging.getLogger("relaynet.gateway.workers")

#: what N followers cost instead of one (stated, not shared: each worker follows the chain)
FOLLOWER_COST = (
    "each worker runs its own ledger follower: N × (one head-height poll per "
    "settlement.poll_interval, plus a log query and reads per new block) against "
    "settlement.rpc_url"
)

#: seconds a child must live for its death not to count as dying young (back-off)
YOUNG = 5.0
MAX_BACKOFF = 10.0
#: seconds past the workers' own drain bound before the parent kills what is left
STOP_GRACE = 10.0
#: seconds the metrics child waits for one worker's metrics (then: worker_up 0)
SCRAPE_TIMEOUT = 2.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1


@dataclass
class WorkerSeat:
    """What a forked worker gets from the parent (read by :func:`gateway.app.serve`)."""

    index: int
    #: this worker's own metrics listener (loopback; the metrics child scrapes it), or None
    metrics_sock: socket.socket | None
    ready_fd: int = -1

    async def until_ready(self, ready: Callable[[], bool]) -> None:
        """Waits until the worker is ready (its follower caught up) before it binds: with
        ``SO_REUSEPORT`` the kernel hands a listener connections at once, whatever /readyz says,
        so a worker forked again must not take any before it can serve them."""
        import asyncio

        while not ready():  # noqa: ASYNC110 — readiness is a property, not an event
            await asyncio.sleep(0.05)

    def listening(self) -> None:
        """Tells the parent this worker's start-up completed (its listeners are up)."""
        if self.ready_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"1")
                os.close(self.ready_fd)
            self.ready_fd = -1


def worker_config(config: GatewayConfig, index: int) -> GatewayConfig:
    """Worker ``index``'s config: its own outage state (replica id, key snapshot, journal) in
    ``redis.state_dir/worker-<index>``; no metrics listener of its own (the seat has one)."""
    server = config.gateway.model_copy(update={"metrics_listen": None})
    if config.redis is None:
        return config.model_copy(update={"gateway": server})
    port = parse_listen(config.gateway.listen)[1]
    base = config.redis.state_dir or Path(tempfile.gettempdir()) / f"relaynet-gateway-{port}"
    redis = config.redis.model_copy(update={"state_dir": Path(base) / f"worker-{index}"})
    return config.model_copy(update={"gateway": server, "redis": redis})


# -- the shared page: per worker (pid, restarts), written by the parent -----------------------
class Board:
    """Two int64 per worker in an anonymous shared mapping (inherited across fork)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(-1, max(16 * workers, mmap.PAGESIZE))

    def set(self, index: int, pid: int, restarts: int) -> None:
        struct.pack_into("<qq", self._map, 16 * index, pid, restarts)

    def get(self, index: int) -> tuple[int, int]:
        pid, restarts = struct.unpack_from("<qq", self._map, 16 * index)
        return int(pid), int(restarts)


# -- metrics: one view over every worker ------------------------------------------------------
def merge_expositions(texts: Sequence[str | None], board: Board | None = None) -> bytes:
    """Prometheus text of every worker merged: each sample gains ``worker="<i>"``; a worker
    that did not answer (``None``) shows as ``relaynet_gateway_worker_up{worker} 0``."""
    families: dict[str, Metric] = {}
    up = GaugeMetricFamily(
        "relaynet_gateway_worker_up", "1 if the worker answered this scrape", labels=["worker"]
    )
    pids = GaugeMetricFamily("relaynet_gateway_worker_pid", "The worker's pid", labels=["worker"])
    restarts = GaugeMetricFamily(
        "relaynet_gateway_worker_restarts",
        "Times the parent forked the worker again after it died",
        labels=["worker"],
    )
    for index, text in enumerate(texts):
        worker = str(index)
        up.add_metric([worker], 0.0 if text is None else 1.0)
        if board is not None:
            pid, count = board.get(index)
            pids.add_metric([worker], float(pid))
            restarts.add_metric([worker], float(count))
        for family in text_string_to_metric_families(text or ""):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type
                )
            merged.samples += [
                Sample(s.name, {**s.labels, "worker": worker}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            ]
    extra = [up, pids, restarts] if board is not None else [up]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([*families.values(), *extra]))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


async def _scrape(port: int) -> str | None:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)) as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                return await resp.text() if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def _serve_metrics(seat: WorkerSeat, ports: Sequence[int], board: Board) -> None:
    """The metrics child: ``GET /metrics`` merges every worker's metrics, read at scrape time."""
    import asyncio

    from aiohttp import web

    async def render(_request: web.Request) -> web.Response:
        texts = await asyncio.gather(*(_scrape(p) for p in ports))
        return web.Response(body=merge_expositions(texts, board), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", render)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    assert seat.metrics_sock is not None
    await web.SockSite(runner, seat.metrics_sock).start()
    seat.listening()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# -- the parent ------------------------------------------------------------------------------
@dataclass
class _Child:
    name: str
    index: int  # -1: the metrics child
    pid: int = 0
    started: float = 0.0
    ready: bool = False
    ever_ready: bool = False
    restarts: int = 0
    backoff: float = 0.0
    due: float | None = None  # when a dead child is forked again
    ready_r: int = -1


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class Supervisor:
    """Forks and supervises the workers and the metrics child (see the module doc).

    ``serve`` runs one worker to its end in the forked child (the CLI passes
    ``asyncio.run(gateway.app.serve(cfg, seat=seat, reload=…))``)."""

    config: GatewayConfig
    serve: Callable[[GatewayConfig, WorkerSeat], None]
    children: list[_Child] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
        n = self.config.gateway.workers
        self.parent = os.getpid()
        self._check_listen()
        self.board = Board(n)
        self.metrics_socks: list[socket.socket] = []
        self.front_sock: socket.socket | None = None
        if self.config.gateway.metrics_listen:
            self.front_sock = _listener(*parse_listen(self.config.gateway.metrics_listen))
            self.metrics_socks = [_listener("127.0.0.1", 0) for _ in range(n)]
        self.metrics_ports = [int(s.getsockname()[1]) for s in self.metrics_socks]
        self.children = [_Child(f"worker {i}", i) for i in range(n)]
        if self.front_sock is not None:
            self.children.append(_Child("metrics", -1))
        gc.collect()
        gc.freeze()  # start-up's objects stay out of the children's collections (shared pages)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for child in self.children:
                self._fork(child)
            return self._loop()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _check_listen(self) -> None:
        """A plain bind first: an old worker still holding the port with SO_REUSEPORT (or any
        other process) makes it fail here, instead of the kernel sharing connections with it."""
        host, port = parse_listen(self.config.gateway.listen)
        with contextlib.closing(_listener(host, port)):
            pass

    def _loop(self) -> int:
        while True:
            timeout = self._next_timeout()
            got = signal.sigtimedwait(_SIGNALS, timeout)
            if got is not None and got.si_signo in (signal.SIGTERM, signal.SIGINT):
                return self._stop()
            if got is not None and got.si_signo == signal.SIGHUP:
                log.info("SIGHUP: forwarded to the workers")
                self._signal_workers(signal.SIGHUP)
            self._read_ready()
            failed = self._reap()
            if failed is not None:
                log.error("%s failed during start-up (exit %d): stopping", *failed)
                self._stop()
                return 1
            self._fork_due()

    def _next_timeout(self) -> float:
        waiting = [c for c in self.children if not c.ready and c.pid]  # poll their pipes
        return 0.2 if waiting else 1.0

    def _fork(self, child: _Child) -> None:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(ready_r)
            self._child_main(child, ready_w)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        child.pid, child.started, child.ready, child.due, child.ready_r = (
            pid,
            time.monotonic(),
            False,
            None,
            ready_r,
        )
        if child.index >= 0:
            self.board.set(child.index, pid, child.restarts)
        log.info("%s started (pid %d)", child.name, pid)

    def _child_main(self, child: _Child, ready_w: int) -> None:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            _die_with_parent(self.parent)
            for other in self.children:  # the parent's pipes to other children
                if other.ready_r >= 0:
                    with contextlib.suppress(OSError):
                        os.close(other.ready_r)
            import asyncio

            if child.index < 0:
                assert self.front_sock is not None
                for s in self.metrics_socks:
                    s.close()
                seat = WorkerSeat(-1, self.front_sock, ready_w)
                asyncio.run(_serve_metrics(seat, self.metrics_ports, self.board))
            else:
                own = self.metrics_socks[child.index] if self.metrics_socks else None
                for other_sock in [*self.metrics_socks, self.front_sock]:
                    if other_sock is not None and other_sock is not own:
                        other_sock.close()
                tag_process(worker=child.index)  # every line it logs names it (JSON and text)
                seat = WorkerSeat(child.index, own, ready_w)
                self.serve(worker_config(self.config, child.index), seat)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child's last word; the parent decides what follows
            log.exception("%s crashed", child.name)
        finally:
            logging.shutdown()
            os._exit(code)

    def _read_ready(self) -> None:
        for child in self.children:
            if child.ready or child.ready_r < 0:
                continue
            readable, _, _ = select.select([child.ready_r], [], [], 0)
            if not readable:
                continue
            with contextlib.suppress(OSError):
                data = os.read(child.ready_r, 1)
                if data:
                    child.ready = child.ever_ready = True
                    log.info("%s ready (pid %d)", child.name, child.pid)
            self._close_ready(child)

    def _close_ready(self, child: _Child) -> None:
        if child.ready_r >= 0:
            os.close(child.ready_r)
            child.ready_r = -1

    def _reap(self) -> tuple[str, int] | None:
        """Collects dead children and schedules their restart; a worker that died before its
        first start-up completed is returned (name, exit code): the gateway stops."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            child = next((c for c in self.children if c.pid == pid), None)
            if child is None:
                continue
            self._read_ready()
            code = os.waitstatus_to_exitcode(status)
            child.pid = 0
            self._close_ready(child)
            if child.index >= 0 and not child.ever_ready and not self.stopping:
                return child.name, code
            lived = time.monotonic() - child.started
            child.backoff = min(max(child.backoff * 2, 0.5), MAX_BACKOFF) if lived < YOUNG else 0
            child.due = time.monotonic() + child.backoff
            child.restarts += 1
            log.warning(
                "%s (pid %d) exited with %d after %.1f s: forking it again in %.1f s",
                child.name,
                pid,
                code,
                lived,
                child.backoff,
            )

    def _fork_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if not child.pid and child.due is not None and child.due <= now:
                self._fork(child)

    def _signal_workers(self, sig: int) -> None:
        for child in self.children:
            if child.index >= 0 and child.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, sig)

    def _stop(self) -> int:
        """SIGTERM to every worker (each drains), then to the metrics child; SIGKILL to what
        is left past the workers' own bound. 0 when every worker exited cleanly."""
        self.stopping = True
        draining = sum(1 for c in self.children if c.pid and c.index >= 0)  # not the metrics one
        log.info("stopping: draining %d workers", draining)
        server = self.config.gateway
        bound = server.drain_seconds + server.drain_timeout + STOP_GRACE
        clean = self._stop_group([c for c in self.children if c.index >= 0], bound)
        self._stop_group([c for c in self.children if c.index < 0], 5.0)
        return 0 if clean else 1

    def _stop_group(self, group: list[_Child], bound: float) -> bool:
        clean = True
        for child in group:
            if child.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + bound
        for child in group:
            while child.pid:
                pid, status = os.waitpid(child.pid, os.WNOHANG)
                if pid:
                    clean = clean and os.waitstatus_to_exitcode(status) == 0
                    child.pid = 0
                elif time.monotonic() > deadline:
                    log.error("%s (pid %d) did not stop: killed", child.name, child.pid)
                    os.kill(child.pid, signal.SIGKILL)
                    os.waitpid(child.pid, 0)
                    child.pid, clean = 0, False
                else:
                    signal.sigtimedwait({signal.SIGCHLD}, 0.1)
        return clean


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``): no orphan keeps the port."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)
