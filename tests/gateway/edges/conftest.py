"""Fixtures of the edge tests (limits, Redis outage, SSRF, keys in logs)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store import RedisStore
from tests.support.redis_server import DurableRedis


@pytest.fixture
def durable_redis() -> Iterator[DurableRedis]:
    with tempfile.TemporaryDirectory(prefix="relaynet-aof-") as d:
        server = DurableRedis(directory=Path(d)).start()
        try:
            yield server
        finally:
            server.kill()


@pytest.fixture
async def redis_store(durable_redis: DurableRedis) -> AsyncIterator[RedisStore]:
    store = RedisStore(durable_redis.url, prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield store
    await store.close()
