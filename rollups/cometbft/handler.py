"""The CometBFT RPC handler (rpc_type ``"cometbft"``): Cosmos-SDK rollchains, celestia-app.

A CometBFT node takes the same 31 routes three ways: JSON-RPC POSTed to ``/`` (single or batch),
URI GETs (``GET /block?height=5``) and JSON-RPC over the WebSocket at ``/websocket`` (the only
way to ``subscribe``). JSON-RPC payloads are relayed byte for byte; a URI GET is relayed as the
canonical REST-like payload (DESIGN §3.3) and turned back into the GET by the relayer
(:meth:`CometBftHandler.http_request`).

Policy, in this order: unsafe routes (``dial_seeds``, ``dial_peers``, ``unsafe_flush_mempool``)
are always denied; the spec's override; the route table (:mod:`rollups.cometbft.routes`);
anything else is "method not found". ``broadcast_tx_*`` and ``broadcast_evidence`` are writes
(refused unless the operator allows writes; never retried blindly; ``broadcast_tx_commit``
waits for the block: the spec's write timeout). Health: ``status`` →
``sync_info.latest_block_height``, ``catching_up`` false, ``node_info.network`` is the spec's
``network``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from protocol.payload import RestRequest, rest_payload
from rollups.base import Resolved, TableHandler
from rollups.cometbft.routes import ROUTES, TABLE, UNSAFE_ROUTES, WEBSOCKET_ONLY, Route
from rollups.errors import MethodNotAllowedError, MethodNotFoundError
from rollups.finality import Finality, height_finality, not_cached, policy_for
from rollups.handler import (
    CachePolicy,
    Call,
    Health,
    HealthStatus,
    Heights,
    ProbeAnswer,
    ProbeRequest,
    SubscriptionCall,
    SubscriptionIds,
)
from rollups.jsonrpc import answer_error, answer_result, cache_key, decode_answer, parse_single
from rollups.methods import CacheRule, MethodClass, MethodInfo
from rollups.rest import HttpRequest, is_rest_payload, parse_rest_call, query_params
from rollups.spec import ChainSpec

__all__ = ["CometBftHandler", "call_arg", "parse_height"]

_PROBE_STATUS = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{}}'
_UNSAFE = frozenset(r.name for r in UNSAFE_ROUTES)

#: Error messages that mean "this node cannot answer now; another one may".
_RETRY_MARKERS = (
    "must be less than or equal to the current blockchain height",
    "is not available, lowest height is",  # pruned
    "timed out",
    "timeout",
    "too many requests",
    "service unavailable",
)

_LANDED_MARKERS = ("tx already exists in cache", "already exists")


def parse_height(value: Any) -> int | None:
    """A CometBFT height argument (``5``, ``"5"``, ``"\\"5\\""``); ``None`` when absent, ``0``
    (CometBFT's "latest") or unreadable.

    >>> parse_height("12"), parse_height(0), parse_height(None)
    (12, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        text = value.strip().strip('"')
        if text.isdigit():
            n = int(text)
            return n if n > 0 else None
    return None


def call_arg(route: Route, call: Call, name: str) -> Any:
    """The argument ``name`` of a call: by name (object params, URI query) or by position."""
    params = call.params
    if isinstance(params, dict):
        return params.get(name)
    if isinstance(params, list) and name in route.args:
        index = route.args.index(name)
        return params[index] if index < len(params) else None
    return None


def _is_uri(call: Call) -> bool:
    return call.id is None and is_rest_payload(call.raw)


class CometBftHandler(TableHandler):
    """The CometBFT handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "cometbft"
    methods: ClassVar[Mapping[str, MethodInfo]] = TABLE
    routes: ClassVar[Mapping[str, Route]] = ROUTES
    not_found: ClassVar[str] = "Method not found: {method}"
    reported_as: ClassVar[str] = "node_info.network"
    example: ClassVar[str] = "mocha-4"

    wrong_chain: ClassVar[str] = (
        "wrong chain: the backend serves network {served!r}, {service} is {identity!r}"
    )

    def never_allowable(self, name: str) -> str | None:
        prefix = name[:-1] if name.endswith("*") else None
        hit = [u for u in sorted(_UNSAFE) if u == name or (prefix and u.startswith(prefix))]
        return f"{hit[0]} is an unsafe route and always denied" if hit else None

    # -- parsing ---------------------------------------------------------------------------
    def parse_relay(self, payload: bytes) -> Call:
        if is_rest_payload(payload):
            return self._uri_call(payload)
        return parse_single(payload)

    def _uri_call(self, payload: bytes) -> Call:
        request = parse_rest_call(payload)
        return self._call_of(request, payload)

    def _call_of(self, request: RestRequest, payload: bytes) -> Call:
        if request.method != "GET":
            raise MethodNotAllowedError(
                f"invalid request: CometBFT URI calls are GETs (got {request.method}); "
                "POST JSON-RPC to the service instead"
            )
        route = request.path.strip("/")
        if "/" in route or not route:
            raise MethodNotFoundError(f"Method not found: no CometBFT route {request.path}")
        return Call(method=route, params=query_params(request.query), id=None, raw=payload)

    # REST-like extension (rollups.rest.RestCapable)
    def rest_call(self, spec: ChainSpec, request: RestRequest) -> Call:
        payload = rest_payload(request.method, request.path, request.query, request.body)
        return self._call_of(request, payload)

    def http_request(self, call: Call) -> HttpRequest | None:
        if not _is_uri(call):
            return None
        request = parse_rest_call(call.raw)
        return HttpRequest(request.method, request.path, request.query, request.body)

    # -- methods ---------------------------------------------------------------------------
    def refused(self, method: str) -> tuple[str, bool] | None:
        if method in _UNSAFE:
            return self.methods[method].reason, True
        return None

    def check_params(self, spec: ChainSpec, call: Call) -> None:
        if _is_uri(call) and call.method in WEBSOCKET_ONLY:
            raise MethodNotFoundError(
                f"Method not found: {call.method} is only available over the WebSocket"
            )

    def subscription(self, call: Call) -> SubscriptionCall | None:
        route = self.routes.get(call.method)
        if route is None or route.info.method_class is not MethodClass.SUBSCRIPTION:
            return None
        query = call_arg(route, call, "query")
        query = query if isinstance(query, str) else None
        ids = SubscriptionIds.REQUEST
        if call.method == "subscribe":
            return SubscriptionCall(subscribe=True, topic=query, ids=ids)
        every = call.method == "unsubscribe_all"
        return SubscriptionCall(subscribe=False, subscription_id=query, ids=ids, every=every)

    def read_notification(self, body: bytes) -> str | None:
        """An event CometBFT pushes answers the ``subscribe`` request's id with
        ``result.query``, ``result.data``, ``result.events``: the query identifies it."""
        data = decode_answer(body)
        if data is None:
            return None
        result = data.get("result")
        if isinstance(result, dict) and "data" in result and isinstance(result.get("query"), str):
            return str(result["query"])
        return None

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        """The event with its ``id`` replaced by ``subscription_id`` (the client's subscribe
        id; a decimal string becomes a number)."""
        if self.read_notification(body) is None:
            return body
        data = orjson.loads(body)
        data["id"] = (
            int(subscription_id) if subscription_id.lstrip("-").isdigit() else subscription_id
        )
        return orjson.dumps(data)

    def notification_result(self, body: bytes) -> bytes:
        """The event's ``result`` (query, data, events), without the subscriber's id."""
        data = decode_answer(body)
        if data is None or "result" not in data:
            return body
        return orjson.dumps(data["result"])

    def notification_identity(self, body: bytes) -> bytes:
        """An event by its result (query, data, events); the id is the subscriber's own."""
        data = decode_answer(body)
        result = data.get("result") if data is not None else None
        if result is None:
            return hashlib.sha256(body).digest()
        return hashlib.sha256(orjson.dumps(result, option=orjson.OPT_SORT_KEYS)).digest()

    def write_landed(self, call: Call, body: bytes) -> bool:
        """A retried broadcast's answer meaning the first try landed (already in the mempool
        cache). Not on ``RpcHandler``: no caller retries a sent write yet."""
        error = answer_error(body)
        if error is None:
            return False
        message = error[1].lower()
        data = decode_answer(body)
        detail = data.get("error", {}).get("data") if data else None
        if isinstance(detail, str):
            message += " " + detail.lower()
        return any(marker in message for marker in _LANDED_MARKERS)

    # -- caching ---------------------------------------------------------------------------
    def cache_key(self, spec: ChainSpec, call: Call) -> str:
        prefix = "uri:" if _is_uri(call) else ""
        return cache_key(spec.service_id, prefix + call.method, call.params)

    def decide_cache(
        self, spec: ChainSpec, call: Call, resolved: Resolved, key: str, heights: Heights
    ) -> CachePolicy:
        route = self.routes.get(call.method)
        rule = resolved.rule
        if route is None or rule not in (CacheRule.BLOCK, CacheRule.RANGE):
            return super().decide_cache(spec, call, resolved, key, heights)
        ttl = spec.cache.head_ttl
        name = "maxHeight" if rule is CacheRule.RANGE else "height"
        height = parse_height(call_arg(route, call, name))
        if height is None:
            if call.method == "abci_query":
                return not_cached("abci_query without a height is about the head")
            return policy_for(key, Finality.BRIEF, f"{call.method} at the head", ttl)
        return policy_for(key, *height_finality(height, heights), ttl)

    # -- health, answers -------------------------------------------------------------------
    def probe_requests(self, spec: ChainSpec) -> tuple[ProbeRequest, ...]:
        return (ProbeRequest("status", _PROBE_STATUS),)

    def read_height(self, body: bytes) -> int | None:
        """``result.sync_info.latest_block_height`` of a ``status`` answer."""
        try:
            result = answer_result(body)
        except ValueError:
            return None
        sync = result.get("sync_info") if isinstance(result, dict) else None
        if not isinstance(sync, dict):
            return None
        return parse_height(sync.get("latest_block_height"))

    def read_health(self, spec: ChainSpec, answers: Mapping[str, ProbeAnswer | None]) -> Health:
        answer = answers.get("status")
        if answer is None:
            return Health.failed(HealthStatus.UNREACHABLE, "backend unreachable")
        try:
            result = answer_result(answer.body) if answer.status == 200 else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            reason = f"status: no result (HTTP {answer.status})"
            return Health.failed(HealthStatus.BAD_ANSWER, reason)
        node_info = result.get("node_info")
        network = node_info.get("network") if isinstance(node_info, dict) else None
        height = self.read_height(answer.body)
        if not isinstance(network, str):
            return Health.failed(HealthStatus.BAD_ANSWER, "status: no node_info.network", height)
        wrong = self.served_health(spec, height, network)
        if wrong is not None:
            return wrong
        if height is None:
            reason = "status: no sync_info.latest_block_height"
            return Health.failed(HealthStatus.BAD_ANSWER, reason, None, network)
        sync = result.get("sync_info")
        if isinstance(sync, dict) and sync.get("catching_up") is True:
            reason = f"catching up: at block {height}"
            return Health.failed(HealthStatus.SYNCING, reason, height, network)
        return Health(True, height, network, "ok", HealthStatus.OK)

    def answer_has_id(self, call: Call) -> bool:
        return not _is_uri(call) and not call.notification

    def retry_error(self, status: int, code: int, message: str, data: dict[str, Any]) -> bool:
        error = data.get("error")
        detail = error.get("data") if isinstance(error, dict) else None
        text = (message + " " + (detail if isinstance(detail, str) else "")).lower()
        return status in (429, 502, 503, 504) or any(m in text for m in _RETRY_MARKERS)
