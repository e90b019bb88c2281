"""The services a gateway serves: each service id with its chain spec and RPC handler.

The gateway never branches on chains: every question about a method (class, compute units,
cache policy, retry rule, pinning) goes to ``rollups/`` through the entry of its service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ServiceConfig
from gateway.errors import BadRequest, ClientReason
from rollups.catalogue import catalogue_spec
from rollups.handler import RpcHandler
from rollups.loading import load_spec
from rollups.registry import handler_for
from rollups.spec import ChainSpec

__all__ = ["Service", "ServiceTable"]


@dataclass(frozen=True)
class Service:
    service_id: str
    spec: ChainSpec
    handler: RpcHandler


class ServiceTable:
    def __init__(self, services: Mapping[str, Service]) -> None:
        self._services = dict(services)

    @classmethod
    def from_config(cls, config: Mapping[str, ServiceConfig]) -> ServiceTable:
        out: dict[str, Service] = {}
        for service_id, entry in config.items():
            if entry.spec is not None:
                spec = load_spec(entry.spec)
            else:
                assert entry.catalogue is not None
                spec = catalogue_spec(entry.catalogue)
            out[service_id] = Service(service_id, spec, handler_for(spec.rpc_type))
        return cls(out)

    def get(self, service_id: str) -> Service:
        svc = self._services.get(service_id)
        if svc is None:
            raise BadRequest(f"unknown service {service_id!r}", reason=ClientReason.UNKNOWN_SERVICE)
        return svc

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._services.values())

    def ids(self) -> list[str]:
        return list(self._services)

    def __contains__(self, service_id: object) -> bool:
        return service_id in self._services
