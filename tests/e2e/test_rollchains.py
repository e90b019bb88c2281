"""Rollchains and Celestia through gateway → relayer (issue 7, "Must show"), end to end.

One network for the module: a settlement anvil; backends — the CometBFT stand-in (example
rollchain), the celestia-node stand-in (Mocha) and two EVM anvils with different chain ids;
two real relayer subprocesses and one real gateway subprocess. Relayer 1 is misconfigured on
purpose: its ``evm-b`` backend is the ``evm-a`` anvil (wrong chain id).

The stand-ins run in this process on their own event-loop thread, so a test can see what
reached the node (method and headers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from ledger.anvil import AnvilProcess
from ledger.bootstrap import AppSpec, GatewaySpec, ServiceSpec, dev_account
from ledger.client import LedgerClient
from ledger.deploy import Deployment
from protocol.keys import AccountKey, ReceiptKey
from protocol.payload import rest_payload
from protocol.relay import (
    WS_CLOSE_MAX_INDEX,
    WS_STATUS,
    Domain,
    decode_ws_frame,
    verify_receipt,
)
from rollups.catalogue import __file__ as _catalogue_init
from rollups.celestia import Permission
from tests.support.gateway_net import post
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files
from tests.support.relay_client import SignedRelay, sign_relay
from tests.support.relayer_net import Relayer, stake_relayers
from tests.support.relayer_proc import RelayerProcess, ServiceBackend
from tests.support.standins import StandIns

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CATALOGUE = Path(_catalogue_init).parent
JWT_SECRET = b"e2e celestia node secret"
NAMESPACE = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAMJ/xGlNMdE="  # the fixture blob's namespace
COMET, CELESTIA, EVM_A, EVM_B = "rollchain-rpc", "celestia-mocha", "evm-a", "evm-b"
REST = "rollchain-rest"
SERVICES = (COMET, CELESTIA, EVM_A, EVM_B, REST)
LONG_POLL = 6.0


def _write_specs(tmp: Path) -> dict[str, str]:
    celestia = (CATALOGUE / "celestia-mocha.toml").read_text()
    celestia = celestia.replace("long_poll = 120.0", f"long_poll = {LONG_POLL}")
    assert f"long_poll = {LONG_POLL}" in celestia
    devnet = (CATALOGUE / "devnet.toml").read_text()
    specs = {
        COMET: (CATALOGUE / "rollchain-rpc.toml").read_text(),
        REST: (CATALOGUE / "rollchain-rest.toml").read_text(),
        CELESTIA: celestia,
        EVM_A: devnet.replace('service_id = "devnet"', f'service_id = "{EVM_A}"').replace(
            "chain_id = 31337", "chain_id = 1001"
        ),
        EVM_B: devnet.replace('service_id = "devnet"', f'service_id = "{EVM_B}"').replace(
            "chain_id = 31337", "chain_id = 1002"
        ),
    }
    paths = {}
    for sid, text in specs.items():
        path = tmp / f"{sid}.toml"
        path.write_text(text)
        paths[sid] = str(path)
    return paths


@dataclass
class Net:
    standins: StandIns
    settlement: AnvilProcess
    evm_a: AnvilProcess
    evm_b: AnvilProcess
    relayers: list[RelayerProcess]
    suppliers: list[bytes]
    gateway: GatewayProcess
    key: str
    node_token: str
    receipt_keys: list[bytes]

    def url(self, sid: str) -> str:
        return self.gateway.rpc_url(sid)

    def call(
        self, sid: str, method: str, params: Any, id_: int = 1
    ) -> tuple[int, Any, dict[str, str]]:
        body = orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        status, raw, headers = post(
            self.url(sid), body, {"Authorization": f"Bearer {self.key}"}, timeout=30
        )
        return status, json.loads(raw), headers

    def stop(self) -> None:
        for proc in [self.gateway, *self.relayers]:
            try:
                proc.stop()
            except Exception:  # best-effort teardown of test processes
                proc.kill()
        for anvil in (self.evm_a, self.evm_b, self.settlement):
            anvil.stop()
        self.standins.stop()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("rollchains")
    standins = StandIns(JWT_SECRET, block_time=1.0, comet_height=20, node_height=20)
    settlement = AnvilProcess().start()
    evm_a = AnvilProcess(chain_id=1001).start()
    evm_b = AnvilProcess(chain_id=1002).start()
    relayers: list[RelayerProcess] = []
    gateway: GatewayProcess | None = None
    try:
        specs = _write_specs(tmp)
        token = standins.node.token(Permission.READ)
        good = {
            COMET: ServiceBackend(
                standins.comet.url, chain=specs[COMET], ws_url=standins.comet.ws_url
            ),
            CELESTIA: ServiceBackend(
                standins.node.url,
                chain=specs[CELESTIA],
                headers={"Authorization": f"Bearer {token}"},
                ws_url=standins.node.ws_url,
                allow_writes=False,
            ),
            EVM_A: ServiceBackend(evm_a.url, chain=specs[EVM_A], ws_url=evm_a.ws_url),
            EVM_B: ServiceBackend(evm_b.url, chain=specs[EVM_B], ws_url=evm_b.ws_url),
            REST: ServiceBackend(standins.comet.url, chain=specs[REST]),
        }
        wrong = dict(good)
        wrong[EVM_B] = ServiceBackend(evm_a.url, chain=specs[EVM_B], ws_url=evm_a.ws_url)
        keys = [dev_account(1), dev_account(2)]
        receipts = [ReceiptKey.generate() for _ in keys]
        apps = {sid: dev_account(3 + i) for i, sid in enumerate(SERVICES)}
        gw_key = dev_account(8)
        network, files = stake_relayers(
            tmp,
            settlement.url,
            [Relayer(k, svc, r) for k, r, svc in zip(keys, receipts, (good, wrong), strict=True)],
            services=[
                ServiceSpec(COMET, rpc_type="cometbft"),
                ServiceSpec(CELESTIA, rpc_type="celestia"),
                ServiceSpec(EVM_A),
                ServiceSpec(EVM_B),
                ServiceSpec(REST, rpc_type="cosmos-rest"),
            ],
            apps=[
                AppSpec(key=app, service_id=sid, gateways=[gw_key.address])
                for sid, app in apps.items()
            ],
            gateways=[GatewaySpec(key=gw_key)],
        )
        relayers = [RelayerProcess(f) for f in files]
        for proc in relayers:
            proc.start()
        gw_files = write_gateway_files(
            tmp / "gateway",
            rpc_url=settlement.url,
            deployment=network.deployment,
            account=gw_key,
            services=specs,
        )
        key = add_key(gw_files, {sid: "0x" + app.address.hex() for sid, app in apps.items()})
        gateway = GatewayProcess(gw_files).start()
        n = Net(
            standins,
            settlement,
            evm_a,
            evm_b,
            relayers,
            [k.address for k in keys],
            gateway,
            key,
            token,
            [r.public_key for r in receipts],
        )
    except BaseException:
        for proc in [gateway, *relayers]:
            if proc is not None:
                proc.kill()
        for anvil in (evm_a, evm_b, settlement):
            anvil.stop()
        standins.stop()
        raise
    try:
        yield n
    finally:
        n.stop()


def supplier_of(headers: dict[str, str]) -> str:
    """The supplier that answered; ``"hit"`` for a lone cache hit (it carries only
    ``Relay-Cache: hit``, DESIGN §4)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("relay-cache") == "hit":
        return "hit"
    return lower["relay-supplier"].lower()


