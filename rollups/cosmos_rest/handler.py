"""The Cosmos REST (LCD, grpc-gateway) handler: rpc_type ``"cosmos-rest"``.

Plain HTTP under ``/cosmos/…``, ``/ibc/…``, ``/cosmwasm/…`` or a rollchain's own modules (port
1317). Every call is REST-like: its relay payload is the canonical JSON of method, path, query
and body (DESIGN §3.3, :mod:`rollups.rest`), and the relayer sends it back as that HTTP request.

Route names (what a spec prices and overrides): the HTTP verb, then the path segments up to the
version segment and one more, joined by dots — ``GET /cosmos/bank/v1beta1/balances/cosmos1…``
is ``get.cosmos.bank.v1beta1.balances``; ``POST /cosmos/tx/v1beta1/txs`` is
``post.cosmos.tx.v1beta1.txs``. Classes: every ``GET`` is a read; ``POST …/tx/v1beta1/txs``
(broadcast) is a write; ``POST`` simulate / encode / decode are reads that are never cached;
anything else is "method not found" (HTTP 501 from :func:`rollups.rest.rest_error`).

Cache: ``blocks/<height>`` final once the height is final, ``txs/<hash>`` final once found,
other reads briefly (``head_ttl``; a Cosmos REST query without a height header is about the
head). Health: ``GET …/tendermint/v1beta1/blocks/latest`` (height and chain id) and
``…/syncing``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from protocol.payload import RestRequest, rest_payload
from rollups.answers import FloorRule, answer_cap
from rollups.errors import (
    InvalidRequestError,
    MethodDeniedError,
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
from rollups.jsonrpc import cache_key
from rollups.rest import HttpRequest, is_rest_payload, parse_rest_call, query_params
from rollups.spec import ChainSpec

__all__ = ["CosmosRestHandler", "route_name"]

_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
_TX_BASE = "/cosmos/tx/v1beta1/"
_BLOCKS = "/cosmos/base/tendermint/v1beta1/blocks/"
_PATH_LATEST = "/cosmos/base/tendermint/v1beta1/blocks/latest"
_PATH_SYNCING = "/cosmos/base/tendermint/v1beta1/syncing"

#: POST routes that only read (never cached).
_POST_READS = frozenset(
    {
        "post.cosmos.tx.v1beta1.simulate",
        "post.cosmos.tx.v1beta1.decode",
        "post.cosmos.tx.v1beta1.encode",
    }
)
_POST_WRITES = frozenset({"post.cosmos.tx.v1beta1.txs"})

_LANDED_MARKERS = ("tx already exists in cache",)


def route_name(method: str, path: str) -> str | None:
    """The route name of a REST call, or ``None`` when the path has no usable route.

    >>> route_name("GET", "/cosmos/bank/v1beta1/balances/cosmos1abc")
    'get.cosmos.bank.v1beta1.balances'
    >>> route_name("POST", "/cosmos/tx/v1beta1/txs")
    'post.cosmos.tx.v1beta1.txs'
    """
    segments = [s for s in path.split("/") if s]
    version = next((i for i, s in enumerate(segments) if _VERSION.match(s)), None)
    if version is None or version == 0:
        return None
    chosen = segments[: version + 2]
    if not all(_SEGMENT.match(s) for s in chosen):
        return None
    return ".".join([method.lower(), *chosen])


def _grpc_error(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(data, dict):
        return False
    code = data.get("code")
    return isinstance(code, int) and code != 0 and "message" in data


def _dig(data: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


class CosmosRestHandler:
    """The Cosmos REST handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "cosmos-rest"

    # -- spec ------------------------------------------------------------------------------
    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems: list[str] = []
        if spec.network is None:
            problems.append(
                "network: missing — a Cosmos chain is identified by its chain id as the node "
                'reports it (block.header.chain_id), e.g. network = "rollchain-1"'
            )
        if spec.chain_id is not None:
            problems.append(
                "chain_id: Cosmos REST services are identified by `network` — remove `chain_id`"
            )
        if spec.arbitrum is not None:
            problems.append('arbitrum: only for rpc_type "arbitrum" — remove the [arbitrum] table')
        return tuple(problems)

    # -- parsing ---------------------------------------------------------------------------
    def _call(self, request: RestRequest, payload: bytes) -> Call:
        name = route_name(request.method, request.path)
        if name is None:
            raise MethodNotFoundError(
                f"Not Implemented: no Cosmos REST route for {request.method} {request.path}"
            )
        params = {
            "method": request.method,
            "path": request.path,
            "query": query_params(request.query),
        }
        return Call(method=name, params=params, id=None, raw=payload)

    def parse(self, payload: bytes, *, max_batch: int | None = None) -> ParsedRequest:
        return ParsedRequest(calls=(self.parse_relay(payload),), batch=False)

    def parse_relay(self, payload: bytes) -> Call:
        if not is_rest_payload(payload):
            raise InvalidRequestError(
                "invalid request: a Cosmos REST relay carries the canonical REST payload "
                '{"body","method","path","query"}, not JSON-RPC'
            )
        return self._call(parse_rest_call(payload), payload)

    def rest_call(self, spec: ChainSpec, request: RestRequest) -> Call:
        payload = rest_payload(request.method, request.path, request.query, request.body)
        return self._call(request, payload)

    def http_request(self, call: Call) -> HttpRequest | None:
        request = parse_rest_call(call.raw)
        return HttpRequest(request.method, request.path, request.query, request.body)

    # -- methods ---------------------------------------------------------------------------
    def _class(self, method: str) -> MethodClass | None:
        if method in _POST_WRITES:
            return MethodClass.WRITE
        if method in _POST_READS or method.startswith("get."):
            return MethodClass.READ
        return None

    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        cu = spec.compute_units.price(method)
        role = spec.role_for(method) or DEFAULT_ROLE
        cls = self._class(method)
        cacheable = method.startswith("get.")
        reason = ""
        override = spec.override_for(method)
        if override is not None:
            if override.method_class is not None and override.method_class is not cls:
                cls = override.method_class
                reason = "denied by the chain spec" if cls is MethodClass.DENIED else ""
            if override.cacheable is not None:
                cacheable = override.cacheable
        if cls is None:
            return MethodPolicy(method, MethodClass.DENIED, cu, role, False, False, "no such route")
        if cls is MethodClass.DENIED:
            return MethodPolicy(method, cls, cu, role, False, True, reason or "denied")
        return MethodPolicy(method, cls, cu, role, cacheable and cls is MethodClass.READ, True, "")

    def plan(self, spec: ChainSpec, call: Call, *, allow_writes: bool | None = None) -> CallPlan:
        policy = self.method_policy(spec, call.method)
        cls = policy.method_class
        if cls is MethodClass.DENIED:
            if not policy.known:
                raise MethodNotFoundError(f"Not Implemented: {call.method}")
            raise MethodDeniedError(
                f"the route {call.method} is not available on {spec.service_id}: {policy.reason}"
            )
        if cls is MethodClass.WRITE:
            allowed = spec.methods.allow_writes if allow_writes is None else allow_writes
            if not allowed:
                raise WritesDisabledError(
                    f"the route {call.method} is not available: this relay does not accept "
                    "transactions"
                )
        return CallPlan(
            call=call,
            method_class=cls,
            compute_units=policy.compute_units,
            role=policy.role,
            retry=self._retry(spec, cls),
        )

    def compute_units(self, spec: ChainSpec, call: Call) -> int:
        return spec.compute_units.price(call.method)

    def backend_role(self, spec: ChainSpec, call: Call) -> str:
        return spec.role_for(call.method) or DEFAULT_ROLE

    def _retry(self, spec: ChainSpec, cls: MethodClass) -> RetryPolicy:
        t = spec.timeouts
        if cls is MethodClass.READ:
            return RetryPolicy(RetryMode.ANY, hedge=True, timeout=t.default)
        if cls is MethodClass.WRITE:
            return RetryPolicy(RetryMode.UNSENT_ONLY, hedge=False, timeout=t.write)
        if cls is MethodClass.LONG_POLL:
            return RetryPolicy(RetryMode.ANY, hedge=False, timeout=t.long_poll)
        return RetryPolicy(RetryMode.NEVER, hedge=False, timeout=t.default)

    def retry_policy(self, spec: ChainSpec, call: Call) -> RetryPolicy:
        return self._retry(spec, self.method_policy(spec, call.method).method_class)

    def pinning(self, call: Call) -> Pinning | None:
        return None

    def read_handle(self, body: bytes) -> str | None:
        return None

    def subscription(self, call: Call) -> SubscriptionCall | None:
        return None

    def read_notification(self, body: bytes) -> str | None:
        return None

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        return body

    def notification_identity(self, body: bytes) -> bytes:
        return hashlib.sha256(body).digest()  # no subscriptions: never called for a push

    def write_landed(self, call: Call, body: bytes) -> bool:
        lower = body.lower()
        return any(marker.encode() in lower for marker in _LANDED_MARKERS)

    # -- caching ---------------------------------------------------------------------------
    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        policy = self.method_policy(spec, call.method)
        if policy.method_class is not MethodClass.READ or not policy.cacheable:
            return not_cached(f"{call.method}: not cacheable")
        request = parse_rest_call(call.raw)
        key = cache_key(spec.service_id, call.method, [request.path, request.query])
        ttl = spec.cache.head_ttl
        if request.path.startswith(_TX_BASE + "txs/"):
            return policy_for(key, Finality.FINAL, "a transaction by hash never changes", ttl)
        if request.path.startswith(_BLOCKS):
            tail = request.path[len(_BLOCKS) :]
            if tail.isdigit():
                height = int(tail)
                if heights.latest is not None and height > heights.latest:
                    return not_cached(f"height {height} is above the head {heights.latest}")
                if heights.finalized is not None and height <= heights.finalized:
                    return policy_for(key, Finality.FINAL, f"block {height} is final", ttl)
        return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", ttl)

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        policy = self.cache_policy(spec, call, heights)
        if policy.cacheable and _grpc_error(body):
            return not_cached("failures are never cached")
        return policy

    # -- headers, health, answers ----------------------------------------------------------
    def header_policy(self, spec: ChainSpec) -> HeaderPolicy:
        return _HEADERS

    def probe_requests(self, spec: ChainSpec) -> tuple[ProbeRequest, ...]:
        # ``body`` is the canonical payload (what a gateway relays); ``path`` + GET is what a
        # direct probe (rollups.health.probe) sends.
        return (
            ProbeRequest(
                "latest_block",
                rest_payload("GET", _PATH_LATEST, "", b""),
                http_method="GET",
                path=_PATH_LATEST,
            ),
            ProbeRequest(
                "syncing",
                rest_payload("GET", _PATH_SYNCING, "", b""),
                http_method="GET",
                path=_PATH_SYNCING,
            ),
        )

    def _latest(self, body: bytes) -> tuple[int | None, str | None]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, None
        for block in ("sdk_block", "block"):
            header = _dig(data, block, "header")
            if isinstance(header, dict):
                raw = header.get("height")
                chain = header.get("chain_id")
                height = int(raw) if isinstance(raw, str) and raw.isdigit() else None
                return height, chain if isinstance(chain, str) else None
        return None, None

    def read_height(self, body: bytes) -> int | None:
        return self._latest(body)[0]

    def read_health(self, spec: ChainSpec, answers: Mapping[str, ProbeAnswer | None]) -> Health:
        latest = answers.get("latest_block")
        if latest is None:
            return Health(False, None, None, "backend unreachable", HealthStatus.UNREACHABLE)
        height, chain = self._latest(latest.body) if latest.status == 200 else (None, None)
        if height is None or chain is None:
            return Health(
                False,
                height,
                chain,
                f"blocks/latest: no block header in the answer (HTTP {latest.status})",
                HealthStatus.BAD_ANSWER,
            )
        if spec.network is not None and chain != spec.network:
            return Health(
                False,
                height,
                chain,
                f"wrong chain: the node serves {chain!r}, {spec.service_id} is {spec.network!r}",
                HealthStatus.WRONG_CHAIN,
            )
        syncing = answers.get("syncing")
        if syncing is not None and syncing.status == 200:
            try:
                state = orjson.loads(syncing.body)
            except orjson.JSONDecodeError:
                state = None
            if isinstance(state, dict) and state.get("syncing") is True:
                return Health(
                    False, height, chain, f"syncing: at block {height}", HealthStatus.SYNCING
                )
        return Health(True, height, chain, "ok", HealthStatus.OK)

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=False)

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return None  # no client-visible head call is floored for this RPC type

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        raise NotImplementedError("no floored call: floor_rule is always None")

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        if status == 429 or (status >= 500 and status != 501):
            return AnswerCheck(status < 500, True, True, f"HTTP {status}")
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return AnswerCheck(False, False, True, f"not JSON (HTTP {status})")
        if status >= 400 or _grpc_error(body):
            return AnswerCheck(True, True, False, f"HTTP {status}: the request was refused")
        return AnswerCheck(True, False, False, "ok")


_HEADERS = HeaderPolicy(auth_scheme="bearer", auth_required=False)
