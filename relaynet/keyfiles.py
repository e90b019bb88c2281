"""The key files moved to :mod:`relayer.keyfiles` (the relayer's set-up writes them); this name
stays for scripts and tests that import it from here."""

from relayer.keyfiles import (
    RECEIPT_KEY_KIND,
    KeyFileError,
    check_mode,
    read_account_key,
    read_receipt_key,
    resolve_passphrase,
    write_account_key,
    write_receipt_key,
)

__all__ = [
    "RECEIPT_KEY_KIND",
    "KeyFileError",
    "check_mode",
    "read_account_key",
    "read_receipt_key",
    "resolve_passphrase",
    "write_account_key",
    "write_receipt_key",
]
