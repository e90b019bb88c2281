"""The gateway's one upstream seam: signed relays and relay streams to suppliers, and the
checks of what comes back (DESIGN §3.3, §4).

The gateway signs ``RH`` as EIP-712 typed data with its account key (the signer; apps delegate
to it), POSTs the payload to the supplier's registered endpoint with ``Relay-Request``, and
validates the answer before anyone sees it:

1. ``Relay-Backend-Status`` is a decimal in 100–599, and there is no ``Content-Encoding``;
2. the body is read under the call's size cap (never buffered past it) and against the
   gateway-wide :class:`AnswerBudget` (past it the gateway sheds load: :class:`Overloaded`);
3. ``Relay-Receipt`` is 96 bytes of base64 whose ``response_hash`` equals
   ``sha256(uint16(status) ‖ body)`` — on every answer; the ed25519 signature on every answer
   or a random share (``receipt_check``).

Every failure is a :class:`RelayError` whose ``outcome`` drives retries and whose ``refusal``
says whose fault it is (``Refusal.LIE``: the supplier's, counted in selection).

A stream (WebSocket transport) is opened by :meth:`RelayClient.open_stream` — sign with
``max_index``, upgrade on the supplier's endpoint, send the payload — and read as
:class:`RelayStream` events: a :class:`Frame` whose receipt was checked in full, a
:class:`Closed` (the relayer's close code, or none), or a :class:`Broken` stream (a fault).
What an ending means for the subscription is :mod:`gateway.streams`' rule, not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import WSMsgType

from gateway.endpoints import EndpointRefused, EndpointRefusedOSError, check_literal
from gateway.errors import ClientReason, GatewayError
from gateway.failsafe.retry import Outcome
from gateway.streams import Fault
from protocol.errors import ERROR_TABLE, ErrorCode, ProtocolError, Refusal, refusal_of
from protocol.keys import AccountKey
from protocol.relay import (
    RELAY_SESSION_BYTES,
    RELAY_VERSION,
    WS_STATUS,
    Domain,
    RelayHeader,
    decode_receipt,
    decode_ws_frame,
    encode_relay_request,
    request_digest_of_bytes,
    sign_request,
    verify_receipt,
)
from transport.http1 import (
    BodyTooLarge,
    ConnectFailed,
    HttpClient,
    HttpError,
    HttpResponse,
    OverBudget,
    Route,
)
from transport.logs import REQUEST

__all__ = [
    "DEFAULT_ANSWER_BUDGET",
    "DEFAULT_ANSWER_CAP",
    "AnswerBudget",
    "Broken",
    "Closed",
    "Frame",
    "Overloaded",
    "RelayAnswer",
    "RelayClient",
    "RelayError",
    "RelayStream",
    "Signed",
    "StreamUnavailable",
    "Target",
    "classify_code",
    "parse_backend_status",
]

DEFAULT_ANSWER_CAP = 16 * 1024 * 1024
DEFAULT_ANSWER_BUDGET = 512 * 1024 * 1024
_CHUNK = 64 * 1024
#: what one POST gives back: status, body, Relay-Backend-Status, Relay-Receipt
_Posted = tuple[int, bytes, str | None, str | None]
_JSON_HEADERS = {"Content-Type": "application/json"}
_STATUSES = {str(code): code for code in range(100, 600)}  # what "[1-5][0-9][0-9]" matches


def classify_code(code: ErrorCode | None) -> Outcome:
    """How a relayer's refusal bears on retries (DESIGN §3.3's refusal classes).

    A lie may hide anything (the payload may have reached a backend), so only idempotent calls
    go again; a supplier-specific or view-dependent refusal, a budget or a rate limit come
    before the payload is forwarded (safe even for writes); a backend failure or ``INTERNAL``
    may come after it.

    >>> classify_code(ErrorCode.METHOD_DENIED), classify_code(ErrorCode.BACKEND_TIMEOUT)
    (<Outcome.UNSENT: 'unsent'>, <Outcome.RETRYABLE: 'retryable'>)
    >>> classify_code(None)  # a code not in the table: a lie
    <Outcome.MAYBE_SENT: 'maybe_sent'>
    """
    refusal = Refusal.LIE if code is None else refusal_of(code.value)[1]
    if code is None or refusal is Refusal.LIE:
        return Outcome.MAYBE_SENT
    if ERROR_TABLE[code].forwarded:  # a backend failure: the payload may have reached it
        return Outcome.RETRYABLE
    return Outcome.UNSENT


def parse_backend_status(value: str | None) -> int | None:
    """``Relay-Backend-Status`` as an int when it is a plain decimal in 100–599, else None.

    >>> parse_backend_status("200"), parse_backend_status("70000"), parse_backend_status("+200")
    (200, None, None)
    """
    return None if value is None else _STATUSES.get(value)


class Overloaded(GatewayError):
    """The answers buffered at once would pass the gateway's budget: shed load (503)."""

    reason = ClientReason.OVERLOADED
    retry_after = 1