def test_cometbft_stand_in_through_gateway_and_relayer(net: Net) -> None:
    status, answer, headers = net.call(COMET, "status", {})
    assert status == 200, answer
    result = answer["result"]
    assert result["node_info"]["network"] == "rollchain_262144-1"
    assert int(result["sync_info"]["latest_block_height"]) >= 20
    assert supplier_of(headers) in {"0x" + s.hex() for s in net.suppliers}
    _, block, _ = net.call(COMET, "block", {"height": "3"}, id_=2)
    assert block["id"] == 2 and block["result"]["block"]["header"]["height"] == "3"
    direct = json.loads(
        post(
            net.standins.comet.url,
            orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "block", "params": {"height": "3"}}),
        )[1]
    )
    assert block == direct  # the backend's own answer, byte for byte in content
    _, query, _ = net.call(
        COMET, "abci_query", {"path": "/store/bank/key", "data": "0a", "height": "5"}
    )
    assert query["result"]["response"]["height"] == "5"
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "health", "params": {}},
        {"jsonrpc": "2.0", "id": "b", "method": "block", "params": {"height": "2"}},
        {"jsonrpc": "2.0", "id": "c", "method": "dial_peers", "params": {}},
    ]
    status, raw, _ = post(
        net.url(COMET), orjson.dumps(batch), {"Authorization": f"Bearer {net.key}"}
    )
    answers = json.loads(raw)
    assert status == 200 and [a["id"] for a in answers] == ["a", "b", "c"]
    assert answers[0]["result"] == {} and answers[1]["result"]["block"]["header"]["height"] == "2"
    assert answers[2]["error"]["code"] == -32601  # unsafe route refused by the gateway
    _, bad, _ = net.call(COMET, "block", {"height": "x"})
    assert bad["error"]["message"] == "Invalid params"  # the stand-in's own refusal, relayed


