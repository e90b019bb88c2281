"""The stream rules of DESIGN §4 as pure decisions (gateway/streams.py), the subscription
leases on the memory and the Redis store driver (two RedisStore clients play two replicas),
and the rollups hook that names a pushed event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import orjson

from gateway.store import MemoryStore, RedisStore, Store
from gateway.streams import (
    Ending,
    Fault,
    check_index,
    ending,
    grown_window,
    is_lie,
    replace_at,
    stream_window,
)
from protocol.errors import ErrorCode
from rollups.registry import handler_for
from tests.support.redis_server import RedisServer


def test_windows_are_small_capped_by_the_chain_and_double_up_to_it() -> None:
    assert stream_window(32, 1000) == 32
    assert stream_window(32, 10) == 10  # max_stream_relays(n) of the session wins
    assert [grown_window(w, 100) for w in (32, 64, 100)] == [64, 100, 100]
    # the replacement opens at max_index - max(4, w/4)
    assert [replace_at(w) for w in (8, 16, 32, 64, 1000)] == [4, 12, 24, 48, 750]
    assert replace_at(3) == 1


def test_frames_come_in_order() -> None:
    assert check_index(1, 1) is None
    assert check_index(1, 8) is Fault.JUMP
    assert check_index(5, 999) is Fault.JUMP
    assert check_index(5, 4) is Fault.REPEAT
    assert check_index(5, 0) is Fault.REPEAT


def close(code: int | None, reason: str = "", last: int = 3, head: int = 100) -> Ending:
    return ending(code, reason, last_index=last, max_index=8, head=head, grace_end=110).kind


def test_how_a_stream_ends() -> None:
    assert close(4000, last=8) is Ending.DONE
    assert close(4000, last=7) is Ending.FAULT
    assert close(4001, head=108) is Ending.DONE  # within two blocks of grace_end
    assert close(4001, head=107) is Ending.FAULT
    assert close(4002, "BACKEND_UNAVAILABLE") is Ending.SKIP
    assert close(4002, "APP_OVER_BUDGET") is Ending.SKIP
    assert close(4002, "BAD_SIGNATURE") is Ending.FAULT
    assert close(4002, "made up") is Ending.FAULT
    assert close(None) is Ending.FAULT  # no close frame
    assert close(1001) is Ending.SKIP  # going away: not a fault, no churn either
    assert ending(None, "", last_index=0, max_index=8, head=0, grace_end=9).fault is (
        Fault.NO_CLOSE_FRAME
    )


def test_the_lie_group() -> None:
    lies = {
        "MALFORMED_HEADER",
        "UNSUPPORTED_VERSION",
        "PAYLOAD_HASH_MISMATCH",
        "BAD_SIGNATURE",
        "REPLAYED_RELAY",
        "BATCH_NOT_RELAYABLE",
        "INVALID_PAYLOAD",
        "WRONG_SUPPLIER",
    }
    relay_layer = set(ErrorCode) - {
        ErrorCode.MALFORMED_INPUT,  # not relay refusals: a relayer answering them invents
        ErrorCode.BAD_RECEIPT,
        ErrorCode.BAD_PROOF,
    }
    for code in relay_layer:
        assert is_lie(code.value) == (code.value in lies), code
    assert is_lie("BAD_RECEIPT")
    assert is_lie("INVALID_PAYLOAD")
    assert is_lie("NOT_A_CODE") and is_lie("")


async def check_leases(one: Store, two: Store, *, expire: Callable[[], Awaitable[None]]) -> None:
    """``one`` and ``two`` play two replicas on the same shared state."""
    assert await one.lease("k", "a", 2, 30.0)
    assert await two.lease("k", "b", 2, 30.0)
    assert not await two.lease("k", "c", 2, 30.0)  # the cap holds across replicas
    assert await one.lease("k", "a", 2, 30.0)  # a renewal is never refused
    assert await one.lease("other", "c", 2, 30.0)  # scopes are apart
    await one.release("k", "a")
    assert await two.lease("k", "c", 2, 30.0)
    await one.release("k", "zz")  # not held: nothing
    await expire()


async def test_leases_on_the_memory_driver() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])

    async def expire() -> None:  # a lease not renewed (its replica died) frees its place
        assert not await store.lease("k", "d", 2, 30.0)
        now[0] += 31.0
        assert await store.lease("k", "d", 2, 30.0)

    await check_leases(store, store, expire=expire)


async def test_leases_across_two_redis_clients(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one, two = (
        RedisStore(redis_server.url, prefix=prefix),
        RedisStore(redis_server.url, prefix=prefix),
    )

    async def expire() -> None:
        assert await one.lease("k2", "x", 1, 0.05)
        assert not await two.lease("k2", "y", 1, 30.0)
        await _expire(two, "k2", "y")

    try:
        await check_leases(one, two, expire=expire)
    finally:
        await one.close()
        await two.close()


async def _expire(store: RedisStore, scope: str, holder: str) -> None:
    for _ in range(200):  # Redis's own clock decides; 50 ms lease
        if await store.lease(scope, holder, 1, 30.0):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the expired lease was never freed")


def test_the_identity_of_a_pushed_event_ignores_the_nodes_subscription_id() -> None:
    evm = handler_for("evm")
    head = {"number": "0x5", "hash": "0x" + "ab" * 32, "parentHash": "0x" + "cd" * 32}

    def push(sub: str, result: object) -> bytes:
        return orjson.dumps(
            {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": sub, "result": result},
            }
        )

    assert evm.notification_identity(push("0x1", head)) == evm.notification_identity(
        push("0x2", head)
    )
    other = {**head, "hash": "0x" + "ef" * 32}
    assert evm.notification_identity(push("0x1", head)) != evm.notification_identity(
        push("0x1", other)
    )
    log = {"blockHash": "0x" + "11" * 32, "logIndex": "0x0", "removed": False}
    assert evm.notification_identity(push("0x1", log)) != evm.notification_identity(
        push("0x1", {**log, "removed": True})
    )
    celestia = handler_for("celestia")
    a = orjson.dumps({"jsonrpc": "2.0", "method": "xrpc.ch.val", "params": [1, {"height": 5}]})
    b = orjson.dumps({"jsonrpc": "2.0", "method": "xrpc.ch.val", "params": [7, {"height": 5}]})
    assert celestia.notification_identity(a) == celestia.notification_identity(b)
    comet = handler_for("cometbft")
    event = {"query": "tm.event='NewBlock'", "data": {"height": "5"}}
    c1 = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": event})
    c2 = orjson.dumps({"jsonrpc": "2.0", "id": "x", "result": event})
    assert comet.notification_identity(c1) == comet.notification_identity(c2)


def test_the_agreement_content_of_a_push_and_how_clients_name_subscriptions() -> None:
    """The rollups hooks ws.py relies on instead of knowing chains: what agreeing suppliers
    send identically (not the node's own id), how the client names a subscription, and the
    answer to an unsubscribe."""
    from rollups.handler import Call, SubscriptionIds

    evm = handler_for("evm")
    head = {"number": "0x5", "hash": "0x" + "ab" * 32, "stateRoot": "0x" + "01" * 32}

    def push(sub: str, result: object) -> bytes:
        return orjson.dumps(
            {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": sub, "result": result},
            }
        )

    assert evm.notification_result(push("0x1", head)) == evm.notification_result(push("0x2", head))
    lie = {**head, "stateRoot": "0x" + "66" * 32}  # same identity (hash), other bytes
    assert evm.notification_identity(push("0x1", lie)) == evm.notification_identity(
        push("0x1", head)
    )
    assert evm.notification_result(push("0x1", lie)) != evm.notification_result(push("0x1", head))
    subscribe = evm.subscription(Call("eth_subscribe", ["newHeads"], 1, b""))
    unsubscribe = evm.subscription(Call("eth_unsubscribe", ["0xab"], 2, b""))
    assert subscribe is not None and subscribe.ids is SubscriptionIds.GATEWAY
    assert unsubscribe is not None and unsubscribe.subscription_id == "0xab"
    assert (evm.unsubscribe_result(True), evm.unsubscribe_result(False)) == (b"true", b"false")
    assert evm.subscription(Call("eth_chainId", [], 3, b"")) is None

    comet = handler_for("cometbft")
    event = {"query": "tm.event='NewBlock'", "data": {"height": "5"}}
    c1 = orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": event})
    c2 = orjson.dumps({"jsonrpc": "2.0", "id": "x", "result": event})
    assert comet.notification_result(c1) == comet.notification_result(c2)
    every = comet.subscription(Call("unsubscribe_all", {}, 4, b""))
    assert every is not None and every.every and every.ids is SubscriptionIds.REQUEST
    assert comet.unsubscribe_result(True) == b"{}"

    celestia = handler_for("celestia")
    a = orjson.dumps({"jsonrpc": "2.0", "method": "xrpc.ch.val", "params": [1, {"height": 5}]})
    b = orjson.dumps({"jsonrpc": "2.0", "method": "xrpc.ch.val", "params": [7, {"height": 5}]})
    assert celestia.notification_result(a) == celestia.notification_result(b)
    header = celestia.subscription(Call("header.Subscribe", [], 5, b""))
    assert header is not None and header.ids is SubscriptionIds.CHANNEL
