"""The full multi-host run (``make multihost``; not collected by ``make test``, which runs the
smoke): faults one after the other under bounded load, zero failed reads through each while
another supplier of the session is healthy. Phases and their counts go to stdout and to
``$MULTIHOST_REPORT`` (JSON lines).

``MULTIHOST_OUTAGE_S`` (default 60) is how long the settlement RPC stays unreachable. After it
returns no read fails (the gateways catch up instead of signing for a session whose grace has
ended), and every claim whose window was still open then settles."""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.request

import pytest

from relaynet.commands.staking_common import load_deployment
from tests.multihost.faults import healthy_others, phase, ready
from tests.multihost.net import GATEWAYS, SERVICE, Net, http_ok, rpc, run_load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

LOSS = """
table inet rnmh_loss {
  chain in {
    type filter hook input priority 0; policy accept; numgen random mod 100 < 5 counter drop;
  }
  chain out {
    type filter hook output priority 0; policy accept; numgen random mod 100 < 5 counter drop;
  }
}
"""
OUTAGE_S = float(os.environ.get("MULTIHOST_OUTAGE_S", "60"))


def unreachable(url: str) -> bool:
    try:
        http_ok(url)
    except OSError:
        return True
    return False


def redis_state(net: Net, name: str) -> str:
    url = f"http://{net.hosts[name].address}:8080/readyz"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return str(json.loads(resp.read()).get("redis"))


def test_faults_one_after_the_other(net: Net) -> None:
    hosts = net.hosts
    n = 0

    def go(fault: str, cause, lift, seconds: float, recovered=None, victim=None) -> None:  # type: ignore[no-untyped-def]
        nonlocal n
        first = healthy_others(net, victim) if victim else None
        result, failed = phase(net, fault, cause, lift, seconds, recovered, first=n)
        if victim:  # the premise held in every session the phase ran through
            healthy_others(net, victim, first)
        n += result.reads
        assert failed == [], (fault, failed[:5])
        assert result.reads == int(seconds * 20)

    go("baseline", lambda: None, lambda: None, 5)

    # one relayer's link cut
    relay_r1 = f"http://{hosts['r1'].address}:8081/readyz"

    def cut_r1() -> None:
        hosts["r1"].link(up=False)
        assert unreachable(relay_r1)

    go(
        "r1 link down",
        cut_r1,
        lambda: hosts["r1"].link(up=True),
        15,
        ready(net, "r1", 8081),
        victim="r1",
    )

    # 5 % packet loss on r3's host, both directions (nftables in its namespace: input and
    # output hooks, each dropping a random 5 % of packets)
    r3 = hosts["r3"]
    dropped: list[int] = []

    def lose() -> None:
        r3.run(["nft", "-f", "-"], stdin=LOSS)

    def unlose() -> None:
        listing = r3.run(["nft", "list", "table", "inet", "rnmh_loss"])
        dropped.extend(int(m) for m in re.findall(r"counter packets (\d+)", listing))
        r3.run(["nft", "delete", "table", "inet", "rnmh_loss"])

    go("5% packet loss on r3 (in and out)", lose, unlose, 20, victim="r3")
    assert sum(dropped) > 0, dropped  # the rule did drop packets
    print(f"packets dropped (input, output): {dropped}")

    # 200 ms more on every chunk towards r3 (the delaying proxy registered as its endpoint)
    go(
        "200 ms delay towards r3",
        lambda: net.set_delay(0.2),
        lambda: net.set_delay(0),
        15,
        victim="r3",
    )

    # Redis stopped (killed), then started again empty of nothing but what the gateways replay
    def stop_redis() -> None:
        hosts["redis"].kill_all()

    def degraded() -> bool:
        return all(redis_state(net, g) == "degraded" for g in GATEWAYS)

    def start_redis() -> None:
        assert degraded()  # both replicas noticed the outage while the load ran
        net.start_redis()

    go(
        "redis stopped",
        stop_redis,
        start_redis,
        20,
        lambda: all(redis_state(net, g) == "ok" for g in GATEWAYS),
    )

    # a relayer host killed (every process of r2, SIGKILL); it stays dead
    go("r2 host killed", hosts["r2"].kill_all, lambda: None, 15, victim="r2")
    go("after the faults", lambda: None, lambda: None, 5)

    caught_up: list[str] = []
    probes = iter(range(1_000_000, 2_000_000, 100))

    def gateways_serve() -> bool:
        """20 reads in one second through the two gateways, all answered."""
        if not all(http_ok(f"http://{hosts[r].address}:8081/readyz") for r in ("r1", "r3")):
            return False
        load = run_load([net.gateway_url(g) for g in GATEWAYS], seconds=1, first=next(probes))
        caught_up.extend(load.failed)
        return not load.failed

    # the settlement RPC unreachable (the chain host's link down; anvil keeps mining)
    chain_rpc = f"{net.chain_url}"

    def cut_chain() -> None:
        hosts["chain"].link(up=False)
        assert unreachable(chain_rpc)

    go(
        "settlement RPC unreachable",
        cut_chain,
        lambda: hosts["chain"].link(up=True),
        OUTAGE_S,
        gateways_serve,
    )
    returned = int(str(rpc(net.chain_url, "eth_blockNumber")), 16)
    after = run_load([net.gateway_url(g) for g in GATEWAYS], seconds=20, first=3_000_000)
    print(
        f"after the settlement RPC returned (block {returned}): {len(caught_up)} failed reads"
        f" while the gateways caught up; then {len(after.failed)} failed of"
        f" {after.ok + len(after.failed)} in 20 s"
    )
    # the gateways never signed for a session whose grace had ended (SESSION_EXPIRED)
    assert caught_up == [], caught_up[:5]
    assert after.failed == [], after.failed[:5]

    # claims whose window was still open when the RPC returned are made, proved and settled
    settled = claims_settle(net, returned)
    print(f"claims open at the RPC's return, settled: {settled}")


