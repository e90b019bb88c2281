"""``[gateway] workers = 2``: real gateway processes (a parent and its forked workers) on real
anvils, relayers and redis-server (gateway.workers)."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway_net import (
    SERVICE,
    Net,
    keyed_gateway,
    net_gateway_files,
    post,
    start_gateway_proc,
    start_net,
)
from tests.support.gateway_proc import GatewayProcess, add_key
from tests.support.process import REPO
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKERS = {"gateway": {"workers": 2}}
CALL = b'{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":1}'


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Net]:
    n = start_net(tmp_path_factory.mktemp("gw-workers"), relayers=2, start_gateway=False)
    try:
        start_gateway_proc(n, redis_url=redis.url, tables=WORKERS)
        yield n
    finally:
        n.stop()


def _gateway(net: Net) -> GatewayProcess:
    assert net.gateway is not None
    return net.gateway


def _samples(gw: GatewayProcess, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` on the gateway's one metrics endpoint."""
    with urllib.request.urlopen(gw.metrics_url, timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def _per_worker(gw: GatewayProcess, name: str, **match: str) -> dict[str, float]:
    """``name``'s value summed per ``worker`` label over the samples matching ``match``."""
    out: dict[str, float] = {}
    for labels, value in _samples(gw, name):
        if all(labels.get(k) == v for k, v in match.items()):
            out[labels["worker"]] = out.get(labels["worker"], 0.0) + value
    return out


def _pids(gw: GatewayProcess) -> dict[str, int]:
    return {w: int(v) for w, v in _per_worker(gw, "relaynet_gateway_worker_pid").items()}


def _key_id(key: str) -> str:
    from gateway.keys import hash_key

    return hash_key(key)[:12]


def _fresh(url: str, body: bytes = CALL) -> tuple[int, bytes]:
    """One call on a new connection (SO_REUSEPORT spreads connections, not requests)."""
    status, data, _ = post(url, body, headers={"Connection": "close"})
    return status, data


def _retrying(url: str, tries: int = 6) -> tuple[int, bytes]:
    """A client that retries a read when its connection fails (as web3 clients do)."""
    for attempt in range(tries):
        try:
            return _fresh(url)
        except (urllib.error.URLError, ConnectionError, OSError):
            if attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _until_both(gw: GatewayProcess, key: str, limit: int = 200) -> list[int]:
    """Calls with ``key`` on fresh connections until both workers have counted one."""
    statuses: list[int] = []
    url = gw.rpc_url(SERVICE, key)
    for _ in range(limit):
        statuses.append(_fresh(url)[0])
        if len(statuses) % 5 == 0:
            seen = _per_worker(gw, "relaynet_gateway_key_requests_total", key_id=_key_id(key))
            if len([v for v in seen.values() if v > 0]) == 2:
                break
    return statuses


def test_two_workers_answer_and_one_endpoint_shows_both(net: Net) -> None:
    gw = _gateway(net)
    statuses = _until_both(gw, net.key)
    assert set(statuses) == {200}
    pids = _pids(gw)
    assert sorted(pids) == ["0", "1"]
    assert len(set(pids.values())) == 2 and gw.pid not in pids.values()
    for pid in pids.values():
        os.kill(pid, 0)  # alive
    counted = _per_worker(gw, "relaynet_gateway_key_requests_total", key_id=_key_id(net.key))
    assert sorted(counted) == ["0", "1"] and all(v > 0 for v in counted.values())
    assert sum(counted.values()) == len(statuses)  # one coherent view: nothing lost, nothing twice
    assert _per_worker(gw, "relaynet_gateway_worker_up") == {"0": 1.0, "1": 1.0}


async def test_websocket_upgrades_reach_aiohttp_on_every_worker(net: Net) -> None:
    """The fast front hands upgrades to aiohttp on both SO_REUSEPORT listeners."""
    import asyncio

    import aiohttp

    gw = _gateway(net)
    async with aiohttp.ClientSession() as http:
        sockets = []
        try:
            open_ = {}
            for _ in range(40):  # each socket its own connection: the kernel picks the worker
                ws = await http.ws_connect(gw.ws_url(SERVICE, net.key))
                sockets.append(ws)
                await ws.send_bytes(CALL)
                answer = orjson.loads((await ws.receive(timeout=10)).data)
                assert answer["result"] == "0x7a69"
                if len(sockets) % 4 == 0:
                    per = await asyncio.to_thread(
                        _per_worker, gw, "relaynet_gateway_ws_connections"
                    )
                    open_ = {w: v for w, v in per.items() if v > 0}
                    if len(open_) == 2:
                        break
            assert sorted(open_) == ["0", "1"], open_
            assert sum(open_.values()) == len(sockets)
        finally:
            for ws in sockets:
                await ws.close()


def test_each_workers_log_lines_carry_its_index(net: Net) -> None:
    """An operator tells the workers apart (text format, the default): each worker's lines
    carry its index, the parent's carry none."""
    gw = _gateway(net)
    tags: set[str] = set()
    for _ in range(100):  # each worker logs "listening" once its follower caught up
        lines = gw.log_path.read_text().splitlines()
        listening = [line for line in lines if "gateway listening on" in line]
        tags = {m.group(1) for line in listening if (m := re.search(r" \[worker=(\d)\]$", line))}
        if len(tags) == 2:
            break
        time.sleep(0.1)
    assert tags == {"0", "1"}, listening
    started = [line for line in lines if "worker 1 started (pid" in line]  # the parent's
    assert started and all("worker=" not in line for line in started), started


def _json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_worker_is_its_own_replica(net: Net) -> None:
    """Separate outage state per worker: the heartbeats count two replicas, not one."""
    gw = _gateway(net)
    seen: set[int] = set()
    for _ in range(50):
        with urllib.request.urlopen(f"{gw.url}/readyz", timeout=5) as resp:  # noqa: S310
            seen.add(orjson.loads(resp.read())["replicas"])
        if 2 in seen:
            break
        time.sleep(0.2)
    assert 2 in seen, seen
    dirs = sorted(p.name for p in (gw.files.directory / f"gateway-state-{gw.files.port}").iterdir())
    assert dirs == ["worker-0", "worker-1"]


def test_a_key_added_with_the_cli_works_on_every_worker(net: Net) -> None:
    gw = _gateway(net)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "relaynet",
            "gateway",
            "keys",
            "add",
            "--config",
            str(gw.files.config),
            "--service",
            f"{SERVICE}={net.app_hex}",
            "--rate-limit",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    statuses = _until_both(gw, key)
    counted = _per_worker(gw, "relaynet_gateway_key_requests_total", key_id=_key_id(key))
    assert sorted(counted) == ["0", "1"] and all(v > 0 for v in counted.values()), counted
    assert 200 in statuses and set(statuses) <= {200, 401}  # 401 only before a worker reloaded


def test_a_rate_limit_is_shared_by_the_workers(net: Net) -> None:
    gw = _gateway(net)
    key = add_key(gw.files, {SERVICE: net.app_hex}, rate_limit=0.001, burst=4)
    # the workers reload keys every 0.2 s, each on its own: a key added after this one, seen
    # answered by both workers, means both know this one too (without spending its tokens)
    later = add_key(gw.files, {SERVICE: net.app_hex})
    assert set(_until_both(gw, later)) <= {200, 401}
    url = gw.rpc_url(SERVICE, key)
    statuses = [_fresh(url)[0] for _ in range(30)]
    refused = _per_worker(gw, "relaynet_gateway_refused_total", reason="RATE_LIMITED")
    # 4 tokens for the whole gateway, then 429 on every worker
    assert statuses.count(200) == 4 and statuses.count(429) == 26, statuses
    assert sorted(refused) == ["0", "1"] and all(v > 0 for v in refused.values()), refused


def test_a_killed_worker_loses_no_retried_call_and_is_forked_again(net: Net) -> None:
    gw = _gateway(net)
    url = gw.rpc_url(SERVICE, net.key)
    before = _pids(gw)
    failures: list[object] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, data = _retrying(url)
                if status != 200 or orjson.loads(data).get("result") != "0x7a69":
                    failures.append((status, data[:200]))
                answered[0] += 1
            except OSError as exc:
                failures.append(repr(exc))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(load) for _ in range(4)]
        try:
            while answered[0] < 20 and not failures:
                time.sleep(0.05)
            os.kill(before["0"], signal.SIGKILL)
            after = before
            for _ in range(600):  # the parent forks worker 0 again
                after = _pids(gw)
                up = _per_worker(gw, "relaynet_gateway_worker_up")
                if after.get("0") not in (None, before["0"]) and up.get("0") == 1.0:
                    break
                time.sleep(0.1)
            mark = answered[0]
            while answered[0] < mark + 20 and not failures:
                time.sleep(0.05)
        finally:
            stop.set()
            for f in running:
                f.result()
    assert not failures, failures[:5]
    assert after["0"] != before["0"] and after["1"] == before["1"]
    assert _per_worker(gw, "relaynet_gateway_worker_restarts") == {"0": 1.0, "1": 0.0}
    with pytest.raises(ProcessLookupError):
        os.kill(before["0"], 0)
    # the new worker 0 serves (its counters started at zero)
    _until_both(gw, net.key)
    assert _per_worker(gw, "relaynet_gateway_worker_up") == {"0": 1.0, "1": 1.0}


