"""CometBFT RPC (Cosmos-SDK rollchains, celestia-app consensus nodes): rpc_type ``"cometbft"``.

``handler`` holds :class:`CometBftHandler` (JSON-RPC POST, URI GET as REST-like payloads,
WebSocket ``subscribe``); ``routes`` the 31 served routes and the 3 unsafe ones.
"""

from rollups.cometbft.handler import CometBftHandler, call_arg, parse_height
from rollups.cometbft.routes import (
    ALL_ROUTES,
    ROUTES,
    SERVED_ROUTES,
    TABLE,
    UNSAFE_ROUTES,
    WEBSOCKET_ONLY,
    Route,
)

__all__ = [
    "ALL_ROUTES",
    "ROUTES",
    "SERVED_ROUTES",
    "TABLE",
    "UNSAFE_ROUTES",
    "WEBSOCKET_ONLY",
    "CometBftHandler",
    "Route",
    "call_arg",
    "parse_height",
]
