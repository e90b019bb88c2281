"""Redis killed during load and before start, with two real gateway replicas (DESIGN §4, issue
11 Must show): known keys keep working, together the replicas stay within the rate and quota
shares, usage counted during the outage lands in Redis exactly once, revoked keys stay refused
(revoked before the outage: across restarts; revoked during it: once Redis is back), /readyz
stays 200 reporting "degraded", and no API key reaches either gateway's log."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.keys import ApiKey, RedisKeyBackend, hash_key
from gateway.limiter import Limiter, Usage
from gateway.store import RedisStore
from tests.support.gateway_net import SERVICE, Net, post, start_net
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key, write_gateway_files
from tests.support.redis_server import DurableRedis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

PREFIX = "relaynet:gw:"
CALL = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
OUTAGE_TABLES = {
    "redis": {
        "heartbeat_interval": 0.3,
        # R = live heartbeats at the last read (DESIGN §4): a replica that stopped beating for
        # a TTL is gone. Long here, so that a replica descheduled on a loaded machine, or
        # stopping slower than the other, never looks gone while both are meant to run.
        "heartbeat_ttl": 60.0,
        "retry_after": 0.3,
        "state_dir": "gateway-state",
    },
    "keys": {"reload_interval": 0.2},
}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with start_net(tmp_path_factory.mktemp("outage"), relayers=1, start_gateway=False) as n:
        yield n


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def call(gw: GatewayProcess, key: str) -> tuple[int, dict[str, str]]:
    status, _, headers = post(gw.rpc_url(SERVICE, key), CALL)
    return status, headers


def ok_count(gw: GatewayProcess, key: str, tries: int) -> int:
    ok = 0
    for _ in range(tries):
        status, headers = call(gw, key)
        assert status in (200, 429), status
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
        ok += status == 200
    return ok


def readyz(gw: GatewayProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{gw.url}/readyz", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
        data: dict[str, Any] = json.loads(resp.read())
        return data


def redis_state(gw: GatewayProcess) -> str:
    try:
        return str(readyz(gw).get("redis"))
    except OSError:
        return "unreachable"


def snapshot(files: GatewayFiles) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(
            (files.directory / "gateway-state" / "snapshot.json").read_text()
        )
        return data
    except (OSError, ValueError):
        return {}


def snapshot_shows(files: GatewayFiles, counts: dict[str, int], revoked: list[str]) -> bool:
    snap = snapshot(files)
    if snap.get("replicas") != 2:
        return False
    records = {k["key_hash"]: k for k in snap.get("keys", [])}
    return all(snap["counts"].get(h, [0, -1])[1] == n for h, n in counts.items()) and all(
        records.get(h, {}).get("revoked") for h in revoked
    )


def _on_key(
    redis: DurableRedis,
    key: str,
    job: Callable[[RedisStore, RedisKeyBackend, ApiKey], Awaitable[Any]],
) -> Any:
    """``job(store, backend, record of key)`` against Redis directly (not through a gateway)."""

    async def run() -> Any:
        store = RedisStore(redis.url, prefix=PREFIX, timeout=5.0)
        backend = RedisKeyBackend(store.client, PREFIX)
        try:
            return await job(store, backend, (await backend.load())[hash_key(key)])
        finally:
            await store.close()

    return asyncio.run(run())


def usage(redis: DurableRedis, key: str) -> Usage:
    async def job(store: RedisStore, _: RedisKeyBackend, record: ApiKey) -> Usage:
        return await Limiter(store).usage(record)

    result: Usage = _on_key(redis, key, job)
    return result


def revoke(redis: DurableRedis, key: str) -> ApiKey:
    async def job(_: RedisStore, backend: RedisKeyBackend, record: ApiKey) -> ApiKey:
        await backend.put(revoked := replace(record, revoked=True))
        return revoked

    result: ApiKey = _on_key(redis, key, job)
    return result


def record_of(redis: DurableRedis, key: str) -> ApiKey:
    async def job(_: RedisStore, __: RedisKeyBackend, record: ApiKey) -> ApiKey:
        return record

    result: ApiKey = _on_key(redis, key, job)
    return result


class Load:
    """Requests with one key alternating between replicas, bounded in count and time."""

    def __init__(self, gws: list[GatewayProcess], key: str) -> None:
        self.gws, self.key = gws, key
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        i = 0
        while not self.stop.is_set() and i < 5000 and time.monotonic() < deadline:
            status, _ = call(self.gws[i % 2], self.key)
            self.statuses.append(status)
            i += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_two_replicas_through_redis_outages(net: Net, tmp_path: Path) -> None:
    redis = DurableRedis(directory=tmp_path / "aof")
    redis.directory.mkdir()
    redis.start()
    gws: list[GatewayProcess] = []
    try:
        files = [
            write_gateway_files(
                tmp_path / name,
                rpc_url=net.settlement.url,
                deployment=net.network.deployment,
                account=net.gateway_key,
                services={SERVICE: "devnet"},
                redis_url=redis.url,
                tables=OUTAGE_TABLES,
            )
            for name in ("a", "b")
        ]
        svc = {SERVICE: net.app_hex}
        quota = add_key(files[0], svc, name="quota", quota=40)
        rate = add_key(files[0], svc, name="rate", rate_limit=0.001, burst=10)
        load = add_key(files[0], svc, name="load")
        gone = add_key(files[0], svc, name="revoked-before")
        late = add_key(files[0], svc, name="revoked-during")
        quota2 = add_key(files[0], svc, name="quota2", quota=20)
        all_keys = [quota, rate, load, gone, late, quota2]
        revoke(redis, gone)
        gws = [GatewayProcess(f).start() for f in files]
        a, b = gws

        # -- Redis up: 10 of 40 used; both replicas see R = 2 and write it to their snapshot
        assert ok_count(a, quota, 10) == 10
        assert call(a, gone)[0] == call(b, gone)[0] == 401
        for f in files:
            wait_for(
                "snapshots with R=2 and the quota count",
                lambda f=f: snapshot_shows(f, {hash_key(quota): 10}, [hash_key(gone)]),
            )
            text = (f.directory / "gateway-state" / "snapshot.json").read_text()
            assert not any(k in text for k in all_keys)  # hashes only
            mode = (f.directory / "gateway-state" / "snapshot.json").stat().st_mode & 0o777
            assert mode == 0o600

        late_record = replace(record_of(redis, late), revoked=True)

        # -- Redis killed during load
        with Load(gws, load) as loader:
            wait_for("load before the kill", lambda: len(loader.statuses) >= 20)
            redis.kill()
            for gw in gws:
                wait_for("degraded", lambda gw=gw: redis_state(gw) == "degraded")
            seen = len(loader.statuses)
            wait_for("load during the outage", lambda: len(loader.statuses) >= seen + 20)
        load_ok = loader.statuses.count(200)
        assert loader.statuses == [200] * len(loader.statuses)  # known keys keep working

        # each replica gets (quota - last count) / R and burst / R: together within limits
        assert [ok_count(gw, quota, 25) for gw in gws] == [15, 15]
        assert [ok_count(gw, rate, 8) for gw in gws] == [5, 5]
        assert call(a, gone)[0] == call(b, gone)[0] == 401  # revoked before: still refused
        assert call(a, late)[0] == call(b, late)[0] == 200
        assert readyz(a)["redis"] == "degraded"
        metrics = urllib.request.urlopen(a.metrics_url, timeout=5).read().decode()  # noqa: S310
        assert "relaynet_gateway_store_degraded 1.0" in metrics

        # `late` is revoked while the gateways cannot see Redis (written into its AOF)
        redis.append_commands(
            ["HSET", PREFIX + "keys", late_record.key_hash, json.dumps(late_record.to_json())],
            ["INCR", PREFIX + "keys:version"],
        )
        redis.start()
        late_after: list[int] = []  # calls answered before the revocation was honoured

        def late_refused(gw: GatewayProcess) -> bool:
            status = call(gw, late)[0]
            late_after.append(status)
            return status == 401

        for gw in gws:
            wait_for("redis back", lambda gw=gw: redis_state(gw) == "ok")
            wait_for("late revocation honoured", lambda gw=gw: late_refused(gw), 20)

        # usage counted during the outage is in Redis, exactly once
        q = usage(redis, quota)
        assert (q.period_requests, q.total_requests) == (40, 40)
        assert usage(redis, rate).total_requests == 10
        # the one call in flight when Redis died may have run there with its reply lost: the
        # replica then counted it locally too (never less than once; see gateway/outage.py)
        load_counted = usage(redis, load).total_requests
        assert load_ok <= load_counted <= load_ok + 2
        # the two calls of the outage, plus any answered after Redis returned but before the
        # revocation reached that replica (counted in Redis directly, once)
        assert usage(redis, late).total_requests == 2 + late_after.count(200)

        # -- Redis down before the replicas start: they serve their snapshots
        for f in files:
            wait_for(
                "snapshots after the recovery",
                lambda f=f: snapshot_shows(
                    f, {hash_key(quota): 40}, [hash_key(gone), hash_key(late)]
                ),
            )
        for gw in gws:  # together: neither outlives the other's heartbeat and snapshots R=1
            gw.terminate()
        for gw in gws:
            gw.stop()
        redis.kill()
        for gw in gws:
            gw.start()  # waits for /readyz 200
            assert readyz(gw)["redis"] == "degraded"
        assert [ok_count(gw, load, 5) for gw in gws] == [5, 5]
        for key in (gone, late):
            assert call(a, key)[0] == call(b, key)[0] == 401
        assert [ok_count(gw, quota, 3) for gw in gws] == [0, 0]  # quota spent before
        assert [ok_count(gw, quota2, 14) for gw in gws] == [10, 10]
        redis.start()
        for gw in gws:
            wait_for("redis back after a degraded start", lambda gw=gw: redis_state(gw) == "ok")
        assert usage(redis, load).total_requests == load_counted + 10  # exactly once
        assert usage(redis, quota2).period_requests == 20

        # no API key in either log (refusals, outages, restarts)
        for gw in gws:
            log_text = gw.log_path.read_text(errors="replace")
            assert not any(k in log_text for k in all_keys)
    finally:
        for gw in gws:
            gw.stop()
        redis.kill()
