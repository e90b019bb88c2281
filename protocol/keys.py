"""Keys and the hashes that identify them (DESIGN §3.3, "Keys").

Owns: ``keccak256``; the secp256k1 account key (:class:`AccountKey`: address derivation and
recoverable, low-s signatures over 32-byte digests, via libsecp256k1/coincurve); the ed25519
receipt key (:class:`ReceiptKey`, libsodium via PyNaCl); and the Ethereum keystore v3 format
(:func:`encrypt_keystore` / :func:`decrypt_keystore`), as bytes in and bytes out.

Key material never appears in ``repr``/``str``: logging a key shows its public half only.

``keccak256`` is safe-pysha3's C ``keccak_256`` (one C object per call, ~1 µs on 64 bytes);
without it, pycryptodome's C keccak called directly with one reusable state per thread (about
3x faster than ``eth_hash``/``Crypto.Hash.keccak`` objects on 64–300-byte inputs, see
``bench/bench_crypto.py``), and ``eth_hash`` if pycryptodome's raw API moves.

Signing and recovery call libsecp256k1 (through coincurve's own cffi binding) and libsodium
(through PyNaCl's) directly on the 32-byte digest and the message: the same C functions the
libraries' wrappers call, without their per-call conversions and key objects.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

import coincurve
import nacl.bindings
from coincurve._libsecp256k1 import ffi as _secp_ffi
from coincurve._libsecp256k1 import lib as _secp_lib
from coincurve.context import GLOBAL_CONTEXT as _SECP_CONTEXT
from nacl._sodium import ffi as _sodium_ffi
from nacl._sodium import lib as _sodium_lib

from protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "SECP256K1_N",
    "AccountKey",
    "KeccakState",
    "KeystoreError",
    "ReceiptKey",
    "address_of_public_key",
    "decrypt_keystore",
    "encrypt_keystore",
    "keccak256",
    "keccak_state",
    "recover_address",
    "verify_ed25519",
]

#: The order of the secp256k1 group.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# --- keccak256 ---------------------------------------------------------------------------


def _pycryptodome_keccak() -> Callable[[bytes], bytes]:
    """keccak256 straight over pycryptodome's C functions, one reusable state per thread."""
    from Crypto.Hash import keccak as _keccak_module
    from Crypto.Util import _raw_api

    lib: Any = vars(_keccak_module)["_raw_keccak_lib"]
    ffi: Any = _raw_api.ffi  # AttributeError under the ctypes backend: fall back
    for name in ("keccak_init", "keccak_reset", "keccak_absorb", "keccak_digest"):
        getattr(lib, name)
    local = threading.local()

    def new_state() -> tuple[Any, Any, Any]:
        pp = ffi.new("void**")
        if lib.keccak_init(pp, 64, 24):  # capacity 512 bits, 24 rounds
            raise MemoryError("keccak_init failed")
        state = ffi.gc(pp[0], lib.keccak_destroy)
        out = ffi.new("uint8_t[32]")
        local.state = (state, out, ffi.buffer(out))
        return local.state  # type: ignore[no-any-return]

    def keccak(data: bytes) -> bytes:
        try:
            state, out, buf = local.state
        except AttributeError:
            state, out, buf = new_state()
        if type(data) is not bytes:
            data = bytes(data)
        lib.keccak_reset(state)
        lib.keccak_absorb(state, data, len(data))
        lib.keccak_digest(state, out, 32, 0x01)  # 0x01: keccak padding, not SHA-3's 0x06
        return buf[:]  # type: ignore[no-any-return]

    if keccak(b"") != bytes.fromhex(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    ):  # pragma: no cover - a changed C API must not go unnoticed
        raise ImportError("pycryptodome keccak self-test failed")
    return keccak


def _pysha3_keccak() -> Callable[[bytes], bytes]:
    """keccak256 through safe-pysha3's C object (the fastest per call on short inputs)."""
    from sha3 import keccak_256

    def keccak(data: bytes) -> bytes:
        return keccak_256(data).digest()  # type: ignore[no-any-return]

    if keccak(b"") != bytes.fromhex(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    ):  # pragma: no cover - a keccak that is not Ethereum's must not go unnoticed
        raise ImportError("safe-pysha3 keccak self-test failed")
    return keccak


