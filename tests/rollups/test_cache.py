"""Finality-aware cache decisions of the EVM handler."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollups import Call, ChainSpec, Heights, catalogue, handler_for, is_cacheable_answer

EVM = handler_for("evm")
HEIGHTS = Heights(latest=1000, finalized=936)
HASH = "0x" + "ab" * 32
ADDR = "0x" + "11" * 20


@pytest.fixture
def eth() -> ChainSpec:
    return catalogue()["eth"]


def call(method: str, params: Any = None) -> Call:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        obj["params"] = params
    return EVM.parse_relay(orjson.dumps(obj))


def ok(result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": result})


# (method, params, cacheable, final) — looked up with latest 1000, finalized 936.
CASES: list[tuple[str, list[Any], bool, bool]] = [
    ("eth_chainId", [], True, True),
    ("net_version", [], True, True),
    ("eth_getBlockByNumber", ["0x10", False], True, True),  # 16 <= 936
    ("eth_getBlockByNumber", [hex(936), False], True, True),  # at finality
    ("eth_getBlockByNumber", [hex(937), False], True, False),  # above: briefly
    ("eth_getBlockByNumber", ["latest", False], True, False),
    ("eth_getBlockByNumber", ["safe", False], True, False),
    ("eth_getBlockByNumber", ["earliest", False], True, True),
    ("eth_getBlockByNumber", ["pending", False], False, False),
    ("eth_getBlockByNumber", [hex(2000), False], False, False),  # future block
    ("eth_getBlockByHash", [HASH, False], True, True),
    ("eth_getBalance", [ADDR, "0x20"], True, True),
    ("eth_getBalance", [ADDR, {"blockHash": HASH}], True, True),  # EIP-1898
    ("eth_getBalance", [ADDR, {"blockNumber": "0x20"}], True, True),
    ("eth_getBalance", [ADDR], True, False),  # absent block = latest
    ("eth_getBalance", [ADDR, "pending"], False, False),
    ("eth_call", [{"to": ADDR, "data": "0x"}, "0x20"], True, True),
    ("eth_call", [{"to": ADDR, "data": "0x"}, "latest"], True, False),
    ("eth_getStorageAt", [ADDR, "0x0", "0x20"], True, True),
    ("eth_getProof", [ADDR, [], hex(999)], True, False),
    ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x20"}], True, True),
    ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": hex(990)}], True, False),
    ("eth_getLogs", [{"fromBlock": "0x1"}], True, False),  # toBlock defaults to latest
    ("eth_getLogs", [{"blockHash": HASH}], True, True),
    ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "pending"}], False, False),
    ("eth_feeHistory", ["0x4", "0x20", [25, 75]], True, True),
    ("eth_blockNumber", [], True, False),
    ("eth_gasPrice", [], True, False),
    ("eth_getTransactionCount", [ADDR, "pending"], False, False),
    # never cached: node-local, pending state, writes, state, subscriptions, denied
    ("eth_syncing", [], False, False),
    ("web3_clientVersion", [], False, False),
    ("txpool_content", [], False, False),
    ("eth_sendRawTransaction", ["0x00"], False, False),
    ("eth_newFilter", [{}], False, False),
    ("eth_getFilterChanges", ["0x1"], False, False),
    ("eth_subscribe", ["newHeads"], False, False),
    ("admin_peers", [], False, False),
    ("eth_noSuchMethod", [], False, False),
]


@pytest.mark.parametrize(("method", "params", "cacheable", "final"), CASES)
def test_cache_policy(
    eth: ChainSpec, method: str, params: list[Any], cacheable: bool, final: bool
) -> None:
    policy = EVM.cache_policy(eth, call(method, params), HEIGHTS)
    assert policy.cacheable is cacheable, policy.reason
    assert policy.final is final, policy.reason
    assert policy.reason
    if cacheable and not final:
        assert policy.ttl == eth.cache.head_ttl
    if not cacheable:
        assert policy.key is None


def test_keys_are_canonical(eth: ChainSpec) -> None:
    a = EVM.cache_policy(
        eth, call("eth_getBalance", [ADDR.upper().replace("0X", "0x"), "0x20"]), HEIGHTS
    )
    b = EVM.cache_policy(eth, call("eth_getBalance", [ADDR, "0x20"]), HEIGHTS)
    c = EVM.cache_policy(eth, call("eth_getBalance", [ADDR, "0x21"]), HEIGHTS)
    d = EVM.cache_policy(eth, call("eth_getCode", [ADDR, "0x20"]), HEIGHTS)
    assert a.key == b.key
    assert len({b.key, c.key, d.key}) == 3
    x = EVM.cache_policy(eth, call("eth_call", [{"to": ADDR, "data": "0x"}, "0x20"]), HEIGHTS)
    y = EVM.cache_policy(eth, call("eth_call", [{"data": "0x", "to": ADDR}, "0x20"]), HEIGHTS)
    assert x.key == y.key
    other = catalogue()["devnet"]
    assert EVM.cache_policy(
        other, call("eth_getBalance", [ADDR, "0x20"]), Heights(100, 98)
    ).key != (b.key)


def test_unknown_finality_is_brief_at_most(eth: ChainSpec) -> None:
    policy = EVM.cache_policy(
        eth, call("eth_getBlockByNumber", ["0x10", False]), Heights(None, None)
    )
    assert policy.cacheable and not policy.final


def test_heights_from_latest() -> None:
    assert Heights.from_latest(1000, 64) == Heights(1000, 936)
    assert Heights.from_latest(3, 64) == Heights(3, -1)


def test_head_ttl_zero_means_latest_never_cached() -> None:
    spec = catalogue()["eth"].model_copy(
        update={"cache": catalogue()["eth"].cache.model_copy(update={"head_ttl": 0.0})}
    )
    assert not EVM.cache_policy(spec, call("eth_blockNumber"), HEIGHTS).cacheable
    assert EVM.cache_policy(spec, call("eth_getBlockByNumber", ["0x1", False]), HEIGHTS).final


def test_failures_and_nulls_are_never_stored(eth: ChainSpec) -> None:
    c = call("eth_getBlockByNumber", ["0x10", False])
    failure = b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}'
    assert not is_cacheable_answer(failure)
    assert not EVM.store_policy(eth, c, failure, HEIGHTS).cacheable
    assert not EVM.store_policy(eth, c, ok(None), HEIGHTS).cacheable
    assert not EVM.store_policy(eth, c, b"<html>bad gateway</html>", HEIGHTS).cacheable
    assert not EVM.store_policy(eth, c, b'{"id":1,"result":"0x1"}', HEIGHTS).cacheable
    stored = EVM.store_policy(eth, c, ok({"number": "0x10", "hash": HASH}), HEIGHTS)
    assert stored.cacheable and stored.final


def test_transactions_by_hash_are_decided_by_their_block(eth: ChainSpec) -> None:
    c = call("eth_getTransactionReceipt", [HASH])
    lookup = EVM.cache_policy(eth, c, HEIGHTS)
    assert lookup.cacheable and lookup.key
    final = EVM.store_policy(eth, c, ok({"blockNumber": "0x10", "status": "0x1"}), HEIGHTS)
    assert final.final and final.key == lookup.key
    recent = EVM.store_policy(eth, c, ok({"blockNumber": hex(990), "status": "0x1"}), HEIGHTS)
    assert recent.cacheable and recent.ttl == eth.cache.head_ttl
    pending_tx = EVM.store_policy(
        eth, call("eth_getTransactionByHash", [HASH]), ok({"blockNumber": None}), HEIGHTS
    )
    assert not pending_tx.cacheable
    assert not EVM.store_policy(eth, c, ok(None), HEIGHTS).cacheable


def test_block_by_hash_checks_the_answer_against_finality(eth: ChainSpec) -> None:
    c = call("eth_getBlockByHash", [HASH, False])
    assert EVM.store_policy(eth, c, ok({"number": "0x10"}), HEIGHTS).final
    unfinal = EVM.store_policy(eth, c, ok({"number": hex(999)}), HEIGHTS)
    assert unfinal.cacheable and not unfinal.final
