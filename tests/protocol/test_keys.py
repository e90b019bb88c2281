"""protocol.keys: keccak256, secp256k1 account keys, ed25519 receipt keys, keystore v3."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from eth_account import Account
from eth_hash.auto import keccak as eth_keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol.errors import ErrorCode, ProtocolError
from protocol.keys import (
    SECP256K1_N,
    AccountKey,
    KeystoreError,
    ReceiptKey,
    address_of_public_key,
    decrypt_keystore,
    encrypt_keystore,
    keccak256,
    keccak_state,
    recover_address,
    verify_ed25519,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


@given(st.binary(max_size=600))
def test_keccak_matches_eth_hash(data: bytes) -> None:
    assert keccak256(data) == eth_keccak(data)
    assert keccak256(bytearray(data)) == eth_keccak(data)  # type: ignore[arg-type]


def test_keccak_known_answers() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    # the ERC-20 Transfer event topic
    assert keccak256(b"Transfer(address,address,uint256)").hex() == (
        "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    )


def _in_threads(work: Callable[[int], None], count: int = 4) -> None:
    """``work(0)`` … ``work(count - 1)`` at once, one thread each; returns when all ended."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_keccak_is_thread_safe() -> None:
    inputs = [bytes([i]) * (i * 7 % 300) for i in range(64)]
    expected = [eth_keccak(x) for x in inputs]
    failures: list[int] = []

    def work(_thread: int) -> None:
        for _ in range(50):
            for i, x in enumerate(inputs):
                if keccak256(x) != expected[i]:
                    failures.append(i)

    _in_threads(work)
    assert failures == []


def test_keccak_state_forks_a_shared_prefix() -> None:
    prefix = keccak_state(b"\x01" * 200)  # more than one 136-byte block absorbed
    for tail in (b"", b"x", b"\x02" * 300):
        fork = prefix.copy()
        fork.update(tail)
        assert fork.digest() == eth_keccak(b"\x01" * 200 + tail)
    assert prefix.digest() == eth_keccak(b"\x01" * 200)  # the prefix itself is unchanged


def test_recovery_and_receipt_signing_are_thread_safe() -> None:
    """Signing, recovery and receipts reuse C buffers per thread; cffi releases the GIL in
    every C call, so threads sharing one buffer would read each other's results."""
    accounts = [AccountKey.generate() for _ in range(4)]
    receipts = [ReceiptKey.generate() for _ in range(4)]
    messages = [bytes([i]) * (40 + 100 * i) for i in range(4)]  # the buffer grows for two
    digests = [keccak256(bytes([i])) for i in range(4)]
    signed = [(a.sign_digest(d), a.address) for a, d in zip(accounts, digests, strict=True)]
    expected = [
        SigningKey(r.seed).sign(m).signature for r, m in zip(receipts, messages, strict=True)
    ]
    failures: list[int] = []

    def work(i: int) -> None:
        sig, address = signed[i]
        for _ in range(300):
            if accounts[i].sign_digest(digests[i]) != sig:
                failures.append(i)
            if recover_address(digests[i], sig[:64], sig[64] - 27) != address:
                failures.append(i)
            if receipts[i].sign(messages[i]) != expected[i]:
                failures.append(i)

    _in_threads(work)
    assert failures == []


def test_recover_address_refuses_a_short_signature() -> None:
    """The C call reads 64 bytes of ``rs``: a shorter one is refused before it."""
    key = AccountKey(KEY)
    digest = keccak256(b"m")
    sig = key.sign_digest(digest)
    assert recover_address(digest, sig, sig[64] - 27) == key.address  # 65 bytes: r ‖ s read
    with pytest.raises(ValueError):
        recover_address(digest, sig[:63], 0)


