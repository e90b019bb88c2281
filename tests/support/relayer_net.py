"""A settlement chain, an Ethereum backend and a staked network for relayer integration tests.

Real anvils (one as the settlement chain, one as the backend node), contracts deployed and
stakes placed with ``ledger.bootstrap``, a small threaded HTTP backend that records what it
receives (and can hang), and the relayer as a subprocess (``tests.support.relayer_proc``).
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

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
        d = self.network.deployment
        return Domain(d.chain_id, address_from_hex(d.settlement))

    def session(self) -> int:
        shape = self.network.deployment.shape
        return session_of(self.chain.block_number(), shape.B0, shape.L)


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
        port = free_port()
        relay_url = f"http://127.0.0.1:{port}/v1/relay"
        registered = sorted(set(services) | set(staked_services))
        network = asyncio.run(
            bootstrap_network(
                chain.url,
                params=PARAMS,
                services=[ServiceSpec(sid) for sid in registered],
                suppliers=[
                    SupplierSpec(
                        supplier,
                        {sid: relay_url for sid in staked_services},
                        receipt_key=receipt,
                        stake=SUPPLIER_STAKE,
                    )
                ],
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
            )
        )
        resolved = {
            sid: replace(
                svc,
                url=backend.url if svc.url == "anvil" else svc.url,
                ws_url=backend.ws_url if svc.ws_url == "anvil" else svc.ws_url,
            )
            for sid, svc in services.items()
        }
        files = write_relayer_files(
            tmp / "relayer",
            rpc_url=chain.url,
            deployment=network.deployment,
            account=supplier,
            receipt=receipt,
            services=resolved,
            port=port,
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
