"""What session arithmetic reads from the settlement chain: the registry snapshot.

``session/`` declares the interface it needs; ``ledger/`` implements it (a follower that keeps
an in-memory snapshot current from contract events). Relayers and gateways read it on their
hot paths, so every method answers from memory, never from the network.

Addresses are 20 raw bytes throughout; ``service_id`` is the short string (1–32 characters of
``[a-z0-9_-]``); ``n`` is a session number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from protocol.settlement import pending_sessions

__all__ = [
    "Address",
    "EconomicParams",
    "RegistrySnapshot",
    "ServiceInfo",
    "ServiceParams",
    "SessionShape",
    "SupplierInfo",
]

Address = bytes  # 20 bytes


@dataclass(frozen=True, slots=True)
class SessionShape:
    """Session-shape parameters, fixed at deployment (DESIGN §3.1)."""

    B0: int  # genesis block of the contracts
    L: int  # blocks per session
    G: int  # grace blocks
    CO: int  # claim window opens CO blocks after grace ends
    CW: int  # claim window length
    PO: int  # proof window opens PO blocks after the claim window closes
    PW: int  # proof window length
    S: int  # slots per session

    @property
    def P(self) -> int:
        """Sessions whose claims may still be open (:func:`protocol.settlement.pending_sessions`).

        >>> SessionShape(B0=0, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6).P
        3
        """
        return pending_sessions(self.L, self.G, self.CO, self.CW, self.PO, self.PW)


@dataclass(frozen=True, slots=True)
class EconomicParams:
    """Global economic parameters in force for one session (admin; effective next session)."""

    cu_price: int
    proof_probability_bps: int
    proof_threshold: int
    slash_multiplier_bps: int
    settle_bounty_bps: int
    mint_shares: tuple[int, int, int]  # supplier, service owner, treasury (bps, sum 10000)
    max_stream_relays: int
    min_stake_supplier: int = 0
    min_stake_app: int = 0
    min_stake_gateway: int = 0
    unbonding_sessions: int = 0
    max_delegations: int = 7
    max_services_per_supplier: int = 16
    service_registration_fee: int = 0


@dataclass(frozen=True, slots=True)
class ServiceParams:
    """Per-service parameters in force for one session (the owner's; effective next session)."""

    cu_per_relay: int
    max_cu_per_relay: int
    difficulty_bits: int


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service_id: str
    owner: Address
    name: str = ""
    rpc_type: str = "evm"
    metadata_uri: str = ""


@dataclass(frozen=True, slots=True)
class SupplierInfo:
    address: Address
    stake: int
    receipt_key: bytes  # ed25519 public key, 32 bytes
    endpoints: Mapping[str, str] = field(default_factory=dict)  # service_id -> relay URL


@runtime_checkable
class RegistrySnapshot(Protocol):
    """Read-only view of the registry as of the latest block the reader has seen."""

    def shape(self) -> SessionShape:
        """The fixed session shape."""
        ...

    def head(self) -> int:
        """The latest block height this snapshot reflects."""
        ...

    def block_hash(self, height: int) -> bytes | None:
        """The 32-byte hash of block ``height`` if known (H_n, H_g and H_c come from here)."""
        ...

    def economic_params(self, n: int) -> EconomicParams:
        """Global parameters in force in session ``n``."""
        ...

    def service(self, service_id: str) -> ServiceInfo | None:
        """The registered service, or None."""
        ...

    def service_params(self, service_id: str, n: int) -> ServiceParams:
        """The service's parameters in force in session ``n`` (KeyError if unknown)."""
        ...

    def length(self, service_id: str, n: int) -> int:
        """``length(n)``: the number of positions of the service in session ``n``."""
        ...

    def occupant(self, service_id: str, position: int, n: int) -> Address:
        """``occupant(p, n)``: the supplier at position ``p`` in session ``n``."""
        ...

    def supplier(self, address: Address) -> SupplierInfo | None:
        """The staked supplier (current stake, receipt key, endpoints), or None."""
        ...

    def app_stake(self, app: Address, n: int) -> int:
        """``stake(app, n)``: the app's stake in force in session ``n`` (0 when not staked)."""
        ...

    def app_service(self, app: Address) -> str | None:
        """The one service the app is staked for, or None."""
        ...

    def delegated(self, app: Address, gateway: Address, n: int) -> bool:
        """Whether ``app``'s delegation record for ``gateway`` is active in session ``n``."""
        ...

    def signer_ok(self, app: Address, signer: Address, n: int) -> bool:
        """``signer_ok(app, g, n)`` of DESIGN §3.2: the app itself, or a gateway delegated at
        ``n``, staked at ``n`` and under the delegation's epoch."""
        ...

    def receipt_key(self, supplier: Address, n: int) -> bytes | None:
        """``receipt_key(supplier, n)``: the ed25519 key receipts of session ``n`` are checked
        against (the latest record with ``from_session <= n``), or None."""
        ...

    def chain_id(self, n: int) -> int | None:
        """The chain id of session ``n`` (its EIP-712 domain, §3.5), or None when unknown."""
        ...
