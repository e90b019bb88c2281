"""The relay pipeline's stages (``typing.Protocol``) and the types that pass between them.

The pipeline, wired in ``server.py`` (:meth:`relayer.server.RelayService.answer`), reads::

    relay  = verifier.verify(relay_request, payload)         # §3.3 checks → price → budget
    recorder.check_open(relay.ctx)                            # the session still takes records
    answer = await transport.send(relay.backend_request())    # byte-for-byte forwarding
    served = recorder.record(relay, answer.status, answer.body)  # receipt + durable log
    -> 200, answer.body, Relay-Backend-Status, Relay-Receipt
    # any failure after verify: verifier.release(relay) — the one refund path

A WebSocket relay runs the same stages in two steps (``check_header`` → ``check_signature`` on
the upgrade, ``check_first_frame`` on the first frame) and records each later backend message
with :meth:`RelayRecorder.record_push`, which charges it like a relay of its own.

Off the hot path, the claimer turns each closed session log into claim → proof → settle
against a :class:`SettlementChain`.

The values built per relay (``VerifiedRelay``, ``BackendRequest``, ``ServedRelay`` …) are
slotted dataclasses that no stage changes once built; they are not ``frozen`` only because a
frozen dataclass's ``__init__`` costs five times as much, on every relay.

Contracts:

* :class:`PricingPolicy` is a pure function of the payload under one chain spec.
* :class:`RelayVerifier` reads only the in-memory registry snapshot (and, once per session
  after a restart, the session's log: what it already recorded is seen and charged); it raises
  :class:`relayer.errors.RelayRefused` with the code of the *first* failing check, and charges
  the app's budget (:meth:`SessionContext.reserve`) only when every check passed.
* :class:`BackendTransport` returns only complete HTTP responses (any status); everything else
  is a :class:`relayer.errors.BackendError` (``BACKEND_TIMEOUT`` / ``BACKEND_UNAVAILABLE``).
* :class:`RelayRecorder` writes the relay to its session log (``os.write``) *before* returning;
  a relay not recorded is never receipted, and is released (refunded) by its caller.
* :class:`SettlementChain` methods may raise any :class:`protocol.errors.RelaynetError`; the
  claimer retries them with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from protocol.errors import ErrorCode
from protocol.relay import Domain, SessionDigester, encode_receipt
from relayer.budget import SessionBudget
from relayer.errors import RelayRefused
from relayer.relaylog import SessionKey, SessionLog
from session.windows import Windows

__all__ = [
    "BackendRequest",
    "BackendResponse",
    "BackendTransport",
    "ChainClaim",
    "ClaimStatus",
    "PricedCall",
    "PricingPolicy",
    "RelayRecorder",
    "RelayVerifier",
    "ServedRelay",
    "ServiceRuntime",
    "SessionContext",
    "SettlementChain",
    "SignedHeader",
    "TxReceipt",
    "VerifiedHeader",
    "VerifiedRelay",
]


# --- price -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricedCall:
    """What the service's chain spec says about one relay payload.

    For a REST-like payload (DESIGN §3.3, canonical ``{"body","method","path","query"}``)
    ``http_method``, ``path`` (path and query, appended to the role's backend URL) and ``body``
    say what to send; for JSON-RPC the payload itself is POSTed (``body`` None).
    """

    compute_units: int
    role: str
    method: str
    write: bool = False
    http_method: str = "POST"
    path: str = ""
    body: bytes | None = None


class PricingPolicy(Protocol):
    """The service's chain spec, as the verifier asks it (``relayer.pricing.SpecPricing``)."""

    def price(self, payload: bytes) -> PricedCall:
        """Compute units and backend role of a relay payload. Raises RelaynetError with
        BATCH_NOT_RELAYABLE for batches and METHOD_DENIED for denied methods."""
        ...


# --- backend -----------------------------------------------------------------------------------


@dataclass(slots=True)
class BackendRequest:
    """One request to a backend node: the payload byte for byte, plus configured headers."""

    service_id: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    http_method: str = "POST"
    timeout: float = 10.0
    connect_timeout: float = 3.0


@dataclass(slots=True)
class BackendResponse:
    """A complete HTTP response from the backend."""

    status: int
    body: bytes
    content_type: str = "application/json"


class BackendTransport(Protocol):
    """Sends one request to a backend (the httpx-style seam; tests use a mock handler)."""

    async def send(self, request: BackendRequest) -> BackendResponse:
        """The complete response, or BackendError (timeout / unavailable)."""
        ...

    async def close(self) -> None: ...


# --- what the verifier knows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceRuntime:
    """One served service, precomputed from the config: spec pricing, backends, headers."""

    service_id: str
    pricing: PricingPolicy
    backends: Mapping[str, str]
    headers: Mapping[str, str]
    max_body_bytes: int
    timeout: float
    connect_timeout: float
    ws_backend: str | None = None

    def backend_url(self, role: str) -> str:
        """The role's backend URL; METHOD_DENIED when the config names none."""
        url = self.backends.get(role)
        if url is None:
            raise RelayRefused(
                ErrorCode.METHOD_DENIED, f"no backend for role {role!r} is configured"
            )
        return url

    def backend_request(self, priced: PricedCall, payload: bytes) -> BackendRequest:
        """The request a priced payload becomes: its role's URL (plus the REST path), the
        payload itself or the REST body, the configured headers and timeouts."""
        url = self.backend_url(priced.role)
        return BackendRequest(
            self.service_id,
            url.rstrip("/") + priced.path if priced.path else url,
            payload if priced.body is None else priced.body,
            self.headers,
            priced.http_method,
            self.timeout,
            self.connect_timeout,
        )


@dataclass(slots=True, eq=False)
class SessionContext:
    """Per (service, app, n): what every relay of the session shares. A mutable cache owned by
    the verifier; its budget and relay-key sets change only through :meth:`reserve`,
    :meth:`release` and :meth:`recorded`."""

    key: SessionKey
    windows: Windows
    session_id: bytes
    slots: tuple[int, ...]
    cu_price: int
    max_cu: int
    difficulty_bits: int
    max_stream_relays: int
    budget: SessionBudget
    domain: Domain  # under the chain id of session n (DESIGN §3.5)
    seen: set[bytes] = field(default_factory=set)
    inflight: set[bytes] = field(default_factory=set)
    delegated: dict[bytes, bool] = field(default_factory=dict)
    log: SessionLog | None = None  # opened by the recorder on the session's first record
    relays: int = 0

    def check_fresh(self, relay_key: bytes) -> None:
        """REPLAYED_RELAY when ``relay_key`` was recorded or is being served now."""
        if relay_key in self.seen or relay_key in self.inflight:
            raise RelayRefused(ErrorCode.REPLAYED_RELAY, "this signed request was already relayed")

    def reserve(self, relay_key: bytes, cost: int) -> None:
        """Charge ``cost`` to the app's budget and hold ``relay_key`` in flight (refusing a
        replay or a relay past the budget, charging nothing then)."""
        self.check_fresh(relay_key)
        self.budget.charge(cost)
        self.inflight.add(relay_key)

    def release(self, relay_key: bytes, cost: int) -> None:
        """A reserved relay that will not be recorded: refund and free its key."""
        self.inflight.discard(relay_key)
        self.budget.refund(cost)

    def recorded(self, relay_key: bytes) -> None:
        """A reserved relay is in the log: its key is seen for good, its charge stays."""
        self.inflight.discard(relay_key)
        self.seen.add(relay_key)
        self.relays += 1


# --- verify ------------------------------------------------------------------------------------


@dataclass(slots=True)
class VerifiedHeader:
    """A relay whose header passed every check that does not need the payload: its bytes and
    the fields the later checks read (the application is ``ctx.key.app``), and the request
    digest of its signer's session (what the signature is checked over)."""

    ctx: SessionContext
    service: ServiceRuntime
    header_bytes: bytes
    request_sig: bytes
    signer: bytes
    payload_hash: bytes
    max_index: int
    compute_units: int
    digester: SessionDigester


@dataclass(slots=True)
class SignedHeader:
    """A header whose signature verified: its request digest and index-0 relay key."""

    digest: bytes
    relay_key: bytes


@dataclass(slots=True)
class VerifiedRelay:
    """A relay that passed every check, with its budget charged and its key reserved."""

    ctx: SessionContext
    service: ServiceRuntime
    header_bytes: bytes
    request_sig: bytes
    digest: bytes
    relay_key: bytes
    payload: bytes
    priced: PricedCall
    cost: int
    max_index: int  # 0 for a POST; the most frames a stream's signature pays for

    def backend_request(self) -> BackendRequest:
        """What to send the backend for this relay (its role was checked when it was priced)."""
        return self.service.backend_request(self.priced, self.payload)


class RelayVerifier(Protocol):
    """Every check of DESIGN §3.3 in order, then price and budget (``verify.Verifier``)."""

    @property
    def max_body_bytes(self) -> int:
        """The largest body any served service accepts."""
        ...

    @property
    def services(self) -> Mapping[str, ServiceRuntime]: ...

    def check_size(self, length: int | None) -> None:
        """PAYLOAD_TOO_LARGE before the body is read."""
        ...

    def verify(self, header_value: str | None, payload: bytes) -> VerifiedRelay:
        """A plain relay (index 0): every check, its budget charged and its key reserved."""
        ...

    def check_header(
        self, header_value: str | None, *, body_size: int = 0, stream: bool = False
    ) -> VerifiedHeader:
        """The checks that need no payload (a WebSocket upgrade: ``stream``)."""
        ...

    def check_signature(self, vh: VerifiedHeader) -> SignedHeader:
        """Digest, replay, signature."""
        ...

    def check_first_frame(
        self, vh: VerifiedHeader, signed: SignedHeader, payload: bytes
    ) -> VerifiedRelay:
        """A WebSocket relay's payload checks, budget charged and key reserved."""
        ...

    def release(self, relay: VerifiedRelay) -> None:
        """The relay will not be recorded (backend failed, log refused): refund, free its key."""
        ...

    def grace_ended(self, ctx: SessionContext) -> bool:
        """The registry's head reached the session's grace end (streams close then)."""
        ...


# --- record ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ServedRelay:
    """A recorded relay: what its answer carries."""

    index: int
    response_hash: bytes
    receipt_sig: bytes

    @property
    def receipt_header(self) -> str:
        return encode_receipt(self.response_hash, self.receipt_sig)


class RelayRecorder(Protocol):
    """Receipt + durable append (``recorder.Recorder``)."""

    def check_writable(self) -> None:
        """Refuse (``INTERNAL``, retryable) while the relay log cannot take records."""
        ...

    def check_open(self, ctx: SessionContext) -> None:
        """SESSION_EXPIRED when the session's log is retired (closed for claiming)."""
        ...

    def record(self, relay: VerifiedRelay, status: int, body: bytes) -> ServedRelay:
        """Written to the session log before returning; the relay key becomes seen."""
        ...

    def record_push(self, relay: VerifiedRelay, index: int, body: bytes) -> ServedRelay:
        """Frame ``index`` ≥ 1 of a stream, charged like a relay of its own (refunded when it
        cannot be recorded)."""
        ...


# --- settlement (the claimer) ------------------------------------------------------------------


class ClaimStatus(StrEnum):
    """A claim's state on the settlement chain, as the chain reports it."""

    NONE = "none"
    OPEN = "open"
    PROVED = "proved"
    SETTLED = "settled"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class ChainClaim:
    """A claim as stored by the contract."""

    status: ClaimStatus
    root48: bytes = b""
    claim_id: int | None = None


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """The outcome of one submitted transaction."""

    tx_hash: str
    gas_used: int
    gas_price: int
    extra: Mapping[str, int] = field(default_factory=dict)

    @property
    def cost_wei(self) -> int:
        return self.gas_used * self.gas_price


class SettlementChain(Protocol):
    """The settlement-chain actions and reads the claimer needs (a ``LedgerClient`` adapter)."""

    async def head(self) -> int: ...

    async def resync(self) -> None:
        """Forget local transaction state (the nonce) after a reorganisation dropped blocks."""
        ...

    async def block_hash(self, height: int) -> bytes | None: ...

    async def recorded_hashes(self, n: int) -> tuple[bytes | None, bytes | None, bytes | None]:
        """``(H_n, H_g, H_c)`` of session ``n`` as the contract stored them (None: missing)."""
        ...

    async def checkpoint(self) -> TxReceipt: ...

    async def gas_price(self) -> int: ...

    async def claim_state(self, app: bytes, service_id: str, n: int) -> ChainClaim: ...

    async def claim(
        self, app: bytes, service_id: str, n: int, slots: tuple[int, ...], root48: bytes
    ) -> TxReceipt: ...

    async def prove(
        self, app: bytes, service_id: str, n: int, leaf: bytes, siblings: Sequence[object]
    ) -> TxReceipt: ...

    async def settle(self, app: bytes, service_id: str, n: int) -> TxReceipt:
        """Settle; ``TxReceipt.extra["paid"]``/``["supplier"]`` when the contract says so."""
        ...

    async def balance(self) -> int: ...

    async def stake(self) -> int: ...
