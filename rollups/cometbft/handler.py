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

from protocol.payload import RestRequest
from rollups.answers import FloorRule, answer_cap
from rollups.cometbft.routes import ROUTES, UNSAFE_ROUTES, WEBSOCKET_ONLY, Cache, Route
from rollups.errors import (
    MethodDeniedError,
    MethodNotAllowedError,
    MethodNotFoundError,
    WritesDisabledError,
)
from rollups.evm.cache import Finality, not_cached, policy_for
from rollups.handler import (
    DEFAULT_ROLE,
    AnswerCheck,
    CachePolicy,
    Call,
    CallPlan,
    HeaderPolicy,
    Health,
    HealthStatus,
    Heights,
    MethodClass,
    MethodPolicy,
    ParsedRequest,
    Pinning,
    ProbeAnswer,
    ProbeRequest,
    RetryMode,
    RetryPolicy,
    SubscriptionCall,
)
from rollups.jsonrpc import (
    answer_error,
    answer_result,
    cache_key,
    decode_answer,
    is_cacheable_answer,
    parse_payload,
    parse_single,
)
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


class CometBftHandler:
    """The CometBFT handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "cometbft"
    routes: ClassVar[Mapping[str, Route]] = ROUTES

    # -- spec ------------------------------------------------------------------------------
    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems: list[str] = []
        if spec.network is None:
            problems.append(
                f"network: missing — rpc_type {self.rpc_type!r} is identified by its chain id "
                'as CometBFT reports it (node_info.network), e.g. network = "mocha-4"'
            )
        if spec.chain_id is not None:
            problems.append(
                "chain_id: CometBFT chains are identified by `network` — remove `chain_id`"
            )
        if spec.arbitrum is not None:
            problems.append('arbitrum: only for rpc_type "arbitrum" — remove the [arbitrum] table')
        for name, override in spec.methods.overrides.items():
            if override.method_class not in (None, MethodClass.DENIED):
                prefix = name[:-1] if name.endswith("*") else None
                hit = [u for u in sorted(_UNSAFE) if u == name or (prefix and u.startswith(prefix))]
                if hit:
                    problems.append(
                        f"methods.overrides.{name}: {hit[0]} is an unsafe route and always "
                        "denied — remove this override"
                    )
        return tuple(problems)

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, payload: bytes, *, max_batch: int | None = None) -> ParsedRequest:
        if is_rest_payload(payload):
            return ParsedRequest(calls=(self._uri_call(payload),), batch=False)
        return parse_payload(payload, max_batch)

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
        from protocol.payload import rest_payload

        payload = rest_payload(request.method, request.path, request.query, request.body)
        return self._call_of(request, payload)

    def http_request(self, call: Call) -> HttpRequest | None:
        if not _is_uri(call):
            return None
        request = parse_rest_call(call.raw)
        return HttpRequest(request.method, request.path, request.query, request.body)

    # -- methods ---------------------------------------------------------------------------
    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        cu = spec.compute_units.price(method)
        role = spec.role_for(method) or DEFAULT_ROLE
        route = self.routes.get(method)
        if method in _UNSAFE:
            return MethodPolicy(
                method,
                MethodClass.DENIED,
                cu,
                role,
                False,
                True,
                route.reason if route else "unsafe route",
            )
        cls = route.method_class if route else None
        cacheable = route is not None and route.cache is not Cache.NEVER
        reason = ""
        override = spec.override_for(method)
        if override is not None:
            if override.method_class is not None and override.method_class is not cls:
                cls = override.method_class
                reason = "denied by the chain spec" if cls is MethodClass.DENIED else ""
            if override.cacheable is not None:
                cacheable = override.cacheable
        if cls is None:
            return MethodPolicy(
                method, MethodClass.DENIED, cu, role, False, False, "method not found"
            )
        if cls is MethodClass.DENIED:
            return MethodPolicy(method, cls, cu, role, False, True, reason or "denied")
        return MethodPolicy(method, cls, cu, role, cacheable and cls is MethodClass.READ, True, "")

    def plan(self, spec: ChainSpec, call: Call, *, allow_writes: bool | None = None) -> CallPlan:
        policy = self.method_policy(spec, call.method)
        cls = policy.method_class
        if cls is MethodClass.DENIED:
            if not policy.known:
                raise MethodNotFoundError(f"Method not found: {call.method}")
            raise MethodDeniedError(
                f"the method {call.method} is not available on {spec.service_id}: {policy.reason}"
            )
        if cls is MethodClass.WRITE:
            allowed = spec.methods.allow_writes if allow_writes is None else allow_writes
            if not allowed:
                raise WritesDisabledError(
                    f"the method {call.method} is not available: this relay does not accept "
                    "transactions"
                )
        if _is_uri(call) and call.method in WEBSOCKET_ONLY:
            raise MethodNotFoundError(
                f"Method not found: {call.method} is only available over the WebSocket"
            )
        return CallPlan(
            call=call,
            method_class=cls,
            compute_units=policy.compute_units,
            role=policy.role,
            retry=self._retry(spec, call.method, cls),
            pinning=None,
            subscription=self.subscription(call),
        )

    def compute_units(self, spec: ChainSpec, call: Call) -> int:
        return spec.compute_units.price(call.method)

    def backend_role(self, spec: ChainSpec, call: Call) -> str:
        return spec.role_for(call.method) or DEFAULT_ROLE

    def _retry(self, spec: ChainSpec, method: str, cls: MethodClass) -> RetryPolicy:
        t = spec.timeouts
        if cls is MethodClass.READ:
            return RetryPolicy(RetryMode.ANY, hedge=True, timeout=t.default)
        if cls is MethodClass.WRITE:
            return RetryPolicy(RetryMode.UNSENT_ONLY, hedge=False, timeout=t.write)
        if cls is MethodClass.LONG_POLL:
            return RetryPolicy(RetryMode.ANY, hedge=False, timeout=t.long_poll)
        return RetryPolicy(RetryMode.NEVER, hedge=False, timeout=t.default)

    def retry_policy(self, spec: ChainSpec, call: Call) -> RetryPolicy:
        cls = self.method_policy(spec, call.method).method_class
        return self._retry(spec, call.method, cls)

    def pinning(self, call: Call) -> Pinning | None:
        return None

    def read_handle(self, body: bytes) -> str | None:
        return None

    def subscription(self, call: Call) -> SubscriptionCall | None:
        route = self.routes.get(call.method)
        if route is None or route.method_class is not MethodClass.SUBSCRIPTION:
            return None
        query = call_arg(route, call, "query")
        query = query if isinstance(query, str) else None
        if call.method == "subscribe":
            return SubscriptionCall(subscribe=True, topic=query)
        return SubscriptionCall(subscribe=False, subscription_id=query)

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

    def notification_identity(self, body: bytes) -> bytes:
        """An event by its result (query, data, events); the id is the subscriber's own."""
        data = decode_answer(body)
        result = data.get("result") if data is not None else None
        if result is None:
            return hashlib.sha256(body).digest()
        return hashlib.sha256(orjson.dumps(result, option=orjson.OPT_SORT_KEYS)).digest()

    def write_landed(self, call: Call, body: bytes) -> bool:
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
    def _key(self, spec: ChainSpec, call: Call) -> str:
        prefix = "uri:" if _is_uri(call) else ""
        return cache_key(spec.service_id, prefix + call.method, call.params)

    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        policy = self.method_policy(spec, call.method)
        if policy.method_class is not MethodClass.READ:
            return not_cached(f"{policy.method_class.value} calls are never cached")
        if not policy.cacheable:
            return not_cached(f"{call.method}: node-local or volatile answers are never cached")
        route = self.routes.get(call.method)
        rule = route.cache if route is not None else Cache.HEAD
        key = self._key(spec, call)
        ttl = spec.cache.head_ttl
        if rule is Cache.FINAL:
            return policy_for(key, Finality.FINAL, f"{call.method} never changes", ttl)
        if rule is Cache.HEAD or route is None:
            return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", ttl)
        name = "maxHeight" if rule is Cache.RANGE else "height"
        height = parse_height(call_arg(route, call, name))
        if height is None:
            if call.method == "abci_query":
                return not_cached("abci_query without a height is about the head")
            return policy_for(key, Finality.BRIEF, f"{call.method} at the head", ttl)
        if heights.latest is not None and height > heights.latest:
            return not_cached(f"height {height} is above the head {heights.latest}")
        if heights.finalized is not None and height <= heights.finalized:
            return policy_for(key, Finality.FINAL, f"height {height} is final", ttl)
        return policy_for(key, Finality.BRIEF, f"height {height} is not final yet", ttl)

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        policy = self.cache_policy(spec, call, heights)
        if not policy.cacheable:
            return policy
        if not is_cacheable_answer(body):
            return not_cached("failures and null results are never cached")
        return policy

    # -- headers, health, answers ----------------------------------------------------------
    def header_policy(self, spec: ChainSpec) -> HeaderPolicy:
        return _HEADERS

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
            return Health(False, None, None, "backend unreachable", HealthStatus.UNREACHABLE)
        try:
            result = answer_result(answer.body) if answer.status == 200 else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            return Health(
                False,
                None,
                None,
                f"status: no result (HTTP {answer.status})",
                HealthStatus.BAD_ANSWER,
            )
        node_info = result.get("node_info")
        network = node_info.get("network") if isinstance(node_info, dict) else None
        network = network if isinstance(network, str) else None
        height = self.read_height(answer.body)
        if network is None:
            return Health(
                False, height, None, "status: no node_info.network", HealthStatus.BAD_ANSWER
            )
        if spec.network is not None and network != spec.network:
            return Health(
                False,
                height,
                network,
                f"wrong chain: the backend serves network {network!r}, "
                f"{spec.service_id} is {spec.network!r}",
                HealthStatus.WRONG_CHAIN,
            )
        if height is None:
            return Health(
                False,
                None,
                network,
                "status: no sync_info.latest_block_height",
                HealthStatus.BAD_ANSWER,
            )
        sync = result.get("sync_info")
        if isinstance(sync, dict) and sync.get("catching_up") is True:
            return Health(
                False, height, network, f"catching up: at block {height}", HealthStatus.SYNCING
            )
        return Health(True, height, network, "ok", HealthStatus.OK)

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=False)

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return None  # no client-visible head call is floored for this RPC type

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        raise NotImplementedError("no floored call: floor_rule is always None")

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        data = decode_answer(body)
        if data is None:
            retry = status >= 500 or status == 429 or status == 200
            return AnswerCheck(False, False, retry, f"not a JSON-RPC answer (HTTP {status})")
        if not _is_uri(call) and not call.notification and data.get("id") != call.id:
            return AnswerCheck(False, False, True, "the answer's id does not match the request")
        error = answer_error(body)
        if error is None:
            return AnswerCheck(True, False, False, "ok")
        code, message = error
        detail = data["error"].get("data") if isinstance(data.get("error"), dict) else None
        text = (message + " " + (detail if isinstance(detail, str) else "")).lower()
        retry = status in (429, 502, 503, 504) or any(m in text for m in _RETRY_MARKERS)
        return AnswerCheck(True, True, retry, f"error {code}: {message}")


_HEADERS = HeaderPolicy(auth_scheme="bearer", auth_required=False)
