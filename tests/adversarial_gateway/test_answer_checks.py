"""Each defence of DESIGN §3.3–4 on supplier answers, one test each, in process and fast:
the relay client against a wire double on loopback (status, receipt hash, encoding, caps,
budget), the router with scripted suppliers (refusal classes, oversized answers, floors),
and the response headers and cache tiers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.cache import AnswerCache, CachedAnswer, FrontCache
from gateway.errors import RelayFailed
from gateway.failsafe.retry import Outcome
from gateway.relay_client import AnswerBudget, Overloaded, RelayAnswer, RelayClient, RelayError
from gateway.relay_client import Target as RTarget
from gateway.router import CallAnswer
from gateway.server import CORS_HEADERS, _answer_headers, _error_response
from gateway.store import MemoryStore
from ledger.anvil import free_port
from ledger.bootstrap import dev_account
from protocol.errors import ErrorCode, Refusal, refusal_of
from protocol.keys import ReceiptKey
from protocol.relay import Domain
from tests.adversarial_gateway.liar import receipt_of
from tests.gateway.test_router import READ, SUPPLIERS, WRITE, ScriptedClient, call, make_router
from transport.http1 import HttpClient

DOMAIN = Domain(31337, b"\x11" * 20)
RECEIPT = ReceiptKey.generate()
OK_BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


# -- a wire double on loopback ---------------------------------------------------------------
@dataclass
class Wire:
    """An HTTP relayer double: ``handler`` answers each relay; ``streamed`` counts body bytes
    it managed to write."""

    handler: Handler
    port: int = field(default_factory=free_port)
    streamed: int = 0

    def target(self) -> RTarget:
        return RTarget("devnet", b"\xaa" * 20, 5, b"\x01" * 20, self.url, RECEIPT.public_key)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/relay"


def receipt_headers(
    request: web.Request, status: int, body: bytes, key: ReceiptKey = RECEIPT
) -> dict[str, str]:
    receipt = receipt_of(request.headers["Relay-Request"], DOMAIN, key, status, body)
    return {"Relay-Backend-Status": str(status), "Relay-Receipt": receipt}


@pytest.fixture
async def wire() -> object:
    double = Wire(handler=lambda r, d: _honest(r))

    async def relay(request: web.Request) -> web.StreamResponse:
        return await double.handler(request, b"")

    app = web.Application()
    app.router.add_post("/v1/relay", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", double.port).start()
    try:
        yield double
    finally:
        await runner.cleanup()


async def _honest(request: web.Request) -> web.Response:
    return web.Response(body=OK_BODY, headers=receipt_headers(request, 200, OK_BODY))


_KIND = ["aiohttp"]


@pytest.fixture(autouse=True, params=["aiohttp", "http1"])
def _transport(request: pytest.FixtureRequest) -> None:
    """Every wire test on both relay transports: aiohttp and the hot path's transport.http1."""
    _KIND[0] = request.param


async def _client(budget: AnswerBudget | None = None, check: float = 1.0) -> RelayClient:
    http = aiohttp.ClientSession(auto_decompress=False)
    fast = HttpClient() if _KIND[0] == "http1" else None
    return RelayClient(
        http, dev_account(8), DOMAIN, devnet=True, receipt_check=check, budget=budget, fast=fast
    )


async def _relay(wire: Wire, client: RelayClient, cap: int = 1 << 20) -> RelayAnswer:
    return await client.relay(
        wire.target(),
        b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}',
        1,
        attempt_timeout=10.0,
        max_bytes=cap,
    )


async def _refused(
    wire: Wire, check: float = 1.0, budget: AnswerBudget | None = None
) -> RelayError:
    """The error relaying through ``wire`` raises (it must raise)."""
    client = await _client(budget, check=check)
    try:
        with pytest.raises(RelayError) as info:
            await _relay(wire, client)
    finally:
        await client.http.close()
    return info.value


async def test_an_honest_answer_passes(wire: Wire) -> None:
    client = await _client()
    try:
        answer = await _relay(wire, client)
    finally:
        await client.http.close()
    assert answer.body == OK_BODY and answer.status == 200 and answer.receipt_checked


