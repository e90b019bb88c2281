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

The checks that read only the header's leading bytes (version … session: service, supplier,
session, slot, app stake, delegation) run once per :data:`protocol.relay.RELAY_SESSION_BYTES`
prefix; a later relay with the same prefix (the same signer in the same session) repeats only
what can change — its own fields, the service still registered, the body size, the session
not over — so it is decided exactly as the full checks would decide it. The remembered
prefixes go with the contexts (a reorganisation or the end of a session forgets them).

WebSocket relays run the same checks in two steps: the header-only ones through the signature
(:meth:`Verifier.check_header` then :meth:`Verifier.check_signature`) on the upgrade request,
before it is accepted; the payload ones (well formed, compute units, payload hash, budget:
:meth:`Verifier.check_first_frame`) on the first frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from protocol.errors import ErrorCode, ProtocolError, RelaynetError
from protocol.relay import (
    RELAY_HEADER_SIZE,
    RELAY_SESSION_BYTES,
    Domain,
    RelayHeader,
    SessionDigester,
    header_relay_fields,
    leaf_compute_units,
    recover_signer,
    relay_key,
    relay_request_bytes,
)
from protocol.settlement import budget as session_budget
from relayer.budget import BudgetMeter
from relayer.errors import RelayRefused
from relayer.interfaces import (
    PricedCall,
    ServiceRuntime,
    SessionContext,
    SignedHeader,
    VerifiedHeader,
    VerifiedRelay,
)
from relayer.relaylog import LogRecord, SessionKey
from session.hydrate import hydrate
from session.snapshot import RegistrySnapshot, SessionShape
from session.windows import Windows, windows

__all__ = ["Verifier"]


def _refuse(exc: RelaynetError) -> RelayRefused:
    return RelayRefused(exc.code, exc.message)


_KNOWN_PREFIXES = 4096  # remembered header prefixes (signers × sessions): bounded anyway


def _expired(key: SessionKey, w: Windows, head: int) -> RelayRefused:
    return RelayRefused(
        ErrorCode.SESSION_EXPIRED,
        f"session {key.n} ended its grace at block {w.grace_end}; head is {head}",
    )


def _unknown_service(service_id: str) -> RelayRefused:
    return RelayRefused(ErrorCode.UNKNOWN_SERVICE, f"service {service_id!r} is not served here")


def _check_max_index(max_index: int, stream: bool) -> None:
    """``max_index`` 0 on a POST, ≥ 1 on a WebSocket upgrade."""
    if stream and max_index == 0:
        raise RelayRefused(
            ErrorCode.MALFORMED_HEADER, "a WebSocket relay needs max_index of at least 1"
        )
    if not stream and max_index != 0:
        raise RelayRefused(
            ErrorCode.MALFORMED_HEADER,
            f"a plain relay has max_index 0, not {max_index} (streams are WebSockets)",
        )


def _over_stream_limit(max_index: int, ctx: SessionContext) -> RelayRefused:
    return RelayRefused(
        ErrorCode.MALFORMED_HEADER,
        f"max_index {max_index} exceeds max_stream_relays {ctx.max_stream_relays}",
    )


