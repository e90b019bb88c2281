"""Receipt and record: the step between a complete backend answer and the client's 200.

For each answered relay (and each WebSocket frame): ``response_hash`` over the backend status
and body, the ed25519 receipt, the 326-byte leaf, and an ``os.write`` of the leaf to the
session's durable log — in that order, before the answer leaves. Only complete backend
responses reach this step, so only they are recorded, receipted and metered.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.keys import ReceiptKey
from protocol.relay import encode_leaf, encode_receipt, receipt_message, response_hash
from relayer.keyring import ReceiptKeyring
from relayer.relaylog import RelayLog
from relayer.verify import SessionContext, VerifiedRelay, Verifier

__all__ = ["Recorder", "ServedRelay"]


@dataclass(frozen=True, slots=True)
class ServedRelay:
    """A recorded relay: what its answer carries."""

    index: int
    response_hash: bytes
    receipt_sig: bytes

    @property
    def receipt_header(self) -> str:
        return encode_receipt(self.response_hash, self.receipt_sig)


class Recorder:
    """Signs receipts with the supplier's receipt key valid at the session (a
    :class:`ReceiptKeyring` after rotations) and appends leaves to the session logs."""

    def __init__(
        self, relay_log: RelayLog, receipt_key: ReceiptKey | ReceiptKeyring, verifier: Verifier
    ) -> None:
        self._log = relay_log
        self._keys = receipt_key if isinstance(receipt_key, ReceiptKeyring) else None
        self._key = receipt_key if isinstance(receipt_key, ReceiptKey) else None
        self._verifier = verifier

    def check_writable(self) -> None:
        """Refuse (``INTERNAL``, retryable) while the relay log cannot take records."""
        self._log.check_writable()

    def record(self, relay: VerifiedRelay, status: int, body: bytes) -> ServedRelay:
        """Record the answer to a plain relay (index 0); the relay key becomes *seen*."""
        served = self.record_leaf(
            relay.ctx,
            relay.header_bytes,
            relay.request_sig,
            relay.digest,
            relay.relay_key,
            0,
            status,
            body,
        )
        relay.ctx.inflight.discard(relay.relay_key)
        return served

    def record_leaf(
        self,
        ctx: SessionContext,
        header_bytes: bytes,
        request_sig: bytes,
        digest: bytes,
        key: bytes,
        index: int,
        status: int,
        body: bytes,
    ) -> ServedRelay:
        """Hash, receipt, leaf, ``os.write`` — then mark ``key`` seen."""
        rh = response_hash(status, body)
        signer = self._key or self._keys.for_session(ctx.key.n)  # type: ignore[union-attr]
        sig = signer.sign(receipt_message(digest, index, rh))
        leaf = encode_leaf(header_bytes, request_sig, index, rh, sig)
        self._log.append(self._verifier.session_log(ctx), key, leaf)
        ctx.seen.add(key)
        ctx.relays += 1
        return ServedRelay(index, rh, sig)
