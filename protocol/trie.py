"""The Merkle sum trie of a claim and its weighted proof (DESIGN §3.4).

A sparse binary trie over 256-bit keys (``relay_key``), hashed with sha256, where every node
carries the sum of its leaves' weights and their count. A subtree holding exactly one leaf *is*
that leaf, placed at the shallowest depth where it is alone; a subtree holding none is
``EMPTY``::

    empty = (0x00*32, 0, 0)
    leaf  = sha256(0x00 ‖ key ‖ value_hash ‖ uint64(weight) ‖ uint64(1)), weight, 1
    inner = sha256(0x01 ‖ Ld ‖ uint64(Ls) ‖ uint64(Lc) ‖ Rd ‖ uint64(Rs) ‖ uint64(Rc)), Ls+Rs, Lc+Rc
    root  = digest ‖ uint64(sum) ‖ uint64(count)          (48 bytes)

Bit ``d`` of the key (most significant first) picks the side at depth ``d``.

A challenge ``r`` in ``[0, root.sum)`` opens one leaf: walk from the root, go left when
``r < Ls``, otherwise ``r -= Ls`` and go right. The proof is the leaf and its siblings, root
first. :func:`verify_proof` checks a proof strictly (recomputed root, the leaf's weight interval
contains ``r``, canonical siblings), exactly as the settlement contract does.

Worked example — one leaf is its own root and has no siblings::

    >>> trie = SumTrie.build([(b"\\x01" * 32, b"\\x02" * 32, 5)])
    >>> trie.root.sum, trie.root.count, trie.prove(4).siblings
    (5, 1, ())

:class:`SumTrie` is built from unsorted ``(key, value_hash, weight[, ref])`` items and holds
only packed buffers (sorted leaf records of key, value hash, weight and arrival index; refs;
cumulative weights; neighbour prefix lengths) plus one digest per inner branching node — no
per-node Python objects — so that a relayer builds the trie of a million relays in seconds
and answers any challenge in well under a millisecond. ``ref`` is an opaque integer (the
relayer's log offset of the leaf) returned in :attr:`Proof.ref`, so leaf bytes never need to
be held in memory.

Building has two implementations that produce the same buffers: this module's Python code (the
reference) and the C extension ``protocol._trie_accel`` (built from ``protocol/_trie_accel.c``
when a compiler is present), which is used when it imports unless the caller passes
``accelerate=False``; :func:`accelerated` says which one :meth:`SumTrie.build` uses. This module
reads no environment: a process that wants the reference path chooses it in its own code.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, islice, repeat
from operator import itemgetter, sub, xor

from protocol.errors import ErrorCode, ProtocolError

try:
    from protocol import _trie_accel
except ImportError:  # built without the C extension: the Python path alone
    _trie_accel = None  # type: ignore[assignment]

__all__ = [
    "EMPTY",
    "EMPTY_ROOT",
    "KEY_SIZE",
    "MAX_UINT64",
    "ROOT_SIZE",
    "Node",
    "Proof",
    "Root",
    "SumTrie",
    "accelerated",
    "inner_digest",
    "leaf_digest",
    "proof_is_valid",
    "verify_proof",
]

KEY_SIZE = 32
HASH_SIZE = 32
ROOT_SIZE = 48
MAX_UINT64 = (1 << 64) - 1
_KEY_BITS = 256

_sha256 = hashlib.sha256
_LEAF = struct.Struct(">B32s32sQQ")
# A sorted leaf record: key ‖ value_hash ‖ uint64(weight) ‖ uint32(arrival index). Its first
# 72 bytes are the middle of the leaf's preimage; sorting records sorts by key.
_RECORD = struct.Struct(">32s32sQI")
_RECORD_HEAD = struct.Struct(">72s4x")
_RECORD_WEIGHT = struct.Struct(">64xQ4x")
_LEAF_OF_RECORD = struct.Struct(">B72sQ")
_RECORD_PREFIX = struct.Struct(">Q68x")
_ARRIVAL = _RECORD.size - 4
_INNER = struct.Struct(">B32sQQ32sQQ")
_ROOT = struct.Struct(">32sQQ")
_SORT_ENTRY = struct.Struct(">32sI")
_ZERO32 = b"\x00" * 32
_EMPTY48 = b"\x00" * 48  # the encoding of EMPTY inside an inner node: digest ‖ sum ‖ count
_MAX_ITEMS = 1 << 32


@dataclass(frozen=True, slots=True)
class Node:
    """A trie node as seen by a proof: its digest, the sum of its weights, its leaf count."""

    digest: bytes
    sum: int
    count: int


EMPTY = Node(_ZERO32, 0, 0)


@dataclass(frozen=True, slots=True)
class Root:
    """The 48-byte root a supplier claims: ``digest ‖ uint64(sum) ‖ uint64(count)``."""

    digest: bytes
    sum: int
    count: int

    def encode(self) -> bytes:
        """The 48 bytes of the root.

        >>> Root(b"\\x00" * 32, 0, 0).encode() == bytes(48)
        True
        """
        return _ROOT.pack(self.digest, self.sum, self.count)

    @classmethod
    def decode(cls, data: bytes) -> Root:
        """Parse 48 root bytes; ProtocolError(MALFORMED_INPUT) on a wrong length."""
        if len(data) != ROOT_SIZE:
            raise ProtocolError(f"root must be {ROOT_SIZE} bytes, got {len(data)}")
        digest, total, count = _ROOT.unpack(bytes(data))
        return cls(digest, total, count)


EMPTY_ROOT = Root(_ZERO32, 0, 0)


@dataclass(frozen=True, slots=True)
class Proof:
    """The opened leaf (key, value hash, weight) and its siblings, root first.

    ``ref`` is the opaque integer given with the leaf to :meth:`SumTrie.build`, or None.
    """

    key: bytes
    value_hash: bytes
    weight: int
    siblings: tuple[Node, ...]
    ref: int | None = None


def leaf_digest(key: bytes, value_hash: bytes, weight: int) -> bytes:
    """``sha256(0x00 ‖ key ‖ value_hash ‖ uint64(weight) ‖ uint64(1))``."""
    _check_bytes(key, KEY_SIZE, "key")
    _check_bytes(value_hash, HASH_SIZE, "value_hash")
    _check_uint64(weight, "weight")
    return _sha256(_LEAF.pack(0, key, value_hash, weight, 1)).digest()


def inner_digest(left: Node, right: Node) -> bytes:
    """``sha256(0x01 ‖ Ld ‖ uint64(Ls) ‖ uint64(Lc) ‖ Rd ‖ uint64(Rs) ‖ uint64(Rc))``."""
    for node, side in ((left, "left"), (right, "right")):
        _check_bytes(node.digest, HASH_SIZE, f"{side} digest")
        _check_uint64(node.sum, f"{side} sum")
        _check_uint64(node.count, f"{side} count")
    return _sha256(
        _INNER.pack(1, left.digest, left.sum, left.count, right.digest, right.sum, right.count)
    ).digest()


class SumTrie:
    """A built Merkle sum trie; answers weighted challenges with :meth:`prove`.

    Leaves are kept sorted by key in one packed buffer of 76-byte records ``key ‖ value_hash ‖
    uint64(weight) ‖ uint32(arrival index)`` (refs stay in an array in arrival order). Inner
    *branching* nodes (the ones with two non-empty children) are numbered by the gap between
    the two adjacent sorted leaves they separate: node ``b`` splits leaves ``..b`` from
    ``b+1..`` at depth ``lcp[b]``, the common prefix length (in bits) of those two keys. For
    each we keep only its digest as its parent sees it — after the chain of single-child inner
    nodes (each with an ``EMPTY`` sibling) that lifts it up to just below its parent. A subtree
    is a range of sorted leaves; its top gap is the range's unique shallowest one (found with
    ``bytes.find``); sums come from cumulative weights; leaf digests are recomputed from the
    records when a proof needs them.

    The Python build (the reference) is a handful of C-level passes (ingest in chunks, sort,
    de-duplicate, prefix lengths, leaf digests) and one Python pass that hashes the inner nodes
    with a stack; ``protocol._trie_accel`` does the same steps in C and returns the same
    buffers (a million leaves in about a second instead of ten).
    """

    __slots__ = (
        "_count",
        "_cum",
        "_lcp",
        "_records",
        "_refs",
        "_root",
        "_root_id",
        "_top",
    )

    def __init__(self) -> None:
        self._count = 0
        self._records = (
            bytearray()
        )  # sorted leaves: key ‖ value_hash ‖ uint64(weight) ‖ uint32(arrival)
        self._refs: array[int] | None = None  # refs in arrival order, when given
        self._cum = array("Q", [0])  # _cum[j] = sum of the weights of sorted leaves < j
        self._lcp = b""  # per gap: common prefix length of sorted keys j, j+1 (= node depth)
        self._top = bytearray()  # per branching node: digest lifted to just below its parent
        self._root = EMPTY_ROOT
        self._root_id = -1

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        items: Iterable[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]],
        *,
        accelerate: bool = True,
    ) -> SumTrie:
        """Build the trie of ``(key, value_hash, weight)`` or ``(key, value_hash, weight, ref)``.

        Items come in any order; when a key repeats, the first item seen for it stays. Either
        every item carries a ``ref`` or none does. Raises ProtocolError(MALFORMED_INPUT) for a
        key or value hash that is not 32 bytes, a weight or total weight outside uint64, a ref
        outside int64, an item that is not a tuple (or list) of 3 or 4, or a mix of 3- and
        4-tuples. Uses the C accelerator when ``accelerated(accelerate)``; both paths give the
        same trie.
        """
        if accelerated(accelerate):
            return cls._build_accelerated(items)
        return cls._build_pure(items)

    @classmethod
    def _build_pure(
        cls, items: Iterable[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]]
    ) -> SumTrie:
        """:meth:`build` in Python (the reference)."""
        trie = cls()
        entries = trie._ingest(items)
        entries.sort()  # by key (then value hash, weight, arrival: repeats are resolved below)
        trie._lay_out(entries)
        del entries
        trie._build_nodes()
        return trie

    @classmethod
    def _build_accelerated(
        cls, items: Iterable[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]]
    ) -> SumTrie:
        """:meth:`build` by ``protocol._trie_accel``, which returns this class's buffers."""
        assert _trie_accel is not None
        count, records, refs, cum, lcp, top, digest, total, leaves, root_id = _trie_accel.build(
            items, ProtocolError
        )
        trie = cls()
        trie._count = count
        trie._records = records
        if refs is not None:
            trie._refs = array("q")
            trie._refs.frombytes(refs)
        trie._cum = array("Q")
        trie._cum.frombytes(cum)
        trie._lcp = lcp
        trie._top = top
        trie._root_id = root_id
        if count:
            trie._root = Root(digest, total, leaves)
        return trie

    def _ingest(
        self, items: Iterable[tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]]
    ) -> list[bytes]:
        """Read the items, in chunks, into records ``key ‖ value_hash ‖ uint64(w) ‖ uint32(i)``."""
        entries: list[bytes] = []
        refs = array("q")
        arity = 0
        base = 0
        iterator = iter(items)
        while chunk := list(islice(iterator, _CHUNK)):
            if not all(map(isinstance, chunk, repeat(tuple | list))):
                raise ProtocolError(f"leaves {base}..: items must be tuples")
            sizes = set(map(len, chunk))
            if len(sizes) != 1 or not sizes <= {3, 4} or arity not in (0, *sizes):
                raise ProtocolError(f"leaves {base}..: items must all be 3-tuples or 4-tuples")
            arity = sizes.pop()
            keys = list(map(_first, chunk))
            hashes = list(map(_second, chunk))
            if not all(map(isinstance, chain(keys, hashes), repeat(bytes | bytearray))):
                raise ProtocolError(f"leaves {base}..: keys and value hashes must be bytes")
            if set(map(len, keys)) != {KEY_SIZE} or set(map(len, hashes)) != {HASH_SIZE}:
                raise ProtocolError(f"leaves {base}..: keys and value hashes must be 32 bytes")
            if base + len(chunk) > _MAX_ITEMS:
                raise ProtocolError(f"more than {_MAX_ITEMS} leaves")
            try:
                entries.extend(
                    map(
                        _RECORD.pack,
                        keys,
                        hashes,
                        map(_third, chunk),
                        range(base, base + len(chunk)),
                    )
                )
                if arity == 4:
                    refs.extend(map(_fourth, chunk))
            except (OverflowError, TypeError, struct.error) as exc:
                raise ProtocolError(f"leaves {base}..: malformed leaf ({exc})") from exc
            base += len(chunk)
        self._refs = refs if arity == 4 else None
        return entries

    def _lay_out(self, entries: list[bytes]) -> None:
        """Keep the first record of each key; lay out the sorted records, the neighbours'
        common prefix lengths and the cumulative weights."""
        records = _pack_records(entries)
        try:
            self._lcp = _prefix_lengths(records)
        except ValueError:  # two equal neighbouring keys: a repeated key
            entries = _first_of_each_key(entries)
            records = _pack_records(entries)
            self._lcp = _prefix_lengths(records)
        self._records = records
        self._count = len(entries)
        weights = map(_first, _RECORD_WEIGHT.iter_unpack(records))
        try:
            self._cum = array("Q", accumulate(weights, initial=0))
        except OverflowError as exc:
            raise ProtocolError(f"total weight exceeds uint64 ({MAX_UINT64})") from exc

    def _build_nodes(self) -> None:
        """Hash the inner nodes in one left-to-right pass with a stack of pending splits.

        Sorted leaves ``j-1`` and ``j`` are separated by the branching node at depth
        ``lcp[j-1]``. A pending node waits on the stack with its finished left subtree until a
        shallower gap (or the end) closes its right subtree; it is then hashed, after lifting
        each child through the single-child nodes between the two depths.
        """
        n = self._count
        if n == 0:
            return
        records = self._records
        cum = self._cum
        lcp = self._lcp
        leaf_digests = map(
            _HASH_DIGEST,
            map(
                _sha256,
                map(
                    _LEAF_OF_RECORD.pack,
                    repeat(0),
                    _record_heads(records),
                    repeat(1),
                ),
            ),
        )
        weights = map(sub, islice(cum, 2, None), islice(cum, 1, None))
        self._top = top = bytearray(32 * (n - 1))
        sha = _sha256
        inner_pack = _INNER.pack
        lift = _lift

        # The subtree in progress ("cur"): digest at its own depth, sum, count, node id (gap of
        # a branching node, ~j for leaf j). A stack entry: (depth of a pending node, its gap,
        # then its finished left subtree as digest, sum, count, id); the bottom is a sentinel.
        stack: list[tuple[int, int, bytes, int, int, int]] = [(-2, 0, b"", 0, 0, 0)]
        push = stack.append
        pop = stack.pop
        cd = next(leaf_digests)
        cs, cc, cid = cum[1], 1, ~0
        # Gap j-1 lies between leaves j-1 and j; a last gap of depth -1 closes every node.
        gaps = zip(
            range(1, n + 1),
            chain(lcp, (-1,)),
            chain(leaf_digests, (b"",)),
            chain(weights, (0,)),
            strict=True,
        )
        for j, split, ld, lw in gaps:
            while stack[-1][0] > split:
                at, gap, pd, ps, pc, pid = pop()
                below = at + 1
                if pid >= 0:
                    if lcp[pid] > below:
                        pd = lift(pd, ps, pc, lcp[pid], below, records, gap)
                    top[32 * pid : 32 * pid + 32] = pd
                if cid >= 0:
                    if lcp[cid] > below:
                        cd = lift(cd, cs, cc, lcp[cid], below, records, j - 1)
                    top[32 * cid : 32 * cid + 32] = cd
                cd = sha(inner_pack(1, pd, ps, pc, cd, cs, cc)).digest()
                cs += ps
                cc += pc
                cid = gap
            if split < 0:
                break
            push((split, j - 1, cd, cs, cc, cid))
            cd, cs, cc, cid = ld, lw, 1, ~j
        if cid >= 0:
            if lcp[cid] > 0:
                cd = lift(cd, cs, cc, lcp[cid], 0, records, n - 1)
            top[32 * cid : 32 * cid + 32] = cd
        self._root_id = cid
        self._root = Root(cd, cs, cc)

    # -- reading ------------------------------------------------------------------------------

    @property
    def root(self) -> Root:
        """The root of the trie (``EMPTY_ROOT`` for no leaves)."""
        return self._root

    def __len__(self) -> int:
        """The number of distinct keys (leaves)."""
        return self._count

    def prove(self, r: int) -> Proof:
        """The weighted proof for challenge ``r``; ProtocolError(BAD_PROOF) unless ``0 <= r < sum``.

        Walks from the root: left when ``r < Ls``, else ``r -= Ls`` and right.
        """
        if not _is_int(r) or not 0 <= r < self._root.sum:
            raise ProtocolError(
                f"challenge {r!r} outside [0, {self._root.sum})", code=ErrorCode.BAD_PROOF
            )
        cum = self._cum
        siblings: list[Node] = []
        if self._count == 1:
            return self._proof(0, siblings)
        lcp = self._lcp
        node = self._root_id
        lo, hi, depth = 0, self._count, 0
        while True:
            split = lcp[node]
            if split > depth:
                siblings.extend([EMPTY] * (split - depth))
            ls = cum[node + 1] - cum[lo]
            if r < ls:
                siblings.append(self._subtree(node + 1, hi, split))
                hi = node + 1
            else:
                r -= ls
                siblings.append(self._subtree(lo, node + 1, split))
                lo = node + 1
            if hi - lo == 1:
                return self._proof(lo, siblings)
            depth = split + 1
            node = self._split_of(lo, hi, split)

    def _split_of(self, lo: int, hi: int, parent_depth: int) -> int:
        """The gap at the top of the subtree over sorted leaves ``lo..hi-1`` (two or more).

        It is the unique gap of the range with the shortest common prefix, deeper than the
        parent's: search for each depth in turn (C-speed ``find``).
        """
        lcp = self._lcp
        for depth in range(parent_depth + 1, _KEY_BITS):
            gap = lcp.find(depth, lo, hi - 1)
            if gap >= 0:
                return gap
        raise AssertionError("a range of distinct keys always has a split")  # pragma: no cover

    def _subtree(self, lo: int, hi: int, parent_depth: int) -> Node:
        """The child over sorted leaves ``lo..hi-1`` of a node at ``parent_depth``, as a sibling."""
        total = self._cum[hi] - self._cum[lo]
        if hi - lo == 1:
            key, value_hash, weight = self._leaf(lo)
            return Node(_sha256(_LEAF.pack(0, key, value_hash, weight, 1)).digest(), total, 1)
        node = self._split_of(lo, hi, parent_depth)
        return Node(bytes(self._top[32 * node : 32 * node + 32]), total, hi - lo)

    def leaves(self) -> Iterator[tuple[bytes, bytes, int]]:
        """The leaves in key order as ``(key, value_hash, weight)``."""
        for j in range(self._count):
            yield self._leaf(j)

    def _leaf(self, j: int) -> tuple[bytes, bytes, int]:
        key, value_hash, weight, _ = _RECORD.unpack_from(self._records, _RECORD.size * j)
        return key, value_hash, weight

    def _proof(self, j: int, siblings: list[Node]) -> Proof:
        key, value_hash, weight, arrival = _RECORD.unpack_from(self._records, _RECORD.size * j)
        ref = None if self._refs is None else self._refs[arrival]
        return Proof(key, value_hash, weight, tuple(siblings), ref)


