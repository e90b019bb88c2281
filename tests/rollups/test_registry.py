"""The registry: rpc_type → handler; a new type needs no gateway or relayer change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest

from rollups import (
    MethodClass,
    RpcHandler,
    SpecError,
    UnknownRpcTypeError,
    handler_for,
    parse_spec,
    register,
    rpc_types,
)
from rollups import registry as registry_module
from rollups.evm import ArbitrumHandler, EvmHandler, OpStackHandler
from rollups.evm.methods import EVM_METHODS, CacheRule, MethodInfo


def test_builtin_types() -> None:
    assert {"evm", "op-stack", "arbitrum"} <= rpc_types()
    assert isinstance(handler_for("evm"), EvmHandler)
    assert isinstance(handler_for("op-stack"), OpStackHandler)
    assert isinstance(handler_for("arbitrum"), ArbitrumHandler)
    assert handler_for("evm") is handler_for("evm")  # built once, shared
    for rpc_type in ("evm", "op-stack", "arbitrum"):
        handler = handler_for(rpc_type)
        assert isinstance(handler, RpcHandler)
        assert handler.rpc_type == rpc_type


def test_unknown_type() -> None:
    with pytest.raises(
        UnknownRpcTypeError, match="known: arbitrum, celestia, cometbft, cosmos-rest, evm, op-stack"
    ):
        handler_for("solana")
    with pytest.raises(ValueError, match="already registered"):
        register("evm", EvmHandler)


class _ExampleHandler(EvmHandler):
    rpc_type: ClassVar[str] = "example-evm"
    methods: ClassVar[Mapping[str, MethodInfo]] = {
        **EVM_METHODS,
        "example_head": MethodInfo(MethodClass.READ, CacheRule.HEAD),
    }


def test_a_new_type_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry_module._factories, "example-evm", _ExampleHandler)
    spec = parse_spec(
        'service_id = "ex"\nname = "Example"\nrpc_type = "example-evm"\n'
        "chain_id = 99\nfinality_depth = 1\n"
    )
    handler = handler_for(spec.rpc_type)
    call = handler.parse_relay(b'{"jsonrpc":"2.0","id":1,"method":"example_head"}')
    assert handler.plan(spec, call).method_class is MethodClass.READ
    monkeypatch.delitem(registry_module._factories, "example-evm")
    registry_module._instances.pop("example-evm", None)
    with pytest.raises(SpecError, match="unknown RPC type 'example-evm'"):
        parse_spec(
            'service_id = "ex"\nname = "Example"\nrpc_type = "example-evm"\n'
            "chain_id = 99\nfinality_depth = 1\n"
        )
