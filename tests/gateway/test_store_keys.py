"""Keys, limits, cache agreement and QoS state on the memory and the Redis store drivers
(real redis-server), and serving on when Redis goes away."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cache import AnswerCache
from gateway.errors import BadRequest, ClientReason
from gateway.keys import (
    ApiKey,
    FileKeyBackend,
    KeyRing,
    RedisKeyBackend,
    generate_key,
    hash_key,
)
from gateway.limiter import Limiter
from gateway.outage import Outage
from gateway.store import FallbackStore, MemoryStore, RedisStore, Store, StoreUnavailable
from tests.support.redis_server import RedisServer, param_store

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


APP = "0x" + "ab" * 20


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    async with param_store(request, "redis_server") as s:
        yield s


def record(**kw: object) -> tuple[str, ApiKey]:
    key = generate_key()
    fields: dict[str, object] = {"key_hash": hash_key(key), "name": "t", "services": {"eth": APP}}
    fields.update(kw)
    return key, ApiKey(**fields)  # type: ignore[arg-type]


async def test_rate_limit_token_bucket(store: Store) -> None:
    _, rec = record(rate_limit=0.001, burst=3)
    limiter = Limiter(store)
    for _ in range(3):
        await limiter.admit(rec, "eth")
    with pytest.raises(BadRequest) as info:
        await limiter.admit(rec, "eth")
    assert info.value.reason is ClientReason.RATE_LIMITED and info.value.http_status == 429
    # a batch counts each element
    _, rec2 = record(rate_limit=0.001, burst=5)
    with pytest.raises(BadRequest):
        await limiter.admit(rec2, "eth", requests=6)


async def test_quota_and_usage(store: Store) -> None:
    _, rec = record(rate_limit=0, quota=4, quota_period=3600)
    limiter = Limiter(store)
    await limiter.admit(rec, "eth", requests=3)
    await limiter.admit(rec, "eth")
    with pytest.raises(BadRequest) as info:
        await limiter.admit(rec, "eth")
    assert info.value.reason is ClientReason.QUOTA_EXCEEDED and info.value.http_status == 429
    usage = await limiter.usage(rec)
    assert usage.period_requests == 4 and usage.total_requests == 4
    assert usage.by_service == {"eth": 4}


async def test_cache_needs_two_agreeing_suppliers(store: Store) -> None:
    cache = AnswerCache(store, agreement=2)
    key = f"eth:k{uuid.uuid4().hex}"
    good = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
    bad = b'{"jsonrpc":"2.0","id":5,"result":"0x666"}'
    meta = {"relay_request": "rq", "relay_receipt": "rc"}
    assert not await cache.offer(key, 30, status=200, body=good, supplier="s1", **meta)
    assert await cache.lookup(key, b"1") is None
    # the same supplier again does not count twice; a disagreeing one does not help
    assert not await cache.offer(key, 30, status=200, body=good, supplier="s1", **meta)
    assert not await cache.offer(key, 30, status=200, body=bad, supplier="s2", **meta)
    assert await cache.lookup(key, b"1") is None
    # a second supplier agreeing (with another client id in its answer) stores it
    other_id = b'{"jsonrpc":"2.0","id":"zz","result":"0x1"}'
    assert await cache.offer(key, 30, status=200, body=other_id, supplier="s3", **meta)
    hit = await cache.lookup(key, b'"mine"')
    assert hit is not None and hit.body == b'{"jsonrpc":"2.0","id":"mine","result":"0x1"}'
    assert hit.relay_receipt == "rc"


async def test_failures_are_never_cached(store: Store) -> None:
    cache = AnswerCache(store, agreement=1)
    key = f"eth:f{uuid.uuid4().hex}"
    err = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
    assert not await cache.offer(
        key, 30, status=502, body=err, supplier="a", relay_request="", relay_receipt=""
    )
    assert await cache.lookup(key, b"1") is None


async def test_qos_observations_shared(store: Store) -> None:
    scope = f"h:{uuid.uuid4().hex[:6]}"
    await store.qos_publish(scope, "aa", b"12", 30)
    await store.qos_publish(scope, "bb", b"13", 30)
    assert await store.qos_read(scope) == {"aa": b"12", "bb": b"13"}


async def test_keys_file_backend_reload_and_constant_time_lookup(tmp_path: Path) -> None:
    backend = FileKeyBackend(tmp_path / "keys.json")
    ring = KeyRing(backend, reload_interval=0.1)
    key, rec = record()
    await ring.refresh()
    with pytest.raises(BadRequest) as info:
        ring.lookup(key)
    assert info.value.reason is ClientReason.UNAUTHORIZED
    await backend.put(rec)
    assert await ring.refresh()
    assert ring.lookup(key).key_hash == rec.key_hash
    # stored hashed: the key itself is nowhere in the file
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() in text
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    from dataclasses import replace

    await backend.put(replace(rec, revoked=True))
    assert await ring.refresh()
    with pytest.raises(BadRequest):
        ring.lookup(key)
    with pytest.raises(BadRequest):
        ring.lookup(None)
    assert KeyRing.app_for(rec, "eth") == APP
    with pytest.raises(BadRequest) as info:
        KeyRing.app_for(rec, "other")
    assert info.value.reason is ClientReason.SERVICE_NOT_ALLOWED


async def test_keys_redis_backend_shared_by_replicas(redis_server: RedisServer) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}:"
    s1, s2 = (
        RedisStore(redis_server.url, prefix=prefix),
        RedisStore(redis_server.url, prefix=prefix),
    )
    try:
        ring1 = KeyRing(RedisKeyBackend(s1.client, prefix))
        ring2 = KeyRing(RedisKeyBackend(s2.client, prefix))
        key, rec = record()
        await RedisKeyBackend(s1.client, prefix).put(rec)
        assert await ring1.refresh() and await ring2.refresh()
        assert ring2.lookup(key).name == "t"
        assert not await ring2.refresh()  # unchanged version: no reload
        raw = await s1.client.hgetall(f"{prefix}keys")
        assert key.encode() not in b"".join(raw.values())
        assert json.loads(next(iter(raw.values())))["key_hash"] == rec.key_hash
        # limits shared: a bucket drained through one replica is empty for the other
        _, limited = record(rate_limit=0.001, burst=2)
        await Limiter(s1).admit(limited, "eth", 2)
        with pytest.raises(BadRequest):
            await Limiter(s2).admit(limited, "eth")
    finally:
        await s1.close()
        await s2.close()


async def test_redis_going_away_falls_back_to_memory() -> None:
    server = RedisServer().start()
    changes: list[bool] = []
    store = FallbackStore(
        RedisStore(server.url), MemoryStore(), retry_after=0.1, on_change=changes.append
    )
    try:
        await store.incr("c", 5)
        assert await store.counter("c") == 5
        assert not store.degraded
        server.stop()
        with pytest.raises(StoreUnavailable):
            await store.primary.counter("c")
        # still serving: limits and cache from memory
        assert await store.take("b", 1.0, 2.0)
        await store.cache_put("k", b"v", 10)
        assert await store.cache_get("k") == b"v"
        assert store.degraded and changes == [False]
    finally:
        await store.close()
        server.stop()


@pytest.mark.parametrize("replicated", [False, True], ids=["memory", "with-outage-rules"])
async def test_gate_on_a_key_without_limits_needs_no_store_but_limited_keys_still_gate(
    replicated: bool, tmp_path: Path
) -> None:
    class Counting(MemoryStore):
        calls = 0

        async def admit(self, charge):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return await super().admit(charge)

    store = Counting()
    # with Redis the limiter runs under the outage rules (gateway/outage.py): the gate of a key
    # without limits is still no store call — half the Redis round trips of a request
    outage = Outage(store, tmp_path / "state") if replicated else None  # type: ignore[arg-type]
    limiter = Limiter(store, outage=outage)
    _, free = record(rate_limit=0, quota=0)
    await limiter.gate(free, "eth")
    assert Counting.calls == 0  # nothing to gate: no store call on the hot path
    await limiter.admit(free, "eth")  # usage is still counted
    assert (await limiter.usage(free)).total_requests == 1
    _, spent = record(rate_limit=0, quota=1, quota_period=3600)
    await limiter.admit(spent, "eth")
    with pytest.raises(BadRequest) as info:  # a spent quota is refused at the gate
        await limiter.gate(spent, "eth")
    assert info.value.reason is ClientReason.QUOTA_EXCEEDED
    _, slow = record(rate_limit=0.001, burst=1)
    await limiter.gate(slow, "eth")
    with pytest.raises(BadRequest):  # and a rate limit too
        await limiter.gate(slow, "eth")
