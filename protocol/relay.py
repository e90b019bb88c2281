"""Relays on the wire (DESIGN §3.3): the relay header, its EIP-712 digest, request signatures,
receipts, leaves, relay keys and mining, and the transport encodings (HTTP headers and
WebSocket frames).

Reading order follows a relay's life: a gateway builds a :class:`RelayHeader`, computes
:func:`request_digest` under the settlement's :class:`Domain` and signs it
(:func:`sign_request`); the relayer decodes it (:func:`decode_relay_request`), recovers the
signer (:func:`recover_signer`), hashes the backend's answer (:func:`response_hash`) and signs a
receipt (:func:`sign_receipt`); the gateway checks the receipt (:func:`verify_receipt`); the
relayer logs the :func:`encode_leaf` bytes under :func:`relay_key` and keeps the mined ones
(:func:`is_mined`).

Decoding here is *structural*: a header that parses is well formed (version 1, a valid
zero-padded service id, ``compute_units >= 1``). Whether its fields are acceptable — the
service is served, the supplier is this one, the session is current, the compute units match
the chain spec, ``max_index`` is within ``max_stream_relays`` — is for the relayer to check.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from protocol.encoding import ADDRESS_SIZE, service_id_from_bytes, service_id_to_bytes
from protocol.errors import ErrorCode, ProtocolError
from protocol.keys import (
    SECP256K1_N,
    AccountKey,
    ReceiptKey,
    keccak256,
    keccak_state,
    recover_address,
    verify_ed25519,
)

__all__ = [
    "DIGEST_SIZE",
    "DOMAIN_NAME",
    "DOMAIN_TYPEHASH",
    "DOMAIN_VERSION",
    "LEAF_SIZE",
    "RECEIPT_PREFIX",
    "RECEIPT_SIG_SIZE",
    "RELAY_HEADER_SIZE",
    "RELAY_SESSION_BYTES",
    "RELAY_TYPEHASH",
    "RELAY_VERSION",
    "REQUEST_SIG_SIZE",
    "WS_CLOSE_GRACE_ENDED",
    "WS_CLOSE_MAX_INDEX",
    "WS_CLOSE_RELAY_ERROR",
    "WS_FRAME_PREFIX_SIZE",
    "WS_STATUS",
    "Domain",
    "Leaf",
    "RelayHeader",
    "SessionDigester",
    "decode_receipt",
    "decode_relay_request",
    "decode_ws_frame",
    "encode_leaf",
    "encode_receipt",
    "encode_relay_request",
    "encode_ws_frame",
    "header_relay_fields",
    "is_mined",
    "leaf_compute_units",
    "receipt_message",
    "receipted_leaf",
    "recover_signer",
    "relay_key",
    "relay_request_bytes",
    "request_digest",
    "request_digest_of_bytes",
    "response_hash",
    "sign_receipt",
    "sign_request",
    "value_hash",
    "verify_receipt",
]

RELAY_VERSION: Final = 1
RELAY_HEADER_SIZE: Final = 157
REQUEST_SIG_SIZE: Final = 65
DIGEST_SIZE: Final = 32
RECEIPT_SIG_SIZE: Final = 64
LEAF_SIZE: Final = RELAY_HEADER_SIZE + REQUEST_SIG_SIZE + 8 + DIGEST_SIZE + RECEIPT_SIG_SIZE
assert LEAF_SIZE == 326

RECEIPT_PREFIX: Final = b"relaynet/receipt/v1"

#: WebSocket close codes (DESIGN §3.3, "Transport") and the status every frame is hashed with.
WS_CLOSE_MAX_INDEX: Final = 4000
WS_CLOSE_GRACE_ENDED: Final = 4001
WS_CLOSE_RELAY_ERROR: Final = 4002
WS_STATUS: Final = 101
#: ``uint64(index) ‖ response_hash ‖ receipt_sig`` before each frame's body.
WS_FRAME_PREFIX_SIZE: Final = 8 + DIGEST_SIZE + RECEIPT_SIG_SIZE

DOMAIN_NAME: Final = "relaynet"
DOMAIN_VERSION: Final = "1"
DOMAIN_TYPEHASH: Final = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
RELAY_TYPEHASH: Final = keccak256(
    b"Relay(uint8 version,bytes32 serviceId,address application,address signer,"
    b"address supplier,uint64 session,bytes32 payloadHash,bytes16 nonce,uint32 maxIndex,"
    b"uint32 computeUnits)"
)
_NAME_HASH: Final = keccak256(DOMAIN_NAME.encode())
_VERSION_HASH: Final = keccak256(DOMAIN_VERSION.encode())

_UINT64_MAX: Final = (1 << 64) - 1
_UINT32_MAX: Final = (1 << 32) - 1
_HALF_N_WORD: Final = (SECP256K1_N // 2).to_bytes(32, "big")
_N_WORD: Final = SECP256K1_N.to_bytes(32, "big")
_ZERO_WORD: Final = bytes(32)
_ZERO_ADDRESS: Final = bytes(ADDRESS_SIZE)

# version(1) service_id(32) application(20) signer(20) supplier(20) session(8)
# payload_hash(32) nonce(16) max_index(4) compute_units(4)
_HEADER: Final = struct.Struct(">B32s20s20s20sQ32s16sII")
assert _HEADER.size == RELAY_HEADER_SIZE
#: The leading header bytes every relay of one signer in one session shares (version …
#: session); the rest — payload hash, nonce, max_index, compute units — differs per relay.
RELAY_SESSION_BYTES: Final = 101
_RELAY_FIELDS: Final = struct.Struct(">32s16sII")
assert RELAY_SESSION_BYTES + _RELAY_FIELDS.size == RELAY_HEADER_SIZE
#: The EIP-712 encoding of the Relay struct: typehash, then each field as a 32-byte word.
_RELAY_STRUCT: Final = struct.Struct(">32s31xB32s12x20s12x20s12x20s24xQ32s16s16x28xI28xI")
#: ... split where the session bytes end: the typehash and the words of version … session
#: (224 bytes: one keccak block and more), then the words of the per-relay fields
_SESSION_FIELDS: Final = struct.Struct(">B32s20s20s20sQ")
_RELAY_LEAD: Final = struct.Struct(">32s31xB32s12x20s12x20s12x20s24xQ")
_RELAY_TAIL: Final = struct.Struct(">32s16s16x28xI28xI")
assert _SESSION_FIELDS.size == RELAY_SESSION_BYTES
assert _RELAY_LEAD.size + _RELAY_TAIL.size == _RELAY_STRUCT.size
_HEADER_FIELDS: Final = (
    "version",
    "service_id",
    "application",
    "signer",
    "supplier",
    "session",
    "payload_hash",
    "nonce",
    "max_index",
    "compute_units",
)
_U64: Final = struct.Struct(">Q")
_U16: Final = struct.Struct(">H")


def _header_error(message: str) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.MALFORMED_HEADER)


#: A tuple, not ``bytes | bytearray | memoryview``: that union is built anew on every call.
_INDEX_0: Final = bytes(8)  # uint64(0)
_BYTES_LIKE: Final = (bytes, bytearray, memoryview)


def _expect_len(value: bytes, size: int, what: str, code: ErrorCode) -> None:
    if type(value) is bytes and len(value) == size:  # the common case, checked first
        return
    if not isinstance(value, _BYTES_LIKE) or len(value) != size:
        got = len(value) if isinstance(value, _BYTES_LIKE) else "no"
        raise ProtocolError(f"{what}: expected {size} bytes, got {got}", code=code)


def _expect_uint(value: int, bits: int, what: str, code: ErrorCode) -> None:
    if type(value) is not int or not 0 <= value < (1 << bits):
        raise ProtocolError(f"{what}: expected an integer in [0, 2**{bits})", code=code)


# --- the header ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayHeader:
    """The 157-byte relay header ``RH`` (DESIGN §3.3). Construction checks every field's
    structure (MALFORMED_HEADER naming the field); any uint8 version is representable so that
    other versions can be encoded, but only version 1 decodes."""

    version: int
    service_id: str
    application: bytes
    signer: bytes
    supplier: bytes
    session: int
    payload_hash: bytes
    nonce: bytes
    max_index: int
    compute_units: int

    def __post_init__(self) -> None:
        h = ErrorCode.MALFORMED_HEADER
        _expect_uint(self.version, 8, "version", h)
        try:
            service_id_to_bytes(self.service_id)
        except (ProtocolError, TypeError) as exc:
            raise _header_error(
                f"service_id: {self.service_id!r} is not 1-32 of [a-z0-9_-]"
            ) from exc
        _expect_len(self.application, ADDRESS_SIZE, "application", h)
        _expect_len(self.signer, ADDRESS_SIZE, "signer", h)
        _expect_len(self.supplier, ADDRESS_SIZE, "supplier", h)
        _expect_uint(self.session, 64, "session", h)
        _expect_len(self.payload_hash, 32, "payload_hash", h)
        _expect_len(self.nonce, 16, "nonce", h)
        _expect_uint(self.max_index, 32, "max_index", h)
        _expect_uint(self.compute_units, 32, "compute_units", h)
        if self.compute_units == 0:
            raise _header_error("compute_units: must be at least 1")
        if not (
            type(self.application) is bytes
            and type(self.signer) is bytes
            and type(self.supplier) is bytes
            and type(self.payload_hash) is bytes
            and type(self.nonce) is bytes
        ):
            for name in ("application", "signer", "supplier", "payload_hash", "nonce"):
                object.__setattr__(self, name, bytes(getattr(self, name)))

    def encode(self) -> bytes:
        """The 157 wire bytes."""
        return _HEADER.pack(
            self.version,
            service_id_to_bytes(self.service_id),
            bytes(self.application),
            bytes(self.signer),
            bytes(self.supplier),
            self.session,
            bytes(self.payload_hash),
            bytes(self.nonce),
            self.max_index,
            self.compute_units,
        )

    @classmethod
    def decode(cls, data: bytes) -> RelayHeader:
        """Parse 157 wire bytes. UNSUPPORTED_VERSION when the first byte is not 1 (checked
        first: another version may have another size); MALFORMED_HEADER naming the field for
        anything else."""
        if not isinstance(data, _BYTES_LIKE):
            raise _header_error("relay header: expected bytes")
        if len(data) == 0:
            raise _header_error(f"relay header: expected {RELAY_HEADER_SIZE} bytes, got 0")
        if data[0] != RELAY_VERSION:
            raise ProtocolError(
                f"version: {data[0]} is not supported (only {RELAY_VERSION})",
                code=ErrorCode.UNSUPPORTED_VERSION,
            )
        if len(data) != RELAY_HEADER_SIZE:
            raise _header_error(
                f"relay header: expected {RELAY_HEADER_SIZE} bytes, got {len(data)}"
            )
        fields = _HEADER.unpack(data)
        try:
            service_id = service_id_from_bytes(fields[1])
        except ProtocolError as exc:
            raise _header_error(exc.message) from exc
        if fields[9] == 0:
            raise _header_error("compute_units: must be at least 1")
        # every other rule of __post_init__ holds by the struct's layout (sizes, ranges, bytes):
        # set the fields directly, not through its checks again (the relayer's hot path)
        header = object.__new__(cls)
        _SET_VERSION(header, fields[0])
        _SET_SERVICE_ID(header, service_id)
        _SET_APPLICATION(header, fields[2])
        _SET_SIGNER(header, fields[3])
        _SET_SUPPLIER(header, fields[4])
        _SET_SESSION(header, fields[5])
        _SET_PAYLOAD_HASH(header, fields[6])
        _SET_NONCE(header, fields[7])
        _SET_MAX_INDEX(header, fields[8])
        _SET_COMPUTE_UNITS(header, fields[9])
        return header


# the slots' own setters (a frozen dataclass's __setattr__ refuses; these are what its
# generated __init__ reaches through object.__setattr__), one per field, for decode
(
    _SET_VERSION,
    _SET_SERVICE_ID,
    _SET_APPLICATION,
    _SET_SIGNER,
    _SET_SUPPLIER,
    _SET_SESSION,
    _SET_PAYLOAD_HASH,
    _SET_NONCE,
    _SET_MAX_INDEX,
    _SET_COMPUTE_UNITS,
) = (vars(RelayHeader)[name].__set__ for name in _HEADER_FIELDS)


# --- EIP-712 ---------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _domain_separator(chain_id: int, settlement: bytes) -> bytes:
    return keccak256(
        DOMAIN_TYPEHASH
        + _NAME_HASH
        + _VERSION_HASH
        + chain_id.to_bytes(32, "big")
        + bytes(12)
        + settlement
    )


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain: ``name "relaynet"``, ``version "1"``, the settlement chain's id and
    the address of the contract that verifies proofs (``verifyingContract``)."""

    chain_id: int
    settlement: bytes
    separator: bytes = field(init=False, repr=False, compare=False)
    #: ``0x19 ‖ 0x01 ‖ separator``: what every digest under this domain hashes first
    digest_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _expect_uint(self.chain_id, 256, "chain_id", ErrorCode.MALFORMED_INPUT)
        _expect_len(self.settlement, ADDRESS_SIZE, "settlement", ErrorCode.MALFORMED_INPUT)
        object.__setattr__(self, "settlement", bytes(self.settlement))
        separator = _domain_separator(self.chain_id, self.settlement)
        object.__setattr__(self, "separator", separator)
        object.__setattr__(self, "digest_prefix", b"\x19\x01" + separator)

    def for_chain(self, chain_id: int) -> Domain:
        """The same verifying contract under ``chain_id``: the domain of a session whose
        recorded chain id is ``chain_id`` (DESIGN §3.5). Cached; ``self`` when unchanged."""
        if chain_id == self.chain_id:
            return self
        return _domain_for(chain_id, self.settlement)


