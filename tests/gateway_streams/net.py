"""A staked network for the stream tests: settlement and backend anvils, two real relayer
subprocesses, one scripted liar (:mod:`tests.gateway_streams.liar`) staked as the third
supplier, and a gateway subprocess with small stream windows."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.anvil import AnvilProcess
from ledger.bootstrap import SupplierSpec, dev_account
from ledger.deploy import DeployParams
from protocol.keys import ReceiptKey
from protocol.relay import Domain
from relayer.relaylog import iter_records
from tests.gateway_streams.liar import LiarRelayer
from tests.support.gateway_net import SERVICE, Net, net_gateway_files, stake_net
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key
from tests.support.relayer_proc import RelayerProcess

WINDOW = 8


@dataclass
class StreamNet(Net):
    liar: LiarRelayer | None = None
    liar_address: bytes = b""

    @property
    def honest(self) -> list[bytes]:
        """The supplier addresses of the real relayers."""
        return [f.supplier for f in self.relayer_files]

    @property
    def ws_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.ws_url(SERVICE, self.key)

    def metrics(self) -> str:
        assert self.gateway is not None
        return scrape(self.gateway.metrics_url)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        return metric_sum(self.metrics(), name, **labels)


def scrape(url: str) -> str:
    """A metrics page."""
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310
        text: str = resp.read().decode()
    return text


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples (in ``text``) whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_streamnet(
    tmp: Path, script: Mapping[object, str], gateway_tables: Mapping[str, Any] | None = None
) -> StreamNet:
    settlement = AnvilProcess().start()
    backend = AnvilProcess().start()
    liar_key = dev_account(3)
    # the domain is known once deployed; set before the liar starts
    liar = LiarRelayer(ReceiptKey.generate(), backend.ws_url, Domain(1, bytes(20)), script)
    try:
        # many slots: every one of the three suppliers serves each session
        net = stake_net(
            tmp,
            settlement,
            backend,
            relayers=2,
            others=[SupplierSpec(liar_key, {SERVICE: liar.relay_url}, liar.receipt)],
            params=DeployParams(S=24),
            net_type=StreamNet,
        )
    except BaseException:
        backend.stop()
        settlement.stop()
        raise
    net.liar, net.liar_address = liar, liar_key.address
    net.extra.append(liar)
    try:
        dep = net.network.deployment
        liar.domain = Domain(dep.chain_id, bytes.fromhex(dep.settlement.removeprefix("0x")))
        liar.start()
        start_gateway(net, gateway_tables)
    except BaseException:
        net.stop()
        raise
    return net


def start_gateway(net: StreamNet, tables: Mapping[str, Any] | None = None) -> None:
    settings: dict[str, dict[str, Any]] = {
        "ws": {"window": WINDOW, "redundancy": 3, "heartbeat": 1.0},
    }
    for name, values in (tables or {}).items():
        settings.setdefault(name, {}).update(values)
    files = gateway_files(net, "gateway", settings)
    net.key = add_key(files, {SERVICE: net.app_hex})
    net.gateway_files = files
    net.gateway = GatewayProcess(files).start()


def gateway_files(
    net: StreamNet,
    name: str,
    tables: Mapping[str, Mapping[str, Any]],
    redis_url: str | None = None,
) -> GatewayFiles:
    """The files of another gateway on the network (add keys, then start it)."""
    return net_gateway_files(net, name, {"relay": {"timeout": 5.0}, **tables}, redis_url=redis_url)


async def until(check: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Wait (bounded by ``deadline`` seconds) until ``check()`` holds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class LoggedLeaf:
    digest_header: bytes  # the 157-byte relay header (one per signed stream)
    max_index: int
    index: int


def logged_leaves(relayer: RelayerProcess) -> list[LoggedLeaf]:
    """Every leaf a real relayer recorded (what it can claim)."""
    out: list[LoggedLeaf] = []
    for path in sorted((relayer.files.data_dir / "logs").glob("*/*.log")):
        for record in iter_records(path):
            leaf = record.leaf
            header = leaf[:157]
            out.append(
                LoggedLeaf(
                    header,
                    int.from_bytes(header[149:153], "big"),
                    int.from_bytes(leaf[222:230], "big"),
                )
            )
    return out
