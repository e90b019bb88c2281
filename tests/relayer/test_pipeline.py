"""The relay pipeline in-process: checks in DESIGN order, receipts, log, budget, replay.

The registry is a MemorySnapshot and the backend a small aiohttp app, so every branch is cheap
to reach; the same behaviour through a subprocess against anvil is in test_relayer_anvil.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from protocol.errors import ErrorCode
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain, Leaf, encode_relay_request
from relayer.app import Relayer, RelayerKeys, build_relayer
from relayer.backend import MockTransport
from relayer.config import RelayerConfig
from relayer.errors import RelayRefused
from relayer.interfaces import BackendRequest, BackendResponse
from relayer.relaylog import SessionKey
from session.memory import MemorySnapshot
from session.snapshot import (
    ServiceInfo,
    ServiceParams,
    SessionShape,
    SupplierInfo,
)
from tests.support.relay_client import SignedRelay, high_s, rpc, sign_relay
from tests.support.snapshots import relayer_client, relayer_config, served_snapshot, set_chain

SHAPE = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
DOMAIN = Domain(31337, b"\x5e" * 20)
SID = "devnet"
CU_PRICE = 10
COSMOS_APP = AccountKey.generate()


EX_GATEWAY = AccountKey(bytes(31) + b"\x07")


@dataclass
class World:
    snapshot: MemorySnapshot
    supplier: AccountKey
    receipt: ReceiptKey
    app: AccountKey
    gateway: AccountKey
    stranger: AccountKey
    poor_app: AccountKey
    relayer: Relayer
    client: TestClient
    backend_hits: list[bytes]
    config: RelayerConfig
    n: int = 2


def _snapshot(
    supplier: AccountKey,
    receipt: ReceiptKey,
    app: AccountKey,
    gateway: AccountKey,
    poor: AccountKey,
) -> MemorySnapshot:
    snap = served_snapshot(
        SHAPE, SID, cu_price=CU_PRICE, supplier=supplier.address, receipt_key=receipt.public_key
    )
    for a, stake in ((app, 10**9), (poor, 3 * 3 * CU_PRICE)):  # poor: budget of 3 relays
        snap.set_app(a.address, SID)
        snap.set_app_stake(a.address, 1, stake)
    snap.set_gateway_stake(gateway.address, 1, True, 1)
    snap.set_delegation(app.address, gateway.address, 1, True, 1)
    snap.set_gateway_stake(EX_GATEWAY.address, 0, True, 1)
    snap.set_delegation(app.address, EX_GATEWAY.address, 0, True, 1)
    snap.set_gateway_stake(EX_GATEWAY.address, 1, False, 1)
    snap.set_gateway_stake(EX_GATEWAY.address, 2, True, 2)
    snap.register_service(ServiceInfo("cosmos", b"\x01" * 20, rpc_type="cosmos-rest"))
    snap.set_service_params("cosmos", 0, ServiceParams(1, 100, 0))
    snap.stake_supplier("cosmos", SupplierInfo(supplier.address, 10**20, receipt.public_key, {}), 0)
    snap.set_app(COSMOS_APP.address, "cosmos")
    snap.set_app_stake(COSMOS_APP.address, 1, 10**9)
    return set_chain(snap, range(100, 200), SHAPE.B0 + 2 * SHAPE.L + 3)  # inside session 2


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    hits: list[bytes] = []

    async def backend(request: web.Request) -> web.Response:
        body = await request.read()
        hits.append(body)
        method = orjson.loads(body)["method"]
        if method == "eth_chainId":
            return web.Response(status=503, body=b"busy")
        return web.Response(
            body=b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}  ', content_type="application/json"
        )

    async def rest(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path_qs}".encode())
        return web.Response(body=b'{"balances":[]}', content_type="application/json")

    backend_app = web.Application()
    backend_app.router.add_post("/", backend)
    backend_app.router.add_get("/cosmos/{tail:.*}", rest)
    backend_server = TestServer(backend_app)
    await backend_server.start_server()
    supplier, receipt = AccountKey.generate(), ReceiptKey.generate()
    app, gateway, stranger, poor = (AccountKey.generate() for _ in range(4))
    snap = _snapshot(supplier, receipt, app, gateway, poor)
    cfg = relayer_config(
        tmp_path / "data",
        {
            SID: {
                "chain": "devnet",
                "backends": {"rpc": str(backend_server.make_url("/"))},
                "max_body_bytes": 4096,
            },
            "cosmos": {
                "chain": "rollchain-rest",
                "backends": {"rpc": str(backend_server.make_url("/"))},
            },
        },
    )
    relayer, client = await relayer_client(cfg, RelayerKeys(supplier, receipt), snap, DOMAIN)
    yield World(snap, supplier, receipt, app, gateway, stranger, poor, relayer, client, hits, cfg)
    await client.close()
    await backend_server.close()


def _sign(w: World, payload: bytes = rpc("eth_blockNumber"), **kw: object) -> object:
    args: dict[str, object] = {
        "service_id": SID,
        "app": w.app.address,
        "supplier": w.supplier.address,
        "n": w.n,
        "payload": payload,
    }
    key = kw.pop("key", w.app)
    args.update(kw)
    return sign_relay(DOMAIN, key, **args)  # type: ignore[arg-type]


def _sign_cosmos(w: World, payload: bytes) -> SignedRelay:
    """A relay of the REST service (``cosmos``) by its app."""
    return sign_relay(
        DOMAIN,
        COSMOS_APP,
        service_id="cosmos",
        app=COSMOS_APP.address,
        supplier=w.supplier.address,
        n=w.n,
        payload=payload,
    )


async def _post(
    w: World, relay: object, body: bytes | None = None, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    hdrs = relay.headers(**headers)  # type: ignore[attr-defined]
    resp = await w.client.post(
        "/v1/relay", data=body if body is not None else relay.payload, headers=hdrs
    )  # type: ignore[attr-defined]
    return resp.status, await resp.read(), dict(resp.headers)


async def _code(w: World, relay: object, body: bytes | None = None, **headers: str) -> str:
    status, raw, _ = await _post(w, relay, body, **headers)
    assert status >= 400, raw
    doc = orjson.loads(raw)
    assert set(doc) == {"code", "message", "retryable"}
    return str(doc["code"])


async def test_answer_is_the_backend_bytes_with_a_valid_receipt(world: World) -> None:
    relay = _sign(world)
    status, body, headers = await _post(world, relay)
    assert status == 200
    assert body == b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}  '
    assert headers["Relay-Backend-Status"] == "200"
    relay.check_receipt(world.receipt.public_key, 200, body, headers["Relay-Receipt"])  # type: ignore[attr-defined]
    # the leaf is in the session log already, with the same receipt
    records = list(world.relayer.relay_log.records(SessionKey(SID, world.app.address, 2)))
    assert len(records) == 1
    leaf = Leaf.decode(records[0].leaf)
    assert leaf.header_bytes == relay.header_bytes  # type: ignore[attr-defined]


async def test_backend_error_status_is_relayed_and_receipted(world: World) -> None:
    relay = _sign(world, rpc("eth_chainId"))
    status, body, headers = await _post(world, relay)
    assert (status, body, headers["Relay-Backend-Status"]) == (200, b"busy", "503")
    relay.check_receipt(world.receipt.public_key, 503, body, headers["Relay-Receipt"])  # type: ignore[attr-defined]


async def test_gateway_signer_delegated_or_not(world: World) -> None:
    ok = _sign(world, key=world.gateway)
    assert (await _post(world, ok))[0] == 200
    bad = _sign(world, key=world.stranger)
    assert await _code(world, bad) == "SIGNER_NOT_DELEGATED"


async def test_delegated_gateway_that_restaked_is_refused(world: World) -> None:
    """signer_ok, not the bare delegation record: EX_GATEWAY is delegated to under epoch 1,
    unstaked in session 1 and staked again (epoch 2) from session 2; the old delegation is dead."""
    snap, app, ex = world.snapshot, world.app.address, EX_GATEWAY.address
    assert snap.delegated(app, ex, world.n) and not snap.signer_ok(app, ex, world.n)
    assert not snap.signer_ok(app, ex, 1) and snap.signer_ok(app, ex, 0)
    assert await _code(world, _sign(world, key=EX_GATEWAY)) == "SIGNER_NOT_DELEGATED"


async def test_refusals_each_with_its_code(world: World) -> None:
    w = world
    good = _sign(w)
    cases: list[tuple[str, object, bytes | None, dict[str, str]]] = [
        ("PAYLOAD_TOO_LARGE", _sign(w, b"x" * 5000), None, {}),
        ("MALFORMED_HEADER", good, None, {"Relay-Request": "%%%"}),
        ("UNSUPPORTED_VERSION", _sign(w, version=2), None, {}),
        ("UNKNOWN_SERVICE", _sign(w, service_id="other"), None, {}),
        ("WRONG_SUPPLIER", _sign(w, supplier=w.stranger.address), None, {}),
        ("SESSION_NOT_STARTED", _sign(w, n=4), None, {}),
        ("SESSION_EXPIRED", _sign(w, n=0), None, {}),
        ("APP_NOT_STAKED", _sign(w, app=w.stranger.address, key=w.stranger), None, {}),
        ("BAD_COMPUTE_UNITS", _sign(w, rpc("eth_getLogs", [{}]), cu=1), None, {}),
        ("BATCH_NOT_RELAYABLE", _sign(w, b"[" + rpc("eth_blockNumber") + b"]"), None, {}),
        ("METHOD_DENIED", _sign(w, rpc("admin_peers")), None, {}),
        ("PAYLOAD_HASH_MISMATCH", good, rpc("eth_blockNumber", id_=2), {}),
    ]
    for code, relay, body, headers in cases:
        assert await _code(w, relay, body, **headers) == code, code
    bad_sig = _sign(w)
    forged = encode_relay_request(bad_sig.header_bytes, high_s(bad_sig.signature))  # type: ignore[attr-defined]
    assert await _code(w, bad_sig, None, **{"Relay-Request": forged}) == "BAD_SIGNATURE"
    other = _sign(w, key=w.stranger, signer=w.app.address)
    assert await _code(w, other) == "BAD_SIGNATURE"
    assert w.backend_hits == []  # nothing refused reached the backend


async def test_replay_refused_before_forwarding(world: World) -> None:
    relay = _sign(world)
    assert (await _post(world, relay))[0] == 200
    assert await _code(world, relay) == "REPLAYED_RELAY"
    assert len(world.backend_hits) == 1


async def test_over_budget(world: World) -> None:
    codes = []
    for _ in range(4):
        relay = _sign(world, app=world.poor_app.address, key=world.poor_app)
        status, raw, _ = await _post(world, relay)
        codes.append(200 if status == 200 else orjson.loads(raw)["code"])
    assert codes == [200, 200, 200, "APP_OVER_BUDGET"]


async def test_not_in_session_when_length_is_zero(world: World) -> None:
    world.snapshot.register_service(ServiceInfo("devnet", b"\x01" * 20))
    world.snapshot.set_length(SID, 0, 2)
    assert await _code(world, _sign(world)) == "NOT_IN_SESSION"


async def test_a_known_signers_later_relays_are_checked_for_what_can_change(
    world: World,
) -> None:
    """After a first relay the header checks of its signer's session are remembered; a later
    relay with the same leading bytes is still refused for its own fields, its body size, and
    a session the chain re-drew."""
    w = world
    assert (await _post(w, _sign(w)))[0] == 200
    assert await _code(w, _sign(w, b"x" * 5000)) == "PAYLOAD_TOO_LARGE"
    assert await _code(w, _sign(w, max_index=1)) == "MALFORMED_HEADER"
    good = _sign(w)
    no_units = good.header_bytes[:-4] + bytes(4)  # type: ignore[attr-defined]
    zero = {"Relay-Request": encode_relay_request(no_units, good.signature)}  # type: ignore[attr-defined]
    assert await _code(w, good, None, **zero) == "MALFORMED_HEADER"
    w.snapshot.set_length(SID, 0, 2)
    assert w.relayer.verifier.on_reorg() == [SessionKey(SID, w.app.address, w.n)]
    assert await _code(w, good) == "NOT_IN_SESSION"
    assert len(w.backend_hits) == 1


def test_the_body_size_is_checked_before_the_header(world: World) -> None:
    """DESIGN §3.3's first check: a body over every service's limit is PAYLOAD_TOO_LARGE
    whatever its header (here none at all), before the header is read."""
    verifier = world.relayer.verifier
    with pytest.raises(RelayRefused) as refused:
        verifier.verify(None, b"x" * (verifier.max_body_bytes + 1))
    assert refused.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    with pytest.raises(RelayRefused) as refused:
        verifier.verify(None, b"x")
    assert refused.value.code is ErrorCode.MALFORMED_HEADER


async def test_health_and_readiness(world: World) -> None:
    assert (await world.client.get("/healthz")).status == 200
    assert (await world.client.get("/readyz")).status == 200


async def test_rest_payload_is_sent_as_its_http_request(world: World) -> None:
    from protocol.payload import rest_payload

    payload = rest_payload("GET", "/cosmos/bank/v1beta1/balances/cosmos1xyz", "a=1&b=2", b"")
    relay = _sign_cosmos(world, payload)
    status, body, headers = await _post(world, relay)
    assert (status, body) == (200, b'{"balances":[]}'), body
    assert world.backend_hits == [b"GET /cosmos/bank/v1beta1/balances/cosmos1xyz?a=1&b=2"]
    relay.check_receipt(world.receipt.public_key, 200, body, headers["Relay-Receipt"])


async def test_relays_accepted_only_below_grace_end(world: World) -> None:
    """At grace_end(n) H_g(n) is known, so relays of n are refused from that block on."""
    w = world
    grace_end = SHAPE.B0 + (w.n + 1) * SHAPE.L - 1 + SHAPE.G
    w.snapshot.set_head(grace_end - 1)
    assert (await _post(w, _sign(w)))[0] == 200
    w.snapshot.set_head(grace_end)
    assert await _code(w, _sign(w)) == "SESSION_EXPIRED"


async def test_session_verified_under_its_recorded_chain_id(world: World) -> None:
    """After a chain split the session's recorded chain id is the EIP-712 domain's."""
    w = world
    split = Domain(DOMAIN.chain_id + 7, DOMAIN.settlement)
    w.snapshot.set_chain_id(w.n, split.chain_id)
    assert await _code(w, _sign(w)) == "BAD_SIGNATURE"  # signed under the deployment's id
    relay = sign_relay(
        split,
        w.app,
        service_id=SID,
        supplier=w.supplier.address,
        n=w.n,
        payload=rpc("eth_blockNumber"),
    )
    assert (await _post(w, relay))[0] == 200


async def test_a_relay_that_is_not_recorded_is_released(world: World) -> None:
    """The one refund path: a backend failure refunds the charge and frees the relay key, so
    the same signed request can be served once the backend is back."""
    w = world
    key = SessionKey(SID, w.app.address, w.n)
    service = w.relayer.verifier.services[SID]
    working = dict(service.backends)
    object.__setattr__(service, "backends", {"rpc": "http://127.0.0.1:1/"})  # nothing listens
    relay = _sign(w)
    assert await _code(w, relay) == "BACKEND_UNAVAILABLE"
    assert w.relayer.meter.used(key) == 0
    object.__setattr__(service, "backends", working)
    assert (await _post(w, relay))[0] == 200
    assert w.relayer.meter.used(key) == CU_PRICE


async def test_a_cancelled_relay_is_released(world: World) -> None:
    """A relay whose caller goes away while the backend works is refunded, its key freed."""
    w = world
    started, never = asyncio.Event(), asyncio.Event()
    service = w.relayer.service
    real = service.transport

    async def hanging(request: BackendRequest) -> BackendResponse:
        started.set()
        await never.wait()
        raise AssertionError("not reached")

    service.transport = MockTransport(hanging)
    relay = _sign(w)
    task = asyncio.create_task(service.answer(relay.relay_request, relay.payload, "rid-1"))  # type: ignore[attr-defined]
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.relayer.meter.used(SessionKey(SID, w.app.address, w.n)) == 0
    service.transport = real
    assert (await _post(w, relay))[0] == 200


async def test_restart_restores_budget_and_seen_keys_from_the_log(world: World) -> None:
    """A relayer started on the same data folder charges what the log holds (the meter's
    restore) and refuses the relays it recorded as replays."""
    w = world
    first, second = _sign(w), _sign(w)
    for relay in (first, second):
        assert (await _post(w, relay))[0] == 200
    await w.relayer.relay_log.close()
    again = build_relayer(
        w.config,
        RelayerKeys(w.supplier, w.receipt),
        snapshot=w.snapshot,
        domain=DOMAIN,
        probe_backends=False,
    )
    client = TestClient(TestServer(again.web_app()))
    await client.start_server()
    try:
        third = _sign(w)
        resp = await client.post("/v1/relay", data=third.payload, headers=third.headers())  # type: ignore[attr-defined]
        assert resp.status == 200
        assert again.meter.used(SessionKey(SID, w.app.address, w.n)) == 3 * CU_PRICE
        resp = await client.post("/v1/relay", data=first.payload, headers=first.headers())  # type: ignore[attr-defined]
        assert orjson.loads(await resp.read())["code"] == "REPLAYED_RELAY"
    finally:
        await client.close()


def test_the_verified_relay_builds_its_backend_request(world: World) -> None:
    """JSON-RPC: the payload byte for byte to the role's URL; REST: the canonical payload's
    method, path and query appended to it, and its body."""
    from protocol.payload import rest_payload

    w = world
    plain = _sign(w)
    verified = w.relayer.verifier.verify(plain.relay_request, plain.payload)  # type: ignore[attr-defined]
    request = verified.backend_request()
    service = w.relayer.verifier.services[SID]
    assert (request.http_method, request.url, request.body) == (
        "POST",
        service.backends["rpc"],
        plain.payload,  # type: ignore[attr-defined]
    )
    assert request.headers == service.headers
    payload = rest_payload("GET", "/cosmos/bank/v1beta1/balances/x", "a=1", b"")
    rest = _sign_cosmos(w, payload)
    request = w.relayer.verifier.verify(rest.relay_request, rest.payload).backend_request()
    base = w.relayer.verifier.services["cosmos"].backends["rpc"].rstrip("/")
    assert (request.http_method, request.url, request.body) == (
        "GET",
        base + "/cosmos/bank/v1beta1/balances/x?a=1",
        b"",
    )
