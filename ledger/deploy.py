"""Deploy and wire the settlement contracts (DESIGN §3.1) onto an EVM chain with web3.py.

:func:`ledger.network.deploy_network` sends, from one deployer key:
``Token(initial_supply)``, ``Sessions`` (shape and economic parameters; its block is
``B0``), ``Services``, ``Suppliers``, ``Apps``, ``Settlement``, then wires
``Token.set_minter``, ``Suppliers.set_settlement`` and ``Apps.set_settlement`` to the
Settlement contract. :class:`DeployParams` defaults are the "devnet" column of DESIGN §3.1;
:class:`Deployment` is what every other component reads (addresses, chain id, ``B0`` and the
session shape), serialisable to JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ledger.econ import econ_tuple
from protocol.settlement import pending_sessions
from session.snapshot import EconomicParams, SessionShape

__all__ = [
    "TOKEN_UNIT",
    "DeployError",
    "DeployParams",
    "Deployment",
]

TOKEN_UNIT = 10**18


class DeployError(RuntimeError):
    """A deployment transaction failed."""


@dataclass(frozen=True)
class DeployParams:
    """Everything a deployment fixes: the session shape and the initial economic parameters.

    Defaults are DESIGN §3.1's devnet column; ``unbonding_sessions=None`` means ``P`` and
    ``treasury=None`` the deployer.
    """

    L: int = 10
    G: int = 2
    CO: int = 1
    CW: int = 5
    PO: int = 0
    PW: int = 5
    S: int = 6
    min_stake_supplier: int = 100 * TOKEN_UNIT
    min_stake_app: int = 100 * TOKEN_UNIT
    min_stake_gateway: int = 100 * TOKEN_UNIT
    unbonding_sessions: int | None = None
    max_delegations: int = 7
    max_services_per_supplier: int = 16
    proof_probability_bps: int = 10000
    proof_threshold: int = 0
    slash_multiplier_bps: int = 10000
    settle_bounty_bps: int = 1000
    cu_price: int = 10**12
    service_registration_fee: int = 10 * TOKEN_UNIT
    mint_shares: tuple[int, int, int] = (9000, 500, 500)
    max_stream_relays: int = 1000
    initial_supply: int = 1_000_000_000 * TOKEN_UNIT
    treasury: bytes | None = None

    @classmethod
    def production_defaults(cls) -> DeployParams:
        """DESIGN §3.1's "default" column where it gives a value."""
        return cls(
            L=60,
            G=5,
            CO=2,
            CW=20,
            PO=1,
            PW=20,
            S=24,
            proof_probability_bps=2500,
            slash_multiplier_bps=40000,
        )

    @property
    def P(self) -> int:
        return pending_sessions(self.L, self.G, self.CO, self.CW, self.PO, self.PW)

    def shape_fields(self) -> dict[str, int]:
        """The session shape's fields but ``B0`` (the genesis block is the deployment's)."""
        return {name: getattr(self, name) for name in ("L", "G", "CO", "CW", "PO", "PW", "S")}

    def session_shape(self, genesis: int) -> SessionShape:
        """The session shape of a deployment whose first session starts at ``genesis``."""
        return SessionShape(B0=genesis, **self.shape_fields())

    def economic_params(self) -> EconomicParams:
        return EconomicParams(
            cu_price=self.cu_price,
            proof_probability_bps=self.proof_probability_bps,
            proof_threshold=self.proof_threshold,
            slash_multiplier_bps=self.slash_multiplier_bps,
            settle_bounty_bps=self.settle_bounty_bps,
            mint_shares=self.mint_shares,
            max_stream_relays=self.max_stream_relays,
            min_stake_supplier=self.min_stake_supplier,
            min_stake_app=self.min_stake_app,
            min_stake_gateway=self.min_stake_gateway,
            unbonding_sessions=self.P
            if self.unbonding_sessions is None
            else self.unbonding_sessions,
            max_delegations=self.max_delegations,
            max_services_per_supplier=self.max_services_per_supplier,
            service_registration_fee=self.service_registration_fee,
        )

    def econ_tuple(self) -> tuple[int, ...]:
        """The ``EconParams`` struct of the contracts, field order exact."""
        return econ_tuple(self.economic_params())

    def with_(self, **changes: Any) -> DeployParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class Deployment:
    """Where the contracts are: ``contracts`` maps each name of ``CONTRACT_NAMES`` to its
    0x address; ``settlement`` is the EIP-712 verifying contract; ``genesis_block`` is B0."""

    chain_id: int
    rpc_url: str
    contracts: dict[str, str]
    token: str
    settlement: str
    genesis_block: int
    shape: SessionShape
    deployer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return self.contracts[name]

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Deployment:
        data = json.loads(text)
        shape = SessionShape(**data["shape"])
        return cls(
            chain_id=int(data["chain_id"]),
            rpc_url=str(data["rpc_url"]),
            contracts={str(k): str(v) for k, v in data["contracts"].items()},
            token=str(data["token"]),
            settlement=str(data["settlement"]),
            genesis_block=int(data["genesis_block"]),
            shape=shape,
            deployer=str(data.get("deployer", "")),
            extra=dict(data.get("extra", {})),
        )
