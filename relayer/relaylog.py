"""The durable relay log: one append-only, CRC-framed file per (service, app, session).

Each answered relay is appended with ``os.write`` *before* its answer is returned; a background
group-commit task ``fdatasync``s every log written since its last round, so a relay is on disk
within one fsync of being answered (DESIGN §6: ``kill -9`` loses nothing, a machine crash at most
the last ~10 ms). Opening a log scans it and truncates a record torn by a crash.

File layout (big-endian)::

    header  = b"RNLOG\\x00\\x01\\n"                                   8 bytes
    record  = b"RL" ‖ uint32(len(body)) ‖ body ‖ uint32(crc32(body))
    body    = relay_key (32) ‖ leaf (326)

A record's *ref* is the file offset of its body; ``read_leaf(ref)`` reads the 326 leaf bytes
back, which is how a proof is built without holding leaves in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol.encoding import address_from_hex, address_to_hex
from protocol.errors import RelaynetError
from relayer.errors import LogCorrupt
from relayer.metrics import RelayerMetrics

__all__ = [
    "FILE_HEADER",
    "LogRecord",
    "RelayLog",
    "SessionKey",
    "SessionLog",
]

FILE_HEADER = b"RNLOG\x00\x01\n"
_REC_MAGIC = b"RL"
_PREFIX = struct.Struct(">2sI")
_CRC = struct.Struct(">I")
_KEY_SIZE = 32
_LEAF_SIZE = 326
_BODY_SIZE = _KEY_SIZE + _LEAF_SIZE
_RECORD_SIZE = _PREFIX.size + _BODY_SIZE + _CRC.size
_PREFIX_BYTES = _PREFIX.pack(_REC_MAGIC, _BODY_SIZE)


@dataclass(frozen=True, slots=True)
class SessionKey:
    """One claimable unit: (service, app, session number)."""

    service_id: str
    app: bytes
    n: int

    def filename(self) -> str:
        return f"{self.n:012d}-{address_to_hex(self.app)[2:]}.log"

    @classmethod
    def from_path(cls, path: Path) -> SessionKey:
        n_text, _, app_text = path.stem.partition("-")
        try:
            return cls(path.parent.name, address_from_hex(app_text), int(n_text))
        except (ValueError, RelaynetError) as exc:
            raise LogCorrupt(f"not a session log name: {path}") from exc


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One logged relay: its relay key, leaf bytes and ref (offset of the record body)."""

    relay_key: bytes
    leaf: bytes
    ref: int


def _frame(relay_key: bytes, leaf: bytes) -> bytes:
    body = relay_key + leaf
    return _PREFIX_BYTES + body + _CRC.pack(zlib.crc32(body))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class SessionLog:
    """One session's log file, open for appends. Use :meth:`RelayLog.open` to get one."""

    def __init__(self, key: SessionKey, path: Path, fd: int, size: int, count: int) -> None:
        self.key = key
        self.path = path
        self._fd = fd
        self.size = size
        self.count = count
        self.closed = False

    def append(self, relay_key: bytes, leaf: bytes) -> int:
        """Write one record (``os.write``, not yet fsynced); returns its ref."""
        if len(relay_key) != _KEY_SIZE or len(leaf) != _LEAF_SIZE:
            raise LogCorrupt("a log record is a 32-byte relay key and a 326-byte leaf")
        ref = self.size + _PREFIX.size
        _write_all(self._fd, _frame(relay_key, leaf))
        self.size += _RECORD_SIZE
        self.count += 1
        return ref

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)
            os.close(self._fd)

    def records(self) -> Iterator[LogRecord]:
        """Every record, in append order (reads the file; safe while appends go on)."""
        yield from iter_records(self.path)

    def read_leaf(self, ref: int) -> bytes:
        return read_leaf(self.path, ref)


def read_leaf(path: Path, ref: int) -> bytes:
    """The 326 leaf bytes of the record whose body starts at ``ref``."""
    with open(path, "rb") as fh:
        fh.seek(ref)
        body = fh.read(_BODY_SIZE)
    if len(body) != _BODY_SIZE:
        raise LogCorrupt(f"{path}: no record at {ref}")
    return body[_KEY_SIZE:]


def iter_records(path: Path, chunk: int = 1 << 20) -> Iterator[LogRecord]:
    """Stream the valid records of a log file; stops at the first torn or damaged record."""
    for record, _ in _scan(path, chunk):
        yield record


