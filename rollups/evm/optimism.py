"""OP stack (OP Mainnet, Base …), rpc_type ``"op-stack"``: the EVM handler plus ``optimism_*``.

``optimism_*`` are served by the rollup node (op-node), not the execution client (op-geth):
they go to the ``"op-node"`` backend role unless the spec routes them elsewhere. Writes include
``eth_sendRawTransactionConditional``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rollups.evm.handler import EvmHandler
from rollups.evm.methods import EVM_METHODS, block_rule
from rollups.methods import CacheRule, MethodClass, MethodInfo

__all__ = ["OP_NODE_ROLE", "OP_STACK_METHODS", "OpStackHandler"]

OP_NODE_ROLE = "op-node"

OP_STACK_METHODS: dict[str, MethodInfo] = {
    **EVM_METHODS,
    "optimism_syncStatus": MethodInfo(MethodClass.READ, CacheRule.HEAD),
    "optimism_outputAtBlock": block_rule(0),
    "optimism_rollupConfig": MethodInfo(MethodClass.READ, CacheRule.HEAD),
    "optimism_version": MethodInfo(MethodClass.READ, CacheRule.NEVER),
}


class OpStackHandler(EvmHandler):
    rpc_type: ClassVar[str] = "op-stack"
    methods: ClassVar[Mapping[str, MethodInfo]] = OP_STACK_METHODS
    default_roles: ClassVar[Mapping[str, str]] = {"optimism_*": OP_NODE_ROLE}
