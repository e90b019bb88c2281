"""bootstrap_network on a real anvil: deployed, funded, registered, staked, delegated, active."""

from __future__ import annotations

import pytest

from ledger.anvil import AnvilProcess, free_port
from ledger.bootstrap import (
    AppSpec,
    GatewaySpec,
    ServiceSpec,
    SupplierSpec,
    bootstrap_network,
    dev_account,
)
from ledger.client import StakeStatus
from ledger.errors import ChainUnavailable
from protocol.keys import AccountKey, ReceiptKey
from session.windows import windows


async def test_bootstrap_stakes_everyone_and_activates_the_next_session(
    anvil: AnvilProcess,
) -> None:
    gateway = AccountKey.generate()  # a fresh key: bootstrap gives it gas and tokens
    suppliers = [
        SupplierSpec(dev_account(i), {"eth": f"http://127.0.0.1:{9000 + i}/v1/relay"})
        for i in (3, 4, 5)
    ]
    receipt_key = ReceiptKey.generate()
    suppliers.append(
        SupplierSpec(
            dev_account(7),
            {"eth": "http://127.0.0.1:9007/v1/relay", "op": "http://127.0.0.1:9107/v1/relay"},
            receipt_key=receipt_key,
        )
    )
    net = await bootstrap_network(
        anvil.url,
        services=[ServiceSpec("eth", cu_per_relay=2), ServiceSpec("op", rpc_type="op-stack")],
        suppliers=suppliers,
        apps=[AppSpec(dev_account(6), "eth", gateways=[gateway.address])],
        gateways=[GatewaySpec(gateway, "http://gw.example")],
    )
    shape = net.deployment.shape
    n = net.active_session
    assert anvil.block_number() >= windows(shape, n).start
    async with net.client() as client:
        assert await client.current_session() == n
        econ = await client.economic_params(n)
        assert await client.length("eth", n) == 4
        assert await client.length("eth", 0) == 0
        assert await client.length("op", n) == 1
        assert [await client.occupant("eth", p, n) for p in range(4)] == [
            s.key.address for s in suppliers
        ]
        last = await client.supplier(dev_account(7).address)
        assert last.status is StakeStatus.STAKED
        assert last.stake == 2 * econ.min_stake_supplier
        assert last.receipt_key == receipt_key.public_key
        assert dict(last.endpoints) == dict(suppliers[3].endpoints)
        app = await client.app(dev_account(6).address)
        assert (app.service_id, app.status, app.delegations) == (
            "eth",
            StakeStatus.STAKED,
            (gateway.address,),
        )
        assert await client.app_stake(dev_account(6).address, n) == app.stake > 0
        assert await client.delegated(dev_account(6).address, gateway.address, n)
        assert not await client.delegated(dev_account(6).address, gateway.address, 0)
        gw = await client.gateway(gateway.address)
        assert (gw.url, gw.status) == ("http://gw.example", StakeStatus.STAKED)
        assert await client.eth_balance(gateway.address) > 0
        assert await client.balance(gateway.address) > 0
        eth = await client.service("eth")
        assert eth is not None and eth.owner == net.deployer.address
        assert (await client.service_params("eth", n)).cu_per_relay == 2


async def test_bootstrap_against_nothing_is_a_ledger_error() -> None:
    with pytest.raises(ChainUnavailable):
        await bootstrap_network(f"http://127.0.0.1:{free_port()}")