class AnswerBudget:
    """One budget for every answer body buffered at once (DESIGN §4, default 512 MiB).

    >>> b = AnswerBudget(100)
    >>> b.take(60), b.take(50), b.take(40), b.in_use, b.high_water
    (True, False, True, 100, 100)
    >>> b.give(100); b.in_use
    0
    """

    def __init__(self, limit: int = DEFAULT_ANSWER_BUDGET) -> None:
        self.limit = limit
        self.in_use = 0
        self.high_water = 0
        self.shed = 0

    def take(self, n: int) -> bool:
        if self.in_use + n > self.limit:
            self.shed += 1
            return False
        self.in_use += n
        self.high_water = max(self.high_water, self.in_use)
        return True

    def give(self, n: int) -> None:
        self.in_use = max(0, self.in_use - n)


@dataclass(frozen=True, slots=True)
class Target:
    """One supplier of one session, as the gateway relays to it."""

    service_id: str
    app: bytes
    n: int
    supplier: bytes
    endpoint: str
    receipt_key: bytes | None


class _Nonces:
    """16-byte relay nonces drawn from the OS 256 at a time (one ``getrandom`` per 256
    relays, not one per relay); a forked worker draws its own."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._pool, self._at = b"", 0

    def __call__(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(16 * 256), 0
        self._at = at + 16
        return self._pool[at : at + 16]


nonce = _Nonces()


class _Upstream:
    """What every relay to one target shares, built once per target (session views keep
    their targets): RH's first bytes (version … session), its endpoint checked and its route
    on the fast client."""

    __slots__ = ("fixed", "opened", "route", "target")

    def __init__(self, target: Target, fixed: bytes) -> None:
        self.target = target
        self.fixed = fixed
        self.opened = False  # endpoint checked, route made (:meth:`RelayClient._open`)
        self.route: Route | None = None


@dataclass(slots=True)  # not frozen: one per relay on the hot path
class Signed:
    header_bytes: bytes  # RH, the 157 wire bytes
    digest: bytes
    relay_request: str  # the Relay-Request header value

    @property
    def header(self) -> RelayHeader:
        return RelayHeader.decode(self.header_bytes)


#: RH's bytes after ``payload_hash ‖ nonce``: ``max_index``, ``compute_units`` (DESIGN §3.3)
_HEADER_TAIL = struct.Struct(">II")
_UINT32 = 1 << 32


@dataclass(slots=True)  # not frozen: one per relay on the hot path
class RelayAnswer:
    """A relayed answer: the backend's status and bytes, plus the proof of who served it."""

    supplier: bytes
    status: int
    body: bytes
    relay_request: str
    relay_receipt: str
    latency: float
    receipt_checked: bool
    # an unverified signature, for :meth:`RelayClient.confirm` before the answer is trusted
    # further (cache, quorum): (target, digest, response hash, signature)
    unverified: tuple[Target, bytes, bytes, bytes] | None = None


