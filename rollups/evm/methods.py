"""The EVM method table: every method the EVM handlers know, classified explicitly.

Each entry (:class:`rollups.methods.MethodInfo`, the shape of every handler's table) gives the
class and the cache rule of one method. Covered: every method of ethereum/execution-apis
(``tests/fixtures/evm/methods.tsv``), the common non-spec ones (``web3_*``,
``net_listening``, ``net_peerCount``, subscriptions, PoW leftovers, uncles, geth/erigon
``debug_*`` and ``trace_*``), OP stack's ``eth_sendRawTransactionConditional``. Prefix rules
deny node administration (always) and test chains' methods (by default). A method in none of
these is unknown: refused as "method not found", never given a default class.
"""

from __future__ import annotations

from rollups.methods import CacheRule, MethodClass, MethodInfo

__all__ = [
    "ALWAYS_DENIED",
    "ALWAYS_DENIED_PREFIXES",
    "DEFAULT_DENIED_PREFIXES",
    "EVM_METHODS",
    "CacheRule",
    "MethodInfo",
    "block_rule",
]


R, W, S, SUB, D = (
    MethodClass.READ,
    MethodClass.WRITE,
    MethodClass.STATEFUL,
    MethodClass.SUBSCRIPTION,
    MethodClass.DENIED,
)


def block_rule(arg: int) -> MethodInfo:
    """A read whose block parameter is argument ``arg`` (absent = ``latest``)."""
    return MethodInfo(R, CacheRule.BLOCK, arg)


_NODE = MethodInfo(R, CacheRule.NEVER)  # node-local read: differs per supplier
_HEAD = MethodInfo(R, CacheRule.HEAD)
_HASH = MethodInfo(R, CacheRule.HASH)
_TX = MethodInfo(R, CacheRule.TX)
_FOREVER = MethodInfo(R, CacheRule.FINAL)


def _denied(reason: str) -> MethodInfo:
    return MethodInfo(D, reason=reason)


_KEYS = _denied("signs with keys held by the node; sign locally and use eth_sendRawTransaction")
_POW = _denied("proof-of-work mining is not served")
_NODE_ADMIN = _denied("node administration is never relayed")

