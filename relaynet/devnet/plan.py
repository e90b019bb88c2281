"""What the devnet runs: its services, backends, accounts and ports, decided before anything starts.

Services (id → catalogue spec → backend process):

=================  ===============  ==========================================================
``eth``            ``devnet``       anvil, chain id 31337 (the Ethereum backend, dev accounts
                                    funded as usual), 1 s blocks
``rollchain-evm``  ``rollchain-evm`` anvil, chain id 262144 (an EVM rollup), 1 s blocks
``rollchain-rpc``  ``rollchain-rpc`` CometBFT stand-in (``rollups.standins.cometbft``)
``celestia``       ``celestia-mocha`` celestia-node stand-in (``rollups.standins.celestia``),
                                    the relayers present a read JWT
=================  ===============  ==========================================================

Accounts on the settlement chain are anvil's dev accounts: 0 deploys and owns the services,
1–3 are the three relayers' suppliers, 4–7 the apps (one per service), 8 the gateway.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from ledger.bootstrap import dev_account
from protocol.keys import AccountKey, ReceiptKey

__all__ = [
    "BACKENDS",
    "RELAYERS",
    "SERVICES",
    "SETTLEMENT_CHAIN_ID",
    "BackendPlan",
    "DevnetPlan",
    "RelayerPlan",
    "ServicePlan",
    "free_ports",
    "make_plan",
]

SETTLEMENT_CHAIN_ID = 31337
RELAYERS = 3
BLOCK_TIME = 1


@dataclass(frozen=True)
class BackendPlan:
    """One backend node process the relayers forward to."""

    name: str  # process name, e.g. "eth-anvil"
    kind: str  # "anvil" | "cometbft" | "celestia"
    port: int
    chain_id: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str | None:
        return f"ws://127.0.0.1:{self.port}" if self.kind == "anvil" else None


@dataclass(frozen=True)
class ServicePlan:
    service_id: str
    spec: str  # catalogue name
    backend: str  # BackendPlan.name


@dataclass(frozen=True)
class RelayerPlan:
    index: int
    account: AccountKey
    receipt: ReceiptKey
    port: int
    metrics_port: int

    @property
    def name(self) -> str:
        return f"relayer{self.index + 1}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def relay_url(self) -> str:
        return f"{self.url}/v1/relay"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


# (process name, kind, chain id)
BACKENDS: tuple[tuple[str, str, int | None], ...] = (
    ("eth-anvil", "anvil", 31337),
    ("rollup-anvil", "anvil", 262144),
    ("cometbft", "cometbft", None),
    ("celestia", "celestia", None),
)

SERVICES: tuple[ServicePlan, ...] = (
    ServicePlan("eth", "devnet", "eth-anvil"),
    ServicePlan("rollchain-evm", "rollchain-evm", "rollup-anvil"),
    ServicePlan("rollchain-rpc", "rollchain-rpc", "cometbft"),
    ServicePlan("celestia", "celestia-mocha", "celestia"),
)


@dataclass(frozen=True)
class DevnetPlan:
    settlement_port: int
    backends: dict[str, BackendPlan]
    services: tuple[ServicePlan, ...]
    relayers: tuple[RelayerPlan, ...]
    deployer: AccountKey
    apps: dict[str, AccountKey]  # service id -> app account
    gateway: AccountKey
    gateway_port: int
    gateway_metrics_port: int
    celestia_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def settlement_url(self) -> str:
        return f"http://127.0.0.1:{self.settlement_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_metrics_port}/metrics"

    def backend_of(self, service: ServicePlan) -> BackendPlan:
        return self.backends[service.backend]


def free_ports(n: int, taken: frozenset[int] = frozenset()) -> list[int]:
    """``n`` distinct free loopback ports (all held open while choosing, so never twice)."""
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < n:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                ports.append(port)
        return ports


def make_plan(*, gateway_port: int = 0, settlement_port: int = 0) -> DevnetPlan:
    """Accounts, fresh receipt keys and ports (0: a free loopback port) for one devnet."""
    fixed = frozenset(p for p in (gateway_port, settlement_port) if p)
    ports: Iterator[int] = iter(free_ports(len(BACKENDS) + 2 * RELAYERS + 3, fixed))
    backends = {
        name: BackendPlan(name, kind, next(ports), chain_id) for name, kind, chain_id in BACKENDS
    }
    relayers = tuple(
        RelayerPlan(i, dev_account(1 + i), ReceiptKey.generate(), next(ports), next(ports))
        for i in range(RELAYERS)
    )
    settlement = settlement_port or next(ports)
    gateway = gateway_port or next(ports)
    return DevnetPlan(
        settlement_port=settlement,
        backends=backends,
        services=SERVICES,
        relayers=relayers,
        deployer=dev_account(0),
        apps={svc.service_id: dev_account(4 + i) for i, svc in enumerate(SERVICES)},
        gateway=dev_account(8),
        gateway_port=gateway,
        gateway_metrics_port=next(ports),
    )
