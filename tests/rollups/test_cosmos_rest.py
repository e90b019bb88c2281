"""The Cosmos REST handler: REST-like payloads, route names, classes, cache, health, refusals."""

from __future__ import annotations

import orjson
import pytest

from protocol.errors import ErrorCode
from protocol.payload import parse_rest_payload, rest_payload
from rollups import (
    Heights,
    InvalidRequestError,
    MethodClass,
    MethodNotFoundError,
    ProbeAnswer,
    WritesDisabledError,
    handler_for,
)
from rollups.catalogue import catalogue
from rollups.cosmos_rest import route_name
from rollups.errors import MethodNotAllowedError
from rollups.handler import HealthStatus
from rollups.rest import backend_request, rest_call, rest_error

SPEC = catalogue()["rollchain-rest"]
H = handler_for("cosmos-rest")


@pytest.mark.parametrize(
    ("method", "path", "name", "cls"),
    [
        (
            "GET",
            "/cosmos/bank/v1beta1/balances/cosmos1abc",
            "get.cosmos.bank.v1beta1.balances",
            "read",
        ),
        (
            "GET",
            "/cosmos/base/tendermint/v1beta1/blocks/7",
            "get.cosmos.base.tendermint.v1beta1.blocks",
            "read",
        ),
        ("GET", "/ibc/core/channel/v1/channels", "get.ibc.core.channel.v1.channels", "read"),
        ("GET", "/cosmwasm/wasm/v1/contract/x/smart/e30=", "get.cosmwasm.wasm.v1.contract", "read"),
        ("POST", "/cosmos/tx/v1beta1/txs", "post.cosmos.tx.v1beta1.txs", "write"),
        ("POST", "/cosmos/tx/v1beta1/simulate", "post.cosmos.tx.v1beta1.simulate", "read"),
    ],
)
def test_routes_and_classes(method: str, path: str, name: str, cls: str) -> None:
    assert route_name(method, path) == name
    call = rest_call(H, SPEC, method, path, "", b"{}" if method == "POST" else b"")
    assert call.method == name and call.params["path"] == path
    plan = H.plan(SPEC, call, allow_writes=True)
    assert plan.method_class is MethodClass(cls)
    assert plan.compute_units == SPEC.compute_units.price(name)
    assert H.parse_relay(call.raw) == call  # the relayer reads the same call back


def test_the_relayer_sends_the_http_request_back() -> None:
    payload = rest_payload(
        "GET", "/cosmos/bank/v1beta1/balances/cosmos1abc", "pagination.limit=2", b""
    )
    call = H.parse_relay(payload)
    assert call.params["query"] == {"pagination.limit": "2"}
    request = backend_request(H, call)
    assert request is not None and request.method == "GET" and request.body == b""
    assert (
        request.url("http://lcd:1317")
        == "http://lcd:1317/cosmos/bank/v1beta1/balances/cosmos1abc?pagination.limit=2"
    )
    post = H.parse_relay(rest_payload("POST", "/cosmos/tx/v1beta1/txs", "", b'{"tx_bytes":"AA=="}'))
    sent = backend_request(H, post)
    assert sent is not None and sent.body == b'{"tx_bytes":"AA=="}' and sent.content_type


def test_refusals_with_status_and_grpc_shape() -> None:
    with pytest.raises(MethodNotFoundError, match="Not Implemented") as not_found:
        rest_call(H, SPEC, "GET", "/node_info", "", b"")
    status, body = rest_error(not_found.value)
    assert status == 404 and orjson.loads(body) == {
        "code": 5,
        "message": "Not Found",
        "details": [],
    }
    with pytest.raises(MethodNotAllowedError) as not_allowed:
        rest_call(H, SPEC, "DELETE", "/cosmos/bank/v1beta1/x", "", b"")
    status, body = rest_error(not_allowed.value)
    assert status == 405 and orjson.loads(body)["code"] == 12
    with pytest.raises(InvalidRequestError) as traversal:
        rest_call(H, SPEC, "POST", "/cosmos/tx/v1beta1/simulate/../txs", "", b"{}")
    assert traversal.value.code is ErrorCode.INVALID_PAYLOAD
    assert rest_error(traversal.value)[0] == 400
    write = rest_call(H, SPEC, "POST", "/cosmos/tx/v1beta1/txs", "", b"{}")
    with pytest.raises(WritesDisabledError) as refused:
        H.plan(SPEC, write, allow_writes=False)
    assert rest_error(refused.value)[0] == 403
    with pytest.raises(InvalidRequestError, match="not JSON-RPC"):
        H.parse_relay(b'{"jsonrpc":"2.0","id":1,"method":"status"}')
    with pytest.raises(MethodNotFoundError, match="JSON-RPC POSTs"):
        rest_call(handler_for("evm"), catalogue()["devnet"], "GET", "/x", "", b"")