_CHUNK = 1 << 16


def accelerated(accelerate: bool = True) -> bool:
    """True when ``SumTrie.build(items, accelerate=accelerate)`` uses the C accelerator: it was
    built and imports, and the caller did not ask for the Python reference."""
    return _trie_accel is not None and accelerate


_first = itemgetter(0)
_second = itemgetter(1)
_third = itemgetter(2)
_fourth = itemgetter(3)
_HASH_DIGEST = type(hashlib.sha256()).digest


def _record_heads(records: bytearray) -> Iterator[bytes]:
    """``key ‖ value_hash ‖ uint64(weight)`` of each sorted record."""
    return map(_first, _RECORD_HEAD.iter_unpack(records))


def _pack_records(entries: list[bytes]) -> bytearray:
    """The records laid end to end, joined a chunk at a time.

    ``bytes.join`` keeps a 80-byte buffer view per item while it works; chunks keep that small.
    """
    size = _RECORD.size
    records = bytearray(size * len(entries))
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start : start + _CHUNK]
        records[size * start : size * (start + len(chunk))] = b"".join(chunk)
    return records


def _prefix_lengths(records: bytearray) -> bytes:
    """Common prefix length in bits of the keys of each pair of neighbouring sorted records.

    Computed on the first 8 bytes of the keys (C-speed passes); the rare pairs that share all
    64 of those bits are compared in full. Raises ValueError when two neighbours have equal keys.
    """
    heads = map(_first, _RECORD_PREFIX.iter_unpack(records))
    ahead = map(_first, _RECORD_PREFIX.iter_unpack(records))
    next(ahead, None)
    lcp = bytes(map(sub, repeat(64), map(int.bit_length, map(xor, heads, ahead))))
    gap = lcp.find(64)
    if gap < 0:
        return lcp
    full = bytearray(lcp)
    size = _RECORD.size
    while gap >= 0:
        left = int.from_bytes(records[size * gap : size * gap + KEY_SIZE], "big")
        right = int.from_bytes(records[size * (gap + 1) : size * (gap + 1) + KEY_SIZE], "big")
        if left == right:
            raise ValueError(f"repeated key at sorted position {gap}")
        full[gap] = _KEY_BITS - (left ^ right).bit_length()
        gap = lcp.find(64, gap + 1)
    return bytes(full)


