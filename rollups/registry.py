"""The registry of RPC-type handlers: ``rpc_type`` → :class:`~rollups.handler.RpcHandler`.

Adding an RPC type is one :func:`register` call (or one line in ``_BUILTIN``); the gateway and
the relayer only ever call :func:`handler_for` with a spec's ``rpc_type``. Handlers are built
lazily, once, and shared.

Built in: ``"evm"`` (Ethereum L1 and plain EVM chains), ``"op-stack"`` (OP Mainnet, Base:
``optimism_*`` on the op-node role), ``"arbitrum"`` (Arbitrum One and Nova: ``arbtrace_*``),
``"cometbft"`` (CometBFT RPC), ``"cosmos-rest"`` (Cosmos REST, REST-like relays) and
``"celestia"`` (celestia-node).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from rollups.errors import UnknownRpcTypeError
from rollups.handler import RpcHandler

__all__ = ["handler_for", "register", "rpc_types"]

HandlerFactory = Callable[[], RpcHandler]


def _builtin(rpc_type: str) -> RpcHandler:
    """A built-in handler; its module is imported only when the handler is first asked for."""
    if rpc_type in ("evm", "op-stack", "arbitrum"):
        from rollups.evm import ArbitrumHandler, EvmHandler, OpStackHandler

        evm = {"evm": EvmHandler, "op-stack": OpStackHandler, "arbitrum": ArbitrumHandler}
        return evm[rpc_type]()
    if rpc_type == "cometbft":
        from rollups.cometbft import CometBftHandler

        return CometBftHandler()
    if rpc_type == "cosmos-rest":
        from rollups.cosmos_rest import CosmosRestHandler

        return CosmosRestHandler()
    from rollups.celestia import CelestiaHandler

    return CelestiaHandler()


_BUILTIN: dict[str, HandlerFactory] = {
    rpc_type: partial(_builtin, rpc_type)
    for rpc_type in ("evm", "op-stack", "arbitrum", "cometbft", "cosmos-rest", "celestia")
}

_factories: dict[str, HandlerFactory] = dict(_BUILTIN)
_instances: dict[str, RpcHandler] = {}


def register(rpc_type: str, factory: HandlerFactory, *, replace: bool = False) -> None:
    """Register the handler of a new RPC type (``replace=True`` to swap an existing one)."""
    if rpc_type in _factories and not replace:
        raise ValueError(f"RPC type {rpc_type!r} is already registered")
    _factories[rpc_type] = factory
    _instances.pop(rpc_type, None)


def rpc_types() -> frozenset[str]:
    """The RPC types a spec may name."""
    return frozenset(_factories)


def handler_for(rpc_type: str) -> RpcHandler:
    """The shared handler of ``rpc_type``; ``UnknownRpcTypeError`` when none is registered."""
    handler = _instances.get(rpc_type)
    if handler is not None:
        return handler
    factory = _factories.get(rpc_type)
    if factory is None:
        raise UnknownRpcTypeError(
            f"unknown RPC type {rpc_type!r}; known: {', '.join(sorted(_factories))}"
        )
    handler = factory()
    if handler.rpc_type != rpc_type:
        raise UnknownRpcTypeError(
            f"handler registered for {rpc_type!r} says it serves {handler.rpc_type!r}"
        )
    _instances[rpc_type] = handler
    return handler
