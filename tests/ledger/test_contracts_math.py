"""Python (protocol/, session/) and Vyper agree: the KAT file's cases and fresh random ones.

Cases come from three sources: the known-answer file, a fresh file from ``relaynet dev
vectors`` (``relaynet.vectors.generate``) and this module's own random generators. Pure math runs
through ``MathHarness`` (it exposes ``relaymath.vy``, the module Settlement
itself uses); windows and position histories run through the real ``Sessions`` and
``Suppliers`` contracts. Every random section has at least 50 fresh cases per run, invalid ones
included; the seed is printed so that a failure can be replayed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess
from ledger.deploy import DeployParams
from ledger.econ import econ_tuple
from protocol import settlement as ps
from protocol.errors import RelaynetError
from protocol.keys import AccountKey
from protocol.relay import (
    Domain,
    RelayHeader,
    is_mined,
    recover_signer,
    relay_key,
    request_digest,
    sign_request,
)
from protocol.settlement import pending_sessions
from protocol.trie import Node, SumTrie, proof_is_valid
from session.positions import PositionHistory
from session.slots import session_seed, slot_positions
from session.snapshot import SessionShape
from session.windows import session_of, windows
from tests.support.chain import Chain, Raw, cs, sid

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


RANDOM_CASES = 50
SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DEV0 = Web3.to_checksum_address(DEV_ACCOUNTS[0][0])


def hx(s: str) -> bytes:
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


@pytest.fixture(scope="module")
def rng(relaynet_seed: int) -> random.Random:
    print(f"random seed {relaynet_seed}")
    return random.Random(relaynet_seed)


@pytest.fixture(scope="module", params=["kat", "generated"])
def vectors(
    request: pytest.FixtureRequest, kat: dict[str, Any], relaynet_seed: int
) -> dict[str, Any]:
    """The known-answer file, and a fresh file from ``relaynet dev vectors`` (same format)."""
    if request.param == "kat":
        return kat
    from relaynet.vectors import generate

    return generate(relaynet_seed)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as anvil:
        yield anvil


class _Call:
    def __init__(self, raw: Raw, address: str, name: str, args: tuple[Any, ...]) -> None:
        self.raw, self.address, self.name, self.args = raw, address, name, args

    def call(self) -> Any:
        return self.raw.call("MathHarness", self.address, self.name, *self.args)


class Harness:
    """``harness.fn(*args).call()`` like web3's ``contract.functions``, over plain JSON-RPC."""

    def __init__(self, raw: Raw, address: str) -> None:
        self._raw, self._address = raw, address

    def __getattr__(self, name: str) -> Any:
        return lambda *args: _Call(self._raw, self._address, name, args)


@pytest.fixture(scope="module")
def harness(node: AnvilProcess) -> Harness:
    raw = Raw(node)
    return Harness(raw, raw.deploy(DEV0, "MathHarness"))


# -- windows (Sessions) ---------------------------------------------------------------------


def random_shape(rng: random.Random) -> dict[str, int]:
    while True:
        shape = {
            "L": rng.choice([1, 2, 3, 10, 60, rng.randint(1, 500)]),
            "G": rng.randint(0, 10),
            "CO": rng.randint(0, 5),
            "CW": rng.randint(1, 40),
            "PO": rng.randint(0, 5),
            "PW": rng.randint(1, 60),
        }
        span = shape["L"] + shape["G"] + shape["CO"] + shape["CW"]  # must stay below 256
        if shape["G"] + shape["CO"] + shape["CW"] + shape["PO"] + shape["PW"] < 200 and span < 256:
            return shape


