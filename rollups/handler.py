"""The RPC-type handler interface: what the gateway and the relayer ask of ``rollups/``.

One handler exists per RPC type (``"evm"``, ``"op-stack"``, ``"arbitrum"``, …); get it with
``rollups.registry.handler_for(spec.rpc_type)``. A handler is stateless and shared: every
question takes the service's :class:`~rollups.spec.ChainSpec` (and the call) as arguments, so
the gateway and the relayer never branch on chains themselves.

Everything that crosses the boundary is a dataclass declared here, frozen but for the two
made once per call on the hot paths (``Call``, ``CallPlan``: treat them as immutable too):

======================  =================================================================
``Call``                one parsed JSON-RPC request object (method, params, id, raw bytes)
``InvalidCall``         one batch element that is not a valid request (id + the error)
``ParsedRequest``       the calls of one payload (``batch`` tells whether it was an array)
``MethodClass``         read / write / stateful / subscription / long_poll / denied
``MethodPolicy``        how one method of one spec is treated (class, CU, role, cacheable)
``CallPlan``            everything the hot path needs about one admitted call
``Heights``             the latest and finalized heights the gateway knows for a service
``CachePolicy``         cacheable? under which key? for how long? (``ttl=None``: final)
``RetryPolicy``         retry mode, hedging and timeout of one call
``Pinning``             stateful calls: creates / uses / releases a node-local handle
``SubscriptionCall``    subscribe / unsubscribe and their topic or id
``SubscriptionIds``     how a client names its subscription (gateway id, channel, request id)
``HeaderPolicy``        headers a relayer adds from its config, client headers it may pass
``ProbeRequest``        one health-probe request to send to a backend role
``ProbeAnswer``         the HTTP answer to one probe (``None`` when unreachable)
``Health``              ok, height, chain_id, reason (+ ``status``)
``AnswerCheck``         is a backend answer well-formed, an error, worth retrying elsewhere
======================  =================================================================

How the two servers use it
--------------------------
Relayer, per relay (DESIGN §3.3 order; everything is in memory)::

    handler = handler_for(spec.rpc_type)
    call = handler.parse_relay(payload)            # refuses batches: BatchNotRelayableError
    plan = handler.plan(spec, call, allow_writes=cfg.allow_writes)   # MethodDeniedError …
    if header.compute_units != plan.compute_units: -> BAD_COMPUTE_UNITS
    url = cfg.backends[plan.role]                  # "rpc", "op-node", …
    headers = handler.header_policy(spec).backend_headers(token=cfg.token, extra=cfg.headers)

Gateway, per client request::

    parsed = parse_payload(body)                   # rollups.jsonrpc; the gateway splits raw bytes
    for item in parsed.calls:                      # one relay per element, answers in order
        if isinstance(item, InvalidCall): answer item.error (error_response) ; continue
        plan = handler.plan(spec, item)            # denied -> error_response(item.id, exc)
        RH.compute_units = plan.compute_units
        policy = handler.cache_policy(spec, item, heights)      # look up policy.key if cacheable
        ... relay with plan.retry (hedge / timeout / retry mode), plan.pinning, plan.subscription
        store = handler.store_policy(spec, item, body, heights)  # store only if store.cacheable

Health (both): ``await rollups.health.probe(spec, url, http_session)`` -> :class:`Health`;
or send ``handler.probe_requests(spec)`` yourself and read them with ``handler.read_health``.

Errors raised by handlers are the subclasses of ``rollups.errors.RequestError``; each carries
the relay error code (``.code``) and the JSON-RPC code a backend would give (``.jsonrpc_code``);
``rollups.jsonrpc.error_response(id, exc)`` turns one into the JSON-RPC error body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rollups.methods import DEFAULT_ROLE, MethodClass

if TYPE_CHECKING:
    from rollups.answers import FloorRule
    from rollups.errors import RequestError
    from rollups.spec import ChainSpec

__all__ = [
    "DEFAULT_ROLE",
    "NEVER_FORWARDED_HEADERS",
    "AnswerCheck",
    "CachePolicy",
    "Call",
    "CallPlan",
    "HeaderPolicy",
    "Health",
    "HealthStatus",
    "Heights",
    "InvalidCall",
    "JsonId",
    "MethodClass",
    "MethodPolicy",
    "ParsedRequest",
    "Pinning",
    "ProbeAnswer",
    "ProbeRequest",
    "RetryMode",
    "RetryPolicy",
    "RpcHandler",
    "SubscriptionCall",
    "SubscriptionIds",
]

#: A JSON-RPC id as it arrived: a string, an integer, or null (``None``).
JsonId = str | int | None


@dataclass(slots=True)  # not frozen: one per call on both hot paths (frozen costs per field)
class Call:
    """One JSON-RPC request object (treat as immutable).

    ``raw`` is what is relayed for it: the client's payload byte for byte when the payload was
    a single object, or the compact re-serialisation of the element when it came in a batch
    (the gateway sends one relay per element). ``params`` is the decoded JSON (a list, a dict,
    or ``None`` when absent). ``notification`` is true when the object had no ``id`` member.
    """

    method: str
    params: Any
    id: JsonId
    raw: bytes
    notification: bool = False

    @property
    def param_list(self) -> list[Any]:
        """Positional params (``[]`` when absent or given by name)."""
        return self.params if isinstance(self.params, list) else []


@dataclass(frozen=True, slots=True)
class InvalidCall:
    """A batch element that is not a valid request: answer ``error`` for it, in place."""

    id: JsonId
    error: RequestError


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """The calls of one payload, in the client's order."""

    calls: tuple[Call | InvalidCall, ...]
    batch: bool


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    """How one method is treated under one spec (after the spec's overrides).

    ``known`` is false for a method the handler does not know at all: it is DENIED and a
    refusal says "method not found" (-32601). ``reason`` says why a method is denied.
    ``cacheable`` is whether the method may ever be cached (finality still decides per call).
    """

    method: str
    method_class: MethodClass
    compute_units: int
    role: str
    cacheable: bool
    known: bool = True
    reason: str = ""


