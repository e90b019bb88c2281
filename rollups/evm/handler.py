"""The EVM JSON-RPC handler (Ethereum L1 and plain EVM chains, rpc_type ``"evm"``).

Resolution of one method under one spec, in this order:

1. always denied (node administration: ``admin_``, ``personal_``, ``miner_``, ``engine_`` …,
   ``debug_setHead`` and the other node-changing ``debug_*``) — no spec can allow them;
2. the spec's override (``[methods.overrides]``), exact name or longest ``prefix*``;
3. the method table (:data:`rollups.evm.methods.EVM_METHODS`);
4. default-denied prefixes (``anvil_``, ``hardhat_``, ``evm_`` test methods, other ``debug_``);
5. otherwise unknown: refused as "method not found" (-32601), never given a default class.

Subclasses (:mod:`rollups.evm.optimism`, :mod:`rollups.evm.arbitrum`) add methods, default
roles and parameter checks by overriding the class attributes and :meth:`check_params`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from rollups.answers import FloorRule, answer_cap, floor_rule
from rollups.errors import (
    MethodDeniedError,
    MethodNotFoundError,
    WritesDisabledError,
)
from rollups.evm.blocks import BlockRef, block_ref, parse_quantity
from rollups.evm.cache import (
    Finality,
    answer_block_number,
    logs_finality,
    not_cached,
    policy_for,
    ref_finality,
)
from rollups.evm.methods import (
    ALWAYS_DENIED,
    ALWAYS_DENIED_PREFIXES,
    DEFAULT_DENIED_PREFIXES,
    EVM_METHODS,
    CacheRule,
    MethodInfo,
)
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
from rollups.spec import match_method

if TYPE_CHECKING:
    from rollups.spec import ChainSpec

__all__ = ["EvmHandler"]

_MEMO_LIMIT = 4096  # resolved methods kept per spec (unknown ones never)
_SPEC_LIMIT = 256  # specs remembered per handler

#: Error messages meaning a (re)sent transaction is already in the pool or on chain.
_LANDED_MARKERS = (
    "already known",
    "known transaction",
    "alreadyknown",
    "already imported",
    "transaction already exists",
    "nonce too low",
    "oldnonce",
)

#: Error messages that mean "this backend cannot answer now; another one may".
_RETRY_MARKERS = (
    "header not found",
    "unknown block",
    "missing trie node",
    "rate limit",
    "too many requests",
    "timeout",
    "timed out",
    "not synced",
    "syncing",
    "service unavailable",
)

_PROBE_CHAIN_ID = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
_PROBE_HEIGHT = b'{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber","params":[]}'
_PROBE_SYNCING = b'{"jsonrpc":"2.0","id":3,"method":"eth_syncing","params":[]}'


@dataclass(frozen=True, slots=True)
class _Resolved:
    policy: MethodPolicy
    rule: CacheRule
    block_arg: int | None


@dataclass(slots=True)
class _SpecTable:
    spec: ChainSpec
    methods: dict[str, _Resolved]
    retry: dict[MethodClass, RetryPolicy]


def _retry_of(spec: ChainSpec, cls: MethodClass) -> RetryPolicy:
    t = spec.timeouts
    if cls is MethodClass.READ:
        return RetryPolicy(RetryMode.ANY, hedge=True, timeout=t.default)
    if cls is MethodClass.WRITE:
        return RetryPolicy(RetryMode.UNSENT_ONLY, hedge=False, timeout=t.write)
    if cls is MethodClass.LONG_POLL:
        return RetryPolicy(RetryMode.ANY, hedge=False, timeout=t.long_poll)
    return RetryPolicy(RetryMode.NEVER, hedge=False, timeout=t.default)


class EvmHandler:
    """The EVM handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "evm"
    #: method → class and cache rule (subclasses extend it).
    methods: ClassVar[Mapping[str, MethodInfo]] = EVM_METHODS
    #: method or ``prefix*`` → backend role, used when the spec routes it nowhere.
    default_roles: ClassVar[Mapping[str, str]] = {}
    always_denied: ClassVar[frozenset[str]] = ALWAYS_DENIED
    always_denied_prefixes: ClassVar[Mapping[str, str]] = ALWAYS_DENIED_PREFIXES
    default_denied_prefixes: ClassVar[Mapping[str, str]] = DEFAULT_DENIED_PREFIXES

    # -- spec ------------------------------------------------------------------------------
    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems: list[str] = []
        if spec.chain_id is None:
            problems.append(f"chain_id: missing — rpc_type {self.rpc_type!r} needs an EVM chain id")
        if spec.network is not None:
            problems.append("network: EVM services are identified by chain_id — remove `network`")
        if spec.arbitrum is not None and self.rpc_type != "arbitrum":
            problems.append('arbitrum: only for rpc_type "arbitrum" — remove the [arbitrum] table')
        for name, override in spec.methods.overrides.items():
            if override.method_class not in (None, MethodClass.DENIED):
                reason = self._never_allowable(name)
                if reason:
                    problems.append(f"methods.overrides.{name}: {reason} — remove this override")
            if override.cacheable and override.method_class not in (None, MethodClass.READ):
                problems.append(
                    f"methods.overrides.{name}: only reads can be cacheable — "
                    "drop `cacheable` or make it a read"
                )
        return tuple(problems)

    def _never_allowable(self, name: str) -> str | None:
        """Why an override naming ``name`` (a method or ``prefix*``) may not allow it."""
        if name.endswith("*"):
            prefix = name[:-1]
            for denied, reason in self.always_denied_prefixes.items():
                if denied.startswith(prefix) or prefix.startswith(denied):
                    return f"{denied}* is always denied ({reason})"
            for method in self.always_denied:
                if method.startswith(prefix):
                    return f"it would allow {method}, which is always denied"
            return None
        return self._always_denied_reason(name)

    def _always_denied_reason(self, method: str) -> str | None:
        if method in self.always_denied:
            return f"{method} is always denied (node administration)"
        for prefix, reason in self.always_denied_prefixes.items():
            if method.startswith(prefix):
                return reason
        return None

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, payload: bytes, *, max_batch: int | None = None) -> ParsedRequest:
        return parse_payload(payload, max_batch)

    def parse_relay(self, payload: bytes) -> Call:
        return parse_single(payload)

    # -- methods ---------------------------------------------------------------------------
    def __init__(self) -> None:
        # id(spec) -> what was resolved for it. Holding the spec keeps its id unique.
        self._tables: dict[int, _SpecTable] = {}

    def _table(self, spec: ChainSpec) -> _SpecTable:
        table = self._tables.get(id(spec))
        if table is None or table.spec is not spec:
            if len(self._tables) >= _SPEC_LIMIT:
                self._tables.clear()
            table = _SpecTable(spec, {}, {cls: _retry_of(spec, cls) for cls in MethodClass})
            self._tables[id(spec)] = table
        return table

    def _resolve(self, spec: ChainSpec, method: str) -> _Resolved:
        methods = self._table(spec).methods
        hit = methods.get(method)
        if hit is not None:
            return hit
        resolved = self._resolve_uncached(spec, method)
        if resolved.policy.known and len(methods) < _MEMO_LIMIT:
            methods[method] = resolved
        return resolved

    def _role(self, spec: ChainSpec, method: str) -> str:
        role = spec.role_for(method)
        if role is not None:
            return role
        key = match_method(self.default_roles, method)
        return DEFAULT_ROLE if key is None else self.default_roles[key]

    def _resolve_uncached(self, spec: ChainSpec, method: str) -> _Resolved:
        cu = spec.compute_units.price(method)
        role = self._role(spec, method)

        def denied(reason: str, known: bool = True) -> _Resolved:
            policy = MethodPolicy(method, MethodClass.DENIED, cu, role, False, known, reason)
            return _Resolved(policy, CacheRule.NEVER, None)

        reason = self._always_denied_reason(method)
        if reason:
            return denied(reason)
        info = self.methods.get(method)
        cls: MethodClass | None = info.method_class if info else None
        rule = info.cache if info else CacheRule.NEVER
        block_arg = info.block_arg if info else None
        why = info.reason if info else ""
        if info is None:
            key = match_method(
                {p + "*": r for p, r in self.default_denied_prefixes.items()}, method
            )
            if key is not None:
                cls, why = MethodClass.DENIED, self.default_denied_prefixes[key[:-1]]
        override = spec.override_for(method)
        if override is not None:
            if override.method_class is not None and override.method_class is not cls:
                cls = override.method_class
                why = "denied by the chain spec" if cls is MethodClass.DENIED else ""
                if cls is not MethodClass.READ or info is None:
                    rule = CacheRule.NEVER
            if override.cacheable is True and rule is CacheRule.NEVER:
                rule = CacheRule.HEAD
            elif override.cacheable is False:
                rule = CacheRule.NEVER
        if cls is None:
            return denied("method not found", known=False)
        if cls is MethodClass.DENIED:
            return denied(why or "denied")
        cacheable = cls is MethodClass.READ and rule is not CacheRule.NEVER
        policy = MethodPolicy(method, cls, cu, role, cacheable, True, "")
        return _Resolved(policy, rule if cacheable else CacheRule.NEVER, block_arg)

    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        return self._resolve(spec, method).policy

    def check_params(self, spec: ChainSpec, call: Call) -> None:
        """Refuse params this chain cannot serve (raise ``InvalidParamsError``); hook."""

    def plan(self, spec: ChainSpec, call: Call, *, allow_writes: bool | None = None) -> CallPlan:
        policy = self._resolve(spec, call.method).policy
        cls = policy.method_class
        if cls is MethodClass.DENIED:
            if not policy.known:
                raise MethodNotFoundError(
                    f"the method {call.method} does not exist/is not available"
                )
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
        self.check_params(spec, call)
        return CallPlan(
            call=call,
            method_class=cls,
            compute_units=policy.compute_units,
            role=policy.role,
            retry=self._retry(spec, cls),
            pinning=self.pinning(call),
            subscription=self.subscription(call),
        )

    def compute_units(self, spec: ChainSpec, call: Call) -> int:
        return self._resolve(spec, call.method).policy.compute_units

    def backend_role(self, spec: ChainSpec, call: Call) -> str:
        return self._resolve(spec, call.method).policy.role

    def _retry(self, spec: ChainSpec, cls: MethodClass) -> RetryPolicy:
        return self._table(spec).retry[cls]

    def retry_policy(self, spec: ChainSpec, call: Call) -> RetryPolicy:
        return self._retry(spec, self._resolve(spec, call.method).policy.method_class)

    def pinning(self, call: Call) -> Pinning | None:
        method = call.method
        if method in ("eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter"):
            return Pinning(creates=True, handle=None)
        if method in ("eth_getFilterChanges", "eth_getFilterLogs", "eth_uninstallFilter"):
            params = call.param_list
            handle = params[0] if params and isinstance(params[0], str) else None
            return Pinning(creates=False, handle=handle, releases=method == "eth_uninstallFilter")
        return None

    def read_handle(self, body: bytes) -> str | None:
        try:
            result = answer_result(body)
        except ValueError:
            return None
        return result if isinstance(result, str) else None

    def subscription(self, call: Call) -> SubscriptionCall | None:
        params = call.param_list
        first = params[0] if params and isinstance(params[0], str) else None
        if call.method == "eth_subscribe":
            return SubscriptionCall(subscribe=True, topic=first)
        if call.method == "eth_unsubscribe":
            return SubscriptionCall(subscribe=False, subscription_id=first)
        return None

    def read_notification(self, body: bytes) -> str | None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("method") != "eth_subscription":
            return None
        params = data.get("params")
        sub = params.get("subscription") if isinstance(params, dict) else None
        return sub if isinstance(sub, str) else None

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        if self.read_notification(body) is None:
            return body  # not a pushed message: nothing to rewrite
        data = orjson.loads(body)
        data["params"]["subscription"] = subscription_id
        return orjson.dumps(data)

    def notification_identity(self, body: bytes) -> bytes:
        """A log by (block hash, log index, removed); a head by its hash; else the result."""
        try:
            data = orjson.loads(body)
            result = data["params"]["result"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return hashlib.sha256(body).digest()
        if isinstance(result, dict):
            ident: tuple[object, ...]
            if "logIndex" in result:
                ident = (result.get("blockHash"), result.get("logIndex"), result.get("removed"))
            elif "hash" in result:
                ident = ("head", result.get("hash"))
            else:
                ident = ("obj", orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode())
            return hashlib.sha256(orjson.dumps(ident)).digest()
        return hashlib.sha256(orjson.dumps(result)).digest()

    def write_landed(self, call: Call, body: bytes) -> bool:
        """True when a retried write's answer is an error meaning the first try landed
        ("already known", "nonce too low", …). A success answer returns False: the retry
        itself landed, and the caller knows that already."""
        error = answer_error(body)
        if error is None:
            return False
        message = error[1].lower()
        return any(marker in message for marker in _LANDED_MARKERS)

    # -- caching ---------------------------------------------------------------------------
    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        resolved = self._resolve(spec, call.method)
        policy = resolved.policy
        if policy.method_class is not MethodClass.READ:
            return not_cached(f"{policy.method_class.value} calls are never cached")
        if not policy.cacheable:
            return not_cached(f"{call.method}: node-local or pending answers are never cached")
        key = cache_key(spec.service_id, call.method, call.params)
        head_ttl = spec.cache.head_ttl
        rule = resolved.rule
        if rule is CacheRule.FOREVER:
            return policy_for(key, Finality.FINAL, f"{call.method} never changes", head_ttl)
        if rule is CacheRule.HEAD:
            return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", head_ttl)
        if rule is CacheRule.HASH:
            return policy_for(key, Finality.FINAL, "pinned by block hash", head_ttl)
        if rule is CacheRule.TX:
            # Look-up only: the stored entry's ttl was decided by its answer (store_policy).
            return CachePolicy(True, key, None, "decided by the answer's blockNumber")
        params = call.param_list
        if rule is CacheRule.LOGS:
            finality, reason = logs_finality(params, heights)
        else:
            arg = resolved.block_arg or 0
            ref = block_ref(params[arg] if len(params) > arg else None)
            finality, reason = ref_finality(ref, heights)
        return policy_for(key, finality, reason, head_ttl)

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        policy = self.cache_policy(spec, call, heights)
        if not policy.cacheable:
            return policy
        if not is_cacheable_answer(body):
            return not_cached("failures and null results are never cached")
        rule = self._resolve(spec, call.method).rule
        if rule in (CacheRule.TX, CacheRule.HASH) and policy.key is not None:
            number = answer_block_number(answer_result(body))
            if number is None:
                if rule is CacheRule.TX:
                    return not_cached("the transaction is not mined yet")
                return policy
            finality, reason = ref_finality(BlockRef("number", number=number), heights)
            return policy_for(policy.key, finality, reason, spec.cache.head_ttl)
        return policy

    # -- headers, health, answers ----------------------------------------------------------
    def header_policy(self, spec: ChainSpec) -> HeaderPolicy:
        return _EVM_HEADERS

    def probe_requests(self, spec: ChainSpec) -> tuple[ProbeRequest, ...]:
        return (
            ProbeRequest("chain_id", _PROBE_CHAIN_ID),
            ProbeRequest("height", _PROBE_HEIGHT),
            ProbeRequest("syncing", _PROBE_SYNCING),
        )

    def read_height(self, body: bytes) -> int | None:
        try:
            return parse_quantity(answer_result(body))
        except ValueError:
            return None

    def read_health(self, spec: ChainSpec, answers: Mapping[str, ProbeAnswer | None]) -> Health:
        chain_answer = answers.get("chain_id")
        height_answer = answers.get("height")
        if chain_answer is None or height_answer is None:
            return Health(False, None, None, "backend unreachable", HealthStatus.UNREACHABLE)
        chain_id = self.read_height(chain_answer.body) if chain_answer.status == 200 else None
        height = self.read_height(height_answer.body) if height_answer.status == 200 else None
        if chain_id is None:
            return Health(
                False,
                height,
                None,
                f"eth_chainId: no chain id in the answer (HTTP {chain_answer.status})",
                HealthStatus.BAD_ANSWER,
            )
        if spec.chain_id is not None and chain_id != spec.chain_id:
            return Health(
                False,
                height,
                str(chain_id),
                f"wrong chain: the backend serves chain id {chain_id}, "
                f"{spec.service_id} is chain id {spec.chain_id}",
                HealthStatus.WRONG_CHAIN,
            )
        if height is None:
            return Health(
                False,
                None,
                str(chain_id),
                f"eth_blockNumber: no height in the answer (HTTP {height_answer.status})",
                HealthStatus.BAD_ANSWER,
            )
        syncing = answers.get("syncing")
        if syncing is not None and syncing.status == 200:
            try:
                state: Any = answer_result(syncing.body)
            except ValueError:
                state = False  # eth_syncing unsupported: not a reason to call it unhealthy
            if isinstance(state, dict):
                highest = parse_quantity(state.get("highestBlock"))
                return Health(
                    False,
                    height,
                    str(chain_id),
                    f"syncing: at block {height} of {highest}",
                    HealthStatus.SYNCING,
                )
        return Health(True, height, str(chain_id), "ok", HealthStatus.OK)

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=call.method.startswith(_LARGE_ANSWERS))

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return floor_rule(spec) if call.method == "eth_blockNumber" else None

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        return b'{"jsonrpc":"2.0","id":' + raw_id + b',"result":"' + hex(height).encode() + b'"}'

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
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
            code in (-32005, -32603, -32601, 429)
            or status == 429
            or status >= 500
            or any(marker in lower for marker in _RETRY_MARKERS)
        )
        return AnswerCheck(True, True, retry, f"error {code}: {message}")


# Methods whose answers may be large (traces and logs): ``spec.answers.large_max_bytes``.
_LARGE_ANSWERS = ("debug_trace", "trace_", "arbtrace_", "eth_getLogs", "eth_getFilterLogs")

_EVM_HEADERS = HeaderPolicy(auth_scheme="bearer", auth_required=False)
