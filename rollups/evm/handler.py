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
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from rollups.answers import FloorRule, answer_cap, floor_rule
from rollups.base import Resolved, TableHandler
from rollups.evm.blocks import BlockRef, block_ref, parse_quantity
from rollups.evm.cache import answer_block_number, logs_finality, ref_finality
from rollups.evm.methods import (
    ALWAYS_DENIED,
    ALWAYS_DENIED_PREFIXES,
    DEFAULT_DENIED_PREFIXES,
    EVM_METHODS,
)
from rollups.finality import Finality, not_cached, policy_for
from rollups.handler import (
    CachePolicy,
    Health,
    HealthStatus,
    Pinning,
    ProbeRequest,
    SubscriptionCall,
)
from rollups.jsonrpc import answer_error, answer_result
from rollups.methods import CacheRule, MethodClass, MethodInfo
from rollups.spec import match_method

if TYPE_CHECKING:
    from rollups.handler import Call, Heights, ProbeAnswer
    from rollups.spec import ChainSpec

__all__ = ["EvmHandler"]

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

_MOVING_TAGS = frozenset({"latest", "pending", "safe", "finalized"})


class EvmHandler(TableHandler):
    """The EVM handler; see the module docstring. Stateless; share one instance."""

    rpc_type: ClassVar[str] = "evm"
    methods: ClassVar[Mapping[str, MethodInfo]] = EVM_METHODS
    always_denied: ClassVar[frozenset[str]] = ALWAYS_DENIED
    always_denied_prefixes: ClassVar[Mapping[str, str]] = ALWAYS_DENIED_PREFIXES
    default_denied_prefixes: ClassVar[Mapping[str, str]] = DEFAULT_DENIED_PREFIXES
    volatile: ClassVar[str] = "node-local or pending answers are never cached"

    identity_field: ClassVar[str] = "chain_id"
    wrong_chain: ClassVar[str] = (
        "wrong chain: the backend serves chain id {served}, {service} is chain id {identity}"
    )

    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        problems = list(super().check_spec(spec))
        for name, override in spec.methods.overrides.items():
            if override.cacheable and override.method_class not in (None, MethodClass.READ):
                problems.append(
                    f"methods.overrides.{name}: only reads can be cacheable — "
                    "drop `cacheable` or make it a read"
                )
        return tuple(problems)

    def never_allowable(self, name: str) -> str | None:
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
        refusal = self.refused(name)
        return refusal[0] if refusal else None

    # -- methods ---------------------------------------------------------------------------
    def refused(self, method: str) -> tuple[str, bool] | None:
        if method in self.always_denied:
            return f"{method} is always denied (node administration)", True
        for prefix, reason in self.always_denied_prefixes.items():
            if method.startswith(prefix):
                return reason, True
        return None

    def info(self, method: str) -> MethodInfo | None:
        info = self.methods.get(method)
        if info is not None:
            return info
        key = match_method({p + "*": r for p, r in self.default_denied_prefixes.items()}, method)
        if key is None:
            return None
        return MethodInfo(MethodClass.DENIED, reason=self.default_denied_prefixes[key[:-1]])

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
        method = call.method
        if method != "eth_subscribe" and method != "eth_unsubscribe":
            return None
        params = call.param_list
        first = params[0] if params and isinstance(params[0], str) else None
        if method == "eth_subscribe":
            return SubscriptionCall(subscribe=True, topic=first)
        return SubscriptionCall(subscribe=False, subscription_id=first)

    def read_notification(self, body: bytes) -> str | None:
        """The subscription id of a message a backend pushed (``eth_subscription``)."""
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

    def notification_result(self, body: bytes) -> bytes:
        """``params.result`` as the node wrote it (key order kept), without the node's id."""
        try:
            return orjson.dumps(orjson.loads(body)["params"]["result"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return body

    def unsubscribe_result(self, found: bool) -> bytes:
        return b"true" if found else b"false"

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
        itself landed, and the caller knows that already. (Not on ``RpcHandler``: no caller
        retries a sent write yet.)"""
        error = answer_error(body)
        if error is None:
            return False
        message = error[1].lower()
        return any(marker in message for marker in _LANDED_MARKERS)

    # -- caching ---------------------------------------------------------------------------
    def decide_cache(
        self, spec: ChainSpec, call: Call, resolved: Resolved, key: str, heights: Heights
    ) -> CachePolicy:
        rule = resolved.rule
        if rule is CacheRule.HASH:
            return policy_for(key, Finality.FINAL, "pinned by block hash", spec.cache.head_ttl)
        if rule is CacheRule.TX:
            # Look-up only: the stored entry's ttl was decided by its answer (store_policy).
            return CachePolicy(True, key, None, "decided by the answer's blockNumber")
        params = call.param_list
        if rule is CacheRule.LOGS:
            finality, reason = logs_finality(params, heights)
        elif rule is CacheRule.BLOCK:
            arg = resolved.info.arg if resolved.info and resolved.info.arg else 0
            ref = block_ref(params[arg] if len(params) > arg else None)
            finality, reason = ref_finality(ref, heights)
        else:
            return super().decide_cache(spec, call, resolved, key, heights)
        return policy_for(key, finality, reason, spec.cache.head_ttl)

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        policy = super().store_policy(spec, call, body, heights)
        rule = self.resolve(spec, call.method).rule
        if policy.cacheable and rule in (CacheRule.TX, CacheRule.HASH) and policy.key is not None:
            number = answer_block_number(answer_result(body))
            if number is None:
                if rule is CacheRule.TX:
                    return not_cached("the transaction is not mined yet")
                return policy
            finality, reason = ref_finality(BlockRef("number", number=number), heights)
            return policy_for(policy.key, finality, reason, spec.cache.head_ttl)
        return policy

    # -- health, answers -------------------------------------------------------------------
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
            return Health.failed(HealthStatus.UNREACHABLE, "backend unreachable")
        chain_id = self.read_height(chain_answer.body) if chain_answer.status == 200 else None
        height = self.read_height(height_answer.body) if height_answer.status == 200 else None
        if chain_id is None:
            reason = f"eth_chainId: no chain id in the answer (HTTP {chain_answer.status})"
            return Health.failed(HealthStatus.BAD_ANSWER, reason, height)
        wrong = self.served_health(spec, height, str(chain_id))
        if wrong is not None:
            return wrong
        if height is None:
            reason = f"eth_blockNumber: no height in the answer (HTTP {height_answer.status})"
            return Health.failed(HealthStatus.BAD_ANSWER, reason, None, str(chain_id))
        syncing = answers.get("syncing")
        if syncing is not None and syncing.status == 200:
            try:
                state: Any = answer_result(syncing.body)
            except ValueError:
                state = False  # eth_syncing unsupported: not a reason to call it unhealthy
            if isinstance(state, dict):
                highest = parse_quantity(state.get("highestBlock"))
                reason = f"syncing: at block {height} of {highest}"
                return Health.failed(HealthStatus.SYNCING, reason, height, str(chain_id))
        return Health(True, height, str(chain_id), "ok", HealthStatus.OK)

    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        return answer_cap(spec, large=call.method.startswith(_LARGE_ANSWERS))

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        return floor_rule(spec) if call.method == "eth_blockNumber" else None

    def head_dependent(self, spec: ChainSpec, call: Call) -> bool:
        """``eth_blockNumber`` and head-cached methods, a block parameter that is absent or a
        moving tag (``latest``, ``pending``, ``safe``, ``finalized``), any ``pending`` param."""
        resolved = self.resolve(spec, call.method)
        if resolved.rule is CacheRule.HEAD or call.method == "eth_blockNumber":
            return True
        params = call.param_list
        if any(p in _MOVING_TAGS for p in params if isinstance(p, str)):
            return True
        info = resolved.info
        if resolved.rule is CacheRule.BLOCK and info is not None:
            arg = info.arg or 0
            ref = block_ref(params[arg] if len(params) > arg else None)
            return ref.tag in _MOVING_TAGS
        return False

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        return b'{"jsonrpc":"2.0","id":' + raw_id + b',"result":"' + hex(height).encode() + b'"}'

    def retry_error(self, status: int, code: int, message: str, data: dict[str, Any]) -> bool:
        lower = message.lower()
        return (
            code in (-32005, -32603, -32601, 429)
            or status == 429
            or status >= 500
            or any(marker in lower for marker in _RETRY_MARKERS)
        )


# Methods whose answers may be large (traces and logs): ``spec.answers.large_max_bytes``.
_LARGE_ANSWERS = ("debug_trace", "trace_", "arbtrace_", "eth_getLogs", "eth_getFilterLogs")
