"""A whole staked network for gateway tests: settlement anvil, backend anvil, N relayer
subprocesses, one gateway subprocess (and an API key paid by the staked app)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key, write_gateway_files
from tests.support.relayer_proc import (
    RelayerFiles,
    RelayerProcess,
    ServiceBackend,
    write_relayer_files,
)

SERVICE = "devnet"


@dataclass
class Net:
    tmp: Path
    settlement: AnvilProcess
    backend: AnvilProcess
    network: Network
    app: AccountKey
    gateway_key: AccountKey
    relayer_files: list[RelayerFiles]
    relayers: list[RelayerProcess]
    gateway_files: GatewayFiles | None = None
    gateway: GatewayProcess | None = None
    key: str = ""
    extra: list[Any] = field(default_factory=list)

    @property
    def app_hex(self) -> str:
        return "0x" + self.app.address.hex()

    @property
    def rpc_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.rpc_url(SERVICE, self.key)

    def mine_settlement(self, blocks: int) -> None:
        self.settlement.rpc("anvil_mine", [hex(blocks)])

    def stop(self) -> None:
        for thing in [self.gateway, *self.relayers, *self.extra]:
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.stop()
        self.backend.stop()
        self.settlement.stop()


def start_net(
    tmp: Path,
    *,
    relayers: int = 3,
    redis_url: str | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    devnet: bool = True,
    start_gateway: bool = True,
    backend_args: list[str] | None = None,
    relayer_tls: list[tuple[Path, Path] | None] | None = None,
    params: DeployParams | None = None,
) -> Net:
    """``relayer_tls``: per relayer, its (certificate, key) to serve https:// (staked so)."""
    settlement = AnvilProcess().start()
    backend = AnvilProcess(extra_args=backend_args or []).start()
    try:
        suppliers = [dev_account(1 + i) for i in range(relayers)]
        receipts = [ReceiptKey.generate() for _ in suppliers]
        tls = relayer_tls or [None] * relayers
        app, gw_key = dev_account(7), dev_account(8)
        svc = {SERVICE: ServiceBackend(backend.url, ws_url=backend.ws_url)}
        placeholder = "0x" + "00" * 20
        files = [
            write_relayer_files(
                tmp / f"relayer{i}",
                rpc_url=settlement.url,
                deployment=json.dumps({}),
                account=k,
                receipt=r,
                services=svc,
                tls=tls[i],
            )
            for i, (k, r) in enumerate(zip(suppliers, receipts, strict=True))
        ]
        network = asyncio.run(
            bootstrap_network(
                settlement.url,
                services=[ServiceSpec(SERVICE)],
                suppliers=[
                    SupplierSpec(key=k, endpoints={SERVICE: f.relay_url}, receipt_key=r)
                    for k, r, f in zip(suppliers, receipts, files, strict=True)
                ],
                apps=[AppSpec(key=app, service_id=SERVICE, gateways=[gw_key.address])],
                gateways=[GatewaySpec(key=gw_key)],
                **({"params": params} if params is not None else {}),
            )
        )
        del placeholder
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
                tls=t,
            )
            for f, k, r, t in zip(files, suppliers, receipts, tls, strict=True)
        ]
        procs = [RelayerProcess(f) for f in files]
        net = Net(tmp, settlement, backend, network, app, gw_key, files, procs)
        with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
            for fut in [pool.submit(p.start) for p in procs]:
                fut.result()
        if start_gateway:
            start_gateway_proc(net, redis_url=redis_url, tables=tables, devnet=devnet)
        return net
    except BaseException:
        backend.stop()
        settlement.stop()
        raise


def start_gateway_proc(
    net: Net,
    *,
    redis_url: str | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    devnet: bool = True,
    name: str = "gateway",
) -> GatewayProcess:
    files = write_gateway_files(
        net.tmp / name,
        rpc_url=net.settlement.url,
        deployment=net.network.deployment,
        account=net.gateway_key,
        services={SERVICE: "devnet"},
        redis_url=redis_url,
        devnet=devnet,
        tables=tables,
    )
    key = add_key(files, {SERVICE: net.app_hex})
    proc = GatewayProcess(files).start()
    if net.gateway is None:
        net.gateway_files, net.gateway, net.key = files, proc, key
    else:
        net.extra.append(proc)
    return proc


def post(
    url: str, body: bytes, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(  # noqa: S310 - loopback test servers
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)
