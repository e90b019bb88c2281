"""The session seed and its slots (DESIGN §3.2, "Slots").

::

    seed   = sha256(H_n ‖ service_id (32 bytes, right-padded) ‖ app ‖ uint64(n))   = session_id
    slot_j = occupant(uint256(sha256(seed ‖ uint16(j))) mod C, n)     for j in 0..S-1, C = length(n)

No session exists when ``C = 0``. The session's suppliers are the distinct suppliers of the
slots, in slot order.

>>> seed = session_seed(b"\\x11" * 32, "eth", b"\\x22" * 20, 7)
>>> seed.hex()[:16]
'77e09e5eceac60ad'
>>> suppliers = [b"\\xaa" * 20, b"\\xbb" * 20]
>>> picked = slots(seed, 4, 2, suppliers.__getitem__)
>>> [s.hex()[:2] for s in picked], [s.hex()[:2] for s in distinct_suppliers(picked)]
(['bb', 'bb', 'aa', 'aa'], ['bb', 'aa'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from protocol.encoding import service_id_to_bytes
from protocol.errors import ProtocolError
from session.errors import InvalidSessionInput

__all__ = [
    "SEED_SIZE",
    "distinct_suppliers",
    "service_id_bytes",
    "session_seed",
    "slot_positions",
    "slots",
]

SEED_SIZE = 32
HASH_SIZE = 32
ADDRESS_SIZE = 20
SERVICE_ID_SIZE = 32
MAX_SLOTS = 1 << 16  # j is encoded as uint16


def service_id_bytes(service_id: str) -> bytes:
    """``service_id`` as 32 bytes, right-padded with zeros; validated ``[a-z0-9_-]{1,32}``.

    The protocol's own encoding (``protocol.encoding.service_id_to_bytes``), with its refusal
    raised as this package's error.
    """
    try:
        return service_id_to_bytes(service_id)
    except ProtocolError as exc:
        raise InvalidSessionInput(f"invalid service id {service_id!r}") from exc


def session_seed(h_n: bytes, service_id: str, app: bytes, n: int) -> bytes:
    """``sha256(H_n ‖ service_id ‖ app ‖ uint64(n))`` — the seed, which is also the session id."""
    if len(h_n) != HASH_SIZE:
        raise InvalidSessionInput("H_n is 32 bytes")
    if len(app) != ADDRESS_SIZE:
        raise InvalidSessionInput("an application address is 20 bytes")
    if not 0 <= n < 1 << 64:
        raise InvalidSessionInput(f"session {n} does not fit uint64")
    return hashlib.sha256(h_n + service_id_bytes(service_id) + app + n.to_bytes(8, "big")).digest()


def slot_positions(seed: bytes, S: int, C: int) -> list[int]:
    """The position each slot draws: ``uint256(sha256(seed ‖ uint16(j))) mod C`` for
    ``j < S``; ``[]`` when ``C = 0``."""
    if len(seed) != SEED_SIZE:
        raise InvalidSessionInput("a seed is 32 bytes")
    if not 1 <= S <= MAX_SLOTS:
        raise InvalidSessionInput(f"S must be in 1..{MAX_SLOTS}, got {S}")
    if C < 0:
        raise InvalidSessionInput(f"C must be >= 0, got {C}")
    if C == 0:
        return []
    sha256 = hashlib.sha256
    return [
        int.from_bytes(sha256(seed + j.to_bytes(2, "big")).digest(), "big") % C for j in range(S)
    ]


def slots(
    seed: bytes,
    S: int,
    C: int,
    occupant: Callable[[int], bytes],
) -> list[bytes]:
    """The ``S`` slots' suppliers: ``occupant(position)`` (for session ``n``) of each slot's
    position; ``[]`` when ``C = 0`` (no session)."""
    return [occupant(p) for p in slot_positions(seed, S, C)]


def distinct_suppliers(slot_suppliers: Iterable[bytes]) -> list[bytes]:
    """The distinct suppliers of the slots, in slot order."""
    return list(dict.fromkeys(slot_suppliers))