async def test_the_relayer_gets_the_gateway_request_id(
    wire: Wire,
) -> None:
    from transport.logs import REQUEST

    seen: list[str | None] = []

    async def record(request: web.Request, _d: bytes) -> web.StreamResponse:
        seen.append(request.headers.get("Relay-Request-Id"))
        return await _honest(request)

    wire.handler = record
    client = await _client()
    try:
        await _relay(wire, client)  # no request being served: no id sent
        token = REQUEST.set({"request_id": "0123456789abcdef", "service": "devnet"})
        try:
            await _relay(wire, client)
        finally:
            REQUEST.reset(token)
    finally:
        await client.http.close()
    assert seen == [None, "0123456789abcdef"]


@pytest.mark.parametrize("value", ["70000", "099", "600", "2e2", "+200", "20 0", "0x1f"])
async def test_backend_status_must_be_a_decimal_in_100_599(wire: Wire, value: str) -> None:
    async def bad(request: web.Request, _: bytes) -> web.Response:
        headers = receipt_headers(request, 200, OK_BODY)
        headers["Relay-Backend-Status"] = value
        return web.Response(body=OK_BODY, headers=headers)

    wire.handler = bad
    error = await _refused(wire)
    assert error.lie and error.outcome is Outcome.MAYBE_SENT


async def test_receipt_hash_is_checked_on_every_answer_even_unsampled(wire: Wire) -> None:
    async def bad(request: web.Request, _: bytes) -> web.Response:
        return web.Response(body=OK_BODY, headers=receipt_headers(request, 200, OK_BODY + b" "))

    wire.handler = bad
    error = await _refused(wire, check=0.0)  # signatures never sampled: the hash still is
    assert error.lie and "hash" in error.message


async def test_a_content_encoded_answer_is_refused(wire: Wire) -> None:
    async def encoded(request: web.Request, _: bytes) -> web.Response:
        headers = receipt_headers(request, 200, OK_BODY)
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=OK_BODY, headers=headers)

    wire.handler = encoded
    error = await _refused(wire)
    assert error.lie


async def _stream(wire: Wire, request: web.Request, total: int) -> web.StreamResponse:
    resp = web.StreamResponse(headers=receipt_headers(request, 200, b"x"))
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    chunk = b"0" * 65536
    try:
        while wire.streamed < total:
            await resp.write(chunk)
            wire.streamed += len(chunk)
    except (ConnectionError, RuntimeError):
        pass
    return resp


async def test_an_oversized_answer_is_never_read_past_its_cap(wire: Wire) -> None:
    total = 64 * 1024 * 1024

    async def huge(request: web.Request, _: bytes) -> web.StreamResponse:
        return await _stream(wire, request, total)

    wire.handler = huge
    budget = AnswerBudget(512 * 1024 * 1024)
    error = await _refused(wire, budget=budget)
    assert error.oversized and not error.lie
    assert budget.high_water <= (1 << 20) + 65536  # never more than the cap (+ one chunk)
    assert budget.in_use == 0
    assert wire.streamed < total // 2  # the gateway hung up; it did not drain the stream


async def test_a_declared_length_over_the_cap_is_not_read_at_all(wire: Wire) -> None:
    big = b"0" * (2 << 20)

    async def declared(request: web.Request, _: bytes) -> web.Response:
        return web.Response(body=big, headers=receipt_headers(request, 200, big))

    wire.handler = declared
    budget = AnswerBudget()
    error = await _refused(wire, budget=budget)
    assert error.oversized and budget.high_water == 0


async def test_the_answer_budget_sheds_load_with_503_and_retry_after(wire: Wire) -> None:
    body = b"0" * (700 * 1024)
    gate = asyncio.Event()

    async def slow(request: web.Request, _: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers=receipt_headers(request, 200, body))
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:1024])
        await gate.wait()  # both answers are being read at once
        await resp.write(body[1024:])
        return resp

    wire.handler = slow
    budget = AnswerBudget(1 << 20)
    client = await _client(budget)
    try:
        first = asyncio.ensure_future(_relay(wire, client))
        await asyncio.sleep(0)
        results = await asyncio.wait_for(
            asyncio.gather(
                first,
                _relay(wire, client),
                _release_after_one_holds(gate, budget),
                return_exceptions=True,
            ),
            30,
        )
    finally:
        await client.http.close()
    shed = [r for r in results[:2] if isinstance(r, Overloaded)]
    ok = [r for r in results[:2] if isinstance(r, RelayAnswer)]
    assert len(shed) == 1 and len(ok) == 1, results
    assert budget.high_water <= budget.limit and budget.in_use == 0
    response = _error_response(shed[0])
    assert response.status == 503 and response.headers["Retry-After"] == "1"