@functools.lru_cache(maxsize=64)
def _domain_for(chain_id: int, settlement: bytes) -> Domain:
    return Domain(chain_id, settlement)


def request_digest_of_bytes(header_bytes: bytes, domain: Domain) -> bytes:
    """``request_digest`` straight from 157 encoded header bytes (no re-encoding; the
    caller has decoded them already, so they are well formed)."""
    rh = header_bytes if type(header_bytes) is bytes else bytes(header_bytes)
    if len(rh) != RELAY_HEADER_SIZE:
        raise _header_error(f"relay header: expected {RELAY_HEADER_SIZE} bytes, got {len(rh)}")
    # the header's fields, each widened to its EIP-712 word (uint → left-padded, bytes16 →
    # right-padded, address → left-padded), behind the typehash
    struct_hash = keccak256(_RELAY_STRUCT.pack(RELAY_TYPEHASH, *_HEADER.unpack(rh)))
    return keccak256(domain.digest_prefix + struct_hash)


def request_digest(header: RelayHeader, domain: Domain) -> bytes:
    """The EIP-712 digest a signer signs: ``keccak256(0x19 ‖ 0x01 ‖ domain ‖ struct)``."""
    struct_hash = keccak256(
        _RELAY_STRUCT.pack(
            RELAY_TYPEHASH,
            header.version,
            service_id_to_bytes(header.service_id),
            header.application,
            header.signer,
            header.supplier,
            header.session,
            header.payload_hash,
            header.nonce,
            header.max_index,
            header.compute_units,
        )
    )
    return keccak256(domain.digest_prefix + struct_hash)


