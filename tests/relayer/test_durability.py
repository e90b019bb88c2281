"""kill -9 under load, restart: answered ≤ claimed ≤ sent; the claim and proof land and the
reward arrives (real anvils, the relayer as a subprocess, its claimer driving the chain)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ledger.client import ClaimStatus, LedgerClient, claim_id_of
from session.windows import windows
from tests.support.relay_client import SignedRelay, rpc
from tests.support.relayer_net import BIG_APP_STAKE, Net, relayer_network
from tests.support.relayer_proc import ServiceBackend

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


CONCURRENCY = 12
KILL_AT = 300  # relays sent before the kill at the latest (the app's budget is 3,000)
MAX_SENT = 1_000  # a bound on the load whatever the machine's speed


def _sign(net: Net, n: int, i: int) -> SignedRelay:
    return net.sign(rpc("eth_getBalance", ["0x" + "11" * 20, "latest"], id_=i), n=n)


async def _load(net: Net, n: int, kill_after: float) -> tuple[int, list[SignedRelay]]:
    """Workers relay until the relayer dies under them (killed after ``kill_after`` s or
    ``KILL_AT`` relays); the load is bounded in count too, so the app's budget never runs out."""
    sent = 0
    answered: list[SignedRelay] = []
    stop = asyncio.Event()
    enough = asyncio.Event()

    async def worker(s: aiohttp.ClientSession, w: int) -> None:
        nonlocal sent
        i = 0
        while not stop.is_set():
            if sent >= MAX_SENT:
                await stop.wait()
                return
            relay = _sign(net, n, w * 1_000_000 + i)
            i += 1
            sent += 1
            if sent >= KILL_AT:
                enough.set()
            try:
                async with s.post(
                    net.relayer.relay_url, data=relay.payload, headers=relay.headers()
                ) as r:
                    body = await r.read()
                    if r.status == 200:
                        answered.append(relay)
                    else:
                        raise AssertionError(body)
            except (aiohttp.ClientError, OSError):
                return

    async def killer() -> None:
        # kill after ``kill_after`` s or once KILL_AT relays were sent, whichever comes first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), kill_after)
        await asyncio.to_thread(net.relayer.kill)
        stop.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:
        await asyncio.gather(killer(), *(worker(s, w) for w in range(CONCURRENCY)))
    return sent, answered


async def _wait_claim(client: LedgerClient, cid: bytes, status: ClaimStatus, what: str) -> None:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        state = await client.claim_state(cid)
        if state is not None and state.status >= status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: claim never reached {status.name}")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    with relayer_network(
        tmp_path,
        services={"devnet": ServiceBackend("anvil")},
        staked_services=("devnet",),
        app_services={"main": ("devnet", BIG_APP_STAKE)},
    ) as network:
        yield network


async def test_kill9_under_load_then_claim_prove_settle(net: Net) -> None:
    if True:
        n = net.session()
        sent, answered = await _load(net, n, kill_after=1.5)
        assert len(answered) > 20
        net.relayer.start()  # same data folder: the log is recovered
        async with aiohttp.ClientSession() as s:
            for i in range(10):
                relay = _sign(net, n, 10**9 + i)
                sent += 1
                async with s.post(
                    net.relayer.relay_url, data=relay.payload, headers=relay.headers()
                ) as r:
                    assert r.status == 200, await r.read()
                    answered.append(relay)
            # what was answered before the crash is still known: a replay is refused
            again = answered[0]
            async with s.post(
                net.relayer.relay_url, data=again.payload, headers=again.headers()
            ) as r:
                assert r.status == 409 and b"REPLAYED_RELAY" in await r.read()
        assert net.session() == n

        shape = net.network.deployment.shape
        w = windows(shape, n)
        client = LedgerClient(net.chain.url, net.network.deployment)
        try:
            cid = claim_id_of(net.supplier.address, net.apps["main"].address, "devnet", n)
            balance_before = await client.balance(net.supplier.address)
            net.chain.mine(w.claim_open - 1 - net.chain.block_number())
            await _wait_claim(client, cid, ClaimStatus.OPEN, "claim")
            state = await client.claim_state(cid)
            assert state is not None
            assert len(answered) <= state.count <= sent
            assert state.sum == state.count  # one compute unit each

            net.chain.mine(w.claim_close + 1 - net.chain.block_number())
            await _wait_claim(client, cid, ClaimStatus.PROVED, "proof")

            net.chain.mine(w.proof_close + 1 - net.chain.block_number())
            await _wait_claim(client, cid, ClaimStatus.SETTLED, "settle")
            state = await client.claim_state(cid)
            assert state is not None and state.status is ClaimStatus.SETTLED
            reward = await client.balance(net.supplier.address) - balance_before
            assert reward == state.claimed * 9000 // 10000
        finally:
            await client.close()

        # the session log is deleted once settled; the claim record says what happened
        deadline = time.monotonic() + 10
        logs = net.files.data_dir / "logs" / "devnet"
        while any(logs.glob("*.log")) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(logs.glob("*.log"))
        records = list((net.files.data_dir / "claims" / "devnet").glob("*.json"))
        assert len(records) == 1 and b'"settled"' in records[0].read_bytes()
