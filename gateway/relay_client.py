"""Send one signed relay to one supplier and check what comes back (DESIGN §3.3).

The gateway signs ``RH`` as EIP-712 typed data with its account key (the signer; apps delegate
to it), POSTs the payload to the supplier's registered endpoint with ``Relay-Request``, and
verifies the ``Relay-Receipt`` (ed25519 over the digest and ``sha256(status ‖ body)``) on all
answers or a random share. Every transport failure and relay-layer error is classified as an
:class:`~gateway.failsafe.retry.Outcome` so the router can decide on retries.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from gateway.endpoints import EndpointRefused, EndpointRefusedOSError, check_literal
from gateway.errors import GatewayError
from gateway.failsafe.retry import Outcome
from protocol.errors import ErrorCode, ProtocolError
from protocol.keys import AccountKey
from protocol.relay import (
    RELAY_VERSION,
    Domain,
    RelayHeader,
    decode_receipt,
    encode_relay_request,
    request_digest,
    sign_request,
    verify_receipt,
)

__all__ = ["RelayAnswer", "RelayClient", "RelayError", "Signed", "Target", "classify_code"]

# Refusals another supplier would repeat (they are about the request itself).
_FATAL = frozenset(
    {
        ErrorCode.MALFORMED_HEADER,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.PAYLOAD_HASH_MISMATCH,
        ErrorCode.BATCH_NOT_RELAYABLE,
        ErrorCode.METHOD_DENIED,
        ErrorCode.BAD_COMPUTE_UNITS,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.MALFORMED_INPUT,
    }
)
# Failures after the payload may have reached a backend.
_MAYBE_SENT = frozenset(
    {ErrorCode.BACKEND_UNAVAILABLE, ErrorCode.BACKEND_TIMEOUT, ErrorCode.INTERNAL}
)


def classify_code(code: ErrorCode) -> Outcome:
    """How a relay-layer error code bears on retries.

    Relayers run every check before forwarding (DESIGN §3.3 order), so a refusal other than a
    backend failure means the payload never reached a backend (safe even for writes).
    """
    if code in _FATAL:
        return Outcome.FATAL
    if code in _MAYBE_SENT:
        return Outcome.RETRYABLE
    return Outcome.UNSENT


@dataclass(frozen=True, slots=True)
class Target:
    """One supplier of one session, as the gateway relays to it."""

    service_id: str
    app: bytes
    n: int
    supplier: bytes
    endpoint: str
    receipt_key: bytes | None


@dataclass(frozen=True, slots=True)
class Signed:
    header: RelayHeader
    digest: bytes
    relay_request: str  # the Relay-Request header value


@dataclass(frozen=True, slots=True)
class RelayAnswer:
    """A relayed answer: the backend's status and bytes, plus the proof of who served it."""

    supplier: bytes
    status: int
    body: bytes
    relay_request: str
    relay_receipt: str
    latency: float
    receipt_checked: bool