class SessionDigester:
    """:func:`request_digest` of the headers that share their first
    :data:`RELAY_SESSION_BYTES` (one signer's relays in one session) under one domain: the
    typehash and the words of version … session are absorbed once, so a relay hashes only its
    own fields' words (one keccak block of three less, no re-encoding of the shared fields).

    >>> h = RelayHeader(1, "eth", bytes(20), bytes(20), bytes(20), 3, b"p" * 32, b"n" * 16, 0, 7)
    >>> d = Domain(1, bytes(20))
    >>> SessionDigester(h.encode(), d).digest(h.encode()) == request_digest(h, d)
    True
    """

    __slots__ = ("_lead", "_outer", "session_bytes")

    def __init__(self, header_bytes: bytes, domain: Domain) -> None:
        lead = bytes(header_bytes[:RELAY_SESSION_BYTES])
        fields = _SESSION_FIELDS.unpack(lead)
        self._lead = keccak_state(_RELAY_LEAD.pack(RELAY_TYPEHASH, *fields))
        self._outer = keccak_state(domain.digest_prefix)
        self.session_bytes = lead

    def digest(self, header_bytes: bytes) -> bytes:
        """The digest of 157 header bytes that begin with this digester's session bytes
        (ValueError otherwise: they would be hashed as another header)."""
        if len(header_bytes) != RELAY_HEADER_SIZE or not header_bytes.startswith(
            self.session_bytes
        ):
            raise ValueError("the header is not of this digester's signer and session")
        state = self._lead.copy()
        state.update(
            _RELAY_TAIL.pack(*_RELAY_FIELDS.unpack_from(header_bytes, RELAY_SESSION_BYTES))
        )
        outer = self._outer.copy()
        outer.update(state.digest())
        return outer.digest()