class RelayError(GatewayError):
    """One attempt failed; ``outcome`` drives the retry decision, ``refusal`` the blame
    (``Refusal.LIE``: a malformed or lying answer, the supplier's fault), ``oversized`` an
    answer over the call's size cap (blamed only once another supplier answered within it)."""

    def __init__(
        self,
        message: str,
        *,
        outcome: Outcome,
        relay_code: ErrorCode | None = None,
        supplier: bytes = b"",
        refused: bool = False,
        refusal: Refusal | None = None,
        oversized: bool = False,
    ) -> None:
        super().__init__(message)
        self.refused = refused  # the endpoint itself is refused (private address, bad URL)
        self.outcome = outcome
        self.relay_code = relay_code
        self.supplier = supplier
        self.refusal = refusal
        self.oversized = oversized

    @property
    def lie(self) -> bool:
        return self.refusal is Refusal.LIE


_UNTRUSTED: set[str] = set()  # endpoints whose certificate failed verification (logged once)


def _untrusted(target: Target, exc: BaseException) -> None:
    """Say once per endpoint why a relayer's https:// endpoint is refused: its certificate
    does not verify against ``[relay] ca_file`` (or the system's bundle)."""
    if target.endpoint not in _UNTRUSTED:
        _UNTRUSTED.add(target.endpoint)
        logging.getLogger("relaynet.gateway").warning(
            "relayer 0x%s at %s refused: its TLS certificate does not verify (%s)",
            target.supplier.hex(),
            target.endpoint,
            getattr(exc, "verify_message", None) or exc,
        )


