"""The router's rules with scripted relayers (in process): retries, writes never duplicated
blindly, hedging, pinning, eth_blockNumber monotonic, cache agreement, batch order."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest

from gateway.batch import run_batch
from gateway.cache import AnswerCache
from gateway.config import RelayConfig
from gateway.errors import RelayFailed
from gateway.failsafe.retry import Outcome
from gateway.jsonrpc import parse_body
from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayAnswer, RelayError, Target
from gateway.router import ClientContext, Router
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionView
from gateway.store import MemoryStore
from protocol.errors import Refusal
from rollups.catalogue import catalogue_spec
from rollups.registry import handler_for

SUPPLIERS = [bytes([i]) * 20 for i in (1, 2, 3)]
APP = b"\xaa" * 20


@dataclass
class ScriptedClient:
    """Stands in for RelayClient: each supplier answers by a script."""

    script: dict[bytes, str] = field(default_factory=dict)
    results: dict[bytes, Callable[[bytes], bytes]] = field(default_factory=dict)
    calls: list[tuple[bytes, bytes]] = field(default_factory=list)
    inline: list[bool] = field(default_factory=list)  # each attempt: signature checked inline?
    confirmed: list[bytes] = field(default_factory=list)
    on_late_lie: object = None

    async def relay(
        self, target: Target, payload: bytes, _cu: int, *, inline: bool = False, **_: object
    ) -> RelayAnswer:
        """RelayClient.relay's call; the timeout and the answer cap are not scripted."""
        self.calls.append((target.supplier, payload))
        self.inline.append(inline)
        mode = self.script.get(target.supplier, "ok")
        if mode == "unsent":
            raise RelayError("refused", outcome=Outcome.UNSENT, supplier=target.supplier)
        if mode == "maybe_sent":
            raise RelayError("timeout", outcome=Outcome.MAYBE_SENT, supplier=target.supplier)
        if mode == "slow":
            await asyncio.sleep(1.0)
        body = self.answer(target, payload)
        if mode == "forged_sig":  # right hash, bad signature: caught only when verified
            unverified = (target, b"d", b"h", b"s")
            return RelayAnswer(target.supplier, 200, body, "rq", "rc", 0.001, False, unverified)
        return RelayAnswer(target.supplier, 200, body, "rq", "rc", 0.001, True)

    def answer(self, target: Target, payload: bytes) -> bytes:
        """The answer's body: the supplier's entry in ``results``, else an echo."""
        return self.results.get(target.supplier, _echo_result)(payload)

    def confirm(self, answer: RelayAnswer) -> None:
        self.confirmed.append(answer.supplier)
        if answer.unverified is not None and self.script.get(answer.supplier) == "forged_sig":
            raise RelayError(
                "bad receipt",
                outcome=Outcome.MAYBE_SENT,
                supplier=answer.supplier,
                refusal=Refusal.LIE,
            )


def _echo_result(payload: bytes) -> bytes:
    req = orjson.loads(payload)
    rid = orjson.dumps(req.get("id"))
    method = req["method"]
    result = {
        "eth_chainId": b'"0x7a69"',
        "eth_blockNumber": b'"0x10"',
        "eth_newFilter": b'"0xf1"',
        "eth_sendRawTransaction": b'"0x' + b"ab" * 32 + b'"',
    }.get(method, b'"0x' + hashlib.sha256(payload).hexdigest()[:8].encode() + b'"')
    return b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + result + b"}"


class FakeSessions:
    def __init__(self) -> None:
        self.view_ = SessionView(
            "devnet",
            APP,
            5,
            tuple(
                Target("devnet", APP, 5, s, f"http://r{i}.example/v1/relay", b"k" * 32)
                for i, s in enumerate(SUPPLIERS)
            ),
        )

    def signing(self, service_id: str, app: bytes) -> SessionView:
        return self.view_

    def fallback(self, service_id: str, app: bytes, n: int) -> SessionView | None:
        return None

    def view(self, service_id: str, app: bytes, n: int) -> SessionView | None:
        return self.view_