async def _release_after_one_holds(gate: asyncio.Event, budget: AnswerBudget) -> None:
    for _ in range(2000):
        if budget.shed:
            break
        await asyncio.sleep(0.005)
    gate.set()


@pytest.mark.parametrize(
    ("status", "code", "refusal", "outcome"),
    [
        # a lie may hide a forwarded payload: reads go elsewhere, writes never
        (400, "CLIENT_IS_WRONG", Refusal.LIE, Outcome.MAYBE_SENT),  # invented
        (401, "BAD_SIGNATURE", Refusal.LIE, Outcome.MAYBE_SENT),
        (403, "METHOD_DENIED", Refusal.SUPPLIER, Outcome.UNSENT),
        (403, "NOT_IN_SESSION", Refusal.VIEW, Outcome.UNSENT),
        (429, "RATE_LIMITED", Refusal.RETRYABLE, Outcome.UNSENT),
        (502, "BACKEND_UNAVAILABLE", Refusal.RETRYABLE, Outcome.RETRYABLE),
    ],
)
async def test_refusals_are_classed_by_the_table(
    wire: Wire, status: int, code: str, refusal: Refusal, outcome: Outcome
) -> None:
    async def refuse(request: web.Request, _: bytes) -> web.Response:
        return web.json_response({"code": code, "message": "m", "retryable": False}, status=status)

    wire.handler = refuse
    error = await _refused(wire)
    assert error.refusal is refusal and error.outcome is outcome
    assert refusal_of(code)[1] is refusal


# -- the router: refusal classes, oversized answers, floors ------------------------------------
@dataclass
class Scripted(ScriptedClient):
    """Each supplier fails by a script: a RelayError, or answers ``result``."""

    script: dict[bytes, RelayError | str] = field(default_factory=dict)  # type: ignore[assignment]

    def answer(self, target: RTarget, payload: bytes) -> bytes:
        return self.body(target, orjson.dumps(orjson.loads(payload)["id"]))

    def body(self, target: RTarget, rid: bytes) -> bytes:
        what = self.script.get(target.supplier, '"0x1"')
        if isinstance(what, RelayError):
            raise what
        return b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + what.encode() + b"}"


def oversized() -> RelayError:
    return RelayError("big", outcome=Outcome.MAYBE_SENT, oversized=True)


def invented() -> RelayError:
    return RelayError("CLIENT_IS_WRONG: bad", outcome=Outcome.MAYBE_SENT, refusal=Refusal.LIE)


def coded(code: ErrorCode) -> RelayError:
    from gateway.relay_client import classify_code

    return RelayError(
        f"{code.value}: m",
        outcome=classify_code(code),
        relay_code=code,
        refusal=refusal_of(code.value)[1],
    )


async def test_oversized_answer_retried_once_and_blamed_only_when_another_fits() -> None:
    client = Scripted({SUPPLIERS[0]: oversized(), SUPPLIERS[1]: oversized()})
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    # a call blames only when an oversized supplier is drawn first and the fitting one second
    # (about 1 in 3 draws): call until that happened, bounded ((2/3)**60 ≈ 3e-11 to miss it)
    blamed = 0
    for i in range(60):
        answer = await router.execute(ctx, call(READ.replace(b'"id":2', b'"id":%d' % i)))
        body = orjson.loads(answer.body)
        if "result" in body:
            assert answer.supplier == "0x" + SUPPLIERS[2].hex()
        else:  # both oversized suppliers were tried: the retry is spent
            assert body["error"] == {"code": -32005, "message": "response too large"}
        big = [router.qos.stats("devnet", s).lies for s in SUPPLIERS]
        assert big[2] == 0
        blamed = big[0] + big[1]
        if blamed and i >= 9:
            break
    assert blamed > 0