def check_windows(
    node: AnvilProcess,
    shape: dict[str, int],
    n: int,
    heights: list[int],
    expected: dict[str, Any] | None,
    kat_b0: int | None,
) -> None:
    P = pending_sessions(shape["L"], shape["G"], shape["CO"], shape["CW"], shape["PO"], shape["PW"])
    econ = econ_tuple(DeployParams(unbonding_sessions=P).economic_params())
    raw = Raw(node)
    address = raw.deploy(
        DEV0,
        "Sessions",
        DEV0,
        DEV0,
        shape["L"],
        shape["G"],
        shape["CO"],
        shape["CW"],
        shape["PO"],
        shape["PW"],
        6,
        econ,
    )
    b0 = raw.call("Sessions", address, "genesis_block")
    assert raw.call("Sessions", address, "P") == P
    got = raw.call("Sessions", address, "windows", n)
    py = windows(SessionShape(B0=b0, S=6, **shape), n)
    names = ("start", "end", "grace_end", "claim_open", "claim_close", "proof_open", "proof_close")
    assert list(got) == [getattr(py, k) for k in names]
    if expected is not None:
        assert kat_b0 is not None
        assert [g - b0 for g in got] == [expected[k] - kat_b0 for k in names]
        assert py.h_n_block - b0 == expected["h_n_block"] - kat_b0
    for h in heights:
        shifted = h - (kat_b0 or 0) + b0 if kat_b0 is not None else b0 + h
        want = session_of(shifted, b0, shape["L"])
        if expected is not None:
            assert want == expected["session_of"][str(h)]
        assert raw.call("Sessions", address, "session_of", shifted) == want


def test_windows(node: AnvilProcess, vectors: dict[str, Any]) -> None:
    for case in vectors["windows"]:
        shape = {k: case[k] for k in ("L", "G", "CO", "CW", "PO", "PW")}
        check_windows(node, shape, case["n"], case["heights"], case["out"], case["B0"])