def make_router(
    client: ScriptedClient, *, hedge: float | None = 0.05, cache: bool = False
) -> tuple[Router, ClientContext, GatewayMetrics]:
    metrics = GatewayMetrics()
    router = Router(
        sessions=FakeSessions(),  # type: ignore[arg-type]
        client=client,  # type: ignore[arg-type]
        qos=Qos(),
        cache=AnswerCache(MemoryStore(), agreement=2) if cache else None,
        metrics=metrics,
        config=RelayConfig(hedge_delay=hedge, max_attempts=3),
    )
    svc = Service("devnet", catalogue_spec("devnet"), handler_for("evm"))
    return router, ClientContext("client-1", "c1", svc, APP), metrics


def call(body: bytes):  # type: ignore[no-untyped-def]
    return parse_body(body).calls[0]


WRITE = b'{"jsonrpc":"2.0","method":"eth_sendRawTransaction","params":["0x02f8"],"id":1}'
READ = (
    b'{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x'
    + b"00" * 20
    + b'","latest"],"id":2}'
)


async def test_write_that_may_have_landed_is_never_sent_again() -> None:
    client = ScriptedClient(script=dict.fromkeys(SUPPLIERS, "maybe_sent"))
    router, ctx, _ = make_router(client)
    with pytest.raises(RelayFailed):
        await router.execute(ctx, call(WRITE))
    assert len(client.calls) == 1


async def test_write_refused_before_forwarding_goes_elsewhere_once() -> None:
    client = ScriptedClient()
    router, ctx, _ = make_router(client)
    first = router.qos.choose  # make the first pick the refusing supplier
    client.script[SUPPLIERS[0]] = "unsent"
    picks = iter([SUPPLIERS[0]])
    router.qos.choose = lambda *a, **k: next(picks, None) or first(*a, **k)  # type: ignore[method-assign]
    answer = await router.execute(ctx, call(WRITE))
    assert answer.source == "relay"
    assert next(s for s, _ in client.calls) == SUPPLIERS[0] and len(client.calls) == 2
    assert client.calls[1][0] != SUPPLIERS[0]


async def test_reads_retry_on_another_supplier() -> None:
    client = ScriptedClient(script={SUPPLIERS[0]: "maybe_sent", SUPPLIERS[1]: "maybe_sent"})
    router, ctx, _metrics = make_router(client, hedge=None)
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier == "0x" + SUPPLIERS[2].hex()
    assert len({s for s, _ in client.calls}) == len(client.calls)  # never the same one twice


async def test_slow_read_is_hedged_to_another_supplier() -> None:
    client = ScriptedClient(script={SUPPLIERS[0]: "slow"})
    router, ctx, metrics = make_router(client, hedge=0.05)
    picks = iter([SUPPLIERS[0]])
    first = router.qos.choose
    router.qos.choose = lambda *a, **k: next(picks, None) or first(*a, **k)  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier != "0x" + SUPPLIERS[0].hex()
    assert loop.time() - started < 0.9  # did not wait for the slow one
    assert metrics.hedges.labels("devnet", "fired")._value.get() == 1


async def test_a_client_cancelling_a_hedged_read_is_not_taken_for_the_hedge() -> None:
    """A client that goes away while a hedged read has its first attempt and its hedge out
    ends the call: both attempts are cancelled, none is left running."""
    client = ScriptedClient(script=dict.fromkeys(SUPPLIERS, "slow"))
    router, ctx, metrics = make_router(client, hedge=0.01)
    task = asyncio.ensure_future(router.execute(ctx, call(READ)))
    for _ in range(200):  # bounded: until the hedge is out
        await asyncio.sleep(0.01)
        if len(client.calls) == 2:
            break
    assert len(client.calls) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.hedges.labels("devnet", "fired")._value.get() == 1
    cancelled = sum(
        metrics.relays.labels("devnet", "0x" + s.hex(), "cancelled")._value.get() for s in SUPPLIERS
    )
    assert cancelled == 2  # the first attempt and the hedge