# --- request signatures --------------------------------------------------------------------


def sign_request(digest: bytes, key: AccountKey) -> bytes:
    """``r ‖ s ‖ v`` (65 bytes, low-s, v ∈ {27, 28}) over ``request_digest``."""
    return key.sign_digest(digest)


def _bad_signature(message: str) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.BAD_SIGNATURE)


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The address that signed ``digest``. BAD_SIGNATURE when the signature is not 65 bytes,
    ``v`` is not 27/28, ``s`` is high (> n/2) or zero, ``r`` is zero or >= n, or recovery fails
    or gives the zero address."""
    if type(digest) is not bytes or len(digest) != DIGEST_SIZE:
        _expect_len(digest, DIGEST_SIZE, "digest", ErrorCode.MALFORMED_INPUT)
        digest = bytes(digest)
    if not isinstance(signature, _BYTES_LIKE) or len(signature) != 65:
        raise _bad_signature("signature: expected 65 bytes (r ‖ s ‖ v)")
    sig = bytes(signature)
    v = sig[64]
    if v != 27 and v != 28:
        raise _bad_signature(f"signature: v must be 27 or 28, got {v}")
    r, s = sig[:32], sig[32:64]  # big-endian words of one length compare as their numbers
    if s > _HALF_N_WORD:
        raise _bad_signature("signature: high s (not low-s normalized)")
    if r == _ZERO_WORD or s == _ZERO_WORD or r >= _N_WORD:
        raise _bad_signature("signature: r or s out of range")
    address = recover_address(digest, sig, v - 27)  # reads r ‖ s, the first 64 bytes
    if address is None:
        raise _bad_signature("signature: public key recovery failed")
    if address == _ZERO_ADDRESS:  # pragma: no cover - needs a keccak preimage of zeros
        raise _bad_signature("signature: recovers to the zero address")
    return address


# --- answers and receipts --------------------------------------------------------------------


def response_hash(status: int, body: bytes) -> bytes:
    """``sha256(uint16(status) ‖ body)``; over WebSocket every frame uses status 101."""
    _expect_uint(status, 16, "status", ErrorCode.MALFORMED_INPUT)
    h = hashlib.sha256(_U16.pack(status))
    h.update(body)
    return h.digest()


def receipt_message(digest: bytes, index: int, response_hash: bytes) -> bytes:
    """``"relaynet/receipt/v1" ‖ request_digest ‖ uint64(index) ‖ response_hash``."""
    _expect_len(digest, DIGEST_SIZE, "digest", ErrorCode.MALFORMED_INPUT)
    _expect_uint(index, 64, "index", ErrorCode.MALFORMED_INPUT)
    _expect_len(response_hash, DIGEST_SIZE, "response_hash", ErrorCode.MALFORMED_INPUT)
    return RECEIPT_PREFIX + bytes(digest) + _U64.pack(index) + bytes(response_hash)


def sign_receipt(key: ReceiptKey, digest: bytes, index: int, response_hash: bytes) -> bytes:
    """The supplier's 64-byte ed25519 receipt over :func:`receipt_message`."""
    return key.sign(receipt_message(digest, index, response_hash))


