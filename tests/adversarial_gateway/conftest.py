"""A staked network with one lying supplier: settlement anvil, backend anvil, two real relayer
subprocesses, the scripted :class:`LyingRelayer` as the third supplier, one gateway
subprocess whose devnet spec caps answers at 256 KiB (1 MiB for traces and logs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from gateway.sessions import SessionBook
from ledger.anvil import AnvilProcess
from ledger.bootstrap import SupplierSpec, dev_account
from ledger.follower import RegistryFollower
from protocol.encoding import address_from_hex
from protocol.keys import ReceiptKey
from protocol.relay import Domain
from tests.adversarial_gateway.liar import LyingRelayer
from tests.support.gateway_net import SERVICE, Net, stake_net
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files

CAP = 256 * 1024
LARGE_CAP = 1024 * 1024
BUDGET = 8 * 1024 * 1024


@dataclass
class LiarNet(Net):
    liar: LyingRelayer | None = None
    quorum_key: str = ""  # default quorum 2 (DESIGN §4: per key)
    quota_key: str = ""  # quota 3 a day: a quorum read counts one per leg

    @property
    def liar_hex(self) -> str:
        return "0x" + self.network.suppliers[2].key.address.hex()

    def session_suppliers(self) -> set[bytes]:
        """The suppliers of the session the gateway signs for now (as the gateway sees it)."""
        return asyncio.run(_session_suppliers(self))

    def liar_in_session(self) -> None:
        """Step the settlement chain, a session at a time, until the liar holds a slot of the
        signing session (slots are drawn at random: it may miss one, P ≈ (2/3)^6)."""
        liar = self.network.suppliers[2].key.address
        for _ in range(20):
            if liar in self.session_suppliers():
                return
            for _ in range(self.network.deployment.shape.L):
                self.settlement.rpc("anvil_mine", ["0x1"])
                time.sleep(0.05)
        raise AssertionError("the liar never held a slot in 20 sessions")


async def _session_suppliers(net: LiarNet) -> set[bytes]:
    follower = RegistryFollower(net.settlement.url, net.network.deployment, poll_interval=0.05)
    await follower.start()
    try:
        deadline = time.monotonic() + 30
        while not follower.caught_up:
            assert time.monotonic() < deadline, "follower did not catch up"
            await asyncio.sleep(0.05)
        # the gateway's own rule: the signing session (lag 1), with its fallback in grace
        view = SessionBook(follower.snapshot).signing(SERVICE, net.network.apps[0].key.address)
        return set(view.suppliers)
    finally:
        await follower.stop()


def _spec_file(directory: Path) -> Path:
    """The catalogue's devnet spec with small answer caps (cheap to exceed in a test)."""
    text = resources.files("rollups.catalogue").joinpath("devnet.toml").read_text()
    path = directory / "devnet-capped.toml"
    path.write_text(
        text
        + f"\n[answers]\nmax_bytes = {CAP}\nlarge_max_bytes = {LARGE_CAP}\nallowed_lag = 10.0\n"
    )
    return path


@pytest.fixture(scope="module")
def liarnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiarNet]:
    tmp = tmp_path_factory.mktemp("liarnet")
    settlement = AnvilProcess().start()
    backend = AnvilProcess().start()
    liar = LyingRelayer(ReceiptKey.generate(), backend.url)
    try:
        liar.start()
        net = stake_net(
            tmp,
            settlement,
            backend,
            relayers=2,
            others=[SupplierSpec(dev_account(3), {SERVICE: liar.relay_url}, liar.receipt)],
            net_type=LiarNet,
        )
    except BaseException:
        liar.stop()
        backend.stop()
        settlement.stop()
        raise
    net.liar = liar
    net.extra.append(liar)
    try:
        dep = net.network.deployment
        liar.domain = Domain(dep.chain_id, address_from_hex(dep.settlement))
        gw_files = write_gateway_files(
            tmp / "gateway",
            rpc_url=settlement.url,
            deployment=dep,
            account=net.gateway_key,
            services={SERVICE: str(_spec_file(tmp))},
            tables={
                # one try per supplier, no hedges: what a client sees is what the retry gives
                "relay": {"hedge_delay": 30.0, "max_attempts": 3, "answer_budget": BUDGET},
                "qos": {"probe_interval": 0.3, "breaker_cooldown": 0.3},
                "cache": {"enabled": False},
            },
        )
        paying = {SERVICE: net.app_hex}
        net.key = add_key(gw_files, paying)
        net.quorum_key = add_key(gw_files, paying, name="quorum", quorum=2)
        net.quota_key = add_key(gw_files, paying, name="quota", quota=3)
        net.gateway_files, net.gateway = gw_files, GatewayProcess(gw_files).start()
        yield net
    finally:
        net.stop()
