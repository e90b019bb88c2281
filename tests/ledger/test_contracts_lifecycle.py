"""The settlement contracts on a real anvil: the life cycle of a claim, void claims, refusals.

One deployment per module; each test starts from the same snapshot (claim window of session
``n`` open, nothing claimed yet) via ``evm_snapshot``/``evm_revert``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger.anvil import AnvilProcess
from ledger.deploy import TOKEN_UNIT, DeployParams
from protocol import settlement as ps
from protocol.keys import AccountKey, ReceiptKey
from protocol.trie import Proof, SumTrie
from session.slots import session_seed, slot_positions
from tests.support.chain import Chain, RelayFactory, cs, dev_key, leaf_trie, sid, trie_item

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class World:
    chain: Chain
    n: int
    owner: AccountKey
    suppliers: list[AccountKey]
    receipt_keys: list[ReceiptKey]
    apps: list[AccountKey]
    gateway: AccountKey
    stranger: AccountKey
    big_app: AccountKey
    h_n: bytes = b""
    snap: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def restore(self) -> None:
        self.chain.revert_to(self.snap)
        self.snap = self.chain.snapshot()

    def slots_of(self, supplier: bytes, app: bytes, service: str = "eth") -> list[int]:
        c = self.chain
        n_pos = c.call("Suppliers", "length", sid(service), self.n)
        seed = session_seed(self.h_n, service, app, self.n)
        occ = [
            bytes.fromhex(c.call("Suppliers", "occupant", sid(service), p, self.n)[2:])
            for p in range(n_pos)
        ]
        return [
            j for j, p in enumerate(slot_positions(seed, c.shape.S, n_pos)) if occ[p] == supplier
        ]

    def factory(
        self, i: int, app: AccountKey, service: str = "eth", n: int | None = None
    ) -> RelayFactory:
        return RelayFactory(
            self.chain.domain(),
            service,
            app.address,
            self.suppliers[i].address,
            self.n if n is None else n,
            self.receipt_keys[i],
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with AnvilProcess() as anvil:
        chain = Chain(anvil, DeployParams())
        w = World(
            chain=chain,
            n=0,
            owner=dev_key(1),
            suppliers=[dev_key(2), dev_key(3), dev_key(4)],
            receipt_keys=[ReceiptKey.generate() for _ in range(3)],
            apps=[dev_key(5), dev_key(8), dev_key(9)],
            gateway=dev_key(6),
            stranger=AccountKey.generate(),
            big_app=AccountKey.generate(),
        )
        chain.register("eth", w.owner.address)
        chain.register("mined", w.owner.address, d=8)
        for i, s in enumerate(w.suppliers):
            services = ["eth", "mined"] if i == 0 else ["eth"]
            chain.stake_supplier(s.address, services, receipt_key=w.receipt_keys[i].public_key)
        for a in w.apps:
            chain.stake_app(a.address, "eth", 1000 * TOKEN_UNIT)
        chain.stake_app(w.big_app.address, "eth", 10**6 * TOKEN_UNIT)
        chain.stake_gateway(w.gateway.address)
        chain.stake_gateway(w.stranger.address)
        chain.tx("Apps", "delegate", w.apps[0].address, cs(w.gateway.address))
        w.n = chain.session() + 1
        start = chain.windows(w.n)[0]
        chain.mine_to(start)
        chain.checkpoint()
        w.h_n = bytes(chain.call("Sessions", "h_n", w.n))
        assert w.h_n != bytes(32)
        claim_open = chain.windows(w.n)[3]
        chain.mine_to(claim_open)
        w.snap = chain.snapshot()
        yield w


def claim_id(w: World, supplier: bytes, app: bytes, service: str = "eth") -> bytes:
    return bytes(
        w.chain.call("Settlement", "claim_id_of", cs(supplier), cs(app), sid(service), w.n)
    )


def siblings_arg(proof: Any) -> list[tuple[bytes, int, int]]:
    return [(s.digest, s.sum, s.count) for s in proof.siblings]


def find_claimable(w: World, supplier_i: int) -> tuple[AccountKey, list[int]]:
    """An app of the session in which supplier ``supplier_i`` holds a slot."""
    for app in [*w.apps, w.big_app]:
        slots = w.slots_of(w.suppliers[supplier_i].address, app.address)
        if slots:
            return app, slots
    raise AssertionError("supplier holds no slot for any app")


def build_claim(
    w: World, i: int, app: AccountKey, signers: list[AccountKey], cus: list[int]
) -> tuple[SumTrie, dict[bytes, bytes]]:
    f = w.factory(i, app)
    leaves: dict[bytes, bytes] = {}
    for signer, cu in zip(signers, cus, strict=True):
        leaf, key = f.leaf(signer, cu=cu)
        leaves[key] = leaf
    trie = SumTrie.build(
        [trie_item(leaf, k, int.from_bytes(leaf[153:157], "big")) for k, leaf in leaves.items()]
    )
    return trie, leaves


def mine_to_proof(w: World) -> None:
    w.chain.mine_to(w.chain.windows(w.n)[5])


def claim_to_challenge(
    w: World, sup: AccountKey, app: AccountKey, slots: list[int], trie: SumTrie
) -> tuple[bytes, Proof]:
    """Claim ``trie`` for ``app``'s session ``w.n``, mine into the proof window and checkpoint:
    the claim id and the proof of the drawn leaf."""
    w.chain.claim(sup.address, app.address, w.n, slots, trie.root.encode())
    cid = claim_id(w, sup.address, app.address)
    mine_to_proof(w)
    w.chain.checkpoint()
    return cid, trie.prove(w.chain.call("Settlement", "challenge_of", cid))


def mine_past_proof(w: World) -> None:
    w.chain.mine_to(w.chain.windows(w.n)[6] + 1)


def test_full_life_cycle(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    # the app that delegates to the gateway, and a supplier holding one of its slots
    app = w.apps[0]
    i, slots = next(
        (i, w.slots_of(s.address, app.address))
        for i, s in enumerate(w.suppliers)
        if w.slots_of(s.address, app.address)
    )
    sup = w.suppliers[i]
    signers = [w.gateway, app, w.gateway, app]  # relays signed by the gateway and by the app
    trie, leaves = build_claim(w, i, app, signers, [1, 7, 3, 2])
    root48 = trie.root.encode()
    rcpt = c.tx("Settlement", "claim", sup.address, cs(app.address), sid("eth"), w.n, slots, root48)
    (ev,) = c.events("Settlement", "Claimed", rcpt)
    cid = claim_id(w, sup.address, app.address)
    assert ev["args"]["claim_id"] == cid
    # the contract's value of the claim is protocol/'s
    ep = c.params.economic_params()
    stake_n = c.call("Apps", "app_stake", cs(app.address), w.n)
    P = c.shape.P
    budget = ps.budget(len(slots), stake_n, c.shape.S, P)
    claimed = ps.claimed_amount(ps.claim_tokens(trie.root.sum, ep.cu_price, 0), budget)
    assert ev["args"]["claimed"] == claimed
    assert ev["args"]["lock"] == claimed * ep.slash_multiplier_bps // 10000
    c.reverts(
        c.fn("Settlement", "claim", cs(app.address), sid("eth"), w.n, slots, root48),
        sup.address,
        "claim: already claimed",
    )
    c.reverts(
        c.fn("Settlement", "prove", cid, next(iter(leaves.values())), []),
        sup.address,
        "proof: outside proof window",
    )
    mine_to_proof(w)
    c.checkpoint()
    h_c = bytes(c.call("Sessions", "h_c", w.n))
    # the checkpoints are the hashes of blocks start-1, grace_end and claim_close
    start, _end, grace_end, _co, claim_close, _po, _pc = c.windows(w.n)
    for kind, height in (("h_n", start - 1), ("h_g", grace_end), ("h_c", claim_close)):
        assert bytes(c.call("Sessions", kind, w.n)) == bytes(c.w3.eth.get_block(height)["hash"])
    seed = session_seed(w.h_n, "eth", app.address, w.n)
    r = ps.challenge(h_c, seed, sup.address, trie.root.sum)
    assert c.call("Settlement", "challenge_of", cid) == r
    assert c.call("Settlement", "proof_required", cid) is True
    proof = trie.prove(r)
    rcpt = c.tx("Settlement", "prove", sup.address, cid, leaves[proof.key], siblings_arg(proof))
    assert c.events("Settlement", "Proved", rcpt)[0]["args"]["relay_key"] == proof.key
    c.reverts(
        c.fn("Settlement", "settle", cid), w.stranger.address, "settle: proof window not over"
    )
    mine_past_proof(w)
    owner, treasury = w.owner.address, cs(c.call("Sessions", "treasury"))
    before = {x: c.balance(x) for x in (sup.address, owner, treasury)}
    app_before = c.call("Apps", "app", cs(app.address))[1]
    supply_before = c.call("Token", "totalSupply")
    c.tx("Settlement", "settle", w.stranger.address, cid)
    pay = ps.settle_valid(claimed, app_before, ep.mint_shares)
    assert pay.paid == claimed
    assert c.balance(sup.address) - before[sup.address] == pay.supplier
    assert c.balance(owner) - before[owner] == pay.owner
    assert c.balance(treasury) - before[treasury] == pay.treasury
    assert pay.supplier + pay.owner + pay.treasury == pay.paid
    assert app_before - c.call("Apps", "app", cs(app.address))[1] == pay.paid
    assert c.call("Token", "totalSupply") == supply_before  # burned from the app, minted as shares
    assert c.call("Settlement", "claims", cid)[-1] == 3
    c.reverts(c.fn("Settlement", "settle", cid), w.stranger.address, "settle: already settled")


def test_void_claim_slash_bounty_forced_unstake_and_open_claim_blocks_withdraw(
    world: World,
) -> None:
    w, c = world, world.chain
    w.restore()
    settler = w.stranger.address
    # supplier 1: claims, never proves -> void, slashed, forced out (staked at the minimum)
    app1, slots1 = find_claimable(w, 1)
    trie1, _ = build_claim(w, 1, app1, [app1, app1], [5, 5])
    c.claim(w.suppliers[1].address, app1.address, w.n, slots1, trie1.root.encode())
    # supplier 2: claims, unstakes, cannot withdraw while the claim is open
    app2, slots2 = find_claimable(w, 2)
    trie2, _ = build_claim(w, 2, app2, [app2], [2])
    c.claim(w.suppliers[2].address, app2.address, w.n, slots2, trie2.root.encode())
    c.tx("Suppliers", "unstake_supplier", w.suppliers[2].address)
    c.reverts(
        c.fn("Suppliers", "withdraw_supplier"), w.suppliers[2].address, "supplier: still unbonding"
    )
    mine_past_proof(w)
    withdrawable = c.call("Suppliers", "supplier", cs(w.suppliers[2].address))[5]
    c.mine_to(c.B0 + withdrawable * c.shape.L)
    c.reverts(
        c.fn("Suppliers", "withdraw_supplier"), w.suppliers[2].address, "supplier: open claims"
    )

    cid1 = claim_id(w, w.suppliers[1].address, app1.address)
    info = c.call("Settlement", "claims", cid1)
    claimed = info[8]
    stake_before = c.call("Suppliers", "supplier", cs(w.suppliers[1].address))[0]
    settler_before = c.balance(settler)
    supply_before = c.call("Token", "totalSupply")
    rcpt = c.tx("Settlement", "settle", settler, cid1)
    ep = c.params.economic_params()
    sl = ps.settle_void(claimed, ep.slash_multiplier_bps, stake_before, ep.settle_bounty_bps)
    (voided,) = c.events("Settlement", "Voided", rcpt)
    assert (voided["args"]["slashed"], voided["args"]["bounty"], voided["args"]["burned"]) == (
        sl.slash,
        sl.bounty,
        sl.burned,
    )
    assert sl.slash == claimed * ep.slash_multiplier_bps // 10000 > 0
    assert c.balance(settler) - settler_before == sl.bounty
    assert supply_before - c.call("Token", "totalSupply") == sl.burned
    after = c.call("Suppliers", "supplier", cs(w.suppliers[1].address))
    assert after[0] == stake_before - sl.slash and after[1] == 0 and after[3] == 2  # unbonding
    (unst,) = c.events("Suppliers", "SupplierUnstaked", rcpt)
    assert unst["args"]["forced"] is True
    m = c.session()
    assert c.call("Suppliers", "current_length", sid("eth")) == 1  # 1 and 2 gone
    assert c.call("Suppliers", "length", sid("eth"), m + 1) == 1

    cid2 = claim_id(w, w.suppliers[2].address, app2.address)
    c.tx("Settlement", "settle", settler, cid2)
    stake2 = c.call("Suppliers", "supplier", cs(w.suppliers[2].address))[0]
    bal = c.balance(w.suppliers[2].address)
    c.tx("Suppliers", "withdraw_supplier", w.suppliers[2].address)
    assert c.balance(w.suppliers[2].address) - bal == stake2


def test_claim_refusals(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    sup = w.suppliers[0].address
    app, slots = find_claimable(w, 0)
    trie, _ = build_claim(w, 0, app, [app], [3])
    root = trie.root.encode()
    A, E = cs(app.address), sid("eth")

    def refuse(args: tuple[Any, ...], reason: str, who: bytes = sup) -> None:
        c.reverts(c.fn("Settlement", "claim", *args), who, reason)

    not_held = [j for j in range(c.shape.S) if j not in slots]
    if not_held:
        refuse((A, E, w.n, [not_held[0]], root), "claim: slot not held")
    refuse((A, E, w.n, [slots[0], slots[0]], root), "claim: slots not strictly increasing")
    refuse((A, E, w.n, [c.shape.S - 1, 0], root), "claim: slots not strictly increasing")
    refuse((A, E, w.n, [c.shape.S], root), "claim: slot out of range")
    refuse((A, E, w.n, [], root), "claim: no slots")
    refuse((A, sid("nope"), w.n, slots, root), "claim: unknown service")
    # an address with no stake as the app (drawn so that supplier 0 holds one of its slots)
    for _ in range(100):
        nobody = AccountKey.generate().address
        nobody_slots = w.slots_of(sup, nobody)
        if nobody_slots:
            break
    refuse((cs(nobody), E, w.n, nobody_slots, root), "claim: app not staked for service")
    refuse(
        (A, E, w.n, slots, bytes(32) + (0).to_bytes(8, "big") + (0).to_bytes(8, "big")),
        "claim: empty root",
    )
    refuse(
        (A, E, w.n, slots, bytes(32) + (1000).to_bytes(8, "big") + (1).to_bytes(8, "big")),
        "claim: sum out of range",
    )
    refuse((A, E, w.n, slots, root[:40]), "claim: root must be 48 bytes")
    refuse((A, E, w.n + 1, slots, root), "claim: outside claim window")
    # the lock the claim could cost must be covered by the supplier's free stake
    huge = bytes(32) + (50 * 2**40).to_bytes(8, "big") + (2**40).to_bytes(8, "big")
    holder, big_slots = next(
        (s, w.slots_of(s.address, w.big_app.address))
        for s in w.suppliers
        if w.slots_of(s.address, w.big_app.address)
    )
    refuse(
        (cs(w.big_app.address), E, w.n, big_slots, huge),
        "claim: stake lock not covered",
        holder.address,
    )
    # the app staked for "eth" is not staked for "mined" (supplier 0 holds every slot there)
    refuse(
        (A, sid("mined"), w.n, list(range(c.shape.S)), root), "claim: app not staked for service"
    )
    # window closed
    c.mine_to(c.windows(w.n)[4] + 1)
    refuse((A, E, w.n, slots, root), "claim: outside claim window")


def test_proof_refusals(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    sup = w.suppliers[0]
    app, slots = find_claimable(w, 0)
    f = w.factory(0, app)
    good = [f.leaf(app, cu=cu) for cu in (2, 5, 1, 4)]
    trie = leaf_trie(good)
    leaves = {key: leaf for leaf, key in good}
    cid, proof = claim_to_challenge(w, sup, app, slots, trie)
    sibs = siblings_arg(proof)
    leaf = leaves[proof.key]

    def refuse(lf: bytes, siblings: list[Any], reason: str) -> None:
        c.reverts(c.fn("Settlement", "prove", cid, lf, siblings), sup.address, reason)

    # trie-level
    if sibs:
        bad = list(sibs)
        d, s_, n_ = bad[-1]  # the lowest sibling is never empty
        bad[-1] = (d, s_ + 1, n_)
        refuse(leaf, bad, "proof: root mismatch")
        refuse(leaf, [*sibs, (bytes(32), 0, 0)], "proof: empty lowest sibling")
        refuse(leaf, [(bytes(32), 0, 0), *sibs], "proof: root mismatch")
        refuse(leaf, [(b"\x01" * 32, 0, 0), *sibs], "proof: non-canonical sibling")
        if len(sibs) > 1:  # reversed: an empty top sibling becomes the lowest
            empty_top = sibs[0][2] == 0
            refuse(
                leaf,
                list(reversed(sibs)),
                "proof: empty lowest sibling" if empty_top else "proof: root mismatch",
            )
    # the right proof for another r
    other_key = next(k for k in leaves if k != proof.key)
    lo = 0
    for k in sorted(leaves):
        wgt = int.from_bytes(leaves[k][153:157], "big")
        if k == other_key:
            break
        lo += wgt
    other = trie.prove(lo)
    assert other.key == other_key
    refuse(leaves[other_key], siblings_arg(other), "proof: challenge outside leaf")
    # leaf-level
    n = w.n
    refuse(w.factory(0, app, n=n + 1).leaf(app)[0], sibs, "proof: leaf of another session")
    refuse(
        w.factory(0, w.apps[1] if app is not w.apps[1] else w.apps[2]).leaf(app)[0],
        sibs,
        "proof: leaf of another app",
    )
    refuse(f.leaf(w.stranger)[0], sibs, "proof: signer not app or delegated gateway")
    refuse(
        f.leaf(app, sign=lambda d, _k: w.stranger.sign_digest(d))[0],
        sibs,
        "proof: signature does not recover to signer",
    )

    def high_s(d: bytes, k: AccountKey) -> bytes:
        sig = k.sign_digest(d)
        s = int.from_bytes(sig[32:64], "big")
        return sig[:32] + (SECP_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])

    refuse(f.leaf(app, sign=high_s)[0], sibs, "proof: signature not low-s")
    refuse(
        f.leaf(app, sign=lambda d, k: k.sign_digest(d)[:64] + b"\x05")[0],
        sibs,
        "proof: bad signature v",
    )
    refuse(f.leaf(app, max_index=0, index=1)[0], sibs, "proof: index above max_index")
    refuse(f.leaf(app, max_index=1001)[0], sibs, "proof: max_index above max_stream_relays")
    refuse(f.leaf(app, cu=101)[0], sibs, "proof: compute units out of range")
    bad_version = bytearray(leaf)
    bad_version[0] = 2
    refuse(bytes(bad_version), sibs, "proof: bad leaf version")
    refuse(leaf[:300], sibs, "proof: leaf must be 326 bytes")
    # the real proof goes through; twice is refused
    c.tx("Settlement", "prove", sup.address, cid, leaf, sibs)
    refuse(leaf, sibs, "proof: already proved")
    c.mine_to(c.windows(w.n)[6] + 1)
    refuse(leaf, sibs, "proof: already proved")


def test_unmined_leaf_refused(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    # service "mined" (difficulty 8): supplier 0 is its only supplier (it holds every slot).
    # An app staked for it now counts from the next session n2.
    app = AccountKey.generate()
    c.stake_app(app.address, "mined", 1000 * TOKEN_UNIT)
    n2 = c.session() + 1
    c.mine_to(c.windows(n2)[0])
    c.checkpoint()
    h_n = bytes(c.call("Sessions", "h_n", n2))
    f = RelayFactory(
        c.domain(), "mined", app.address, w.suppliers[0].address, n2, w.receipt_keys[0]
    )
    c.mine_to(c.windows(n2)[2] + 1)  # H_g recorded once grace has ended
    c.checkpoint()
    h_g = bytes(c.call("Sessions", "h_g", n2))
    from protocol.relay import is_mined

    unmined = None
    for _ in range(64):
        leaf, key = f.leaf(app)
        if not is_mined(key, h_g, 8):
            unmined = (leaf, key)
            break
    assert unmined is not None
    leaf, key = unmined
    trie = SumTrie.build([trie_item(leaf, key, 1)])
    c.mine_to(c.windows(n2)[3])
    assert h_n != bytes(32)
    c.claim(
        w.suppliers[0].address,
        app.address,
        n2,
        list(range(c.shape.S)),
        trie.root.encode(),
        service="mined",
    )
    cid = bytes(
        c.call(
            "Settlement",
            "claim_id_of",
            cs(w.suppliers[0].address),
            cs(app.address),
            sid("mined"),
            n2,
        )
    )
    c.mine_to(c.windows(n2)[5])
    c.reverts(
        c.fn("Settlement", "prove", cid, leaf, []), w.suppliers[0].address, "proof: relay not mined"
    )


def test_padded_claim_fails_its_proof(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    sup = w.suppliers[0]
    app, slots = find_claimable(w, 0)
    f = w.factory(0, app)
    real = [f.leaf(app, cu=1) for _ in range(2)]
    items = [trie_item(leaf, key, 1) for leaf, key in real]
    items += [(os.urandom(32), os.urandom(32), 100) for _ in range(1000)]  # invented weight
    trie = SumTrie.build(items)
    cid, drawn = claim_to_challenge(w, sup, app, slots, trie)
    real_keys = {key for _, key in real}
    assert drawn.key not in real_keys  # the draw lands in the padding (p = 1 - 2/100002)
    weights = {k: wt for k, _, wt in items}
    for leaf, key in real:
        offset = sum(weights[k] for k in sorted(weights) if k < key)
        own = trie.prove(offset)
        assert own.key == key
        c.reverts(
            c.fn("Settlement", "prove", cid, leaf, siblings_arg(own)),
            sup.address,
            "proof: challenge outside leaf",
        )
    mine_past_proof(w)
    rcpt = c.tx("Settlement", "settle", w.stranger.address, cid)
    assert c.events("Settlement", "Voided", rcpt)


def test_pause_leaves_claims_proofs_settlements_and_top_ups_working(world: World) -> None:
    """DESIGN §3.5: a pause stops new stakes, added services, delegations and service
    registrations; claims, proofs, settlements, top-ups, unstakes and checkpoints go on."""
    w, c = world, world.chain
    w.restore()
    admin = c.deployer
    c.reverts(c.fn("Sessions", "pause"), w.stranger.address, "admin: not admin")
    app, slots = find_claimable(w, 0)
    sup = w.suppliers[0]
    trie, leaves = build_claim(w, 0, app, [app, app], [1, 2])
    c.tx("Sessions", "pause", admin)
    assert c.call("Sessions", "paused") is True
    # claims, proofs, checkpoints and top-ups work while paused
    cid, proof = claim_to_challenge(w, sup, app, slots, trie)
    c.tx("Settlement", "prove", sup.address, cid, leaves[proof.key], siblings_arg(proof))
    for who, spender, fn in (
        (sup.address, "Suppliers", ("Suppliers", "top_up_supplier")),
        (app.address, "Apps", ("Apps", "top_up_app")),
        (w.gateway.address, "Apps", ("Apps", "top_up_gateway")),
    ):
        c.fund(who, 5 * TOKEN_UNIT)
        c.approve(who, spender, 5 * TOKEN_UNIT)
        c.tx(*fn, who, 5 * TOKEN_UNIT)
    assert c.call("Suppliers", "supplier", cs(sup.address))[0] == 105 * TOKEN_UNIT
    # new stakes, added services, delegations and registrations are refused
    newbie = AccountKey.generate()
    c.fund(newbie.address, 10**6 * TOKEN_UNIT)
    for spender in ("Suppliers", "Apps", "Services"):
        c.approve(newbie.address, spender, 10**6 * TOKEN_UNIT)
    c.reverts(
        c.fn(
            "Suppliers",
            "stake_supplier",
            100 * TOKEN_UNIT,
            [sid("eth")],
            ["http://x"],
            b"\x01" * 32,
        ),
        newbie.address,
        "paused",
    )
    c.reverts(c.fn("Apps", "stake_app", sid("eth"), 100 * TOKEN_UNIT), newbie.address, "paused")
    c.reverts(c.fn("Apps", "stake_gateway", 100 * TOKEN_UNIT, "http://x"), newbie.address, "paused")
    c.reverts(c.fn("Apps", "delegate", cs(w.stranger.address)), w.apps[1].address, "paused")
    c.reverts(
        c.fn("Suppliers", "add_service", sid("mined"), "http://x"), w.suppliers[1].address, "paused"
    )
    c.reverts(
        c.fn("Services", "register_service", sid("new"), "new", "evm", "", 1, 10, 0),
        newbie.address,
        "paused",
    )
    # unstaking still works while paused; withdrawing too early does not
    c.tx("Apps", "unstake_app", w.apps[2].address)
    c.reverts(c.fn("Apps", "withdraw_app"), w.apps[2].address, "app: still unbonding")
    c.tx("Apps", "unstake_gateway", w.stranger.address)
    c.reverts(c.fn("Apps", "withdraw_gateway"), w.stranger.address, "gateway: still unbonding")
    # the claim settles while still paused
    mine_past_proof(w)
    rcpt = c.tx("Settlement", "settle", w.stranger.address, cid)
    assert c.events("Settlement", "Settled", rcpt)[0]["args"]["paid"] > 0
    assert c.call("Sessions", "paused") is True
    c.tx("Sessions", "unpause", admin)


def test_params_refused_with_their_reason(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    admin = c.deployer
    base = c.params
    refusals = [
        # the old rule's boundary (p·m = 1 − p) no longer passes: the bounty counts
        (
            dict(proof_probability_bps=2500, slash_multiplier_bps=30000),
            "params: proof economics p*m*(1-b) >= (1-p) violated",
        ),
        (
            dict(proof_probability_bps=2500, slash_multiplier_bps=33333),
            "params: proof economics p*m*(1-b) >= (1-p) violated",
        ),
        (dict(settle_bounty_bps=5001), "params: settle_bounty_bps above 5000"),
        (dict(slash_multiplier_bps=1_000_001), "params: slash_multiplier_bps above 1000000"),
        (dict(unbonding_sessions=10_001), "params: unbonding_sessions must be <= 10000"),
        (dict(unbonding_sessions=1), "params: unbonding_sessions must be >= P"),
        (dict(mint_shares=(4999, 2501, 2500)), "params: supplier mint share must be >= 5000"),
        (dict(mint_shares=(9000, 500, 501)), "params: mint shares must sum to 10000"),
    ]
    for changes, reason in refusals:
        c.reverts(
            c.fn("Sessions", "set_econ_params", base.with_(**changes).econ_tuple()), admin, reason
        )
        shape = dict(L=base.L, G=base.G, CO=base.CO, CW=base.CW, PO=base.PO, PW=base.PW, S=base.S)
        p = base.with_(**changes).economic_params()
        py = ps.ParamSet(
            **shape,
            unbonding_sessions=p.unbonding_sessions,
            proof_probability_bps=p.proof_probability_bps,
            slash_multiplier_bps=p.slash_multiplier_bps,
            settle_bounty_bps=p.settle_bounty_bps,
            mint_shares=p.mint_shares,
        )
        assert ps.params_error(py) == reason
    c.reverts(
        c.fn("Sessions", "set_econ_params", base.econ_tuple()),
        w.stranger.address,
        "admin: not admin",
    )
    ok = base.with_(proof_probability_bps=2500, slash_multiplier_bps=33334)
    rcpt = c.tx("Sessions", "set_econ_params", admin, ok.econ_tuple())
    (ev,) = c.events("Sessions", "EconParamsSet", rcpt)
    m = c.session()
    assert ev["args"]["from_session"] == m + 1
    assert c.call("Sessions", "econ_params", m)[6] == 10000
    assert c.call("Sessions", "econ_params", m + 1)[6] == 2500
    c.reverts(
        c.fn("Services", "set_service_params", sid("eth"), 0, 10, 0),
        w.owner.address,
        "services: cu_per_relay must be >= 1",
    )
    c.reverts(
        c.fn("Services", "set_service_params", sid("eth"), 1, 10, 65),
        w.owner.address,
        "services: difficulty_bits must be <= 64",
    )
    c.reverts(
        c.fn("Services", "set_service_params", sid("eth"), 1, 10, 0),
        w.stranger.address,
        "services: not owner",
    )
    # the shape is checked with the economics, at deployment
    from ledger.artifacts import load_artifact

    art = load_artifact("Sessions")
    for shape, reason in (
        ((10, 100, 1, 50, 0, 49, 6), "params: G+CO+CW+PO+PW must be < 200"),
        ((200, 5, 2, 49, 1, 20, 6), "params: L+G+CO+CW must be < 256"),
    ):
        ctor = c.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(
            c.deployment.token, admin, *shape, base.with_(unbonding_sessions=10).econ_tuple()
        )
        c.reverts(ctor, admin, reason)


def test_staking_histories_and_withdrawals(world: World) -> None:
    """Top-ups, endpoints, app stake and delegation histories (effective next session),
    unstake and withdraw for every role once unbonding is over."""
    w, c = world, world.chain
    w.restore()
    app, gw, sup = w.apps[1], w.gateway, w.suppliers[2]
    m = c.session()
    before = c.call("Apps", "app_stake", cs(app.address), m + 1)
    c.fund(app.address, 5 * TOKEN_UNIT)
    c.approve(app.address, "Apps", 5 * TOKEN_UNIT)
    c.fund(sup.address, 5 * TOKEN_UNIT)
    c.approve(sup.address, "Suppliers", 5 * TOKEN_UNIT)
    m = c.session()
    rcpt = c.tx("Apps", "top_up_app", app.address, 5 * TOKEN_UNIT)
    (ev,) = c.events("Apps", "AppStakeSet", rcpt)
    assert (ev["args"]["stake"], ev["args"]["from_session"]) == (before + 5 * TOKEN_UNIT, m + 1)
    assert c.call("Apps", "app_stake", cs(app.address), m) == before
    assert c.call("Apps", "app_stake", cs(app.address), m + 1) == before + 5 * TOKEN_UNIT
    stake0 = c.call("Suppliers", "supplier", cs(sup.address))[0]
    c.tx("Suppliers", "top_up_supplier", sup.address, 5 * TOKEN_UNIT)
    assert c.call("Suppliers", "supplier", cs(sup.address))[0] == stake0 + 5 * TOKEN_UNIT
    c.tx("Suppliers", "set_endpoint", sup.address, sid("eth"), "https://new.example/v1/relay")
    assert c.call("Suppliers", "endpoint", cs(sup.address), sid("eth")).startswith("https://new")
    c.reverts(
        c.fn("Suppliers", "set_endpoint", sid("mined"), "https://x"),
        sup.address,
        "supplier: not staked for service",
    )
    # delegation history
    m = c.session()
    c.tx("Apps", "delegate", app.address, cs(gw.address))
    c.reverts(
        c.fn("Apps", "delegate", cs(gw.address)), app.address, "delegation: already delegated"
    )
    assert c.call("Apps", "delegated", cs(app.address), cs(gw.address), m) is False
    assert c.call("Apps", "delegated", cs(app.address), cs(gw.address), m + 1) is True
    c.mine_to(c.windows(m + 1)[0])
    m2 = c.session()
    c.tx("Apps", "undelegate", app.address, cs(gw.address))
    assert c.call("Apps", "delegated", cs(app.address), cs(gw.address), m2) is True
    assert c.call("Apps", "delegated", cs(app.address), cs(gw.address), m2 + 1) is False
    assert c.call("Apps", "delegated", cs(app.address), cs(gw.address), m + 1) is True
    c.reverts(c.fn("Apps", "undelegate", cs(gw.address)), app.address, "delegation: not delegated")
    # unstake everyone, wait out the unbonding, withdraw
    c.tx("Apps", "unstake_app", app.address)
    c.tx("Apps", "unstake_gateway", gw.address)
    c.tx("Suppliers", "unstake_supplier", sup.address)
    c.reverts(c.fn("Apps", "unstake_app"), app.address, "app: not staked")
    m3 = c.session()
    assert c.call("Apps", "app_stake", cs(app.address), m3 + 1) == 0
    withdrawable = max(
        c.call("Apps", "app", cs(app.address))[4],
        c.call("Apps", "gateway", cs(gw.address))[4],
        c.call("Suppliers", "supplier", cs(sup.address))[5],
    )
    c.mine_to(c.B0 + withdrawable * c.shape.L)
    for contract, fn, who, stake in (
        ("Apps", "withdraw_app", app.address, c.call("Apps", "app", cs(app.address))[1]),
        ("Apps", "withdraw_gateway", gw.address, c.call("Apps", "gateway", cs(gw.address))[0]),
        (
            "Suppliers",
            "withdraw_supplier",
            sup.address,
            c.call("Suppliers", "supplier", cs(sup.address))[0],
        ),
    ):
        bal = c.balance(who)
        c.tx(contract, fn, who)
        assert c.balance(who) - bal == stake > 0
    c.reverts(c.fn("Apps", "withdraw_app"), app.address, "app: not unstaked")
    assert c.call("Apps", "app", cs(app.address))[2] == 0
