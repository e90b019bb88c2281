"""Receipt and record: the step between a complete backend answer and the client's 200.

For each answered relay (and each WebSocket frame): ``response_hash`` over the backend status
and body, the ed25519 receipt, the 326-byte leaf (:func:`protocol.relay.receipted_leaf`), and an
``os.write`` of the leaf to the session's durable log — in that order, before the answer
leaves. Only complete backend responses reach this step, so only they are recorded, receipted
and metered. A :class:`relayer.interfaces.RelayRecorder`.
"""

from __future__ import annotations

from protocol.errors import ErrorCode
from protocol.keys import ReceiptKey
from protocol.relay import WS_STATUS, receipted_leaf, relay_key
from relayer.errors import RelayRefused
from relayer.interfaces import ServedRelay, SessionContext, VerifiedRelay
from relayer.keyring import ReceiptKeyring
from relayer.relaylog import RelayLog, SessionLog

__all__ = ["Recorder"]


class Recorder:
    """Signs receipts with the supplier's receipt key valid at the session (a
    :class:`ReceiptKeyring` after rotations) and appends leaves to the session logs."""

    def __init__(self, relay_log: RelayLog, receipt_key: ReceiptKey | ReceiptKeyring) -> None:
        self._log = relay_log
        self._keys = receipt_key if isinstance(receipt_key, ReceiptKeyring) else None
        self._key = receipt_key if isinstance(receipt_key, ReceiptKey) else None

    def check_writable(self) -> None:
        """Refuse (``INTERNAL``, retryable) while the relay log cannot take records."""
        self._log.check_writable()

    def check_open(self, ctx: SessionContext) -> None:
        """SESSION_EXPIRED once the session's log is retired (an answer could not be claimed)."""
        self._session_log(ctx)

    def _session_log(self, ctx: SessionContext) -> SessionLog:
        """The open log of the session (opened on its first relay)."""
        log = ctx.log
        if log is None:
            log = ctx.log = self._log.open(ctx.key)
        elif log.closed:  # retired for claiming
            raise RelayRefused(
                ErrorCode.SESSION_EXPIRED, f"session {ctx.key.n} is closed for claiming"
            )
        return log

    def record(self, relay: VerifiedRelay, status: int, body: bytes) -> ServedRelay:
        """Record the answer to a plain relay (index 0); the relay key becomes *seen*."""
        return self._record(relay, relay.relay_key, 0, status, body)

    def record_push(self, relay: VerifiedRelay, index: int, body: bytes) -> ServedRelay:
        """Frame ``index`` of a stream (status 101 in its hash), charged to the app's budget
        like a relay of its own; not logged, it is refunded (never claimed, it costs nothing)."""
        key = relay_key(relay.digest, index)
        relay.ctx.reserve(key, relay.cost)
        try:
            return self._record(relay, key, index, WS_STATUS, body)
        except BaseException:
            relay.ctx.release(key, relay.cost)
            raise

    def _record(
        self, relay: VerifiedRelay, key: bytes, index: int, status: int, body: bytes
    ) -> ServedRelay:
        """Hash, receipt, leaf, ``os.write`` — then ``key`` is seen."""
        ctx = relay.ctx
        signer = self._key or self._keys.for_session(ctx.key.n)  # type: ignore[union-attr]
        rh, sig, leaf = receipted_leaf(
            signer, relay.header_bytes, relay.request_sig, relay.digest, index, status, body
        )
        self._log.append(self._session_log(ctx), key, leaf)
        ctx.recorded(key)
        return ServedRelay(index, rh, sig)