def verify_receipt(
    public_key: bytes, digest: bytes, index: int, response_hash: bytes, signature: bytes
) -> None:
    """Raise BAD_RECEIPT unless ``signature`` is the receipt key's (libsodium strict
    verification) over this digest, index and response hash."""
    try:
        message = receipt_message(digest, index, response_hash)
    except ProtocolError as exc:
        raise ProtocolError(f"receipt: {exc.message}", code=ErrorCode.BAD_RECEIPT) from exc
    if not isinstance(public_key, bytes | bytearray) or not isinstance(
        signature, bytes | bytearray
    ):
        raise ProtocolError("receipt: key and signature must be bytes", code=ErrorCode.BAD_RECEIPT)
    if not verify_ed25519(public_key, message, signature):
        raise ProtocolError("receipt: signature does not verify", code=ErrorCode.BAD_RECEIPT)


# --- leaves, keys, mining ----------------------------------------------------------------------


def encode_leaf(
    header: bytes, request_sig: bytes, index: int, response_hash: bytes, receipt_sig: bytes
) -> bytes:
    """``RH ‖ request_sig ‖ uint64(index) ‖ response_hash ‖ receipt_sig`` (326 bytes)."""
    m = ErrorCode.MALFORMED_INPUT
    _expect_len(header, RELAY_HEADER_SIZE, "header", m)
    _expect_len(request_sig, REQUEST_SIG_SIZE, "request_sig", m)
    _expect_uint(index, 64, "index", m)
    _expect_len(response_hash, DIGEST_SIZE, "response_hash", m)
    _expect_len(receipt_sig, RECEIPT_SIG_SIZE, "receipt_sig", m)
    return b"".join(
        (
            bytes(header),
            bytes(request_sig),
            _U64.pack(index),
            bytes(response_hash),
            bytes(receipt_sig),
        )
    )