def served(net: Net, name: str) -> set[int]:
    """Sessions of the app a relayer logged relays for, or holds a claim record of."""
    data = net.tmp / name / "var" / "relayer"
    app = net.accounts["app"].address.hex()
    found = set()
    for sub, suffix in (("logs", ".log"), ("claims", ".json")):
        for path in (data / sub / SERVICE).glob(f"*-{app}{suffix}"):
            found.add(int(path.name.split("-", 1)[0]))
    return found


def claims_settle(net: Net, returned: int) -> dict[str, list[int]]:
    """Every claim of a surviving relayer for a session that had ended when the RPC returned
    (block ``returned``) and whose claim window was still open then reaches SETTLED, and the
    relayer's token balance grows (its reward)."""
    from ledger.client import ClaimStatus, LedgerClient, claim_id_of
    from session.windows import windows

    deployment = load_deployment(net.deployment)
    shape = deployment.shape
    app = net.accounts["app"].address
    expected: dict[str, list[int]] = {}
    for name in ("r1", "r3"):
        for n in sorted(served(net, name)):
            w = windows(shape, n)
            if w.grace_end < returned <= w.claim_close:
                expected.setdefault(name, []).append(n)
    assert expected, "no claim window was open when the settlement RPC returned"

    async def watch() -> dict[str, list[int]]:
        async with LedgerClient(net.chain_url, deployment) as client:
            supplier = {name: bytes.fromhex(net.suppliers[name][2:]) for name in expected}
            before = {name: await client.balance(supplier[name]) for name in expected}
            done: dict[str, list[int]] = {}
            last_n = max(n for ns in expected.values() for n in ns)
            settle_by = windows(shape, last_n).proof_close + 120  # blocks (1 s each)
            for _ in range(1000):  # bounded too by the chain's head (asserted below)
                states = {}
                for name, ns in expected.items():
                    for n in ns:
                        state = await client.claim_state(
                            claim_id_of(supplier[name], app, SERVICE, n)
                        )
                        states[(name, n)] = None if state is None else state.status
                if all(v is ClaimStatus.SETTLED for v in states.values()):
                    break
                head = await client.block_number()
                assert head <= settle_by, f"claims not settled by block {settle_by}: {states}"
                await asyncio.sleep(2)  # polling the chain, bounded by the block above
            else:
                raise AssertionError(f"claims not settled: {states}")
            for name, ns in expected.items():
                assert await client.balance(supplier[name]) > before[name], name
                done[name] = ns
            return done

    return asyncio.run(watch())