def test_windows_random(node: AnvilProcess, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        shape = random_shape(rng)
        check_windows(
            node,
            shape,
            rng.randint(0, 10**6),
            [rng.randint(0, 10**7) for _ in range(4)],
            None,
            None,
        )


# -- position histories (Suppliers) ---------------------------------------------------------


@pytest.fixture(scope="module")
def history_chain() -> Iterator[Chain]:
    # FIFO mempool: the transactions of one block run in the order they were sent
    with AnvilProcess(extra_args=["--order", "fifo"]) as anvil:
        chain = Chain(
            anvil,
            DeployParams(
                L=2, G=0, CO=0, CW=1, PO=0, PW=1, min_stake_supplier=1, service_registration_fee=0
            ),
        )
        chain.tx("Services", "register_service", DEV0, sid("svc"), "svc", "evm", "", 1, 10, 0)
        yield chain


def random_ops(rng: random.Random) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    staked: list[str] = []
    for s in range(rng.randint(0, 2), rng.randint(3, 7)):
        for _ in range(rng.randint(0, 4)):
            if staked and rng.random() < 0.4:
                who = rng.choice(staked)
                staked.remove(who)
                ops.append({"session": s, "op": "unstake", "supplier": who})
            else:
                who = "0x" + rng.randbytes(20).hex()
                staked.append(who)
                ops.append({"session": s, "op": "stake", "supplier": who})
        if rng.random() < 0.15:
            for who in list(staked):
                staked.remove(who)
                ops.append({"session": s, "op": "unstake", "supplier": who})
    return ops


def replay_history(
    chain: Chain, ops: list[dict[str, Any]], rng: random.Random
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Run ``ops`` on the Suppliers contract and read the records back, translated to the ops'
    supplier names and sessions; check reads of length(n)/occupant(p, n) against Python.

    One fresh chain address per stake; the ops of one session go into one block (automine off,
    FIFO order), and op session s runs in chain session ``base + s`` (the rule is relative)."""
    raw = Raw(chain.anvil)
    token, sup = chain.deployment.token, chain.deployment.contracts["Suppliers"]
    L, B0 = chain.shape.L, chain.B0
    snap = chain.snapshot()
    raw.rpc("evm_setAutomine", [False])
    try:
        svc = sid("svc")
        base = (chain.block() + 1 - B0) // L + 1
        fresh = {
            i: chain.account(os.urandom(20)) for i, op in enumerate(ops) if op["op"] == "stake"
        }
        sent = []
        for addr in fresh.values():
            sent.append(raw.send_async(DEV0, token, raw.data("Token", "transfer", addr, 1)))
            sent.append(raw.send_async(addr, token, raw.data("Token", "approve", sup, 1)))
        raw.rpc("evm_mine", [])
        name_of: dict[str, str] = {}
        current: dict[str, str] = {}
        sessions = sorted({op["session"] for op in ops})
        for s in sessions:
            start = B0 + (base + s) * L
            now = chain.block()
            assert now < start
            if start - 1 > now:
                raw.rpc("anvil_mine", [hex(start - 1 - now)])
            for i, op in enumerate(ops):
                if op["session"] != s:
                    continue
                if op["op"] == "stake":
                    addr = fresh[i]
                    name_of[addr.lower()] = op["supplier"]
                    current[op["supplier"]] = addr
                    data = raw.data(
                        "Suppliers", "stake_supplier", 1, [svc], ["http://s"], b"\x01" * 32
                    )
                    sent.append(raw.send_async(addr, sup, data))
                else:
                    data = raw.data("Suppliers", "unstake_supplier")
                    sent.append(raw.send_async(current.pop(op["supplier"]), sup, data))
            raw.rpc("evm_mine", [])
            assert chain.block() == start
        for tx_hash in sent:
            receipt = raw.receipt(tx_hash)
            assert receipt["status"] == "0x1", receipt
        lengths = [
            {"from_session": f - base, "length": n}
            for f, n in (
                raw.call("Suppliers", sup, "length_record", svc, i)
                for i in range(raw.call("Suppliers", sup, "length_records", svc))
            )
        ]
        positions = []
        for p in range(64):
            count = raw.call("Suppliers", sup, "position_records", svc, p)
            if count == 0:
                break
            records = []
            for i in range(count):
                f, a = raw.call("Suppliers", sup, "position_record", svc, p, i)
                records.append({"from_session": f - base, "supplier": name_of[a.lower()]})
            positions.append(records)
        # random reads: length(n) and occupant(p, n) against Python's history
        py = PositionHistory.from_records(lengths, positions)
        last = max(sessions, default=0) + 2
        for _ in range(3):
            n = rng.randint(0, last)
            length = raw.call("Suppliers", sup, "length", svc, n + base)
            assert length == py.length(n)
            for p in range(length):
                got = raw.call("Suppliers", sup, "occupant", svc, p, n + base).lower()
                assert name_of[got] == "0x" + py.occupant(p, n).hex()
        return lengths, positions
    finally:
        raw.rpc("evm_setAutomine", [True])
        chain.revert_to(snap)


def python_history(ops: list[dict[str, Any]]) -> PositionHistory:
    hist = PositionHistory()
    for op in ops:
        who = hx(op["supplier"])
        if op["op"] == "stake":
            hist.stake(who, op["session"])
        else:
            hist.unstake(who, op["session"])
    return hist


def test_histories(history_chain: Chain, vectors: dict[str, Any], rng: random.Random) -> None:
    for case in vectors["histories"]:
        lengths, positions = replay_history(history_chain, case["ops"], rng)
        assert lengths == case["lengths"]
        assert positions == case["positions"]


def test_histories_random(history_chain: Chain, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        ops = random_ops(rng)
        lengths, positions = replay_history(history_chain, ops, rng)
        hist = python_history(ops)
        assert lengths == hist.lengths()
        assert positions == hist.positions()


# -- seeds and slots ------------------------------------------------------------------------


def test_sessions(harness: Any, vectors: dict[str, Any]) -> None:
    for case in vectors["sessions"]:
        seed = harness.session_seed(
            hx(case["block_hash"]), sid(case["service_id"]), cs(case["app"]), case["n"]
        ).call()
        assert "0x" + seed.hex() == case["seed"]
        hist = PositionHistory.from_records(case["lengths"], case["positions"])
        C = hist.length(case["n"])
        assert C == case["C"]
        got = [harness.slot_position(seed, j, C).call() for j in range(case["S"])] if C else []
        assert ["0x" + hist.occupant(p, case["n"]).hex() for p in got] == case["slots"]


def test_sessions_random(harness: Any, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        h_n, app, n = rng.randbytes(32), rng.randbytes(20), rng.randint(0, 2**64 - 1)
        service = "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(rng.randint(1, 32))
        )
        S, C = rng.randint(1, 64), rng.choice([1, 2, 3, rng.randint(1, 10**6)])
        seed = harness.session_seed(h_n, sid(service), cs(app), n).call()
        assert seed == session_seed(h_n, service, app, n)
        j = rng.randrange(S)
        assert harness.slot_position(seed, j, C).call() == slot_positions(seed, S, C)[j]


def test_slot_lists(harness: Any, vectors: dict[str, Any], rng: random.Random) -> None:
    for case in vectors["claims"]:
        verdict = harness.check_slots(case["slots"], case["S"]).call()
        assert (verdict == 0) == case.get("valid", True)
    for _ in range(RANDOM_CASES):
        S = rng.randint(1, 64)
        slots = sorted(rng.sample(range(S), rng.randint(1, S)))
        kind = rng.randrange(4)
        if kind == 1 and len(slots) > 1:
            slots[1] = slots[0]
        elif kind == 2 and len(slots) > 1:
            slots.reverse()
        elif kind == 3:
            slots[-1] = S + rng.randint(0, 5)
        try:
            ps.validate_slots(slots, S)
            py_ok = True
        except RelaynetError:
            py_ok = False
        assert (harness.check_slots(slots, S).call() == 0) == py_ok


# -- relays: digest, key, signer, mining ----------------------------------------------------


def header_of(case: dict[str, Any]) -> RelayHeader:
    import hashlib

    return RelayHeader(
        version=case["version"],
        service_id=case["service_id"],
        application=hx(case["app"]),
        signer=hx(case["signer"]),
        supplier=hx(case["supplier"]),
        session=case["n"],
        payload_hash=hashlib.sha256(hx(case["request_payload"])).digest(),
        nonce=hx(case["nonce"]),
        max_index=case["max_index"],
        compute_units=case["compute_units"],
    )


def vyper_recover(harness: Any, digest: bytes, sig: bytes) -> bytes | None:
    signer, code = harness.recover(digest, sig).call()
    return hx(signer) if code == 0 else None


def python_recover(digest: bytes, sig: bytes) -> bytes | None:
    try:
        return recover_signer(digest, sig)
    except RelaynetError:
        return None


def test_relays(harness: Any, vectors: dict[str, Any]) -> None:
    for case in vectors["relays"]:
        sep = harness.domain_separator(case["chain_id"], cs(case["settlement"])).call()
        assert sep == Domain(case["chain_id"], hx(case["settlement"])).separator
        rh = hx(case["rh"]) if "rh" in case else header_of(case).encode()
        digest = harness.request_digest(rh, sep).call()
        signer = vyper_recover(harness, digest, hx(case["request_sig"]))
        if not case.get("valid", True):
            # the receipt case is checked off-chain only (receipts are not part of a proof)
            if signer is None:
                assert python_recover(digest, hx(case["request_sig"])) is None
            continue
        out = case.get("out", case)
        assert "0x" + digest.hex() == out["request_digest"]
        key = harness.relay_key(digest, case["index"]).call()
        assert "0x" + key.hex() == out["relay_key"]
        mined = harness.is_mined(key, hx(case["h_g"]), case["difficulty_bits"]).call()
        assert mined == out["mined"]
        assert signer == hx(case["signer"])


def test_relays_random(harness: Any, rng: random.Random) -> None:
    for i in range(RANDOM_CASES):
        key = AccountKey(rng.randbytes(31) + b"\x01")
        other = AccountKey(rng.randbytes(31) + b"\x02")
        header = RelayHeader(
            version=1,
            service_id=rng.choice(["eth", "base", "celestia-mocha", "a" * 32]),
            application=rng.randbytes(20),
            signer=key.address,
            supplier=rng.randbytes(20),
            session=rng.randint(0, 2**64 - 1),
            payload_hash=rng.randbytes(32),
            nonce=rng.randbytes(16),
            max_index=rng.choice([0, 1, rng.randint(0, 2**32 - 1)]),
            compute_units=rng.randint(1, 2**32 - 1),
        )
        domain = Domain(rng.choice([1, 31337, rng.randint(1, 2**64)]), rng.randbytes(20))
        digest = request_digest(header, domain)
        assert harness.domain_separator(domain.chain_id, cs(domain.settlement)).call() == (
            domain.separator
        )
        assert harness.request_digest(header.encode(), domain.separator).call() == digest
        index = rng.randint(0, 2**64 - 1)
        assert harness.relay_key(digest, index).call() == relay_key(digest, index)
        sig = sign_request(digest, key)
        kind = i % 5
        if kind == 1:  # high-s twin
            s = int.from_bytes(sig[32:64], "big")
            sig = sig[:32] + (SECP_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
        elif kind == 2:  # bad v
            sig = sig[:64] + bytes([rng.choice([0, 1, 26, 29, 255])])
        elif kind == 3:  # another key: recovers, but not to RH.signer
            sig = sign_request(digest, other)
        elif kind == 4:  # garbage r
            sig = rng.randbytes(64) + bytes([27])
        got, want = vyper_recover(harness, digest, sig), python_recover(digest, sig)
        assert got == want
        assert (got == header.signer) == (kind == 0)


def test_mining(harness: Any, rng: random.Random) -> None:
    mined_seen = set()
    for _ in range(RANDOM_CASES * 2):
        key, h_g = rng.randbytes(32), rng.randbytes(32)
        d = rng.choice([0, 1, 2, 3, 4, 5, 8, rng.randint(0, 64)])
        got = harness.is_mined(key, h_g, d).call()
        assert got == is_mined(key, h_g, d)
        mined_seen.add(got)
    assert mined_seen == {True, False}


# -- tries ----------------------------------------------------------------------------------


def verdict(
    harness: Any,
    root: bytes,
    r: int,
    key: bytes,
    vh: bytes,
    weight: int,
    siblings: list[tuple[bytes, int, int]],
) -> bool:
    return int(harness.verify_proof(root, r, key, vh, weight, siblings).call()) == 0


def test_tries(harness: Any, vectors: dict[str, Any]) -> None:
    for case in vectors["tries"]:
        leaves = {}
        for leaf in case["leaves"]:
            leaves.setdefault(leaf["key"], (hx(leaf["value_hash"]), leaf["weight"]))
        root = hx(case["root"])
        for ch in case["challenges"]:
            vh, weight = leaves[ch["leaf_key"]]
            sibs = [(hx(d), s, c) for d, s, c in ch["siblings"]]
            got = verdict(harness, root, ch["r"], hx(ch["leaf_key"]), vh, weight, sibs)
            assert got == ch.get("valid", True), ch
            py = proof_is_valid(
                __import__("protocol.trie", fromlist=["Root"]).Root.decode(root),
                ch["r"],
                hx(ch["leaf_key"]),
                vh,
                weight,
                [Node(d, s, c) for d, s, c in sibs],
            )
            assert py == got


def test_tries_random(harness: Any, rng: random.Random) -> None:
    from protocol.trie import Root

    outcomes = set()
    for i in range(RANDOM_CASES):
        n = rng.choice([1, 2, 3, rng.randint(1, 60)])
        items = [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 1000)) for _ in range(n)]
        if i % 7 == 3 and n > 2:  # keys sharing long prefixes: deep paths
            prefix = rng.randbytes(20)
            items = [(prefix + k[20:], v, w) for k, v, w in items]
        trie = SumTrie.build(items)
        root = trie.root
        r = rng.randrange(root.sum)
        proof = trie.prove(r)
        sibs = [(s.digest, s.sum, s.count) for s in proof.siblings]
        variants: list[tuple[int, list[tuple[bytes, int, int]], int]] = [(r, sibs, proof.weight)]
        if sibs:
            d0, s0, c0 = sibs[0]
            variants.append((r, [(d0, s0 + 1, c0), *sibs[1:]], proof.weight))  # sum changed
            variants.append((r, list(reversed(sibs)), proof.weight))
            variants.append((r, [*sibs, (bytes(32), 0, 0)], proof.weight))  # extra empty
            variants.append((r, [(bytes(32), 0, 0), *sibs], proof.weight))
            variants.append((r, [(b"\x01" * 32, 0, 0), *sibs], proof.weight))
        variants.append(((r + proof.weight) % root.sum, sibs, proof.weight))  # another r
        variants.append((r, sibs, proof.weight + 1))
        for rr, ss, ww in variants:
            got = verdict(harness, root.encode(), rr, proof.key, proof.value_hash, ww, ss)
            py = proof_is_valid(
                root, rr, proof.key, proof.value_hash, ww, [Node(d, s, c) for d, s, c in ss]
            )
            assert got == py, (i, rr, ss, ww)
            outcomes.add(got)
        assert Root.decode(root.encode()) == root
    assert outcomes == {True, False}


# -- settlement arithmetic ------------------------------------------------------------------


def check_claim(harness: Any, case: dict[str, Any], expected: dict[str, Any] | None) -> None:
    P = harness.pending_sessions(
        case["L"], case["G"], case["CO"], case["CW"], case["PO"], case["PW"]
    ).call()
    budget = harness.budget(len(case["slots"]), case["app_stake"], case["S"], P).call()
    claimed = harness.claimed_amount(
        case["sum"], case["cu_price"], case["difficulty_bits"], budget
    ).call()
    root, h_c = hx(case["root"]), hx(case["h_c"])
    required = harness.proof_required(
        claimed, case["proof_threshold"], root, h_c, case["proof_probability_bps"]
    ).call()
    r = harness.challenge(h_c, hx(case["session_id"]), cs(case["supplier"]), case["sum"]).call()
    s, o, t = harness.shares(
        min(claimed, case["app_remaining_stake"]), case["mint_shares"][0], case["mint_shares"][1]
    ).call()
    slash, bounty, _burned = harness.slash_amounts(
        claimed, case["slash_multiplier_bps"], case["supplier_stake"], case["settle_bounty_bps"]
    ).call()
    tokens = ps.claim_tokens(case["sum"], case["cu_price"], case["difficulty_bits"])
    py_P = ps.pending_sessions(case["L"], case["G"], case["CO"], case["CW"], case["PO"], case["PW"])
    py_budget = ps.budget(len(case["slots"]), case["app_stake"], case["S"], py_P)
    py_claimed = ps.claimed_amount(tokens, py_budget)
    pay = ps.settle_valid(py_claimed, case["app_remaining_stake"], case["mint_shares"])
    sl = ps.settle_void(
        py_claimed, case["slash_multiplier_bps"], case["supplier_stake"], case["settle_bounty_bps"]
    )
    got = {
        "P": P,
        "budget": budget,
        "claimed": claimed,
        "required": required,
        "r": r,
        "paid": s + o + t,
        "supplier_share": s,
        "owner_share": o,
        "treasury_share": t,
        "slash": slash,
        "bounty": bounty,
    }
    py = {
        "P": py_P,
        "budget": py_budget,
        "claimed": py_claimed,
        "required": ps.proof_required(
            py_claimed, case["proof_threshold"], root, h_c, case["proof_probability_bps"]
        ),
        "r": ps.challenge(h_c, hx(case["session_id"]), hx(case["supplier"]), case["sum"]),
        "paid": pay.paid,
        "supplier_share": pay.supplier,
        "owner_share": pay.owner,
        "treasury_share": pay.treasury,
        "slash": sl.slash,
        "bounty": sl.bounty,
    }
    assert got == py
    if expected is not None:
        assert tokens == expected["tokens"]
        assert got == {k: expected[k] for k in got}


def test_claims(harness: Any, vectors: dict[str, Any]) -> None:
    for case in vectors["claims"]:
        if case.get("valid", True):
            check_claim(harness, case, case["out"])


def test_claims_random(harness: Any, rng: random.Random) -> None:
    for _ in range(RANDOM_CASES):
        shape = random_shape(rng)
        S = rng.randint(1, 64)
        count = rng.randint(1, 10**6)
        total = rng.randint(count, count * 100)
        shares_s = rng.randint(0, 10000)
        shares_o = rng.randint(0, 10000 - shares_s)
        p_bps = rng.choice([0, 2500, 5000, 10000, rng.randint(0, 10000)])
        case = {
            **shape,
            "S": S,
            "slots": sorted(rng.sample(range(S), rng.randint(1, S))),
            "app_stake": rng.choice([0, rng.randint(1, 10**24), rng.randint(1, 10**30)]),
            "sum": total,
            "count": count,
            "root": "0x"
            + (rng.randbytes(32) + total.to_bytes(8, "big") + count.to_bytes(8, "big")).hex(),
            "cu_price": rng.choice([1, rng.randint(1, 10**12), rng.randint(1, 2**64)]),
            "difficulty_bits": rng.choice([0, 0, 1, 8, rng.randint(0, 64)]),
            "proof_threshold": rng.choice([0, rng.randint(0, 10**20), 2**256 - 1]),
            "proof_probability_bps": p_bps,
            "h_c": "0x" + rng.randbytes(32).hex(),
            "session_id": "0x" + rng.randbytes(32).hex(),
            "supplier": "0x" + rng.randbytes(20).hex(),
            "app_remaining_stake": rng.randint(0, 10**24),
            "mint_shares": [shares_s, shares_o, 10000 - shares_s - shares_o],
            "slash_multiplier_bps": rng.randint(0, 100000),
            "settle_bounty_bps": rng.randint(0, 10000),
            "supplier_stake": rng.randint(0, 10**24),
        }
        check_claim(harness, case, None)