class RelayError(GatewayError):
    """One attempt failed; ``outcome`` drives the retry decision."""

    def __init__(
        self,
        message: str,
        *,
        outcome: Outcome,
        relay_code: ErrorCode | None = None,
        supplier: bytes = b"",
        refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.refused = refused  # the endpoint itself is refused (private address, bad URL)
        self.outcome = outcome
        self.relay_code = relay_code
        self.supplier = supplier


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
    ) -> None:
        self.http = http
        self.key = key
        self.domain = domain
        self.chain_id_of = chain_id_of  # session n -> its recorded chain id (DESIGN §3.5)
        self.devnet = devnet
        self.receipt_check = receipt_check
        self._rng = rng or random.Random()
        self._allowed: set[str] = set()  # endpoints check_literal accepted (it is pure)
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

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
        header = RelayHeader(
            version=RELAY_VERSION,
            service_id=target.service_id,
            application=target.app,
            signer=self.key.address,
            supplier=target.supplier,
            session=target.n,
            payload_hash=hashlib.sha256(payload).digest(),
            nonce=os.urandom(16),
            max_index=max_index,
            compute_units=compute_units,
        )
        digest = request_digest(header, self.domain_of(target.n))
        sig = sign_request(digest, self.key)
        return Signed(header, digest, encode_relay_request(header.encode(), sig))

    def check_receipt(
        self, target: Target, digest: bytes, status: int, body: bytes, receipt: str
    ) -> bool:
        """Verify a receipt (always its shape; the signature on the configured share).
        True when the signature was verified; raises ``RelayError`` when it is bad."""
        try:
            rhash, rsig = decode_receipt(receipt)
        except ProtocolError as exc:
            raise RelayError(
                f"bad receipt: {exc.message}",
                outcome=Outcome.RETRYABLE,
                relay_code=ErrorCode.BAD_RECEIPT,
                supplier=target.supplier,
            ) from exc
        if self.receipt_check < 1.0 and self._rng.random() >= self.receipt_check:
            return False
        expected = hashlib.sha256(status.to_bytes(2, "big") + body).digest()
        try:
            if rhash != expected:
                raise ProtocolError("response hash mismatch", code=ErrorCode.BAD_RECEIPT)
            if target.receipt_key is None:
                raise ProtocolError("supplier has no receipt key", code=ErrorCode.BAD_RECEIPT)
            verify_receipt(target.receipt_key, digest, 0, rhash, rsig)
        except ProtocolError as exc:
            raise RelayError(
                f"bad receipt: {exc.message}",
                outcome=Outcome.RETRYABLE,
                relay_code=ErrorCode.BAD_RECEIPT,
                supplier=target.supplier,
            ) from exc
        return True

    async def relay(
        self, target: Target, payload: bytes, compute_units: int, *, attempt_timeout: float
    ) -> RelayAnswer:
        """One attempt: sign, POST, check. Raises :class:`RelayError` on any failure."""
        if target.endpoint not in self._allowed:
            try:
                check_literal(target.endpoint)  # addresses: GuardedConnector
            except EndpointRefused as exc:
                raise RelayError(
                    exc.message, outcome=Outcome.UNSENT, supplier=target.supplier, refused=True
                ) from exc
            if len(self._allowed) < 65536:
                self._allowed.add(target.endpoint)
        signed = self.sign(target, payload, compute_units)
        headers = {"Content-Type": "application/json", "Relay-Request": signed.relay_request}
        timeout = self._timeouts.get(attempt_timeout)
        if timeout is None:
            if len(self._timeouts) > 256:
                self._timeouts.clear()
            timeout = self._timeouts[attempt_timeout] = aiohttp.ClientTimeout(total=attempt_timeout)
        started = time.perf_counter()
        try:
            async with self.http.post(
                target.endpoint,
                data=payload,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                status = resp.status
                backend_status = resp.headers.get("Relay-Backend-Status")
                receipt = resp.headers.get("Relay-Receipt")
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
        latency = time.perf_counter() - started
        if status != 200 or receipt is None or backend_status is None:
            raise self._relay_layer_error(target, status, body)
        try:
            bstatus = int(backend_status)
        except ValueError as exc:
            raise RelayError(
                "bad Relay-Backend-Status",
                outcome=Outcome.RETRYABLE,
                supplier=target.supplier,
                relay_code=ErrorCode.BAD_RECEIPT,
            ) from exc
        checked = self.check_receipt(target, signed.digest, bstatus, body, receipt)
        return RelayAnswer(
            supplier=target.supplier,
            status=bstatus,
            body=body,
            relay_request=signed.relay_request,
            relay_receipt=receipt,
            latency=latency,
            receipt_checked=checked,
        )

    @staticmethod
    def _relay_layer_error(target: Target, status: int, body: bytes) -> RelayError:
        code: ErrorCode | None = None
        message = f"relayer answered HTTP {status}"
        try:
            data = orjson.loads(body)
            if isinstance(data, dict) and isinstance(data.get("code"), str):
                code = ErrorCode(data["code"])
                message = f"{code.value}: {data.get('message', '')}"
        except (orjson.JSONDecodeError, ValueError):
            code = None
        if code is None:
            outcome = Outcome.MAYBE_SENT if status >= 500 else Outcome.RETRYABLE
        else:
            outcome = classify_code(code)
        return RelayError(message, outcome=outcome, relay_code=code, supplier=target.supplier)
