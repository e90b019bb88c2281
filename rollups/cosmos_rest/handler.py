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

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from protocol.payload import RestRequest, rest_payload
from rollups.base import Resolved, TableHandler
from rollups.errors import InvalidRequestError, MethodNotFoundError
from rollups.finality import Finality, height_finality, not_cached, policy_for
from rollups.handler import (
    AnswerCheck,
    Call,
    Health,
    HealthStatus,
    ProbeRequest,
)
from rollups.jsonrpc import cache_key
from rollups.methods import CacheRule, MethodClass, MethodInfo
from rollups.rest import HttpRequest, is_rest_payload, parse_rest_call, query_params
from rollups.spec import ChainSpec

if TYPE_CHECKING:
    from rollups.handler import CachePolicy, Heights, ProbeAnswer

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

_GET = MethodInfo(MethodClass.READ, CacheRule.HEAD)
_POST_READ = MethodInfo(MethodClass.READ)
_POST_WRITE = MethodInfo(MethodClass.WRITE)


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


class CosmosRestHandler(TableHandler):
    """The Cosmos REST handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "cosmos-rest"
    noun: ClassVar[str] = "route"
    not_found: ClassVar[str] = "Not Implemented: {method}"
    volatile: ClassVar[str] = "not cacheable"
    reported_as: ClassVar[str] = "block.header.chain_id"
    example: ClassVar[str] = "rollchain-1"

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
    def info(self, method: str) -> MethodInfo | None:
        """Every ``GET`` route is a read; broadcast is a write; simulate / encode / decode are
        reads never cached; other routes are unknown."""
        if method in _POST_WRITES:
            return _POST_WRITE
        if method in _POST_READS:
            return _POST_READ
        return _GET if method.startswith("get.") else None

    # -- caching ---------------------------------------------------------------------------
    def cache_key(self, spec: ChainSpec, call: Call) -> str:
        request = parse_rest_call(call.raw)
        return cache_key(spec.service_id, call.method, [request.path, request.query])

    def decide_cache(
        self, spec: ChainSpec, call: Call, resolved: Resolved, key: str, heights: Heights
    ) -> CachePolicy:
        path = parse_rest_call(call.raw).path
        ttl = spec.cache.head_ttl
        if path.startswith(_TX_BASE + "txs/"):
            return policy_for(key, Finality.FINAL, "a transaction by hash never changes", ttl)
        tail = path[len(_BLOCKS) :] if path.startswith(_BLOCKS) else ""
        if tail.isdigit():
            height = int(tail)
            finality, reason = height_finality(height, heights)
            if finality is Finality.NEVER:
                return not_cached(reason)
            if finality is Finality.FINAL:
                return policy_for(key, finality, f"block {height} is final", ttl)
        return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", ttl)

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        policy = self.cache_policy(spec, call, heights)
        if policy.cacheable and _grpc_error(body):
            return not_cached("failures are never cached")
        return policy

    # -- headers, health, answers ----------------------------------------------------------
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
            return Health.failed(HealthStatus.UNREACHABLE, "backend unreachable")
        height, chain = self._latest(latest.body) if latest.status == 200 else (None, None)
        if height is None or chain is None:
            reason = f"blocks/latest: no block header in the answer (HTTP {latest.status})"
            return Health.failed(HealthStatus.BAD_ANSWER, reason, height, chain)
        wrong = self.served_health(spec, height, chain)
        if wrong is not None:
            return wrong
        syncing = answers.get("syncing")
        if syncing is not None and syncing.status == 200:
            try:
                state = orjson.loads(syncing.body)
            except orjson.JSONDecodeError:
                state = None
            if isinstance(state, dict) and state.get("syncing") is True:
                reason = f"syncing: at block {height}"
                return Health.failed(HealthStatus.SYNCING, reason, height, chain)
        return Health(True, height, chain, "ok", HealthStatus.OK)

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
