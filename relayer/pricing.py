"""The service's chain spec on the relay path: compute units, method class, backend role.

An adapter from a ``rollups/`` handler + :class:`rollups.spec.ChainSpec` to the relayer's
:class:`relayer.interfaces.PricingPolicy`; handler refusals (batch, denied method, writes off)
become :class:`relayer.errors.RelayRefused` with the handler's relay code.
"""

from __future__ import annotations

from pathlib import Path

from protocol.errors import RelaynetError
from relayer.errors import ConfigError, RelayRefused
from relayer.interfaces import PricedCall
from rollups.handler import MethodClass, RpcHandler
from rollups.loading import load_spec
from rollups.rest import backend_request
from rollups.spec import ChainSpec

__all__ = ["SpecPricing", "resolve_spec"]


def resolve_spec(chain: str, base: Path | None = None) -> ChainSpec:
    """A spec by catalogue name (``"ethereum"``) or by path to a spec TOML file."""
    if chain.endswith(".toml") or "/" in chain:
        path = Path(chain)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            return load_spec(path)
        except RelaynetError as exc:
            raise ConfigError(f"chain spec {chain}: {exc.message}") from exc
    from rollups.catalogue import catalogue

    specs = catalogue()
    if chain not in specs:
        raise ConfigError(f"unknown chain {chain!r}: one of {', '.join(sorted(specs))}")
    return specs[chain]


class SpecPricing:
    """Prices relay payloads under one spec with its RPC type's handler."""

    __slots__ = ("_allow_writes", "_cache", "_handler", "spec")

    #: Small payloads (``eth_blockNumber``, ``eth_chainId`` …) repeat endlessly: their price is
    #: remembered (pricing is a pure function of the payload under one spec).
    CACHE_PAYLOAD_BYTES = 512
    CACHE_ENTRIES = 4096

    def __init__(self, spec: ChainSpec, handler: RpcHandler, *, allow_writes: bool) -> None:
        self.spec = spec
        self._handler = handler
        self._allow_writes = allow_writes
        self._cache: dict[bytes, PricedCall] = {}

    @classmethod
    def for_spec(cls, spec: ChainSpec, *, allow_writes: bool) -> SpecPricing:
        from rollups.registry import handler_for

        return cls(spec, handler_for(spec.rpc_type), allow_writes=allow_writes)

    @property
    def handler(self) -> RpcHandler:
        return self._handler

    def price(self, payload: bytes) -> PricedCall:
        cached = self._cache.get(payload)
        if cached is not None:
            return cached
        priced = self._price(payload)
        if len(payload) <= self.CACHE_PAYLOAD_BYTES:
            if len(self._cache) >= self.CACHE_ENTRIES:
                self._cache.clear()
            self._cache[payload] = priced
        return priced

    def _price(self, payload: bytes) -> PricedCall:
        try:
            call = self._handler.parse_relay(payload)
            plan = self._handler.plan(self.spec, call, allow_writes=self._allow_writes)
        except RelaynetError as exc:
            raise RelayRefused(exc.code, exc.message) from exc
        http = backend_request(self._handler, call)
        return PricedCall(
            compute_units=plan.compute_units,
            role=plan.role,
            method=call.method,
            write=plan.method_class is MethodClass.WRITE,
            http_method="POST" if http is None else http.method,
            path="" if http is None else http.url(""),
            body=None if http is None else http.body,
        )
