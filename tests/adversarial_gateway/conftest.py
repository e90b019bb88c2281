"""A staked network with one lying supplier: settlement anvil, backend anvil, two real relayer
subprocesses, the scripted :class:`LyingRelayer` as the third supplier, one gateway
subprocess whose devnet spec caps answers at 256 KiB (1 MiB for traces and logs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from gateway.sessions import SessionBook
from ledger.anvil import AnvilProcess
from ledger.bootstrap import (
    AppSpec,
    GatewaySpec,
    Network,
    ServiceSpec,
    SupplierSpec,
    bootstrap_network,
    dev_account,
)
from ledger.follower import RegistryFollower
from protocol.encoding import address_from_hex
from protocol.keys import ReceiptKey
from protocol.relay import Domain
from tests.adversarial_gateway.liar import LyingRelayer
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files
from tests.support.relayer_proc import RelayerProcess, ServiceBackend, write_relayer_files

SERVICE = "devnet"
CAP = 256 * 1024
LARGE_CAP = 1024 * 1024
BUDGET = 8 * 1024 * 1024


@dataclass
class LiarNet:
    settlement: AnvilProcess
    backend: AnvilProcess
    network: Network
    relayers: list[RelayerProcess]
    liar: LyingRelayer
    gateway: GatewayProcess
    key: str
    quorum_key: str  # default quorum 2 (DESIGN §4: per key)
    quota_key: str  # quota 3 a day: a quorum read counts one per leg

    @property
    def rpc_url(self) -> str:
        return self.gateway.rpc_url(SERVICE, self.key)

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

    def stop(self) -> None:
        for thing in (self.gateway, *self.relayers, self.liar):
            with contextlib.suppress(Exception):
                thing.stop()
        self.backend.stop()
        self.settlement.stop()


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
    started: list[object] = []
    try:
        honest = [dev_account(1), dev_account(2)]
        liar_key = dev_account(3)
        receipts = [ReceiptKey.generate() for _ in range(3)]
        app, gw_key = dev_account(7), dev_account(8)
        svc = {SERVICE: ServiceBackend(backend.url, ws_url=backend.ws_url)}
        files = [
            write_relayer_files(
                tmp / f"relayer{i}",
                rpc_url=settlement.url,
                deployment=json.dumps({}),
                account=k,
                receipt=r,
                services=svc,
            )
            for i, (k, r) in enumerate(zip(honest, receipts, strict=False))
        ]
        liar = LyingRelayer(receipts[2], backend.url).start()
        started.append(liar)
        endpoints = [f.relay_url for f in files] + [liar.relay_url]
        network = asyncio.run(
            bootstrap_network(
                settlement.url,
                services=[ServiceSpec(SERVICE)],
                suppliers=[
                    SupplierSpec(key=k, endpoints={SERVICE: e}, receipt_key=r)
                    for k, r, e in zip([*honest, liar_key], receipts, endpoints, strict=True)
                ],
                apps=[AppSpec(key=app, service_id=SERVICE, gateways=[gw_key.address])],
                gateways=[GatewaySpec(key=gw_key)],
            )
        )
        dep = network.deployment
        liar.domain = Domain(dep.chain_id, address_from_hex(dep.settlement))
        files = [
            write_relayer_files(
                f.directory,
                rpc_url=settlement.url,
                deployment=network.deployment,
                account=k,
                receipt=r,
                services=svc,
                port=f.port,
                metrics_port=f.metrics_port,
            )
            for f, k, r in zip(files, honest, receipts, strict=False)
        ]
        procs = [RelayerProcess(f) for f in files]
        started.extend(procs)
        with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
            for fut in [pool.submit(p.start) for p in procs]:
                fut.result()
        gw_files = write_gateway_files(
            tmp / "gateway",
            rpc_url=settlement.url,
            deployment=network.deployment,
            account=gw_key,
            services={SERVICE: str(_spec_file(tmp))},
            tables={
                # one try per supplier, no hedges: what a client sees is what the retry gives
                "relay": {"hedge_delay": 30.0, "max_attempts": 3, "answer_budget": BUDGET},
                "qos": {"probe_interval": 0.3, "breaker_cooldown": 0.3},
                "cache": {"enabled": False},
            },
        )
        paying = {SERVICE: "0x" + app.address.hex()}
        key = add_key(gw_files, paying)
        quorum_key = add_key(gw_files, paying, name="quorum", quorum=2)
        quota_key = add_key(gw_files, paying, name="quota", quota=3)
        gateway = GatewayProcess(gw_files).start()
        net = LiarNet(
            settlement, backend, network, procs, liar, gateway, key, quorum_key, quota_key
        )
    except BaseException:
        for thing in reversed(started):
            with contextlib.suppress(Exception):
                thing.stop()  # type: ignore[attr-defined]
        backend.stop()
        settlement.stop()
        raise
    try:
        yield net
    finally:
        net.stop()