def receipted_leaf(
    key: ReceiptKey,
    header: bytes,
    request_sig: bytes,
    digest: bytes,
    index: int,
    status: int,
    body: bytes,
) -> tuple[bytes, bytes, bytes]:
    """``(response_hash, receipt_sig, leaf)`` of an answer: :func:`response_hash`,
    :func:`sign_receipt` and :func:`encode_leaf` in one step, for a relayer whose inputs are
    its own (header and signature split from a ``Relay-Request`` of checked length, digest from
    :func:`request_digest_of_bytes`): their sizes are not checked again; a status or index out
    of range still fails (``struct.error``).

    >>> k = ReceiptKey.generate()
    >>> h = RelayHeader(1, "eth", bytes(20), bytes(20), bytes(20), 3, bytes(32), bytes(16), 0, 7)
    >>> rh, sig, leaf = receipted_leaf(k, h.encode(), bytes(65), bytes(32), 2, 200, b"{}")
    >>> rh == response_hash(200, b"{}"), sig == sign_receipt(k, bytes(32), 2, rh)
    (True, True)
    >>> leaf == encode_leaf(h.encode(), bytes(65), 2, rh, sig)
    True
    """
    h = hashlib.sha256(_U16.pack(status))
    h.update(body)
    rh = h.digest()
    u64 = _INDEX_0 if index == 0 else _U64.pack(index)
    sig = key.sign(b"".join((RECEIPT_PREFIX, digest, u64, rh)))
    return rh, sig, b"".join((header, request_sig, u64, rh, sig))


@dataclass(frozen=True)
class Leaf:
    """A decoded 326-byte leaf (what a proof opens)."""

    header: RelayHeader
    header_bytes: bytes
    request_sig: bytes
    index: int
    response_hash: bytes
    receipt_sig: bytes

    @classmethod
    def decode(cls, data: bytes) -> Leaf:
        """MALFORMED_INPUT on a wrong length; the header's own codes for a bad header."""
        _expect_len(data, LEAF_SIZE, "leaf", ErrorCode.MALFORMED_INPUT)
        raw = bytes(data)
        header_bytes = raw[:RELAY_HEADER_SIZE]
        o = RELAY_HEADER_SIZE
        request_sig = raw[o : o + REQUEST_SIG_SIZE]
        o += REQUEST_SIG_SIZE
        (index,) = _U64.unpack_from(raw, o)
        o += 8
        rh = raw[o : o + DIGEST_SIZE]
        o += DIGEST_SIZE
        receipt_sig = raw[o:]
        return cls(
            RelayHeader.decode(header_bytes), header_bytes, request_sig, index, rh, receipt_sig
        )

    def encode(self) -> bytes:
        return encode_leaf(
            self.header_bytes, self.request_sig, self.index, self.response_hash, self.receipt_sig
        )


_LEAF_CU: Final = slice(RELAY_HEADER_SIZE - 4, RELAY_HEADER_SIZE)


