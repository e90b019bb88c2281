"""The celestia-node handler (rpc_type ``"celestia"``): Celestia data-availability nodes.

JSON-RPC 2.0 over HTTP and WebSocket (port 26658); params are positional. Resolution of a
method under a spec, in this order:

1. node administration (``node.*`` admin methods, every ``p2p.*``): always denied;
2. removed modules (``da.*``): unknown — "method not found" — and no spec may add them;
3. the spec's override (``[methods.overrides]``);
4. the method table (:mod:`rollups.celestia.methods`); anything else is "method not found".

Writes (``blob.Submit``, ``state.*`` writes) spend the node operator's own wallet: refused unless
the operator allows writes, never retried or hedged. Long polls get the spec's long-poll timeout
and no hedging. Header policy: the relayer presents its node's JWT (``Authorization: Bearer``,
required: without it every read fails with "missing permission"); a client's ``Authorization``
never passes. Health: ``header.LocalHead`` / ``header.NetworkHead`` → ``header.height`` (decimal
string) and ``header.chain_id`` (the spec's ``network``).

Subscriptions use go-jsonrpc channels: ``header.Subscribe`` answers a channel id, then the node
pushes ``{"method":"xrpc.ch.val","params":[<channel id>, <value>]}`` (and ``xrpc.ch.close``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from rollups.base import Resolved, TableHandler
from rollups.celestia.methods import ADMIN_PREFIXES, REMOVED_MODULES, TABLE
from rollups.finality import Finality, height_finality, not_cached, policy_for
from rollups.handler import (
    AnswerCheck,
    HeaderPolicy,
    Health,
    HealthStatus,
    ProbeRequest,
    SubscriptionCall,
    SubscriptionIds,
)
from rollups.jsonrpc import answer_error, answer_result
from rollups.methods import CacheRule, MethodClass, MethodInfo
from rollups.spec import ChainSpec

if TYPE_CHECKING:
    from rollups.handler import CachePolicy, Call, Heights, ProbeAnswer

__all__ = ["CelestiaHandler", "read_header"]

_PROBE_LOCAL = b'{"jsonrpc":"2.0","id":1,"method":"header.LocalHead","params":[]}'
_PROBE_NETWORK = b'{"jsonrpc":"2.0","id":2,"method":"header.NetworkHead","params":[]}'

#: How far a node's local head may trail the network head and still count as in sync.
SYNC_TOLERANCE = 5

_CHANNEL_VALUE = "xrpc.ch.val"

_RETRY_MARKERS = (
    "header: syncing in progress",
    "not available",
    "context deadline exceeded",
    "timeout",
    "too many requests",
    "service unavailable",
)


def read_header(result: Any) -> tuple[int | None, str | None]:
    """``(height, chain_id)`` of an ExtendedHeader (``header.height`` is a decimal string)."""
    header = result.get("header") if isinstance(result, dict) else None
    if not isinstance(header, dict):
        return None, None
    raw = header.get("height")
    height: int | None = None
    if isinstance(raw, str) and raw.isdigit():
        height = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        height = raw
    chain = header.get("chain_id")
    return height, chain if isinstance(chain, str) else None


def _height_arg(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value) or None
    return None


class CelestiaHandler(TableHandler):
    """The celestia-node handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "celestia"
    methods: ClassVar[Mapping[str, MethodInfo]] = TABLE
    reported_as: ClassVar[str] = "header.chain_id"
    example: ClassVar[str] = "mocha-4"
    headers: ClassVar[HeaderPolicy] = HeaderPolicy(auth_scheme="bearer", auth_required=True)
    not_found: ClassVar[str] = "method '{method}' not found"
    writes_refused: ClassVar[str] = (
        "it spends the node operator's wallet and this relay does not accept writes"
    )

    # -- spec ------------------------------------------------------------------------------
    def never_allowable(self, name: str) -> str | None:
        prefix = name[:-1] if name.endswith("*") else None
        for denied in ADMIN_PREFIXES:
            if name.startswith(denied) or (prefix is not None and denied.startswith(prefix)):
                return f"{denied}* is node administration and always denied"
        for removed in REMOVED_MODULES:
            if name.startswith(removed) or (prefix is not None and removed.startswith(prefix)):
                return f"the {removed[:-1]} module no longer exists in celestia-node"
        for method, info in TABLE.items():
            if info.method_class is MethodClass.DENIED and (
                method == name or (prefix is not None and method.startswith(prefix))
            ):
                return f"{method} is an admin method and always denied"
        return None

    # -- methods ---------------------------------------------------------------------------
    def refused(self, method: str) -> tuple[str, bool] | None:
        info = self.methods.get(method)
        if any(method.startswith(p) for p in ADMIN_PREFIXES) or (
            info is not None and info.method_class is MethodClass.DENIED
        ):
            return "admin method", True
        if any(method.startswith(p) for p in REMOVED_MODULES):
            return "module removed from the node", False
        return None

    def subscription(self, call: Call) -> SubscriptionCall | None:
        info = self.methods.get(call.method)
        if info is None or info.method_class is not MethodClass.SUBSCRIPTION:
            return None
        params = call.param_list
        topic = call.method
        if params and isinstance(params[0], str):
            topic = f"{call.method}:{params[0]}"  # blob.Subscribe(namespace)
        return SubscriptionCall(subscribe=True, topic=topic, ids=SubscriptionIds.CHANNEL)

    def read_notification(self, body: bytes) -> str | None:
        """The channel id of a message the node pushed (``xrpc.ch.val``), else None."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("method") != _CHANNEL_VALUE:
            return None
        params = data.get("params")
        if not isinstance(params, list) or not params:
            return None
        channel = params[0]
        if isinstance(channel, bool) or not isinstance(channel, int | str):
            return None
        return str(channel)

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        if self.read_notification(body) is None:
            return body
        data = orjson.loads(body)
        data["params"][0] = int(subscription_id) if subscription_id.isdigit() else subscription_id
        return orjson.dumps(data)

    def notification_result(self, body: bytes) -> bytes:
        """The channel message's value (``params[1:]``), without the node's channel id."""
        try:
            return orjson.dumps(orjson.loads(body)["params"][1:])
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return body

    def notification_identity(self, body: bytes) -> bytes:
        """A channel message by its value (the channel id is each node's own)."""
        try:
            data = orjson.loads(body)
            value = data["params"][1:]
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return hashlib.sha256(body).digest()
        return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()

    # -- caching ---------------------------------------------------------------------------
    def decide_cache(
        self, spec: ChainSpec, call: Call, resolved: Resolved, key: str, heights: Heights
    ) -> CachePolicy:
        arg = resolved.info.arg if resolved.info is not None else None
        ttl = spec.cache.head_ttl
        if resolved.rule is CacheRule.FINAL:
            return policy_for(key, Finality.FINAL, f"{call.method} is addressed by hash", ttl)
        if resolved.rule is not CacheRule.BLOCK or arg is None:
            return super().decide_cache(spec, call, resolved, key, heights)
        params = call.param_list
        height = _height_arg(params[arg]) if len(params) > arg else None
        if height is None:
            return not_cached(f"{call.method}: unreadable height argument")
        return policy_for(key, *height_finality(height, heights), ttl)

    # -- health, answers -------------------------------------------------------------------
    def probe_requests(self, spec: ChainSpec) -> tuple[ProbeRequest, ...]:
        return (
            ProbeRequest("local_head", _PROBE_LOCAL),
            ProbeRequest("network_head", _PROBE_NETWORK),
        )

    def read_height(self, body: bytes) -> int | None:
        try:
            return read_header(answer_result(body))[0]
        except ValueError:
            return None

    def _read(self, answer: ProbeAnswer | None) -> tuple[int | None, str | None, str]:
        if answer is None:
            return None, None, "unreachable"
        error = answer_error(answer.body)
        if error is not None:
            return None, None, f"error {error[0]}: {error[1]}"
        try:
            result = answer_result(answer.body) if answer.status == 200 else None
        except ValueError:
            result = None
        height, chain = read_header(result)
        if height is None or chain is None:
            return height, chain, f"no extended header in the answer (HTTP {answer.status})"
        return height, chain, ""

    def read_health(self, spec: ChainSpec, answers: Mapping[str, ProbeAnswer | None]) -> Health:
        local = answers.get("local_head")
        network = answers.get("network_head")
        if local is None and network is None:
            return Health.failed(HealthStatus.UNREACHABLE, "backend unreachable")
        height, chain, problem = self._read(local if local is not None else network)
        if problem:
            reason = f"header.LocalHead: {problem}"
            return Health.failed(HealthStatus.BAD_ANSWER, reason, height, chain)
        assert chain is not None  # no problem: the header names its chain
        wrong = self.served_health(spec, height, chain)
        if wrong is not None:
            return wrong
        if local is not None and network is not None:
            net_height, net_chain, net_problem = self._read(network)
            if not net_problem and net_chain == chain and net_height is not None:
                assert height is not None
                if net_height - height > SYNC_TOLERANCE:
                    reason = f"syncing: local head {height}, network head {net_height}"
                    return Health.failed(HealthStatus.SYNCING, reason, height, chain)
        return Health(True, height, chain, "ok", HealthStatus.OK)

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        if status == 401:
            return AnswerCheck(
                False, False, True, "the node refused the relayer's token (HTTP 401)"
            )
        return super().check_answer(spec, call, status, body)

    def retry_error(self, status: int, code: int, message: str, data: dict[str, Any]) -> bool:
        lower = message.lower()
        return (
            "missing permission" in lower  # the relayer's token is too weak: its problem
            or status == 429
            or status >= 500
            or any(marker in lower for marker in _RETRY_MARKERS)
        )
