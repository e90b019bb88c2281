"""RegistryFollower against a real anvil: its snapshot equals what session/ computes for the
same stakes and unstakes and what the contracts answer; hydrate() gives the slots the contract
accepts for a claim; it catches up from genesis and keeps following new blocks."""

from __future__ import annotations

import pytest

from ledger.anvil import AnvilProcess
from ledger.bootstrap import Network, ServiceSpec, bootstrap_network
from ledger.client import ClaimStatus, claim_id_of
from ledger.deploy import DeployParams
from ledger.errors import TransactionReverted
from ledger.follower import RegistryFollower
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from session.errors import MissingHistory
from session.hydrate import hydrate
from session.memory import MemorySnapshot
from session.snapshot import SupplierInfo
from session.windows import session_of, windows
from tests.support.chain import RelayFactory, leaf_trie

UNIT = 10**18


def session_at(net: Network, height: int) -> int:
    shape = net.deployment.shape
    return session_of(height, shape.B0, shape.L)


def mine_until(anvil: AnvilProcess, height: int) -> None:
    """Mine until the chain's head is at least ``height``."""
    head = anvil.block_number()
    if head < height:
        anvil.mine(height - head)


def dump(f: RegistryFollower, services: list[str], addresses: list[bytes], upto: int) -> dict:
    """Everything the snapshot answers for sessions 0..upto, as plain data."""
    s = f.snapshot
    first = upto  # service params exist from the session of registration on
    out: dict = {"head": s.head(), "shape": s.shape()}
    for sid in services:
        h = s.position_history(sid)
        out[sid] = {"lengths": h.lengths(), "positions": h.positions(), "info": s.service(sid)}
        out[sid]["params"] = [s.service_params(sid, n) for n in range(upto + 1) if n >= first]
    out["econ"] = [s.economic_params(n) for n in range(upto + 1)]
    for a in addresses:
        out[a.hex()] = {
            "supplier": s.supplier(a),
            "app": s.app_service(a),
            "stakes": [s.app_stake(a, n) for n in range(upto + 1)],
            "delegated": [[s.delegated(a, g, n) for n in range(upto + 1)] for g in addresses],
        }
    return out


