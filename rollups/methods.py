"""The one shape of a method table: every handler classifies its methods with :class:`MethodInfo`.

A table maps a method name (or a CometBFT route, a Cosmos REST route name) to its
:class:`MethodClass` and :class:`CacheRule`. The rule says what decides whether a read's answer
may be cached; the finality of that decision is :mod:`rollups.finality`'s.

``arg`` is the position of the block or height parameter (``BLOCK``; absent means the head),
``args`` the parameter names in order for RPC types that also take params by name (CometBFT),
``reason`` why a ``DENIED`` method is denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DEFAULT_ROLE", "CacheRule", "MethodClass", "MethodInfo"]

#: The backend role that serves every call a spec does not route elsewhere.
DEFAULT_ROLE = "rpc"


class MethodClass(StrEnum):
    """How a method behaves; decides routing, retries, caching and pinning."""

    READ = "read"  # idempotent read: retried elsewhere, hedged, maybe cached
    WRITE = "write"  # changes chain state (eth_sendRawTransaction): never retried blindly
    STATEFUL = "stateful"  # node-local state (eth_newFilter …): pinned to one supplier
    SUBSCRIPTION = "subscription"  # eth_subscribe / eth_unsubscribe: WebSocket only, sticky
    LONG_POLL = "long_poll"  # waits server-side (header.WaitForHeight): own timeout, no hedge
    DENIED = "denied"  # never relayed (admin_, personal_, miner_, test methods, unknown)


class CacheRule(StrEnum):
    """What decides whether a read's answer may be cached (and for how long)."""

    NEVER = "never"  # node-local, volatile, pending state or a write: never cached
    FINAL = "final"  # never changes (eth_chainId, genesis) or addressed by hash: final
    HEAD = "head"  # about the head: briefly at most (spec.cache.head_ttl)
    BLOCK = "block"  # the block tag / number / height at argument ``arg`` decides
    RANGE = "range"  # a height range: its upper end decides (CometBFT blockchain)
    HASH = "hash"  # pinned by a block hash: final (answer's block number checked if present)
    TX = "tx"  # by transaction hash: the answer's block number decides
    LOGS = "logs"  # a log filter: blockHash, or fromBlock/toBlock decide


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One method of a table."""

    method_class: MethodClass
    cache: CacheRule = CacheRule.NEVER
    arg: int | None = None  # index of the block / height parameter (BLOCK rule)
    reason: str = ""  # why DENIED
    args: tuple[str, ...] = ()  # parameter names in order (params given by name)
