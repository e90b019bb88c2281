"""The relay pipeline's parts, as the relayer needs them (``typing.Protocol`` + stage types).

The pipeline, wired in ``server.py``, reads::

    verified = verifier.verify(header_value, payload)      # DESIGN §3.3 checks, from memory
    answer   = await backend.send(verified.backend_request()) # byte-for-byte forwarding
    served   = recorder.record(verified, answer)           # receipt + durable log + meter
    -> 200, answer.body, Relay-Backend-Status, Relay-Receipt

and, off the hot path, the claimer turns each closed session log into claim → proof → settle
against a :class:`SettlementChain`.

Contracts:

* :class:`RelayVerifier` never performs I/O and never calls the chain; it raises
  :class:`relayer.errors.RelayRefused` with the code of the *first* failing check, and charges
  the app's budget only when every check passed.
* :class:`BackendTransport` returns only complete HTTP responses (any status); everything else
  is a :class:`relayer.errors.BackendError` (``BACKEND_TIMEOUT`` / ``BACKEND_UNAVAILABLE``).
* :class:`RelayRecorder` writes the relay to its session log (``os.write``) *before* returning;
  a relay not recorded is never receipted.
* :class:`SettlementChain` methods may raise any :class:`protocol.errors.RelaynetError`; the
  claimer retries them with backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from relayer.priced import PricedCall, PricingPolicy

if TYPE_CHECKING:
    from relayer.recorder import ServedRelay
    from relayer.verify import VerifiedRelay

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
    "SettlementChain",
    "TxReceipt",
]


@dataclass(frozen=True, slots=True)
class BackendRequest:
    """One request to a backend node: the payload byte for byte, plus configured headers."""

    service_id: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    http_method: str = "POST"
    timeout: float = 10.0
    connect_timeout: float = 3.0


@dataclass(frozen=True, slots=True)
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


class RelayVerifier(Protocol):
    """Every check of DESIGN §3.3 in order (``verify.Verifier``)."""

    def check_size(self, length: int | None) -> None:
        """PAYLOAD_TOO_LARGE before the body is read."""
        ...

    def verify(self, header_value: str | None, payload: bytes) -> VerifiedRelay:
        """The verified relay, its budget charged and its relay key reserved."""
        ...

    def abandon(self, relay: VerifiedRelay) -> None:
        """The backend failed: refund and release (nothing recorded)."""
        ...


class RelayRecorder(Protocol):
    """Receipt + durable append (``recorder.Recorder``)."""

    def record(self, relay: VerifiedRelay, status: int, body: bytes) -> ServedRelay:
        """Written to the session log before returning; the relay key becomes seen."""
        ...


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