async def test_when_no_supplier_fits_the_client_gets_minus_32005_and_nobody_is_blamed() -> None:
    client = Scripted(dict.fromkeys(SUPPLIERS, oversized()))
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    answer = await router.execute(ctx, call(READ))
    assert answer.status == 200 and answer.source == "gateway"
    assert orjson.loads(answer.body)["error"] == {"code": -32005, "message": "response too large"}
    assert len(client.calls) == 2  # retried once elsewhere, no more
    for s in SUPPLIERS:
        st = router.qos.stats("devnet", s)
        assert st.lies == 0 and st.failures == 0


async def test_an_invented_code_is_a_lie_retried_elsewhere_for_reads_never_for_writes() -> None:
    client = Scripted({SUPPLIERS[0]: invented(), SUPPLIERS[1]: invented()})
    router, ctx, metrics = make_router(client, hedge=None)  # type: ignore[arg-type]
    for i in range(6):
        answer = await router.execute(ctx, call(READ.replace(b'"id":2', b'"id":%d' % i)))
        assert orjson.loads(answer.body)["result"] == "0x1"
    assert router.qos.stats("devnet", SUPPLIERS[2]).lies == 0
    assert sum(router.qos.stats("devnet", s).lies for s in SUPPLIERS[:2]) >= 1
    assert b"relaynet_gateway_supplier_lies_total" in metrics.render()
    # a write the liar may have forwarded is never sent again, and the client is not told
    # that the invented code was its own mistake
    client = Scripted(dict.fromkeys(SUPPLIERS, invented()))
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    with pytest.raises(RelayFailed) as info:
        await router.execute(ctx, call(WRITE))
    assert len(client.calls) == 1
    assert info.value.relay_code is None and "CLIENT_IS_WRONG" not in info.value.message
    assert info.value.http_status >= 500  # the supplier's fault, not the client's


async def test_a_refusal_reaches_the_client_only_when_every_supplier_gave_a_shown_one() -> None:
    client = Scripted(dict.fromkeys(SUPPLIERS, coded(ErrorCode.RATE_LIMITED)))
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    with pytest.raises(RelayFailed) as info:
        await router.execute(ctx, call(READ))
    assert info.value.relay_code is ErrorCode.RATE_LIMITED
    script: dict[bytes, RelayError | str] = {
        SUPPLIERS[0]: coded(ErrorCode.RATE_LIMITED),
        SUPPLIERS[1]: coded(ErrorCode.METHOD_DENIED),
        SUPPLIERS[2]: invented(),
    }
    router, ctx, _ = make_router(Scripted(script), hedge=None)  # type: ignore[arg-type]
    with pytest.raises(RelayFailed) as info:
        await router.execute(ctx, call(READ))
    assert info.value.relay_code is None and "CLIENT_IS_WRONG" not in info.value.message


async def test_supplier_specific_and_view_refusals_go_elsewhere_without_penalty() -> None:
    script: dict[bytes, RelayError | str] = {
        SUPPLIERS[0]: coded(ErrorCode.METHOD_DENIED),
        SUPPLIERS[1]: coded(ErrorCode.NOT_IN_SESSION),
    }
    client = Scripted(script)
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    for i in range(6):
        answer = await router.execute(ctx, call(WRITE.replace(b'"id":1', b'"id":%d' % i)))
        assert answer.supplier == "0x" + SUPPLIERS[2].hex()  # writes too: never forwarded
    for s in SUPPLIERS[:2]:
        st = router.qos.stats("devnet", s)
        assert st.lies == 0 and st.error_rate == 0.0


BLOCK_NUMBER = b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":%d}'


