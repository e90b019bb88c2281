"""Must show (issue 11): requests that a Go backend would read as another call never reach it.

A stand-in backend decodes JSON as Go's encoding/json does (case-insensitive keys, last match
wins, ``ſ`` → ``s``); behind it a real relayer subprocess, in front of that a real gateway
subprocess, on a staked network on anvil. Through the gateway ``"Method"``, ``"PARAMS"``,
``"paramſ"``, an escaped key and a duplicate ``"method"`` are answered -32600 by the gateway
itself; signed directly to the relayer they are ``INVALID_PAYLOAD``; the backend never sees
them. The same for REST-like traversal paths, while an encoded slash in a denom and a
double-encoded dot pass with their bytes untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
import yarl
from hypothesis import given

from ledger.anvil import AnvilProcess
from ledger.bootstrap import AppSpec, GatewaySpec, Network, ServiceSpec, dev_account
from protocol.keys import AccountKey, ReceiptKey
from protocol.payload import check_jsonrpc_payload
from protocol.relay import Domain
from tests.adversarial.fuzzing import FUZZ_SLOW, hostile_bytes
from tests.adversarial.gobackend import GoBackend, go_decode
from tests.support.gateway_net import post
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files
from tests.support.relay_client import SignedRelay, sign_relay
from tests.support.relayer_net import Relayer, domain_of, session_now, stake_relayers
from tests.support.relayer_proc import RelayerProcess, ServiceBackend

pytestmark = pytest.mark.slow  # starts anvil, a relayer and a gateway itself

RPC, REST = "devnet", "rollchain-rest"

#: (payload, the method Go would run) — each breaks the payload rule.
SMUGGLED = [
    (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[],'
        b'"Method":"eth_sendRawTransaction"}',
        "eth_sendRawTransaction",
    ),
    (b'{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","PARAMS":["0x02"]}', "eth_blockNumber"),
    (
        '{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber","paramſ":["0x03"]}'.encode(),
        "eth_blockNumber",
    ),
    (
        b'{"jsonrpc":"2.0","id":4,"method":"eth_blockNumber","\\u006dethod":"debug_traceCall"}',
        "debug_traceCall",
    ),
    (
        b'{"jsonrpc":"2.0","id":5,"method":"eth_blockNumber","method":"eth_sendRawTransaction"}',
        "eth_sendRawTransaction",
    ),
]

TRAVERSALS = [
    ("POST", "/cosmos/tx/v1beta1/simulate/../txs"),
    ("POST", "/cosmos/tx/v1beta1/simulate/%2e%2e/txs"),
    ("POST", "/cosmos/tx/v1beta1/simulate/%2E%2E/txs"),
    ("POST", "/cosmos/tx/v1beta1/simulate/.%2e/txs"),
    ("GET", "/cosmos/bank/v1beta1/x%2F..%2Fy"),
    ("GET", "/cosmos/bank/v1beta1/./balances/a"),
]

PASSING = [
    "/cosmos/bank/v1beta1/denoms_metadata/ibc%2F27394FB092D2ECCD",
    "/cosmos/bank/v1beta1/denoms_metadata/%252e%252e",
    "/cosmos/bank/v1beta1/balances/x%7ey%41",  # an HTTP client left alone would unquote these
]


@dataclass
class World:
    chain: AnvilProcess
    go: GoBackend
    network: Network
    supplier: AccountKey
    apps: dict[str, AccountKey]
    relayer: RelayerProcess
    gateway: GatewayProcess
    key: str

    @property
    def domain(self) -> Domain:
        return domain_of(self.network)

    def session(self) -> int:
        return session_now(self.chain, self.network)

    def sign(self, service: str, payload: bytes) -> SignedRelay:
        app = self.apps[service]
        return sign_relay(
            self.domain,
            app,
            service_id=service,
            supplier=self.supplier.address,
            n=self.session(),
            payload=payload,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("smuggling")
    with GoBackend() as go, AnvilProcess() as chain:
        supplier, receipt = dev_account(1), ReceiptKey.generate()
        apps = {RPC: dev_account(7), REST: dev_account(6)}
        gw = dev_account(8)
        services = {
            RPC: ServiceBackend(go.url, chain="devnet"),
            REST: ServiceBackend(go.url, chain="rollchain-rest"),
        }
        network, (files,) = stake_relayers(
            tmp,
            chain.url,
            [Relayer(supplier, services, receipt)],
            services=[ServiceSpec(RPC), ServiceSpec(REST)],
            apps=[AppSpec(key=k, service_id=s, gateways=[gw.address]) for s, k in apps.items()],
            gateways=[GatewaySpec(key=gw)],
        )
        with RelayerProcess(files) as relayer:
            gfiles = write_gateway_files(
                tmp / "gateway",
                rpc_url=chain.url,
                deployment=network.deployment,
                account=gw,
                services={RPC: "devnet", REST: "rollchain-rest"},
            )
            key = add_key(
                gfiles, {RPC: "0x" + apps[RPC].address.hex(), REST: "0x" + apps[REST].address.hex()}
            )
            with GatewayProcess(gfiles) as gateway:
                yield World(chain, go, network, supplier, apps, relayer, gateway, key)


async def _send(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One request with the URL sent exactly as written (no normalisation, no requoting)."""
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            yarl.URL(url, encoded=True),
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


