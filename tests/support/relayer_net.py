"""A settlement chain, an Ethereum backend and a staked network for relayer integration tests.

Real anvils (one as the settlement chain, one as the backend node), contracts deployed and
stakes placed with ``ledger.bootstrap``, a small threaded HTTP backend that records what it
receives (and can hang), and the relayer as a subprocess (``tests.support.relayer_proc``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ledger.anvil import AnvilProcess, free_port
from ledger.bootstrap import (
    AppSpec,
    GatewaySpec,
    Network,
    ServiceSpec,
    SupplierSpec,
    bootstrap_network,
)
from ledger.deploy import DeployParams
from protocol.encoding import address_from_hex
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from session.windows import session_of
from tests.support.relay_client import SignedRelay, sign_relay
from tests.support.relayer_proc import (
    RelayerFiles,
    RelayerProcess,
    ServiceBackend,
    write_relayer_files,
)

TOKEN = 10**18
PARAMS = DeployParams(cu_price=TOKEN, min_stake_app=9 * TOKEN)
SUPPLIER_STAKE = 100_000 * TOKEN
BIG_APP_STAKE = 9_000 * TOKEN  # budget 3000 relays of 1 CU
POOR_APP_STAKE = 9 * TOKEN  # budget exactly 3 relays of 1 CU


def domain_of(network: Network) -> Domain:
    """The signing domain of a deployment (chain id, settlement contract)."""
    d = network.deployment
    return Domain(d.chain_id, address_from_hex(d.settlement))


def session_now(chain: AnvilProcess, network: Network) -> int:
    """The session of the chain's head block."""
    shape = network.deployment.shape
    return session_of(chain.block_number(), shape.B0, shape.L)


@dataclass(frozen=True)
class Relayer:
    """A relayer to stake and run: its supplier account, receipt key and backends; on chain its
    endpoint serves ``staked`` (every service it has a backend for when None) at ``host``."""

    key: AccountKey
    services: Mapping[str, ServiceBackend]
    receipt: ReceiptKey = field(default_factory=ReceiptKey.generate)
    staked: tuple[str, ...] | None = None
    stake: int = 0
    host: str = "127.0.0.1"
    tls: tuple[Path, Path] | None = None  # (certificate, key): serves and is staked https://


def stake_relayers(
    tmp: Path,
    chain_url: str,
    relayers: Sequence[Relayer],
    *,
    services: Sequence[ServiceSpec],
    apps: Sequence[AppSpec] = (),
    gateways: Sequence[GatewaySpec] = (),
    others: Sequence[SupplierSpec] = (),
    params: DeployParams | None = None,
    claims: Mapping[str, object] | None = None,
    **bootstrap: Any,
) -> tuple[Network, list[RelayerFiles]]:
    """Deploy and stake a network whose suppliers are ``relayers`` (then ``others``, e.g. a
    scripted liar) and write each relayer's files (``tmp/relayer<i>``, ports chosen first so
    the staked endpoints are known); the processes are the caller's to start. ``bootstrap``:
    more arguments of :func:`ledger.bootstrap.bootstrap_network`."""
    ports = [(free_port(), free_port()) for _ in relayers]
    suppliers = [
        SupplierSpec(
            r.key,
            {
                sid: f"{'https' if r.tls else 'http'}://{r.host}:{port}/v1/relay"
                for sid in (r.services if r.staked is None else r.staked)
            },
            receipt_key=r.receipt,
            stake=r.stake,
        )
        for r, (port, _) in zip(relayers, ports, strict=True)
    ]
    network = asyncio.run(
        bootstrap_network(
            chain_url,
            params=params,
            services=services,
            suppliers=[*suppliers, *others],
            apps=apps,
            gateways=gateways,
            **bootstrap,
        )
    )
    files = [
        write_relayer_files(
            tmp / f"relayer{i}",
            rpc_url=chain_url,
            deployment=network.deployment,
            account=r.key,
            receipt=r.receipt,
            services=r.services,
            port=port,
            metrics_port=metrics_port,
            claims=claims,
            tls=r.tls,
        )
        for i, (r, (port, metrics_port)) in enumerate(zip(relayers, ports, strict=True))
    ]
    return network, files


