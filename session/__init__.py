"""Session arithmetic — pure functions over a registry snapshot.

Owns: heights and windows, the seed, positions with history (reading and writing them),
slots, and session hydration over a :class:`RegistrySnapshot` that ``ledger/`` implements
(DESIGN §3.2). Does no network I/O.
"""

from session.errors import (
    HistoryError,
    InvalidSessionInput,
    MissingHistory,
    SessionError,
    SessionExpired,
    SessionNotStarted,
    SnapshotNotReady,
    UnknownService,
)
from session.history import History
from session.hydrate import Session, SessionSupplier, hydrate
from session.memory import MemorySnapshot
from session.positions import LengthRecord, PositionHistory, PositionRecord
from session.slots import (
    distinct_suppliers,
    service_id_bytes,
    session_seed,
    slot_positions,
    slots,
)
from session.snapshot import (
    Address,
    EconomicParams,
    RegistrySnapshot,
    ServiceInfo,
    ServiceParams,
    SessionShape,
    SupplierInfo,
)
from session.windows import (
    RelayStatus,
    Windows,
    WindowShape,
    accepts_relays,
    check_relay_session,
    fallback_session,
    relay_status,
    session_of,
    signing_session,
    windows,
)

__all__ = [
    "Address",
    "EconomicParams",
    "History",
    "HistoryError",
    "InvalidSessionInput",
    "LengthRecord",
    "MemorySnapshot",
    "MissingHistory",
    "PositionHistory",
    "PositionRecord",
    "RegistrySnapshot",
    "RelayStatus",
    "ServiceInfo",
    "ServiceParams",
    "Session",
    "SessionError",
    "SessionExpired",
    "SessionNotStarted",
    "SessionShape",
    "SessionSupplier",
    "SnapshotNotReady",
    "SupplierInfo",
    "UnknownService",
    "WindowShape",
    "Windows",
    "accepts_relays",
    "check_relay_session",
    "distinct_suppliers",
    "fallback_session",
    "hydrate",
    "relay_status",
    "service_id_bytes",
    "session_of",
    "session_seed",
    "signing_session",
    "slot_positions",
    "slots",
    "windows",
]
