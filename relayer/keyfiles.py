"""Key files of relayers and the CLI: Ethereum keystores (v3) and ed25519 receipt keys.

- An account key is stored as an Ethereum keystore v3 JSON (scrypt), written and read with
  :func:`protocol.keys.encrypt_keystore` / :func:`protocol.keys.decrypt_keystore`.
- A receipt key (ed25519, the supplier's receipt signer) is stored as a small JSON document
  ``{"kind": "relaynet-receipt-key", "version": 1, "public_key": "0x…", "seed": "0x…"}``.
  After a rotation (:func:`rotate_receipt_key_file`) the file holds the new key there and the
  earlier ones under ``"previous"`` (newest first): receipts of sessions before the rotation
  took effect are still signed with the key valid then.

Files are written with mode 0600 (created that way, never widened) and refused on read when
others may access them; group-read is accepted only for a group of this process (Kubernetes
``fsGroup``), see :func:`check_mode`. Passphrases come from an environment variable named by a flag,
a file, or an interactive prompt (:func:`resolve_passphrase`). Keys are never printed: the
errors of this module name files, never their contents.
"""

from __future__ import annotations

import getpass
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from protocol.errors import ErrorCode, RelaynetError
from protocol.keys import AccountKey, ReceiptKey, decrypt_keystore, encrypt_keystore

__all__ = [
    "RECEIPT_KEY_KIND",
    "KeyFileError",
    "check_mode",
    "read_account_key",
    "read_receipt_key",
    "read_receipt_keys",
    "resolve_passphrase",
    "rotate_receipt_key_file",
    "write_account_key",
    "write_receipt_key",
]

RECEIPT_KEY_KIND = "relaynet-receipt-key"
_FILE_MODE = 0o600


class KeyFileError(RelaynetError):
    """A key file is missing, malformed, too widely readable, or its passphrase is wrong."""

    code = ErrorCode.MALFORMED_INPUT


def _write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` created with mode 0600 (atomic rename, never widened)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists (refusing to overwrite a key file)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)  # the umask may have narrowed it; never wider
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def check_mode(path: Path) -> None:
    """Refuse a key file others may access. Accepted: 0600/0400 (owner only), and group-read
    (0640/0440) when the file's group is one of this process's groups and no one else may
    read, nor the group write — what a Kubernetes secret mounted with ``fsGroup`` gives."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} not found") from exc
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    ours = st.st_gid == os.getegid() or st.st_gid in os.getgroups()
    if mode & 0o037 == 0 and ours:
        return
    why = "readable by others" if mode & 0o007 or not ours else "writable by its group"
    raise KeyFileError(
        f"key file {path} has mode {mode:04o}, {why}; run `chmod 600 {path}` "
        "(or 0440 with a group of this process) and try again"
    )


def _read_private(path: Path) -> bytes:
    path = Path(path)
    check_mode(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc


def write_account_key(
    path: Path,
    key: AccountKey,
    passphrase: str,
    *,
    overwrite: bool = False,
    iterations: int | None = None,
) -> None:
    """Write ``key`` as an Ethereum keystore v3 file (scrypt) with mode 0600.

    ``iterations`` lowers the scrypt cost (tests only; the default is eth-account's)."""
    document = encrypt_keystore(key.private_key, passphrase, iterations=iterations)
    _write_private(Path(path), document, overwrite=overwrite)


def read_account_key(path: Path, passphrase: str) -> AccountKey:
    """Read and decrypt a keystore v3 file (refused when its mode is looser than 0600)."""
    data = _read_private(Path(path))
    try:
        private_key = decrypt_keystore(data, passphrase)
    except RelaynetError as exc:
        raise KeyFileError(f"cannot decrypt keystore {path}: {exc.message}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(
            f"cannot decrypt keystore {path}: wrong passphrase or not a keystore"
        ) from exc
    return AccountKey(private_key)


def _key_doc(key: ReceiptKey) -> dict[str, str]:
    return {"public_key": "0x" + key.public_key.hex(), "seed": "0x" + key.seed.hex()}


def write_receipt_key(
    path: Path,
    key: ReceiptKey,
    *,
    overwrite: bool = False,
    previous: tuple[ReceiptKey, ...] = (),
) -> None:
    """Write an ed25519 receipt key file with mode 0600 (``previous``: earlier keys, newest
    first, kept for the sessions they were valid in)."""
    doc: dict[str, object] = {"kind": RECEIPT_KEY_KIND, "version": 1, **_key_doc(key)}
    if previous:
        doc["previous"] = [_key_doc(k) for k in previous]
    _write_private(Path(path), (json.dumps(doc, indent=2) + "\n").encode(), overwrite=overwrite)


def read_receipt_keys(path: Path) -> tuple[ReceiptKey, ...]:
    """Every key of a receipt key file: the current one first, then earlier ones (rotated
    away from, newest first)."""
    current = read_receipt_key(path)
    try:
        doc = json.loads(_read_private(Path(path)))
        previous = tuple(
            ReceiptKey(bytes.fromhex(str(k["seed"]).removeprefix("0x")))
            for k in doc.get("previous", ())
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"malformed receipt key file {path}: previous keys: {exc}") from exc
    return (current, *previous)


def rotate_receipt_key_file(path: Path) -> tuple[ReceiptKey, ReceiptKey]:
    """Generate a new receipt key into ``path`` (0600, atomically), keeping every earlier key
    under ``"previous"``; returns ``(old current key, new key)``."""
    keys = read_receipt_keys(path)
    new = ReceiptKey.generate()
    write_receipt_key(path, new, overwrite=True, previous=keys)
    return keys[0], new


def read_receipt_key(path: Path) -> ReceiptKey:
    """Read a receipt key file (refused when its mode is looser than 0600)."""
    raw = _read_private(Path(path))
    try:
        doc = json.loads(raw)
        if not isinstance(doc, Mapping) or doc.get("kind") != RECEIPT_KEY_KIND:
            raise ValueError("not a relaynet receipt key file")
        seed = bytes.fromhex(str(doc["seed"]).removeprefix("0x"))
        if len(seed) != 32:
            raise ValueError("seed is not 32 bytes")
        key = ReceiptKey(seed)
        public = doc.get("public_key")
        if public is not None and bytes.fromhex(str(public).removeprefix("0x")) != key.public_key:
            raise ValueError("public key does not match the seed")
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"malformed receipt key file {path}: {exc}") from exc
    return key


def resolve_passphrase(
    *,
    env_var: str | None = None,
    file: Path | None = None,
    prompt: str | None = "Keystore passphrase: ",
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The passphrase from ``$env_var``, else ``file`` (first line), else an interactive prompt.

    ``prompt`` None forbids prompting (non-interactive use): a missing passphrase is an error.
    ``confirm`` asks twice when prompting (used when creating a keystore).
    """
    env = os.environ if environ is None else environ
    if env_var:
        value = env.get(env_var)
        if value is None:
            raise KeyFileError(f"environment variable {env_var} (passphrase) is not set")
        return value
    if file is not None:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise KeyFileError(f"cannot read passphrase file {file}: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    if prompt is None:
        raise KeyFileError("no passphrase: name an environment variable or a passphrase file")
    try:
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise KeyFileError("the passphrases do not match")
    except EOFError as exc:
        raise KeyFileError("no passphrase given (stdin closed)") from exc
    return first
