"""The Merkle sum trie and weighted proofs (DESIGN §3.4): known answers, a naive reference
implementation written from the text, and properties of proofs under tampering."""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode, ProtocolError, RelaynetError
from protocol.trie import (
    EMPTY,
    EMPTY_ROOT,
    Node,
    Proof,
    Root,
    SumTrie,
    inner_digest,
    leaf_digest,
    proof_is_valid,
    verify_proof,
)

Item = tuple[bytes, bytes, int]


def h(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def siblings_of(raw: list[list[Any]]) -> list[Node]:
    return [Node(h(digest), total, count) for digest, total, count in raw]


# -- a naive reference, straight from the text -------------------------------------------------


def bit(key: bytes, depth: int) -> int:
    return (int.from_bytes(key, "big") >> (255 - depth)) & 1


def first_of_each(items: list[Item]) -> dict[bytes, Item]:
    kept: dict[bytes, Item] = {}
    for item in items:
        kept.setdefault(item[0], item)
    return kept


def ref_node(leaves: list[Item], depth: int) -> Node:
    return _ref_node(tuple(leaves), depth)


@functools.lru_cache(maxsize=65536)
def _ref_node(leaves: tuple[Item, ...], depth: int) -> Node:
    if not leaves:
        return EMPTY
    if len(leaves) == 1:
        key, value_hash, weight = leaves[0]
        return Node(leaf_digest(key, value_hash, weight), weight, 1)
    left = _ref_node(tuple(leaf for leaf in leaves if not bit(leaf[0], depth)), depth + 1)
    right = _ref_node(tuple(leaf for leaf in leaves if bit(leaf[0], depth)), depth + 1)
    return Node(inner_digest(left, right), left.sum + right.sum, left.count + right.count)


def ref_root(items: list[Item]) -> Root:
    node = ref_node(list(first_of_each(items).values()), 0)
    return Root(node.digest, node.sum, node.count)


def ref_prove(items: list[Item], r: int) -> Proof:
    leaves = list(first_of_each(items).values())
    siblings: list[Node] = []
    depth = 0
    while len(leaves) > 1:
        left = [leaf for leaf in leaves if not bit(leaf[0], depth)]
        right = [leaf for leaf in leaves if bit(leaf[0], depth)]
        left_node, right_node = ref_node(left, depth + 1), ref_node(right, depth + 1)
        if r < left_node.sum:
            siblings.append(right_node)
            leaves = left
        else:
            r -= left_node.sum
            siblings.append(left_node)
            leaves = right
        depth += 1
    key, value_hash, weight = leaves[0]
    return Proof(key, value_hash, weight, tuple(siblings))


def interval_leaf(items: list[Item], r: int) -> bytes:
    """The key whose cumulative-weight interval (leaves in key order) contains r."""
    offset = 0
    for key, _, weight in sorted(first_of_each(items).values()):
        if offset <= r < offset + weight:
            return key
        offset += weight
    raise AssertionError("r outside the total weight")


def check(root: Root, r: int, proof: Proof) -> bool:
    return proof_is_valid(root, r, proof.key, proof.value_hash, proof.weight, proof.siblings)


# -- known answers ---------------------------------------------------------------------------


def test_kat_tries(kat: dict[str, Any]) -> None:
    assert kat["tries"], "the KAT file has trie cases"
    refused = 0
    for case in kat["tries"]:
        items = [(h(leaf["key"]), h(leaf["value_hash"]), leaf["weight"]) for leaf in case["leaves"]]
        trie = SumTrie.build(items)
        assert trie.root.encode() == h(case["root"])
        assert Root.decode(h(case["root"])) == trie.root
        assert len(trie) == len(first_of_each(items))
        for challenge in case["challenges"]:
            r = challenge["r"]
            key = h(challenge["leaf_key"])
            _, value_hash, weight = first_of_each(items)[key]
            siblings = siblings_of(challenge["siblings"])
            if challenge.get("valid", True):
                proof = trie.prove(r)
                assert proof.key == key
                assert (proof.value_hash, proof.weight) == (value_hash, weight)
                assert list(proof.siblings) == siblings
                verify_proof(trie.root, r, key, value_hash, weight, siblings)
            else:
                refused += 1
                assert not proof_is_valid(trie.root, r, key, value_hash, weight, siblings)
                with pytest.raises(ProtocolError) as info:
                    verify_proof(trie.root, r, key, value_hash, weight, siblings)
                assert info.value.code is ErrorCode.BAD_PROOF
    assert refused >= 4


def test_kat_roots_match_reference(kat: dict[str, Any]) -> None:
    for case in kat["tries"]:
        items = [(h(leaf["key"]), h(leaf["value_hash"]), leaf["weight"]) for leaf in case["leaves"]]
        assert (ref_root(items) if items else EMPTY_ROOT).encode() == h(case["root"])


# -- edges -----------------------------------------------------------------------------------


def test_empty_trie() -> None:
    trie = SumTrie.build([])
    assert trie.root == EMPTY_ROOT
    assert trie.root.encode() == bytes(48)
    assert len(trie) == 0
    with pytest.raises(ProtocolError) as info:
        trie.prove(0)
    assert info.value.code is ErrorCode.BAD_PROOF
    assert not proof_is_valid(EMPTY_ROOT, 0, bytes(32), bytes(32), 1, [])


def test_single_leaf_has_no_siblings() -> None:
    key, value_hash = b"\x07" * 32, b"\x09" * 32
    trie = SumTrie.build([(key, value_hash, 3)])
    digest = hashlib.sha256(
        b"\x00" + key + value_hash + (3).to_bytes(8, "big") + (1).to_bytes(8, "big")
    ).digest()
    assert trie.root == Root(digest, 3, 1)
    for r in range(3):
        proof = trie.prove(r)
        assert proof.siblings == ()
        assert check(trie.root, r, proof)
    # An extra sibling of any kind is not canonical for a one-leaf trie.
    assert not proof_is_valid(trie.root, 0, key, value_hash, 3, [EMPTY])


def test_two_leaves_sharing_a_prefix_get_empty_siblings() -> None:
    a = bytes(31) + b"\x00"
    b = bytes(31) + b"\x01"
    items = [(a, b"\x01" * 32, 2), (b, b"\x02" * 32, 5)]
    trie = SumTrie.build(items)
    assert trie.root == ref_root(items)
    proof = trie.prove(6)
    assert proof.key == b
    assert len(proof.siblings) == 256
    assert all(node == EMPTY for node in proof.siblings[:255])
    assert proof.siblings[255] == Node(leaf_digest(a, b"\x01" * 32, 2), 2, 1)
    assert check(trie.root, 6, proof)


def test_challenge_out_of_range_is_refused() -> None:
    items = [(bytes([i]) * 32, bytes([i]) * 32, 2) for i in range(4)]
    trie = SumTrie.build(items)
    proof = trie.prove(7)
    for r in (-1, 8, 9, 2**64):
        with pytest.raises(ProtocolError) as info:
            trie.prove(r)
        assert info.value.code is ErrorCode.BAD_PROOF
        assert not check(trie.root, r, proof)


def test_duplicates_keep_the_first() -> None:
    key = b"\x42" * 32
    items = [
        (key, b"\x01" * 32, 4),
        (b"\x10" * 32, b"\x02" * 32, 1),
        (key, b"\x03" * 32, 9),
    ]
    trie = SumTrie.build(items)
    assert len(trie) == 2
    assert trie.root.sum == 5
    assert trie.root == ref_root(items)
    proof = trie.prove(4)
    assert (proof.key, proof.value_hash, proof.weight) == (key, b"\x01" * 32, 4)


def test_duplicates_keep_the_first_whatever_their_values() -> None:
    key = b"\x42" * 32
    for late in (b"\x00" * 32, b"\xff" * 32):
        items = [
            (b"\x43" * 32, b"\x05" * 32, 1),
            (key, b"\x80" * 32, 4),
            (key, late, 4),
            (key, late, 1),
            (key, b"\x80" * 32, 3),
        ]
        trie = SumTrie.build(items)
        assert len(trie) == 2
        assert trie.root == ref_root(items)
        proof = trie.prove(0)
        assert (proof.key, proof.value_hash, proof.weight) == (key, b"\x80" * 32, 4)


def test_refs_come_back_with_the_opened_leaf() -> None:
    rng = random.Random(7)
    items = [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 9), 326 * i) for i in range(50)]
    trie = SumTrie.build(iter(items))
    by_key = {key: ref for key, _, _, ref in items}
    for r in range(0, trie.root.sum, 7):
        proof = trie.prove(r)
        assert proof.ref == by_key[proof.key]
    plain = SumTrie.build(item[:3] for item in items)
    assert plain.root == trie.root
    assert plain.prove(0).ref is None


