"""Arbitrum (One, Nova), rpc_type ``"arbitrum"``: the EVM handler plus ``arbtrace_*``.

``arbtrace_*`` (the Parity-style trace API) exists only for pre-Nitro ("classic") blocks; Nitro
blocks are traced with ``debug_trace*``. On Arbitrum One the classic range ends at block
22,207,815 (``[arbitrum] classic_last_block`` in the spec): a call naming a later block, or a
moving tag (``latest``, ``safe`` …), is refused with -32602 and a message saying to use
``debug_trace*``. A chain without classic history (Nova: no ``classic_last_block``) denies
``arbtrace_*`` altogether. Calls by transaction hash cannot be checked before relaying and go
through (the node answers for a Nitro transaction itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from rollups.errors import InvalidParamsError, MethodDeniedError
from rollups.evm.blocks import block_ref
from rollups.evm.handler import EvmHandler
from rollups.evm.methods import EVM_METHODS
from rollups.handler import Call
from rollups.methods import CacheRule, MethodClass, MethodInfo

if TYPE_CHECKING:
    from rollups.spec import ChainSpec

__all__ = ["ARBITRUM_METHODS", "ARBITRUM_ONE_CLASSIC_LAST_BLOCK", "ArbitrumHandler"]

ARBITRUM_ONE_CLASSIC_LAST_BLOCK = 22_207_815

# Classic history is long final: whatever an admitted arbtrace_* call returns never changes.
_CLASSIC = MethodInfo(MethodClass.READ, CacheRule.FINAL)

ARBITRUM_METHODS: dict[str, MethodInfo] = {
    **EVM_METHODS,
    "arbtrace_block": _CLASSIC,
    "arbtrace_call": _CLASSIC,
    "arbtrace_callMany": _CLASSIC,
    "arbtrace_filter": _CLASSIC,
    "arbtrace_get": _CLASSIC,
    "arbtrace_replayBlockTransactions": _CLASSIC,
    "arbtrace_replayTransaction": _CLASSIC,
    "arbtrace_transaction": _CLASSIC,
}

#: arbtrace_* method → index of its block parameter (absent: latest, which is refused).
_BLOCK_ARG: dict[str, int] = {
    "arbtrace_block": 0,
    "arbtrace_replayBlockTransactions": 0,
    "arbtrace_call": 2,
    "arbtrace_callMany": 1,
}


class ArbitrumHandler(EvmHandler):
    rpc_type: ClassVar[str] = "arbitrum"
    methods: ClassVar[Mapping[str, MethodInfo]] = ARBITRUM_METHODS

    def check_params(self, spec: ChainSpec, call: Call) -> None:
        if not call.method.startswith("arbtrace_"):
            return
        last = spec.arbitrum.classic_last_block if spec.arbitrum else None
        if last is None:
            raise MethodDeniedError(
                f"the method {call.method} is not available on {spec.service_id}: arbtrace_* "
                "serves pre-Nitro blocks only and this chain has none — use debug_trace*"
            )
        params = call.param_list
        values: list[Any] = []
        if call.method == "arbtrace_filter":
            flt = params[0] if params and isinstance(params[0], dict) else {}
            values = [flt.get("fromBlock"), flt.get("toBlock")]
        elif call.method in _BLOCK_ARG:
            arg = _BLOCK_ARG[call.method]
            values = [params[arg] if len(params) > arg else None]
        for value in values:
            ref = block_ref(value)
            if ref.kind == "hash" or (ref.kind == "tag" and ref.tag == "earliest"):
                continue
            if ref.kind == "number" and ref.number is not None and ref.number <= last:
                continue
            shown = ref.tag if ref.kind == "tag" else ref.number
            raise InvalidParamsError(
                f"{call.method} serves pre-Nitro blocks only (up to block {last}); "
                f"block {shown!r} is a Nitro block — use debug_trace* instead"
                if ref.kind != "invalid"
                else f"{call.method}: unreadable block parameter {value!r}"
            )