class Verifier:
    """The checks, with their per-session caches (a :class:`relayer.interfaces.RelayVerifier`).
    Not thread-safe (one event loop)."""

    def __init__(
        self,
        snapshot: RegistrySnapshot,
        supplier: bytes,
        domain: Domain,
        services: Mapping[str, ServiceRuntime],
        meter: BudgetMeter,
        *,
        existing_records: Callable[[SessionKey], Iterable[LogRecord]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.supplier = supplier
        self.domain = domain
        self.services = services
        self.meter = meter
        self.max_body_bytes = max(s.max_body_bytes for s in services.values())
        self._existing = existing_records
        #: by (service, app, n): a plain tuple hashes faster than a SessionKey, on every relay
        self._contexts: dict[tuple[str, bytes, int], SessionContext] = {}
        #: header prefix (version … session) → (service, context, signer, its digester) once
        #: it passed
        self._known: dict[bytes, tuple[ServiceRuntime, SessionContext, bytes, SessionDigester]] = {}
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
        """Every check, in order, for a plain (index 0) relay: size, header, then the payload's
        — well formed and compute units → digest and replay → signature → payload hash →
        budget."""
        size = len(payload)
        if size > self.max_body_bytes:
            self.check_size(size)
        vh = self.check_header(header_value, body_size=size)
        priced = self._price(vh, payload)
        digest, key = self._signed(vh)
        return self._admit(vh, digest, key, payload, priced)

    def check_header(
        self, header_value: str | None, *, body_size: int = 0, stream: bool = False
    ) -> VerifiedHeader:
        """Header, service, supplier, session, slot, app stake, delegation. ``stream``: the
        header rides on a WebSocket upgrade (``max_index`` ≥ 1), else on a POST (0)."""
        if not header_value:
            raise RelayRefused(ErrorCode.MALFORMED_HEADER, "the Relay-Request header is missing")
        try:
            raw = relay_request_bytes(header_value)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        known = self._known.get(raw[:RELAY_SESSION_BYTES])
        if known is None:
            return self._first_header(raw, body_size, stream)
        service, ctx, signer, digester = known
        try:
            payload_hash, _, max_index, cu = header_relay_fields(raw)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        if (max_index != 0) != stream:
            _check_max_index(max_index, stream)
        self._check_service(service, body_size)
        head = self.snapshot.head()
        if head >= ctx.windows.grace_end:
            raise _expired(ctx.key, ctx.windows, head)
        if max_index > ctx.max_stream_relays:
            raise _over_stream_limit(max_index, ctx)
        return VerifiedHeader(
            ctx,
            service,
            raw[:RELAY_HEADER_SIZE],
            raw[RELAY_HEADER_SIZE:],
            signer,
            payload_hash,
            max_index,
            cu,
            digester,
        )

    def _first_header(self, raw: bytes, body_size: int, stream: bool) -> VerifiedHeader:
        """Every header check, for a prefix not seen yet; a prefix that passes is remembered."""
        header_bytes = raw[:RELAY_HEADER_SIZE]
        try:
            header = RelayHeader.decode(header_bytes)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        _check_max_index(header.max_index, stream)
        service = self.services.get(header.service_id)
        if service is None:
            raise _unknown_service(header.service_id)
        self._check_service(service, body_size)
        if header.supplier != self.supplier:
            raise RelayRefused(ErrorCode.WRONG_SUPPLIER, "the relay names another supplier")
        ctx = self._context(header)
        if header.max_index > ctx.max_stream_relays:
            raise _over_stream_limit(header.max_index, ctx)
        if header.signer != header.application:
            self._check_delegated(ctx, header)
        digester = SessionDigester(header_bytes, ctx.domain)
        if len(self._known) >= _KNOWN_PREFIXES:
            self._known.clear()
        self._known[raw[:RELAY_SESSION_BYTES]] = (service, ctx, header.signer, digester)
        return VerifiedHeader(
            ctx,
            service,
            header_bytes,
            raw[RELAY_HEADER_SIZE:],
            header.signer,
            header.payload_hash,
            header.max_index,
            header.compute_units,
            digester,
        )

    def _check_service(self, service: ServiceRuntime, body_size: int) -> None:
        """The service is still registered, and the body within its limit."""
        if self.snapshot.service(service.service_id) is None:
            raise _unknown_service(service.service_id)
        if body_size > service.max_body_bytes:
            raise RelayRefused(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"body of {body_size} bytes exceeds {service.service_id}'s limit of "
                f"{service.max_body_bytes}",
            )

    def _check_delegated(self, ctx: SessionContext, header: RelayHeader) -> None:
        signer = header.signer
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

    def check_signature(self, vh: VerifiedHeader) -> SignedHeader:
        """Digest, ``relay_key`` not seen in the session, signature recovering to the signer."""
        return SignedHeader(*self._signed(vh))

    def _signed(self, vh: VerifiedHeader) -> tuple[bytes, bytes]:
        """:meth:`check_signature`'s checks: ``(digest, relay_key)``."""
        digest = vh.digester.digest(vh.header_bytes)
        key = relay_key(digest, 0)
        vh.ctx.check_fresh(key)
        try:
            signer = recover_signer(digest, vh.request_sig)
        except ProtocolError as exc:
            raise _refuse(exc) from None
        if signer != vh.signer:
            raise RelayRefused(ErrorCode.BAD_SIGNATURE, "the signature is not the signer's")
        return digest, key

    def check_first_frame(
        self, vh: VerifiedHeader, signed: SignedHeader, payload: bytes
    ) -> VerifiedRelay:
        """A WebSocket relay's first frame: payload well formed, compute units, payload
        hash, budget (the header and signature were checked on the upgrade; the key is
        checked again on reserving: another copy may have come in since)."""
        priced = self._price(vh, payload)
        return self._admit(vh, signed.digest, signed.relay_key, payload, priced)

    def _price(self, vh: VerifiedHeader, payload: bytes) -> PricedCall:
        """The payload rule (the spec's handler applies it), a backend for its role, and the
        compute units."""
        priced = vh.service.pricing.price(payload)
        vh.service.backend_url(priced.role)
        cu = vh.compute_units
        if cu != priced.compute_units or cu > vh.ctx.max_cu:
            raise RelayRefused(
                ErrorCode.BAD_COMPUTE_UNITS,
                f"{priced.method} costs {priced.compute_units} compute units, the header says {cu}",
            )
        return priced

    def _admit(
        self, vh: VerifiedHeader, digest: bytes, key: bytes, payload: bytes, priced: PricedCall
    ) -> VerifiedRelay:
        """Payload hash → budget; then the relay key is reserved."""
        ctx = vh.ctx
        if hashlib.sha256(payload).digest() != vh.payload_hash:
            raise RelayRefused(
                ErrorCode.PAYLOAD_HASH_MISMATCH, "payload_hash does not match the body"
            )
        cost = vh.compute_units * ctx.cu_price
        ctx.reserve(key, cost)
        return VerifiedRelay(
            ctx,
            vh.service,
            vh.header_bytes,
            vh.request_sig,
            digest,
            key,
            payload,
            priced,
            cost,
            vh.max_index,
        )

    def release(self, relay: VerifiedRelay) -> None:
        """The relay will not be recorded: refund its budget and free its key."""
        relay.ctx.release(relay.relay_key, relay.cost)

    def grace_ended(self, ctx: SessionContext) -> bool:
        return self.snapshot.head() >= ctx.windows.grace_end

    # -- per-session context ----------------------------------------------------------------

    def shape(self) -> SessionShape:
        if self._shape is None:
            self._shape = self.snapshot.shape()
        return self._shape

    def _context(self, header: RelayHeader) -> SessionContext:
        head = self.snapshot.head()
        ident = (header.service_id, header.application, header.session)
        ctx = self._contexts.get(ident)
        if ctx is None:
            key = SessionKey(*ident)
            ctx = self._contexts[ident] = self._open_context(key, head)
        elif head >= ctx.windows.grace_end:
            raise _expired(ctx.key, ctx.windows, head)
        return ctx

    def _open_context(self, key: SessionKey, head: int) -> SessionContext:
        """A session's first relay: its windows, slots, app stake and budget, parameters and
        domain — and, after a restart, what its log already holds."""
        shape = self.shape()
        w = windows(shape, key.n)
        if head >= w.grace_end:
            raise _expired(key, w, head)
        if head < w.h_n_block or self.snapshot.block_hash(w.h_n_block) is None:
            raise RelayRefused(
                ErrorCode.SESSION_NOT_STARTED,
                f"session {key.n} starts after block {w.h_n_block}; head is {head}",
            )
        session_id, slots = self._slots(key)
        if self.snapshot.app_service(key.app) != key.service_id:
            raise RelayRefused(ErrorCode.APP_NOT_STAKED, "the app is not staked for this service")
        stake = self.snapshot.app_stake(key.app, key.n)
        if stake <= 0:
            raise RelayRefused(ErrorCode.APP_NOT_STAKED, "the app has no stake in this session")
        econ = self.snapshot.economic_params(key.n)
        sparams = self.snapshot.service_params(key.service_id, key.n)
        chain_id = self.snapshot.chain_id(key.n)
        recorded = self._recorded(key, econ.cu_price)
        seen = recorded | self._redrawn_seen.pop(key, set())  # a relay key is never answered twice
        return SessionContext(
            key=key,
            windows=w,
            session_id=session_id,
            slots=slots,
            cu_price=econ.cu_price,
            max_cu=sparams.max_cu_per_relay,
            difficulty_bits=sparams.difficulty_bits,
            max_stream_relays=econ.max_stream_relays,
            budget=self.meter.account(key, session_budget(len(slots), stake, shape.S, shape.P)),
            domain=self.domain if chain_id is None else self.domain.for_chain(chain_id),
            seen=seen,
            relays=len(recorded),
        )

    def _slots(self, key: SessionKey) -> tuple[bytes, tuple[int, ...]]:
        """The session's seed and the slots this supplier holds in it (NOT_IN_SESSION: none)."""
        try:
            session = hydrate(self.snapshot, key.service_id, key.app, key.n)
        except RelaynetError as exc:
            raise _refuse(exc) from None
        slots = () if session is None else session.slot_indexes(self.supplier)
        if session is None or not slots:
            raise RelayRefused(
                ErrorCode.NOT_IN_SESSION, f"this supplier holds no slot in session {key.n}"
            )
        return session.seed, tuple(slots)

    def _recorded(self, key: SessionKey, cu_price: int) -> set[bytes]:
        """After a restart: the relay keys already in the session's log; the value they
        recorded restores the budget meter (:meth:`BudgetMeter.restore`)."""
        seen: set[bytes] = set()
        if self._existing is None:
            return seen
        units = 0
        for record in self._existing(key):
            seen.add(record.relay_key)
            units += leaf_compute_units(record.leaf)
        if units:
            self.meter.restore(key, units * cu_price)
        return seen

    def contexts(self) -> list[SessionContext]:
        return list(self._contexts.values())

    def on_reorg(self, _reorg: object = None) -> list[SessionKey]:
        """After a settlement-chain reorganisation: drop the cached contexts of the sessions
        the new branch re-drew (another seed, other slots of ours, or not known any more), so
        their next relay is checked afresh — refused when this supplier no longer holds a slot.
        Returns their keys."""
        gone = []
        for ident, ctx in list(self._contexts.items()):
            key = ctx.key
            try:
                session = hydrate(self.snapshot, key.service_id, key.app, key.n)
            except RelaynetError:
                session = None
            if (
                session is None
                or session.seed != ctx.session_id
                or tuple(session.slot_indexes(self.supplier)) != ctx.slots
            ):
                del self._contexts[ident]
                self._redrawn_seen[key] = set(ctx.seen)
                gone.append(key)
        if gone:
            self._known.clear()
        return gone

    def expire(self, head: int) -> list[SessionKey]:
        """Drop the contexts of sessions whose grace ended before ``head``; returns their keys."""
        gone = [i for i, c in self._contexts.items() if head > c.windows.grace_end]
        keys = []
        for ident in gone:
            key = self._contexts.pop(ident).key
            self.meter.forget(key)
            keys.append(key)
        if gone:
            self._known.clear()
        w = self.shape()
        for key in [k for k in self._redrawn_seen if head > windows(w, k.n).grace_end]:
            del self._redrawn_seen[key]
        return keys
