"""The table-driven handler every RPC type builds on: the defaults, and ``plan()`` as a template.

A handler names its RPC type, gives its method table (:class:`~rollups.methods.MethodInfo` by
method) and overrides only what differs. The base resolves a method under a spec in one order:

1. :meth:`TableHandler.refused` — never relayable whatever the spec says (node
   administration, removed modules); ``known`` tells "denied" from "method not found";
2. :meth:`TableHandler.info` — the table entry (default: ``methods[method]``);
3. the spec's override (``[methods.overrides]``): class and cacheability;
4. no class at all: unknown, refused as "method not found".

``plan()`` then refuses denied methods, writes when writes are off, and whatever
:meth:`TableHandler.check_params` refuses, in that order; the refusals' wording comes from the
class attributes (``noun``, ``not_found``, ``writes_refused``). Resolutions are remembered per
spec. Caching asks :meth:`TableHandler.decide_cache` only for reads that may be cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rollups.answers import FloorRule, answer_cap
from rollups.errors import MethodDeniedError, MethodNotFoundError, WritesDisabledError
from rollups.finality import not_cached
from rollups.handler import (
    AnswerCheck,
    CachePolicy,
    Call,
    CallPlan,
    HeaderPolicy,
    Health,
    HealthStatus,
    Heights,
    MethodPolicy,
    Pinning,
    RetryMode,
    RetryPolicy,
    SubscriptionCall,
)
from rollups.jsonrpc import (
    cache_key,
    decode_answer,
    error_of,
    is_cacheable_answer,
    parse_single,
)
from rollups.methods import DEFAULT_ROLE, CacheRule, MethodClass, MethodInfo
from rollups.spec import match_method

if TYPE_CHECKING:
    from rollups.spec import ChainSpec

__all__ = ["Resolved", "TableHandler", "retry_of"]

_OK = AnswerCheck(True, False, False, "ok")  # a well-formed answer without an error
_DENIED, _WRITE = MethodClass.DENIED, MethodClass.WRITE  # (an enum's attribute costs a lookup)
_MEMO_LIMIT = 4096  # resolved methods kept per spec (unknown ones never)
_SPEC_LIMIT = 256  # specs remembered per handler


@dataclass(frozen=True, slots=True)
class Resolved:
    """A method resolved under one spec: its policy and the cache rule that applies."""

    policy: MethodPolicy
    rule: CacheRule
    info: MethodInfo | None


@dataclass(slots=True)
class _SpecTable:
    spec: ChainSpec
    methods: dict[str, Resolved]
    retry: dict[MethodClass, RetryPolicy]


def retry_of(spec: ChainSpec, cls: MethodClass) -> RetryPolicy:
    """Retry, hedging and timeout of a method class under ``spec``."""
    t = spec.timeouts
    if cls is MethodClass.READ:
        return RetryPolicy(RetryMode.ANY, hedge=True, timeout=t.default)
    if cls is MethodClass.WRITE:
        return RetryPolicy(RetryMode.UNSENT_ONLY, hedge=False, timeout=t.write)
    if cls is MethodClass.LONG_POLL:
        return RetryPolicy(RetryMode.ANY, hedge=False, timeout=t.long_poll)
    return RetryPolicy(RetryMode.NEVER, hedge=False, timeout=t.default)


class TableHandler:
    """Defaults of an :class:`~rollups.handler.RpcHandler`; see the module docstring."""

    rpc_type: ClassVar[str]
    #: method → class and cache rule.
    methods: ClassVar[Mapping[str, MethodInfo]] = {}
    #: method or ``prefix*`` → backend role, used when the spec routes it nowhere.
    default_roles: ClassVar[Mapping[str, str]] = {}
    headers: ClassVar[HeaderPolicy] = HeaderPolicy(auth_scheme="bearer", auth_required=False)
    #: What a refusal calls a method ("method", "route").
    noun: ClassVar[str] = "method"
    #: The "method not found" message, as the RPC type's own nodes word it.
    not_found: ClassVar[str] = "the method {method} does not exist/is not available"
    #: Why a write is refused when writes are off.
    writes_refused: ClassVar[str] = "this relay does not accept transactions"
    #: Why a read that is never cacheable is not cached.
    volatile: ClassVar[str] = "node-local or volatile answers are never cached"
    #: The spec field that names the chain a backend must serve ("chain_id" or "network"), where
    #: a node reports it, and an example value (for the "missing" message).
    identity_field: ClassVar[str] = "network"
    reported_as: ClassVar[str] = ""
    example: ClassVar[str] = ""
    #: Health when a backend serves another chain (``{served}``, ``{service}``, ``{identity}``).
    wrong_chain: ClassVar[str] = (
        "wrong chain: the node serves {served!r}, {service} is {identity!r}"
    )

    def __init__(self) -> None:
        # id(spec) -> what was resolved for it. Holding the spec keeps its id unique.
        self._tables: dict[int, _SpecTable] = {}

    # -- what subclasses give --------------------------------------------------------------
    def never_allowable(self, name: str) -> str | None:
        """Why a spec override naming ``name`` (a method or ``prefix*``) may not allow it."""
        return None

    def refused(self, method: str) -> tuple[str, bool] | None:
        """``(reason, known)`` when no spec may relay ``method``; else None."""
        return None

    def info(self, method: str) -> MethodInfo | None:
        """The table entry of ``method`` (None: not in the table)."""
        return self.methods.get(method)

    def check_params(self, spec: ChainSpec, call: Call) -> None:
        """Refuse a call this chain cannot serve (raise a ``RequestError``); hook."""

    def decide_cache(
        self, spec: ChainSpec, call: Call, resolved: Resolved, key: str, heights: Heights
    ) -> CachePolicy:
        """The cache policy of a read that may be cached; default: by the rule alone."""
        from rollups.finality import Finality, policy_for

        ttl = spec.cache.head_ttl
        if resolved.rule is CacheRule.FINAL:
            return policy_for(key, Finality.FINAL, f"{call.method} never changes", ttl)
        return policy_for(key, Finality.BRIEF, f"{call.method} follows the head", ttl)

    def cache_key(self, spec: ChainSpec, call: Call) -> str:
        return cache_key(spec.service_id, call.method, call.params)

    # -- spec ------------------------------------------------------------------------------
    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems: list[str] = []
        field, other = self.identity_field, "network"
        if field == "network":
            other = "chain_id"
            needs = f"the chain id its nodes report ({self.reported_as}), e.g. {self.example!r}"
        else:
            needs = "an EVM chain id"
        if getattr(spec, field) is None:
            problems.append(f"{field}: missing — rpc_type {self.rpc_type!r} needs {needs}")
        if getattr(spec, other) is not None:
            problems.append(
                f"{other}: rpc_type {self.rpc_type!r} is identified by `{field}` — remove `{other}`"
            )
        if spec.arbitrum is not None and self.rpc_type != "arbitrum":
            problems.append('arbitrum: only for rpc_type "arbitrum" — remove the [arbitrum] table')
        for name, override in spec.methods.overrides.items():
            if override.method_class not in (None, MethodClass.DENIED):
                reason = self.never_allowable(name)
                if reason:
                    problems.append(f"methods.overrides.{name}: {reason} — remove this override")
        return tuple(problems)

    # -- methods ---------------------------------------------------------------------------
    def resolve(self, spec: ChainSpec, method: str) -> Resolved:
        """``method`` under ``spec`` (remembered per spec)."""
        table = self._table(spec)
        hit = table.methods.get(method)
        if hit is not None:
            return hit
        resolved = self._resolve(spec, method)
        if resolved.policy.known and len(table.methods) < _MEMO_LIMIT:
            table.methods[method] = resolved
        return resolved

    def _table(self, spec: ChainSpec) -> _SpecTable:
        table = self._tables.get(id(spec))
        if table is None or table.spec is not spec:
            if len(self._tables) >= _SPEC_LIMIT:
                self._tables.clear()
            table = _SpecTable(spec, {}, {cls: retry_of(spec, cls) for cls in MethodClass})
            self._tables[id(spec)] = table
        return table

    def _role(self, spec: ChainSpec, method: str) -> str:
        role = spec.role_for(method)
        if role is not None:
            return role
        key = match_method(self.default_roles, method)
        return DEFAULT_ROLE if key is None else self.default_roles[key]

    def _resolve(self, spec: ChainSpec, method: str) -> Resolved:
        cu = spec.compute_units.price(method)
        role = self._role(spec, method)

        def denied(reason: str, known: bool = True) -> Resolved:
            policy = MethodPolicy(method, MethodClass.DENIED, cu, role, False, known, reason)
            return Resolved(policy, CacheRule.NEVER, None)

        refusal = self.refused(method)
        if refusal is not None:
            return denied(*refusal)
        info = self.info(method)
        cls = info.method_class if info else None
        rule = info.cache if info else CacheRule.NEVER
        why = info.reason if info else ""
        override = spec.override_for(method)
        if override is not None:
            if override.method_class is not None and override.method_class is not cls:
                cls = override.method_class
                why = "denied by the chain spec" if cls is MethodClass.DENIED else ""
                if cls is not MethodClass.READ:
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
        return Resolved(policy, rule if cacheable else CacheRule.NEVER, info)

    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        return self.resolve(spec, method).policy

    def plan(self, spec: ChainSpec, call: Call, *, allow_writes: bool | None = None) -> CallPlan:
        table = self._table(spec)
        resolved = table.methods.get(call.method) or self.resolve(spec, call.method)
        policy = resolved.policy
        cls = policy.method_class
        if cls is _DENIED:
            if not policy.known:
                raise MethodNotFoundError(self.not_found.format(method=call.method))
            raise MethodDeniedError(
                f"the {self.noun} {call.method} is not available on {spec.service_id}: "
                f"{policy.reason}"
            )
        if cls is _WRITE:
            allowed = spec.methods.allow_writes if allow_writes is None else allow_writes
            if not allowed:
                raise WritesDisabledError(
                    f"the {self.noun} {call.method} is not available: {self.writes_refused}"
                )
        self.check_params(spec, call)
        return CallPlan(
            call,
            cls,
            policy.compute_units,
            policy.role,
            table.retry[cls],
            self.pinning(call),
            self.subscription(call),
        )

    def compute_units(self, spec: ChainSpec, call: Call) -> int:
        return self.resolve(spec, call.method).policy.compute_units

    def parse_relay(self, payload: bytes) -> Call:
        return parse_single(payload)

    def pinning(self, call: Call) -> Pinning | None:
        """Stateful calls: which node-local handle they create, use or release."""
        return None

    def read_handle(self, body: bytes) -> str | None:
        return None

    def subscription(self, call: Call) -> SubscriptionCall | None:
        return None

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        return body

    def notification_identity(self, body: bytes) -> bytes:
        """The same event on two suppliers' streams; default: the message itself (an RPC type
        without subscriptions never gets a push)."""
        return hashlib.sha256(body).digest()

    def notification_result(self, body: bytes) -> bytes:
        """Default: the whole message (an RPC type without subscriptions never gets a push)."""
        return body

    def unsubscribe_result(self, found: bool) -> bytes:
        return b"{}"

    # -- caching ---------------------------------------------------------------------------
    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        resolved = self.resolve(spec, call.method)
        policy = resolved.policy
        if policy.method_class is not MethodClass.READ:
            return not_cached(f"{policy.method_class.value} calls are never cached")
        if not policy.cacheable:
            return not_cached(f"{call.method}: {self.volatile}")
        return self.decide_cache(spec, call, resolved, self.cache_key(spec, call), heights)

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
        return self.headers

    def served_health(self, spec: ChainSpec, height: int | None, served: str) -> Health | None:
        """``WRONG_CHAIN`` when a backend reports another chain than the spec's, else None."""
        if served == spec.identity:
            return None
        reason = self.wrong_chain.format(
            served=served, service=spec.service_id, identity=spec.identity
        )
        return Health.failed(HealthStatus.WRONG_CHAIN, reason, height, served)

    def answer_has_id(self, call: Call) -> bool:
        """Whether the answer to ``call`` must carry the call's id."""
        return not call.notification

    def retry_error(self, status: int, code: int, message: str, data: dict[str, Any]) -> bool:
        """Whether a JSON-RPC error answer is the backend's problem (another may answer)."""
        return False

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        """A JSON-RPC answer: well-formed, with the call's id; an error is retried elsewhere
        when :meth:`retry_error` says so."""
        data = decode_answer(body)
        if data is None:
            retry = status >= 500 or status == 429 or status == 200
            return AnswerCheck(False, False, retry, f"not a JSON-RPC answer (HTTP {status})")
        if self.answer_has_id(call) and data.get("id") != call.id:
            return AnswerCheck(False, False, True, "the answer's id does not match the request")
        if "error" not in data:
            return _OK
        error = error_of(data)  # the answer decoded once
        if error is None:
            return _OK
        code, message = error
        retry = self.retry_error(status, code, message, data)
        return AnswerCheck(True, True, retry, f"error {code}: {message}")

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=False)

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return None  # no client-visible head call is floored for this RPC type

    def head_dependent(self, spec: ChainSpec, call: Call) -> bool:
        """Whether the answer follows the head (DESIGN §4: a quorum read that disagrees is
        retried once after one block time); default: the method's cache rule is the head's."""
        return self.resolve(spec, call.method).rule is CacheRule.HEAD

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        raise NotImplementedError("no floored call: floor_rule is always None")
