"""Table-driven over the execution-apis method list: every method has an explicit class."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollups import MethodClass, catalogue, handler_for
from rollups.evm import EVM_METHODS

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "evm" / "methods.tsv"


def _tsv() -> tuple[list[str], list[str]]:
    spec_methods: list[str] = []
    common: list[str] = []
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("# Not in the spec but common on nodes:"):
            names = line.split(":", 1)[1].strip().rstrip(".")
            common = [n.strip() for n in names.split(",")]
        elif line and not line.startswith("#"):
            spec_methods.append(line.split("\t")[0])
    return spec_methods, common


SPEC_METHODS, COMMON_METHODS = _tsv()

# The expected class of every method, written independently of the code's table.
EXPECTED_NOT_READ: dict[str, MethodClass] = {
    "eth_sendRawTransaction": MethodClass.WRITE,
    "eth_newFilter": MethodClass.STATEFUL,
    "eth_newBlockFilter": MethodClass.STATEFUL,
    "eth_newPendingTransactionFilter": MethodClass.STATEFUL,
    "eth_getFilterChanges": MethodClass.STATEFUL,
    "eth_getFilterLogs": MethodClass.STATEFUL,
    "eth_uninstallFilter": MethodClass.STATEFUL,
    "eth_subscribe": MethodClass.SUBSCRIPTION,
    "eth_unsubscribe": MethodClass.SUBSCRIPTION,
    # need keys held by the node itself
    "eth_sendTransaction": MethodClass.DENIED,
    "eth_sign": MethodClass.DENIED,
    "eth_signTransaction": MethodClass.DENIED,
}


def test_fixture_is_the_full_list() -> None:
    assert len(SPEC_METHODS) == 57
    assert len(set(SPEC_METHODS)) == len(SPEC_METHODS)
    assert COMMON_METHODS == [
        "web3_clientVersion",
        "web3_sha3",
        "net_listening",
        "net_peerCount",
        "eth_subscribe",
        "eth_unsubscribe",
        "eth_protocolVersion",
        "eth_mining",
        "eth_hashrate",
    ]


@pytest.mark.parametrize("method", SPEC_METHODS + COMMON_METHODS)
def test_every_method_is_classified_explicitly(method: str) -> None:
    # In the table itself: nothing reaches a prefix rule or the unknown-method path.
    assert method in EVM_METHODS
    expected = EXPECTED_NOT_READ.get(method, MethodClass.READ)
    for rpc_type, service in (("evm", "eth"), ("op-stack", "op-mainnet"), ("arbitrum", "arb-one")):
        policy = handler_for(rpc_type).method_policy(catalogue()[service], method)
        assert policy.known, (rpc_type, method)
        assert policy.method_class is expected, (rpc_type, method, policy)
        assert policy.compute_units >= 1


def test_unknown_method_does_not_fall_to_a_default() -> None:
    policy = handler_for("evm").method_policy(catalogue()["eth"], "eth_noSuchMethod")
    assert policy.method_class is MethodClass.DENIED
    assert not policy.known
    assert policy.reason == "method not found"


def test_every_table_entry_has_a_consistent_class() -> None:
    for name, info in EVM_METHODS.items():
        if info.method_class is MethodClass.DENIED:
            assert info.reason, name
        if info.arg is not None:
            assert info.method_class is MethodClass.READ, name
