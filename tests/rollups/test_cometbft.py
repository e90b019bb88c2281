"""The CometBFT handler: every route's class, the OpenAPI agreement, URI calls, cache, health."""

from __future__ import annotations

import orjson
import pytest
import yaml

from protocol.payload import rest_payload
from rollups import Call, Heights, MethodClass, ProbeAnswer, RetryMode, handler_for, parse_spec
from rollups.catalogue import catalogue
from rollups.cometbft import SERVED_ROUTES, UNSAFE_ROUTES, CometBftHandler
from rollups.errors import (
    BatchNotRelayableError,
    InvalidRequestError,
    MethodDeniedError,
    MethodNotAllowedError,
    MethodNotFoundError,
    SpecError,
    WritesDisabledError,
)
from rollups.handler import HealthStatus
from rollups.jsonrpc import parse_payload
from rollups.rest import backend_request, rest_call, rest_error
from tests.support.specs import overrides_spec

SPEC = catalogue()["rollchain-rpc"]
H = handler_for("cometbft")

# (route, class, cacheable at all) — the 31 served routes of RPC-TYPES.md and the 3 unsafe ones
ROUTE_TABLE = [
    ("health", "read", False),
    ("status", "read", False),
    ("net_info", "read", False),
    ("blockchain", "read", True),
    ("genesis", "read", True),
    ("genesis_chunked", "read", True),
    ("block", "read", True),
    ("block_by_hash", "read", True),
    ("block_results", "read", True),
    ("commit", "read", True),
    ("header", "read", True),
    ("header_by_hash", "read", True),
    ("check_tx", "read", False),
    ("tx", "read", True),
    ("tx_search", "read", False),
    ("block_search", "read", False),
    ("validators", "read", True),
    ("dump_consensus_state", "read", False),
    ("consensus_state", "read", False),
    ("consensus_params", "read", True),
    ("unconfirmed_txs", "read", False),
    ("num_unconfirmed_txs", "read", False),
    ("broadcast_tx_sync", "write", False),
    ("broadcast_tx_async", "write", False),
    ("broadcast_tx_commit", "write", False),
    ("abci_query", "read", True),
    ("abci_info", "read", True),
    ("broadcast_evidence", "write", False),
    ("subscribe", "subscription", False),
    ("unsubscribe", "subscription", False),
    ("unsubscribe_all", "subscription", False),
    ("dial_seeds", "denied", False),
    ("dial_peers", "denied", False),
    ("unsafe_flush_mempool", "denied", False),
]


def call(method: str, params: object = None, id_: int = 1) -> Call:
    body = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return H.parse_relay(orjson.dumps(body))


def test_the_table_covers_31_served_routes_and_3_unsafe() -> None:
    assert len(SERVED_ROUTES) == 31
    assert {r.name for r in UNSAFE_ROUTES} == {"dial_seeds", "dial_peers", "unsafe_flush_mempool"}
    assert len(ROUTE_TABLE) == 34
    upstream_cacheable = {"blockchain", "genesis", "genesis_chunked", "block", "block_by_hash"}
    upstream_cacheable |= {"block_results", "commit", "header", "header_by_hash", "tx"}
    upstream_cacheable |= {"validators", "consensus_params", "abci_info"}
    assert len(upstream_cacheable) == 13
    ours = {name for name, _cls, cacheable in ROUTE_TABLE if cacheable}
    assert ours == upstream_cacheable | {"abci_query"}


@pytest.mark.parametrize(("route", "cls", "cacheable"), ROUTE_TABLE)
def test_route_policy(route: str, cls: str, cacheable: bool) -> None:
    policy = H.method_policy(SPEC, route)
    assert policy.method_class == MethodClass(cls)
    assert policy.known
    assert policy.cacheable is cacheable
    assert policy.compute_units == SPEC.compute_units.price(route)
    c = call(route, {})
    if cls == "denied":
        with pytest.raises(MethodDeniedError, match="unsafe route"):
            H.plan(SPEC, c)
    elif cls == "write":
        plan = H.plan(SPEC, c, allow_writes=True)
        assert plan.retry.mode is RetryMode.UNSENT_ONLY and not plan.retry.hedge
        assert plan.retry.timeout == SPEC.timeouts.write
        with pytest.raises(WritesDisabledError, match="does not accept transactions"):
            H.plan(SPEC, c, allow_writes=False)
    else:
        plan = H.plan(SPEC, c)
        assert plan.method_class is MethodClass(cls)
        assert (plan.subscription is not None) is (cls == "subscription")
        if cls == "read":
            assert plan.retry.hedge and plan.retry.mode is RetryMode.ANY


