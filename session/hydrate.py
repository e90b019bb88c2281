"""Hydrating a session from a registry snapshot (DESIGN §3.2).

:func:`hydrate` reads what the snapshot knows about ``(service_id, app, n)`` — ``H_n``, the
service's ``length(n)`` and occupants — and computes the seed, the slots and the session's
suppliers with what a gateway needs to reach them (endpoint for the service, receipt key).
It does not check that the app is staked or delegates to anyone: that is the caller's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from session.errors import InvalidSessionInput, UnknownService
from session.slots import distinct_suppliers, session_seed, slot_positions
from session.snapshot import Address, RegistrySnapshot
from session.windows import Windows, windows

__all__ = ["Session", "SessionSupplier", "hydrate"]

ADDRESS_SIZE = 20


@dataclass(frozen=True, slots=True)
class SessionSupplier:
    """One supplier of a session.

    ``endpoint`` (the relay URL registered for the session's service) and ``receipt_key``
    (ed25519, 32 bytes) come from the snapshot's *current* supplier record; they are None when
    the registry no longer holds that supplier (it unstaked and withdrew) or it registered no
    endpoint for the service — which only happens for sessions in the past.
    """

    address: Address
    endpoint: str | None
    receipt_key: bytes | None
    slots: tuple[int, ...]  # the slot indexes j it holds, increasing


@dataclass(frozen=True, slots=True)
class Session:
    """Session ``n`` of ``app`` for ``service_id``: its seed (= session id), heights and slots."""

    service_id: str
    app: Address
    n: int
    seed: bytes
    windows: Windows
    slots: tuple[Address, ...]  # S supplier addresses, slot j at index j
    suppliers: tuple[SessionSupplier, ...]  # distinct, in slot order

    @property
    def session_id(self) -> bytes:
        """The session id (the seed)."""
        return self.seed

    def supplier(self, address: Address) -> SessionSupplier | None:
        """The session's entry for ``address``, or None when it holds no slot."""
        for entry in self.suppliers:
            if entry.address == address:
                return entry
        return None

    def slot_indexes(self, address: Address) -> tuple[int, ...]:
        """The slot indexes ``address`` holds (empty when it is not in the session)."""
        entry = self.supplier(address)
        return () if entry is None else entry.slots


def hydrate(snapshot: RegistrySnapshot, service_id: str, app: Address, n: int) -> Session | None:
    """Session ``n`` of ``app`` for ``service_id`` as the snapshot knows it.

    None when the snapshot does not know ``H_n`` yet (block ``start(n) - 1`` not seen) or when
    ``C = length(n) = 0`` (no session exists). :class:`UnknownService` when the service is not
    registered; :class:`InvalidSessionInput` for a malformed service id, app or session.
    """
    if len(app) != ADDRESS_SIZE:
        raise InvalidSessionInput("an application address is 20 bytes")
    if snapshot.service(service_id) is None:
        raise UnknownService(f"unknown service {service_id!r}")
    shape = snapshot.shape()
    w = windows(shape, n)
    h_n = snapshot.block_hash(w.h_n_block)
    if h_n is None:
        return None
    seed = session_seed(h_n, service_id, app, n)
    count = snapshot.length(service_id, n)
    if count == 0:
        return None
    positions = slot_positions(seed, shape.S, count)
    occupants: dict[int, Address] = {}
    slot_suppliers: list[Address] = []
    held: dict[Address, list[int]] = {}
    for j, p in enumerate(positions):
        address = occupants.get(p)
        if address is None:
            address = occupants[p] = snapshot.occupant(service_id, p, n)
        slot_suppliers.append(address)
        held.setdefault(address, []).append(j)
    suppliers: list[SessionSupplier] = []
    for address in distinct_suppliers(slot_suppliers):
        info = snapshot.supplier(address)
        suppliers.append(
            SessionSupplier(
                address=address,
                endpoint=None if info is None else info.endpoints.get(service_id),
                receipt_key=snapshot.receipt_key(address, n),
                slots=tuple(held[address]),
            )
        )
    return Session(
        service_id=service_id,
        app=app,
        n=n,
        seed=seed,
        windows=w,
        slots=tuple(slot_suppliers),
        suppliers=tuple(suppliers),
    )