async def test_writes_are_never_hedged() -> None:
    client = ScriptedClient(script=dict.fromkeys(SUPPLIERS, "slow"))
    router, ctx, _metrics = make_router(client, hedge=0.01)
    await router.execute(ctx, call(WRITE))
    assert len(client.calls) == 1


async def test_filter_calls_are_pinned_to_their_supplier() -> None:
    client = ScriptedClient()
    router, ctx, _ = make_router(client)
    await router.execute(
        ctx, call(b'{"jsonrpc":"2.0","method":"eth_newFilter","params":[{}],"id":1}')
    )
    creator = client.calls[-1][0]
    for i in range(20):
        await router.execute(
            ctx,
            call(
                b'{"jsonrpc":"2.0","method":"eth_getFilterChanges","params":["0xF1"],"id":%d}' % i
            ),
        )
        assert client.calls[-1][0] == creator


async def test_block_number_never_goes_backwards_for_a_client() -> None:
    client = ScriptedClient()
    heights = {SUPPLIERS[0]: 0x10, SUPPLIERS[1]: 0x0F, SUPPLIERS[2]: 0x0E}
    for s, h in heights.items():
        client.results[s] = lambda p, h=h: (
            b'{"jsonrpc":"2.0","id":'
            + orjson.dumps(orjson.loads(p)["id"])
            + b',"result":"'
            + hex(h).encode()
            + b'"}'
        )
    router, ctx, _ = make_router(client, hedge=None)
    for s, h in heights.items():  # what the health probes report before any client call
        router.qos.observe_height("devnet", s, h)
    seen = []
    for i in range(30):
        a = await router.execute(
            ctx, call(b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":%d}' % i)
        )
        seen.append(int(orjson.loads(a.body)["result"], 16))
        assert orjson.loads(a.body)["id"] == i
    first_max = seen.index(0x10) if 0x10 in seen else len(seen)
    assert all(b >= a for a, b in itertools.pairwise(seen)), seen
    assert first_max < len(seen)


async def test_cache_fills_only_after_two_suppliers_agree() -> None:
    client = ScriptedClient()
    router, ctx, _ = make_router(client, cache=True)
    sources = []
    for i in range(12):
        a = await router.execute(
            ctx, call(b'{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":%d}' % i)
        )
        sources.append(a.source)
        assert orjson.loads(a.body) == {"jsonrpc": "2.0", "id": i, "result": "0x7a69"}
    relayed_by = {s for s, _ in client.calls}
    assert sources[0] == "relay" and "cache" in sources
    assert len(relayed_by) >= 2  # a hit needs two distinct suppliers to have agreed first
    assert sources.index("cache") >= 2


async def test_batch_answers_in_order_ids_untouched() -> None:
    client = ScriptedClient()
    router, ctx, _ = make_router(client)
    body = (
        b'[{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":"z"},'
        b'{"jsonrpc":"2.0","method":"eth_chainId","params":[]},'
        b'{"jsonrpc":"2.0","method":"foo_bar","params":[],"id":7},'
        b"3,"
        b'{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x00","latest"],"id":-1}]'
    )
    batch = await run_batch(router, ctx, parse_body(body).calls)
    out = orjson.loads(batch.body)
    assert [o["id"] for o in out] == ["z", 7, None, -1]
    assert out[1]["error"] == {"code": -32601, "message": "Method not found"}
    assert out[2]["error"]["code"] == -32600
    only_notes = b'[{"jsonrpc":"2.0","method":"eth_chainId","params":[]}]'
    assert (await run_batch(router, ctx, parse_body(only_notes).calls)).status == 204


def test_split_id_cuts_only_plain_single_ids() -> None:
    from gateway.cache import split_id

    t1 = split_id(b'{"jsonrpc":"2.0","id":17,"method":"eth_chainId"}')
    t2 = split_id(b'{"jsonrpc":"2.0","id":"ab","method":"eth_chainId"}')
    assert t1 is not None and t2 is not None
    assert t1[0] == t2[0] and (t1[1], t2[1]) == (b"17", b'"ab"')
    assert split_id(b'{"id":1,"params":[{"id":2}]}') is None
    assert split_id(b'{"id":1.5}') is None and split_id(b'{"id":"a\\"b"}') is None


async def test_final_hits_enter_the_front_cache() -> None:
    client = ScriptedClient()
    router, ctx, _ = make_router(client, cache=True)
    for i in range(12):
        await router.execute(ctx, call(b'{"jsonrpc":"2.0","id":%d,"method":"eth_chainId"}' % i))
    hit = router.front.get("devnet", b'{"jsonrpc":"2.0","id":\x00,"method":"eth_chainId"}')
    assert hit is not None and hit.prefix + b'"q"' + hit.suffix == (
        b'{"jsonrpc":"2.0","id":"q","result":"0x7a69"}'
    )


async def test_an_answer_after_a_failure_has_its_receipt_signature_checked_inline() -> None:
    client = ScriptedClient(script={SUPPLIERS[0]: "unsent", SUPPLIERS[1]: "unsent"})
    router, ctx, _ = make_router(client, hedge=None)
    first = router.qos.choose  # the first pick refuses, so a second attempt is certain
    picks = iter([SUPPLIERS[0]])
    router.qos.choose = lambda *a, **k: next(picks, None) or first(*a, **k)  # type: ignore[method-assign]
    answer = await router.execute(ctx, call(READ))
    assert answer.source == "relay"
    assert len(client.inline) >= 2
    assert client.inline[0] is False and all(client.inline[1:])


async def test_an_unverified_answer_enters_the_cache_only_once_verified() -> None:
    client = ScriptedClient(script=dict.fromkeys(SUPPLIERS, "forged_sig"))
    router, ctx, metrics = make_router(client, hedge=None, cache=True)
    block = b'{"jsonrpc":"2.0","method":"eth_getBlockByNumber","params":["0x1",false],"id":3}'
    for _ in range(3):
        await router.execute(ctx, call(block))
    assert client.confirmed  # checked before the offer
    metrics.flush()  # the request path counts in lock-free cells
    assert metrics.receipts.labels("failed")._value.get() == len(client.confirmed)
    assert router.cache is not None
    assert await router.cache.lookup(_block_key(router, ctx, block), b"3") is None


def _block_key(router: Router, ctx: ClientContext, body: bytes) -> str:
    from rollups.handler import Call, Heights

    c = call(body)
    svc = ctx.service
    rcall = Call(method=c.method, params=c.params, id=3, raw=c.raw, notification=False)
    policy = svc.handler.cache_policy(svc.spec, rcall, Heights(None, None))
    assert policy.key is not None
    return policy.key


async def test_a_failed_late_receipt_check_evicts_what_the_supplier_put_in_the_caches() -> None:
    from gateway.cache import CachedAnswer

    client = ScriptedClient()
    router, _ctx, metrics = make_router(client, hedge=None, cache=True)
    cache = router.cache
    assert cache is not None
    liar, other = SUPPLIERS[0], SUPPLIERS[1]
    body = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'

    async def store(key: str, last: bytes) -> None:
        for s in (other if last == liar else liar, last):  # agreement 2: `last` stores it
            await cache.offer(
                key, None, status=200, body=body, supplier="0x" + s.hex(),
                relay_request="rq", relay_receipt="rc",
            )  # fmt: skip

    await store("k-liar", liar)
    await store("k-other", other)
    assert await cache.lookup("k-liar", b"1") is not None
    hit = CachedAnswer(200, body, "0x" + liar.hex(), "rq", "rc", True, b"", b"", 1e12)
    router.front.put("devnet", b"tmpl", hit)
    target = Target("devnet", APP, 5, liar, "http://r0.example/v1/relay", b"k" * 32)
    router._late_lie(target)
    for _ in range(100):
        if await cache.lookup("k-liar", b"1") is None:
            break
        await asyncio.sleep(0.01)
    assert await cache.lookup("k-liar", b"1") is None  # evicted, shared store included
    assert await cache.lookup("k-other", b"1") is not None  # others' entries stay
    assert router.front.get("devnet", b"tmpl") is None
    metrics.flush()
    assert metrics.receipts.labels("failed")._value.get() == 1