async def test_snapshot_equals_session_rules_contract_and_hydrate(anvil: AnvilProcess) -> None:
    people = [AccountKey.generate() for _ in range(7)]
    net = await bootstrap_network(
        anvil.url,
        services=[ServiceSpec("eth"), ServiceSpec("op", max_cu_per_relay=10)],
        extra_accounts=[p.address for p in people],
        token_funding=10_000 * UNIT,
        activate=False,
    )
    a, b, c, d, e, app_key, gw_key = people
    shape = net.deployment.shape
    follower = RegistryFollower(anvil.url, net.deployment, poll_interval=0.05)
    await follower.start()
    expected = MemorySnapshot(shape)
    clients = {p.address: net.client(p) for p in people}
    receipt_keys = {p.address: ReceiptKey.generate() for p in people}
    admin = net.client()
    try:
        econ = await admin.economic_params(0)
        stake = econ.min_stake_supplier

        async def stake_supplier(key: AccountKey, services: list[str]) -> None:
            endpoints = {sid: f"http://{key.address.hex()[:8]}.example/{sid}" for sid in services}
            r = await clients[key.address].stake_supplier(
                stake, endpoints, receipt_keys[key.address].public_key
            )
            info = SupplierInfo(key.address, stake, receipt_keys[key.address].public_key, endpoints)
            for sid in services:
                expected.stake_supplier(sid, info, session_at(net, r.block_number))

        async def unstake_supplier(key: AccountKey) -> None:
            info = expected.supplier(key.address)
            assert info is not None
            r = await clients[key.address].unstake_supplier()
            for sid in info.endpoints:
                expected.unstake_supplier(sid, key.address, session_at(net, r.block_number))

        # session m0: four suppliers; the gateway and the app
        for key in (a, b, c, d):
            await stake_supplier(key, ["eth", "op"] if key is b else ["eth"])
        await clients[gw_key.address].stake_gateway(econ.min_stake_gateway, "http://gw")
        await clients[app_key.address].stake_app("eth", econ.min_stake_app * 10)
        await clients[app_key.address].delegate(gw_key.address)

        # next session: b leaves (d moves into its place), e joins, a leaves — same session
        mine_until(anvil, windows(shape, session_at(net, anvil.block_number()) + 1).start)
        await unstake_supplier(b)
        await stake_supplier(e, ["eth"])
        await unstake_supplier(a)
        await clients[app_key.address].top_up_app(7)
        await clients[app_key.address].undelegate(gw_key.address)
        await admin.set_service_params("eth", 2, 20, 0)
        await admin.set_economic_params(
            econ.__class__(**{**{f: getattr(econ, f) for f in econ.__slots__}, "cu_price": 7})
        )

        # and the next: the last one (e) leaves; delegate again
        mine_until(anvil, windows(shape, session_at(net, anvil.block_number()) + 1).start)
        await unstake_supplier(e)
        await clients[app_key.address].delegate(gw_key.address)

        # the session in which all of this is in force
        mine_until(anvil, windows(shape, session_at(net, anvil.block_number()) + 1).start)
        head = anvil.block_number()
        current = session_at(net, head)
        await follower.wait_for_block(head, timeout=30)
        assert follower.caught_up and follower.connected
        snap = follower.snapshot

        for sid in ("eth", "op"):
            assert snap.position_history(sid).lengths() == expected.position_history(sid).lengths()
            assert (
                snap.position_history(sid).positions() == expected.position_history(sid).positions()
            )
            for n in range(current + 2):
                length = await admin.length(sid, n)
                assert snap.length(sid, n) == length == expected.length(sid, n)
                for p in range(length):
                    assert snap.occupant(sid, p, n) == await admin.occupant(sid, p, n)
        assert [snap.occupant("eth", p, current) for p in range(2)] == [c.address, d.address]
        for n in range(current + 2):
            assert snap.economic_params(n) == await admin.economic_params(n)
            try:
                on_chain = await admin.service_params("eth", n)
            except TransactionReverted as exc:
                assert exc.reason == "services: no params for session"
                with pytest.raises(MissingHistory):
                    snap.service_params("eth", n)
            else:
                assert snap.service_params("eth", n) == on_chain
            assert snap.app_stake(app_key.address, n) == await admin.app_stake(app_key.address, n)
            assert snap.delegated(app_key.address, gw_key.address, n) == await admin.delegated(
                app_key.address, gw_key.address, n
            )
        assert snap.economic_params(current).cu_price == 7
        for key in (a, b, c, d, e):
            info = snap.supplier(key.address)
            assert info is not None and info == expected.supplier(key.address)
        assert snap.app_service(app_key.address) == "eth"
        assert follower.gateways[gw_key.address].url == "http://gw"
        for n in range(current + 1):
            w = windows(shape, n)
            for h in (w.h_n_block, w.h_g_block, w.h_c_block):
                if h <= head:
                    block = await admin.w3.eth.get_block(h)
                    assert snap.block_hash(h) == bytes(block["hash"])

        # hydrate() gives exactly the slots the contract accepts in a claim
        n = current
        session = hydrate(snap, "eth", app_key.address, n)
        assert session is not None and len(session.slots) == shape.S
        mine_until(anvil, windows(shape, n).claim_open)
        root = b"\x11" * 32 + (1).to_bytes(8, "big") + (1).to_bytes(8, "big")
        claims = []
        for entry in session.suppliers:
            claim = await clients[entry.address].claim(
                app_key.address, "eth", n, list(entry.slots), root
            )
            assert claim.claim_id == claim_id_of(entry.address, app_key.address, "eth", n)
            claims.append(claim)
        held = {entry.address: set(entry.slots) for entry in session.suppliers}
        outsider = next(k for k in (c, d) if len(held.get(k.address, ())) < shape.S)
        free = min(set(range(shape.S)) - held.get(outsider.address, set()))
        reason = "claim: slot not held"
        if outsider.address in held:
            reason = "claim: already claimed"
        try:
            await clients[outsider.address].claim(app_key.address, "eth", n, [free], root)
        except TransactionReverted as exc:
            assert exc.reason == reason
        else:
            raise AssertionError("a claim of a slot not held was accepted")

        # catch-up from genesis: a fresh follower reaches the same snapshot
        async with RegistryFollower(anvil.url, net.deployment, poll_interval=0.05) as late:
            await late.wait_caught_up(timeout=30)
            await follower.wait_for_block(late.head, timeout=30)
            await late.wait_for_block(follower.head, timeout=30)
            addresses = [p.address for p in people]
            assert dump(late, ["eth", "op"], addresses, current + 1) == dump(
                follower, ["eth", "op"], addresses, current + 1
            )

        # the follower kept following: claims locked stake, settle voids unproved claims
        state = await admin.claim_state(claims[0].claim_id)
        assert state is not None and state.status is ClaimStatus.OPEN and state.sum == 1
        mine_until(anvil, windows(shape, n).proof_close + 1)
        result = await admin.settle(claims[0].claim_id)
        assert not result.valid
        assert result.slashed == claims[0].claimed * econ.slash_multiplier_bps // 10000
        assert result.bounty == result.slashed * econ.settle_bounty_bps // 10000
        await follower.wait_for_block(anvil.block_number(), timeout=30)
        slashed = follower.snapshot.supplier(session.suppliers[0].address)
        assert slashed is not None and slashed.stake == stake - result.slashed
    finally:
        await follower.stop()
        for client in (*clients.values(), admin):
            await client.close()