def _scan(path: Path, chunk: int = 1 << 20) -> Iterator[tuple[LogRecord, int]]:
    """Yield (record, end offset) for each valid record."""
    with open(path, "rb") as fh:
        head = fh.read(len(FILE_HEADER))
        if head != FILE_HEADER:
            if FILE_HEADER.startswith(head):
                return  # torn while writing the header: an empty log
            raise LogCorrupt(f"{path}: not a relaynet session log")
        offset = len(FILE_HEADER)
        buf = b""
        pos = 0
        while True:
            if len(buf) - pos < _RECORD_SIZE:
                more = fh.read(chunk)
                buf = buf[pos:] + more
                pos = 0
                if len(buf) < _RECORD_SIZE:
                    return
            magic, length = _PREFIX.unpack_from(buf, pos)
            if magic != _REC_MAGIC or length != _BODY_SIZE:
                return
            body_start = pos + _PREFIX.size
            body = buf[body_start : body_start + _BODY_SIZE]
            (crc,) = _CRC.unpack_from(buf, body_start + _BODY_SIZE)
            if zlib.crc32(body) != crc:
                return
            ref = offset + _PREFIX.size
            offset += _RECORD_SIZE
            pos += _RECORD_SIZE
            yield LogRecord(body[:_KEY_SIZE], body[_KEY_SIZE:], ref), offset


class RelayLog:
    """All session logs under ``<data_dir>/logs``, and the group-commit task that fsyncs them.

    The committer runs while :meth:`run_committer` is awaited (the server's ``cleanup_ctx``
    starts it as a task); between rounds it sleeps until some log is written.
    """

    def __init__(self, root: Path, metrics: RelayerMetrics | None = None) -> None:
        self.root = root
        self._metrics = metrics
        self._open: dict[SessionKey, SessionLog] = {}
        self._dirty: dict[int, SessionLog] = {}
        self._pending_records = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        root.mkdir(parents=True, exist_ok=True)

    # -- opening and recovery -------------------------------------------------------------

    def path_for(self, key: SessionKey) -> Path:
        return self.root / key.service_id / key.filename()

    def open(self, key: SessionKey) -> SessionLog:
        """The open log of ``key``: created, or recovered (a torn tail is cut off)."""
        log = self._open.get(key)
        if log is not None:
            return log
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        size, count = (len(FILE_HEADER), 0)
        if path.exists():
            size, count = recover(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if size == len(FILE_HEADER) and count == 0 and os.fstat(fd).st_size == 0:
            _write_all(fd, FILE_HEADER)
            os.fdatasync(fd)
            _fsync_dir(path.parent)
        log = SessionLog(key, path, fd, size, count)
        self._open[key] = log
        if self._metrics is not None:
            self._metrics.open_sessions.set(len(self._open))
        return log

    def existing(self) -> list[SessionKey]:
        """Every session that has a log on disk (open or not), oldest session first."""
        keys = [SessionKey.from_path(p) for p in self.root.glob("*/*.log")]
        return sorted(keys, key=lambda k: (k.n, k.service_id, k.app))

    def records(self, key: SessionKey) -> Iterator[LogRecord]:
        path = self.path_for(key)
        if not path.exists():
            return iter(())
        return iter_records(path)

    def read_leaf(self, key: SessionKey, ref: int) -> bytes:
        return read_leaf(self.path_for(key), ref)

    # -- appends and group commit ---------------------------------------------------------

    def append(self, log: SessionLog, relay_key: bytes, leaf: bytes) -> int:
        """Write one record now and schedule it for the next group commit."""
        ref = log.append(relay_key, leaf)
        self._dirty[log.fileno()] = log
        self._pending_records += 1
        self._wake.set()
        return ref

    async def commit(self) -> None:
        """One group-commit round: fdatasync every log written since the last round."""
        async with self._lock:
            if not self._dirty:
                return
            logs = list(self._dirty.values())
            records = self._pending_records
            self._dirty.clear()
            self._pending_records = 0
            started = time.perf_counter()
            await asyncio.get_running_loop().run_in_executor(None, _fdatasync_all, logs)
            if self._metrics is not None:
                self._metrics.fsync_seconds.observe(time.perf_counter() - started)
                self._metrics.fsync_batch.observe(records)

    async def run_committer(self) -> None:
        """Fsync as soon as anything is written; records written meanwhile join the next round."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.commit()

    async def retire(self, key: SessionKey) -> None:
        """Close a session's log once no relay can be added (after its grace end)."""
        async with self._lock:
            log = self._open.pop(key, None)
            if log is not None:
                self._dirty.pop(log.fileno(), None)
                log.close()
        if self._metrics is not None:
            self._metrics.open_sessions.set(len(self._open))

    async def delete(self, key: SessionKey) -> None:
        """Remove a settled session's log."""
        await self.retire(key)
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()

    async def close(self) -> None:
        """Final commit and close of every open log (shutdown)."""
        await self.commit()
        for key in list(self._open):
            await self.retire(key)


def _fdatasync_all(logs: list[SessionLog]) -> None:
    for log in logs:
        if not log.closed:
            with contextlib.suppress(OSError):
                os.fdatasync(log.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(path: Path) -> tuple[int, int]:
    """Scan a log, cut a torn or damaged tail off; returns (valid size, record count)."""
    size = len(FILE_HEADER)
    count = 0
    for _, end in _scan(path):
        size = end
        count += 1
    actual = path.stat().st_size
    if actual < len(FILE_HEADER):
        with open(path, "wb") as fh:
            fh.write(FILE_HEADER)
            fh.flush()
            os.fsync(fh.fileno())
    elif actual != size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())
    return size, count
