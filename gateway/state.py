"""The gateway's application state: what every request handler may use, typed and built once.

:class:`Gateway` is assembled by the composition root (:mod:`gateway.app`) and stored on the
aiohttp application under :data:`GATEWAY`. The WebSocket code gets its upstream seam (relay
client, selection, store) handed in by the composition root (``gateway.ws.Upstream``) rather
than reaching into the router's attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.keys import ApiKey, KeyRing
from gateway.limiter import Limiter
from gateway.metrics import GatewayMetrics
from gateway.router import ClientContext, Router
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
    #: (key hash, service) -> (the key's record, its ClientContext): built once per record (a
    #: reload makes new records), each request still authenticated and checked
    contexts: dict[tuple[str, str], tuple[ApiKey, ClientContext]] = field(default_factory=dict)


GATEWAY = web.AppKey("gateway", Gateway)