def test_zero_weight_leaves_are_never_opened() -> None:
    rng = random.Random(3)
    items = [(rng.randbytes(32), rng.randbytes(32), i % 3) for i in range(40)]
    trie = SumTrie.build(items)
    assert trie.root == ref_root(items)
    for r in range(trie.root.sum):
        proof = trie.prove(r)
        assert proof.weight > 0
        assert proof.key == interval_leaf(items, r)


@pytest.mark.parametrize(
    "items",
    [
        [(b"\x00" * 31, b"\x00" * 32, 1)],
        [(b"\x00" * 32, b"\x00" * 33, 1)],
        [(b"\x00" * 32, b"\x00" * 32, -1)],
        [(b"\x00" * 32, b"\x00" * 32, 2**64)],
        [(b"\x00" * 32, b"\x00" * 32, 1.5)],
        [("a" * 32, b"\x00" * 32, 1)],
        [(b"\x00" * 32, b"\x00" * 32, 1), (b"\x01" * 32, b"\x00" * 32, 1, 5)],
        [(b"\x00" * 32, b"\x00" * 32)],
        [(b"\x00" * 32, b"\x00" * 32, 2**63), (b"\x01" * 32, b"\x00" * 32, 2**63)],
        [(b"\x00" * 32, b"\x00" * 32, 1, 2**63)],
    ],
)
def test_malformed_items_are_refused(items: list[Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        SumTrie.build(items)
    assert info.value.code is ErrorCode.MALFORMED_INPUT
    assert isinstance(info.value, RelaynetError)


def test_root_codec() -> None:
    root = Root(b"\xab" * 32, 2**64 - 1, 17)
    assert Root.decode(root.encode()) == root
    assert len(root.encode()) == 48
    with pytest.raises(ProtocolError):
        Root.decode(bytes(47))


def test_non_canonical_siblings_are_refused() -> None:
    rng = random.Random(11)
    items = [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 5)) for _ in range(30)]
    trie = SumTrie.build(items)
    r = trie.root.sum // 2
    proof = trie.prove(r)
    assert check(trie.root, r, proof)
    # An empty sibling written with a non-zero digest or sum.
    for index, node in enumerate(proof.siblings):
        if node.count == 0:
            for bad in (Node(b"\x01" * 32, 0, 0), Node(bytes(32), 1, 0)):
                forged = list(proof.siblings)
                forged[index] = bad
                assert not check(trie.root, r, replace(proof, siblings=tuple(forged)))
    # An extra empty sibling at the bottom (the leaf pushed one level down).
    deeper = replace(proof, siblings=(*proof.siblings, EMPTY))
    assert not check(trie.root, r, deeper)
    # Siblings reversed, or one dropped.
    assert not check(trie.root, r, replace(proof, siblings=proof.siblings[::-1]))
    assert not check(trie.root, r, replace(proof, siblings=proof.siblings[1:]))
    # Malformed fields never raise anything but a refusal.
    bad_nodes = (Node(bytes(31), 0, 0), Node(bytes(32), -1, 1), Node(bytes(32), 0, 2**64))
    for bad in bad_nodes:
        assert not check(trie.root, r, replace(proof, siblings=(bad, *proof.siblings[1:])))
    assert not check(trie.root, r, replace(proof, key=bytes(31)))
    assert not check(trie.root, r, replace(proof, weight=-1))
    assert not proof_is_valid(Root(bytes(32), -1, 0), 0, proof.key, proof.value_hash, 1, [])