def _first_of_each_key(entries: list[bytes]) -> list[bytes]:
    """The sorted records without repeats of a key: the earliest arrival of each key stays."""
    kept: list[bytes] = []
    for entry in entries:
        if kept and kept[-1][:KEY_SIZE] == entry[:KEY_SIZE]:
            if entry[_ARRIVAL:] < kept[-1][_ARRIVAL:]:  # big-endian arrival indexes
                kept[-1] = entry
        else:
            kept.append(entry)
    return kept


def _lift(
    digest: bytes, total: int, count: int, start: int, stop: int, records: bytearray, leaf: int
) -> bytes:
    """Wrap a subtree at depth ``start`` in single-child inner nodes at depths ``start-1..stop``.

    Each wrapper has the subtree on the side its keys' bit picks (read from the key of ``leaf``,
    any sorted leaf of the subtree) and ``EMPTY`` on the other.
    """
    at = _RECORD.size * leaf
    kint = int.from_bytes(records[at : at + KEY_SIZE], "big")
    tail = struct.pack(">QQ", total, count)
    sha = _sha256
    for d in range(start - 1, stop - 1, -1):
        if (kint >> (255 - d)) & 1:
            digest = sha(b"\x01" + _EMPTY48 + digest + tail).digest()
        else:
            digest = sha(b"\x01" + digest + tail + _EMPTY48).digest()
    return digest