def test_account_key_matches_eth_account() -> None:
    key = AccountKey(KEY)
    assert key.private_key == KEY
    assert "0x" + key.address.hex() == Account.from_key(KEY).address.lower()
    assert address_of_public_key(key.public_key) == key.address
    assert address_of_public_key(b"\x04" + key.public_key) == key.address


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x01" * 31, b"\x01" * 33, bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32],
)
def test_account_key_refuses_bad_scalars(bad: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        AccountKey(bad)
    assert err.value.code is ErrorCode.MALFORMED_INPUT


def test_account_key_refuses_non_bytes() -> None:
    with pytest.raises(ProtocolError):
        AccountKey(KEY.hex())  # type: ignore[arg-type]


def test_generated_keys_differ_and_work() -> None:
    a, b = AccountKey.generate(), AccountKey.generate()
    assert a != b and a.address != b.address
    assert AccountKey(a.private_key) == a
    assert hash(AccountKey(a.private_key)) == hash(a)


def test_keys_stay_out_of_reprs() -> None:
    key = AccountKey(KEY)
    receipt = ReceiptKey(b"\x07" * 32)
    for text in (repr(key), str(key), f"{key}", repr([key]), repr(receipt), str(receipt)):
        assert KEY.hex() not in text.lower()
        assert (b"\x07" * 32).hex() not in text
    assert key.address.hex() in repr(key)
    assert receipt.public_key.hex() in repr(receipt)


@settings(max_examples=30)
@given(st.binary(min_size=32, max_size=32))
def test_sign_digest_is_low_s_and_matches_eth_account(digest: bytes) -> None:
    key = AccountKey(KEY)
    sig = key.sign_digest(digest)
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
    # RFC 6979 nonces: the same signature eth-account produces for the raw hash
    theirs = Account.unsafe_sign_hash(digest, KEY)
    assert sig == theirs.signature


def test_sign_digest_wants_32_bytes() -> None:
    with pytest.raises(ProtocolError):
        AccountKey(KEY).sign_digest(b"\x00" * 31)


def test_receipt_key_matches_pynacl() -> None:
    seed = bytes(range(32))
    key = ReceiptKey(seed)
    theirs = SigningKey(seed)
    assert key.seed == seed
    assert key.public_key == bytes(theirs.verify_key)
    assert key.sign(b"hello") == theirs.sign(b"hello").signature
    assert verify_ed25519(key.public_key, b"hello", key.sign(b"hello"))
    assert not verify_ed25519(key.public_key, b"hellO", key.sign(b"hello"))
    assert ReceiptKey(seed) == key and ReceiptKey.generate() != key


def test_strict_ed25519_refuses_bad_inputs() -> None:
    key = ReceiptKey.generate()
    sig = key.sign(b"m")
    assert not verify_ed25519(key.public_key[:31], b"m", sig)
    assert not verify_ed25519(key.public_key, b"m", sig[:63])
    # a small-order public key (the identity point) with the all-identity signature
    identity = b"\x01" + bytes(31)
    assert not verify_ed25519(identity, b"m", identity + bytes(32))
    # non-canonical s (s + L) is refused by libsodium's strict check
    ell = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little")
    if s + ell < 2**256:
        assert not verify_ed25519(key.public_key, b"m", sig[:32] + (s + ell).to_bytes(32, "little"))


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_receipt_key_wants_32_byte_seed(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        ReceiptKey(bad)


@pytest.mark.parametrize("kdf", ["pbkdf2", "scrypt"])
def test_keystore_round_trip(kdf: str) -> None:
    iterations = 2 if kdf == "scrypt" else 16
    data = encrypt_keystore(KEY, "correct horse", kdf=kdf, iterations=iterations)  # type: ignore[arg-type]
    document = json.loads(data)
    assert document["version"] == 3 and document["crypto"]["kdf"] == kdf
    assert KEY.hex() not in data.decode()
    assert decrypt_keystore(data, "correct horse") == KEY
    # eth-account reads what we write
    assert bytes(Account.decrypt(document, "correct horse")) == KEY


def test_keystore_wrong_passphrase() -> None:
    data = encrypt_keystore(KEY, "right", kdf="pbkdf2", iterations=16)
    with pytest.raises(KeystoreError) as err:
        decrypt_keystore(data, "wrong")
    assert err.value.code is ErrorCode.MALFORMED_INPUT
    assert KEY.hex() not in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"version": 2}',
        b'{"version": 3}',
        b"\xff\xfe",
        b'{"version": 3, "crypto": 1}',
    ],
)
def test_keystore_garbage(data: bytes) -> None:
    with pytest.raises(KeystoreError):
        decrypt_keystore(data, "x")


def test_keystore_refuses_invalid_key() -> None:
    with pytest.raises(ProtocolError):
        encrypt_keystore(bytes(32), "x", kdf="pbkdf2", iterations=16)
