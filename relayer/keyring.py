"""Which receipt key signs a session's receipts: the one the chain says is valid at that session.

``relaynet supplier rotate-receipt-key`` writes a new key into the relayer's receipt key file
(earlier keys kept under ``"previous"``) and sets it on chain from the next session. The
relayer keeps running: housekeeping calls :meth:`ReceiptKeyring.reload` (a ``stat``), which
re-reads the file when it changed; :meth:`ReceiptKeyring.for_session` picks, among the keys it
holds, the one whose public key the registry snapshot records for ``(supplier, n)`` — the old
key for sessions before the rotation, the new one after. A session whose recorded key the file
does not hold is signed with the current key (its receipts will not verify: ``relaynet relayer
check`` says so) and logged once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from protocol.errors import RelaynetError
from protocol.keys import ReceiptKey
from relayer.keyfiles import read_receipt_keys

__all__ = ["ReceiptKeyring"]

log = logging.getLogger("relaynet.relayer.keys")

_CACHED_SESSIONS = 8


class _Keys(Protocol):
    def receipt_key(self, supplier: bytes, n: int) -> bytes | None: ...


class ReceiptKeyring:
    """The receipt keys of one supplier, by session."""

    def __init__(
        self,
        current: ReceiptKey,
        *,
        supplier: bytes,
        snapshot: _Keys,
        path: Path | None = None,
    ) -> None:
        self._supplier = supplier
        self._snapshot = snapshot
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._given = current
        self._current = current
        self._keys: dict[bytes, ReceiptKey] = {current.public_key: current}
        self._by_session: dict[int, ReceiptKey] = {}
        self._unknown: set[bytes] = set()
        self.reload()

    @property
    def current(self) -> ReceiptKey:
        return self._current

    def public_keys(self) -> list[bytes]:
        return list(self._keys)

    def reload(self) -> bool:
        """Re-read the key file when it changed since the last read; True when it did."""
        if self._path is None:
            return False
        try:
            st = os.stat(self._path)
        except OSError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        try:
            keys = read_receipt_keys(self._path)
        except RelaynetError as exc:
            log.warning("receipt key file not re-read: %s", exc.message)
            return False
        self._stamp = stamp
        added = [k for k in keys if k.public_key not in self._keys]
        self._keys = {k.public_key: k for k in (*keys, self._given)}
        self._current = keys[0]
        self._by_session.clear()
        if added:
            log.info(
                "receipt keys read from %s: %s",
                self._path,
                ", ".join("0x" + k.public_key.hex() for k in keys),
            )
        return True

    def for_session(self, n: int) -> ReceiptKey:
        """The key to sign session ``n``'s receipts with."""
        key = self._by_session.get(n)
        if key is not None:
            return key
        public = self._snapshot.receipt_key(self._supplier, n)
        key = self._keys.get(public) if public is not None else None
        if key is None:
            if public is not None and public not in self._unknown:
                self._unknown.add(public)
                log.warning(
                    "session %d: the chain's receipt key 0x%s is not in the key file; signing"
                    " with 0x%s (these receipts will not verify)",
                    n,
                    public.hex(),
                    self._current.public_key.hex(),
                )
            return self._current  # not cached: the snapshot may learn the key later
        if len(self._by_session) >= _CACHED_SESSIONS:
            self._by_session.clear()
        self._by_session[n] = key
        return key
