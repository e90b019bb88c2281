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
from typing import Any, ClassVar

import orjson

from rollups.answers import FloorRule, answer_cap
from rollups.celestia.methods import (
    ADMIN_PREFIXES,
    METHODS,
    REMOVED_MODULES,
    CacheRule,
    MethodInfo,
)
from rollups.errors import (
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
from rollups.jsonrpc import (
    answer_error,
    answer_result,
    cache_key,
    decode_answer,
    is_cacheable_answer,
    parse_payload,
    parse_single,
)
from rollups.spec import ChainSpec

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
_LANDED_MARKERS = ("tx already exists in cache", "already exists", "account sequence mismatch")


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


class CelestiaHandler:
    """The celestia-node handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "celestia"
    methods: ClassVar[Mapping[str, MethodInfo]] = METHODS

    # -- spec ------------------------------------------------------------------------------
    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems: list[str] = []
        if spec.network is None:
            problems.append(
                "network: missing — a Celestia node is identified by header.chain_id, "
                'e.g. network = "celestia" or "mocha-4"'
            )
        if spec.chain_id is not None:
            problems.append("chain_id: Celestia networks are identified by `network` — remove it")
        if spec.arbitrum is not None:
            problems.append('arbitrum: only for rpc_type "arbitrum" — remove the [arbitrum] table')
        for name, override in spec.methods.overrides.items():
            if override.method_class in (None, MethodClass.DENIED):
                continue
            reason = self._never_allowable(name)
            if reason:
                problems.append(f"methods.overrides.{name}: {reason} — remove this override")
        return tuple(problems)

    def _never_allowable(self, name: str) -> str | None:
        prefix = name[:-1] if name.endswith("*") else None
        for denied in ADMIN_PREFIXES:
            if name.startswith(denied) or (prefix is not None and denied.startswith(prefix)):
                return f"{denied}* is node administration and always denied"
        for removed in REMOVED_MODULES:
            if name.startswith(removed) or (prefix is not None and removed.startswith(prefix)):
                return f"the {removed[:-1]} module no longer exists in celestia-node"
        for method, info in METHODS.items():
            if info.method_class is MethodClass.DENIED and (
                method == name or (prefix is not None and method.startswith(prefix))
            ):
                return f"{method} is an admin method and always denied"
        return None

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, payload: bytes, *, max_batch: int | None = None) -> ParsedRequest:
        return parse_payload(payload, max_batch)

    def parse_relay(self, payload: bytes) -> Call:
        return parse_single(payload)

    # -- methods ---------------------------------------------------------------------------
    def _info(self, method: str) -> MethodInfo | None:
        return self.methods.get(method)

    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        cu = spec.compute_units.price(method)
        role = spec.role_for(method) or DEFAULT_ROLE
        info = self._info(method)
        if any(method.startswith(p) for p in ADMIN_PREFIXES):
            return MethodPolicy(method, MethodClass.DENIED, cu, role, False, True, "admin method")
        if info is not None and info.method_class is MethodClass.DENIED:
            return MethodPolicy(method, MethodClass.DENIED, cu, role, False, True, "admin method")
        if any(method.startswith(p) for p in REMOVED_MODULES):
            return MethodPolicy(
                method, MethodClass.DENIED, cu, role, False, False, "module removed from the node"
            )
        cls = info.method_class if info else None
        cacheable = info is not None and info.cache is not CacheRule.NEVER
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
                raise MethodNotFoundError(f"method '{call.method}' not found")
            raise MethodDeniedError(
                f"the method {call.method} is not available on {spec.service_id}: {policy.reason}"
            )
        if cls is MethodClass.WRITE:
            allowed = spec.methods.allow_writes if allow_writes is None else allow_writes
            if not allowed:
                raise WritesDisabledError(
                    f"the method {call.method} is not available: it spends the node operator's "
                    "wallet and this relay does not accept writes"
                )
        return CallPlan(
            call=call,
            method_class=cls,
            compute_units=policy.compute_units,
            role=policy.role,
            retry=self._retry(spec, cls),
            pinning=None,
            subscription=self.subscription(call),
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
        info = self._info(call.method)
        if info is None or info.method_class is not MethodClass.SUBSCRIPTION:
            return None
        params = call.param_list
        topic = call.method
        if params and isinstance(params[0], str):
            topic = f"{call.method}:{params[0]}"  # blob.Subscribe(namespace)
        return SubscriptionCall(subscribe=True, topic=topic)

    def read_notification(self, body: bytes) -> str | None:
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

    def notification_identity(self, body: bytes) -> bytes:
        """A channel message by its value (the channel id is each node's own)."""
        try:
            data = orjson.loads(body)
            value = data["params"][1:]
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return hashlib.sha256(body).digest()
        return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()

    def write_landed(self, call: Call, body: bytes) -> bool:
        error = answer_error(body)
        if error is None:
            return False
        return any(marker in error[1].lower() for marker in _LANDED_MARKERS)

    # -- caching ---------------------------------------------------------------------------
    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        policy = self.method_policy(spec, call.method)
        if policy.method_class is not MethodClass.READ:
            return not_cached(f"{policy.method_class.value} calls are never cached")
        if not policy.cacheable:
            return not_cached(f"{call.method}: node-local or volatile answers are never cached")
        info = self._info(call.method)
        rule = info.cache if info is not None else CacheRule.HEAD
        key = cache_key(spec.service_id, call.method, call.params)
        ttl = spec.cache.head_ttl
        if rule is CacheRule.FINAL:
            return policy_for(key, Finality.FINAL, f"{call.method} is addressed by hash", ttl)
        if rule is CacheRule.HEAD or info is None or info.arg is None:
            return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", ttl)
        params = call.param_list
        height = _height_arg(params[info.arg]) if len(params) > info.arg else None
        if height is None:
            return not_cached(f"{call.method}: unreadable height argument")
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
            return Health(False, None, None, "backend unreachable", HealthStatus.UNREACHABLE)
        height, chain, problem = self._read(local if local is not None else network)
        if problem:
            return Health(
                False, height, chain, f"header.LocalHead: {problem}", HealthStatus.BAD_ANSWER
            )
        if spec.network is not None and chain != spec.network:
            return Health(
                False,
                height,
                chain,
                f"wrong chain: the node serves {chain!r}, {spec.service_id} is {spec.network!r}",
                HealthStatus.WRONG_CHAIN,
            )
        if local is not None and network is not None:
            net_height, net_chain, net_problem = self._read(network)
            if not net_problem and net_chain == chain and net_height is not None:
                assert height is not None
                if net_height - height > SYNC_TOLERANCE:
                    return Health(
                        False,
                        height,
                        chain,
                        f"syncing: local head {height}, network head {net_height}",
                        HealthStatus.SYNCING,
                    )
        return Health(True, height, chain, "ok", HealthStatus.OK)

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=False)

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return None  # no client-visible head call is floored for this RPC type

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        raise NotImplementedError("no floored call: floor_rule is always None")

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        if status == 401:
            return AnswerCheck(
                False, False, True, "the node refused the relayer's token (HTTP 401)"
            )
        data = decode_answer(body)
        if data is None:
            retry = status >= 500 or status == 429 or status == 200
            return AnswerCheck(False, False, retry, f"not a JSON-RPC answer (HTTP {status})")
        if not call.notification and data.get("id") != call.id:
            return AnswerCheck(False, False, True, "the answer's id does not match the request")
        error = answer_error(body)
        if error is None:
            return AnswerCheck(True, False, False, "ok")
        code, message = error
        lower = message.lower()
        retry = (
            "missing permission" in lower  # the relayer's token is too weak: its problem
            or status == 429
            or status >= 500
            or any(marker in lower for marker in _RETRY_MARKERS)
        )
        return AnswerCheck(True, True, retry, f"error {code}: {message}")


_HEADERS = HeaderPolicy(auth_scheme="bearer", auth_required=True)
