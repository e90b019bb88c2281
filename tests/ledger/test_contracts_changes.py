"""Issue 12 on a real anvil: what the contracts (and the follower's snapshot, which the relayer
and the gateway read) do when gateways unstake, suppliers change their services and keys, the
chain id changes, suppliers settle their own void claims, and ownership moves.

One deployment per module; each test starts from the same ``evm_snapshot`` and reverts to it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ledger.anvil import AnvilProcess
from ledger.deploy import TOKEN_UNIT, DeployParams
from ledger.follower import RegistryFollower
from protocol import settlement as ps
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain, response_hash, sign_receipt, verify_receipt
from protocol.trie import SumTrie
from session.hydrate import hydrate
from session.memory import MemorySnapshot
from tests.support.chain import Chain, Raw, RelayFactory, cs, dev_key, sid, trie_item

pytestmark = pytest.mark.slow  # starts processes (anvil)

SIGNER_REFUSED = "proof: signer not app or delegated gateway"


@dataclass
class World:
    chain: Chain
    owner: AccountKey
    sup: AccountKey  # the only supplier of "eth"
    sup_key: ReceiptKey
    other: AccountKey  # the only supplier of "extra" at first (also serves "spare")
    app: AccountKey  # delegates to gw
    extra_app: AccountKey
    gw: AccountKey
    snap: str = ""

    def restore(self) -> None:
        self.chain.revert_to(self.snap)
        self.snap = self.chain.snapshot()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with AnvilProcess() as anvil:
        chain = Chain(anvil, DeployParams())
        w = World(
            chain=chain,
            owner=dev_key(1),
            sup=dev_key(2),
            sup_key=ReceiptKey.generate(),
            other=dev_key(3),
            app=dev_key(5),
            extra_app=dev_key(8),
            gw=dev_key(6),
        )
        for service in ("eth", "extra", "spare"):
            chain.register(service, w.owner.address)
        chain.stake_supplier(w.sup.address, ["eth"], 1000 * TOKEN_UNIT, w.sup_key.public_key)
        chain.stake_supplier(w.other.address, ["extra", "spare"])
        chain.stake_app(w.app.address, "eth", 1000 * TOKEN_UNIT)
        chain.stake_app(w.extra_app.address, "extra", 1000 * TOKEN_UNIT)
        chain.stake_gateway(w.gw.address)
        chain.tx("Apps", "delegate", w.app.address, cs(w.gw.address))
        chain.mine_to(chain.windows(chain.session() + 1)[0])
        chain.checkpoint()
        w.snap = chain.snapshot()
        yield w


def follow(c: Chain) -> MemorySnapshot:
    """One pass of the registry follower over the chain: the snapshot relayers and gateways read."""

    async def run() -> MemorySnapshot:
        follower = RegistryFollower(c.anvil.url, c.deployment)
        await follower.sync()
        return follower.snapshot

    return asyncio.run(run())


def set_chain_id(c: Chain, chain_id: int, *who: bytes | str) -> None:
    """``anvil_setChainId``; anvil's dev signer keeps the old id, so the accounts that send
    afterwards are impersonated (no local signature)."""
    c.anvil.rpc("anvil_setChainId", [chain_id])
    for address in (c.deployer, *who):
        c.anvil.rpc("anvil_impersonateAccount", [cs(address)])


def domain_of(c: Chain, chain_id: int) -> Domain:
    return Domain(chain_id, bytes.fromhex(c.deployment.settlement[2:]))


def single_leaf_claim(
    w: World, n: int, signer: AccountKey, domain: Domain | None = None
) -> tuple[bytes, bytes, SumTrie]:
    """A claim of ``w.sup`` for ``w.app`` in session ``n`` with one relay signed by ``signer``
    (the supplier holds every slot): (claim_id, leaf, trie). Sent in the claim window."""
    c = w.chain
    f = RelayFactory(domain or c.domain(), "eth", w.app.address, w.sup.address, n, w.sup_key)
    leaf, key = f.leaf(signer)
    trie = SumTrie.build([trie_item(leaf, key, 1)])
    c.mine_to(c.windows(n)[3])
    slots = list(range(c.shape.S))
    c.claim(w.sup.address, w.app.address, n, slots, trie.root.encode())
    cid = bytes(
        c.call("Settlement", "claim_id_of", cs(w.sup.address), cs(w.app.address), sid("eth"), n)
    )
    return cid, leaf, trie


def to_proof_window(c: Chain, n: int) -> None:
    c.mine_to(c.windows(n)[5])
    c.checkpoint()


# -- gateways --------------------------------------------------------------------------------


def test_unstaked_gateway_refused_from_next_session_and_restake_revives_nothing(
    world: World,
) -> None:
    w, c = world, world.chain
    w.restore()
    n1 = c.session()
    app, gw = w.app.address, w.gw.address
    c.tx("Apps", "unstake_gateway", gw)  # in session n1: effective from n2
    n2 = n1 + 1
    # the contract and the follower's snapshot (what the relayer's check reads) agree
    snap = follow(c)
    for n, ok in ((n1, True), (n2, False)):
        assert c.call("Apps", "signer_ok", cs(app), cs(gw), n) is ok
        assert snap.signer_ok(app, gw, n) is ok
        assert snap.delegated(app, gw, n)  # the delegation record alone would still say yes
    # a relay the gateway signed in n1 proves; one it signed in n2 does not
    cid1, leaf1, _ = single_leaf_claim(w, n1, w.gw)
    to_proof_window(c, n1)
    c.tx("Settlement", "prove", w.sup.address, cid1, leaf1, [])
    cid2, leaf2, _ = single_leaf_claim(w, n2, w.gw)
    to_proof_window(c, n2)
    c.reverts(c.fn("Settlement", "prove", cid2, leaf2, []), w.sup.address, SIGNER_REFUSED)
    # withdraw and stake again: a new epoch, and the old delegation stays dead
    unbonding = c.call("Sessions", "econ_params", n1)[3]
    c.mine_to(c.windows(n1 + unbonding)[0])
    c.tx("Apps", "withdraw_gateway", gw)
    c.stake_gateway(gw)
    m = c.session()
    c.mine_to(c.windows(m + 1)[0])
    c.checkpoint()
    snap = follow(c)
    assert c.call("Apps", "gateway_stake_at", cs(gw), m + 1) == [True, 2]
    assert not c.call("Apps", "signer_ok", cs(app), cs(gw), m + 1)
    assert not snap.signer_ok(app, gw, m + 1)
    assert snap.book.gateway_stake(gw, m + 1).epoch == 2
    cid3, leaf3, _ = single_leaf_claim(w, m + 1, w.gw)
    to_proof_window(c, m + 1)
    c.reverts(c.fn("Settlement", "prove", cid3, leaf3, []), w.sup.address, SIGNER_REFUSED)


# -- suppliers -------------------------------------------------------------------------------


def test_supplier_adds_a_service_and_rotates_its_receipt_key(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    m = c.session()
    old_key, new_key = w.sup_key, ReceiptKey.generate()
    rcpt = c.tx("Suppliers", "add_service", w.sup.address, sid("extra"), "http://127.0.0.1:1/x")
    (ev,) = c.events("Suppliers", "ServiceAdded", rcpt)
    assert ev["args"]["from_session"] == m + 1
    rcpt = c.tx("Suppliers", "remove_service", w.other.address, sid("extra"))
    assert c.events("Suppliers", "ServiceRemoved", rcpt)[0]["args"]["from_session"] == m + 1
    c.reverts(
        c.fn("Suppliers", "remove_service", sid("spare")), w.other.address, "supplier: last service"
    )
    rcpt = c.tx("Suppliers", "rotate_receipt_key", w.sup.address, new_key.public_key)
    assert c.events("Suppliers", "ReceiptKeySet", rcpt)[0]["args"]["from_session"] == m + 1
    c.mine_to(c.windows(m + 1)[0])
    c.checkpoint()
    snap = follow(c)
    # drawn into "extra" from the next session, not before
    before = hydrate(snap, "extra", w.extra_app.address, m)
    after = hydrate(snap, "extra", w.extra_app.address, m + 1)
    assert before is not None and after is not None
    assert [s.address for s in before.suppliers] == [w.other.address]
    assert [s.address for s in after.suppliers] == [w.sup.address]
    assert c.call("Suppliers", "occupant", sid("extra"), 0, m + 1) == cs(w.sup.address)
    assert c.call("Suppliers", "length", sid("extra"), m + 1) == 1
    assert snap.supplier(w.sup.address).endpoints == {  # type: ignore[union-attr]
        "eth": "http://127.0.0.1:1/eth",
        "extra": "http://127.0.0.1:1/x",
    }
    assert "extra" not in snap.supplier(w.other.address).endpoints  # type: ignore[union-attr]
    # the receipt key of each session: the old one for m, the new one from m + 1
    for n, key in ((m, old_key), (m + 1, new_key)):
        assert bytes(c.call("Suppliers", "receipt_key_at", cs(w.sup.address), n)) == key.public_key
        assert snap.receipt_key(w.sup.address, n) == key.public_key
        session = hydrate(snap, "eth", w.app.address, n)
        assert session is not None
        (supplier,) = session.suppliers
        # a receipt of session n, as the gateway checks it with the key the session names
        digest, rh = os.urandom(32), response_hash(200, b"{}")
        verify_receipt(supplier.receipt_key, digest, 0, rh, sign_receipt(key, digest, 0, rh))  # type: ignore[arg-type]


# -- chain id --------------------------------------------------------------------------------


def test_chain_id_change_keeps_open_claims_and_moves_new_sessions(world: World) -> None:
    w, c = world, world.chain
    w.restore()
    old_id = c.deployment.chain_id
    new_id = old_id + 1000
    n1 = c.session()
    assert c.call("Sessions", "chain_id_of", n1) == old_id
    # a relay of n1 signed under n1's domain; then the chain splits off with a new id
    f = RelayFactory(domain_of(c, old_id), "eth", w.app.address, w.sup.address, n1, w.sup_key)
    leaf1, key1 = f.leaf(w.app)
    set_chain_id(c, new_id, w.sup.address)
    try:
        c.mine_to(c.windows(n1 + 1)[0])
        c.checkpoint()  # records H_{n1+1} with the chain id now in force
        n2 = n1 + 1
        assert c.call("Sessions", "chain_id_of", n2) == new_id
        assert c.call("Sessions", "chain_id_of", n1) == old_id
        snap = follow(c)
        assert (snap.chain_id(n1), snap.chain_id(n2)) == (old_id, new_id)
        assert bytes(c.call("Settlement", "domain_of", n2)) == domain_of(c, new_id).separator
        # the claim open across the change proves under n1's domain
        trie = SumTrie.build([trie_item(leaf1, key1, 1)])
        c.mine_to(c.windows(n1)[3])
        slots = list(range(c.shape.S))
        c.claim(w.sup.address, w.app.address, n1, slots, trie.root.encode())
        cid1 = bytes(
            c.call(
                "Settlement", "claim_id_of", cs(w.sup.address), cs(w.app.address), sid("eth"), n1
            )
        )
        to_proof_window(c, n1)
        c.tx("Settlement", "prove", w.sup.address, cid1, leaf1, [])
        # session n2 uses the new id: a relay signed under the old domain does not replay
        old_leaf_n2, _ = RelayFactory(
            domain_of(c, old_id), "eth", w.app.address, w.sup.address, n2, w.sup_key
        ).leaf(w.app)
        cid2, leaf2, _ = single_leaf_claim(w, n2, w.app, domain_of(c, old_id))
        to_proof_window(c, n2)
        c.reverts(
            c.fn("Settlement", "prove", cid2, leaf2, []),
            w.sup.address,
            "proof: signature does not recover to signer",
        )
        assert old_leaf_n2 != leaf2
        w.restore()
        set_chain_id(c, new_id, w.sup.address)
        c.mine_to(c.windows(n2)[0])
        c.checkpoint()
        cid3, leaf3, _ = single_leaf_claim(w, n2, w.app, domain_of(c, new_id))
        to_proof_window(c, n2)
        c.tx("Settlement", "prove", w.sup.address, cid3, leaf3, [])
    finally:
        set_chain_id(c, old_id, w.sup.address)


# -- self-settled void claims ----------------------------------------------------------------


def smallest_multiplier(c: Chain, base: DeployParams, p: int, b: int) -> int:
    """The smallest slash_multiplier_bps the contract accepts at probability p and bounty b."""
    lo, hi = 0, 1_000_000
    while lo < hi:
        mid = (lo + hi) // 2
        econ = base.with_(proof_probability_bps=p, settle_bounty_bps=b, slash_multiplier_bps=mid)
        try:
            c.fn("Sessions", "set_econ_params", econ.econ_tuple()).estimate_gas(
                {"from": c.deployer}
            )
            hi = mid
        except Exception as exc:
            assert "proof economics" in str(exc), exc
            lo = mid + 1
    return lo


def test_self_settled_void_claims_do_not_pay_at_the_rule_boundary(world: World) -> None:
    """The supplier owns the service, fabricates claims for every app of it and settles its own
    void claims (taking the bounty back). At the smallest multiplier the contract accepts, its
    expected gain per claim, computed from the contract's own numbers, is not positive before
    gas; the old rule's multiplier is refused (and would have paid)."""
    w, c = world, world.chain
    w.restore()
    p, b = 2500, 1000
    base = c.params
    m_min = smallest_multiplier(c, base, p, b)
    assert m_min == 33334  # p·m·(1−b) >= 1−p
    c.reverts(
        c.fn(
            "Sessions",
            "set_econ_params",
            base.with_(
                proof_probability_bps=p, settle_bounty_bps=b, slash_multiplier_bps=30000
            ).econ_tuple(),
        ),
        c.deployer,
        "params: proof economics p*m*(1-b) >= (1-p) violated",
    )
    c.tx(
        "Sessions",
        "set_econ_params",
        c.deployer,
        base.with_(
            proof_probability_bps=p, settle_bounty_bps=b, slash_multiplier_bps=m_min
        ).econ_tuple(),
    )
    # the supplier registers its own service and is its only supplier; many apps stake for it
    sup = w.sup.address
    c.register("own", sup)
    c.tx("Suppliers", "add_service", sup, sid("own"), "http://127.0.0.1:1/own")
    c.fund(sup, 20_000 * TOKEN_UNIT)
    c.approve(sup, "Suppliers", 20_000 * TOKEN_UNIT)
    c.tx("Suppliers", "top_up_supplier", sup, 20_000 * TOKEN_UNIT)
    apps = [AccountKey.generate() for _ in range(24)]
    for a in apps:
        c.stake_app(a.address, "own", 100 * TOKEN_UNIT)
    n = c.session() + 1
    c.mine_to(c.windows(n)[0])
    c.checkpoint()
    ep = c.call("Sessions", "econ_params", n)
    assert (ep[6], ep[8], ep[9]) == (p, m_min, b)
    # fabricated claims (no relay behind them), all in one block of the claim window
    raw = Raw(c.anvil)
    settlement = c.deployment.settlement
    c.mine_to(c.windows(n)[3])
    raw.rpc("evm_setAutomine", [False])
    try:
        hashes = []
        for a in apps:
            total = 40_000_000  # tokens = sum × cu_price >= budget: every claim is capped
            root = os.urandom(32) + total.to_bytes(8, "big") + total.to_bytes(8, "big")
            data = raw.data(
                "Settlement", "claim", cs(a.address), sid("own"), n, list(range(c.shape.S)), root
            )
            hashes.append(raw.send_async(cs(sup), settlement, data, gas=1_000_000))
        raw.rpc("evm_mine", [])
    finally:
        raw.rpc("evm_setAutomine", [True])
    claim_receipts = [raw.receipt(h) for h in hashes]
    assert all(r["status"] == "0x1" for r in claim_receipts)
    c.mine_to(c.windows(n)[6])
    c.checkpoint()
    owner_share_to_self = c.call("Services", "owner_of", sid("own")) == cs(sup)
    assert owner_share_to_self
    gains_if_valid, losses_if_void, outcomes, gas_wei = [], [], [], 0
    for r in claim_receipts:
        gas_wei += int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    for a in apps:
        cid = bytes(c.call("Settlement", "claim_id_of", cs(sup), cs(a.address), sid("own"), n))
        claimed = c.call("Settlement", "claims", cid)[8]
        stake = c.call("Suppliers", "supplier", cs(sup))[0]
        app_left = c.call("Apps", "app", cs(a.address))[1]
        pay = ps.settle_valid(claimed, app_left, (ep[12], ep[13], ep[14]))
        void = ps.settle_void(claimed, ep[8], stake, ep[9])
        gain, loss = pay.supplier + pay.owner, void.slash - void.bounty
        rcpt = c.tx("Settlement", "settle", sup, cid)  # the supplier settles its own claim
        gas_wei += rcpt["gasUsed"] * rcpt["effectiveGasPrice"]
        settled = c.events("Settlement", "Settled", rcpt)
        voided = c.events("Settlement", "Voided", rcpt)
        if settled:  # the contract's own numbers agree with the branch not taken's formula
            ev = settled[0]["args"]
            assert ev["supplier_share"] + ev["owner_share"] == gain
        else:
            ev = voided[0]["args"]
            assert ev["slashed"] - ev["bounty"] == loss and ev["settler"] == cs(sup)
        gains_if_valid.append(gain)
        losses_if_void.append(loss)
        outcomes.append(bool(voided))
    # expectation over the contract's draw (required with probability p), exact in bps
    expected_bps = sum(
        (10000 - p) * g - p * x for g, x in zip(gains_if_valid, losses_if_void, strict=True)
    )
    assert expected_bps <= 0, expected_bps  # nothing to gain before gas...
    assert gas_wei > 0  # ...and every claim and settlement costs gas: a loss after it
    # the same claims under the old rule's multiplier (refused above) would have paid
    old = sum(
        (10000 - p) * g
        - p
        * (
            ps.settle_void(g * 10000 // (ep[12] + ep[13]), 30000, 10**30, b).slash
            * (10000 - b)
            // 10000
        )
        for g in gains_if_valid
    )
    assert old > 0
    # the draws are the contract's: each claim's requirement matches its recorded outcome
    h_c = bytes(c.call("Sessions", "h_c", n))
    assert h_c != bytes(32)
    assert len(outcomes) == len(apps)