async def test_one_supplier_cannot_push_the_floor_or_a_client_to_a_huge_height() -> None:
    client = Scripted(
        {SUPPLIERS[0]: '"0x10"', SUPPLIERS[1]: '"0x11"', SUPPLIERS[2]: '"0xffffffffff"'}
    )
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    for s, h in zip(SUPPLIERS, (0x10, 0x11, 0xFFFFFFFFFF), strict=True):
        router.qos.observe_height("devnet", s, h)  # what the probes reported
    seen = []
    for i in range(30):
        answer = await router.execute(ctx, call(BLOCK_NUMBER % i))
        seen.append(int(orjson.loads(answer.body)["result"], 16))
    assert max(seen) <= 0x11 and seen == sorted(seen)
    assert router.qos.stats("devnet", SUPPLIERS[2]).lies >= 1
    assert router._floors[("client-1", "devnet")] <= 0x11


async def test_with_fewer_than_two_reports_the_floor_does_not_rise() -> None:
    client = Scripted(dict.fromkeys(SUPPLIERS, '"0x20"'))
    router, ctx, _ = make_router(client, hedge=None)  # type: ignore[arg-type]
    answer = await router.execute(ctx, call(BLOCK_NUMBER % 1))  # the only report: its own
    assert orjson.loads(answer.body)["result"] == "0x20"
    assert ("client-1", "devnet") not in router._floors


# -- headers and cache tiers --------------------------------------------------------------
def _relayed(n: int) -> CallAnswer:
    return CallAnswer(200, b"{}", "relay", f"0xs{n}", f"rq{n}", f"rc{n}", "read")


def test_headers_hold_one_entry_per_answer_object_in_body_order() -> None:
    hit = CallAnswer(200, b"{}", "cache", "0xc", "rqc", "rcc", "read")
    own = CallAnswer(200, b"{}", "gateway", method_class="denied")
    h = _answer_headers([_relayed(1), hit, own, _relayed(2)])
    assert h["Relay-Supplier"] == "0xs1,-,-,0xs2"
    assert h["Relay-Request"] == "rq1,-,-,rq2"
    assert h["Relay-Receipt"] == "rc1,-,-,rc2"
    assert h["Relay-Backend-Status"] == "200,-,-,200"
    assert h["Relay-Cache"] == "-,hit,-,-"
    lone = _answer_headers([hit])
    assert lone["Relay-Cache"] == "hit"
    assert not {"Relay-Supplier", "Relay-Request", "Relay-Receipt", "Relay-Backend-Status"} & set(
        lone
    )
    assert "Relay-Cache" not in _answer_headers([_relayed(1)])
    exposed = CORS_HEADERS["Access-Control-Expose-Headers"]
    for name in (
        "Relay-Supplier",
        "Relay-Request",
        "Relay-Receipt",
        "Relay-Backend-Status",
        "Relay-Cache",
    ):
        assert name in exposed


def test_the_in_process_tier_honours_the_entry_ttl() -> None:
    now = [1000.0]
    front = FrontCache(clock=lambda: now[0])
    entry = CachedAnswer(200, b"{}", "s", "rq", "rc", final=True, expires=1060.0)
    front.put("devnet", b"t", entry)
    assert front.get("devnet", b"t") is entry
    now[0] = 1061.0
    assert front.get("devnet", b"t") is None


async def test_a_final_answer_carries_its_long_ttl_into_every_tier() -> None:
    import time

    cache = AnswerCache(MemoryStore(), agreement=2)
    body = b'{"jsonrpc":"2.0","id":1,"result":"0x7a69"}'
    for s in ("a", "b"):
        await cache.offer(
            "k", None, status=200, body=body, supplier=s, relay_request="q", relay_receipt="r"
        )
    hit = await cache.lookup("k", b"7")
    assert hit is not None and hit.final
    assert time.time() + 86_000 < hit.expires <= time.time() + 86_400


@pytest.mark.parametrize(
    "answer",
    [
        b'{"jsonrpc":"2.0","id":%s,"error":{"code":-32000,"message":"header not found"}}',
        b'{"jsonrpc":"2.0","id":424242,"result":"0x7a69"}',  # not the answer to this call
    ],
)
async def test_failures_and_invalid_answers_are_never_cached(answer: bytes) -> None:
    @dataclass
    class Failing(Scripted):
        def body(self, target: RTarget, rid: bytes) -> bytes:
            return answer.replace(b"%s", rid)

        def confirm(self, answer: RelayAnswer) -> None:
            return None

    client = Failing()
    router, ctx, _ = make_router(client, hedge=None, cache=True)  # type: ignore[arg-type]
    chain_id = b'{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":%d}'
    for i in range(8):
        got = await router.execute(ctx, call(chain_id % i))
        assert got.source == "relay"  # every suppliers agreed, still never a hit


