"""EVM handlers: Ethereum and plain EVM chains, OP stack, Arbitrum.

Owns the explicit EVM method table (:mod:`rollups.evm.methods`), block-parameter reading
(:mod:`rollups.evm.blocks`) and its use in cache decisions (:mod:`rollups.evm.cache`), the EVM
handler (:mod:`rollups.evm.handler`) and the two rollup flavours.
"""

from rollups.evm.arbitrum import ARBITRUM_ONE_CLASSIC_LAST_BLOCK, ArbitrumHandler
from rollups.evm.handler import EvmHandler
from rollups.evm.methods import EVM_METHODS, CacheRule, MethodInfo
from rollups.evm.optimism import OP_NODE_ROLE, OpStackHandler

__all__ = [
    "ARBITRUM_ONE_CLASSIC_LAST_BLOCK",
    "EVM_METHODS",
    "OP_NODE_ROLE",
    "ArbitrumHandler",
    "CacheRule",
    "EvmHandler",
    "MethodInfo",
    "OpStackHandler",
]