async def _until_relayed(method: str, url: str, body: bytes = b"") -> tuple[int, bytes]:
    """The first answer that came through a supplier (the gateway may still be probing)."""
    deadline = time.monotonic() + 60
    while True:
        status, raw, headers = await _send(method, url, body)
        if "Relay-Supplier" in headers or time.monotonic() > deadline:
            assert "Relay-Supplier" in headers, (status, raw)
            return status, raw
        await asyncio.sleep(0.2)


async def test_go_decoder_reads_them_as_other_calls() -> None:
    """The stand-in is a fair model: each smuggled payload runs another call (or params)."""
    for payload, hidden in SMUGGLED:
        decoded = go_decode(payload)
        assert decoded is not None and decoded["method"] == hidden
        assert decoded != orjson.loads(payload) or hidden != "eth_blockNumber"


async def test_smuggled_json_rpc_never_reaches_the_backend(world: World) -> None:
    rpc_url = world.gateway.rpc_url(RPC, world.key)
    good = b'{"jsonrpc":"2.0","id":"control","method":"eth_chainId","params":[]}'
    status, raw = await _until_relayed("POST", rpc_url, good)
    assert status == 200 and orjson.loads(raw)["result"] == "0x7a69"
    direct = world.sign(RPC, b'{"jsonrpc":"2.0","id":9,"method":"eth_blockNumber"}')
    status, raw, _ = await _send(
        "POST", world.relayer.files.relay_url, direct.payload, direct.headers()
    )
    assert status == 200, raw
    for payload, _hidden in SMUGGLED:
        status, raw, headers = await _send("POST", rpc_url, payload)
        assert status < 500 and "Relay-Supplier" not in headers, (payload, raw)
        assert orjson.loads(raw)["error"]["code"] == -32600, (payload, raw)
        relay = world.sign(RPC, payload)
        status, raw, headers = await _send(
            "POST", world.relayer.files.relay_url, payload, relay.headers()
        )
        assert (status, orjson.loads(raw)["code"]) == (400, "INVALID_PAYLOAD"), (payload, raw)
        assert "Relay-Receipt" not in headers
    seen = world.go.snapshot()
    assert any(s.body == good for s in seen) and any(s.body == direct.payload for s in seen)
    bodies = {s.body for s in seen}
    assert not bodies & {p for p, _ in SMUGGLED}
    hidden = {"eth_sendRawTransaction", "debug_traceCall"}
    assert not {s.go_method for s in seen} & hidden


def _rest_payload(method: str, path: str) -> bytes:
    # built by hand: protocol.payload.rest_payload refuses these paths itself
    return f'{{"body":"","method":"{method}","path":"{path}","query":""}}'.encode()


async def test_traversal_paths_never_reach_the_backend(world: World) -> None:
    base = f"{world.gateway.url}/v1/{REST}/{world.key}"
    for path in PASSING:
        status, raw = await _until_relayed("GET", base + path)
        assert status == 200, (path, raw)
    for method, path in TRAVERSALS:
        status, raw, headers = await _send(method, base + path, b"{}" if method == "POST" else b"")
        assert status == 400 and "Relay-Supplier" not in headers, (path, status, raw)
        assert orjson.loads(raw)["code"] == 3, raw  # grpc-gateway INVALID_ARGUMENT
        relay = world.sign(REST, _rest_payload(method, path))
        status, raw, _ = await _send(
            "POST", world.relayer.files.relay_url, relay.payload, relay.headers()
        )
        assert (status, orjson.loads(raw)["code"]) == (400, "INVALID_PAYLOAD"), (path, raw)
    seen = [s.path for s in world.go.snapshot()]
    for path in PASSING:  # sent on exactly as the client wrote them
        assert path in seen, (path, seen)
    assert not [p for p in seen if "txs" in p or ".." in p or "%2e" in p.lower() or "/./" in p]


async def test_rest_routes_not_found_and_method_not_allowed(world: World) -> None:
    base = f"{world.gateway.url}/v1/{REST}/{world.key}"
    status, raw, _ = await _send("GET", base + "/no/such/route")
    assert status == 404
    assert orjson.loads(raw) == {"code": 5, "message": "Not Found", "details": []}
    for method in ("PUT", "DELETE", "PATCH"):
        status, raw, _ = await _send(method, base + "/cosmos/bank/v1beta1/balances/a")
        assert status == 405 and orjson.loads(raw)["code"] == 12, (method, raw)


def _post_sync(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    status, raw, _ = post(url, body, headers, timeout=30)
    return status, raw


@FUZZ_SLOW
@given(body=hostile_bytes())
def test_fuzz_bodies_through_gateway_and_relayer(world: World, body: bytes) -> None:
    """Hostile bodies over HTTP: never a 5xx from the gateway or the relayer, and nothing
    that breaks the payload rule reaches the backend."""
    before = len(world.go.snapshot())
    status, raw = _post_sync(world.gateway.rpc_url(RPC, world.key), body)
    assert status < 500, (body, status, raw)
    relay = world.sign(RPC, body)
    status, raw = _post_sync(world.relayer.files.relay_url, body, relay.headers())
    assert status < 500, (body, status, raw)
    for seen in world.go.snapshot()[before:]:
        if seen.http_method == "POST":
            check_jsonrpc_payload(seen.body)  # raises if something invalid was relayed
