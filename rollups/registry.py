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

from rollups.errors import UnknownRpcTypeError
from rollups.handler import RpcHandler

__all__ = ["handler_for", "register", "rpc_types"]

HandlerFactory = Callable[[], RpcHandler]


def _evm() -> RpcHandler:
    from rollups.evm import EvmHandler

    return EvmHandler()


def _op_stack() -> RpcHandler:
    from rollups.evm import OpStackHandler

    return OpStackHandler()


def _arbitrum() -> RpcHandler:
    from rollups.evm import ArbitrumHandler

    return ArbitrumHandler()


def _cometbft() -> RpcHandler:
    from rollups.cometbft import CometBftHandler

    return CometBftHandler()


def _cosmos_rest() -> RpcHandler:
    from rollups.cosmos_rest import CosmosRestHandler

    return CosmosRestHandler()


def _celestia() -> RpcHandler:
    from rollups.celestia import CelestiaHandler

    return CelestiaHandler()


_BUILTIN: dict[str, HandlerFactory] = {
    "evm": _evm,
    "op-stack": _op_stack,
    "arbitrum": _arbitrum,
    "cometbft": _cometbft,
    "cosmos-rest": _cosmos_rest,
    "celestia": _celestia,
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