def leaf_compute_units(leaf: bytes) -> int:
    """The compute units a leaf's relay header states (the header's last field), without
    decoding the rest — how a log's recorded value is summed.

    >>> h = RelayHeader(1, "eth", bytes(20), bytes(20), bytes(20), 3, bytes(32), bytes(16), 0, 7)
    >>> leaf_compute_units(encode_leaf(h.encode(), bytes(65), 0, bytes(32), bytes(64)))
    7
    """
    _expect_len(leaf, LEAF_SIZE, "leaf", ErrorCode.MALFORMED_INPUT)
    return int.from_bytes(leaf[_LEAF_CU], "big")


def relay_key(digest: bytes, index: int) -> bytes:
    """``sha256(request_digest ‖ uint64(index))``: one trie key per signed request and push."""
    if type(index) is int and index == 0 and type(digest) is bytes and len(digest) == DIGEST_SIZE:
        return hashlib.sha256(digest + _INDEX_0).digest()  # every plain relay's key
    _expect_len(digest, DIGEST_SIZE, "digest", ErrorCode.MALFORMED_INPUT)
    _expect_uint(index, 64, "index", ErrorCode.MALFORMED_INPUT)
    return hashlib.sha256(bytes(digest) + _U64.pack(index)).digest()


def value_hash(leaf: bytes) -> bytes:
    """``sha256(leaf)``."""
    _expect_len(leaf, LEAF_SIZE, "leaf", ErrorCode.MALFORMED_INPUT)
    return hashlib.sha256(leaf).digest()


def is_mined(relay_key: bytes, h_g: bytes, difficulty_bits: int) -> bool:
    """True when the top ``difficulty_bits`` bits of ``sha256(relay_key ‖ H_g)`` are zero
    (always true at difficulty 0)."""
    _expect_len(relay_key, DIGEST_SIZE, "relay_key", ErrorCode.MALFORMED_INPUT)
    _expect_len(h_g, DIGEST_SIZE, "h_g", ErrorCode.MALFORMED_INPUT)
    if type(difficulty_bits) is not int or not 0 <= difficulty_bits <= 256:
        raise ProtocolError("difficulty_bits: expected an integer in [0, 256]")
    if difficulty_bits == 0:
        return True
    h = hashlib.sha256(bytes(relay_key) + bytes(h_g)).digest()
    return int.from_bytes(h, "big") >> (256 - difficulty_bits) == 0


# --- transport ---------------------------------------------------------------------------------


def _b64decode(value: str, what: str, code: ErrorCode) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: expected a base64 string", code=code)
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise ProtocolError(f"{what}: not padded base64 (RFC 4648 §4)", code=code) from exc


def encode_relay_request(header_bytes: bytes, request_sig: bytes) -> str:
    """The ``Relay-Request`` HTTP header: padded base64 of ``RH ‖ request_sig``."""
    _expect_len(header_bytes, RELAY_HEADER_SIZE, "header", ErrorCode.MALFORMED_HEADER)
    _expect_len(request_sig, REQUEST_SIG_SIZE, "request_sig", ErrorCode.MALFORMED_HEADER)
    return binascii.b2a_base64(bytes(header_bytes) + bytes(request_sig), newline=False).decode()


def relay_request_bytes(value: str) -> bytes:
    """The ``RH ‖ request_sig`` bytes of a ``Relay-Request`` header, nothing judged yet;
    MALFORMED_HEADER on bad base64 or length."""
    raw = _b64decode(value, "Relay-Request", ErrorCode.MALFORMED_HEADER)
    if len(raw) != RELAY_HEADER_SIZE + REQUEST_SIG_SIZE:
        raise _header_error(
            f"Relay-Request: expected {RELAY_HEADER_SIZE + REQUEST_SIG_SIZE} bytes, got {len(raw)}"
        )
    return raw


def decode_relay_request(value: str) -> tuple[RelayHeader, bytes, bytes]:
    """Parse a ``Relay-Request`` header into ``(header, header_bytes, request_sig)``.

    MALFORMED_HEADER on bad base64 or length; the header's own codes for its fields. The
    signature is only split off here; :func:`recover_signer` judges it.
    """
    raw = relay_request_bytes(value)
    header_bytes = raw[:RELAY_HEADER_SIZE]
    return RelayHeader.decode(header_bytes), header_bytes, raw[RELAY_HEADER_SIZE:]


