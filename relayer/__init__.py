"""The node runner's server: verify relays, forward them, receipt and record every one, earn.

Owns (DESIGN §2, §3.3–§3.6, §6):

* ``interfaces.py`` — the pipeline's parts as Protocols and the stage types between them;
* ``config.py`` — the one validated config (TOML, pydantic ``extra="forbid"``, ``SecretStr``);
* ``app.py`` — the composition root: everything built leaves-first from that config;
* ``server.py`` / ``websocket.py`` — ``POST /v1/relay``, the WebSocket relay, health, metrics;
* ``verify.py`` — the relay checks in DESIGN's order, all from the in-memory registry snapshot;
* ``pricing.py`` — compute units and method classes from the service's chain spec (``rollups/``);
* ``backend.py`` — the keep-alive forwarder to the node (the transport seam);
* ``recorder.py`` / ``relaylog.py`` — receipts and the durable, CRC-framed, group-committed log;
* ``budget.py`` — per (app, session) metering;
* ``claimer.py`` / ``chain.py`` — tries, claims, proofs, settlements, checkpoints, persisted;
* ``status.py`` — what ``relaynet relayer status`` reports; ``metrics.py``; ``errors.py``.

It trusts nothing a gateway sends without verifying it, and never calls the chain on the hot
path. Heavy modules load on first use: ``from relayer import build_relayer`` works lazily.
"""

from __future__ import annotations

from transport.exports import lazy_exports

__all__ = [
    "Relayer",
    "RelayerConfig",
    "RelayerKeys",
    "build_relayer",
    "serve",
]

_HOME = {
    "Relayer": "relayer.app",
    "RelayerKeys": "relayer.app",
    "build_relayer": "relayer.app",
    "serve": "relayer.app",
    "RelayerConfig": "relayer.config",
}


__getattr__ = lazy_exports(__name__, _HOME)
