"""Quorum reads under a single read's answer rules, in process and fast (the real-network
side is ``test_quorum.py``): the head-height floor, the oversized-answer retry, the cache an
agreement fills (and a disagreement does not), REST-like reads, and the keys CLI's
``--quorum``. Suppliers are scripted; the router, selection, cache and store are real."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from gateway.cache import AnswerCache
from gateway.config import RelayConfig
from gateway.failsafe.retry import Outcome
from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayAnswer, RelayError, Target
from gateway.router import ClientContext, Router
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionView
from gateway.store import MemoryStore
from ledger.bootstrap import dev_account
from rollups.catalogue import catalogue_spec
from rollups.errors import InvalidParamsError
from rollups.registry import handler_for
from rollups.rest import rest_call, rest_error
from tests.gateway.test_router import FakeSessions, ScriptedClient, call
from tests.support.gateway_proc import write_gateway_files

SUPPLIERS = [bytes([i]) * 20 for i in range(1, 6)]
APP = b"\xaa" * 20
BLOCK_NUMBER = b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":%d}'
CHAIN_ID = b'{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":%d}'

Answer = Callable[[bytes], bytes]  # payload → body


@dataclass
class Legs(ScriptedClient):
    """Suppliers answer ``results[supplier](payload)`` (default: eth_chainId's 0x7a69);
    those in ``too_big`` answer over the call's cap."""

    too_big: set[bytes] = field(default_factory=set)

    async def relay(
        self, target: Target, payload: bytes, compute_units: int, **kw: Any
    ) -> RelayAnswer:
        if target.supplier in self.too_big:
            self.calls.append((target.supplier, payload))
            raise oversized()
        return await super().relay(target, payload, compute_units, **kw)


def result(value: str) -> Answer:
    def make(payload: bytes) -> bytes:
        rid = orjson.dumps(orjson.loads(payload).get("id"))
        return b'{"jsonrpc":"2.0","id":' + rid + b',"result":' + value.encode() + b"}"

    return make


def oversized() -> RelayError:
    return RelayError("big", outcome=Outcome.MAYBE_SENT, oversized=True)


class Sessions(FakeSessions):
    """One session of five distinct suppliers."""

    def __init__(self, service: str) -> None:
        targets = tuple(
            Target(service, APP, 5, s, f"http://r{i}.example/v1/relay", b"k" * 32)
            for i, s in enumerate(SUPPLIERS)
        )
        self.view_ = SessionView(service, APP, 5, targets)


def make(
    legs: Legs, *, quorum: int = 2, cache: bool = False, service: str = "devnet"
) -> tuple[Router, ClientContext, GatewayMetrics]:
    metrics = GatewayMetrics()
    router = Router(
        sessions=Sessions(service),  # type: ignore[arg-type]
        client=legs,  # type: ignore[arg-type]
        qos=Qos(),
        cache=AnswerCache(MemoryStore(), agreement=2) if cache else None,
        metrics=metrics,
        config=RelayConfig(hedge_delay=None, max_attempts=3),
    )
    spec = catalogue_spec(service)
    svc = Service(service, spec, handler_for(spec.rpc_type))
    return router, ClientContext("client-1", "c1", svc, APP, quorum=quorum), metrics


def in_order(router: Router) -> None:
    """Selection picks the first eligible supplier in session order (a deterministic script)."""
    router.qos.choose = lambda service, suppliers, exclude=(): next(  # type: ignore[method-assign]
        (s for s in suppliers if s not in set(exclude)), None
    )


def _result(body: bytes) -> object:
    return orjson.loads(body).get("result")


# -- the head height: the floor rules of a single read ---------------------------------------
async def test_an_agreed_height_below_the_clients_floor_is_answered_with_the_floor() -> None:
    legs = Legs(results=dict.fromkeys(SUPPLIERS, result('"0x10"')))
    router, ctx, _ = make(legs)
    router._floors[("client-1", "devnet")] = 0x20  # the client saw block 0x20 already
    answer = await router.execute(ctx, call(BLOCK_NUMBER % 1))
    assert answer.source == "gateway" and _result(answer.body) == "0x20", answer
    assert len(legs.calls) == 2  # the quorum was asked; its lower head is not shown


async def test_an_agreed_height_enters_the_floor_only_within_the_rule() -> None:
    legs = Legs(results=dict.fromkeys(SUPPLIERS, result('"0x11"')))
    router, ctx, _ = make(legs)
    for s, h in zip(SUPPLIERS, (0x10, 0x11, 0x11, 0x12, 0x10), strict=True):
        router.qos.observe_height("devnet", s, h)  # what the probes reported
    answer = await router.execute(ctx, call(BLOCK_NUMBER % 1))
    assert answer.source == "relay" and answer.legs == 2 and _result(answer.body) == "0x11"
    assert router._floors[("client-1", "devnet")] == 0x11
    # two suppliers agreeing on a head far above every report: answered, never a floor
    legs.results = dict.fromkeys(SUPPLIERS, result('"0xffffffffff"'))
    answer = await router.execute(ctx, call(BLOCK_NUMBER % 2))
    assert answer.source == "relay" and _result(answer.body) == "0xffffffffff"
    assert router._floors[("client-1", "devnet")] == 0x11
    # and a later agreed height below the floor is answered with the floor
    legs.results = dict.fromkeys(SUPPLIERS, result('"0x5"'))
    answer = await router.execute(ctx, call(BLOCK_NUMBER % 3))
    assert answer.source == "gateway" and _result(answer.body) == "0x11"


# -- answers over the call's cap: retried once, blamed only when another fits --------------------
async def test_an_oversized_leg_is_replaced_once_and_blamed_when_the_others_fit() -> None:
    legs = Legs(too_big={SUPPLIERS[0]})
    router, ctx, _ = make(legs)
    in_order(router)
    answer = await router.execute(ctx, call(CHAIN_ID % 1))
    assert answer.source == "relay" and answer.legs == 2, answer
    assert answer.supplier == " ".join("0x" + s.hex() for s in SUPPLIERS[1:3])
    assert router.qos.stats("devnet", SUPPLIERS[0]).lies == 1
    assert all(router.qos.stats("devnet", s).lies == 0 for s in SUPPLIERS[1:])


async def test_when_no_leg_fits_the_client_gets_minus_32005_and_nobody_is_blamed() -> None:
    legs = Legs(too_big=set(SUPPLIERS))
    router, ctx, _ = make(legs)
    answer = await router.execute(ctx, call(CHAIN_ID % 1))
    assert answer.source == "gateway"
    assert orjson.loads(answer.body)["error"] == {"code": -32005, "message": "response too large"}
    assert len(legs.calls) == 3  # two legs and one replacement, of five suppliers
    assert all(router.qos.stats("devnet", s).lies == 0 for s in SUPPLIERS)


# -- the cache: an agreement fills it, a disagreement does not --------------------------------
async def test_an_agreed_quorum_answer_fills_the_cache_and_plain_reads_hit_it() -> None:
    legs = Legs()
    router, ctx, _ = make(legs, cache=True)
    answer = await router.execute(ctx, call(CHAIN_ID % 1))
    assert answer.source == "relay" and answer.legs == 2
    plain = ClientContext("client-1", "c1", ctx.service, APP)  # quorum 1
    calls = len(legs.calls)
    for i in range(2, 5):
        hit = await router.execute(plain, call(CHAIN_ID % i))
        assert hit.source == "cache" and orjson.loads(hit.body)["id"] == i, hit
    assert len(legs.calls) == calls  # no relay: every plain read was a hit
    # a quorum read itself never reads the cache
    again = await router.execute(ctx, call(CHAIN_ID % 9))
    assert again.source == "relay" and len(legs.calls) == calls + 2


async def test_a_disagreement_fills_nothing() -> None:
    legs = Legs(results={SUPPLIERS[0]: result('"0x1"')})  # the others answer 0x7a69
    router, ctx, metrics = make(legs, cache=True, quorum=5)
    answer = await router.execute(ctx, call(CHAIN_ID % 1))
    assert orjson.loads(answer.body)["error"]["code"] == -32098
    assert metrics.disagreements.labels("devnet", "eth_chainId")._value.get() == 1
    plain = ClientContext("client-1", "c1", ctx.service, APP)
    first = await router.execute(plain, call(CHAIN_ID % 2))
    assert first.source == "relay"  # nothing was cached by the four agreeing legs


# -- REST-like reads (DESIGN §4: reads, whatever the RPC type) ---------------------------------
REST_SERVICE = "rollchain-rest"
NODE_INFO = b'{"default_node_info":{"network":"rollchain_262144-1"}}'


def _rest(method: str, path: str, router: Router, ctx: ClientContext) -> object:
    svc = ctx.service
    return rest_call(svc.handler, svc.spec, method, path, "", b"{}" if method == "POST" else b"")


async def test_a_rest_read_with_quorum_2_lists_both_legs() -> None:
    legs = Legs(results=dict.fromkeys(SUPPLIERS, lambda _p: NODE_INFO))
    router, ctx, _ = make(legs, service=REST_SERVICE)
    rcall = _rest("GET", "/cosmos/base/tendermint/v1beta1/node_info", router, ctx)
    answer = await router.execute_rest(ctx, rcall)  # type: ignore[arg-type]
    assert answer.body == NODE_INFO and answer.legs == 2 and len(set(legs.calls)) == 2
    assert answer.supplier is not None and len(answer.supplier.split(" ")) == 2
    assert answer.backend_statuses == "200 200"


async def test_a_rest_disagreement_is_the_bare_32098_object_with_every_signed_answer() -> None:
    legs = Legs(results=dict.fromkeys(SUPPLIERS, lambda _p: NODE_INFO))
    legs.results[SUPPLIERS[0]] = lambda _p: NODE_INFO.replace(b"262144", b"262145")
    router, ctx, metrics = make(legs, service=REST_SERVICE, quorum=5)
    rcall = _rest("GET", "/cosmos/base/tendermint/v1beta1/node_info", router, ctx)
    answer = await router.execute_rest(ctx, rcall)  # type: ignore[arg-type]
    assert answer.status == 200 and answer.source == "gateway"
    doc = orjson.loads(answer.body)
    assert doc["code"] == -32098 and doc["message"] == "suppliers disagree", doc
    assert len(doc["data"]["answers"]) == 5 and "jsonrpc" not in doc
    route = rcall.method  # type: ignore[attr-defined]
    assert metrics.disagreements.labels(REST_SERVICE, route)._value.get() == 1


async def test_a_rest_write_or_too_large_a_quorum_is_refused_400_grpc_3() -> None:
    legs = Legs()
    router, ctx, _ = make(legs, service=REST_SERVICE)
    write = _rest("POST", "/cosmos/tx/v1beta1/txs", router, ctx)
    with pytest.raises(InvalidParamsError) as info:
        await router.execute_rest(ctx, write)  # type: ignore[arg-type]
    assert rest_error(info.value)[0] == 400 and orjson.loads(rest_error(info.value)[1])["code"] == 3
    router, ctx, _ = make(legs, service=REST_SERVICE, quorum=5)
    router.sessions.view_ = SessionView(  # type: ignore[attr-defined]
        REST_SERVICE, APP, 5, router.sessions.signing(REST_SERVICE, APP).targets[:3]
    )
    read = _rest("GET", "/cosmos/base/tendermint/v1beta1/node_info", router, ctx)
    with pytest.raises(InvalidParamsError, match="distinct supplier"):
        await router.execute_rest(ctx, read)  # type: ignore[arg-type]
    assert legs.calls == []


# -- the keys CLI: a key's default quorum -----------------------------------------------------
def test_keys_add_and_update_store_a_default_quorum_of_1_to_5(tmp_path: Path) -> None:
    from relaynet.cli import app

    files = write_gateway_files(
        tmp_path,
        rpc_url="http://127.0.0.1:1",
        deployment=json.dumps({}),
        account=dev_account(8),
        services={"devnet": "devnet"},
    )
    runner = CliRunner()
    config = ("--config", str(files.config))
    service = ("--service", "devnet=0x" + APP.hex())

    def records() -> dict[str, dict[str, object]]:
        if not files.keys_file.exists():
            return {}
        return {r["key_hash"]: r for r in json.loads(files.keys_file.read_text())["keys"]}

    for bad in ("0", "6"):
        out = runner.invoke(app, ["gateway", "keys", "add", *config, *service, "--quorum", bad])
        assert out.exit_code == 1 and "a quorum is 1 to 5" in out.output, out.output
    assert records() == {}  # nothing stored
    out = runner.invoke(app, ["gateway", "keys", "add", *config, *service, "--quorum", "3"])
    assert out.exit_code == 0, out.output
    (record,) = records().values()
    assert record["quorum"] == 3
    key_id = str(record["key_hash"])[:12]
    out = runner.invoke(app, ["gateway", "keys", "update", *config, key_id, "--quorum", "9"])
    assert out.exit_code == 1 and "a quorum is 1 to 5" in out.output
    out = runner.invoke(app, ["gateway", "keys", "update", *config, key_id, "--quorum", "2"])
    assert out.exit_code == 0 and "quorum" in out.output, out.output
    assert next(iter(records().values()))["quorum"] == 2
    listed = runner.invoke(app, ["gateway", "keys", "list", *config])
    assert listed.exit_code == 0 and "quorum" in listed.output
    out = runner.invoke(app, ["gateway", "keys", "add", *config, *service])
    assert out.exit_code == 0 and sorted(r["quorum"] for r in records().values()) == [1, 2]


def test_a_rest_calls_quorum_comes_from_the_header_or_the_key_never_its_query() -> None:
    """On a REST-like call the query string is the backend's (``?quorum=`` is relayed as
    part of the REST path); ``Relay-Quorum`` and the key's default apply, a bad value is the
    client's mistake (400, grpc code 3 on the REST front)."""
    from aiohttp.test_utils import make_mocked_request

    from gateway.errors import BadRequest
    from gateway.keys import ApiKey
    from gateway.server import _rest_refusal, _with_quorum

    _, ctx, _ = make(Legs(), quorum=1, service=REST_SERVICE)
    record = ApiKey("h" * 64, "k", {REST_SERVICE: "0x" + APP.hex()}, quorum=3)
    path = "/v1/rollchain-rest/cosmos/base/tendermint/v1beta1/node_info?quorum=2"

    def quorum(headers: dict[str, str], *, url: bool) -> int:
        request = make_mocked_request("GET", path, headers=headers)
        return _with_quorum(ctx, request, record, url=url).quorum

    assert quorum({}, url=False) == 3  # the key's default; the query's 2 is the backend's
    assert quorum({"Relay-Quorum": "2"}, url=False) == 2
    assert quorum({}, url=True) == 2  # a JSON-RPC URL's ?quorum= is the gateway's
    with pytest.raises(BadRequest) as info:
        quorum({"Relay-Quorum": "7"}, url=False)
    refusal = _rest_refusal(info.value.http_status, info.value.message)
    assert refusal.status == 400 and orjson.loads(refusal.body)["code"] == 3  # type: ignore[arg-type]


async def test_the_rest_front_reads_relay_quorum_and_counts_each_leg(tmp_path: Path) -> None:
    """Through the gateway's own REST handler over real HTTP (aiohttp test server): a REST
    read with ``Relay-Quorum: 2`` answers with two legs in every Relay-* header and takes two
    units of the key's quota; ``?quorum=`` in a REST query is relayed, not read; a bad value
    is 400 with grpc code 3."""
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from gateway.keys import ApiKey, KeyRing, hash_key
    from gateway.limiter import Limiter
    from gateway.server import GATEWAY, Gateway, add_routes
    from gateway.services import ServiceTable
    from relaynet.config import load_gateway

    files = write_gateway_files(
        tmp_path,
        rpc_url="http://127.0.0.1:1",
        deployment=json.dumps({}),
        account=dev_account(8),
        services={REST_SERVICE: REST_SERVICE},
    )
    legs = Legs(results=dict.fromkeys(SUPPLIERS, lambda _p: NODE_INFO))
    router, ctx, metrics = make(legs, service=REST_SERVICE)
    key = "rn_" + "ab" * 24
    record = ApiKey(hash_key(key), "k", {REST_SERVICE: "0x" + APP.hex()}, quota=4)
    keys = KeyRing(None)  # type: ignore[arg-type]
    keys.adopt({record.key_hash: record})

    class Snapshot:
        def service(self, service_id: str) -> object:
            return object()

    sessions = router.sessions
    sessions.snapshot = Snapshot()  # type: ignore[attr-defined]
    gw = Gateway(
        config=load_gateway(files.config),
        keys=keys,
        limiter=Limiter(MemoryStore()),
        services=ServiceTable({REST_SERVICE: ctx.service}),
        sessions=sessions,  # type: ignore[arg-type]
        router=router,
        metrics=metrics,
        ready=lambda: True,
    )
    app = web.Application()
    app[GATEWAY] = gw
    add_routes(app, lambda *a: None)  # type: ignore[arg-type,return-value]
    path = f"/v1/{REST_SERVICE}/{key}/cosmos/base/tendermint/v1beta1/node_info"
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        url = str(server.make_url(path))
        async with http.get(url, headers={"Relay-Quorum": "2"}) as resp:
            assert resp.status == 200 and await resp.read() == NODE_INFO
            assert len(resp.headers["Relay-Supplier"].split(" ")) == 2
            assert resp.headers["Relay-Backend-Status"] == "200 200"
        async with http.get(url + "?quorum=2") as resp:  # the backend's query: one leg
            assert resp.status == 200 and len(resp.headers["Relay-Supplier"].split(" ")) == 1
        async with http.get(url, headers={"Relay-Quorum": "9"}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 3
        async with http.get(url, headers={"Relay-Quorum": "2"}) as resp:
            assert resp.status == 429  # quota 4: 2 + 1 taken, two more legs are over it
    assert len(legs.calls) == 3