def header_relay_fields(header_bytes: bytes) -> tuple[bytes, bytes, int, int]:
    """``(payload_hash, nonce, max_index, compute_units)`` of header bytes whose first
    :data:`RELAY_SESSION_BYTES` decoded before (the same signer's earlier relay in the same
    session): all :meth:`RelayHeader.decode` still has to check. MALFORMED_HEADER for zero
    compute units.

    >>> h = RelayHeader(1, "eth", bytes(20), bytes(20), bytes(20), 3, b"p" * 32, b"n" * 16, 0, 7)
    >>> header_relay_fields(h.encode())[2:]
    (0, 7)
    """
    fields = _RELAY_FIELDS.unpack_from(header_bytes, RELAY_SESSION_BYTES)
    if fields[3] == 0:
        raise _header_error("compute_units: must be at least 1")
    return fields  # type: ignore[no-any-return]


def encode_receipt(response_hash: bytes, receipt_sig: bytes) -> str:
    """The ``Relay-Receipt`` HTTP header: padded base64 of ``response_hash ‖ receipt_sig``."""
    if not (
        type(response_hash) is bytes
        and len(response_hash) == DIGEST_SIZE
        and type(receipt_sig) is bytes
        and len(receipt_sig) == RECEIPT_SIG_SIZE
    ):  # the common case (a relayer's own hash and signature) skips the checks' calls
        _expect_len(response_hash, DIGEST_SIZE, "response_hash", ErrorCode.MALFORMED_INPUT)
        _expect_len(receipt_sig, RECEIPT_SIG_SIZE, "receipt_sig", ErrorCode.MALFORMED_INPUT)
    return binascii.b2a_base64(bytes(response_hash) + bytes(receipt_sig), newline=False).decode()


def decode_receipt(value: str) -> tuple[bytes, bytes]:
    """``(response_hash, receipt_sig)`` from a ``Relay-Receipt`` header; BAD_RECEIPT if the
    header is not padded base64 of 96 bytes (the supplier's answer is unusable)."""
    raw = _b64decode(value, "Relay-Receipt", ErrorCode.BAD_RECEIPT)
    if len(raw) != DIGEST_SIZE + RECEIPT_SIG_SIZE:
        raise ProtocolError(
            f"Relay-Receipt: expected {DIGEST_SIZE + RECEIPT_SIG_SIZE} bytes, got {len(raw)}",
            code=ErrorCode.BAD_RECEIPT,
        )
    return raw[:DIGEST_SIZE], raw[DIGEST_SIZE:]


def encode_ws_frame(index: int, response_hash: bytes, receipt_sig: bytes, body: bytes) -> bytes:
    """A relayer's WebSocket frame: ``uint64(index) ‖ response_hash ‖ receipt_sig ‖ body``."""
    m = ErrorCode.MALFORMED_INPUT
    _expect_uint(index, 64, "index", m)
    _expect_len(response_hash, DIGEST_SIZE, "response_hash", m)
    _expect_len(receipt_sig, RECEIPT_SIG_SIZE, "receipt_sig", m)
    return _U64.pack(index) + bytes(response_hash) + bytes(receipt_sig) + bytes(body)


def decode_ws_frame(data: bytes) -> tuple[int, bytes, bytes, bytes]:
    """``(index, response_hash, receipt_sig, body)``; BAD_RECEIPT when the frame is shorter
    than its 104-byte receipt prefix."""
    if not isinstance(data, _BYTES_LIKE) or len(data) < WS_FRAME_PREFIX_SIZE:
        raise ProtocolError(
            f"WebSocket frame: shorter than its {WS_FRAME_PREFIX_SIZE}-byte receipt prefix",
            code=ErrorCode.BAD_RECEIPT,
        )
    raw = bytes(data)
    (index,) = _U64.unpack_from(raw, 0)
    return (
        index,
        raw[8 : 8 + DIGEST_SIZE],
        raw[8 + DIGEST_SIZE : WS_FRAME_PREFIX_SIZE],
        raw[WS_FRAME_PREFIX_SIZE:],
    )