EVM_METHODS: dict[str, MethodInfo] = {
    # --- execution-apis: debug_* -----------------------------------------------------------
    "debug_getBadBlocks": _NODE,
    "debug_getRawBlock": block_rule(0),
    "debug_getRawBlockAccessList": block_rule(0),
    "debug_getRawHeader": block_rule(0),
    "debug_getRawReceipts": block_rule(0),
    "debug_getRawTransaction": _HEAD,
    "debug_traceBlockByHash": _HASH,
    "debug_traceBlockByNumber": block_rule(0),
    "debug_traceTransaction": _HEAD,
    # --- execution-apis: eth_* -------------------------------------------------------------
    "eth_accounts": _NODE,
    "eth_baseFee": _HEAD,
    "eth_blobBaseFee": _HEAD,
    "eth_blockNumber": _HEAD,
    "eth_call": block_rule(1),
    "eth_capabilities": _HEAD,
    "eth_chainId": _FOREVER,
    "eth_coinbase": _NODE,
    "eth_config": _HEAD,
    "eth_createAccessList": block_rule(1),
    "eth_estimateGas": block_rule(1),
    "eth_feeHistory": block_rule(1),
    "eth_fillTransaction": _NODE,  # fills nonce and fees from the pending state
    "eth_gasPrice": _HEAD,
    "eth_getBalance": block_rule(1),
    "eth_getBlockAccessList": block_rule(0),
    "eth_getBlockByHash": _HASH,
    "eth_getBlockByNumber": block_rule(0),
    "eth_getBlockReceipts": block_rule(0),
    "eth_getBlockTransactionCountByHash": _HASH,
    "eth_getBlockTransactionCountByNumber": block_rule(0),
    "eth_getCode": block_rule(1),
    "eth_getFilterChanges": MethodInfo(S, CacheRule.NEVER),
    "eth_getFilterLogs": MethodInfo(S, CacheRule.NEVER),
    "eth_getLogs": MethodInfo(R, CacheRule.LOGS),
    "eth_getProof": block_rule(2),
    "eth_getStorageAt": block_rule(2),
    "eth_getStorageValues": block_rule(1),
    "eth_getTransactionByBlockHashAndIndex": _HASH,
    "eth_getTransactionByBlockNumberAndIndex": block_rule(0),
    "eth_getTransactionByHash": _TX,
    "eth_getTransactionCount": block_rule(1),
    "eth_getTransactionReceipt": _TX,
    "eth_maxPriorityFeePerGas": _HEAD,
    "eth_newBlockFilter": MethodInfo(S, CacheRule.NEVER),
    "eth_newFilter": MethodInfo(S, CacheRule.NEVER),
    "eth_newPendingTransactionFilter": MethodInfo(S, CacheRule.NEVER),
    "eth_sendRawTransaction": MethodInfo(W, CacheRule.NEVER),
    "eth_sendTransaction": _KEYS,
    "eth_sign": _KEYS,
    "eth_signTransaction": _KEYS,
    "eth_simulateV1": block_rule(1),
    "eth_syncing": _NODE,
    "eth_uninstallFilter": MethodInfo(S, CacheRule.NEVER),
    "net_version": _FOREVER,
    # --- execution-apis: txpool_* (the supplier's own mempool) -----------------------------
    "txpool_content": _NODE,
    "txpool_contentFrom": _NODE,
    "txpool_status": _NODE,
    # --- common, not in the spec -----------------------------------------------------------
    "web3_clientVersion": _NODE,
    "web3_sha3": _FOREVER,
    "net_listening": _NODE,
    "net_peerCount": _NODE,
    "eth_subscribe": MethodInfo(SUB, CacheRule.NEVER),
    "eth_unsubscribe": MethodInfo(SUB, CacheRule.NEVER),
    "eth_protocolVersion": _NODE,
    "eth_mining": _NODE,
    "eth_hashrate": _NODE,
    "eth_sendRawTransactionConditional": MethodInfo(W, CacheRule.NEVER),  # OP stack, ERC-4337
    "eth_getUncleByBlockHashAndIndex": _HASH,
    "eth_getUncleByBlockNumberAndIndex": block_rule(0),
    "eth_getUncleCountByBlockHash": _HASH,
    "eth_getUncleCountByBlockNumber": block_rule(0),
    "eth_getHeaderByHash": _HASH,
    "eth_getHeaderByNumber": block_rule(0),
    "eth_signTypedData": _KEYS,
    "eth_signTypedData_v3": _KEYS,
    "eth_signTypedData_v4": _KEYS,
    "eth_getWork": _POW,
    "eth_submitWork": _POW,
    "eth_submitHashrate": _POW,
    # geth / erigon debug reads
    "debug_traceCall": block_rule(1),
    "debug_storageRangeAt": _HASH,
    "debug_getModifiedAccountsByHash": _HASH,
    "debug_getModifiedAccountsByNumber": block_rule(0),
    "debug_getAccessibleState": _NODE,
    "debug_dumpBlock": _denied("dumps a whole state: too heavy to relay"),
    "debug_accountRange": _denied("iterates a whole state: too heavy to relay"),
    "debug_intermediateRoots": _HASH,
    "debug_standardTraceBlockToFile": _denied("writes files on the node"),
    "debug_standardTraceBadBlockToFile": _denied("writes files on the node"),
    # Parity / erigon / reth trace module
    "trace_block": block_rule(0),
    "trace_call": block_rule(2),
    "trace_callMany": block_rule(1),
    "trace_filter": MethodInfo(R, CacheRule.HEAD),
    "trace_get": _HEAD,
    "trace_rawTransaction": _NODE,
    "trace_replayBlockTransactions": block_rule(0),
    "trace_replayTransaction": _HEAD,
    "trace_transaction": _HEAD,
    # debug_* that change or inspect the node itself: never relayed (see ALWAYS_DENIED)
    "debug_setHead": _NODE_ADMIN,
    "debug_setGCPercent": _NODE_ADMIN,
    "debug_setBlockProfileRate": _NODE_ADMIN,
    "debug_setMutexProfileFraction": _NODE_ADMIN,
    "debug_setTrieFlushInterval": _NODE_ADMIN,
    "debug_chaindbCompact": _NODE_ADMIN,
    "debug_chaindbProperty": _NODE_ADMIN,
    "debug_dbGet": _NODE_ADMIN,
    "debug_dbAncient": _NODE_ADMIN,
    "debug_dbAncients": _NODE_ADMIN,
    "debug_freeOSMemory": _NODE_ADMIN,
    "debug_gcStats": _NODE_ADMIN,
    "debug_memStats": _NODE_ADMIN,
    "debug_stacks": _NODE_ADMIN,
    "debug_verbosity": _NODE_ADMIN,
    "debug_vmodule": _NODE_ADMIN,
    "debug_backtraceAt": _NODE_ADMIN,
    "debug_cpuProfile": _NODE_ADMIN,
    "debug_startCPUProfile": _NODE_ADMIN,
    "debug_stopCPUProfile": _NODE_ADMIN,
    "debug_goTrace": _NODE_ADMIN,
    "debug_startGoTrace": _NODE_ADMIN,
    "debug_stopGoTrace": _NODE_ADMIN,
    "debug_blockProfile": _NODE_ADMIN,
    "debug_mutexProfile": _NODE_ADMIN,
    "debug_writeBlockProfile": _NODE_ADMIN,
    "debug_writeMemProfile": _NODE_ADMIN,
    "debug_writeMutexProfile": _NODE_ADMIN,
}

#: Exact methods no spec override can allow.
ALWAYS_DENIED: frozenset[str] = frozenset(
    name for name, info in EVM_METHODS.items() if info is _NODE_ADMIN
)

#: Prefixes no spec override can allow: node administration, node-held keys, consensus.
ALWAYS_DENIED_PREFIXES: dict[str, str] = {
    "admin_": "node administration is never relayed",
    "personal_": "node-held keys are never used through relays",
    "miner_": "mining control is never relayed",
    "engine_": "the Engine API is for the consensus client only",
    "clique_": "consensus administration is never relayed",
    "les_": "light-server administration is never relayed",
    "opp2p_": "op-node peer administration is never relayed",
}

#: Prefixes denied unless a spec override names the method (test chains' own methods).
DEFAULT_DENIED_PREFIXES: dict[str, str] = {
    "anvil_": "test-chain method (anvil); denied unless the spec allows it",
    "hardhat_": "test-chain method (hardhat); denied unless the spec allows it",
    "evm_": "test-chain method (evm_mine, evm_snapshot …); denied unless the spec allows it",
    "ganache_": "test-chain method (ganache); denied unless the spec allows it",
    "debug_": "not an allowed debug method",
}