async def test_floors_and_pins_hold_across_replicas_through_the_shared_store() -> None:
    shared = MemoryStore()  # one store, two replicas (the Redis driver: test_floor_store)
    high = Scripted(dict.fromkeys(SUPPLIERS, '"0x11"'))
    low = Scripted(dict.fromkeys(SUPPLIERS, '"0x10"'))
    a, ctx, _ = make_router(high, hedge=None)  # type: ignore[arg-type]
    b, _, _ = make_router(low, hedge=None)  # type: ignore[arg-type]
    for r, h in ((a, 0x11), (b, 0x10)):
        r.store = shared
        for s in SUPPLIERS:
            r.qos.observe_height("devnet", s, h)
    answer = await a.execute(ctx, call(BLOCK_NUMBER % 1))
    assert orjson.loads(answer.body)["result"] == "0x11"
    answer = await b.execute(ctx, call(BLOCK_NUMBER % 2))  # its suppliers are all behind
    assert orjson.loads(answer.body)["result"] == "0x11" and answer.source == "gateway"
    # a filter created through replica a is polled on the same supplier through replica b
    new_filter = b'{"jsonrpc":"2.0","method":"eth_newFilter","params":[{}],"id":3}'
    created = await a.execute(ctx, call(new_filter))
    holder = created.supplier
    changes = b'{"jsonrpc":"2.0","method":"eth_getFilterChanges","params":["0x11"],"id":4}'
    for _ in range(5):
        polled = await b.execute(ctx, call(changes))
        assert polled.supplier == holder


# -- receipts per DESIGN §6: the signature sampled off the critical path -------------------------
def _forged(request: web.Request, status: int, body: bytes) -> dict[str, str]:
    """The right response hash under a signature by another key."""
    return receipt_headers(request, status, body, ReceiptKey.generate())


class _Rng:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


async def test_a_sampled_signature_is_checked_after_the_answer_and_a_failure_is_counted(
    wire: Wire,
) -> None:
    async def forged(request: web.Request, _: bytes) -> web.Response:
        return web.Response(body=OK_BODY, headers=_forged(request, 200, OK_BODY))

    wire.handler = forged
    client = await _client(check=0.5)
    client._rng = _Rng(0.1)  # type: ignore[assignment]  # sampled
    late: list[bytes] = []
    client.on_late_lie = lambda target: late.append(target.supplier)
    try:
        answer = await _relay(wire, client)  # the answer is not held up by the signature
        assert answer.body == OK_BODY and not answer.receipt_checked and late == []
        for _ in range(100):  # the late check runs on the loop right after
            if late:
                break
            await asyncio.sleep(0.01)
        assert late == [wire.target().supplier] and client.late_lies == 1
        with pytest.raises(RelayError) as err:  # confirm (cache, quorum) checks it now
            client.confirm(answer)
        assert err.value.lie
        with pytest.raises(RelayError):  # an answer after a failure: checked inline
            await client.relay(
                wire.target(), b'{"jsonrpc":"2.0","id":1}', 1, attempt_timeout=10, inline=True
            )
        client._rng = _Rng(0.9)  # type: ignore[assignment]  # not sampled: no late check
        await _relay(wire, client)
        await asyncio.sleep(0.05)
        assert client.late_checks == 1 and client.late_lies == 1
    finally:
        await client.http.close()
        if client.fast is not None:
            await client.fast.close()


async def test_every_signature_is_checked_inline_when_receipt_check_is_one(wire: Wire) -> None:
    async def forged(request: web.Request, _: bytes) -> web.Response:
        return web.Response(body=OK_BODY, headers=_forged(request, 200, OK_BODY))

    wire.handler = forged
    client = await _client(check=1.0)
    try:
        with pytest.raises(RelayError) as err:
            await _relay(wire, client)
        assert err.value.lie
    finally:
        await client.http.close()