# -- verification ------------------------------------------------------------------------------


def verify_proof(
    root: Root, r: int, key: bytes, value_hash: bytes, weight: int, siblings: Sequence[Node]
) -> None:
    """Check a weighted proof strictly (DESIGN §3.4); ProtocolError(BAD_PROOF) with the reason.

    Refused: ``r`` outside ``[0, root.sum)``; a malformed field; more than 256 siblings; a
    non-canonical sibling (count 0 with a non-zero digest or sum); an empty lowest sibling; a
    recomputed digest, sum or count different from the root; a leaf whose weight interval
    ``[offset, offset + weight)`` does not contain ``r``.
    """
    reason = _proof_failure(root, r, key, value_hash, weight, siblings)
    if reason is not None:
        raise ProtocolError(f"bad proof: {reason}", code=ErrorCode.BAD_PROOF)


def proof_is_valid(
    root: Root, r: int, key: bytes, value_hash: bytes, weight: int, siblings: Sequence[Node]
) -> bool:
    """True when :func:`verify_proof` accepts the proof."""
    return _proof_failure(root, r, key, value_hash, weight, siblings) is None


def _proof_failure(
    root: Root, r: int, key: bytes, value_hash: bytes, weight: int, siblings: Sequence[Node]
) -> str | None:
    """The reason a proof fails, or None when it holds."""
    if not (_is_bytes(root.digest, HASH_SIZE) and _is_u64(root.sum) and _is_u64(root.count)):
        return "malformed root"
    if not _is_int(r) or not 0 <= r < root.sum:
        return f"challenge {r!r} outside [0, {root.sum})"
    if not (_is_bytes(key, KEY_SIZE) and _is_bytes(value_hash, HASH_SIZE) and _is_u64(weight)):
        return "malformed leaf"
    if len(siblings) > _KEY_BITS:
        return "more than 256 siblings"
    for sibling in siblings:
        if not (
            isinstance(sibling, Node)
            and _is_bytes(sibling.digest, HASH_SIZE)
            and _is_u64(sibling.sum)
            and _is_u64(sibling.count)
        ):
            return "malformed sibling"
        if sibling.count == 0 and (sibling.sum != 0 or sibling.digest != _ZERO32):
            return "non-canonical empty sibling"
    if siblings and siblings[-1].count == 0:
        return "lowest sibling is empty"
    kint = int.from_bytes(key, "big")
    digest = _sha256(_LEAF.pack(0, bytes(key), bytes(value_hash), weight, 1)).digest()
    total, count, offset = weight, 1, 0
    for d in range(len(siblings) - 1, -1, -1):
        sib = siblings[d]
        if (kint >> (255 - d)) & 1:
            offset += sib.sum
            digest = _sha256(
                _INNER.pack(1, bytes(sib.digest), sib.sum, sib.count, digest, total, count)
            ).digest()
        else:
            digest = _sha256(
                _INNER.pack(1, digest, total, count, bytes(sib.digest), sib.sum, sib.count)
            ).digest()
        total += sib.sum
        count += sib.count
        if total > MAX_UINT64 or count > MAX_UINT64:
            return "sum or count overflows uint64"
    if digest != root.digest or total != root.sum or count != root.count:
        return "recomputed root differs"
    if not offset <= r < offset + weight:
        return f"leaf interval [{offset}, {offset + weight}) does not contain {r}"
    return None


# -- small checks ------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_u64(value: object) -> bool:
    return _is_int(value) and 0 <= value <= MAX_UINT64  # type: ignore[operator]


def _is_bytes(value: object, size: int) -> bool:
    return isinstance(value, bytes | bytearray | memoryview) and len(value) == size


def _check_bytes(value: object, size: int, what: str) -> None:
    if not _is_bytes(value, size):
        raise ProtocolError(f"{what} must be {size} bytes")


def _check_uint64(value: object, what: str) -> None:
    if not _is_u64(value):
        raise ProtocolError(f"{what} must be an integer in [0, 2**64)")
