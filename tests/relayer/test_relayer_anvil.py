"""Must show, through a real subprocess against real anvils: exact bytes and receipts that
verify against the registered receipt key, every refusal with its code, client credentials
never forwarded while configured backend headers are, and a WebSocket stream of receipted
frames."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import orjson
import pytest

from ledger.anvil import free_port
from ledger.client import LedgerClient
from protocol.relay import (
    WS_CLOSE_MAX_INDEX,
    WS_STATUS,
    decode_ws_frame,
    encode_relay_request,
    response_hash,
    verify_receipt,
)
from tests.support.relay_client import SignedRelay, high_s, rpc, sign_relay
from tests.support.relayer_net import (
    BIG_APP_STAKE,
    POOR_APP_STAKE,
    CaptureBackend,
    Net,
    relayer_network,
)
from tests.support.relayer_proc import ServiceBackend

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("relayer-anvil")
    with CaptureBackend() as capture:
        dead = f"http://127.0.0.1:{free_port()}"
        services = {
            "devnet": ServiceBackend("anvil", max_body_bytes=LIMIT, ws_url="anvil"),
            "dead": ServiceBackend(dead, max_body_bytes=LIMIT),
            "slow": ServiceBackend(capture.url + "/slow", timeout=0.5, max_body_bytes=LIMIT),
            "capture": ServiceBackend(
                capture.url + "/", headers={"X-Node-Token": "node-secret"}, max_body_bytes=LIMIT
            ),
            "nosupp": ServiceBackend("anvil", max_body_bytes=LIMIT),
        }
        with relayer_network(
            tmp,
            services=services,
            staked_services=("devnet", "dead", "slow", "capture"),
            app_services={
                "main": ("devnet", BIG_APP_STAKE),
                "poor": ("devnet", POOR_APP_STAKE),
                "dead": ("dead", BIG_APP_STAKE),
                "slow": ("slow", BIG_APP_STAKE),
                "capture": ("capture", BIG_APP_STAKE),
            },
            capture=capture,
        ) as n:
            yield n


def sign(net: Net, who: str = "main", *, payload: bytes | None = None, **kw: object) -> SignedRelay:
    args: dict[str, object] = {
        "service_id": "devnet",
        "app": net.apps[who].address,
        "supplier": net.supplier.address,
        "n": net.session(),
        "payload": payload if payload is not None else rpc("eth_getBlockByNumber", ["0x0", False]),
    }
    key = kw.pop("key", net.apps[who])
    args.update(kw)
    return sign_relay(net.domain, key, **args)  # type: ignore[arg-type]


async def post(
    net: Net, relay: SignedRelay | None, body: bytes | None = None, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    hdrs = relay.headers(**headers) if relay is not None else dict(headers)
    data = body if body is not None else (relay.payload if relay is not None else b"")
    async with (
        aiohttp.ClientSession() as s,
        s.post(net.relayer.relay_url, data=data, headers=hdrs) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


async def code_of(net: Net, relay: SignedRelay | None, body: bytes | None = None, **h: str) -> str:
    status, raw, headers = await post(net, relay, body, **h)
    assert status >= 400 and "Relay-Receipt" not in headers, raw
    doc = orjson.loads(raw)
    assert set(doc) == {"code", "message", "retryable"}
    return str(doc["code"])


async def registered_receipt_key(net: Net) -> bytes:
    client = LedgerClient(net.chain.url, net.network.deployment)
    try:
        return (await client.supplier(net.supplier.address)).receipt_key
    finally:
        await client.close()


async def test_backend_bytes_and_receipt_verify_against_registered_key(net: Net) -> None:
    pubkey = await registered_receipt_key(net)
    assert pubkey == net.receipt.public_key
    for payload in (
        rpc("eth_getBlockByNumber", ["0x0", False], id_=7),
        rpc("eth_chainId", id_="abc"),  # type: ignore[arg-type]
        rpc("eth_getBalance", ["0x" + "00" * 20, "0x0"]),
    ):
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                net.backend.url, data=payload, headers={"Content-Type": "application/json"}
            ) as r,
        ):
            direct = await r.read()
        relay = sign(net, payload=payload)
        status, body, headers = await post(net, relay)
        assert status == 200
        assert body == direct  # the backend's own bytes
        assert headers["Relay-Backend-Status"] == "200"
        relay.check_receipt(pubkey, 200, body, headers["Relay-Receipt"])


async def test_every_refusal_has_its_code(net: Net) -> None:
    n = net.session()
    assert n >= 2
    good = sign(net)
    cases: list[tuple[str, SignedRelay | None, bytes | None, dict[str, str]]] = [
        ("MALFORMED_HEADER", good, None, {"Relay-Request": "not base64!"}),
        ("MALFORMED_HEADER", None, good.payload, {}),
        ("UNSUPPORTED_VERSION", sign(net, version=2), None, {}),
        ("PAYLOAD_HASH_MISMATCH", good, rpc("eth_getBlockByNumber", ["0x1", False]), {}),
        (
            "BAD_SIGNATURE",
            sign(net, key=net.outsider_gateway, signer=net.apps["main"].address),
            None,
            {},
        ),
        ("SIGNER_NOT_DELEGATED", sign(net, key=net.outsider_gateway), None, {}),
        ("WRONG_SUPPLIER", sign(net, supplier=net.gateway.address), None, {}),
        ("NOT_IN_SESSION", sign(net, service_id="nosupp"), None, {}),
        ("SESSION_NOT_STARTED", sign(net, n=n + 2), None, {}),
        ("SESSION_EXPIRED", sign(net, n=n - 2), None, {}),
        ("APP_NOT_STAKED", sign(net, key=net.gateway, app=net.gateway.address), None, {}),
        ("BAD_COMPUTE_UNITS", sign(net, payload=rpc("eth_getLogs", [{}]), cu=1), None, {}),
        ("BATCH_NOT_RELAYABLE", sign(net, payload=b"[" + rpc("eth_chainId") + b"]"), None, {}),
        ("METHOD_DENIED", sign(net, payload=rpc("admin_nodeInfo")), None, {}),
        ("UNKNOWN_SERVICE", sign(net, service_id="unserved"), None, {}),
    ]
    for code, relay, body, headers in cases:
        assert await code_of(net, relay, body, **headers) == code, code
    # high-s twin of a valid signature
    twin = sign(net)
    forged = encode_relay_request(twin.header_bytes, high_s(twin.signature))
    assert await code_of(net, twin, **{"Relay-Request": forged}) == "BAD_SIGNATURE"
    # body too large: refused on size alone, before the header is even parsed or hashed
    big = b"[" + b" " * (LIMIT + 10) + b"]"
    assert await code_of(net, sign(net, payload=big)) == "PAYLOAD_TOO_LARGE"
    assert await code_of(net, good, big, **{"Relay-Request": "garbage"}) == "PAYLOAD_TOO_LARGE"


async def test_replayed_relay_refused_before_forwarding(net: Net) -> None:
    assert net.capture is not None
    payload = rpc("eth_chainId", id_=99)
    relay = sign(net, "capture", service_id="capture", payload=payload)
    assert (await post(net, relay))[0] == 200
    assert await code_of(net, relay) == "REPLAYED_RELAY"
    assert [s[2] for s in net.capture.seen].count(payload) == 1  # forwarded once only


async def test_over_budget(net: Net) -> None:
    results = []
    for _ in range(4):
        status, raw, _ = await post(net, sign(net, "poor"))
        results.append(200 if status == 200 else orjson.loads(raw)["code"])
    assert results == [200, 200, 200, "APP_OVER_BUDGET"]
    doc = orjson.loads((await post(net, sign(net, "poor")))[1])
    assert doc["retryable"] is True


async def test_backend_down_and_timeout_are_errors_not_hangs(net: Net) -> None:
    down = sign(net, "dead", service_id="dead")
    status, raw, _ = await post(net, down)
    assert (status, orjson.loads(raw)["code"]) == (502, "BACKEND_UNAVAILABLE")
    slow = sign(net, "slow", service_id="slow")
    status, raw, _ = await post(net, slow)
    assert (status, orjson.loads(raw)["code"]) == (504, "BACKEND_TIMEOUT")
    # nothing was recorded: the same signed request may be relayed again once the backend heals
    status, raw, _ = await post(net, down)
    assert orjson.loads(raw)["code"] == "BACKEND_UNAVAILABLE"


async def test_client_credentials_never_reach_the_backend(net: Net) -> None:
    assert net.capture is not None
    payload = rpc("eth_blockNumber", id_=4242)
    relay = sign(net, "capture", service_id="capture", payload=payload)
    status, body, answer_headers = await post(
        net,
        relay,
        Authorization="Bearer client-secret",
        Cookie="session=abc",
        **{"X-Api-Key": "client-key"},
    )
    assert status == 200 and body == net.capture.ANSWER
    assert "Relay-Receipt" in answer_headers
    path, seen, got = next(s for s in net.capture.seen if s[2] == payload)
    assert path == "/"
    lowered = {k.lower(): v for k, v in seen.items()}
    assert got == payload  # byte for byte
    assert lowered["x-node-token"] == "node-secret"
    assert "authorization" not in lowered and "cookie" not in lowered
    assert "x-api-key" not in lowered and "relay-request" not in lowered


async def test_metrics_and_health(net: Net) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(net.relayer.metrics_url) as r:
            text = await r.text()
        async with s.get(net.relayer.url + "/healthz") as r:
            assert r.status == 200
    assert "relaynet_relayer_relays_total" in text
    assert 'relaynet_relayer_refused_total{code="REPLAYED_RELAY"}' in text


async def test_websocket_stream_of_receipted_frames(net: Net) -> None:
    pubkey = net.receipt.public_key
    payload = rpc("eth_subscribe", ["newHeads"])
    relay = sign(net, payload=payload, max_index=2)
    frames = []
    url = net.relayer.relay_url.replace("http://", "ws://")
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(url, headers={"Relay-Request": relay.relay_request}) as ws,
    ):
        await ws.send_str(payload.decode())
        for k in range(3):
            if k:
                net.backend.mine(1)
            msg = await ws.receive(timeout=15)
            assert msg.type is aiohttp.WSMsgType.BINARY, msg
            frames.append(decode_ws_frame(msg.data))
        closing = await ws.receive(timeout=15)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == WS_CLOSE_MAX_INDEX
    assert [f[0] for f in frames] == [0, 1, 2]
    assert orjson.loads(frames[0][3])["result"].startswith("0x")  # the subscription id
    for index, rh, sig, body in frames:
        assert rh == response_hash(WS_STATUS, body)
        verify_receipt(pubkey, relay.digest, index, rh, sig)
    assert orjson.loads(frames[2][3])["method"] == "eth_subscription"
