"""Method classes, admission, compute units, roles, retries, pinning and subscriptions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollups import (
    Call,
    ChainSpec,
    HeaderPolicy,
    MethodClass,
    MethodDeniedError,
    MethodNotFoundError,
    RetryMode,
    WritesDisabledError,
    catalogue,
    error_response,
    handler_for,
    parse_spec,
)

EVM = handler_for("evm")


def call(method: str, params: Any = None, id_: int = 1) -> Call:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        obj["params"] = params
    return EVM.parse_relay(orjson.dumps(obj))


def spec_with(extra: str = "", rpc_type: str = "evm") -> ChainSpec:
    return parse_spec(
        f"""
service_id = "test-chain"
name = "Test"
rpc_type = "{rpc_type}"
chain_id = 31337
finality_depth = 2
{extra}
"""
    )


@pytest.fixture
def eth() -> ChainSpec:
    return catalogue()["eth"]


@pytest.mark.parametrize(
    ("method", "cls"),
    [
        ("eth_call", MethodClass.READ),
        ("eth_sendRawTransaction", MethodClass.WRITE),
        ("eth_sendRawTransactionConditional", MethodClass.WRITE),
        ("eth_newFilter", MethodClass.STATEFUL),
        ("eth_getFilterChanges", MethodClass.STATEFUL),
        ("eth_subscribe", MethodClass.SUBSCRIPTION),
        ("eth_unsubscribe", MethodClass.SUBSCRIPTION),
        ("admin_addPeer", MethodClass.DENIED),
        ("admin_nodeInfo", MethodClass.DENIED),
        ("personal_unlockAccount", MethodClass.DENIED),
        ("personal_sign", MethodClass.DENIED),
        ("miner_start", MethodClass.DENIED),
        ("engine_newPayloadV3", MethodClass.DENIED),
        ("debug_setHead", MethodClass.DENIED),
        ("debug_chaindbCompact", MethodClass.DENIED),
        ("debug_somethingNew", MethodClass.DENIED),
        ("anvil_mine", MethodClass.DENIED),
        ("anvil_setBalance", MethodClass.DENIED),
        ("hardhat_impersonateAccount", MethodClass.DENIED),
        ("evm_mine", MethodClass.DENIED),
        ("evm_snapshot", MethodClass.DENIED),
        ("trace_block", MethodClass.READ),
        ("debug_traceCall", MethodClass.READ),
    ],
)
def test_method_classes(eth: ChainSpec, method: str, cls: MethodClass) -> None:
    assert EVM.method_policy(eth, method).method_class is cls


def test_denied_methods_are_refused_with_method_not_found_code(eth: ChainSpec) -> None:
    with pytest.raises(MethodDeniedError) as denied:
        EVM.plan(eth, call("admin_peers"))
    assert denied.value.jsonrpc_code == -32601
    assert denied.value.code.value == "METHOD_DENIED"
    assert "node administration" in denied.value.message
    with pytest.raises(MethodNotFoundError) as unknown:
        EVM.plan(eth, call("eth_noSuchMethod", id_=9))
    body = orjson.loads(error_response(9, unknown.value))
    assert body == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {
            "code": -32601,
            "message": "the method eth_noSuchMethod does not exist/is not available",
        },
    }


def test_writes_follow_operator_config_then_spec(eth: ChainSpec) -> None:
    send = call("eth_sendRawTransaction", ["0x02f8"])
    plan = EVM.plan(eth, send)
    assert plan.method_class is MethodClass.WRITE
    with pytest.raises(WritesDisabledError):
        EVM.plan(eth, send, allow_writes=False)
    no_writes = spec_with("[methods]\nallow_writes = false")
    with pytest.raises(WritesDisabledError) as exc:
        EVM.plan(no_writes, send)
    assert exc.value.jsonrpc_code == -32601
    assert EVM.plan(no_writes, send, allow_writes=True).method_class is MethodClass.WRITE
    # reads are not affected by the write switch
    assert EVM.plan(no_writes, call("eth_chainId")).method_class is MethodClass.READ


def test_compute_units_follow_the_spec(eth: ChainSpec) -> None:
    assert EVM.compute_units(eth, call("eth_blockNumber")) == 1
    assert EVM.compute_units(eth, call("eth_getLogs", [{}])) == 10
    assert EVM.compute_units(eth, call("debug_getRawBlock", ["0x1"])) == 20
    assert EVM.compute_units(eth, call("debug_traceTransaction", ["0x" + "00" * 32])) == 40
    assert EVM.plan(eth, call("trace_block", ["0x1"])).compute_units == 40
    assert EVM.compute_units(eth, call("eth_getLogs", [{}])) > EVM.compute_units(
        eth, call("eth_getBalance", ["0x" + "00" * 20, "latest"])
    )


def test_retry_and_hedge_rules_per_class(eth: ChainSpec) -> None:
    read = EVM.plan(eth, call("eth_getBalance"), allow_writes=True).retry
    assert read.mode is RetryMode.ANY and read.hedge and read.idempotent
    write = EVM.plan(eth, call("eth_sendRawTransaction", ["0x00"]), allow_writes=True).retry
    assert write.mode is RetryMode.UNSENT_ONLY and not write.hedge and not write.idempotent
    assert write.timeout == eth.timeouts.write
    stateful = EVM.plan(eth, call("eth_getFilterChanges", ["0x1"]), allow_writes=True).retry
    assert stateful.mode is RetryMode.NEVER and not stateful.hedge
    sub = EVM.plan(eth, call("eth_subscribe", ["newHeads"]), allow_writes=True).retry
    assert sub.mode is RetryMode.NEVER and not sub.hedge


def test_long_poll_class_from_spec_override_has_own_timeout() -> None:
    spec = spec_with(
        '[methods.overrides]\nexample_waitForBlock = { class = "long_poll" }\n'
        "[timeouts]\nlong_poll = 90.0"
    )
    plan = EVM.plan(spec, call("example_waitForBlock", ["0x10"]))
    assert plan.method_class is MethodClass.LONG_POLL
    assert not plan.retry.hedge
    assert plan.retry.timeout == 90.0


def test_write_landed_after_retry(eth: ChainSpec) -> None:
    send = call("eth_sendRawTransaction", ["0x00"])

    def err(message: str) -> bytes:
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": message}}
        )

    assert EVM.write_landed(send, err("already known"))
    assert EVM.write_landed(send, err("nonce too low: next nonce 5, tx nonce 4"))
    assert EVM.write_landed(send, err("known transaction: 0xabc"))
    assert not EVM.write_landed(send, err("insufficient funds for gas * price + value"))
    assert not EVM.write_landed(send, b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"ab" * 32 + b'"}')


def test_stateful_calls_are_pinned(eth: ChainSpec) -> None:
    create = EVM.plan(eth, call("eth_newFilter", [{"fromBlock": "latest"}]))
    assert create.pinning is not None and create.pinning.creates
    assert EVM.read_handle(b'{"jsonrpc":"2.0","id":1,"result":"0x1f"}') == "0x1f"
    use = EVM.plan(eth, call("eth_getFilterChanges", ["0x1f"]))
    assert use.pinning is not None
    assert (use.pinning.creates, use.pinning.handle, use.pinning.releases) == (False, "0x1f", False)
    drop = EVM.plan(eth, call("eth_uninstallFilter", ["0x1f"]))
    assert drop.pinning is not None and drop.pinning.releases
    assert EVM.plan(eth, call("eth_chainId")).pinning is None


def test_subscriptions(eth: ChainSpec) -> None:
    sub = EVM.plan(eth, call("eth_subscribe", ["logs", {"address": "0x" + "11" * 20}]))
    assert sub.subscription is not None
    assert sub.subscription.subscribe and sub.subscription.topic == "logs"
    unsub = EVM.plan(eth, call("eth_unsubscribe", ["0xabc"]))
    assert unsub.subscription is not None
    assert not unsub.subscription.subscribe and unsub.subscription.subscription_id == "0xabc"
    pushed = (
        b'{"jsonrpc":"2.0","method":"eth_subscription",'
        b'"params":{"subscription":"0xabc","result":{"number":"0x1"}}}'
    )
    assert EVM.read_notification(pushed) == "0xabc"
    assert EVM.read_notification(b'{"jsonrpc":"2.0","id":1,"result":"0x1"}') is None
    rewritten = orjson.loads(EVM.rewrite_notification(pushed, "gw-1"))
    assert rewritten["params"] == {"subscription": "gw-1", "result": {"number": "0x1"}}


def test_test_methods_can_be_allowed_by_a_spec_admin_never() -> None:
    spec = spec_with('[methods.overrides]\n"anvil_*" = { class = "read" }')
    assert EVM.plan(spec, call("anvil_nodeInfo")).method_class is MethodClass.READ
    # still denied elsewhere
    assert EVM.method_policy(catalogue()["devnet"], "anvil_nodeInfo").method_class is (
        MethodClass.DENIED
    )


def test_spec_override_can_deny_and_mark_cacheable() -> None:
    spec = spec_with(
        '[methods.overrides]\n"txpool_*" = { class = "denied" }\neth_syncing = { cacheable = true }'
    )
    with pytest.raises(MethodDeniedError) as exc:
        EVM.plan(spec, call("txpool_status"))
    assert "denied by the chain spec" in exc.value.message
    assert EVM.method_policy(spec, "eth_syncing").cacheable
    assert not EVM.method_policy(catalogue()["eth"], "eth_syncing").cacheable


def test_header_policy(eth: ChainSpec) -> None:
    policy: HeaderPolicy = EVM.header_policy(eth)
    client = {
        "Content-Type": "application/json",
        "Authorization": "Bearer client-secret",
        "Cookie": "session=1",
        "X-Forwarded-For": "10.0.0.1",
        "X-Api-Key": "k",
        "Accept": "application/json",
    }
    forwarded = policy.client_headers(client)
    assert forwarded == {"Content-Type": "application/json", "Accept": "application/json"}
    added = policy.backend_headers(token="node-jwt", extra={"X-Provider": "p"})
    assert added["Authorization"] == "Bearer node-jwt"
    assert added["X-Provider"] == "p"
    assert "Authorization" not in policy.backend_headers()


def test_default_role_is_rpc(eth: ChainSpec) -> None:
    assert EVM.plan(eth, call("eth_chainId")).role == "rpc"