def test_celestia_stand_in_relayer_adds_the_jwt_and_the_client_authorization_never_passes(
    net: Net,
) -> None:
    seen_before = len(net.standins.node.requests)
    status, head, _ = net.call(CELESTIA, "header.NetworkHead", [])
    assert status == 200, head
    assert head["result"]["header"]["chain_id"] == "mocha-4"
    _, blobs, _ = net.call(CELESTIA, "blob.GetAll", [2, [NAMESPACE]])
    assert blobs["result"][0]["namespace"] == NAMESPACE
    reached = net.standins.node.requests[seen_before:]
    relayed = [r for r in reached if r["method"] in ("header.NetworkHead", "blob.GetAll")]
    assert len(relayed) >= 2
    for request in relayed:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["authorization"] == f"Bearer {net.node_token}"
        assert net.key not in json.dumps(request["headers"])


@pytest.mark.parametrize(
    ("method", "params", "code", "fragment"),
    [
        ("blob.Submit", [[{"namespace": NAMESPACE, "data": "AA=="}], {}], -32601, "wallet"),
        ("state.Transfer", ["celestia1x", "1", {}], -32601, "wallet"),
        ("p2p.Info", [], -32601, "admin"),
        ("node.AuthNew", [["admin"]], -32601, "admin"),
        ("da.Get", [1, NAMESPACE, []], -32601, "Method not found"),
    ],
)
def test_refused_celestia_methods_get_a_clear_error(
    net: Net, method: str, params: Any, code: int, fragment: str
) -> None:
    before = [r["method"] for r in net.standins.node.requests]
    status, answer, _ = net.call(CELESTIA, method, params)
    assert status == 200 and answer["error"]["code"] == code
    assert fragment in answer["error"]["message"]
    after = [r["method"] for r in net.standins.node.requests]
    assert method not in after[len(before) :]  # never reached the node


def test_a_long_poll_gets_its_own_timeout(net: Net) -> None:
    _, head, _ = net.call(CELESTIA, "header.NetworkHead", [])
    height = int(head["result"]["header"]["height"])
    # ~3 blocks of 1 s: longer than the gateway's per-attempt timeout for reads (2 s), shorter
    # than the spec's long-poll timeout: answered
    _, waited, _ = net.call(CELESTIA, "header.WaitForHeight", [height + 3])
    assert waited["result"]["header"]["height"] == str(height + 3)
    # a height that never comes within the long-poll timeout: a timeout error, not a hang
    _, never, _ = net.call(CELESTIA, "header.WaitForHeight", [height + 10_000])
    assert "error" in never and "result" not in never


