"""The C accelerator of ``SumTrie.build`` (protocol/_trie_accel.c) against the Python reference:
both paths lay out the same buffers and roots, on the known answers and on random and adversarial
inputs, and refuse the same malformed input."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError
from protocol.trie import MAX_UINT64, Root, SumTrie, accelerated, verify_proof

Item = tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]


def h(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def accel() -> Any:
    from protocol import _trie_accel

    return _trie_accel


def state(trie: SumTrie) -> tuple[Any, ...]:
    """Every buffer a built trie holds."""
    refs = None if trie._refs is None else trie._refs.tolist()
    return (
        trie._count,
        bytes(trie._records),
        refs,
        trie._cum.tolist(),
        bytes(trie._lcp),
        bytes(trie._top),
        trie._root,
        trie._root_id,
    )


def both(items: list[Any]) -> SumTrie:
    """Build with both paths, check they agree buffer for buffer, return the accelerated trie."""
    fast = SumTrie._build_accelerated(items)
    pure = SumTrie._build_pure(items)
    assert state(fast) == state(pure)
    return fast


def check_proofs(trie: SumTrie, rng: random.Random, rounds: int = 20) -> None:
    total = trie.root.sum
    for r in [0, total - 1, *(rng.randrange(total) for _ in range(rounds))] if total else []:
        proof = trie.prove(r)
        verify_proof(trie.root, r, proof.key, proof.value_hash, proof.weight, proof.siblings)


def random_items(rng: random.Random, n: int, refs: bool = False) -> list[Any]:
    items: list[Any] = []
    for i in range(n):
        key, value_hash, weight = rng.randbytes(32), rng.randbytes(32), rng.randint(0, 1000)
        items.append((key, value_hash, weight, 7 * i - 3) if refs else (key, value_hash, weight))
    return items


# -- the accelerator itself -------------------------------------------------------------------


def test_the_accelerator_is_built_and_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYNET_TRIE_PURE", "1")  # the old switch: the environment is not read
    assert accel().SHA256_IMPL in {"portable", "x86-sha"}
    assert accelerated()
    assert not accelerated(accelerate=False)


def test_the_caller_picks_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fast, real_pure = SumTrie._build_accelerated.__func__, SumTrie._build_pure.__func__  # type: ignore[attr-defined]

    def fast(cls: type[SumTrie], items: Any) -> SumTrie:
        calls.append("accelerated")
        return real_fast(cls, items)  # type: ignore[no-any-return]

    def pure(cls: type[SumTrie], items: Any) -> SumTrie:
        calls.append("pure")
        return real_pure(cls, items)  # type: ignore[no-any-return]

    monkeypatch.setattr(SumTrie, "_build_accelerated", classmethod(fast))
    monkeypatch.setattr(SumTrie, "_build_pure", classmethod(pure))
    items = random_items(random.Random(1), 5)
    monkeypatch.setenv("RELAYNET_TRIE_PURE", "1")  # ignored
    first = SumTrie.build(items)
    second = SumTrie.build(items, accelerate=False)
    assert calls == ["accelerated", "pure"]
    assert state(first) == state(second)


@pytest.mark.parametrize("portable", [False, True])
def test_sha256_matches_hashlib(portable: bool) -> None:
    rng = random.Random(2)
    for size in [*range(0, 140), 1000, 4097]:
        data = rng.randbytes(size)
        assert accel().sha256(data, portable) == hashlib.sha256(data).digest(), size


# -- known answers ----------------------------------------------------------------------------


def test_kat_tries_on_both_paths(kat: dict[str, Any]) -> None:
    assert kat["tries"]
    for case in kat["tries"]:
        items = [(h(x["key"]), h(x["value_hash"]), x["weight"]) for x in case["leaves"]]
        trie = both(items)
        assert trie.root.encode() == h(case["root"])
        for challenge in case["challenges"]:
            proof = trie.prove(challenge["r"])
            got = [(s.digest, s.sum, s.count) for s in proof.siblings]
            want = [(h(d), s, c) for d, s, c in challenge["siblings"]]
            if challenge.get("valid", True):
                assert proof.key == h(challenge["leaf_key"])
                assert got == want
            else:  # a tampered proof: never the one either path gives
                assert (proof.key, got) != (h(challenge["leaf_key"]), want)


# -- random and adversarial inputs ------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 17, 256, 3000])
def test_random_tries_agree(n: int) -> None:
    rng = random.Random(n)
    check_proofs(both(random_items(rng, n)), rng)
    check_proofs(both(random_items(rng, n, refs=True)), rng)


def test_empty_trie() -> None:
    trie = both([])
    assert trie.root == Root(b"\x00" * 32, 0, 0)
    assert len(trie) == 0


def test_one_and_two_leaves() -> None:
    one = both([(b"\x80" + b"\x00" * 31, b"\x01" * 32, 9)])
    assert (one.root.sum, one.root.count, one.prove(8).siblings) == (9, 1, ())
    # Two keys sharing 255 bits: 255 empty siblings above the split, then the other leaf.
    pair = both([(b"\xff" * 32, b"\x01" * 32, 1), (b"\xff" * 31 + b"\xfe", b"\x02" * 32, 1)])
    assert len(pair.prove(0).siblings) == 256
    assert len(pair.prove(1).siblings) == 256
    # Two keys differing in the first bit: one sibling each.
    split = both([(b"\x00" * 32, b"\x01" * 32, 3), (b"\x80" + b"\x00" * 31, b"\x02" * 32, 4)])
    assert [len(split.prove(r).siblings) for r in (0, 6)] == [1, 1]


def test_long_shared_prefixes() -> None:
    rng = random.Random(5)
    for shared in [1, 7, 8, 63, 64, 65, 127, 128, 200, 248, 250]:
        prefix = rng.randbytes(32)
        items: list[Any] = []
        for _ in range(200):
            tail = rng.getrandbits(256 - shared)
            head = int.from_bytes(prefix, "big") >> (256 - shared) << (256 - shared)
            items.append(((head | tail).to_bytes(32, "big"), rng.randbytes(32), rng.randint(1, 9)))
        check_proofs(both(items), rng, rounds=10)


def test_keys_dense_in_a_corner() -> None:
    # Consecutive integers: every depth from 248 to 255 splits, with chains of lifts above.
    items = [(i.to_bytes(32, "big"), bytes([i % 256]) * 32, 1 + i % 3) for i in range(600)]
    random.Random(6).shuffle(items)
    check_proofs(both(items), random.Random(7))


def test_repeated_keys_keep_the_first() -> None:
    rng = random.Random(8)
    keys = [rng.randbytes(32) for _ in range(50)]
    items = [(rng.choice(keys), rng.randbytes(32), rng.randint(1, 100), i) for i in range(1000)]
    trie = both(items)
    first: dict[bytes, Any] = {}
    for item in items:
        first.setdefault(item[0], item)
    assert len(trie) == len(first)
    assert trie.root.sum == sum(item[2] for item in first.values())
    for r in range(0, trie.root.sum, 37):
        proof = trie.prove(r)
        _, value_hash, weight, ref = first[proof.key]
        assert (proof.value_hash, proof.weight, proof.ref) == (value_hash, weight, ref)


def test_all_items_the_same_key() -> None:
    key = b"\x42" * 32
    trie = both([(key, bytes([i]) * 32, i + 1, i) for i in range(100)])
    proof = trie.prove(0)
    assert (len(trie), proof.value_hash, proof.weight, proof.ref) == (1, b"\x00" * 32, 1, 0)


def test_weights_at_the_uint64_limit() -> None:
    top = both([(b"\x01" * 32, b"\x00" * 32, MAX_UINT64)])
    assert top.root.sum == MAX_UINT64
    exact = both([(b"\x01" * 32, b"\x00" * 32, MAX_UINT64 - 5), (b"\x02" * 32, b"\x00" * 32, 5)])
    assert exact.root.sum == MAX_UINT64
    assert exact.prove(MAX_UINT64 - 1).key == b"\x02" * 32
    # A repeated key's weight is not counted, so it cannot overflow the total.
    repeated = [(b"\x01" * 32, b"\x00" * 32, MAX_UINT64), (b"\x01" * 32, b"\x00" * 32, 1)]
    assert both(repeated).root.sum == MAX_UINT64


@pytest.mark.parametrize(
    "weights", [[MAX_UINT64, 1], [2**63, 2**63], [2**62] * 4, [1, MAX_UINT64 - 1, 1]]
)
def test_total_weight_overflow_is_refused_by_both(weights: list[int]) -> None:
    items = [(bytes([i + 1]) * 32, b"\x00" * 32, w) for i, w in enumerate(weights)]
    for build in (SumTrie._build_accelerated, SumTrie._build_pure):
        with pytest.raises(ProtocolError, match="total weight") as info:
            build(items)
        assert info.value.code is ErrorCode.MALFORMED_INPUT


def test_refs_at_the_int64_limits_come_back() -> None:
    items = [
        (b"\x01" * 32, b"\x00" * 32, 1, -(2**63)),
        (b"\x02" * 32, b"\x00" * 32, 1, 2**63 - 1),
        (b"\x03" * 32, b"\x00" * 32, 1, 0),
    ]
    trie = both(items)
    assert [trie.prove(r).ref for r in range(3)] == [-(2**63), 2**63 - 1, 0]


def test_lists_bytearrays_bools_and_generators_are_accepted_alike() -> None:
    rng = random.Random(9)
    items = random_items(rng, 40)
    as_lists = [[bytearray(k), v, w] for k, v, w in items]
    assert state(both(as_lists)) == state(both(items))
    assert both([(b"\x01" * 32, b"\x00" * 32, True)]).root.sum == 1

    def stream() -> Iterator[Item]:
        yield from items

    assert state(SumTrie._build_accelerated(stream())) == state(SumTrie._build_pure(items))


@pytest.mark.parametrize(
    "items",
    [
        [(b"\x00" * 31, b"\x00" * 32, 1)],
        [(b"\x00" * 32, b"\x00" * 33, 1)],
        [("a" * 32, b"\x00" * 32, 1)],
        [(b"\x00" * 32, memoryview(b"\x00" * 32), 1)],
        [(b"\x00" * 32, b"\x00" * 32, -1)],
        [(b"\x00" * 32, b"\x00" * 32, 2**64)],
        [(b"\x00" * 32, b"\x00" * 32, 1.5)],
        [(b"\x00" * 32, b"\x00" * 32, "1")],
        [(b"\x00" * 32, b"\x00" * 32, None)],
        [(b"\x00" * 32, b"\x00" * 32, 1, 2**63)],
        [(b"\x00" * 32, b"\x00" * 32, 1, -(2**63) - 1)],
        [(b"\x00" * 32, b"\x00" * 32, 1, 1.0)],
        [(b"\x00" * 32, b"\x00" * 32, 1), (b"\x01" * 32, b"\x00" * 32, 1, 5)],
        [(b"\x00" * 32, b"\x00" * 32, 1, 5), (b"\x01" * 32, b"\x00" * 32, 1)],
        [(b"\x00" * 32, b"\x00" * 32)],
        [(b"\x00" * 32, b"\x00" * 32, 1, 2, 3)],
        [()],
        [5],
        [None],
        ["abc"],
        [b"\x00" * 3],
        [{b"\x00" * 32, b"\x01" * 32, 1}],
    ],
)
def test_malformed_items_are_refused_by_both(items: list[Any]) -> None:
    for build in (SumTrie._build_accelerated, SumTrie._build_pure):
        with pytest.raises(ProtocolError) as info:
            build(items)
        assert info.value.code is ErrorCode.MALFORMED_INPUT


def test_a_malformed_item_after_many_good_ones_is_refused() -> None:
    items: list[Any] = random_items(random.Random(10), 70_000)
    items.append((b"\x00" * 32, b"\x00" * 32, -1))
    for build in (SumTrie._build_accelerated, SumTrie._build_pure):
        with pytest.raises(ProtocolError):
            build(items)


def test_errors_of_the_iterable_itself_pass_through() -> None:
    class Boom(RuntimeError):
        pass

    def stream() -> Iterator[Item]:
        yield (b"\x01" * 32, b"\x00" * 32, 1)
        raise Boom("log unreadable")

    for build in (SumTrie._build_accelerated, SumTrie._build_pure):
        with pytest.raises(Boom):
            build(stream())


def test_concurrent_builds_in_threads_agree() -> None:
    # The accelerator releases the GIL while it sorts and hashes.
    batches = [random_items(random.Random(20 + i), 20_000, refs=True) for i in range(4)]
    results: dict[int, SumTrie] = {}

    def run(i: int) -> None:
        results[i] = SumTrie._build_accelerated(batches[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, batch in enumerate(batches):
        assert state(results[i]) == state(SumTrie._build_pure(batch))


# Keys drawn near a few prefixes so that tries are deep, lopsided and full of repeats.
_prefixes = [b"\x00" * 32, b"\xff" * 32, b"\x5a" * 16 + b"\x00" * 16]


@st.composite
def clustered_items(draw: st.DrawFn) -> list[Any]:
    n = draw(st.integers(0, 40))
    out: list[Any] = []
    for _ in range(n):
        base = int.from_bytes(draw(st.sampled_from(_prefixes)), "big")
        key = (base ^ draw(st.integers(0, (1 << draw(st.integers(0, 256))) - 1))).to_bytes(
            32, "big"
        )
        weight = draw(st.one_of(st.integers(0, 3), st.integers(0, 2**40)))
        out.append((key, draw(st.binary(min_size=32, max_size=32)), weight))
    return out


@settings(max_examples=80, deadline=None)
@given(items=clustered_items(), seed=st.integers(0, 2**32))
def test_property_both_paths_agree(items: list[Any], seed: int) -> None:
    check_proofs(both(items), random.Random(seed), rounds=5)


def test_index_hooks_cannot_pull_the_fields_from_under_the_accelerator() -> None:
    key = bytearray(b"\x07" * 32)
    item: list[Any] = []

    class Shrinking:
        def __index__(self) -> int:
            key.clear()  # the key bytearray and the item list change while the item is read
            item.clear()
            return 5

    item.extend([key, b"\x01" * 32, Shrinking(), Shrinking()])
    items: list[Any] = [item]
    trie = SumTrie._build_accelerated(items)
    want = SumTrie._build_pure([(b"\x07" * 32, b"\x01" * 32, 5, 5)])
    assert state(trie) == state(want)
