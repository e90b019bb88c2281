"""A whole staked network for gateway tests: settlement anvil, backend anvil, N relayer
subprocesses, one gateway subprocess (and an API key paid by the staked app)."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from ledger.anvil import AnvilProcess
from ledger.bootstrap import AppSpec, GatewaySpec, Network, ServiceSpec, SupplierSpec, dev_account
from ledger.deploy import DeployParams
from protocol.keys import AccountKey
from tests.support.gateway_proc import GatewayFiles, GatewayProcess, add_key, write_gateway_files
from tests.support.relayer_net import Relayer, stake_relayers, start_all
from tests.support.relayer_proc import RelayerFiles, RelayerProcess, ServiceBackend

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for thing in [self.gateway, *self.relayers, *self.extra]:
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.stop()
        self.backend.stop()
        self.settlement.stop()


N = TypeVar("N", bound=Net)


def stake_net(
    tmp: Path,
    settlement: AnvilProcess,
    backend: AnvilProcess,
    *,
    relayers: int = 3,
    others: Sequence[SupplierSpec] = (),
    params: DeployParams | None = None,
    net_type: type[N] = Net,  # type: ignore[assignment]
    relayer_tls: Sequence[tuple[Path, Path] | None] = (),
) -> N:
    """Stake ``relayers`` real relayers (dev accounts 1…) on the backend anvil, then ``others``
    (scripted suppliers the caller runs), the app (dev account 7) delegating to the gateway
    (dev account 8); start the relayers. On failure the relayers started are stopped."""
    app, gw_key = dev_account(7), dev_account(8)
    svc = {SERVICE: ServiceBackend(backend.url, ws_url=backend.ws_url)}
    network, files = stake_relayers(
        tmp,
        settlement.url,
        [
            Relayer(dev_account(1 + i), svc, tls=relayer_tls[i] if relayer_tls else None)
            for i in range(relayers)
        ],
        params=params,
        services=[ServiceSpec(SERVICE)],
        others=others,
        apps=[AppSpec(key=app, service_id=SERVICE, gateways=[gw_key.address])],
        gateways=[GatewaySpec(key=gw_key)],
    )
    procs = [RelayerProcess(f) for f in files]
    net = net_type(tmp, settlement, backend, network, app, gw_key, files, procs)
    try:
        start_all(procs)
    except BaseException:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.stop()
        raise
    return net


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
        net = stake_net(
            tmp,
            settlement,
            backend,
            relayers=relayers,
            params=params,
            relayer_tls=relayer_tls or (),
        )
    except BaseException:
        backend.stop()
        settlement.stop()
        raise
    try:
        if start_gateway:
            start_gateway_proc(net, redis_url=redis_url, tables=tables, devnet=devnet)
    except BaseException:
        net.stop()
        raise
    return net


def start_gateway_proc(
    net: Net,
    *,
    redis_url: str | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    devnet: bool = True,
    name: str = "gateway",
) -> GatewayProcess:
    """Another gateway on the network (the first one becomes ``net.gateway`` and ``net.key``)."""
    files = net_gateway_files(net, name, tables, redis_url=redis_url, devnet=devnet)
    proc, key = keyed_gateway(net, files)
    if net.gateway is None:
        net.gateway_files, net.gateway, net.key = proc.files, proc, key
        net.extra.remove(proc)
    return proc


def net_gateway_files(
    net: Net,
    name: str,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    redis_url: str | None = None,
    devnet: bool = True,
) -> GatewayFiles:
    """The files of a gateway of the network's staked gateway account (``net.tmp / name``)."""
    return write_gateway_files(
        net.tmp / name,
        rpc_url=net.settlement.url,
        deployment=net.network.deployment,
        account=net.gateway_key,
        services={SERVICE: "devnet"},
        redis_url=redis_url,
        devnet=devnet,
        tables=tables,
    )


def keyed_gateway(net: Net, files: GatewayFiles, **limits: Any) -> tuple[GatewayProcess, str]:
    """A gateway started on ``files`` with an API key made before it starts (``limits``: rate
    limit, quota… of :func:`add_key`); stopped with the network."""
    key = add_key(files, {SERVICE: net.app_hex}, **limits)
    proc = GatewayProcess(files).start()
    net.extra.append(proc)
    return proc, key


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
