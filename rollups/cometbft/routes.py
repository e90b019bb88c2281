"""The CometBFT RPC routes (v0.38): class, argument names in order, cache rule.

The argument lists are CometBFT's own (``rpc/core/routes.go``: positional params map onto them
in this order) and agree with the OpenAPI file (a test checks it). ``Cache`` mirrors the
routes upstream marks ``Cacheable`` (13 of them), made finality-aware:

* ``HEIGHT`` — ``Cacheable("height")`` upstream: cacheable when a height is given; final once
  that height is at or below the finalized height, briefly (``head_ttl``) otherwise; without a
  height the answer is about the head (``head_ttl``).
* ``FINAL`` — addressed by hash or fixed forever (``block_by_hash``, ``tx``, ``genesis``): final
  once the answer is a success.
* ``RANGE`` — ``blockchain(minHeight, maxHeight)``: final when ``maxHeight`` is finalized.
* ``HEAD`` — about the head (``abci_info``): ``head_ttl`` at most.
* ``NEVER`` — node-local or volatile (``status``, mempool, consensus state, searches).

``abci_query`` is not cacheable upstream, but with an explicit height its answer is fixed, so
it is ``HEIGHT`` here (DESIGN: "CometBFT calls with a height are cacheable").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rollups.handler import MethodClass

__all__ = [
    "ALL_ROUTES",
    "ROUTES",
    "SERVED_ROUTES",
    "UNSAFE_ROUTES",
    "WEBSOCKET_ONLY",
    "Cache",
    "Route",
]


class Cache(StrEnum):
    NEVER = "never"
    HEIGHT = "height"
    FINAL = "final"
    RANGE = "range"
    HEAD = "head"


@dataclass(frozen=True, slots=True)
class Route:
    """One CometBFT route."""

    name: str
    method_class: MethodClass
    args: tuple[str, ...] = ()
    cache: Cache = Cache.NEVER
    reason: str = ""


_R = MethodClass.READ
_W = MethodClass.WRITE
_S = MethodClass.SUBSCRIPTION
_D = MethodClass.DENIED

#: The 31 routes a CometBFT node serves (28 over HTTP and WebSocket, 3 WebSocket only).
SERVED_ROUTES: tuple[Route, ...] = (
    # info
    Route("health", _R),
    Route("status", _R),
    Route("net_info", _R),
    Route("blockchain", _R, ("minHeight", "maxHeight"), Cache.RANGE),
    Route("genesis", _R, (), Cache.FINAL),
    Route("genesis_chunked", _R, ("chunk",), Cache.FINAL),
    Route("block", _R, ("height",), Cache.HEIGHT),
    Route("block_by_hash", _R, ("hash",), Cache.FINAL),
    Route("block_results", _R, ("height",), Cache.HEIGHT),
    Route("commit", _R, ("height",), Cache.HEIGHT),
    Route("header", _R, ("height",), Cache.HEIGHT),
    Route("header_by_hash", _R, ("hash",), Cache.FINAL),
    Route("check_tx", _R, ("tx",)),
    Route("tx", _R, ("hash", "prove"), Cache.FINAL),
    Route("tx_search", _R, ("query", "prove", "page", "per_page", "order_by")),
    Route("block_search", _R, ("query", "page", "per_page", "order_by")),
    Route("validators", _R, ("height", "page", "per_page"), Cache.HEIGHT),
    Route("dump_consensus_state", _R),
    Route("consensus_state", _R),
    Route("consensus_params", _R, ("height",), Cache.HEIGHT),
    Route("unconfirmed_txs", _R, ("limit",)),
    Route("num_unconfirmed_txs", _R),
    # tx
    Route("broadcast_tx_sync", _W, ("tx",)),
    Route("broadcast_tx_async", _W, ("tx",)),
    Route("broadcast_tx_commit", _W, ("tx",)),
    # abci
    Route("abci_query", _R, ("path", "data", "height", "prove"), Cache.HEIGHT),
    Route("abci_info", _R, (), Cache.HEAD),
    # evidence
    Route("broadcast_evidence", _W, ("evidence",)),
    # WebSocket only
    Route("subscribe", _S, ("query",)),
    Route("unsubscribe", _S, ("query",)),
    Route("unsubscribe_all", _S),
)

#: Routes a node exposes only with ``rpc.unsafe = true``: never relayed.
UNSAFE_ROUTES: tuple[Route, ...] = (
    Route("dial_seeds", _D, ("seeds",), reason="unsafe route (node administration)"),
    Route(
        "dial_peers",
        _D,
        ("peers", "persistent", "unconditional", "private"),
        reason="unsafe route (node administration)",
    ),
    Route("unsafe_flush_mempool", _D, (), reason="unsafe route (node administration)"),
)

WEBSOCKET_ONLY: frozenset[str] = frozenset({"subscribe", "unsubscribe", "unsubscribe_all"})

ALL_ROUTES: tuple[Route, ...] = SERVED_ROUTES + UNSAFE_ROUTES
ROUTES: dict[str, Route] = {r.name: r for r in ALL_ROUTES}