def test_sighup_reaches_every_worker(net: Net) -> None:
    gw = _gateway(net)
    before = gw.log_path.read_text().count("SIGHUP: config reloaded")
    assert gw.pid is not None
    os.kill(gw.pid, signal.SIGHUP)
    count = before
    for _ in range(100):
        count = gw.log_path.read_text().count("SIGHUP: config reloaded")
        if count >= before + 2:
            break
        time.sleep(0.1)
    assert count == before + 2
    assert "need a restart" not in gw.log_path.read_text()  # each worker rereads its own seat


def _gone(pids: list[int]) -> bool:
    for _ in range(200):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_every_process(net: Net, redis: RedisServer) -> None:
    tables = {"gateway": {**WORKERS["gateway"], "log_format": "json"}}
    gw = start_gateway_proc(net, redis_url=redis.url, tables=tables, name="gw-term")
    try:
        _until_both(gw, add_key(gw.files, {SERVICE: net.app_hex}))
        children = list(_pids(gw).values())
        assert gw.stop() == 0  # SIGTERM: every worker drains, then the parent exits cleanly
        assert _gone(children)
        # each worker said so, and its JSON lines name it
        lines = _json_lines(gw.log_path.read_text())
        draining = [d for d in lines if str(d["msg"]).startswith("draining")]
        assert sorted(str(d.get("worker")) for d in draining) == ["0", "1"], draining
        parent = [d for d in lines if d["msg"] == "stopping: draining 2 workers"]
        assert parent and all("worker" not in d for d in parent), parent
    finally:
        gw.stop()