def _eth_hash_keccak() -> Callable[[bytes], bytes]:  # pragma: no cover - fallback only
    from eth_hash.auto import keccak as eth_keccak

    def keccak(data: bytes) -> bytes:
        return bytes(eth_keccak(bytes(data)))

    return keccak


try:
    _keccak = _pysha3_keccak()
except ImportError:  # pragma: no cover - fallback only
    try:
        _keccak = _pycryptodome_keccak()
    except (ImportError, AttributeError, KeyError):
        _keccak = _eth_hash_keccak()


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (not NIST SHA3-256).

    >>> keccak256(b"").hex()[:16]
    'c5d2460186f7233c'
    """
    return _keccak(data)


class KeccakState(Protocol):
    """A keccak256 in progress: ``update`` absorbs more, ``copy`` forks it, ``digest`` ends a
    copy of it (the state stays usable)."""

    def update(self, data: bytes) -> None: ...

    def copy(self) -> KeccakState: ...

    def digest(self) -> bytes: ...


class _BufferedKeccak:  # pragma: no cover - fallback only (no incremental C keccak)
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)

    def update(self, data: bytes) -> None:
        self._data += data

    def copy(self) -> _BufferedKeccak:
        return _BufferedKeccak(self._data)

    def digest(self) -> bytes:
        return keccak256(self._data)


def _state_factory() -> Callable[[bytes], KeccakState]:
    try:
        from sha3 import keccak_256
    except ImportError:  # pragma: no cover - fallback only
        return _BufferedKeccak
    return keccak_256  # type: ignore[no-any-return]


_new_state = _state_factory()


def keccak_state(data: bytes = b"") -> KeccakState:
    """A keccak256 that has absorbed ``data``: hash many inputs sharing a prefix by absorbing
    the prefix once and ``copy()``-ing the state for each.

    >>> s = keccak_state(b"relay")
    >>> t = s.copy()
    >>> t.update(b"net")
    >>> t.digest() == keccak256(b"relaynet"), s.digest() == keccak256(b"relay")
    (True, True)
    """
    return _new_state(data)


# --- secp256k1 accounts ------------------------------------------------------------------

_CTX: Any = _SECP_CONTEXT.ctx
_RECOVERABLE = "secp256k1_ecdsa_recoverable_signature *"
_UNCOMPRESSED: Final = _secp_lib.SECP256K1_EC_UNCOMPRESSED


_SCRATCH = threading.local()  # per thread: cffi releases the GIL inside each C call


def _recover_buffers() -> tuple[Any, Any, Any, Any, Any]:
    """This thread's reusable C objects for :func:`recover_address`, made on its first call
    (one ``ffi.new`` each per call was ~1 µs a recovery)."""
    out = _secp_ffi.new("unsigned char[65]")
    _SCRATCH.recover = (
        _secp_ffi.new(_RECOVERABLE),
        _secp_ffi.new("secp256k1_pubkey *"),
        out,
        _secp_ffi.new("size_t *"),
        _secp_ffi.buffer(out),
    )
    return _SCRATCH.recover  # type: ignore[no-any-return]


def _sign_digest_buffers() -> tuple[Any, Any, Any, Any]:
    """This thread's reusable C objects for :meth:`AccountKey.sign_digest`."""
    out = _secp_ffi.new("unsigned char[65]")
    _SCRATCH.sign_digest = (
        _secp_ffi.new(_RECOVERABLE),
        out,
        _secp_ffi.new("int *"),
        _secp_ffi.buffer(out),
    )
    return _SCRATCH.sign_digest  # type: ignore[no-any-return]


def recover_address(digest: bytes, rs: bytes, recid: int) -> bytes | None:
    """The 20-byte address whose key signed the 32-byte ``digest`` with the compact signature
    ``rs`` (``r ‖ s``: its first 64 bytes are read) and recovery id ``recid`` (0–3); None when
    no key does. The caller checks the signature's form (low s, ranges); libsecp256k1 checks
    the rest."""
    try:
        sig, public, out, size, view = _SCRATCH.recover
    except AttributeError:
        sig, public, out, size, view = _recover_buffers()
    if len(rs) < 64:  # C reads 64 bytes from it
        raise ValueError("rs: expected at least 64 bytes (r ‖ s)")
    if not _secp_lib.secp256k1_ecdsa_recoverable_signature_parse_compact(_CTX, sig, rs, recid):
        return None
    if not _secp_lib.secp256k1_ecdsa_recover(_CTX, public, sig, digest):
        return None
    size[0] = 65
    _secp_lib.secp256k1_ec_pubkey_serialize(_CTX, out, size, public, _UNCOMPRESSED)
    return _keccak(view[1:])[12:]  # type: ignore[no-any-return]