def test_a_larger_trie_matches_the_reference() -> None:
    rng = random.Random(2024)
    items: list[Item] = []
    for i in range(600):
        if i % 50 == 0 and items:
            items.append((items[rng.randrange(len(items))][0], rng.randbytes(32), 7))
        prefix = bytes(rng.choice((0, 1, 2, 5)))
        items.append(
            (prefix + rng.randbytes(32 - len(prefix)), rng.randbytes(32), rng.randint(1, 100))
        )
    trie = SumTrie.build(items)
    assert trie.root == ref_root(items)
    for i in range(40):
        r = rng.randrange(trie.root.sum)
        proof = trie.prove(r)
        if i < 8:
            assert proof == ref_prove(items, r)
        assert proof.key == interval_leaf(items, r)
        assert check(trie.root, r, proof)


# -- properties ------------------------------------------------------------------------------


@st.composite
def tries(draw: st.DrawFn) -> list[Item]:
    """Leaves with clustered keys (long shared prefixes), some repeated keys."""
    pool_size = draw(st.integers(1, 24))
    pool = []
    for _ in range(pool_size):
        shared = draw(st.sampled_from((0, 0, 1, 4, 20, 31)))
        tail = draw(st.binary(min_size=32, max_size=32))
        pool.append(bytes(shared) + tail[shared:])
    picks = draw(st.lists(st.integers(0, pool_size - 1), min_size=1, max_size=40))
    return [
        (
            pool[i],
            draw(st.binary(min_size=32, max_size=32)),
            draw(st.integers(1, 2**16)),
        )
        for i in picks
    ]


