"""Stand-in servers for the nodes that cannot be installed here: CometBFT and celestia-node.

They are **stand-ins**, not the real nodes: aiohttp servers on loopback that answer with the
real API shapes (CometBFT's OpenAPI file, celestia-node's doc examples — package data in
``rollups.standins.fixtures``), validate params against the OpenAPI file and enforce
celestia-node's JWT permission levels. Tests and the devnet use them; every error shape that is
not in the fixtures is a documented guess (see each module).

* :mod:`rollups.standins.cometbft` — ``start_cometbft(network=…)`` /
  ``python -m rollups.standins.cometbft --port N``;
* :mod:`rollups.standins.celestia` — ``start_celestia(secret, network=…)`` /
  ``python -m rollups.standins.celestia --port N --jwt-secret HEX``;
* :mod:`rollups.standins.jwt` — ``make_token(secret, "read")``, ``verify_token``.
"""

from rollups.standins.celestia import CelestiaStandIn, start_celestia
from rollups.standins.cometbft import CometBftStandIn, start_cometbft
from rollups.standins.jwt import InvalidToken, make_token, verify_token

__all__ = [
    "CelestiaStandIn",
    "CometBftStandIn",
    "InvalidToken",
    "make_token",
    "start_celestia",
    "start_cometbft",
    "verify_token",
]