def address_of_public_key(public_key: bytes) -> bytes:
    """The 20-byte address of a 64-byte (x‖y) or 65-byte (0x04‖x‖y) public key."""
    if len(public_key) == 65 and public_key[0] == 4:
        public_key = public_key[1:]
    if len(public_key) != 64:
        raise ProtocolError("public key: expected 64 or 65 bytes (uncompressed)")
    return keccak256(public_key)[12:]


class AccountKey:
    """A secp256k1 account: the on-chain identity of an app, gateway, supplier or owner.

    ``sign_digest`` returns ``r ‖ s ‖ v`` (65 bytes) with ``s <= n/2`` and ``v`` in {27, 28}.
    """

    __slots__ = ("_address", "_key", "_secret")

    def __init__(self, private_key: bytes) -> None:
        if not isinstance(private_key, bytes | bytearray) or len(private_key) != 32:
            raise ProtocolError("private key: expected 32 bytes")
        scalar = int.from_bytes(private_key, "big")
        if not 0 < scalar < SECP256K1_N:
            raise ProtocolError("private key: out of range for secp256k1")
        self._secret = bytes(private_key)
        self._key = coincurve.PrivateKey(self._secret)
        self._address = address_of_public_key(self._key.public_key.format(compressed=False))

    @classmethod
    def generate(cls) -> AccountKey:
        """A fresh random key (``secrets``)."""
        while True:
            candidate = secrets.token_bytes(32)
            if 0 < int.from_bytes(candidate, "big") < SECP256K1_N:
                return cls(candidate)

    @property
    def private_key(self) -> bytes:
        return bytes(self._key.secret)

    @property
    def public_key(self) -> bytes:
        """The 64-byte uncompressed public key ``x ‖ y``."""
        return bytes(self._key.public_key.format(compressed=False)[1:])

    @property
    def address(self) -> bytes:
        return self._address

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest as-is (no further hashing): ``r ‖ s ‖ v``, low-s, v ∈ {27, 28}."""
        if len(digest) != 32:
            raise ProtocolError("digest: expected 32 bytes")
        # libsecp256k1's own signing (RFC 6979 nonce), as coincurve's sign_recoverable calls
        # it; its signatures are always low-s ("lower-S form", secp256k1.h)
        try:
            sig, out, recid, view = _SCRATCH.sign_digest
        except AttributeError:
            sig, out, recid, view = _sign_digest_buffers()
        if not _secp_lib.secp256k1_ecdsa_sign_recoverable(
            _CTX, sig, bytes(digest), self._secret, _secp_ffi.NULL, _secp_ffi.NULL
        ):  # pragma: no cover - a valid key signs every digest
            raise ProtocolError("secp256k1 signing failed")
        _secp_lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(_CTX, out, recid, sig)
        out[64] = 27 + recid[0]
        return view[:]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountKey):
            return NotImplemented
        return secrets.compare_digest(self.private_key, other.private_key)

    def __hash__(self) -> int:
        return hash(self._address)

    def __repr__(self) -> str:
        return f"AccountKey(address=0x{self._address.hex()})"

    __str__ = __repr__


# --- ed25519 receipts ----------------------------------------------------------------------


def _sign_buffer(size: int) -> tuple[Any, Any]:
    """This thread's reusable output buffer for ``crypto_sign`` (signature ‖ message), at
    least ``size`` bytes (receipts are ~160; a longer message gets a fresh one)."""
    kept = getattr(_SCRATCH, "sign", None)
    if kept is None or kept[2] < size:
        signed = _sodium_ffi.new("unsigned char[]", max(size, 256))
        kept = _SCRATCH.sign = (signed, _sodium_ffi.buffer(signed), max(size, 256))
    return kept[0], kept[1]


class ReceiptKey:
    """A supplier's ed25519 receipt key (32-byte seed); signs with libsodium."""

    __slots__ = ("_public_key", "_secret")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
            raise ProtocolError("receipt key seed: expected 32 bytes")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(bytes(seed))
        self._public_key: bytes = public
        self._secret: bytes = secret  # libsodium's 64-byte form: seed ‖ public key

    @classmethod
    def generate(cls) -> ReceiptKey:
        return cls(secrets.token_bytes(32))

    @property
    def seed(self) -> bytes:
        return self._secret[:32]

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature of ``message`` (libsodium's ``crypto_sign``, as
        PyNaCl calls it, keeping only the signature)."""
        if type(message) is not bytes:
            message = bytes(message)
        size = len(message)
        signed, view = _sign_buffer(size + 64)
        if _sodium_lib.crypto_sign(signed, _sodium_ffi.NULL, message, size, self._secret):
            raise ProtocolError("ed25519 signing failed")  # pragma: no cover - never fails
        return view[:64]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReceiptKey):
            return NotImplemented
        return secrets.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self._public_key)

    def __repr__(self) -> str:
        return f"ReceiptKey(public_key=0x{self._public_key.hex()})"

    __str__ = __repr__


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """libsodium's strict ed25519 verification (canonical, no small-order keys)."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    # libsodium's crypto_sign_open as PyNaCl calls it, without its copy of the message out
    signed = bytes(signature) + bytes(message)
    opened = _sodium_ffi.new("unsigned char[]", len(signed))
    rc: int = _sodium_lib.crypto_sign_open(
        opened, _sodium_ffi.NULL, signed, len(signed), bytes(public_key)
    )
    return rc == 0


