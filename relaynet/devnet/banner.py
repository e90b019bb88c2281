"""What ``relaynet devnet up`` prints once ready: each service's URL, a curl and a web3.py line."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from relaynet.devnet.state import DevnetState, checksummed

__all__ = ["example_call", "render_banner"]

# one harmless read per RPC type, for the printed curl
_EXAMPLE_METHOD = {
    "evm": "eth_blockNumber",
    "op": "eth_blockNumber",
    "arbitrum": "eth_blockNumber",
    "cometbft": "status",
    "celestia": "header.NetworkHead",
}


def example_call(rpc_type: str) -> dict[str, object]:
    """A JSON-RPC request body every backend of ``rpc_type`` answers."""
    method = _EXAMPLE_METHOD.get(rpc_type, "eth_blockNumber")
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}


def render_banner(state: DevnetState, state_file: Path, elapsed: float) -> str:
    lines = [
        "",
        f"relaynet devnet is up ({elapsed:.1f}s). State: {state_file}",
        f"  settlement chain  {state.settlement.rpc_url} (chain id {state.settlement.chain_id}, "
        f"token {checksummed(state.settlement.token)})",
        f"  gateway           {state.gateway.url} (metrics {state.gateway.metrics_url})",
        "  relayers          "
        + ", ".join(f"{checksummed(r.address)} {r.url} (pid {r.pid})" for r in state.relayers),
        "",
    ]
    for sid, svc in state.services.items():
        body = json.dumps(example_call(svc.rpc_type), separators=(",", ":"))
        lines += [
            f"{sid} ({svc.rpc_type}, backend {svc.backend_url})",
            f"  RPC  {svc.gateway_url}",
            f"  WS   {svc.ws_url}",
            "  curl -s -H 'Content-Type: application/json' --data "
            f"{shlex.quote(body)} {svc.gateway_url}",
        ]
        if svc.rpc_type in ("evm", "op", "arbitrum"):
            lines.append(
                '  python -c "from web3 import Web3; '
                f"w3 = Web3(Web3.HTTPProvider('{svc.gateway_url}')); "
                'print(w3.eth.chain_id, w3.eth.block_number)"'
            )
        lines.append("")
    lines += [
        "Watch claims settle and rewards arrive:  relaynet devnet status --wait"
        + ("" if state_file == Path(".devnet/state.json") else f" --state-file {state_file}"),
        "Stop everything:                          Ctrl-C here, or relaynet devnet down",
    ]
    return "\n".join(lines)
