"""Cosmos REST (LCD / grpc-gateway): rpc_type ``"cosmos-rest"``, REST-like relays.

``handler`` holds :class:`CosmosRestHandler` and :func:`route_name` (the priced route name of a
REST call). The payload machinery shared with CometBFT URI calls is :mod:`rollups.rest`.
"""

from rollups.cosmos_rest.handler import CosmosRestHandler, route_name

__all__ = ["CosmosRestHandler", "route_name"]
