"""The gateway's application state: what every request handler may use, typed and built once.

:class:`Gateway` is assembled by the composition root (:mod:`gateway.app`) and stored on the
aiohttp application under :data:`GATEWAY`. Handlers outside the router (WebSocket, health) use
its accessors — :meth:`Gateway.qos`, :meth:`Gateway.relay_client` — rather than reaching into the
router's own attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.keys import KeyRing
from gateway.limiter import Limiter
from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayClient
from gateway.router import Router
from gateway.selection import Qos
from gateway.services import ServiceTable
from gateway.sessions import SessionBook
from gateway.store.base import Store

__all__ = ["GATEWAY", "Gateway"]


@dataclass
class Gateway:
    """Everything a request handler needs, built once by the composition root."""

    config: GatewayConfig
    keys: KeyRing
    limiter: Limiter
    services: ServiceTable
    sessions: SessionBook
    router: Router
    metrics: GatewayMetrics
    store: Store  # floors, pins, cache, WebSocket leases (Redis, or this process's memory)
    ready: Callable[[], bool]
    draining: bool = False
    inflight: int = 0  # client requests in flight (the inflight gauge reads it at scrape time)

    def qos(self) -> Qos:
        """Selection's state: scores, breakers, heights (shared by HTTP and WebSocket)."""
        return self.router.qos

    def relay_client(self) -> RelayClient:
        """The one upstream seam: signing, connecting, receipt checks."""
        return self.router.client


GATEWAY = web.AppKey("gateway", Gateway)