def test_two_evm_chains_each_service_reaches_only_its_chain(net: Net) -> None:
    _, a, _ = net.call(EVM_A, "eth_chainId", [])
    assert a["result"] == hex(1001)
    # the gateway probes the suppliers of the sessions in use: open evm-b's session, then wait
    # until relayer 1's evm-b backend was probed (the gateway's prober runs every 0.5 s)
    net.call(EVM_B, "net_version", [])
    wrong = "0x" + net.suppliers[1].hex()
    deadline = time.monotonic() + 60  # a loaded machine can be slow; a pass is quick
    while time.monotonic() < deadline:
        net.call(EVM_B, "net_version", [])  # keeps evm-b's current session in use (rollover)
        metrics = urllib.request.urlopen(net.gateway.metrics_url, timeout=5).read().decode()  # noqa: S310
        probed = [
            line
            for line in metrics.splitlines()
            if "supplier_height" in line and EVM_B in line and wrong in line.lower()
        ]
        if probed:
            break
        time.sleep(0.3)
    else:
        lines = [ln for ln in metrics.splitlines() if EVM_B in ln]
        pytest.fail("the gateway never probed relayer 1 for evm-b:\n" + "\n".join(lines))
    served_b = set()
    for i in range(12):
        status, answer, headers = net.call(EVM_B, "eth_chainId", [], id_=i)
        assert status == 200 and answer.get("result") == hex(1002), (i, status, answer)
        served_b.add(supplier_of(headers))
    assert served_b == {"0x" + net.suppliers[0].hex()}  # the wrong-chain relayer: never
    served_a = set()
    for i in range(12):
        _, answer, headers = net.call(EVM_A, "eth_chainId", [], id_=i)
        assert answer["result"] == hex(1001)
        served_a.add(supplier_of(headers))
    assert served_a - {"hit"} <= {"0x" + s.hex() for s in net.suppliers}
    net.evm_b.mine(3)
    _, number_b, _ = net.call(EVM_B, "eth_blockNumber", [])
    _, number_a, _ = net.call(EVM_A, "eth_blockNumber", [])
    assert int(number_b["result"], 16) == net.evm_b.block_number()
    assert int(number_a["result"], 16) == net.evm_a.block_number()


def _current_session(net: Net) -> tuple[int, Deployment]:
    deployment = Deployment.from_json(
        (net.relayers[0].files.directory / "deployment.json").read_text()
    )

    async def read() -> int:
        async with LedgerClient(net.settlement.url, deployment) as client:
            return await client.current_session()

    return asyncio.run(read()), deployment


def _sign_now(
    net: Net, i: int, app: AccountKey, sid: str, payload: bytes, **kw: int
) -> SignedRelay:
    """``payload`` signed by ``app`` for relayer ``i`` in the session now."""
    n, deployment = _current_session(net)
    domain = Domain(deployment.chain_id, bytes.fromhex(deployment.settlement[2:]))
    return sign_relay(
        domain,
        app,
        service_id=sid,
        supplier=net.suppliers[i],
        n=n,
        payload=payload,
        **kw,
    )


@pytest.mark.parametrize(
    ("sid", "payload", "backend"),
    [
        (CELESTIA, {"jsonrpc": "2.0", "id": 1, "method": "header.Subscribe", "params": []}, "node"),
        (
            COMET,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "subscribe",
                "params": {"query": "tm.event='NewBlock'"},
            },
            "comet",
        ),
    ],
)
def test_the_relayer_streams_subscriptions_from_the_stand_ins_with_its_node_token(
    net: Net, sid: str, payload: dict[str, Any], backend: str
) -> None:
    """The relayer leg of a subscription: a signed WebSocket relay (as the gateway sends it)
    to relayer 0, which opens the node's WebSocket with its own token and receipts each pushed
    message; the stream ends with close code 4000 at ``max_index``."""
    app = dev_account(3 + SERVICES.index(sid))
    body = orjson.dumps(payload)
    standin = net.standins.node if backend == "node" else net.standins.comet
    seen = len(standin.requests)

    async def stream(i: int, signed: Any) -> tuple[list[tuple[int, bytes]], int | None, str]:
        frames: list[tuple[int, bytes]] = []
        url = net.relayers[i].relay_url.replace("http://", "ws://")
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(url, headers={"Relay-Request": signed.relay_request})
            except aiohttp.WSServerHandshakeError as exc:
                return frames, None, str(exc.message)
            async with ws:
                await ws.send_bytes(body)
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.BINARY:
                        break
                    index, rhash, rsig, frame = decode_ws_frame(msg.data)
                    assert rhash == hashlib.sha256(WS_STATUS.to_bytes(2, "big") + frame).digest()
                    verify_receipt(net.receipt_keys[i], signed.digest, index, rhash, rsig)
                    frames.append((index, frame))
                return frames, ws.close_code, ""

    # Relayer i may hold no slot in this session, or the session may end between reading it
    # and relaying: then the next relayer (bounded).
    for attempt in range(3 * len(net.relayers)):
        i = attempt % len(net.relayers)
        signed = _sign_now(net, i, app, sid, body, cu=1, max_index=2)
        frames, close_code, refused = asyncio.run(asyncio.wait_for(stream(i, signed), 30))
        if frames or not refused:
            break
        time.sleep(0.2)
    assert [i for i, _ in frames] == [0, 1, 2]
    assert close_code == WS_CLOSE_MAX_INDEX
    first = orjson.loads(frames[0][1])
    assert "result" in first
    pushed = [orjson.loads(f) for _, f in frames[1:]]
    if backend == "node":
        assert all(
            p["method"] == "xrpc.ch.val" and p["params"][0] == first["result"] for p in pushed
        )
    else:
        assert all(p["result"]["query"] == "tm.event='NewBlock'" for p in pushed)
    upgrades = [r for r in standin.requests[seen:] if r["method"] == payload["method"]]
    assert upgrades
    headers = {k.lower(): v for k, v in upgrades[0]["headers"].items()}
    if backend == "node":
        assert headers["authorization"] == f"Bearer {net.node_token}"
    else:
        assert "authorization" not in headers