class StreamUnavailable(GatewayError):
    """A stream could not be opened; ``fault``: counted against the supplier in selection."""

    def __init__(self, message: str, *, fault: bool) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class Frame:
    """A pushed frame whose receipt verified: its index and the backend's message."""

    index: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The relayer closed the stream (``code`` None: the connection went without a close)."""

    code: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Broken:
    """The stream broke the wire rules: a bad receipt, a text frame, no pong."""

    fault: Fault
    detail: str


class RelayStream:
    """One open relay stream: its frames checked against the supplier's receipt key."""

    def __init__(
        self, target: Target, digest: bytes, max_index: int, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        self.target = target
        self.digest = digest
        self.max_index = max_index
        self._ws = ws

    async def receive(self) -> Frame | Closed | Broken:
        """The next event from the relayer."""
        msg = await self._ws.receive()
        if msg.type is WSMsgType.BINARY:
            try:
                return self._check(msg.data)
            except ProtocolError as exc:
                return Broken(Fault.BAD_RECEIPT, exc.message)
        if msg.type is WSMsgType.CLOSE:
            code, reason = msg.data, msg.extra
            return Closed(
                code if isinstance(code, int) else None, reason if isinstance(reason, str) else ""
            )
        if msg.type is WSMsgType.ERROR and isinstance(msg.data, aiohttp.ServerTimeoutError):
            return Broken(Fault.NO_PONG, str(msg.data))
        if msg.type is WSMsgType.TEXT:
            return Broken(Fault.BAD_FRAME, "a text frame")
        return Closed(None)

    def _check(self, data: bytes) -> Frame:
        """A frame's index and body, its receipt checked in full (``ProtocolError`` if bad)."""
        index, rhash, rsig, body = decode_ws_frame(data)
        expected = hashlib.sha256(WS_STATUS.to_bytes(2, "big") + body).digest()
        if rhash != expected or self.target.receipt_key is None:
            raise ProtocolError("bad stream receipt")
        verify_receipt(self.target.receipt_key, self.digest, index, rhash, rsig)
        return Frame(index, body)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


def _lie(message: str, target: Target) -> RelayError:
    """A malformed answer: the backend answered (the relay may have acted), the supplier lies."""
    return RelayError(
        message,
        outcome=Outcome.MAYBE_SENT,
        relay_code=ErrorCode.BAD_RECEIPT,
        supplier=target.supplier,
        refusal=Refusal.LIE,
    )


#: What transport.http1 raises for one exchange (mapped by :func:`_fast_failure`).
_FAST_FAILURES = (OSError, HttpError, ValueError)


def _fast_failure(target: Target, exc: Exception, max_bytes: int) -> Exception:
    """The gateway's error for a failed exchange on transport.http1."""
    if isinstance(exc, EndpointRefusedOSError):
        return RelayError(str(exc), outcome=Outcome.UNSENT, supplier=target.supplier, refused=True)
    if isinstance(exc, OverBudget):
        return Overloaded("too many answers in flight: try again shortly")
    if isinstance(exc, BodyTooLarge):
        return RelayClient._oversized(target, max_bytes)
    if isinstance(exc, TimeoutError):  # (an OSError) the relay may have reached a backend
        return RelayError("relay timed out", outcome=Outcome.MAYBE_SENT, supplier=target.supplier)
    if isinstance(exc, ConnectFailed | OSError):
        if isinstance(exc.__cause__ or exc, ssl.SSLCertVerificationError):
            _untrusted(target, exc.__cause__ or exc)
        return RelayError(
            f"cannot connect: {exc}", outcome=Outcome.UNSENT, supplier=target.supplier
        )
    return RelayError(
        f"relay failed: {exc!r}", outcome=Outcome.MAYBE_SENT, supplier=target.supplier
    )


def _fast_posted(target: Target, resp: HttpResponse) -> _Posted:
    """An exchange's status, body, ``Relay-Backend-Status`` and ``Relay-Receipt``; an answer
    with a content encoding is a lie."""
    receipt = resp.header(b"relay-receipt")
    encoding = resp.header(b"content-encoding")
    if encoding and resp.status == 200 and receipt is not None:
        encoding = encoding.strip().lower()
        if encoding != "identity":
            raise _lie(f"answer has a content encoding ({encoding[:32]})", target)
    return resp.status, resp.body, resp.header(b"relay-backend-status"), receipt


class RelayClient:
    """Signs and sends relays over one pooled HTTP client session."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        key: AccountKey,
        domain: Domain,
        *,
        devnet: bool,
        receipt_check: float = 1.0,
        rng: random.Random | None = None,
        chain_id_of: Callable[[int], int | None] | None = None,
        budget: AnswerBudget | None = None,
        fast: HttpClient | None = None,
    ) -> None:
        self.http = http  # upstream WebSockets (and relays when ``fast`` is None)
        self.fast = fast  # the hot path's HTTP/1.1 client (transport.http1)
        self.key = key
        self.domain = domain
        self.chain_id_of = chain_id_of  # session n -> its recorded chain id (DESIGN §3.5)
        self.devnet = devnet
        self.receipt_check = receipt_check
        self.budget = budget or AnswerBudget()
        self._rng = rng or random.Random()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._upstreams: dict[int, _Upstream] = {}  # id(target) -> what its relays share
        self.on_late_lie: Callable[[Target], None] | None = None
        self.late_checks = 0
        self.late_lies = 0

    async def open_stream(
        self,
        target: Target,
        payload: bytes,
        compute_units: int,
        max_index: int,
        *,
        max_msg_size: int,
        heartbeat: float,
    ) -> RelayStream:
        """Sign a stream for ``max_index`` pushes, upgrade on the supplier's endpoint and send
        ``payload``; the caller reads the index-0 answer first. Raises
        :class:`StreamUnavailable` when the stream cannot be opened."""
        signed = self.sign(target, payload, compute_units, max_index=max_index)
        try:
            ws = await self.http.ws_connect(
                target.endpoint,
                headers=dict(_relay_headers(signed)),
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                max_msg_size=max_msg_size,
                heartbeat=heartbeat,
            )
        except aiohttp.WSServerHandshakeError as exc:
            # a refusal (e.g. the session has not started for it yet) is not a fault
            raise StreamUnavailable(
                f"upgrade refused: HTTP {exc.status}", fault=exc.status >= 500
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StreamUnavailable(f"cannot connect: {exc!r}", fault=True) from exc
        stream = RelayStream(target, signed.digest, max_index, ws)
        try:
            await ws.send_bytes(payload)
        except (aiohttp.ClientError, ConnectionError) as exc:
            await stream.close()
            raise StreamUnavailable(f"cannot send: {exc!r}", fault=True) from exc
        return stream

    def domain_of(self, n: int) -> Domain:
        """The EIP-712 domain of session ``n``: under its chain id when the registry knows it."""
        chain_id = None if self.chain_id_of is None else self.chain_id_of(n)
        return self.domain if chain_id is None else self.domain.for_chain(chain_id)

    @property
    def signer(self) -> bytes:
        return self.key.address

    def sign(
        self, target: Target, payload: bytes, compute_units: int, max_index: int = 0
    ) -> Signed:
        """``RH`` for this payload (a fresh nonce), its EIP-712 digest under session
        ``target.n``'s domain, and the ``Relay-Request`` value carrying the signature."""
        return self._sign(self._upstream(target), payload, compute_units, max_index)

    def _sign(self, up: _Upstream, payload: bytes, compute_units: int, max_index: int) -> Signed:
        target = up.target
        if 0 < compute_units < _UINT32 and 0 <= max_index < _UINT32:
            rh = (
                up.fixed
                + hashlib.sha256(payload).digest()
                + nonce()
                + _HEADER_TAIL.pack(max_index, compute_units)
            )
        else:  # out of range: RelayHeader says which field (MALFORMED_HEADER)
            rh = self._header(target, payload, compute_units, max_index).encode()
        digest = request_digest_of_bytes(rh, self.domain_of(target.n))
        sig = sign_request(digest, self.key)
        return Signed(rh, digest, encode_relay_request(rh, sig))

    def _header(
        self, target: Target, payload: bytes, compute_units: int, max_index: int
    ) -> RelayHeader:
        return RelayHeader(
            version=RELAY_VERSION,
            service_id=target.service_id,
            application=target.app,
            signer=self.key.address,
            supplier=target.supplier,
            session=target.n,
            payload_hash=hashlib.sha256(payload).digest(),
            nonce=nonce(),
            max_index=max_index,
            compute_units=compute_units,
        )

    def _upstream(self, target: Target) -> _Upstream:
        """The target's :class:`_Upstream` (RH's first bytes encoded and checked once)."""
        up = self._upstreams.get(id(target))
        if up is not None and up.target is target:
            return up
        fixed = self._header(target, b"", 1, 0).encode()[:RELAY_SESSION_BYTES]
        if len(self._upstreams) >= 4096:
            self._upstreams.clear()
        up = self._upstreams[id(target)] = _Upstream(target, fixed)
        return up

    def _open(self, up: _Upstream) -> None:
        """Before a target's first relay: its endpoint checked (addresses: GuardedConnector,
        when it connects) and its POST route on the fast client made."""
        target = up.target
        try:
            check_literal(target.endpoint)
            if self.fast is not None:
                up.route = self.fast.route("POST", target.endpoint, _JSON_HEADERS)
        except EndpointRefused as exc:
            raise RelayError(
                exc.message, outcome=Outcome.UNSENT, supplier=target.supplier, refused=True
            ) from exc
        except ValueError as exc:  # the route's own URL checks
            raise RelayError(
                f"relay failed: {exc!r}", outcome=Outcome.MAYBE_SENT, supplier=target.supplier
            ) from exc
        up.opened = True

    def check_receipt(
        self,
        target: Target,
        digest: bytes,
        status: int,
        body: bytes,
        receipt: str,
        *,
        inline: bool = True,
    ) -> tuple[bytes, bytes] | None:
        """Check a receipt per DESIGN §6: its shape and ``response_hash`` always; the ed25519
        signature now when ``inline`` (answers after a failure) or when every receipt is
        checked (``receipt_check`` 1.0), else on a ``receipt_check`` share off the critical
        path (:meth:`_late_check`, scheduled after the answer is returned). Returns None when
        the signature was verified, else ``(rhash, signature)`` for :meth:`confirm`; raises
        ``RelayError`` (a lie) when anything checked is wrong."""
        try:
            rhash, rsig = decode_receipt(receipt)
        except ProtocolError as exc:
            raise _lie(f"bad receipt: {exc.message}", target) from exc
        h = hashlib.sha256(status.to_bytes(2, "big"))
        h.update(body)  # not ``bytes + body``: no copy of the answer
        if rhash != h.digest():
            raise _lie("bad receipt: response hash mismatch", target)
        if inline or self.receipt_check >= 1.0:
            self._verify(target, digest, rhash, rsig)
            return None
        if self._rng.random() < self.receipt_check:
            asyncio.get_running_loop().call_soon(self._late_check, target, digest, rhash, rsig)
            self.late_checks += 1
        return rhash, rsig

    def _verify(self, target: Target, digest: bytes, rhash: bytes, rsig: bytes) -> None:
        try:
            if target.receipt_key is None:
                raise ProtocolError("supplier has no receipt key", code=ErrorCode.BAD_RECEIPT)
            verify_receipt(target.receipt_key, digest, 0, rhash, rsig)
        except ProtocolError as exc:
            raise _lie(f"bad receipt: {exc.message}", target) from exc

    def _late_check(self, target: Target, digest: bytes, rhash: bytes, rsig: bytes) -> None:
        """A sampled signature check after the answer went out: a failure counts against the
        supplier (``on_late_lie``)."""
        try:
            self._verify(target, digest, rhash, rsig)
        except RelayError:
            self.late_lies += 1
            if self.on_late_lie is not None:
                self.on_late_lie(target)

    def confirm(self, answer: RelayAnswer) -> None:
        """Verify an answer's signature now if it was not yet (before it enters the cache or
        counts in a quorum); raises ``RelayError`` (a lie) when it is bad."""
        if answer.unverified is not None:
            self._verify(*answer.unverified)

    async def relay(
        self,
        target: Target,
        payload: bytes,
        compute_units: int,
        *,
        attempt_timeout: float,
        max_bytes: int = DEFAULT_ANSWER_CAP,
        inline: bool = False,
    ) -> RelayAnswer:
        """One attempt: sign, POST, validate (the receipt's signature now when ``inline``).
        Raises :class:`RelayError` on any failure, :class:`Overloaded` when the answer does
        not fit the gateway's budget."""
        up = self._upstream(target)
        if not up.opened:
            self._open(up)
        signed = self._sign(up, payload, compute_units, 0)
        started = time.perf_counter()
        fast = self.fast
        if fast is None or up.route is None:
            posted = await self._post_aiohttp(target, payload, signed, attempt_timeout, max_bytes)
        else:  # transport.http1, awaited here: no coroutine of its own per relay
            try:
                resp = await fast.request(
                    up.route,
                    payload,
                    extra_headers=_relay_headers(signed),
                    within=attempt_timeout,
                    max_body=max_bytes,
                    max_error_body=min(max_bytes, _CHUNK),
                    budget=self.budget,
                )
            except _FAST_FAILURES as exc:
                raise _fast_failure(target, exc, max_bytes) from exc
            posted = _fast_posted(target, resp)
        latency = time.perf_counter() - started
        return self._answer(target, signed, posted, latency, inline)

    def _answer(
        self, target: Target, signed: Signed, posted: _Posted, latency: float, inline: bool
    ) -> RelayAnswer:
        """What came back, checked: a relay-layer refusal or a lie raise :class:`RelayError`."""
        status, body, backend_status, receipt = posted
        if status != 200 or receipt is None or backend_status is None:
            raise self._relay_layer_error(target, status, body)
        bstatus = _STATUSES.get(backend_status)  # parse_backend_status
        if bstatus is None:
            raise _lie(f"bad Relay-Backend-Status {backend_status[:16]!r}", target)
        digest = signed.digest
        pending = self.check_receipt(target, digest, bstatus, body, receipt, inline=inline)
        return RelayAnswer(
            target.supplier,
            bstatus,
            body,
            signed.relay_request,
            receipt,
            latency,
            pending is None,
            None if pending is None else (target, digest, *pending),
        )

    async def _post_aiohttp(
        self, target: Target, payload: bytes, signed: Signed, attempt_timeout: float, max_bytes: int
    ) -> _Posted:
        headers = {"Content-Type": "application/json", **dict(_relay_headers(signed))}
        timeout = self._timeouts.get(attempt_timeout)
        if timeout is None:
            if len(self._timeouts) > 256:
                self._timeouts.clear()
            timeout = self._timeouts[attempt_timeout] = aiohttp.ClientTimeout(total=attempt_timeout)
        held = 0
        try:
            async with self.http.post(
                target.endpoint,
                data=payload,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                backend_status = resp.headers.get("Relay-Backend-Status")
                receipt = resp.headers.get("Relay-Receipt")
                encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
                if status == 200 and receipt is not None and encoding != "identity":
                    raise _lie(f"answer has a content encoding ({encoding[:32]})", target)
                # a relay-layer error body is small: no reason to buffer much of one
                cap = max_bytes if status == 200 else min(max_bytes, _CHUNK)
                body, held = await self._read(resp, target, cap)
        except aiohttp.ClientConnectorError as exc:
            os_error = getattr(exc, "os_error", None)
            refused = isinstance(os_error, EndpointRefusedOSError)
            why = str(os_error) if refused else f"cannot connect: {exc}"
            raise RelayError(
                why, outcome=Outcome.UNSENT, supplier=target.supplier, refused=refused
            ) from exc
        except TimeoutError as exc:
            raise RelayError(
                "relay timed out", outcome=Outcome.MAYBE_SENT, supplier=target.supplier
            ) from exc
        except aiohttp.ClientError as exc:
            raise RelayError(
                f"relay failed: {exc!r}", outcome=Outcome.MAYBE_SENT, supplier=target.supplier
            ) from exc
        finally:
            # the body belongs to the caller from here; the budget bounds the reading
            self.budget.give(held)
        return status, body, backend_status, receipt

    async def _read(
        self, resp: aiohttp.ClientResponse, target: Target, cap: int
    ) -> tuple[bytes, int]:
        """The body, read under ``cap`` and the budget: ``(body, bytes held in the budget)``.
        Never buffers past the cap; the caller gives the held bytes back."""
        declared = resp.content_length
        if declared is not None and declared > cap:
            raise self._oversized(target, cap)
        held = 0
        if declared is not None:
            if not self.budget.take(declared):
                raise Overloaded("too many answers in flight: try again shortly")
            held = declared
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await resp.content.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise self._oversized(target, cap)
                if size > held:
                    if not self.budget.take(size - held):
                        raise Overloaded("too many answers in flight: try again shortly")
                    held = size
                parts.append(chunk)
        except BaseException:
            self.budget.give(held)
            raise
        return b"".join(parts), held

    @staticmethod
    def _oversized(target: Target, cap: int) -> RelayError:
        return RelayError(
            f"answer over its cap of {cap} bytes",
            outcome=Outcome.MAYBE_SENT,
            supplier=target.supplier,
            oversized=True,
        )

    @staticmethod
    def _relay_layer_error(target: Target, status: int, body: bytes) -> RelayError:
        """A refusal: its code and class from the table (an invented code is a lie; so is a
        refusal without the relay-layer body, or a '200' missing its receipt)."""
        message = f"relayer answered HTTP {status}"
        data: object = None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if status == 200 or not isinstance(data, dict) or not isinstance(data.get("code"), str):
            return RelayError(
                f"{message} without a receipt or a relay-layer error body",
                outcome=Outcome.MAYBE_SENT,
                supplier=target.supplier,
                refusal=Refusal.LIE,
            )
        code, refusal = refusal_of(data["code"])
        text = data.get("message")
        shown = data["code"][:40] if code is None else code.value
        message = f"{shown}: {text[:200] if isinstance(text, str) else ''}"
        return RelayError(
            message,
            outcome=classify_code(code),
            relay_code=code,
            supplier=target.supplier,
            refusal=refusal,
        )


def _relay_headers(signed: Signed) -> tuple[tuple[str, str], ...]:
    """``Relay-Request``, and the gateway's own ``Relay-Request-Id`` of the client request
    being served (never a client's header), so the relayer's log lines carry the same id."""
    fields = REQUEST.get()
    rid = fields.get("request_id") if fields is not None else None
    if rid is None:
        return (("Relay-Request", signed.relay_request),)
    return (("Relay-Request", signed.relay_request), ("Relay-Request-Id", str(rid)))
