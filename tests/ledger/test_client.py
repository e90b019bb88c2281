"""LedgerClient against a real anvil: every action is performed and read back; refusals
arrive as TransactionReverted carrying the contract's reason. One deployment serves the
session (``ledger_net``), rolled back after each test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.anvil import AnvilProcess
from ledger.bootstrap import Network, dev_account
from ledger.client import LedgerClient, StakeStatus, claim_id_of
from ledger.errors import TransactionReverted
from protocol.keys import AccountKey, ReceiptKey
from tests.support.chain import LedgerNet

UNIT = 10**18


def mine_to_session(anvil: AnvilProcess, net: Network, n: int) -> None:
    """Mine until the next transaction lands in session ``n``."""
    shape = net.deployment.shape
    target = shape.B0 + n * shape.L  # start(n): the next block mined is head + 1
    head = anvil.block_number()
    if head < target - 1:
        anvil.mine(target - 1 - head)


async def _funded(net: Network, key: AccountKey, amount: int = 10_000 * UNIT) -> LedgerClient:
    async with net.client() as admin:
        await admin.transfer(key.address, amount)
    return net.client(key)


async def test_token_actions_read_back(ledger_net: LedgerNet) -> None:
    anvil, net = ledger_net.anvil, ledger_net.net
    other = dev_account(4).address
    async with net.client() as admin:
        supply = await admin.total_supply()
        assert await admin.decimals() == 18
        mine = await admin.balance()
        receipt = await admin.transfer(other, 123)
        assert receipt.block_number == anvil.block_number()
        assert len(receipt.tx_hash) == 32 and receipt.gas_used > 0
        assert await admin.balance(other) == 123
        assert await admin.balance() == mine - 123
        await admin.approve(other, 77)
        assert await admin.allowance(admin.address, other) == 77
        assert await admin.total_supply() == supply
        [transfer] = admin.decode_events(receipt, "Transfer")
        assert transfer.args["value"] == 123 and transfer.args["receiver"] == other
    async with net.client(dev_account(4)) as poor:
        with pytest.raises(TransactionReverted) as info:
            await poor.transfer(admin.address, 124)
        assert info.value.reason == "token: insufficient balance"


async def test_supplier_stake_top_up_endpoint_unstake_withdraw(ledger_net: LedgerNet) -> None:
    anvil, net = ledger_net.anvil, ledger_net.net
    key = dev_account(3)
    receipt_key = ReceiptKey.generate()
    async with await _funded(net, key) as c:
        econ = await c.economic_params(await c.current_session())
        stake = econ.min_stake_supplier
        before = await c.balance()
        await c.stake_supplier(stake, {"eth": "http://a.example/v1/relay"}, receipt_key.public_key)
        m = await c.current_session()
        s = await c.supplier()
        assert (s.status, s.stake, s.locked, s.open_claims) == (StakeStatus.STAKED, stake, 0, 0)
        assert s.receipt_key == receipt_key.public_key
        assert dict(s.endpoints) == {"eth": "http://a.example/v1/relay"}
        assert await c.balance() == before - stake
        assert await c.length("eth", m + 1) == 1 and await c.length("eth", m) == 0
        assert await c.occupant("eth", 0, m + 1) == key.address

        await c.top_up_supplier(5)
        await c.set_endpoint("eth", "http://b.example/v1/relay")
        s = await c.supplier()
        assert s.stake == stake + 5
        assert dict(s.endpoints) == {"eth": "http://b.example/v1/relay"}

        await c.unstake_supplier()
        m = await c.current_session()
        s = await c.supplier()
        assert s.status is StakeStatus.UNBONDING
        assert s.withdrawable_session == m + econ.unbonding_sessions
        assert await c.length("eth", m + 1) == 0
        with pytest.raises(TransactionReverted) as info:
            await c.withdraw_supplier()
        assert info.value.reason == "supplier: still unbonding"

        mine_to_session(anvil, net, s.withdrawable_session)
        before = await c.balance()
        await c.withdraw_supplier()
        assert await c.balance() == before + stake + 5
        assert (await c.supplier()).status is StakeStatus.NONE


async def test_app_and_gateway_actions_read_back(ledger_net: LedgerNet) -> None:
    anvil, net = ledger_net.anvil, ledger_net.net
    app_key, gw_key, gw2_key = dev_account(3), dev_account(4), dev_account(5)
    async with (
        await _funded(net, app_key) as app,
        await _funded(net, gw_key) as gw,
        await _funded(net, gw2_key) as gw2,
    ):
        econ = await app.economic_params(await app.current_session())
        await gw.stake_gateway(econ.min_stake_gateway, "http://gw.example")
        await gw.top_up_gateway(9)
        await gw.set_gateway_url("http://gw2.example")
        g = await gw.gateway()
        assert (g.stake, g.url, g.status) == (
            econ.min_stake_gateway + 9,
            "http://gw2.example",
            StakeStatus.STAKED,
        )
        await gw2.stake_gateway(econ.min_stake_gateway, "http://other.example")

        await app.stake_app("eth", econ.min_stake_app)
        m = await app.current_session()
        await app.delegate(gw_key.address)
        await app.delegate(gw2_key.address)
        a = await app.app()
        assert (a.service_id, a.stake, a.status) == ("eth", econ.min_stake_app, StakeStatus.STAKED)
        assert a.delegations == (gw_key.address, gw2_key.address)
        assert await app.app_stake(app_key.address, m + 1) == econ.min_stake_app
        assert await app.app_stake(app_key.address, m) == 0
        assert await app.delegated(app_key.address, gw_key.address, m + 1)
        assert not await app.delegated(app_key.address, gw_key.address, m)

        mine_to_session(anvil, net, m + 1)
        await app.undelegate(gw2_key.address)
        await app.top_up_app(1000)
        m1 = await app.current_session()
        assert await app.delegated(app_key.address, gw2_key.address, m1)
        assert not await app.delegated(app_key.address, gw2_key.address, m1 + 1)
        assert await app.app_stake(app_key.address, m1) == econ.min_stake_app
        assert await app.app_stake(app_key.address, m1 + 1) == econ.min_stake_app + 1000
        assert (await app.app()).delegations == (gw_key.address,)

        await app.unstake_app()
        await gw.unstake_gateway()
        a = await app.app()
        assert a.status is StakeStatus.UNBONDING
        assert await app.app_stake(app_key.address, m1 + 1) == 0
        g = await gw.gateway()
        assert g.status is StakeStatus.UNBONDING
        for action, reason in (
            (app.withdraw_app, "app: still unbonding"),
            (gw.withdraw_gateway, "gateway: still unbonding"),
        ):
            with pytest.raises(TransactionReverted) as info:
                await action()
            assert info.value.reason == reason

        mine_to_session(anvil, net, max(a.withdrawable_session, g.withdrawable_session))
        before = await app.balance()
        await app.withdraw_app()
        assert await app.balance() == before + econ.min_stake_app + 1000
        before = await gw.balance()
        await gw.withdraw_gateway()
        assert await gw.balance() == before + econ.min_stake_gateway + 9
        assert (await app.app()).status is StakeStatus.NONE


async def test_services_parameters_checkpoints_and_pause(ledger_net: LedgerNet) -> None:
    anvil, net = ledger_net.anvil, ledger_net.net
    owner_key = dev_account(3)
    async with net.client() as admin, await _funded(net, owner_key) as owner:
        econ = await admin.economic_params(await admin.current_session())
        treasury_before = await admin.balance(await admin.treasury())
        before = await owner.balance()
        await owner.register_service(
            "op-main",
            name="OP mainnet",
            rpc_type="op-stack",
            metadata_uri="ipfs://x",
            cu_per_relay=2,
            max_cu_per_relay=50,
            difficulty_bits=1,
        )
        m = await owner.current_session()
        assert await owner.balance() == before - econ.service_registration_fee
        assert await admin.balance(await admin.treasury()) == (
            treasury_before + econ.service_registration_fee
        )
        info = await admin.service("op-main")
        assert info is not None
        assert (info.owner, info.name, info.rpc_type, info.metadata_uri) == (
            owner_key.address,
            "OP mainnet",
            "op-stack",
            "ipfs://x",
        )
        assert await admin.services() == ["eth", "op-main"]
        assert await admin.service("nope") is None
        p = await admin.service_params("op-main", m)
        assert (p.cu_per_relay, p.max_cu_per_relay, p.difficulty_bits) == (2, 50, 1)

        await owner.set_service_params("op-main", 3, 60, 0)
        m = await owner.current_session()
        assert (await admin.service_params("op-main", m)).cu_per_relay == 2
        assert (await admin.service_params("op-main", m + 1)).cu_per_relay == 3
        await owner.set_service_metadata("op-main", "OP", "evm", "ipfs://y")
        await owner.transfer_service("op-main", dev_account(4).address)
        info = await admin.service("op-main")
        assert info is not None and (info.owner, info.name) == (dev_account(4).address, "OP")
        with pytest.raises(TransactionReverted) as err:
            await owner.set_service_params("op-main", 1, 1, 0)
        assert err.value.reason == "services: not owner"

        new = replace(econ, cu_price=econ.cu_price * 2, settle_bounty_bps=500)
        await admin.set_economic_params(new)
        m = await admin.current_session()
        assert await admin.economic_params(m) == econ
        assert await admin.economic_params(m + 1) == new
        with pytest.raises(TransactionReverted) as err:
            await owner.set_economic_params(new)
        assert err.value.reason == "admin: not admin"
        with pytest.raises(TransactionReverted) as err:
            await admin.set_economic_params(replace(econ, mint_shares=(9000, 500, 400)))
        assert err.value.reason == "params: mint shares must sum to 10000"

        mine_to_session(anvil, net, m + 2)
        n = await admin.current_session()
        receipt = await admin.checkpoint()
        h_n, _h_g, _h_c = await admin.checkpoints(n)
        start = net.deployment.shape.B0 + n * net.deployment.shape.L
        block = await admin.w3.eth.get_block(start - 1)
        assert h_n == bytes(block["hash"])
        kinds = {
            (e.args["session"], e.args["kind"]) for e in admin.decode_events(receipt, "Checkpoint")
        }
        assert (n, 0) in kinds

        await admin.pause()
        assert await admin.paused()
        with pytest.raises(TransactionReverted) as err:
            await owner.stake_app("eth", econ.min_stake_app)
        assert err.value.reason == "paused"
        await admin.unpause()
        await owner.stake_app("eth", econ.min_stake_app)
        assert (await owner.app()).status is StakeStatus.STAKED


async def test_refusals_carry_the_contract_reason(ledger_net: LedgerNet) -> None:
    net = ledger_net.net
    key = dev_account(3)
    async with await _funded(net, key) as c:
        econ = await c.economic_params(await c.current_session())
        rk = ReceiptKey.generate().public_key
        cases = [
            (
                c.stake_supplier(econ.min_stake_supplier - 1, {"eth": "http://x"}, rk),
                "supplier: stake below minimum",
            ),
            (
                c.stake_supplier(econ.min_stake_supplier, {"zzz": "http://x"}, rk),
                "supplier: unknown service",
            ),
            (
                c.stake_supplier(econ.min_stake_supplier, {"eth": ""}, rk),
                "supplier: empty endpoint",
            ),
            (c.withdraw_supplier(), "supplier: not unstaked"),
            (c.unstake_supplier(), "supplier: not staked"),
            (c.stake_app("zzz", econ.min_stake_app), "app: unknown service"),
            (c.delegate(dev_account(4).address), "app: not staked"),
            (c.register_service("eth"), "services: already registered"),
            (c.settle(b"\x01" * 32), "settle: unknown claim"),
        ]
        for call, reason in cases:
            with pytest.raises(TransactionReverted) as info:
                await call
            assert info.value.reason == reason
            assert reason in str(info.value)
        await c.stake_app("eth", econ.min_stake_app)
        with pytest.raises(TransactionReverted) as info:
            await c.delegate(dev_account(4).address)
        assert info.value.reason == "delegation: gateway not staked"
        # sent without estimation, mined with status 0: the reason is recovered by replay
        with pytest.raises(TransactionReverted) as info:
            await c._send("Suppliers", "withdraw_supplier", gas=300_000)
        assert info.value.reason == "supplier: not unstaked"
        assert info.value.tx_hash is not None
        receipt = await c.w3.eth.get_transaction_receipt(info.value.tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 0
        assert claim_id_of(key.address, key.address, "eth", 3) == await c._call(
            "Settlement",
            "claim_id_of",
            c.w3.to_checksum_address(key.address),
            c.w3.to_checksum_address(key.address),
            b"eth".ljust(32, b"\x00"),
            3,
        )


async def test_a_checkpoint_still_lands_when_boundaries_pass_after_its_estimate(
    ledger_net: LedgerNet,
) -> None:
    """A relayer's checkpoint is estimated when nothing (or little) is missing; blocks mined
    before it is included can add session boundaries, each one more record to write. It
    carries gas for them instead of running out and reverting."""
    anvil, net = ledger_net.anvil, ledger_net.net
    shape = net.deployment.shape
    async with net.client() as admin:
        await admin.checkpoint()  # nothing missing now
        estimate_gas = admin.w3.eth.estimate_gas

        async def estimate_then_blocks_pass(*args: object, **kwargs: object) -> int:
            gas = await estimate_gas(*args, **kwargs)  # type: ignore[arg-type]
            anvil.mine(shape.L)  # a whole session: an H_n, an H_g and an H_c boundary
            return gas

        admin.w3.eth.estimate_gas = estimate_then_blocks_pass  # type: ignore[method-assign]
        receipt = await admin.checkpoint()
        admin.w3.eth.estimate_gas = estimate_gas  # type: ignore[method-assign]
        recorded = admin.decode_events(receipt, "Checkpoint")
        assert {e.args["kind"] for e in recorded} == {0, 1, 2}  # every kind found one
