"""A whole staked network on a fresh chain in one call (devnet, relayer and gateway tests).

:func:`bootstrap_network` runs these steps, in order:

1. ``deploy`` — the contracts (:func:`ledger.network.deploy_network`) from the deployer account;
2. ``fund`` — every account gets native gas money (``anvil_setBalance``, anvil only) and
   tokens from the deployer's initial supply;
3. ``register services`` — each :class:`ServiceSpec` by its owner (default: the deployer);
4. ``stake gateways``, ``stake suppliers`` (services with endpoint URLs, receipt keys),
   ``stake apps`` (one service each), then ``delegate`` apps to gateways;
5. ``activate`` (optional, anvil only) — mine until the next session has started, so the
   stakes are in force and its H_n exists; the network is then usable at once.

It returns a :class:`Network`: the deployment, the keys, and the session from which the stakes
are in force.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ledger.anvil import DEV_ACCOUNTS
from ledger.client import LedgerClient
from ledger.deploy import DeployError, Deployment, DeployParams
from ledger.errors import LedgerError, translate_errors
from ledger.network import deploy_network
from protocol.encoding import hex_to_bytes
from protocol.keys import AccountKey, ReceiptKey
from session.windows import session_of, windows

__all__ = [
    "AppSpec",
    "GatewaySpec",
    "Network",
    "ServiceSpec",
    "SupplierSpec",
    "bootstrap_network",
    "dev_account",
]


def dev_account(i: int) -> AccountKey:
    """anvil's i-th funded dev account (0 is the default deployer)."""
    return AccountKey(hex_to_bytes(DEV_ACCOUNTS[i][1], 32))


@dataclass(frozen=True)
class ServiceSpec:
    service_id: str
    name: str = ""
    rpc_type: str = "evm"
    metadata_uri: str = ""
    cu_per_relay: int = 1
    max_cu_per_relay: int = 100
    difficulty_bits: int = 0
    owner: AccountKey | None = None  # None: the deployer


@dataclass(frozen=True)
class SupplierSpec:
    key: AccountKey
    endpoints: Mapping[str, str]  # service_id -> relay URL
    receipt_key: ReceiptKey = field(default_factory=ReceiptKey.generate)
    stake: int = 0  # 0: twice the minimum supplier stake


@dataclass(frozen=True)
class AppSpec:
    key: AccountKey
    service_id: str
    gateways: Sequence[bytes] = ()  # gateway addresses to delegate to
    stake: int = 0  # 0: the minimum app stake × 1000


@dataclass(frozen=True)
class GatewaySpec:
    key: AccountKey
    url: str = "http://127.0.0.1/"
    stake: int = 0  # 0: twice the minimum gateway stake


@dataclass(frozen=True)
class Network:
    """What :func:`bootstrap_network` built."""

    rpc_url: str
    deployment: Deployment
    deployer: AccountKey
    services: tuple[ServiceSpec, ...]
    suppliers: tuple[SupplierSpec, ...]
    apps: tuple[AppSpec, ...]
    gateways: tuple[GatewaySpec, ...]
    active_session: int  # the first session in which every stake and delegation is in force

    def client(self, key: AccountKey | None = None) -> LedgerClient:
        """A :class:`LedgerClient` for ``key`` (default: the deployer). Close it after use."""
        return LedgerClient(self.rpc_url, self.deployment, key or self.deployer)


