"""The transparency corpus: JSON-RPC requests of every kind, built from a chain's own state.

Each entry is the exact bytes a client sends (single objects, batches, notifications, odd
ids). The test sends each through gateway → relayer → anvil and straight to anvil with mining
paused, and compares the answers object by object.
"""

from __future__ import annotations

import json
from typing import Any

ZERO = "0x" + "00" * 20


def _req(method: str, params: Any = None, id_: Any = 1, raw_id: str | None = None) -> bytes:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        obj["params"] = params
    text = json.dumps(obj, separators=(",", ":"))
    ident = raw_id if raw_id is not None else json.dumps(id_)
    return (text[:-1] + ',"id":' + ident + "}").encode()


def build_corpus(state: dict[str, Any]) -> list[bytes]:
    """``state``: head (int), accounts, contract, tx_hashes, block_hashes, call_data,
    revert_data."""
    head: int = state["head"]
    accounts: list[str] = state["accounts"]
    contract: str = state["contract"]
    txs: list[str] = state["tx_hashes"]
    blocks: list[str] = state["block_hashes"]
    out: list[bytes] = []
    i = 0

    def add(method: str, params: Any = None) -> None:
        nonlocal i
        i += 1
        out.append(_req(method, params, i))

    # simple reads
    for m in (
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_gasPrice",
        "web3_clientVersion",
        "eth_syncing",
        "eth_maxPriorityFeePerGas",
        "net_listening",
        "eth_protocolVersion",
        "eth_coinbase",
        "eth_mining",
        "eth_hashrate",
        "eth_blobBaseFee",
    ):
        add(m, [])
    add("eth_feeHistory", ["0x3", "latest", [10, 50]])
    add("web3_sha3", ["0x68656c6c6f"])
    # state reads at several tags
    for who in [*accounts[:3], contract, ZERO]:
        for tag in ("latest", "earliest", "pending", hex(max(head - 1, 0)), "0x0"):
            add("eth_getBalance", [who, tag])
        add("eth_getTransactionCount", [who, "latest"])
        add("eth_getCode", [who, "latest"])
    for slot in ("0x0", "0x1", "0x2"):
        add("eth_getStorageAt", [contract, slot, "latest"])
    # blocks
    for n in range(head + 1):
        add("eth_getBlockByNumber", [hex(n), n % 2 == 0])
        add("eth_getBlockTransactionCountByNumber", [hex(n)])
    for tag in ("latest", "earliest", "pending", "finalized", "safe"):
        add("eth_getBlockByNumber", [tag, False])
    add("eth_getBlockByNumber", [hex(head + 100), False])  # beyond the head: null
    for h in blocks:
        add("eth_getBlockByHash", [h, True])
        add("eth_getBlockTransactionCountByHash", [h])
        add("eth_getBlockReceipts", [h])
    # transactions
    for h in txs:
        add("eth_getTransactionByHash", [h])
        add("eth_getTransactionReceipt", [h])
    add("eth_getTransactionByHash", ["0x" + "11" * 32])
    add("eth_getTransactionReceipt", ["0x" + "22" * 32])
    for n in range(1, head + 1):
        add("eth_getTransactionByBlockNumberAndIndex", [hex(n), "0x0"])
    # calls and estimates, including failures
    add("eth_call", [{"to": contract, "data": state["call_data"]}, "latest"])
    add("eth_call", [{"to": contract, "data": state["revert_data"]}, "latest"])
    add("eth_call", [{"to": contract, "data": "0xdeadbeef"}, "latest"])
    add("eth_estimateGas", [{"from": accounts[0], "to": accounts[1], "value": "0x1"}])
    add("eth_estimateGas", [{"from": accounts[0], "to": contract, "data": state["revert_data"]}])
    add(
        "eth_createAccessList",
        [{"from": accounts[0], "to": contract, "data": state["call_data"]}, "latest"],
    )
    add("eth_getProof", [contract, ["0x0"], "latest"])
    # logs
    add("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
    add("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": contract}])
    add("eth_getLogs", [{"fromBlock": hex(head), "toBlock": hex(head)}])
    add("eth_getLogs", [{"blockHash": blocks[-1]}])
    add("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "topics": [["0x" + "00" * 32]]}])
    # invalid params and unknown methods (the backend's own errors, or the gateway's the same)
    add("eth_getBalance", ["0x1"])
    add("eth_getBalance", [])
    add("eth_getBalance", ["nothex", "latest"])
    add("eth_getBlockByNumber", ["0xzz", False])
    add("eth_getBlockByNumber", [])
    add("eth_getTransactionByHash", ["0x12"])
    add("eth_call", [{"to": "0x12"}, "latest"])
    add("eth_getLogs", [{"fromBlock": "latest", "toBlock": "0x0"}])
    add("eth_getCode", [accounts[0], "notatag"])
    add("eth_chainId", {"unexpected": 1})
    add("eth_sendRawTransaction", ["0x00"])
    add("eth_sendRawTransaction", ["0xf86c"])
    for m in ("foo_bar", "eth_foo", "eth_getBalances", "web3_clientversion", "x"):
        add(m, [])
    # odd ids
    for raw in (
        '"abc"',
        '""',
        '"ü-ñ-☃"',
        '"' + "x" * 300 + '"',
        "0",
        "-7",
        "9007199254740993",
        "123456789012345678901234567890",
        "null",
        '"0x1"',
        '" spaced id "',
        "1e2",
    ):
        out.append(_req("eth_chainId", [], raw_id=raw))
    out.append(b'{"id":42,"jsonrpc":"2.0","params":[],"method":"eth_blockNumber"}')
    out.append(b'  {"jsonrpc" : "2.0", "method" : "eth_chainId", "params" : [], "id" : 5 }  ')
    out.append(b'{"jsonrpc":"2.0","method":"eth_chainId","id":6}')  # no params
    # notifications
    out.append(b'{"jsonrpc":"2.0","method":"eth_chainId","params":[]}')
    out.append(b'{"jsonrpc":"2.0","method":"eth_getBalance","params":["0x1"]}')
    # batches with mixed results, notifications inside, odd ids
    batch_items = [
        _req("eth_chainId", [], 1001),
        _req("eth_getBalance", [accounts[0], "latest"], "b"),
        _req("foo_bar", [], 1003),
        _req("eth_getBalance", ["0x1"], 1004),
        b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}',
        _req("eth_call", [{"to": contract, "data": state["revert_data"]}, "latest"], 1006),
        _req("eth_getBlockByNumber", ["0x1", True], None, raw_id='"x y"'),
    ]
    out.append(b"[" + b",".join(batch_items) + b"]")
    out.append(b"[" + b", ".join(reversed(batch_items)) + b"]")
    out.append(b"[" + _req("eth_chainId", [], 7) + b"]")
    out.append(b'[{"jsonrpc":"2.0","method":"eth_chainId","params":[]}]')  # only notifications
    out.append(
        b"["
        + b",".join(_req("eth_getBalance", [a, "latest"], k) for k, a in enumerate(accounts))
        + b"]"
    )
    out.append(
        b"["
        + b",".join(_req("eth_getBlockByNumber", [hex(n), False], n) for n in range(head + 1))
        + b"]"
    )
    return out
