"""A hedged read's rules (gateway/failsafe/attempts.py), in process: the first good answer wins
and the loser is cancelled (its connection closed, its share of the answer budget given back);
a hedge that fails or answers badly does not end the wait for the attempt before it; the
deadline ends everything (a client's cancel: tests/gateway/test_router.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.config import RelayConfig
from gateway.errors import RelayFailed
from gateway.failsafe.retry import Outcome
from gateway.metrics import GatewayMetrics
from gateway.relay_client import AnswerBudget, RelayAnswer, RelayClient, RelayError, Target
from gateway.router import ClientContext, Router
from gateway.sessions import SessionView
from ledger.anvil import free_port
from ledger.bootstrap import dev_account
from protocol.errors import ErrorCode, Refusal
from protocol.keys import ReceiptKey
from protocol.relay import Domain
from tests.adversarial_gateway.liar import receipt_of
from tests.gateway.test_router import (
    APP,
    READ,
    SUPPLIERS,
    WRITE,
    FakeSessions,
    ScriptedClient,
    call,
    make_router,
)
from transport.http1 import HttpClient

SLOW, FAST = SUPPLIERS[0], SUPPLIERS[1]


def first_pick(router: Router, supplier: bytes) -> None:
    """Make ``supplier`` the call's first pick (the hedge then goes to another)."""
    choose = router.qos.choose
    picks = iter([supplier])
    router.qos.choose = lambda *a, **k: next(picks, None) or choose(*a, **k)  # type: ignore[method-assign]


def relays(metrics: GatewayMetrics, supplier: bytes, outcome: str) -> float:
    value: float = metrics.relays.labels("devnet", "0x" + supplier.hex(), outcome)._value.get()
    return value


async def cancelled(metrics: GatewayMetrics, suppliers: list[bytes], count: int) -> float:
    """The attempts to ``suppliers`` counted as cancelled, once ``count`` are (a loser that
    runs as a task takes its cancel at its next step) or after a bounded wait."""
    total = 0.0
    for _ in range(100):
        total = sum(relays(metrics, s, "cancelled") for s in suppliers)
        if total >= count:
            break
        await asyncio.sleep(0.01)
    return total


def slow_first(mode: str) -> ScriptedClient:
    """A client whose SLOW supplier answers after 1 s; the others as ``mode`` says."""
    script = dict.fromkeys(SUPPLIERS, mode)
    script[SLOW] = "slow"
    return ScriptedClient(script=script)


def hedging(client: ScriptedClient) -> tuple[Router, ClientContext, GatewayMetrics]:
    """A router hedging reads after 20 ms, whose first pick is SLOW."""
    router, ctx, metrics = make_router(client, hedge=0.02)
    first_pick(router, SLOW)
    return router, ctx, metrics


async def test_the_hedge_wins_and_the_first_attempt_is_cancelled() -> None:
    router, ctx, metrics = hedging(slow_first("ok"))
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier != "0x" + SLOW.hex()
    assert await cancelled(metrics, [SLOW], 1) == 1  # the loser, cancelled once
    assert metrics.hedges.labels("devnet", "won")._value.get() == 1


async def test_a_failed_hedge_does_not_end_the_wait_for_the_first_attempt() -> None:
    client = slow_first("maybe_sent")
    router, ctx, metrics = hedging(client)
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier == "0x" + SLOW.hex()
    assert len(client.calls) == 2  # no third attempt while the first is out
    assert relays(metrics, SLOW, "cancelled") == 0
    failed = [s for s in SUPPLIERS[1:] if router.qos.stats("devnet", s).failures]
    assert len(failed) == 1  # the hedge's failure counted against its supplier