def test_killing_the_parent_takes_its_workers_down(net: Net, redis: RedisServer) -> None:
    gw = start_gateway_proc(net, redis_url=redis.url, tables=WORKERS, name="gw-orphan")
    try:
        children = list(_pids(gw).values())
        assert len(children) == 2
        gw.kill()  # SIGKILL: no forwarding possible; the children hear of it from the kernel
        assert _gone(children)
    finally:
        gw.stop()


def test_a_worker_failing_at_start_up_stops_the_gateway(net: Net, redis: RedisServer) -> None:
    files = net_gateway_files(net, "gw-broken", WORKERS, redis_url=redis.url)
    (files.directory / "gateway.key").write_text("0xnot-a-key")  # read by each worker only
    with pytest.raises(RuntimeError, match="gateway exited with 1"):
        keyed_gateway(net, files)


def test_more_than_one_worker_without_redis_is_refused(net: Net) -> None:
    files = net_gateway_files(net, "gw-noredis", WORKERS)
    out = subprocess.run(
        [sys.executable, "-m", "relaynet", "gateway", "run", "--config", str(files.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 1
    assert (
        "gateway.workers = 2 needs [redis]: the workers share API keys, limits, cache, floors, "
        "pins and QoS through it — add a [redis] table or set gateway.workers = 1"
    ) in " ".join(out.stderr.split())
