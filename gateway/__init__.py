"""The dApp-facing server: ``POST /v1/{service}`` and WebSocket, in front of the relayers.

Owns routing by service, API keys with rate limits and quotas (:mod:`gateway.keys`), shared
state behind one store interface with memory and Redis drivers (:mod:`gateway.store`), session
lookup from the registry snapshot (:mod:`gateway.sessions`), relayer selection by QoS score
(:mod:`gateway.selection`, fed by :mod:`gateway.health`), failure handling state machines
(:mod:`gateway.failsafe`: breaker, hedge, retry), signed relays and receipt checks
(:mod:`gateway.relay_client`), the finality-aware cache (:mod:`gateway.cache`), batches
(:mod:`gateway.batch`), subscriptions (:mod:`gateway.ws`), metrics (:mod:`gateway.metrics`) and
errors (:mod:`gateway.errors`). :mod:`gateway.app` is the composition root; protocol math comes
from ``protocol/`` and ``session/``, everything chain-specific from ``rollups/``.

The hot path of one call is :meth:`gateway.router.Router.execute`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transport.exports import lazy_exports

if TYPE_CHECKING:
    from gateway.app import create_app, serve
    from gateway.config import GatewayConfig
    from gateway.errors import BadRequest, ClientReason, GatewayError, NoSupplier, RelayFailed
    from gateway.router import CallAnswer, ClientContext, Router

# re-exported on first use: importing any gateway module (the CLI's `keys` and `stake`
# commands, the config model) does not load the server, its Redis client and the router
_HOME = {
    "create_app": "gateway.app",
    "serve": "gateway.app",
    "GatewayConfig": "gateway.config",
    "BadRequest": "gateway.errors",
    "ClientReason": "gateway.errors",
    "GatewayError": "gateway.errors",
    "NoSupplier": "gateway.errors",
    "RelayFailed": "gateway.errors",
    "CallAnswer": "gateway.router",
    "ClientContext": "gateway.router",
    "Router": "gateway.router",
}


__getattr__ = lazy_exports(__name__, _HOME)


__all__ = [
    "BadRequest",
    "CallAnswer",
    "ClientContext",
    "ClientReason",
    "GatewayConfig",
    "GatewayError",
    "NoSupplier",
    "RelayFailed",
    "Router",
    "create_app",
    "serve",
]
