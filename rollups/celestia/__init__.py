"""celestia-node (Celestia data-availability nodes): rpc_type ``"celestia"``.

``handler`` holds :class:`CelestiaHandler`; ``methods`` the 72 methods with celestia-node's
permission levels, classes and cache rules.
"""

from rollups.celestia.handler import CelestiaHandler, read_header
from rollups.celestia.methods import (
    METHODS,
    P2P_METHODS,
    TABLE,
    NodeMethod,
    Permission,
)

__all__ = [
    "METHODS",
    "P2P_METHODS",
    "TABLE",
    "CelestiaHandler",
    "NodeMethod",
    "Permission",
    "read_header",
]
