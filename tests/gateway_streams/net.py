"""A staked network for the stream tests: settlement and backend anvils, two real relayer
subprocesses, one scripted liar (:mod:`tests.gateway_streams.liar`) staked as the third
supplier, and a gateway subprocess with small stream windows."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from ledger.deploy import DeployParams
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from relayer.relaylog import iter_records
from tests.gateway_streams.liar import LiarRelayer
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key, write_gateway_files
from tests.support.relayer_proc import (
    RelayerProcess,
    ServiceBackend,
    write_relayer_files,
)

SERVICE = "devnet"
WINDOW = 8


@dataclass
class StreamNet:
    tmp: Path
    settlement: AnvilProcess
    backend: AnvilProcess
    network: Network
    app: AccountKey
    gateway_key: AccountKey
    relayers: list[RelayerProcess]
    honest: list[bytes]  # supplier addresses of the real relayers
    liar: LiarRelayer
    liar_address: bytes
    gateway_files: GatewayFiles | None = None
    gateway: GatewayProcess | None = None
    key: str = ""

    @property
    def app_hex(self) -> str:
        return "0x" + self.app.address.hex()

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

    def stop(self) -> None:
        for thing in [self.gateway, *self.relayers]:
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.stop()
        with contextlib.suppress(Exception):
            self.liar.stop()
        self.backend.stop()
        self.settlement.stop()


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
    procs: list[RelayerProcess] = []
    liar: LiarRelayer | None = None
    try:
        honest_keys = [dev_account(1), dev_account(2)]
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
            for i, (k, r) in enumerate(zip(honest_keys, receipts, strict=False))
        ]
        liar_port_holder = LiarRelayer(receipts[2], backend.ws_url, Domain(1, bytes(20)), {})
        endpoints = [f.relay_url for f in files] + [liar_port_holder.relay_url]
        # many slots: every one of the three suppliers serves each session
        network = asyncio.run(
            bootstrap_network(
                settlement.url,
                params=DeployParams(S=24),
                services=[ServiceSpec(SERVICE)],
                suppliers=[
                    SupplierSpec(key=k, endpoints={SERVICE: e}, receipt_key=r)
                    for k, r, e in zip([*honest_keys, liar_key], receipts, endpoints, strict=True)
                ],
                apps=[AppSpec(key=app, service_id=SERVICE, gateways=[gw_key.address])],
                gateways=[GatewaySpec(key=gw_key)],
            )
        )
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
            for f, k, r in zip(files, honest_keys, receipts, strict=False)
        ]
        dep = network.deployment
        domain = Domain(dep.chain_id, bytes.fromhex(dep.settlement.removeprefix("0x")))
        liar = LiarRelayer(receipts[2], backend.ws_url, domain, script)
        liar.port = liar_port_holder.port
        liar.start()
        procs = [RelayerProcess(f) for f in files]
        with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
            for fut in [pool.submit(p.start) for p in procs]:
                fut.result()
        net = StreamNet(
            tmp,
            settlement,
            backend,
            network,
            app,
            gw_key,
            procs,
            [k.address for k in honest_keys],
            liar,
            liar_key.address,
        )
        start_gateway(net, gateway_tables)
        return net
    except BaseException:
        for p in procs:
            with contextlib.suppress(Exception):
                p.stop()
        if liar is not None:
            liar.stop()
        backend.stop()
        settlement.stop()
        raise


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
    return write_gateway_files(
        net.tmp / name,
        rpc_url=net.settlement.url,
        deployment=net.network.deployment,
        account=net.gateway_key,
        services={SERVICE: "devnet"},
        devnet=True,
        redis_url=redis_url,
        tables={"relay": {"timeout": 5.0}, **tables},
    )


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