# --- keystore v3 -----------------------------------------------------------------------------


class KeystoreError(ProtocolError):
    """A keystore that cannot be read: not keystore JSON, or the wrong passphrase."""

    code = ErrorCode.MALFORMED_INPUT


def encrypt_keystore(
    private_key: bytes,
    passphrase: str,
    *,
    kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
    iterations: int | None = None,
) -> bytes:
    """An Ethereum keystore v3 JSON document (UTF-8 bytes) holding ``private_key``.

    ``kdf`` is ``"scrypt"`` (default, eth-account's cost) or ``"pbkdf2"``; ``iterations``
    lowers the cost (tests only).
    """
    key = AccountKey(private_key)  # validates the key
    from eth_account import Account

    document = Account.encrypt(key.private_key, passphrase, kdf=kdf, iterations=iterations)
    return json.dumps(document, sort_keys=True).encode("utf-8")


#: Upper bounds on key-derivation cost, so a corrupt keystore cannot stall a process for hours
#: (geth's "standard" scrypt is n=2**18, r=8, p=1; eth-account's pbkdf2 is c=1,000,000).
_MAX_SCRYPT_N = 1 << 20
_MAX_SCRYPT_RP = 64
_MAX_PBKDF2_C = 10_000_000


def _check_kdf_cost(document: dict[str, Any]) -> None:
    crypto = document.get("crypto", document.get("Crypto"))
    params = crypto.get("kdfparams") if isinstance(crypto, dict) else None
    if not isinstance(params, dict):
        raise KeystoreError("keystore: missing crypto.kdfparams")
    limits = {
        "n": _MAX_SCRYPT_N,
        "r": _MAX_SCRYPT_RP,
        "p": _MAX_SCRYPT_RP,
        "c": _MAX_PBKDF2_C,
        "dklen": 64,
    }
    for name, limit in limits.items():
        value = params.get(name)
        if value is not None and (type(value) is not int or not 0 < value <= limit):
            raise KeystoreError(f"keystore: kdfparams.{name} must be an integer in [1, {limit}]")


def decrypt_keystore(data: bytes, passphrase: str) -> bytes:
    """The 32-byte private key inside a keystore v3 document; KeystoreError otherwise."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeystoreError("keystore: not JSON") from exc
    if not isinstance(document, dict) or document.get("version") != 3:
        raise KeystoreError("keystore: not an Ethereum keystore v3 document")
    _check_kdf_cost(document)
    from eth_account import Account

    try:
        key = bytes(Account.decrypt(document, passphrase))
    except ValueError as exc:
        # eth-keyfile says "MAC mismatch" for a wrong passphrase, or names the bad field.
        raise KeystoreError(f"keystore: cannot decrypt ({exc})") from exc
    except (KeyError, TypeError, AttributeError, AssertionError) as exc:
        # eth-keyfile indexes and asserts on the document's fields as it goes.
        raise KeystoreError(f"keystore: missing or malformed field {exc!r}") from exc
    AccountKey(key)  # a keystore holding an invalid key is refused too
    return key
