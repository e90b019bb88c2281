"""Floors and filter pins in the shared store (DESIGN §4): an atomic max shared by replicas,
with a time to live, on the memory and the Redis driver alike."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.store import MemoryStore
from gateway.store.base import Store
from gateway.store.redis import RedisStore
from tests.support.redis_server import RedisServer


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.slow)])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' views of one shared store."""
    if request.param == "memory":
        one = MemoryStore()
        yield one, one
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"t11:{uuid.uuid4().hex[:8]}:"
    a, b = RedisStore(server.url, prefix=prefix), RedisStore(server.url, prefix=prefix)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_floor_only_rises_across_replicas(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    assert await a.floor_get("c:devnet") is None
    assert await a.floor_raise("c:devnet", 100, 60) == 100
    assert await b.floor_raise("c:devnet", 90, 60) == 100  # never backwards
    assert await b.floor_get("c:devnet") == 100
    # racing replicas: the highest wins, whatever the order
    await asyncio.gather(*(r.floor_raise("c:devnet", h, 60) for r, h in ((a, 150), (b, 120))))
    assert await a.floor_get("c:devnet") == 150
    assert await a.floor_raise("c:devnet", 2**40, 60) == 2**40  # big heights stay exact


async def test_floors_and_pins_expire(replicas: tuple[Store, Store]) -> None:
    a, b = replicas
    await a.floor_raise("c:short", 7, 0.05)
    await a.pin_put("c:devnet:0x1", b"pinned", 0.05)
    assert await b.pin_get("c:devnet:0x1") == b"pinned"
    for _ in range(200):
        if await b.floor_get("c:short") is None and await b.pin_get("c:devnet:0x1") is None:
            break
        await asyncio.sleep(0.01)
    assert await b.floor_get("c:short") is None
    assert await b.pin_get("c:devnet:0x1") is None