def test_route_args_agree_with_the_openapi_file(fixtures_dir) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load((fixtures_dir / "cometbft" / "openapi.yaml").read_text())
    documented = {
        path.strip("/"): {p["name"] for p in item["get"].get("parameters", [])}
        for path, item in doc["paths"].items()
    }
    by_name = {r.name: r for r in SERVED_ROUTES + UNSAFE_ROUTES}
    for route, names in documented.items():
        assert route in by_name, route
        if route != "dial_seeds":  # the file names its argument "peers"; the node says "seeds"
            assert set(by_name[route].args) == names, route
    # every HTTP route of ours is documented (the file lists no WebSocket-only routes)
    http_routes = {r.name for r in SERVED_ROUTES} - {"subscribe", "unsubscribe", "unsubscribe_all"}
    assert http_routes <= set(documented)


def test_unknown_method_is_not_found_and_batches_are_not_relayable() -> None:
    with pytest.raises(MethodNotFoundError, match="Method not found"):
        H.plan(SPEC, call("eth_blockNumber"))
    assert H.method_policy(SPEC, "eth_blockNumber").known is False
    with pytest.raises(BatchNotRelayableError):
        H.parse_relay(b'[{"jsonrpc":"2.0","id":1,"method":"status"}]')
    parsed = parse_payload(
        b'[{"jsonrpc":"2.0","id":1,"method":"status"},{"jsonrpc":"2.0","id":2,"method":"health"}]'
    )
    assert parsed.batch and [c.method for c in parsed.calls] == ["status", "health"]  # type: ignore[union-attr]


def test_a_spec_cannot_allow_unsafe_routes() -> None:
    text = overrides_spec("cometbft", "x-1")
    with pytest.raises(SpecError, match="dial_peers is an unsafe route"):
        parse_spec(text + 'dial_peers = { class = "read" }\n')
    with pytest.raises(SpecError, match="unsafe route"):
        parse_spec(text + '"dial*" = { class = "read" }\n')
    with pytest.raises(SpecError, match="network: missing"):
        parse_spec(
            'service_id = "x"\nname = "x"\nrpc_type = "cometbft"\n'
            "chain_id = 5\nfinality_depth = 0\n"
        )
    spec = parse_spec(text + 'tx_search = { class = "denied" }\n')
    with pytest.raises(MethodDeniedError, match="denied by the chain spec"):
        H.plan(spec, call("tx_search", {"query": "tx.height=5"}))


def test_uri_get_is_a_rest_like_payload_turned_back_into_the_get() -> None:
    payload = rest_payload("GET", "/block", "height=5", b"")
    c = H.parse_relay(payload)
    assert c.method == "block" and c.params == {"height": "5"} and c.raw == payload
    assert H.compute_units(SPEC, c) == SPEC.compute_units.price("block")
    request = backend_request(H, c)
    assert request is not None
    assert request.url("http://node:26657/") == "http://node:26657/block?height=5"
    assert backend_request(H, call("block", {"height": "5"})) is None  # JSON-RPC: POST as is
    # the gateway's entry builds the same payload from the client's request
    built = rest_call(H, SPEC, "GET", "/abci_query", 'path="/store/bank"&data=0x00', b"")
    assert built.method == "abci_query" and built.raw == rest_payload(
        "GET", "/abci_query", "path=%22/store/bank%22&data=0x00", b""
    )
    assert built.params == {"path": '"/store/bank"', "data": "0x00"}
    with pytest.raises(MethodNotAllowedError, match="GETs"):
        H.parse_relay(rest_payload("POST", "/block", "", b"{}"))
    with pytest.raises(MethodNotFoundError):
        H.plan(SPEC, H.parse_relay(rest_payload("GET", "/subscribe", "query=x", b"")))
    with pytest.raises(MethodNotFoundError) as unknown:
        H.parse_relay(rest_payload("GET", "/a/b", "", b""))
    # an unknown route is grpc-gateway's 404 (it used to be 501), a wrong method 405
    status, body = rest_error(unknown.value)
    assert (status, orjson.loads(body)) == (404, {"code": 5, "message": "Not Found", "details": []})
    with pytest.raises(MethodNotAllowedError) as wrong:
        rest_call(H, SPEC, "POST", "/block", "", b"")
    assert rest_error(wrong.value)[0] == 405
    with pytest.raises(InvalidRequestError, match="canonical"):
        H.parse_relay(b'{"body":"", "method":"GET","path":"/block","query":""}')


