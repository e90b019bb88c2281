"""Finality-aware answer cache: what ``rollups/`` says is cacheable, stored only when two
suppliers agree, never a failure.

An answer's bytes are kept with its ``id`` cut out (``prefix``/``suffix``), so a hit is rebuilt
for another client's id without re-encoding anything else. Before an answer is stored, the
supplier votes for its digest; it enters the shared cache only once ``agreement`` distinct
suppliers voted for the same digest (one supplier cannot poison the cache).
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from gateway.jsonrpc import id_template
from gateway.store.base import Store

__all__ = ["AnswerCache", "CachedAnswer", "FrontCache", "split_id"]

FINAL_TTL = 86_400.0  # a final answer is kept a day in every tier (LRU may evict it earlier)
VOTE_TTL = 600.0
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    status: int
    body: bytes
    supplier: str
    relay_request: str
    relay_receipt: str
    final: bool = False
    prefix: bytes = b""
    suffix: bytes = b""
    expires: float = 0.0  # wall-clock time the entry's TTL ends (every tier honours it)


_SIMPLE_ID = re.compile(rb'"id"\s*:\s*(-?[0-9]{1,15}|"[^"\\]{0,128}")(?=\s*[,}])')


def split_id(body: bytes) -> tuple[bytes, bytes] | None:
    """``(template, raw_id)`` of a single request whose only ``"id"`` is a plain number or
    string: the request with its id cut out, and the id's bytes. None otherwise."""
    if body.count(b'"id"') != 1:
        return None
    m = _SIMPLE_ID.search(body)
    if m is None:
        return None
    return body[: m.start(1)] + b"\x00" + body[m.end(1) :], m.group(1)


class FrontCache:
    """Final answers by request template, in this process: a repeat of a request already
    answered from the cache is served without parsing it again (same bytes, same answer).
    Only *final* answers (that never change) enter it; bounded, LRU; each entry keeps the
    TTL it had in the shared cache (a final answer's is long, not endless)."""

    def __init__(
        self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[tuple[str, bytes], CachedAnswer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, service_id: str, template: bytes) -> CachedAnswer | None:
        key = (service_id, template)
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit.expires <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit

    def put(self, service_id: str, template: bytes, answer: CachedAnswer) -> None:
        if answer.expires <= self._clock():
            return
        self._items[(service_id, template)] = answer
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def evict_supplier(self, supplier: str) -> int:
        """Drop every entry ``supplier`` put in (a failed late receipt check); how many."""
        gone = [k for k, v in self._items.items() if v.supplier == supplier]
        for k in gone:
            del self._items[k]
        return len(gone)


def _encode(status: int, prefix: bytes, suffix: bytes, meta: dict[str, object]) -> bytes:
    m = orjson.dumps({**meta, "status": status})
    return _LEN.pack(len(m)) + m + _LEN.pack(len(prefix)) + prefix + suffix


def _decode(value: bytes, raw_id: bytes) -> CachedAnswer:
    (mlen,) = _LEN.unpack_from(value, 0)
    meta = orjson.loads(value[4 : 4 + mlen])
    pos = 4 + mlen
    (plen,) = _LEN.unpack_from(value, pos)
    pos += 4
    prefix = value[pos : pos + plen]
    suffix = value[pos + plen :]
    return CachedAnswer(
        status=int(meta["status"]),
        body=prefix + raw_id + suffix,
        supplier=str(meta.get("supplier", "")),
        relay_request=str(meta.get("relay_request", "")),
        relay_receipt=str(meta.get("relay_receipt", "")),
        final=bool(meta.get("final", False)),
        prefix=prefix,
        suffix=suffix,
        expires=float(meta.get("exp", 0.0)),
    )


class AnswerCache:
    def __init__(self, store: Store, *, agreement: int = 2, tracked: int = 10_000) -> None:
        self._store = store
        self._agreement = agreement
        # keys each supplier's answers were stored under (this process), newest last, so a
        # supplier caught lying has them evicted (DESIGN §6); bounded per supplier and overall
        self._tracked = tracked
        self._by_supplier: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    async def evict_supplier(self, supplier: str) -> int:
        """Evict the entries this process stored from ``supplier``'s answers: each is
        overwritten by a tombstone that reads as a miss (shared with other replicas through
        the store) and expires at once. Returns how many."""
        keys = self._by_supplier.pop(supplier, None)
        if not keys:
            return 0
        for key in keys:
            await self._store.cache_put(key, b"", 0.001)
        return len(keys)

    def _track(self, supplier: str, key: str) -> None:
        keys = self._by_supplier.get(supplier)
        if keys is None:
            keys = self._by_supplier[supplier] = OrderedDict()
            while len(self._by_supplier) > 1024:
                self._by_supplier.popitem(last=False)
        keys[key] = None
        keys.move_to_end(key)
        while len(keys) > self._tracked:
            keys.popitem(last=False)

    async def lookup(self, key: str, raw_id: bytes) -> CachedAnswer | None:
        value = await self._store.cache_get(key)
        if value is None:
            return None
        try:
            return _decode(value, raw_id)
        except (struct.error, orjson.JSONDecodeError, KeyError, ValueError):
            return None

    async def offer(
        self,
        key: str,
        ttl: float | None,
        *,
        status: int,
        body: bytes,
        supplier: str,
        relay_request: str,
        relay_receipt: str,
    ) -> bool:
        """Vote for this answer; store it when enough suppliers agree. True when stored."""
        if status != 200:
            return False
        parts = id_template(body)
        if parts is None:
            return False
        prefix, suffix = parts
        digest = hashlib.sha256(prefix + b"\x00" + suffix).hexdigest()
        life = FINAL_TTL if ttl is None else ttl
        if life <= 0:
            return False
        votes = await self._store.vote(key, digest, supplier, min(life, VOTE_TTL))
        if votes < self._agreement:
            return False
        meta: dict[str, object] = {
            "supplier": supplier,
            "relay_request": relay_request,
            "relay_receipt": relay_receipt,
            "final": ttl is None,
            "exp": time.time() + life,
        }
        await self._store.cache_put(key, _encode(status, prefix, suffix, meta), life)
        self._track(supplier, key)
        return True