async def bootstrap_network(
    rpc_url: str,
    *,
    deployer: AccountKey | None = None,
    params: DeployParams | None = None,
    services: Sequence[ServiceSpec] = (),
    suppliers: Sequence[SupplierSpec] = (),
    apps: Sequence[AppSpec] = (),
    gateways: Sequence[GatewaySpec] = (),
    token_funding: int | None = None,
    eth_funding: int | None = 10**21,
    activate: bool = True,
    extra_accounts: Sequence[bytes] = (),
) -> Network:
    """Deploy and stake a network on the chain at ``rpc_url`` (see the module docstring).

    ``token_funding`` tokens go to each account that stakes (default: its stakes and fees
    plus a margin); ``eth_funding`` wei of gas money via ``anvil_setBalance`` (None: skip,
    the accounts must hold ETH already). ``extra_accounts`` also receive both.
    """
    deployer = deployer or dev_account(0)
    try:
        with translate_errors("deploy"):
            deployment = await asyncio.to_thread(
                deploy_network,
                rpc_url,
                deployer.private_key,
                params if params is not None else DeployParams(),
            )
    except DeployError as exc:
        raise LedgerError(f"deploy: {exc}") from exc
    admin = LedgerClient(rpc_url, deployment, deployer)
    clients: list[LedgerClient] = [admin]

    def client_for(key: AccountKey) -> LedgerClient:
        if key.address == deployer.address:
            return admin
        c = LedgerClient(rpc_url, deployment, key)
        clients.append(c)
        return c

    try:
        econ = await admin.economic_params(await admin.current_session())
        supplier_specs = tuple(
            s if s.stake else _with_stake(s, 2 * econ.min_stake_supplier) for s in suppliers
        )
        app_specs = tuple(a if a.stake else _with_stake(a, 1000 * econ.min_stake_app) for a in apps)
        gateway_specs = tuple(
            g if g.stake else _with_stake(g, 2 * econ.min_stake_gateway) for g in gateways
        )

        # fund
        needs: dict[bytes, int] = {}
        for spec in services:
            owner = spec.owner or deployer
            needs[owner.address] = needs.get(owner.address, 0) + econ.service_registration_fee
        for s in supplier_specs:
            needs[s.key.address] = needs.get(s.key.address, 0) + s.stake
        for a in app_specs:
            needs[a.key.address] = needs.get(a.key.address, 0) + a.stake
        for g in gateway_specs:
            needs[g.key.address] = needs.get(g.key.address, 0) + g.stake
        for extra in extra_accounts:
            needs.setdefault(extra, 0)
        for address, need in needs.items():
            if eth_funding is not None and address != deployer.address:
                await _set_balance(admin, address, eth_funding)
            if address == deployer.address:
                continue
            amount = token_funding if token_funding is not None else need * 2 + 10**18
            if amount:
                await admin.transfer(address, amount)

        # register services
        for spec in services:
            await client_for(spec.owner or deployer).register_service(
                spec.service_id,
                name=spec.name,
                rpc_type=spec.rpc_type,
                metadata_uri=spec.metadata_uri,
                cu_per_relay=spec.cu_per_relay,
                max_cu_per_relay=spec.max_cu_per_relay,
                difficulty_bits=spec.difficulty_bits,
            )

        # stake gateways, suppliers, apps; delegate
        for g in gateway_specs:
            await client_for(g.key).stake_gateway(g.stake, g.url)
        for s in supplier_specs:
            await client_for(s.key).stake_supplier(s.stake, s.endpoints, s.receipt_key.public_key)
        for a in app_specs:
            c = client_for(a.key)
            await c.stake_app(a.service_id, a.stake)
            for gateway in a.gateways:
                await c.delegate(gateway)

        current = await admin.current_session()
        active = current + 1
        if activate:
            head = await admin.block_number()
            target = windows(deployment.shape, active).start
            if head < target:
                with translate_errors("anvil_mine"):
                    await admin.w3.provider.make_request(
                        "anvil_mine",  # type: ignore[arg-type]
                        [hex(target - head)],
                    )
            head = await admin.block_number()
            active = max(active, session_of(head, deployment.shape.B0, deployment.shape.L))
    finally:
        for c in clients:
            await c.close()

    return Network(
        rpc_url=rpc_url,
        deployment=deployment,
        deployer=deployer,
        services=tuple(services),
        suppliers=supplier_specs,
        apps=app_specs,
        gateways=gateway_specs,
        active_session=active,
    )


_Spec = TypeVar("_Spec", SupplierSpec, AppSpec, GatewaySpec)


def _with_stake(spec: _Spec, stake: int) -> _Spec:
    return replace(spec, stake=stake)


async def _set_balance(client: LedgerClient, address: bytes, wei: int) -> None:
    with translate_errors("anvil_setBalance"):
        answer = await client.w3.provider.make_request(
            "anvil_setBalance",  # type: ignore[arg-type]
            ["0x" + address.hex(), hex(wei)],
        )
    if isinstance(answer, Mapping) and answer.get("error"):
        raise LedgerError(f"anvil_setBalance: {answer['error']}")
