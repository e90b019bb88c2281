"""Key files: keystore v3 and receipt keys round-trip, mode 0600 enforced, passphrases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from protocol.keys import AccountKey, ReceiptKey
from relayer.keyfiles import (
    KeyFileError,
    read_account_key,
    read_receipt_key,
    resolve_passphrase,
    write_account_key,
    write_receipt_key,
)


def test_keystore_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = AccountKey.generate()
    path = tmp_path / "keys" / "account.json"
    old = os.umask(0)  # even a permissive umask must not widen the file
    try:
        write_account_key(path, key, "pw", iterations=1024)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_account_key(path, "pw").address == key.address
    assert key.private_key.hex() not in path.read_text()


def test_wrong_passphrase_is_a_key_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_account_key(path, AccountKey.generate(), "right", iterations=1024)
    with pytest.raises(KeyFileError, match="cannot decrypt"):
        read_account_key(path, "wrong")


def test_loose_mode_is_refused_on_read(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_receipt_key(path, ReceiptKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_receipt_key(path)


def test_existing_key_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    key = ReceiptKey.generate()
    write_receipt_key(path, key)
    with pytest.raises(KeyFileError, match="already exists"):
        write_receipt_key(path, ReceiptKey.generate())
    assert read_receipt_key(path).public_key == key.public_key


def test_receipt_key_round_trip_and_tamper_check(tmp_path: Path) -> None:
    key = ReceiptKey.generate()
    path = tmp_path / "receipt.json"
    write_receipt_key(path, key)
    assert read_receipt_key(path).seed == key.seed
    text = path.read_text().replace(key.public_key.hex(), "00" * 32)
    path.write_text(text)
    with pytest.raises(KeyFileError, match="does not match"):
        read_receipt_key(path)


def test_passphrase_sources(tmp_path: Path) -> None:
    assert resolve_passphrase(env_var="PW", environ={"PW": "from-env"}) == "from-env"
    with pytest.raises(KeyFileError, match="PW"):
        resolve_passphrase(env_var="PW", environ={})
    pw = tmp_path / "pw.txt"
    pw.write_text("from-file\nignored\n")
    assert resolve_passphrase(file=pw) == "from-file"
    with pytest.raises(KeyFileError, match="no passphrase"):
        resolve_passphrase(prompt=None)
