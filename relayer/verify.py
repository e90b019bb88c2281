"""Relay verification: every check of DESIGN §3.3, in its order, all from memory.

    body size → header parses, version, service served, supplier is itself
    → session current or in grace, supplier holds a slot, app staked for this service,
      signer is the app or a gateway delegated at n, payload well formed (the payload rule),
      compute units = the spec's price
    → digest, relay_key not seen in this session (REPLAYED_RELAY)
    → signature (low-s, recovers to RH.signer) → payload_hash → budget

A POST with ``max_index ≠ 0`` and a WebSocket upgrade with ``max_index = 0`` are
MALFORMED_HEADER.

The first failing check raises :class:`relayer.errors.RelayRefused` with its wire code. What
does not change within a session (hydrated session, slots held, app stake and budget, params,
delegations, seen relay keys) is computed once per (service, app, n) into a
:class:`SessionContext`; the per-request work is a header decode, a keccak digest, one
ecrecover and one sha256. The registry is only ever read from the in-memory snapshot.

WebSocket relays run the same checks in two steps: the header-only ones through the signature
(:meth:`Verifier.check_header` then :meth:`Verifier.check_signature`) on the upgrade request,
before it is accepted; the payload ones (well formed, compute units, payload hash, budget:
:meth:`Verifier.check_first_frame`) on the first frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from protocol.errors import ErrorCode, ProtocolError, RelaynetError
from protocol.relay import (
    Domain,
    RelayHeader,
    decode_relay_request,
    recover_signer,
    relay_key,
    request_digest_of_bytes,
)
from protocol.settlement import budget as session_budget
from relayer.budget import BudgetMeter, SessionBudget
from relayer.errors import RelayRefused
from relayer.priced import PricedCall, PricingPolicy
from relayer.relaylog import LogRecord, SessionKey, SessionLog
from session.hydrate import hydrate
from session.snapshot import RegistrySnapshot, SessionShape
from session.windows import Windows, windows

__all__ = [
    "ServiceRuntime",
    "SessionContext",
    "SignedHeader",
    "VerifiedHeader",
    "VerifiedRelay",
    "Verifier",
]

_LEAF_CU = slice(153, 157)


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
        url = self.backends.get(role)
        if url is None:
            raise RelayRefused(
                ErrorCode.METHOD_DENIED, f"no backend for role {role!r} is configured"
            )
        return url


@dataclass(slots=True, eq=False)
class SessionContext:
    """Per (service, app, n): what every relay of the session shares. Mutable cache."""

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
    log: SessionLog | None = None
    relays: int = 0


@dataclass(frozen=True, slots=True)
class VerifiedHeader:
    """A relay whose header passed every check that does not need the payload."""

    ctx: SessionContext
    service: ServiceRuntime
    header: RelayHeader
    header_bytes: bytes
    request_sig: bytes


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A header whose signature verified: its request digest and index-0 relay key."""

    digest: bytes
    relay_key: bytes


@dataclass(frozen=True, slots=True)
class VerifiedRelay:
    """A relay that passed every check, with its budget charged and its key reserved."""

    ctx: SessionContext
    service: ServiceRuntime
    header: RelayHeader
    header_bytes: bytes
    request_sig: bytes
    digest: bytes
    relay_key: bytes
    payload: bytes
    priced: PricedCall
    cost: int


def _refuse(exc: RelaynetError) -> RelayRefused:
    return RelayRefused(exc.code, exc.message)


