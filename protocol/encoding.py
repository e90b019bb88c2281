"""Byte-level encodings shared by every protocol value (DESIGN §3).

Owns: hex strings ("0x"-prefixed or bare, lowercase on output), addresses (20 raw bytes;
EIP-55 checksums are checked when a string is mixed-case), and service ids (1–32 characters
of ``[a-z0-9_-]``, 32 bytes on the wire, right-padded with zeros). Every bad input raises
:class:`~protocol.errors.ProtocolError` with code ``MALFORMED_INPUT``; nothing else escapes.

>>> to_hex(service_id_to_bytes("eth"))[:10]
'0x65746800'
>>> service_id_from_bytes(service_id_to_bytes("base"))
'base'
"""

from __future__ import annotations

import re
from functools import lru_cache

from protocol.errors import ProtocolError
from protocol.keys import keccak256

__all__ = [
    "ADDRESS_SIZE",
    "SERVICE_ID_SIZE",
    "ZERO_ADDRESS",
    "address_from_hex",
    "address_to_checksum",
    "address_to_hex",
    "hex_to_bytes",
    "is_valid_service_id",
    "service_id_from_bytes",
    "service_id_to_bytes",
    "to_hex",
]

ADDRESS_SIZE = 20
SERVICE_ID_SIZE = 32
ZERO_ADDRESS = bytes(ADDRESS_SIZE)

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_SERVICE_ID = re.compile(r"[a-z0-9_-]{1,32}")
_SERVICE_ID_BYTES = re.compile(rb"[a-z0-9_-]{1,32}")


def hex_to_bytes(s: str, length: int | None = None, what: str = "value") -> bytes:
    """Decode ``s`` ("0x"-prefixed or bare hex, any case); check its length in bytes if given.

    >>> hex_to_bytes("0x00ff", 2)
    b'\\x00\\xff'
    """
    if not isinstance(s, str):
        raise ProtocolError(f"{what}: expected a hex string, got {type(s).__name__}")
    digits = s[2:] if s[:2] in ("0x", "0X") else s
    if len(digits) % 2 or not _HEX_DIGITS.fullmatch(digits):
        raise ProtocolError(f"{what}: not a hex string")
    data = bytes.fromhex(digits)
    if length is not None and len(data) != length:
        raise ProtocolError(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def to_hex(b: bytes) -> str:
    """``"0x"`` followed by the lowercase hex of ``b``."""
    return "0x" + bytes(b).hex()


def address_from_hex(s: str, what: str = "address") -> bytes:
    """A 20-byte address from hex; a mixed-case string must carry a valid EIP-55 checksum."""
    raw = hex_to_bytes(s, ADDRESS_SIZE, what)
    digits = s[2:] if s[:2] in ("0x", "0X") else s
    if digits != digits.lower() and digits != digits.upper():
        if address_to_checksum(raw)[2:] != digits:
            raise ProtocolError(f"{what}: bad EIP-55 checksum")
    return raw


def address_to_hex(b: bytes) -> str:
    """Lowercase ``0x`` hex of a 20-byte address (the form used in files)."""
    if len(b) != ADDRESS_SIZE:
        raise ProtocolError(f"address: expected {ADDRESS_SIZE} bytes, got {len(b)}")
    return to_hex(b)


def address_to_checksum(b: bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address (for display only)."""
    lower = address_to_hex(b)[2:]
    hashed = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(h, 16) >= 8 else c
        for c, h in zip(lower, hashed, strict=False)
    )


def is_valid_service_id(sid: str) -> bool:
    """True when ``sid`` is 1–32 characters of ``[a-z0-9_-]``."""
    return isinstance(sid, str) and _SERVICE_ID.fullmatch(sid) is not None


@lru_cache(maxsize=1024)
def service_id_to_bytes(sid: str) -> bytes:
    """The 32-byte wire form of a service id: its ASCII bytes right-padded with zeros.

    >>> len(service_id_to_bytes("eth"))
    32
    """
    if type(sid) is str:
        wire = _SERVICE_WIRE.get(sid)
        if wire is not None:
            return wire
    if not is_valid_service_id(sid):
        raise ProtocolError(f"service_id: {sid!r} is not 1-32 characters of [a-z0-9_-]")
    wire = sid.encode("ascii").ljust(SERVICE_ID_SIZE, b"\x00")
    if type(sid) is str and len(_SERVICE_WIRE) < 1024:
        _SERVICE_WIRE[sid] = wire
    return wire


_SERVICE_WIRE: dict[str, bytes] = {}  # valid service ids seen -> their wire form


def service_id_from_bytes(b: bytes) -> str:
    """Read a 32-byte service id: a valid id followed only by zero bytes.

    >>> service_id_from_bytes(b"eth" + bytes(29))
    'eth'
    """
    if len(b) != SERVICE_ID_SIZE:
        raise ProtocolError(f"service_id: expected {SERVICE_ID_SIZE} bytes, got {len(b)}")
    return _service_id_from_bytes(bytes(b))


@lru_cache(maxsize=1024)
def _service_id_from_bytes(b: bytes) -> str:
    text = b.rstrip(b"\x00")
    if not text:
        raise ProtocolError("service_id: empty")
    if _SERVICE_ID_BYTES.fullmatch(text) is None:
        if b"\x00" in text:
            raise ProtocolError("service_id: not zero-padded (a zero byte inside the id)")
        raise ProtocolError("service_id: characters outside [a-z0-9_-]")
    return text.decode("ascii")
