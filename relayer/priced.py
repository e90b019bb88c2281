"""What a relay costs and where it goes: the verifier's one question to the service's chain spec.

:class:`PricingPolicy` is part of the relay pipeline's contracts (re-exported by
:mod:`relayer.interfaces`); it lives in this leaf module so that ``relayer.verify`` can use it
while ``relayer.interfaces`` names the verifier's own types — no import cycle either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["PricedCall", "PricingPolicy"]


@dataclass(frozen=True, slots=True)
class PricedCall:
    """What the service's chain spec says about one relay payload.

    For a REST-like payload (DESIGN §3.3, canonical ``{"body","method","path","query"}``)
    ``http_method``, ``path`` (path and query, appended to the role's backend URL) and ``body``
    say what to send; for JSON-RPC the payload itself is POSTed (``body`` None).
    """

    compute_units: int
    role: str
    method: str
    write: bool = False
    http_method: str = "POST"
    path: str = ""
    body: bytes | None = None


class PricingPolicy(Protocol):
    """The service's chain spec, as the verifier asks it (``rollups/`` handler adapter)."""

    def price(self, payload: bytes) -> PricedCall:
        """Compute units and backend role of a relay payload. Raises RelaynetError with
        BATCH_NOT_RELAYABLE for batches and METHOD_DENIED for denied methods."""
        ...
