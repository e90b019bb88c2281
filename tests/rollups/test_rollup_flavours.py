"""OP stack (optimism_* on the op-node role) and Arbitrum (arbtrace_* pre-Nitro only)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rollups import (
    ChainSpec,
    Heights,
    InvalidParamsError,
    MethodClass,
    MethodDeniedError,
    MethodNotFoundError,
    catalogue,
    handler_for,
    parse_spec,
)
from rollups.evm import ARBITRUM_ONE_CLASSIC_LAST_BLOCK
from rollups.handler import Call

OP = handler_for("op-stack")
ARB = handler_for("arbitrum")
EVM = handler_for("evm")
LAST = ARBITRUM_ONE_CLASSIC_LAST_BLOCK


def call(method: str, params: Any = None) -> Call:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        obj["params"] = params
    return EVM.parse_relay(orjson.dumps(obj))


@pytest.mark.parametrize("service", ["op-mainnet", "base"])
@pytest.mark.parametrize(
    "method", ["optimism_syncStatus", "optimism_outputAtBlock", "optimism_rollupConfig"]
)
def test_optimism_methods_go_to_the_op_node(service: str, method: str) -> None:
    spec = catalogue()[service]
    plan = OP.plan(spec, call(method, ["0x10"] if method == "optimism_outputAtBlock" else []))
    assert plan.role == "op-node"
    assert plan.method_class is MethodClass.READ
    # execution-layer methods stay on the default role
    assert OP.plan(spec, call("eth_blockNumber")).role == "rpc"


def test_op_node_is_the_default_role_even_without_a_backends_table() -> None:
    spec = parse_spec(
        'service_id = "opx"\nname = "x"\nrpc_type = "op-stack"\nchain_id = 5\nfinality_depth = 1\n'
    )
    assert OP.plan(spec, call("optimism_syncStatus")).role == "op-node"


def test_optimism_methods_are_unknown_on_plain_evm() -> None:
    with pytest.raises(MethodNotFoundError):
        EVM.plan(catalogue()["eth"], call("optimism_syncStatus"))


def test_op_stack_writes_and_admin() -> None:
    spec = catalogue()["op-mainnet"]
    plan = OP.plan(spec, call("eth_sendRawTransactionConditional", ["0x00", {}]))
    assert plan.method_class is MethodClass.WRITE and not plan.retry.hedge
    for method in ("admin_startSequencer", "opp2p_listBlockedPeers"):
        with pytest.raises(MethodDeniedError):
            OP.plan(spec, call(method))


def test_optimism_output_cache_by_finality() -> None:
    spec = catalogue()["op-mainnet"]
    heights = Heights(latest=10_000, finalized=9_400)
    assert OP.cache_policy(spec, call("optimism_outputAtBlock", ["0x10"]), heights).final
    recent = OP.cache_policy(spec, call("optimism_outputAtBlock", [hex(9_999)]), heights)
    assert recent.cacheable and not recent.final


@pytest.fixture
def one() -> ChainSpec:
    return catalogue()["arb-one"]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("arbtrace_block", [hex(LAST)]),
        ("arbtrace_block", ["0x1"]),
        ("arbtrace_block", ["earliest"]),
        ("arbtrace_replayBlockTransactions", [hex(LAST - 10), ["trace"]]),
        ("arbtrace_call", [{"to": "0x" + "11" * 20}, ["trace"], hex(LAST)]),
        ("arbtrace_callMany", [[], hex(100)]),
        ("arbtrace_filter", [{"fromBlock": "0x1", "toBlock": hex(LAST)}]),
        ("arbtrace_transaction", ["0x" + "ab" * 32]),
        ("arbtrace_replayTransaction", ["0x" + "ab" * 32, ["trace"]]),
        ("arbtrace_get", ["0x" + "ab" * 32, ["0x0"]]),
        ("arbtrace_block", ["0x" + "cd" * 32]),
    ],
)
def test_arbtrace_pre_nitro_is_served(one: ChainSpec, method: str, params: list[Any]) -> None:
    plan = ARB.plan(one, call(method, params))
    assert plan.method_class is MethodClass.READ
    assert plan.compute_units == 40


@pytest.mark.parametrize(
    ("method", "params", "shown"),
    [
        ("arbtrace_block", [hex(LAST + 1)], str(LAST + 1)),
        ("arbtrace_block", ["latest"], "'latest'"),
        ("arbtrace_block", [], "'latest'"),
        ("arbtrace_replayBlockTransactions", [hex(300_000_000), ["trace"]], "300000000"),
        ("arbtrace_call", [{"to": "0x" + "11" * 20}, ["trace"], "safe"], "'safe'"),
        ("arbtrace_callMany", [[]], "'latest'"),
        ("arbtrace_filter", [{"fromBlock": "0x1"}], "'latest'"),
        ("arbtrace_filter", [{"fromBlock": "0x1", "toBlock": hex(LAST + 5)}], str(LAST + 5)),
    ],
)
def test_arbtrace_above_classic_is_refused(
    one: ChainSpec, method: str, params: list[Any], shown: str
) -> None:
    with pytest.raises(InvalidParamsError) as exc:
        ARB.plan(one, call(method, params))
    assert exc.value.jsonrpc_code == -32602
    assert f"up to block {LAST}" in exc.value.message
    assert f"block {shown} is a Nitro block" in exc.value.message
    assert "debug_trace" in exc.value.message


def test_arbtrace_on_nova_is_denied() -> None:
    with pytest.raises(MethodDeniedError, match="pre-Nitro blocks only"):
        ARB.plan(catalogue()["arb-nova"], call("arbtrace_block", ["0x1"]))


def test_arbtrace_is_unknown_elsewhere() -> None:
    with pytest.raises(MethodNotFoundError):
        EVM.plan(catalogue()["eth"], call("arbtrace_block", ["0x1"]))


def test_arbitrum_keeps_debug_trace_for_nitro(one: ChainSpec) -> None:
    plan = ARB.plan(one, call("debug_traceBlockByNumber", [hex(LAST + 1_000_000)]))
    assert plan.method_class is MethodClass.READ


def test_classic_traces_are_final(one: ChainSpec) -> None:
    policy = ARB.cache_policy(one, call("arbtrace_block", ["0x1"]), Heights(None, None))
    assert policy.final