def test_unsafe_characters_are_percent_encoded_into_the_payload() -> None:
    call = rest_call(H, SPEC, "GET", "/cosmos/gov/v1/proposals", 'status="x y"', b"")
    request = parse_rest_payload(call.raw)
    assert request.query == "status=%22x%20y%22"
    assert call.params["query"] == {"status": '"x y"'}


def test_cache() -> None:
    heights = Heights(latest=100, finalized=100)
    block = rest_call(H, SPEC, "GET", "/cosmos/base/tendermint/v1beta1/blocks/50", "", b"")
    assert H.cache_policy(SPEC, block, heights).final
    future = rest_call(H, SPEC, "GET", "/cosmos/base/tendermint/v1beta1/blocks/500", "", b"")
    assert not H.cache_policy(SPEC, future, heights).cacheable
    balance = rest_call(H, SPEC, "GET", "/cosmos/bank/v1beta1/balances/a", "", b"")
    policy = H.cache_policy(SPEC, balance, heights)
    assert policy.cacheable and policy.ttl == SPEC.cache.head_ttl
    other = rest_call(H, SPEC, "GET", "/cosmos/bank/v1beta1/balances/b", "", b"")
    assert H.cache_policy(SPEC, other, heights).key != policy.key
    tx = rest_call(H, SPEC, "GET", "/cosmos/tx/v1beta1/txs/ABCD", "", b"")
    assert H.cache_policy(SPEC, tx, heights).final
    not_found = b'{"code":5,"message":"tx not found: ABCD","details":[]}'
    assert not H.store_policy(SPEC, tx, not_found, heights).cacheable
    assert H.store_policy(SPEC, tx, b'{"tx":{},"tx_response":{}}', heights).final
    write = rest_call(H, SPEC, "POST", "/cosmos/tx/v1beta1/txs", "", b"{}")
    assert not H.cache_policy(SPEC, write, heights).cacheable


def test_health_and_answers() -> None:
    probes = {p.name: p for p in H.probe_requests(SPEC)}
    assert probes["latest_block"].http_method == "GET"
    assert parse_rest_payload(probes["latest_block"].body).path == probes["latest_block"].path
    net = SPEC.network
    latest = orjson.dumps({"block": {"header": {"height": "9", "chain_id": net}}})
    ok = H.read_health(
        SPEC,
        {
            "latest_block": ProbeAnswer(200, latest),
            "syncing": ProbeAnswer(200, b'{"syncing":false}'),
        },
    )
    assert ok.ok and ok.height == 9 and ok.chain_id == net
    wrong = orjson.dumps({"sdk_block": {"header": {"height": "9", "chain_id": "other-2"}}})
    assert (
        H.read_health(SPEC, {"latest_block": ProbeAnswer(200, wrong)}).status
        is HealthStatus.WRONG_CHAIN
    )
    syncing = H.read_health(
        SPEC,
        {
            "latest_block": ProbeAnswer(200, latest),
            "syncing": ProbeAnswer(200, b'{"syncing":true}'),
        },
    )
    assert syncing.status is HealthStatus.SYNCING
    call = rest_call(H, SPEC, "GET", "/cosmos/bank/v1beta1/balances/a", "", b"")
    assert H.check_answer(SPEC, call, 200, b'{"balances":[]}').valid
    refused = H.check_answer(SPEC, call, 400, b'{"code":3,"message":"bad","details":[]}')
    assert refused.error and not refused.retry_elsewhere
    assert H.check_answer(SPEC, call, 503, b"busy").retry_elsewhere