async def test_a_bad_height_from_the_hedge_does_not_end_the_wait() -> None:
    client = slow_first("ok")
    client.results[SLOW] = lambda p: _height(p, b"0x10")
    for s in SUPPLIERS[1:]:  # a head far above what the others report: a lie, never taken
        client.results[s] = lambda p: _height(p, b"0xffffffffff")
    router, ctx, _metrics = hedging(client)
    for s in SUPPLIERS:
        router.qos.observe_height("devnet", s, 0x10)  # what the probes reported
    answer = await router.execute(
        ctx, call(b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":7}')
    )
    assert answer.supplier == "0x" + SLOW.hex() and b'"0x10"' in answer.body
    assert len(client.calls) == 2
    assert sum(router.qos.stats("devnet", s).lies for s in SUPPLIERS[1:]) == 1


async def test_a_hedge_answering_another_id_does_not_end_the_wait() -> None:
    client = slow_first("ok")
    for s in SUPPLIERS[1:]:  # quick, but the answer of another call: never the client's
        client.results[s] = lambda p: b'{"jsonrpc":"2.0","id":"not-yours","result":"0x1"}'
    router, ctx, _metrics = hedging(client)
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier == "0x" + SLOW.hex() and b"not-yours" not in answer.body
    assert len(client.calls) == 2


def _height(payload: bytes, height: bytes) -> bytes:
    rid = orjson.dumps(orjson.loads(payload)["id"])
    return b'{"jsonrpc":"2.0","id":' + rid + b',"result":"' + height + b'"}'


class SessionTimingClient(ScriptedClient):
    """SLOW answers after a while; the others refuse the session as not started yet."""

    async def relay(
        self, target: Target, payload: bytes, _cu: int, *, inline: bool = False, **_: object
    ) -> RelayAnswer:
        if target.supplier == SLOW:
            return await super().relay(target, payload, _cu, inline=inline)
        self.calls.append((target.supplier, payload))
        raise RelayError(
            "SESSION_NOT_STARTED: not yet",
            outcome=Outcome.UNSENT,
            relay_code=ErrorCode.SESSION_NOT_STARTED,
            supplier=target.supplier,
            refusal=Refusal.VIEW,
        )


async def test_a_hedge_refused_for_session_timing_switches_while_the_first_is_out() -> None:
    client = SessionTimingClient(script={SLOW: "slow"})
    router, ctx, _metrics = hedging(client)
    answer = await router.execute(ctx, call(READ))
    assert answer.supplier == "0x" + SLOW.hex()
    assert len(client.calls) == 2


async def test_the_deadline_ends_a_hedged_read_and_cancels_both_attempts() -> None:
    client = ScriptedClient(script=dict.fromkeys(SUPPLIERS, "slow"))  # each answers after 1 s
    router, ctx, metrics = make_router(client, hedge=0.02)
    router.cfg = RelayConfig(hedge_delay=0.02, max_attempts=3, deadline=0.2)
    with pytest.raises(RelayFailed) as failed:
        await router.execute(ctx, call(READ))
    assert failed.value.relay_code is ErrorCode.BACKEND_TIMEOUT
    assert len(client.calls) == 2
    assert await cancelled(metrics, SUPPLIERS, 2) == 2


# -- on the wire: the loser's connection and budget ------------------------------------------
DOMAIN = Domain(31337, b"\x11" * 20)
RECEIPT = ReceiptKey.generate()


class Relayer:
    """A relayer double on loopback: answers at once, or (``hold``) sends the head and part of
    the body of a large answer and waits; ``closed`` is set when the gateway hangs up on it."""

    def __init__(self, supplier: bytes, *, hold: bool) -> None:
        self.supplier, self.hold = supplier, hold
        self.port = free_port()
        self.holding = asyncio.Event()
        self.closed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.requests = 0

    async def relay(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        rid = orjson.loads(await request.read())["id"]
        body = b'{"jsonrpc":"2.0","id":%s,"result":"0x%s"}' % (
            orjson.dumps(rid),
            b"0" * (200_000 if self.hold else 1),
        )
        receipt = receipt_of(request.headers["Relay-Request"], DOMAIN, RECEIPT, 200, body)
        headers = {"Relay-Backend-Status": "200", "Relay-Receipt": receipt}
        if not self.hold:
            return web.Response(body=body, headers=headers)
        resp = web.StreamResponse(headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:1024])  # the gateway reserves the declared length
        self.holding.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.closed.set()  # aiohttp cancels the handler when the client disconnects
            raise
        return resp

    def target(self) -> Target:
        url = f"http://127.0.0.1:{self.port}/v1/relay"
        return Target("devnet", APP, 5, self.supplier, url, RECEIPT.public_key)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/relay", self.relay)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def relayers() -> AsyncIterator[tuple[Relayer, Relayer]]:
    slow, fast = Relayer(SLOW, hold=True), Relayer(FAST, hold=False)
    await slow.start()
    await fast.start()
    try:
        yield slow, fast
    finally:
        await slow.stop()
        await fast.stop()


@pytest.mark.parametrize("transport", ["http1", "aiohttp"])
async def test_the_cancelled_first_attempt_closes_its_connection_and_gives_its_budget_back(
    relayers: tuple[Relayer, Relayer], transport: str
) -> None:
    slow, fast = relayers
    budget = AnswerBudget(8 << 20)
    http = aiohttp.ClientSession(auto_decompress=False)
    client = RelayClient(
        http,
        dev_account(8),
        DOMAIN,
        devnet=True,
        budget=budget,
        fast=HttpClient() if transport == "http1" else None,
    )
    sessions = FakeSessions()
    sessions.view_ = SessionView("devnet", APP, 5, (slow.target(), fast.target()))
    router, ctx, metrics = make_router(ScriptedClient(), hedge=0.05)
    router.client, router.sessions = client, sessions  # type: ignore[assignment]
    first_pick(router, SLOW)
    try:
        answer = await asyncio.wait_for(router.execute(ctx, call(READ)), 30)
        assert answer.supplier == "0x" + FAST.hex()
        assert slow.holding.is_set()  # the first attempt was reading its answer
        assert await cancelled(metrics, [SLOW], 1) == 1
        assert budget.in_use == 0  # what it had reserved is given back
        await asyncio.wait_for(slow.closed.wait(), 10)  # and its connection is closed
    finally:
        if client.fast is not None:
            await client.fast.close()
        await http.close()


@pytest.mark.parametrize("transport", ["http1", "aiohttp"])
async def test_a_write_that_timed_out_is_never_sent_again(
    relayers: tuple[Relayer, Relayer], transport: str
) -> None:
    """A relay that timed out while its answer was being read may have reached a backend
    (``MAYBE_SENT``): a write is not sent to another supplier, on either transport."""
    slow, fast = relayers
    http = aiohttp.ClientSession(auto_decompress=False)
    fast_client = HttpClient() if transport == "http1" else None
    client = RelayClient(http, dev_account(8), DOMAIN, devnet=True, fast=fast_client)
    sessions = FakeSessions()
    sessions.view_ = SessionView("devnet", APP, 5, (slow.target(), fast.target()))
    router, ctx, _metrics = make_router(ScriptedClient(), hedge=None)
    router.client, router.sessions = client, sessions  # type: ignore[assignment]
    router.cfg = RelayConfig(hedge_delay=None, max_attempts=3, timeout=0.3)
    first_pick(router, SLOW)
    try:
        with pytest.raises(RelayFailed):
            await asyncio.wait_for(router.execute(ctx, call(WRITE)), 30)
        assert slow.holding.is_set()  # the attempt reached the relayer, which began answering
        assert fast.requests == 0  # and the write was not sent again
    finally:
        if fast_client is not None:
            await fast_client.close()
        await http.close()