async def test_claim_prove_settle_through_the_client(anvil: AnvilProcess) -> None:
    supplier_key, app_key = AccountKey.generate(), AccountKey.generate()
    receipt_key = ReceiptKey.generate()
    net = await bootstrap_network(
        anvil.url,
        params=DeployParams(proof_probability_bps=10000),
        services=[ServiceSpec("eth")],
        extra_accounts=[supplier_key.address, app_key.address],
        token_funding=10_000 * UNIT,
        activate=False,
    )
    shape = net.deployment.shape
    async with (
        net.client(supplier_key) as supplier,
        net.client(app_key) as app,
        RegistryFollower(anvil.url, net.deployment, poll_interval=0.05) as follower,
    ):
        econ = await app.economic_params(0)
        await supplier.stake_supplier(
            econ.min_stake_supplier, {"eth": "http://s"}, receipt_key.public_key
        )
        await app.stake_app("eth", econ.min_stake_app * 100)
        n = session_at(net, anvil.block_number()) + 1
        mine_until(anvil, windows(shape, n).start)
        await follower.wait_for_block(anvil.block_number(), timeout=30)
        session = hydrate(follower.snapshot, "eth", app_key.address, n)
        assert session is not None and session.slot_indexes(supplier_key.address) == tuple(
            range(shape.S)
        )

        domain = Domain(net.deployment.chain_id, bytes.fromhex(net.deployment.settlement[2:]))
        relays = RelayFactory(domain, "eth", app_key.address, supplier_key.address, n, receipt_key)
        pairs = [relays.leaf(app_key, cu=1 + i % 3) for i in range(5)]
        leaves = {key: leaf for leaf, key in pairs}
        trie = leaf_trie(pairs)
        mine_until(anvil, windows(shape, n).claim_open)
        claim = await supplier.claim(
            app_key.address, "eth", n, list(range(shape.S)), trie.root.encode()
        )
        assert await app.proof_required(claim.claim_id)
        mine_until(anvil, windows(shape, n).proof_open)
        await app.checkpoint()  # records H_c, as relayers do after the claim window closes
        r = await app.challenge(claim.claim_id)
        proof = trie.prove(r)
        await supplier.prove(claim.claim_id, leaves[proof.key], proof.siblings)
        state = await app.claim_state(claim.claim_id)
        assert state is not None and state.status is ClaimStatus.PROVED
        with_reason = None
        try:
            await supplier.prove(claim.claim_id, leaves[proof.key], proof.siblings)
        except TransactionReverted as exc:
            with_reason = exc.reason
        assert with_reason == "proof: already proved"

        mine_until(anvil, windows(shape, n).proof_close + 1)
        before = await supplier.balance()
        result = await app.settle(claim.claim_id)
        assert result.valid and result.paid == claim.claimed > 0
        assert result.supplier_share + result.owner_share + result.treasury_share == result.paid
        assert await supplier.balance() == before + result.supplier_share
        state = await app.claim_state(claim.claim_id)
        assert state is not None and state.status is ClaimStatus.SETTLED