def test_cache_follows_the_height_argument() -> None:
    heights = Heights(latest=100, finalized=100)  # CometBFT: instant finality
    final = H.cache_policy(SPEC, call("block", {"height": "50"}), heights)
    assert final.cacheable and final.final
    positional = H.cache_policy(SPEC, call("block", ["50"]), heights)
    assert positional.final and positional.key != final.key  # different params, different key
    head = H.cache_policy(SPEC, call("block", {}), heights)
    assert head.cacheable and head.ttl == SPEC.cache.head_ttl
    future = H.cache_policy(SPEC, call("block", {"height": "101"}), heights)
    assert not future.cacheable
    assert H.cache_policy(
        SPEC, call("abci_query", {"path": "/a", "data": "00", "height": "7"}), heights
    ).final
    assert not H.cache_policy(
        SPEC, call("abci_query", {"path": "/a", "data": "00"}), heights
    ).cacheable
    assert H.cache_policy(SPEC, call("tx", {"hash": "0xAB"}), heights).final
    assert not H.cache_policy(SPEC, call("status"), heights).cacheable
    assert not H.cache_policy(SPEC, call("broadcast_tx_sync", {"tx": "00"}), heights).cacheable
    uri = H.parse_relay(rest_payload("GET", "/block", "height=50", b""))
    uri_policy = H.cache_policy(SPEC, uri, heights)
    assert uri_policy.final and uri_policy.key != final.key  # the URI answer has id -1
    good = b'{"jsonrpc":"2.0","id":1,"result":{"block":{}}}'
    bad = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"Internal error","data":"x"}}'
    assert H.store_policy(SPEC, call("block", {"height": "50"}), good, heights).final
    assert not H.store_policy(SPEC, call("block", {"height": "50"}), bad, heights).cacheable


def status_body(network: str, height: str, catching_up: bool = False) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "node_info": {"network": network},
                "sync_info": {"latest_block_height": height, "catching_up": catching_up},
            },
        }
    )


def test_health_reads_status() -> None:
    (probe,) = H.probe_requests(SPEC)
    assert orjson.loads(probe.body)["method"] == "status"
    net = SPEC.network
    assert net is not None
    ok = H.read_health(SPEC, {"status": ProbeAnswer(200, status_body(net, "42"))})
    assert ok.ok and ok.height == 42 and ok.chain_id == net
    wrong = H.read_health(SPEC, {"status": ProbeAnswer(200, status_body("other-1", "42"))})
    assert wrong.status is HealthStatus.WRONG_CHAIN and "other-1" in wrong.reason
    syncing = H.read_health(SPEC, {"status": ProbeAnswer(200, status_body(net, "42", True))})
    assert syncing.status is HealthStatus.SYNCING
    assert H.read_health(SPEC, {"status": None}).status is HealthStatus.UNREACHABLE
    bad = H.read_health(SPEC, {"status": ProbeAnswer(200, b"<html>")})
    assert bad.status is HealthStatus.BAD_ANSWER
    assert H.read_height(status_body(net, "7")) == 7


def test_subscriptions_and_notifications() -> None:
    sub = H.subscription(call("subscribe", {"query": "tm.event='NewBlock'"}))
    assert sub is not None and sub.subscribe and sub.topic == "tm.event='NewBlock'"
    unsub = H.subscription(call("unsubscribe", ["tm.event='NewBlock'"]))
    assert unsub is not None and not unsub.subscribe
    event = orjson.dumps(
        {"jsonrpc": "2.0", "id": 5, "result": {"query": "tm.event='NewBlock'", "data": {}}}
    )
    assert H.read_notification(event) == "tm.event='NewBlock'"
    assert orjson.loads(H.rewrite_notification(event, "9"))["id"] == 9
    assert H.read_notification(b'{"jsonrpc":"2.0","id":5,"result":{}}') is None


def test_answers_and_header_policy() -> None:
    c = call("block", {"height": "5"})
    assert H.check_answer(SPEC, c, 200, b'{"jsonrpc":"2.0","id":1,"result":{}}').valid
    lagging = (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"Internal error",'
        b'"data":"height 5 must be less than or equal to the current blockchain height 4"}}'
    )
    assert H.check_answer(SPEC, c, 200, lagging).retry_elsewhere
    assert not H.check_answer(SPEC, c, 200, b'{"jsonrpc":"2.0","id":2,"result":{}}').valid
    uri = H.parse_relay(rest_payload("GET", "/block", "height=5", b""))
    assert H.check_answer(SPEC, uri, 200, b'{"jsonrpc":"2.0","id":-1,"result":{}}').valid
    policy = H.header_policy(SPEC)
    assert "Authorization" not in policy.client_headers({"Authorization": "Bearer client"})
    assert policy.backend_headers(token="node")["Authorization"] == "Bearer node"
    landed = (
        b'{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x",'
        b'"data":"tx already exists in cache"}}'
    )
    assert H.write_landed(call("broadcast_tx_sync", {"tx": "00"}), landed)


def test_registered_and_in_the_catalogue() -> None:
    assert isinstance(H, CometBftHandler)
    specs = catalogue()
    for sid in ("celestia-consensus", "celestia-mocha-consensus", "rollchain-rpc"):
        assert specs[sid].rpc_type == "cometbft"
    assert specs["celestia-mocha-consensus"].network == "mocha-4"