def start_all(procs: Sequence[RelayerProcess]) -> None:
    """Start the relayers side by side (each waits for its /readyz)."""
    with concurrent.futures.ThreadPoolExecutor(max(1, len(procs))) as pool:
        for fut in [pool.submit(p.start) for p in procs]:
            fut.result()


class CaptureBackend:
    """A threaded HTTP backend: records each request's headers and body, answers fixed bytes;
    ``/slow`` sleeps longer than any relayer timeout in these tests."""

    ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"captured"}'

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.seen.append((self.path, dict(self.headers.items()), body))
                if self.path == "/slow":
                    time.sleep(3)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.ANSWER)))
                self.end_headers()
                try:
                    self.wfile.write(outer.ANSWER)
                except BrokenPipeError:  # the relayer gave up waiting (the /slow case)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CaptureBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Net:
    chain: AnvilProcess
    backend: AnvilProcess
    network: Network
    supplier: AccountKey
    receipt: ReceiptKey
    apps: Mapping[str, AccountKey]
    gateway: AccountKey
    outsider_gateway: AccountKey
    files: RelayerFiles
    relayer: RelayerProcess
    capture: CaptureBackend | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def domain(self) -> Domain:
        return domain_of(self.network)

    def session(self) -> int:
        return session_now(self.chain, self.network)

    def sign(self, payload: bytes, *, n: int | None = None, app: str = "main") -> SignedRelay:
        """A relay of ``payload`` for the relayer's supplier, signed by ``app`` for session
        ``n`` (the current one when None)."""
        key = self.apps[app]
        return sign_relay(
            self.domain,
            key,
            service_id="devnet",
            supplier=self.supplier.address,
            n=self.session() if n is None else n,
            payload=payload,
        )


@contextmanager
def relayer_network(
    tmp: Path,
    *,
    services: Mapping[str, ServiceBackend],
    staked_services: tuple[str, ...],
    app_services: Mapping[str, tuple[str, int]],
    claims: Mapping[str, object] | None = None,
    capture: CaptureBackend | None = None,
) -> Iterator[Net]:
    """Chain + backend anvils, a bootstrapped network and a running relayer."""
    with AnvilProcess() as chain, AnvilProcess() as backend:
        supplier, receipt = AccountKey.generate(), ReceiptKey.generate()
        gateway, outsider = AccountKey.generate(), AccountKey.generate()
        apps = {name: AccountKey.generate() for name in app_services}
        resolved = {
            sid: replace(
                svc,
                url=backend.url if svc.url == "anvil" else svc.url,
                ws_url=backend.ws_url if svc.ws_url == "anvil" else svc.ws_url,
            )
            for sid, svc in services.items()
        }
        network, (files,) = stake_relayers(
            tmp,
            chain.url,
            [Relayer(supplier, resolved, receipt, tuple(staked_services), SUPPLIER_STAKE)],
            params=PARAMS,
            services=[ServiceSpec(sid) for sid in sorted(set(services) | set(staked_services))],
            apps=[
                AppSpec(
                    apps[name],
                    sid,
                    gateways=(gateway.address,) if name == "main" else (),
                    stake=stake,
                )
                for name, (sid, stake) in app_services.items()
            ],
            gateways=[GatewaySpec(gateway), GatewaySpec(outsider)],
            claims=claims,
        )
        proc = RelayerProcess(files)
        try:
            proc.start()
            yield Net(
                chain,
                backend,
                network,
                supplier,
                receipt,
                apps,
                gateway,
                outsider,
                files,
                proc,
                capture,
            )
        finally:
            proc.stop()