@settings(max_examples=150, deadline=None)
@given(items=tries(), data=st.data())
def test_proofs_verify_and_open_the_interval_leaf(items: list[Item], data: st.DataObject) -> None:
    trie = SumTrie.build(items)
    assert trie.root == ref_root(items)
    assert len(trie) == len(first_of_each(items))
    r = data.draw(st.integers(0, trie.root.sum - 1))
    proof = trie.prove(r)
    assert proof.key == interval_leaf(items, r)
    assert first_of_each(items)[proof.key] == (proof.key, proof.value_hash, proof.weight)
    assert proof == ref_prove(items, r)
    verify_proof(trie.root, r, proof.key, proof.value_hash, proof.weight, proof.siblings)


def _flip(value: bytes, position: int) -> bytes:
    data = bytearray(value)
    data[position // 8] ^= 0x80 >> (position % 8)
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(items=tries(), data=st.data())
def test_any_tampering_is_refused(items: list[Item], data: st.DataObject) -> None:
    trie = SumTrie.build(items)
    root = trie.root
    r = data.draw(st.integers(0, root.sum - 1))
    proof = trie.prove(r)
    assert check(root, r, proof)
    bit_at = data.draw(st.integers(0, 255))
    tampered = [
        replace(proof, key=_flip(proof.key, bit_at)),
        replace(proof, value_hash=_flip(proof.value_hash, bit_at)),
        replace(proof, weight=proof.weight + data.draw(st.sampled_from((1, -1)))),
    ]
    if proof.siblings:
        index = data.draw(st.integers(0, len(proof.siblings) - 1))
        node = proof.siblings[index]
        for forged in (
            replace(node, digest=_flip(node.digest, bit_at)),
            replace(node, sum=node.sum + 1),
            replace(node, count=node.count + 1),
            replace(node, count=max(node.count - 1, 0) if node.count else 1),
        ):
            siblings = list(proof.siblings)
            siblings[index] = forged
            tampered.append(replace(proof, siblings=tuple(siblings)))
    for bad in tampered:
        assert not check(root, r, bad), bad
    for bad_root in (
        replace(root, digest=_flip(root.digest, bit_at)),
        replace(root, sum=root.sum + 1),
        replace(root, count=root.count + 1),
    ):
        assert not check(bad_root, r, proof)
    # Another challenge verifies with this proof exactly when it falls in the leaf's interval.
    offset = sum(node.sum for node, _ in _left_siblings(proof))
    assert offset <= r < offset + proof.weight
    other = data.draw(st.integers(0, root.sum - 1))
    assert check(root, other, proof) == (offset <= other < offset + proof.weight)


def _left_siblings(proof: Proof) -> list[tuple[Node, int]]:
    return [(node, d) for d, node in enumerate(proof.siblings) if bit(proof.key, d)]
