"""The CometBFT RPC routes (v0.38): class, argument names in order, cache rule.

The argument lists are CometBFT's own (``rpc/core/routes.go``: positional params map onto them
in this order) and agree with the OpenAPI file (a test checks it). ``Cache`` mirrors the
routes upstream marks ``Cacheable`` (13 of them), made finality-aware
(:class:`rollups.methods.CacheRule`):

* ``BLOCK`` — ``Cacheable("height")`` upstream: cacheable when a height is given; final once
  that height is at or below the finalized height, briefly (``head_ttl``) otherwise; without a
  height the answer is about the head (``head_ttl``).
* ``FINAL`` — addressed by hash or fixed forever (``block_by_hash``, ``tx``, ``genesis``): final
  once the answer is a success.
* ``RANGE`` — ``blockchain(minHeight, maxHeight)``: final when ``maxHeight`` is finalized.
* ``HEAD`` — about the head (``abci_info``): ``head_ttl`` at most.
* ``NEVER`` — node-local or volatile (``status``, mempool, consensus state, searches).

``abci_query`` is not cacheable upstream, but with an explicit height its answer is fixed, so
it is ``BLOCK`` here (DESIGN: "CometBFT calls with a height are cacheable").
"""

from __future__ import annotations

from dataclasses import dataclass

from rollups.methods import CacheRule, MethodClass, MethodInfo

__all__ = [
    "ALL_ROUTES",
    "ROUTES",
    "SERVED_ROUTES",
    "TABLE",
    "UNSAFE_ROUTES",
    "WEBSOCKET_ONLY",
    "Route",
]


@dataclass(frozen=True, slots=True)
class Route:
    """One CometBFT route: its name and how relaynet treats it (``info``, the one
    method-table shape of :mod:`rollups.methods`; ``info.args`` are the argument names)."""

    name: str
    info: MethodInfo

    @property
    def args(self) -> tuple[str, ...]:
        return self.info.args


def _route(
    name: str,
    cls: MethodClass,
    args: tuple[str, ...] = (),
    cache: CacheRule = CacheRule.NEVER,
    reason: str = "",
) -> Route:
    return Route(name, MethodInfo(cls, cache, reason=reason, args=args))


_R = MethodClass.READ
_W = MethodClass.WRITE
_S = MethodClass.SUBSCRIPTION
_D = MethodClass.DENIED

#: The 31 routes a CometBFT node serves (28 over HTTP and WebSocket, 3 WebSocket only).
SERVED_ROUTES: tuple[Route, ...] = (
    # info
    _route("health", _R),
    _route("status", _R),
    _route("net_info", _R),
    _route("blockchain", _R, ("minHeight", "maxHeight"), CacheRule.RANGE),
    _route("genesis", _R, (), CacheRule.FINAL),
    _route("genesis_chunked", _R, ("chunk",), CacheRule.FINAL),
    _route("block", _R, ("height",), CacheRule.BLOCK),
    _route("block_by_hash", _R, ("hash",), CacheRule.FINAL),
    _route("block_results", _R, ("height",), CacheRule.BLOCK),
    _route("commit", _R, ("height",), CacheRule.BLOCK),
    _route("header", _R, ("height",), CacheRule.BLOCK),
    _route("header_by_hash", _R, ("hash",), CacheRule.FINAL),
    _route("check_tx", _R, ("tx",)),
    _route("tx", _R, ("hash", "prove"), CacheRule.FINAL),
    _route("tx_search", _R, ("query", "prove", "page", "per_page", "order_by")),
    _route("block_search", _R, ("query", "page", "per_page", "order_by")),
    _route("validators", _R, ("height", "page", "per_page"), CacheRule.BLOCK),
    _route("dump_consensus_state", _R),
    _route("consensus_state", _R),
    _route("consensus_params", _R, ("height",), CacheRule.BLOCK),
    _route("unconfirmed_txs", _R, ("limit",)),
    _route("num_unconfirmed_txs", _R),
    # tx
    _route("broadcast_tx_sync", _W, ("tx",)),
    _route("broadcast_tx_async", _W, ("tx",)),
    _route("broadcast_tx_commit", _W, ("tx",)),
    # abci
    _route("abci_query", _R, ("path", "data", "height", "prove"), CacheRule.BLOCK),
    _route("abci_info", _R, (), CacheRule.HEAD),
    # evidence
    _route("broadcast_evidence", _W, ("evidence",)),
    # WebSocket only
    _route("subscribe", _S, ("query",)),
    _route("unsubscribe", _S, ("query",)),
    _route("unsubscribe_all", _S),
)

#: Routes a node exposes only with ``rpc.unsafe = true``: never relayed.
UNSAFE_ROUTES: tuple[Route, ...] = (
    _route("dial_seeds", _D, ("seeds",), reason="unsafe route (node administration)"),
    _route(
        "dial_peers",
        _D,
        ("peers", "persistent", "unconditional", "private"),
        reason="unsafe route (node administration)",
    ),
    _route("unsafe_flush_mempool", _D, (), reason="unsafe route (node administration)"),
)

WEBSOCKET_ONLY: frozenset[str] = frozenset({"subscribe", "unsubscribe", "unsubscribe_all"})

ALL_ROUTES: tuple[Route, ...] = SERVED_ROUTES + UNSAFE_ROUTES
ROUTES: dict[str, Route] = {r.name: r for r in ALL_ROUTES}

#: The handler's method table.
TABLE: dict[str, MethodInfo] = {r.name: r.info for r in ALL_ROUTES}