_NOT_THIS_ONE = {"NOT_IN_SESSION", "SESSION_NOT_STARTED", "SESSION_EXPIRED"}


def _relay_direct(net: Net, sid: str, payload: bytes) -> tuple[int, bytes, dict[str, str]]:
    """One signed relay straight to a relayer of the session (what the gateway sends), receipt
    checked. A relayer that holds no slot in the current session, or a session boundary crossed
    between reading the session and relaying, moves on to the next relayer (bounded)."""
    from rollups.catalogue import catalogue
    from rollups.registry import handler_for

    spec = catalogue()[sid]
    handler = handler_for(spec.rpc_type)
    cu = handler.compute_units(spec, handler.parse_relay(payload))
    app = dev_account(3 + SERVICES.index(sid))
    for attempt in range(3 * len(net.relayers)):
        i = attempt % len(net.relayers)
        signed = _sign_now(net, i, app, sid, payload, cu=cu)
        status, body, headers = post(net.relayers[i].relay_url, payload, signed.headers())
        lower = {k.lower(): v for k, v in headers.items()}
        if status == 200:
            backend_status = int(lower["relay-backend-status"])
            signed.check_receipt(net.receipt_keys[i], backend_status, body, lower["relay-receipt"])
            return status, body, lower
        if "relay-backend-status" in lower or orjson.loads(body).get("code") not in _NOT_THIS_ONE:
            return status, body, lower
        time.sleep(0.2)
    raise AssertionError(f"no relayer of the session answered {sid}: {status} {body!r}")


def test_the_relayer_turns_rest_like_payloads_back_into_http_requests(net: Net) -> None:
    """The relayer leg of REST-like relays (DESIGN §3.3): a CometBFT URI GET and Cosmos REST
    calls arrive at the node as the HTTP requests they describe."""
    comet = net.standins.comet
    status, body, headers = _relay_direct(
        net, COMET, rest_payload("GET", "/block", "height=3", b"")
    )
    assert status == 200 and headers["relay-backend-status"] == "200"
    direct = urllib.request.urlopen(comet.url + "/block?height=3", timeout=5).read()  # noqa: S310
    assert body == direct  # the node's own bytes (id -1: a URI answer)
    query = rest_payload("GET", "/abci_query", "path=%22/store/acc%22&data=0x01", b"")
    status, body, _ = _relay_direct(net, COMET, query)
    assert status == 200 and orjson.loads(body)["result"]["response"]["code"] == "0"
    seen = len(comet.requests)
    balances = rest_payload("GET", "/cosmos/bank/v1beta1/balances/cosmos1abc", "", b"")
    status, body, _ = _relay_direct(net, REST, balances)
    assert status == 200 and orjson.loads(body)["balances"][0]["denom"] == "stake"
    broadcast = rest_payload("POST", "/cosmos/tx/v1beta1/txs", "", b'{"tx_bytes":"cmVzdA=="}')
    status, body, _ = _relay_direct(net, REST, broadcast)
    assert status == 200 and orjson.loads(body)["tx_response"]["code"] == 0
    arrived = [r["method"] for r in comet.requests[seen:] if r["method"].startswith("rest:")]
    assert arrived == ["rest:balances", "rest:broadcast"]
    status, body, _ = _relay_direct(
        net, REST, rest_payload("GET", "/cosmos/bank/v1beta1/balances/a-b", "", b"")
    )
    assert status == 200 and orjson.loads(body)["code"] == 3  # the node's refusal, receipted
