"""An in-memory :class:`RegistrySnapshot` with writer methods.

The ledger follower keeps one current from contract events (``LengthSet`` → :meth:`set_length`,
``PositionSet`` → :meth:`set_position`, parameter and stake events → the ``set_*`` methods);
tests fill one by hand, with :meth:`stake_supplier` / :meth:`unstake_supplier` applying the
position rules the way the contracts do. Every history answers "the latest record with
``from_session <= n``" by binary search, O(log k); everything else is a dict lookup.
Not thread-safe: one event loop owns it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from session.delegations import DelegationBook
from session.errors import InvalidSessionInput, MissingHistory, SnapshotNotReady, UnknownService
from session.history import History
from session.positions import PositionHistory
from session.snapshot import (
    Address,
    EconomicParams,
    RegistrySnapshot,
    ServiceInfo,
    ServiceParams,
    SessionShape,
    SupplierInfo,
)

__all__ = ["MemorySnapshot"]

HASH_SIZE = 32
ADDRESS_SIZE = 20


def _address(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_SIZE:
        raise InvalidSessionInput(f"{what} is a 20-byte address")
    return value


class MemorySnapshot:
    """The registry as of block :meth:`head`, held in memory (implements ``RegistrySnapshot``)."""

    def __init__(self, shape: SessionShape | None = None, head: int = 0) -> None:
        self._shape = shape
        self._head = head
        self._block_hashes: dict[int, bytes] = {}
        self._economic: History[EconomicParams] = History()
        self._services: dict[str, ServiceInfo] = {}
        self._service_params: dict[str, History[ServiceParams]] = {}
        self._positions: dict[str, PositionHistory] = {}
        self._suppliers: dict[Address, SupplierInfo] = {}
        self._app_services: dict[Address, str] = {}
        self._app_stakes: dict[Address, History[int]] = {}
        self.book = DelegationBook()
        self._receipt_keys: dict[Address, History[bytes]] = {}
        self._chain_ids: dict[int, int] = {}
        self.default_chain_id: int | None = None

    # -- RegistrySnapshot ------------------------------------------------------------------

    def shape(self) -> SessionShape:
        if self._shape is None:
            raise SnapshotNotReady("the session shape is not known yet")
        return self._shape

    def head(self) -> int:
        return self._head

    def block_hash(self, height: int) -> bytes | None:
        return self._block_hashes.get(height)

    def economic_params(self, n: int) -> EconomicParams:
        params = self._economic.at(n)
        if params is None:
            raise MissingHistory(f"no economic parameters in force in session {n}")
        return params

    def service(self, service_id: str) -> ServiceInfo | None:
        return self._services.get(service_id)

    def service_params(self, service_id: str, n: int) -> ServiceParams:
        history = self._service_params.get(service_id)
        if history is None:
            raise UnknownService(f"no parameters for service {service_id!r}")
        params = history.at(n)
        if params is None:
            raise MissingHistory(f"no parameters of {service_id!r} in force in session {n}")
        return params

    def length(self, service_id: str, n: int) -> int:
        history = self._positions.get(service_id)
        return 0 if history is None else history.length(n)

    def occupant(self, service_id: str, position: int, n: int) -> Address:
        history = self._positions.get(service_id)
        if history is None:
            raise UnknownService(f"service {service_id!r} has no positions")
        return history.occupant(position, n)

    def supplier(self, address: Address) -> SupplierInfo | None:
        return self._suppliers.get(address)

    def app_stake(self, app: Address, n: int) -> int:
        history = self._app_stakes.get(app)
        stake = None if history is None else history.at(n)
        return 0 if stake is None else stake

    def app_service(self, app: Address) -> str | None:
        return self._app_services.get(app)

    def delegated(self, app: Address, gateway: Address, n: int) -> bool:
        return self.book.delegation(app, gateway, n).active

    def signer_ok(self, app: Address, signer: Address, n: int) -> bool:
        return self.book.signer_ok(app, signer, n)

    def receipt_key(self, supplier: Address, n: int) -> bytes | None:
        history = self._receipt_keys.get(supplier)
        if history is not None:
            return history.at(n)
        info = self._suppliers.get(supplier)  # filled by hand, without a key history
        return None if info is None else info.receipt_key

    def chain_id(self, n: int) -> int | None:
        return self._chain_ids.get(n, self.default_chain_id)

    # -- further reads ---------------------------------------------------------------------

    def delegations(self, app: Address, n: int) -> list[Address]:
        """The gateways ``app`` may be signed for by in session ``n`` (``signer_ok``), in the
        order first delegated."""
        return [g for g in self.book.gateways_of(app) if self.signer_ok(app, g, n)]

    def receipt_key_records(self, supplier: Address) -> list[tuple[int, bytes]]:
        history = self._receipt_keys.get(supplier)
        return [] if history is None else history.records()

    def services(self) -> list[ServiceInfo]:
        """Every registered service."""
        return list(self._services.values())

    def position_history(self, service_id: str) -> PositionHistory:
        """The service's position history (created empty on first use)."""
        history = self._positions.get(service_id)
        if history is None:
            history = self._positions[service_id] = PositionHistory()
        return history

    # -- copies (the ledger follower rolls back to one after a chain reorganisation) ---------

    def copy(self) -> MemorySnapshot:
        """An independent deep copy of the whole registry as it is now."""
        return copy.deepcopy(self)

    def restore(self, saved: MemorySnapshot) -> None:
        """Become a copy of ``saved`` in place, so readers holding this object see it at once."""
        state = copy.deepcopy(saved).__dict__
        self.__dict__.clear()
        self.__dict__.update(state)

    # -- writers ---------------------------------------------------------------------------

    def set_shape(self, shape: SessionShape) -> None:
        self._shape = shape

    def set_head(self, height: int) -> None:
        self._head = height

    def set_block_hash(self, height: int, block_hash: bytes) -> None:
        if len(block_hash) != HASH_SIZE:
            raise InvalidSessionInput("a block hash is 32 bytes")
        self._block_hashes[height] = block_hash

    def prune_block_hashes(self, below: int) -> None:
        """Forget the hashes of blocks below ``below`` (sessions nobody reads any more)."""
        for height in [h for h in self._block_hashes if h < below]:
            del self._block_hashes[height]

    def set_economic_params(self, from_session: int, params: EconomicParams) -> None:
        self._economic.set(from_session, params)

    def register_service(self, info: ServiceInfo) -> None:
        self._services[info.service_id] = info

    def set_service_params(self, service_id: str, from_session: int, params: ServiceParams) -> None:
        self._service_params.setdefault(service_id, History()).set(from_session, params)

    def set_length(self, service_id: str, length: int, from_session: int) -> None:
        """Apply ``LengthSet(service, length, from_session)``."""
        self.position_history(service_id).set_length(length, from_session)

    def set_position(
        self, service_id: str, position: int, supplier: Address, from_session: int
    ) -> None:
        """Apply ``PositionSet(service, position, supplier, from_session)``."""
        self.position_history(service_id).set_position(position, supplier, from_session)

    def put_supplier(self, info: SupplierInfo) -> None:
        """Add or replace the supplier's current record (stake, receipt key, endpoints)."""
        self._suppliers[_address(info.address, "a supplier")] = info

    def remove_supplier(self, address: Address) -> None:
        """Forget the supplier (it withdrew); its past positions stay."""
        self._suppliers.pop(address, None)

    def set_app(self, app: Address, service_id: str | None) -> None:
        """Record the one service ``app`` stakes for (None when it no longer does)."""
        _address(app, "an application")
        if service_id is None:
            self._app_services.pop(app, None)
        else:
            self._app_services[app] = service_id

    def set_app_stake(self, app: Address, from_session: int, stake: int) -> None:
        self._app_stakes.setdefault(_address(app, "an application"), History()).set(
            from_session, stake
        )

    def set_delegation(
        self, app: Address, gateway: Address, from_session: int, delegated: bool, epoch: int = 1
    ) -> None:
        """Apply ``Delegated`` (``delegated`` true, under ``epoch``) or ``Undelegated``."""
        self.book.set_delegation(
            _address(app, "an application"),
            _address(gateway, "a gateway"),
            from_session,
            delegated,
            epoch,
        )

    def set_gateway_stake(
        self, gateway: Address, from_session: int, staked: bool, epoch: int
    ) -> None:
        """Apply ``GatewayStakeSet(gateway, staked, epoch, from_session)``."""
        self.book.set_gateway_stake(_address(gateway, "a gateway"), from_session, staked, epoch)

    def set_receipt_key(self, supplier: Address, from_session: int, key: bytes) -> None:
        """Apply ``ReceiptKeySet(supplier, key, from_session)``."""
        if len(key) != HASH_SIZE:
            raise InvalidSessionInput("a receipt key is 32 bytes")
        self._receipt_keys.setdefault(_address(supplier, "a supplier"), History()).set(
            from_session, key
        )

    def set_chain_id(self, n: int, chain_id: int) -> None:
        """The chain id recorded with ``H_n`` (``SessionChainId``), or seen at ``start(n) - 1``."""
        self._chain_ids[n] = chain_id

    # -- contract rules, for tests and tools -----------------------------------------------

    def stake_supplier(self, service_id: str, info: SupplierInfo, current_session: int) -> int:
        """Stake ``info.address`` for ``service_id`` while ``current_session`` is current: store
        its record and append it to the positions from the next session. Returns its position."""
        self.put_supplier(info)
        return self.position_history(service_id).stake(info.address, current_session)

    def unstake_supplier(self, service_id: str, address: Address, current_session: int) -> int:
        """Unstake ``address`` from ``service_id`` from the next session (the last supplier moves
        into its position). Its supplier record stays until :meth:`remove_supplier`. Returns the
        position it left."""
        return self.position_history(service_id).unstake(address, current_session)


if TYPE_CHECKING:
    _: RegistrySnapshot = MemorySnapshot()
