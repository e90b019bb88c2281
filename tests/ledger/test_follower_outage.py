"""RegistryFollower survives the settlement chain's RPC going away and coming back: anvil is
stopped (its state dumped) and restarted on the same port from that state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ledger.anvil import AnvilProcess
from ledger.bootstrap import ServiceSpec, bootstrap_network
from ledger.errors import ChainUnavailable
from ledger.follower import RegistryFollower
from protocol.keys import AccountKey, ReceiptKey
from session.windows import session_of

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


UNIT = 10**18


async def test_follower_survives_the_rpc_going_away_and_coming_back(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilProcess(extra_args=["--dump-state", str(state)]).start()
    key = AccountKey.generate()
    followers: list[RegistryFollower] = []
    try:
        net = await bootstrap_network(
            node.url,
            services=[ServiceSpec("eth")],
            extra_accounts=[key.address],
            token_funding=1_000 * UNIT,
            activate=False,
        )
        follower = RegistryFollower(node.url, net.deployment, poll_interval=0.05, max_backoff=0.2)
        followers.append(follower)
        await follower.start()
        await follower.wait_caught_up(timeout=30)
        await follower.wait_for_block(node.block_number(), timeout=30)
        assert follower.connected and follower.snapshot.service("eth") is not None

        node.stop()  # the RPC goes away
        for _ in range(1500):  # 30 s at most
            if not follower.connected:
                break
            await asyncio.sleep(0.02)
        assert not follower.connected, "still connected 30 s after the RPC went away"
        assert isinstance(follower.last_error, ChainUnavailable)
        late = RegistryFollower(node.url, net.deployment, poll_interval=0.05, max_backoff=0.2)
        followers.append(late)
        await late.start()
        with pytest.raises(ChainUnavailable, match="not caught up"):
            await late.wait_caught_up(timeout=0.3)

        # … and comes back on the same port with the same chain
        node = AnvilProcess(port=node.port, extra_args=["--load-state", str(state)]).start()
        async with net.client(key) as client:
            econ = await client.economic_params(0)
            receipt = await client.stake_supplier(
                econ.min_stake_supplier,
                {"eth": "http://back.example"},
                ReceiptKey.generate().public_key,
            )
        await follower.wait_for_block(receipt.block_number, timeout=30)
        assert follower.connected
        shape = net.deployment.shape
        m = session_of(receipt.block_number, shape.B0, shape.L)
        info = follower.snapshot.supplier(key.address)
        assert info is not None and dict(info.endpoints) == {"eth": "http://back.example"}
        assert follower.snapshot.length("eth", m + 1) == 1
        assert follower.snapshot.occupant("eth", 0, m + 1) == key.address

        # the newcomer catches up from genesis once the chain is back
        await late.wait_caught_up(timeout=30)
        await late.wait_for_block(receipt.block_number, timeout=30)
        assert late.snapshot.supplier(key.address) == info
        assert late.snapshot.position_history("eth").lengths() == (
            follower.snapshot.position_history("eth").lengths()
        )
        assert late.snapshot.economic_params(m) == follower.snapshot.economic_params(m)
    finally:
        for f in followers:
            await f.stop()
        node.stop()


async def test_refresh_runs_a_pass_now_instead_of_waiting_for_the_next_poll() -> None:
    """A gateway told by a relayer that its session is over asks its follower for a pass now
    (``refresh``): it must not wait for the poll interval (here an hour)."""
    with AnvilProcess() as node:
        net = await bootstrap_network(node.url, services=[ServiceSpec("eth")], activate=False)
        follower = RegistryFollower(node.url, net.deployment, poll_interval=3600, max_backoff=3600)
        async with follower:
            await follower.wait_caught_up(timeout=30)
            before = follower.head
            node.mine(7)
            assert follower.head == before  # asleep for the hour
            assert await follower.refresh(timeout=30)
            assert follower.head == node.block_number() >= before + 7
            node.mine(2)  # and again: every refresh gets a pass of its own
            assert await follower.refresh(timeout=30)
            assert follower.head == node.block_number()
        assert not await follower.refresh(timeout=1)  # a stopped follower runs no pass
