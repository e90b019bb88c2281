"""The Redis-outage rules of one replica against a real redis-server (DESIGN §4): heartbeats
give R, the snapshot holds hashes only (0600), shares of rate and quota while Redis is away,
and the journal replayed exactly once — also when a replica dies in the middle of a replay."""

from __future__ import annotations

import json
import stat
import time
import uuid
from pathlib import Path

import pytest

from gateway.keys import ApiKey, KeyRing, generate_key, hash_key
from gateway.limiter import Limited, Limiter
from gateway.outage import JOURNAL, REPLAY, SNAPSHOT, Outage
from gateway.store import RedisStore
from tests.support.redis_server import DurableRedis

# real redis-server processes (the durable_redis fixture)
pytestmark = pytest.mark.slow

APP = "0x" + "ab" * 20


def record(**kw: object) -> tuple[str, ApiKey]:
    key = generate_key()
    fields: dict[str, object] = {
        "key_hash": hash_key(key),
        "name": "t",
        "services": {"eth": APP},
        "rate_limit": 0.0,
        "burst": 100.0,
    }
    fields.update(kw)
    return key, ApiKey(**fields)  # type: ignore[arg-type]


def outage(store: RedisStore, d: Path) -> Outage:
    return Outage(store, d, heartbeat_interval=0.2, heartbeat_ttl=30.0, retry_after=0.1)


async def admitted(limiter: Limiter, rec: ApiKey, tries: int) -> int:
    ok = 0
    for _ in range(tries):
        try:
            await limiter.admit(rec, "eth", 1)
        except Limited:
            continue
        ok += 1
    return ok


async def test_snapshot_holds_hashes_records_r_and_counts(
    redis_store: RedisStore, tmp_path: Path
) -> None:
    key, rec = record(quota=40)
    a, b = outage(redis_store, tmp_path / "a"), outage(redis_store, tmp_path / "b")
    assert a.replica != b.replica
    await a.beat()
    await b.beat()
    await a.beat()
    assert a.replicas == 2
    await Limiter(redis_store, outage=a).admit(rec, "eth", 10)
    await a.after_reload({rec.key_hash: rec}, time.time())
    path = tmp_path / "a" / SNAPSHOT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in path.read_text()
    snap = a.load_snapshot()
    assert snap is not None
    assert snap.replicas == 2 and snap.keys == {rec.key_hash: rec}
    assert snap.counts[rec.key_hash][1] == 10
    # the replica id survives a restart (replay guards are named by it)
    assert outage(redis_store, tmp_path / "a").replica == a.replica


async def test_shares_while_redis_is_away(redis_store: RedisStore, tmp_path: Path) -> None:
    _, quota = record(quota=40)
    _, rate = record(rate_limit=0.001, burst=10)
    o = outage(redis_store, tmp_path)
    o.replicas = 2
    limiter = Limiter(redis_store, outage=o)
    await limiter.admit(quota, "eth", 10)
    await o.after_reload({quota.key_hash: quota, rate.key_hash: rate}, time.time())
    o.lost()
    # (quota - last count) / R and burst / R: this replica's share
    assert await admitted(limiter, quota, 30) == 15
    assert await admitted(limiter, rate, 10) == 5
    assert o.degraded


async def test_journal_replayed_once_even_after_a_crash_mid_replay(
    durable_redis: DurableRedis, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = RedisStore(durable_redis.url, prefix=prefix)
    try:
        _, rec = record(quota=1000)
        o = outage(store, tmp_path)
        limiter = Limiter(store, outage=o)
        await limiter.admit(rec, "eth", 3)
        o.lost()
        assert await admitted(limiter, rec, 7) == 7
        assert (await limiter.usage(rec)).period_requests == 3  # not in Redis yet
        assert stat.S_IMODE((tmp_path / JOURNAL).stat().st_mode) == 0o600
        # a replica dies mid-replay: its batch reached Redis, the removal did not
        pending = o._cut_journal()
        [batch] = pending["batches"]
        guard = f"replay:{o.replica}:{batch['seq']}"
        assert await store.replay(
            guard, rec.key_hash, batch["period"], "eth", batch["count"], batch["ttl"]
        )
        assert (tmp_path / REPLAY).exists()
        # restarted (same state dir), it replays the pending batch again: SET NX refuses it
        again = outage(store, tmp_path)
        assert await again.beat()
        usage = await Limiter(store).usage(rec)
        assert (usage.period_requests, usage.total_requests, usage.by_service) == (
            10,
            10,
            {"eth": 10},
        )
        assert json.loads((tmp_path / REPLAY).read_text())["batches"] == []
        assert not again.degraded
    finally:
        await store.close()


async def test_counting_resumes_in_redis_only_after_the_replay(
    durable_redis: DurableRedis, tmp_path: Path
) -> None:
    store = RedisStore(durable_redis.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    try:
        _, rec = record(quota=100)
        o = outage(store, tmp_path)
        limiter = Limiter(store, outage=o)
        durable_redis.kill()
        await limiter.admit(rec, "eth", 4)  # Redis gone: counted locally
        assert o.degraded
        assert not await o.beat()
        durable_redis.start()
        await limiter.admit(rec, "eth", 1)  # still degraded until a beat replays
        assert await o.beat()
        await limiter.admit(rec, "eth", 2)  # in Redis again
        assert (await limiter.usage(rec)).period_requests == 7
    finally:
        await store.close()


async def test_a_snapshot_serves_keys_when_redis_is_down_at_start(
    redis_store: RedisStore, tmp_path: Path
) -> None:
    key, live = record()
    revoked_key, gone = record(revoked=True)
    o = outage(redis_store, tmp_path)
    await o.after_reload({live.key_hash: live, gone.key_hash: gone}, time.time())

    class Down:
        async def version(self) -> str:
            from gateway.store.base import StoreUnavailable

            raise StoreUnavailable("down")

    ring = KeyRing(Down())  # type: ignore[arg-type]
    snap = outage(redis_store, tmp_path).load_snapshot()
    assert snap is not None
    ring.adopt(snap.keys)
    assert ring.lookup(key) == live
    with pytest.raises(Exception, match="invalid API key"):
        ring.lookup(revoked_key)


async def test_the_key_ring_keeps_no_plaintext_key(tmp_path: Path) -> None:
    """Look-ups hash the presented key every time: nothing reachable from the ring holds it."""
    from gateway.keys import FileKeyBackend

    backend = FileKeyBackend(tmp_path / "keys.json")
    key, rec = record()
    await backend.put(rec)
    ring = KeyRing(backend)
    await ring.refresh()
    for _ in range(3):
        assert ring.lookup(key) == rec
    with pytest.raises(Exception, match="invalid API key"):
        ring.lookup(generate_key())

    def holds(obj: object, depth: int = 0) -> bool:
        if isinstance(obj, str):
            return key in obj
        if depth > 4:
            return False
        if isinstance(obj, dict):
            return any(holds(k, depth + 1) or holds(v, depth + 1) for k, v in obj.items())
        if isinstance(obj, list | tuple | set | frozenset):
            return any(holds(v, depth + 1) for v in obj)
        attrs = getattr(obj, "__dict__", None)
        return attrs is not None and holds(attrs, depth + 1)

    assert not holds(ring)
