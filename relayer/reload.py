"""What a relayer's SIGHUP applies: the settings that need no new socket, key or chain client.

Applied in place: ``[claims]`` (``min_reward``, gas pricing, ticks, retries), ``[log]
retention_hours``, ``[metrics] account_interval`` and ``[server] log_format``/``log_level``.
Everything else (keys, chain, services, listeners, the data folder) needs a restart: it is
named in one warning and left as it was. A config that does not load keeps the one in force.
Receipt keys need no signal: a rotated key file is re-read by itself (:mod:`relayer.keyring`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from relayer.claimer import Claimer
from relayer.config import RelayerConfig
from transport.logs import configure

__all__ = ["apply_logs", "hangup", "reloaded"]

log = logging.getLogger("relaynet.relayer")


class _Running(Protocol):
    """What a reload changes of a running :class:`relayer.app.Relayer`."""

    config: RelayerConfig
    claimer: Claimer | None


def reloaded(old: RelayerConfig, new: RelayerConfig) -> tuple[RelayerConfig, list[str]]:
    """The config in force after a reload, and the changed settings that need a restart."""
    server = old.server.model_copy(
        update={"log_format": new.server.log_format, "log_level": new.server.log_level}
    )
    relay_log = old.log.model_copy(update={"retention_hours": new.log.retention_hours})
    metrics = old.metrics.model_copy(update={"account_interval": new.metrics.account_interval})
    applied = old.model_copy(
        update={"claims": new.claims, "server": server, "log": relay_log, "metrics": metrics}
    )
    old_doc, new_doc = _flat(applied.model_dump()), _flat(new.model_dump())
    fixed = sorted(k for k in old_doc.keys() | new_doc.keys() if old_doc.get(k) != new_doc.get(k))
    return applied, fixed


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(doc, dict):
        return {prefix: doc}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and not name.startswith("services."):
            out.update(_flat(value, name))
        else:
            out[name] = value
    return out


def apply_logs(config: RelayerConfig, default_level: str | None = None) -> None:
    """Log format and level from ``config`` (its level, else ``default_level``, else the
    level in force)."""
    current = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    configure(config.server.log_level or default_level or str(current), config.server.log_format)


def hangup(relayer: _Running, read: Callable[[], RelayerConfig]) -> None:
    """SIGHUP: read the config again and apply what :func:`reloaded` allows."""
    try:
        new = read()
    except Exception as exc:  # a broken file keeps the settings in force
        log.warning("SIGHUP: config not reloaded, the old one stays: %s", exc)
        return
    applied, fixed = reloaded(relayer.config, new)
    relayer.config = applied
    if relayer.claimer is not None:
        relayer.claimer.config = applied.claims
        relayer.claimer.retention = applied.log.retention_hours * 3600
    apply_logs(applied)
    log.info(
        "SIGHUP: config reloaded (claims, log.retention_hours, metrics.account_interval,"
        " server.log_format, server.log_level)"
    )
    if fixed:
        log.warning("SIGHUP: these need a restart and were left as they were: %s", ", ".join(fixed))
