"""The limiter's check and count (DESIGN §4): one atomic step on both drivers, a refusal
consumes nothing, every Redis key of one API key shares a hash tag, 429 carries Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.errors import ClientReason
from gateway.keys import ApiKey, generate_key, hash_key
from gateway.limiter import Limited, Limiter
from gateway.store import MemoryStore, RedisStore, Store
from gateway.store.base import Charge
from tests.support.redis_server import DurableRedis

# real redis-server processes (the durable_redis fixture)
pytestmark = pytest.mark.slow

APP = "0x" + "ab" * 20


def record(**kw: object) -> ApiKey:
    fields: dict[str, object] = {
        "key_hash": hash_key(generate_key()),
        "name": "t",
        "services": {"eth": APP},
        "rate_limit": 0.0,
        "burst": 100.0,
        "quota": 0,
    }
    fields.update(kw)
    return ApiKey(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: DurableRedis = request.getfixturevalue("durable_redis")
    s = RedisStore(server.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield s
    await s.close()


def bucket_probe(rec: ApiKey) -> Charge:
    """One token from the key's bucket, nothing else (to see what the bucket holds)."""
    return Charge(rec.key_hash, 0.001, rec.burst, 1.0, 0, 0, 60.0, 0, 0, "eth")


async def test_a_quota_refusal_takes_no_token(store: Store) -> None:
    rec = record(rate_limit=0.001, burst=3, quota=2)
    limiter = Limiter(store)
    await limiter.admit(rec, "eth", 2)  # 1 token left, quota spent
    with pytest.raises(Limited) as refused:
        await limiter.admit(rec, "eth", 1)
    assert refused.value.reason is ClientReason.QUOTA_EXCEEDED
    assert refused.value.retry_after > 0
    # the refused call took nothing: exactly one token is still there
    assert (await store.admit(bucket_probe(rec))).ok
    assert not (await store.admit(bucket_probe(rec))).ok


async def test_a_rate_refusal_counts_nothing(store: Store) -> None:
    rec = record(rate_limit=0.001, burst=2, quota=10)
    limiter = Limiter(store)
    await limiter.admit(rec, "eth", 2)
    with pytest.raises(Limited) as refused:
        await limiter.admit(rec, "eth", 1)
    assert refused.value.reason is ClientReason.RATE_LIMITED
    assert refused.value.retry_after_header.isdigit()
    assert int(refused.value.retry_after_header) >= 1
    usage = await limiter.usage(rec)
    assert (usage.period_requests, usage.total_requests, usage.by_service) == (2, 2, {"eth": 2})


async def test_gate_takes_one_token_before_parsing_and_admit_the_rest(store: Store) -> None:
    rec = record(rate_limit=0.001, burst=5, quota=100)
    limiter = Limiter(store)
    await limiter.gate(rec, "eth")  # before the body is read: one token, nothing counted
    assert (await limiter.usage(rec)).period_requests == 0
    await limiter.admit(rec, "eth", 4, prepaid=1)  # a batch of 4: three more tokens
    assert (await limiter.usage(rec)).period_requests == 4
    await limiter.gate(rec, "eth")  # the fifth token
    with pytest.raises(Limited):
        await limiter.gate(rec, "eth")
    await limiter.count(rec, "eth", 3)  # a push: quota and usage, no token
    assert (await limiter.usage(rec)).period_requests == 7


async def test_gate_refuses_a_spent_quota(store: Store) -> None:
    rec = record(quota=1)
    limiter = Limiter(store)
    await limiter.gate(rec, "eth")
    await limiter.admit(rec, "eth", 1, prepaid=1)
    with pytest.raises(Limited) as refused:
        await limiter.gate(rec, "eth")
    assert refused.value.reason is ClientReason.QUOTA_EXCEEDED


async def test_concurrent_replicas_never_overrun_the_quota(durable_redis: DurableRedis) -> None:
    """Two replicas (two clients) admitting at once: check and count are one step, so exactly
    the quota is admitted and counted."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    replicas = [RedisStore(durable_redis.url, prefix=prefix, timeout=5.0) for _ in range(2)]
    rec = record(quota=50)
    try:

        async def one(i: int) -> bool:
            try:
                await Limiter(replicas[i % 2]).admit(rec, "eth", 1)
            except Limited:
                return False
            return True

        results = await asyncio.gather(*(one(i) for i in range(120)))
        assert sum(results) == 50
        assert (await Limiter(replicas[0]).usage(rec)).period_requests == 50
    finally:
        for r in replicas:
            await r.close()


async def test_every_limit_key_of_one_api_key_shares_a_hash_tag(
    durable_redis: DurableRedis,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = RedisStore(durable_redis.url, prefix=prefix)
    raw = aioredis.Redis.from_url(durable_redis.url)
    rec = record(rate_limit=10.0, burst=10, quota=10)
    try:
        await Limiter(store).admit(rec, "eth", 1)
        keys = sorted([k.decode() async for k in raw.scan_iter(match=prefix + "*")])
        assert len(keys) == 4  # bucket, period quota, usage, usage of the service
        for k in keys:
            # Redis Cluster hashes only what is inside the first {...}: the key's hash
            assert k[k.index("{") + 1 : k.index("}")] == rec.key_hash
    finally:
        await store.close()
        await raw.aclose()