class RetryMode(StrEnum):
    """When a gateway may send a call again (to the same or another supplier)."""

    ANY = "any"  # idempotent: retry on any failure, on another supplier
    UNSENT_ONLY = "unsent_only"  # only when it provably never reached a backend (writes)
    NEVER = "never"  # stateful / subscription: a retry would lose the node-local state


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry, hedging and timeout of one call.

    Writes are ``UNSENT_ONLY`` and never hedged. Long polls are never hedged and get
    ``timeout`` from the spec's long-poll timeout.
    """

    mode: RetryMode
    hedge: bool
    timeout: float

    @property
    def idempotent(self) -> bool:
        return self.mode is RetryMode.ANY


@dataclass(frozen=True, slots=True)
class Pinning:
    """Node-local state of a stateful call (pin it to the supplier that holds the handle).

    ``creates``: the answer carries a new handle (read it with ``RpcHandler.read_handle``).
    ``handle``: the handle this call uses (``eth_getFilterChanges(id)``), else ``None``.
    ``releases``: the handle is gone after this call (``eth_uninstallFilter``).
    """

    creates: bool
    handle: str | None
    releases: bool = False


class SubscriptionIds(StrEnum):
    """How a client names its subscription; the gateway keeps that name stable while the
    upstream streams (each node with its own id) come and go.

    >>> ids = SubscriptionIds
    >>> ids.GATEWAY.read_confirmation("0xab"), ids.GATEWAY.read_confirmation({})
    ('0xab', None)
    >>> ids.CHANNEL.read_confirmation(3), ids.REQUEST.read_confirmation({})
    ('3', '')
    """

    GATEWAY = "gateway"  # the node answers an id: the client gets one of the gateway's (EVM)
    CHANNEL = "channel"  # the node answers a channel number: the client gets a gateway's one
    REQUEST = "request"  # the node answers ``{}``: pushes carry the subscribe call's id

    def read_confirmation(self, result: object) -> str | None:
        """The node's own id in its answer to the subscribe call (``""`` when pushes carry
        the request's id); None when the answer is not a confirmation."""
        if isinstance(result, bool):
            return None
        if self is SubscriptionIds.GATEWAY:
            return result if isinstance(result, str) else None
        if self is SubscriptionIds.CHANNEL:
            return str(result) if isinstance(result, int | str) else None
        return ""


@dataclass(frozen=True, slots=True)
class SubscriptionCall:
    """A subscribe call (its ``topic``) or an unsubscribe call (the ``subscription_id`` it
    names: the client's id, or the topic where ``ids`` is not ``GATEWAY``; ``every``: all of
    the socket's); WebSocket only."""

    subscribe: bool
    topic: str | None = None
    subscription_id: str | None = None
    ids: SubscriptionIds = SubscriptionIds.GATEWAY
    every: bool = False


@dataclass(slots=True)  # not frozen: one per call on both hot paths (frozen costs per field)
class CallPlan:
    """Everything the hot path needs about one admitted call (treat as immutable)."""

    call: Call
    method_class: MethodClass
    compute_units: int
    role: str
    retry: RetryPolicy
    pinning: Pinning | None = None
    subscription: SubscriptionCall | None = None