class Verifier:
    """The checks, with their per-session caches. Not thread-safe (one event loop)."""

    def __init__(
        self,
        snapshot: RegistrySnapshot,
        supplier: bytes,
        domain: Domain,
        services: Mapping[str, ServiceRuntime],
        meter: BudgetMeter,
        *,
        open_log: Callable[[SessionKey], SessionLog] | None = None,
        existing_records: Callable[[SessionKey], Iterable[LogRecord]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.supplier = supplier
        self.domain = domain
        self.services = services
        self.meter = meter
        self.max_body_bytes = max(s.max_body_bytes for s in services.values())
        self._open_log = open_log
        self._existing = existing_records
        self._contexts: dict[SessionKey, SessionContext] = {}
        self._shape: SessionShape | None = None
        self._redrawn_seen: dict[SessionKey, set[bytes]] = {}  # see on_reorg

    # -- step 1: body size ----------------------------------------------------------------

    def check_size(self, length: int | None) -> None:
        """Refuse a body larger than any served service allows, before reading it."""
        if length is not None and length > self.max_body_bytes:
            raise RelayRefused(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"body of {length} bytes exceeds the limit of {self.max_body_bytes}",
            )

    # -- the whole pipeline for one HTTP relay ----------------------------------------------

    def verify(self, header_value: str | None, payload: bytes) -> VerifiedRelay:
        """Every check, in order, for a plain (index 0) relay."""
        self.check_size(len(payload))
        vh = self.check_header(header_value, body_size=len(payload))
        return self.check_payload(vh, payload)

    def check_header(
        self, header_value: str | None, *, body_size: int = 0, stream: bool = False
    ) -> VerifiedHeader:
        """Header, service, supplier, session, slot, app stake, delegation. ``stream``: the
        header rides on a WebSocket upgrade (``max_index`` ≥ 1), else on a POST (0)."""
        if not header_value:
            raise RelayRefused(ErrorCode.MALFORMED_HEADER, "the Relay-Request header is missing")
        try:
            header, header_bytes, sig = decode_relay_request(header_value)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        if stream and header.max_index == 0:
            raise RelayRefused(
                ErrorCode.MALFORMED_HEADER, "a WebSocket relay needs max_index of at least 1"
            )
        if not stream and header.max_index != 0:
            raise RelayRefused(
                ErrorCode.MALFORMED_HEADER,
                f"a plain relay has max_index 0, not {header.max_index} (streams are WebSockets)",
            )
        service = self.services.get(header.service_id)
        if service is None or self.snapshot.service(header.service_id) is None:
            raise RelayRefused(
                ErrorCode.UNKNOWN_SERVICE, f"service {header.service_id!r} is not served here"
            )
        if body_size > service.max_body_bytes:
            raise RelayRefused(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"body of {body_size} bytes exceeds {service.service_id}'s limit of "
                f"{service.max_body_bytes}",
            )
        if header.supplier != self.supplier:
            raise RelayRefused(ErrorCode.WRONG_SUPPLIER, "the relay names another supplier")
        ctx = self._context(header)
        if header.max_index > ctx.max_stream_relays:
            raise RelayRefused(
                ErrorCode.MALFORMED_HEADER,
                f"max_index {header.max_index} exceeds max_stream_relays {ctx.max_stream_relays}",
            )
        signer = header.signer
        if signer != header.application:
            ok = ctx.delegated.get(signer)
            if ok is None:
                ok = ctx.delegated[signer] = self.snapshot.signer_ok(
                    header.application, signer, header.session
                )
            if not ok:
                raise RelayRefused(
                    ErrorCode.SIGNER_NOT_DELEGATED,
                    "the signer is neither the app nor a staked gateway it delegates to "
                    "(under the gateway's current epoch) in this session",
                )
        return VerifiedHeader(ctx, service, header, header_bytes, sig)

    def check_payload(self, vh: VerifiedHeader, payload: bytes) -> VerifiedRelay:
        """A POST's remaining checks: payload well formed and compute units → digest and
        replay → signature → payload hash → budget."""
        priced = self._price(vh, payload)
        signed = self.check_signature(vh)
        return self._admit(vh, signed, payload, priced)

    def check_signature(self, vh: VerifiedHeader) -> SignedHeader:
        """Digest, ``relay_key`` not seen in the session, signature recovering to the signer."""
        digest = request_digest_of_bytes(vh.header_bytes, vh.ctx.domain)
        key = relay_key(digest, 0)
        self._check_fresh(vh.ctx, key)
        try:
            signer = recover_signer(digest, vh.request_sig)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        if signer != vh.header.signer:
            raise RelayRefused(ErrorCode.BAD_SIGNATURE, "the signature is not the signer's")
        return SignedHeader(digest, key)

    def check_first_frame(
        self, vh: VerifiedHeader, signed: SignedHeader, payload: bytes
    ) -> VerifiedRelay:
        """A WebSocket relay's first frame: payload well formed, compute units, payload
        hash, budget (the header and signature were checked on the upgrade)."""
        priced = self._price(vh, payload)
        self._check_fresh(vh.ctx, signed.relay_key)  # another copy may have come in since
        return self._admit(vh, signed, payload, priced)

    def _price(self, vh: VerifiedHeader, payload: bytes) -> PricedCall:
        """The payload rule (the spec's handler applies it) and the compute units."""
        priced = vh.service.pricing.price(payload)
        cu = vh.header.compute_units
        if cu != priced.compute_units or cu > vh.ctx.max_cu:
            raise RelayRefused(
                ErrorCode.BAD_COMPUTE_UNITS,
                f"{priced.method} costs {priced.compute_units} compute units, the header says {cu}",
            )
        return priced

    @staticmethod
    def _check_fresh(ctx: SessionContext, key: bytes) -> None:
        if key in ctx.seen or key in ctx.inflight:
            raise RelayRefused(ErrorCode.REPLAYED_RELAY, "this signed request was already relayed")

    def _admit(
        self, vh: VerifiedHeader, signed: SignedHeader, payload: bytes, priced: PricedCall
    ) -> VerifiedRelay:
        """Payload hash → budget; then the relay key is reserved."""
        header, ctx = vh.header, vh.ctx
        if hashlib.sha256(payload).digest() != header.payload_hash:
            raise RelayRefused(
                ErrorCode.PAYLOAD_HASH_MISMATCH, "payload_hash does not match the body"
            )
        cost = header.compute_units * ctx.cu_price
        ctx.budget.charge(cost)
        ctx.inflight.add(signed.relay_key)
        return VerifiedRelay(
            ctx,
            vh.service,
            header,
            vh.header_bytes,
            vh.request_sig,
            signed.digest,
            signed.relay_key,
            payload,
            priced,
            cost,
        )

    def abandon(self, relay: VerifiedRelay) -> None:
        """The backend failed: refund the budget and free the relay key (nothing recorded)."""
        relay.ctx.inflight.discard(relay.relay_key)
        relay.ctx.budget.refund(relay.cost)

    # -- per-session context ----------------------------------------------------------------

    def shape(self) -> SessionShape:
        if self._shape is None:
            self._shape = self.snapshot.shape()
        return self._shape

    def _context(self, header: RelayHeader) -> SessionContext:
        key = SessionKey(header.service_id, header.application, header.session)
        head = self.snapshot.head()
        ctx = self._contexts.get(key)
        if ctx is not None:
            w = ctx.windows
            if head >= w.grace_end:
                raise RelayRefused(
                    ErrorCode.SESSION_EXPIRED,
                    f"session {key.n} ended its grace at block {w.grace_end}; head is {head}",
                )
            return ctx
        shape = self.shape()
        w = windows(shape, key.n)
        if head >= w.grace_end:
            raise RelayRefused(
                ErrorCode.SESSION_EXPIRED,
                f"session {key.n} ended its grace at block {w.grace_end}; head is {head}",
            )
        if head < w.h_n_block or self.snapshot.block_hash(w.h_n_block) is None:
            raise RelayRefused(
                ErrorCode.SESSION_NOT_STARTED,
                f"session {key.n} starts after block {w.h_n_block}; head is {head}",
            )
        try:
            session = hydrate(self.snapshot, key.service_id, key.app, key.n)
        except RelaynetError as exc:
            raise _refuse(exc) from None
        slots = () if session is None else session.slot_indexes(self.supplier)
        if session is None or not slots:
            raise RelayRefused(
                ErrorCode.NOT_IN_SESSION, f"this supplier holds no slot in session {key.n}"
            )
        if self.snapshot.app_service(key.app) != key.service_id:
            raise RelayRefused(ErrorCode.APP_NOT_STAKED, "the app is not staked for this service")
        stake = self.snapshot.app_stake(key.app, key.n)
        if stake <= 0:
            raise RelayRefused(ErrorCode.APP_NOT_STAKED, "the app has no stake in this session")
        econ = self.snapshot.economic_params(key.n)
        sparams = self.snapshot.service_params(key.service_id, key.n)
        limit = session_budget(len(slots), stake, shape.S, shape.P)
        chain_id = self.snapshot.chain_id(key.n)
        ctx = SessionContext(
            key=key,
            windows=w,
            session_id=session.seed,
            slots=tuple(slots),
            cu_price=econ.cu_price,
            max_cu=sparams.max_cu_per_relay,
            difficulty_bits=sparams.difficulty_bits,
            max_stream_relays=econ.max_stream_relays,
            budget=self.meter.account(key, limit),
            domain=self.domain if chain_id is None else self.domain.for_chain(chain_id),
        )
        self._restore(ctx)
        ctx.seen |= self._redrawn_seen.pop(key, set())  # a relay key is never answered twice
        self._contexts[key] = ctx
        return ctx

    def _restore(self, ctx: SessionContext) -> None:
        """After a restart: the relay keys and value already in this session's log."""
        if self._existing is None:
            return
        used = 0
        for record in self._existing(ctx.key):
            ctx.seen.add(record.relay_key)
            used += int.from_bytes(record.leaf[_LEAF_CU], "big") * ctx.cu_price
            ctx.relays += 1
        if used:
            ctx.budget.used = used

    def session_log(self, ctx: SessionContext) -> SessionLog:
        """The open log of the session (opened on its first recorded relay)."""
        log = ctx.log
        if log is None:
            if self._open_log is None:
                raise RelayRefused(ErrorCode.INTERNAL, "no relay log is configured")
            log = ctx.log = self._open_log(ctx.key)
        elif log.closed:  # retired for claiming: an answer now could not be claimed
            raise RelayRefused(
                ErrorCode.SESSION_EXPIRED, f"session {ctx.key.n} is closed for claiming"
            )
        return log

    def contexts(self) -> list[SessionContext]:
        return list(self._contexts.values())

    def on_reorg(self, _reorg: object = None) -> list[SessionKey]:
        """After a settlement-chain reorganisation: drop the cached contexts of the sessions
        the new branch re-drew (another seed, other slots of ours, or not known any more), so
        their next relay is checked afresh — refused when this supplier no longer holds a slot.
        Returns their keys."""
        gone = []
        for key, ctx in list(self._contexts.items()):
            try:
                session = hydrate(self.snapshot, key.service_id, key.app, key.n)
            except RelaynetError:
                session = None
            if (
                session is None
                or session.seed != ctx.session_id
                or tuple(session.slot_indexes(self.supplier)) != ctx.slots
            ):
                del self._contexts[key]
                self._redrawn_seen[key] = set(ctx.seen)
                gone.append(key)
        return gone

    def expire(self, head: int) -> list[SessionKey]:
        """Drop the contexts of sessions whose grace ended before ``head``; returns their keys."""
        gone = [k for k, c in self._contexts.items() if head > c.windows.grace_end]
        for key in gone:
            del self._contexts[key]
            self.meter.forget(key)
        w = self.shape()
        for key in [k for k in self._redrawn_seen if head > windows(w, k.n).grace_end]:
            del self._redrawn_seen[key]
        return gone