@dataclass(frozen=True, slots=True)
class Heights:
    """Heights the gateway knows for a service (``None`` when unknown).

    ``finalized`` is the chain's finalized height, or ``latest - spec.finality_depth`` (see
    :meth:`Heights.from_latest`).
    """

    latest: int | None
    finalized: int | None

    @classmethod
    def from_latest(cls, latest: int, finality_depth: int) -> Heights:
        return cls(latest=latest, finalized=max(latest - finality_depth, -1))


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Whether a call (or its answer) may be cached, under which key and for how long.

    ``ttl`` is in seconds; ``None`` means final (never changes: keep until evicted).
    ``key`` is built from the service id, the method and canonical params (hex lower-cased,
    object keys sorted), so equal questions share one entry. ``reason`` explains the decision.
    """

    cacheable: bool
    key: str | None
    ttl: float | None
    reason: str

    @property
    def final(self) -> bool:
        return self.cacheable and self.ttl is None


#: Client headers a relayer never passes to a backend, whatever the policy's allow-list says.
NEVER_FORWARDED_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "host",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "relay-request",
        "relay-receipt",
        "relay-supplier",
        "connection",
        "upgrade",
        "transfer-encoding",
        "content-length",
    }
)


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """Headers between relayer and backend.

    ``forward``: client headers (lower-case) a relayer may pass on; everything else, and always
    :data:`NEVER_FORWARDED_HEADERS`, is dropped. ``auth_scheme``: how the relayer presents its
    own node credential from its config (``"bearer"`` → ``Authorization: Bearer <token>``, e.g.
    a celestia-node JWT or a provider key; ``"none"``). ``auth_required``: the backend answers
    nothing useful without it (the relayer should refuse to start without a token).
    """

    forward: frozenset[str] = frozenset({"content-type", "accept"})
    never_forward: frozenset[str] = NEVER_FORWARDED_HEADERS
    auth_scheme: str = "bearer"
    auth_required: bool = False
    content_type: str = "application/json"

    def client_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The client headers that may reach the backend."""
        out: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower in self.forward and lower not in self.never_forward:
                out[name] = value
        return out

    def backend_headers(
        self, token: str | None = None, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Headers the relayer adds from its own config (``token``; operator ``extra``)."""
        out = {"Content-Type": self.content_type}
        if extra:
            out.update(extra)
        if token and self.auth_scheme == "bearer":
            out["Authorization"] = f"Bearer {token}"
        return out


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """One health-probe request: POST/GET ``path`` on the backend of ``role``."""

    name: str
    body: bytes
    role: str = DEFAULT_ROLE
    http_method: str = "POST"
    path: str = ""


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """The HTTP answer to one probe request."""

    status: int
    body: bytes


class HealthStatus(StrEnum):
    OK = "ok"
    WRONG_CHAIN = "wrong_chain"  # the backend serves another chain than the spec's
    SYNCING = "syncing"
    UNREACHABLE = "unreachable"
    BAD_ANSWER = "bad_answer"


@dataclass(frozen=True, slots=True)
class Health:
    """The result of a health probe; ``chain_id`` is the backend's identity as a string
    (decimal for EVM chain ids, the network name for CometBFT / Celestia)."""

    ok: bool
    height: int | None
    chain_id: str | None
    reason: str
    status: HealthStatus = field(default=HealthStatus.OK)

    @classmethod
    def failed(
        cls, status: HealthStatus, reason: str, height: int | None = None, chain: str | None = None
    ) -> Health:
        return cls(False, height, chain, reason, status)


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """What a backend's answer to a call is.

    ``valid``: a well-formed JSON-RPC answer whose id matches the call. ``error``: it carries a
    JSON-RPC error. ``retry_elsewhere``: the error is the backend's problem (rate limited,
    lagging, pruned state), another supplier may answer; client mistakes (invalid params,
    execution reverted) are final. ``reason`` explains.
    """

    valid: bool
    error: bool
    retry_elsewhere: bool
    reason: str = ""


@runtime_checkable
class RpcHandler(Protocol):
    """One RPC type. Implementations are stateless; every method is safe to call concurrently.

    Methods that refuse raise ``rollups.errors.RequestError`` subclasses (relay code +
    JSON-RPC code); the others never raise for any payload a client can send.
    """

    @property
    def rpc_type(self) -> str:
        """The ``rpc_type`` a spec names to get this handler."""
        ...

    def check_spec(self, spec: ChainSpec) -> tuple[str, ...]:
        """Type-specific problems of a spec (``"<field>: what is wrong — what to do"``);
        called by spec validation, so a spec that loads is one its handler accepts."""
        ...

    # -- parsing ---------------------------------------------------------------------------
    def parse_relay(self, payload: bytes) -> Call:
        """Parse a relay payload: exactly one request. Batches raise
        ``BatchNotRelayableError`` (BATCH_NOT_RELAYABLE, -32600)."""
        ...

    # -- methods ---------------------------------------------------------------------------
    def method_policy(self, spec: ChainSpec, method: str) -> MethodPolicy:
        """Class, compute units, backend role and cacheability of a method under ``spec``
        (explicit tables + the spec's overrides; an unknown method is DENIED, known=False)."""
        ...

    def plan(self, spec: ChainSpec, call: Call, *, allow_writes: bool | None = None) -> CallPlan:
        """Admit a call: raises ``MethodNotFoundError`` / ``MethodDeniedError`` (METHOD_DENIED,
        -32601) when denied, ``WritesDisabledError`` when it is a write and writes are off
        (``allow_writes`` — the operator's setting — wins over ``spec.methods.allow_writes``),
        ``InvalidParamsError`` (-32602) when params are refused (e.g. Arbitrum ``arbtrace_*``
        above the classic range); otherwise the plan."""
        ...

    def compute_units(self, spec: ChainSpec, call: Call) -> int:
        """Compute units of one call per the spec (what RH.compute_units must equal)."""
        ...

    def read_handle(self, body: bytes) -> str | None:
        """The handle (filter id) in the answer to a call whose pinning ``creates``."""
        ...

    def subscription(self, call: Call) -> SubscriptionCall | None: ...

    def rewrite_notification(self, body: bytes, subscription_id: str) -> bytes:
        """The pushed message with its subscription id replaced (the gateway's stable id)."""
        ...

    def notification_identity(self, body: bytes) -> bytes:
        """What makes a pushed message the same event on two suppliers' streams (each node
        writes its own subscription id): a digest, equal for the same event from any node."""
        ...

    def notification_result(self, body: bytes) -> bytes:
        """The bytes of a pushed message that agreeing suppliers send identically (DESIGN §4
        quorum on a WebSocket): the push without the node's own subscription id."""
        ...

    def unsubscribe_result(self, found: bool) -> bytes:
        """The JSON ``result`` of an unsubscribe call (``found``: a subscription was closed)."""
        ...

    # -- caching ---------------------------------------------------------------------------
    def cache_policy(self, spec: ChainSpec, call: Call, heights: Heights) -> CachePolicy:
        """Before relaying: may an answer be in the cache, under which key (look-up)."""
        ...

    def store_policy(
        self, spec: ChainSpec, call: Call, body: bytes, heights: Heights
    ) -> CachePolicy:
        """After relaying: may this answer be stored and for how long. Failures, nulls and
        answers about blocks above finality (briefly at most) decide here."""
        ...

    # -- headers, health, answers ----------------------------------------------------------
    def header_policy(self, spec: ChainSpec) -> HeaderPolicy: ...

    def probe_requests(self, spec: ChainSpec) -> tuple[ProbeRequest, ...]:
        """Requests to send to a backend to learn its health, height and chain identity."""
        ...

    def read_health(self, spec: ChainSpec, answers: Mapping[str, ProbeAnswer | None]) -> Health:
        """Read the answers to :meth:`probe_requests` (by ``ProbeRequest.name``; ``None`` for
        unreachable). A chain id differing from the spec's is ``HealthStatus.WRONG_CHAIN``."""
        ...

    def read_height(self, body: bytes) -> int | None:
        """The height in an answer to the height probe (``eth_blockNumber``), else None."""
        ...

    def check_answer(self, spec: ChainSpec, call: Call, status: int, body: bytes) -> AnswerCheck:
        """Checks on a backend's answer to ``call`` (HTTP status + body)."""
        ...

    # -- what a gateway accepts from suppliers (rollups.answers) ----------------------------
    def answer_cap(self, spec: ChainSpec, call: Call) -> int:
        """The most bytes an answer to ``call`` may have (``spec.answers``: the large cap for
        traces and logs, the default cap otherwise)."""
        ...

    def floor_rule(self, spec: ChainSpec, call: Call) -> FloorRule | None:
        """The floor rule when ``call`` asks for the head height (never backwards for a
        client), else None."""
        ...

    def head_dependent(self, spec: ChainSpec, call: Call) -> bool:
        """Whether the answer follows the head (``latest``, ``pending``, the head height): a
        quorum read whose legs disagree is retried once after one block time (DESIGN §4)."""
        ...

    def height_answer(self, raw_id: bytes, height: int) -> bytes:
        """The answer a backend would give to the head-height call, for ``height`` and the
        client's id (raw JSON bytes): what the gateway answers from a client's floor."""
        ...
