"""The durable relay log: per (service, app, session), append-only CRC-framed segment files.

Each answered relay is appended with ``os.write`` *before* its answer is returned; a
group-commit thread ``fdatasync``s every segment written since its last round (rounds start
:data:`GATHER_SECONDS` after the first write, so that a round carries many records), so a
relay is on disk within that and two fsyncs of being answered (DESIGN §6: ``kill -9`` loses
nothing, a machine crash at most the last ~10 ms).

The committer is one long-lived thread, not a task handing each round to an executor: the
event loop only arms one timer when a round is due and releases a lock when it fires; the
thread fsyncs and marks the records synced itself, and never calls back into the loop. What
the two share (the dirty logs, each segment's unsynced records, the failure state) is guarded
by one ``threading.Lock`` held for a few dictionary and list operations, never across a
system call other than the record's own ``os.write``. An fd is closed only when no round is
fsyncing it (``_Segment.busy``).

A session's log is a list of segments. Appends go to the current segment; a segment is
*sealed* — never written again — when a write to it fails (a torn record may sit at its tail,
so nothing written after it could be read back), when its fsync fails, and when the process
stops (a restarted relayer always starts a fresh segment). Readers scan every segment up to its
first invalid record, so a torn record hides nothing but itself and recovery truncates nothing.

DESIGN §6 on a failed fsync: the records written since the segment's last good fsync are still
in memory; the segment is sealed and they are rewritten to a fresh *continuation* segment whose
header says from which offset it supersedes the sealed one (so readers skip that tail and never
see a record twice). Until the rewrite is fsynced, :meth:`RelayLog.check_writable` refuses new
relays (``INTERNAL``, retryable). When the rewrite fails too the log is *broken*: it refuses
relays until restart (the relayer's ``/readyz`` answers 503) and holds the records in memory,
where :meth:`RelayLog.records` still yields them for the claimer; a graceful shutdown saves
them (``<n>-<app>.held``) for the next process's claimer.

A session is *retired* once no relay may be added to it (its grace ended, or the claimer took
it): a marker file is written and :meth:`RelayLog.open` refuses it for good
(``SESSION_EXPIRED``), across restarts — so no record can land after its trie was built.

Files (big-endian)::

    <service>/<n:012d>-<app>.log        segment 0: header = b"RNLOG\\x00\\x01\\n"
    <service>/<n:012d>-<app>.log.<k>    segment k: the same header, or a continuation header
                                        b"RNLOG\\x00\\x02\\n" ‖ uint32(sealed) ‖ uint64(offset)
    <service>/<n:012d>-<app>.retired    the session is closed for good
    <service>/<n:012d>-<app>.held       records a broken log held in memory (FILE_HEADER, records)
    record = b"RL" ‖ uint32(len(body)) ‖ body ‖ uint32(crc32(body))
    body   = relay_key (32) ‖ leaf (326)

A record's *ref* is ``segment << 40 | offset of its body``; ``read_leaf(ref)`` reads the 326
leaf bytes back, which is how a proof is built without holding leaves in memory.

Tests (and only tests) can make fsyncs fail: ``fsync_fault_file`` (config ``[log]``) names a
file; when it exists, the number written in it is taken (the file is removed) and that many
following fsyncs fail with ``EIO``, each also cutting its segment back to its last good fsync
(the pages a failed writeback may lose).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from protocol.encoding import address_from_hex, address_to_hex
from protocol.errors import ErrorCode, RelaynetError
from protocol.relay import LEAF_SIZE
from relayer.errors import LogCorrupt, LogUnavailable, RelayRefused
from relayer.metrics import RelayerMetrics

__all__ = [
    "CONTINUATION_HEADER",
    "FILE_HEADER",
    "GATHER_SECONDS",
    "HELD_SEGMENT",
    "LogRecord",
    "RelayLog",
    "SessionKey",
    "SessionLog",
    "iter_records",
    "segment_of",
]

log = logging.getLogger("relaynet.relayer.relaylog")

FILE_HEADER = b"RNLOG\x00\x01\n"
CONTINUATION_HEADER = b"RNLOG\x00\x02\n"
_CONT = struct.Struct(">IQ")
_REC_MAGIC = b"RL"
_PREFIX = struct.Struct(">2sI")
_CRC = struct.Struct(">I")
_KEY_SIZE = 32
_LEAF_SIZE = LEAF_SIZE
_BODY_SIZE = _KEY_SIZE + _LEAF_SIZE
_RECORD_SIZE = _PREFIX.size + _BODY_SIZE + _CRC.size
_PREFIX_BYTES = _PREFIX.pack(_REC_MAGIC, _BODY_SIZE)
_REF_SHIFT = 40
_OFFSET_MASK = (1 << _REF_SHIFT) - 1
#: How long the committer lets records gather after the first one of a round: a record is on
#: disk within this plus two fsyncs of being answered (DESIGN §6: within ~10 ms).
GATHER_SECONDS = 0.002
HELD_SEGMENT = (1 << 22) - 1  # the segment number of records held in memory (a broken log)


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
        n_text, _, app_text = path.name.split(".", 1)[0].partition("-")
        try:
            return cls(path.parent.name, address_from_hex(app_text), int(n_text))
        except (ValueError, RelaynetError) as exc:
            raise LogCorrupt(f"not a session log name: {path}") from exc


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One logged relay: its relay key, leaf bytes and ref (segment and offset of its body)."""

    relay_key: bytes
    leaf: bytes
    ref: int


def segment_of(ref: int) -> int:
    return ref >> _REF_SHIFT


def _frame(relay_key: bytes, leaf: bytes) -> bytes:
    crc = zlib.crc32(leaf, zlib.crc32(relay_key))  # the CRC of relay_key ‖ leaf
    return b"".join((_PREFIX_BYTES, relay_key, leaf, _CRC.pack(crc)))


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # one call for a record, unless the kernel takes less
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _segment_path(base: Path, index: int) -> Path:
    return base if index == 0 else base.with_name(f"{base.name}.{index}")


def _segments(base: Path) -> list[tuple[int, Path]]:
    """The segment files of the log whose segment 0 is ``base``, in order."""
    found = [(0, base)] if base.exists() else []
    for path in base.parent.glob(base.name + ".*"):
        suffix = path.name[len(base.name) + 1 :]
        if suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def _read_header(fh: object, path: Path) -> tuple[int, tuple[int, int] | None] | None:
    """(header size, (superseded segment, offset) or None); None for a torn header (empty)."""
    head = fh.read(len(FILE_HEADER))  # type: ignore[attr-defined]
    if head == FILE_HEADER:
        return len(FILE_HEADER), None
    if head == CONTINUATION_HEADER:
        extra = fh.read(_CONT.size)  # type: ignore[attr-defined]
        if len(extra) < _CONT.size:
            return None
        seg, offset = _CONT.unpack(extra)
        return len(FILE_HEADER) + _CONT.size, (seg, offset)
    if FILE_HEADER.startswith(head) or CONTINUATION_HEADER.startswith(head):
        return None  # torn while writing the header: an empty segment
    raise LogCorrupt(f"{path}: not a relaynet session log")


def _scan(
    path: Path, stop: int | None = None, chunk: int = 1 << 20
) -> Iterator[tuple[bytes, bytes, int]]:
    """Yield (relay_key, leaf, body offset) of each valid record of one segment, up to the
    first invalid one (or ``stop``, the offset a continuation segment supersedes from)."""
    with open(path, "rb") as fh:
        header = _read_header(fh, path)
        if header is None:
            return
        offset = header[0]
        buf = b""
        pos = 0
        while stop is None or offset < stop:
            if len(buf) - pos < _RECORD_SIZE:
                buf = buf[pos:] + fh.read(chunk)
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
            yield body[:_KEY_SIZE], body[_KEY_SIZE:], offset + _PREFIX.size
            offset += _RECORD_SIZE
            pos += _RECORD_SIZE


def iter_records(
    base: Path, limits: Mapping[int, int] | None = None, chunk: int = 1 << 20
) -> Iterator[LogRecord]:
    """Stream the valid records of a session log (every segment of ``base``), in order.

    ``limits`` (segment → record count), when given, reads at most that many records of each
    listed segment and none of the others: exactly what a claim counted."""
    segments = _segments(base)
    cuts: dict[int, int] = {}
    for _, path in segments:
        with open(path, "rb") as fh:
            header = _read_header(fh, path)
        if header is not None and header[1] is not None:
            sealed, offset = header[1]
            cuts[sealed] = min(offset, cuts.get(sealed, offset))
    for index, path in segments:
        limit = None if limits is None else limits.get(index, 0)
        if limit == 0:
            continue
        for i, (key, leaf, offset) in enumerate(_scan(path, cuts.get(index), chunk)):
            if limit is not None and i >= limit:
                break
            yield LogRecord(key, leaf, (index << _REF_SHIFT) | offset)


def read_leaf(base: Path, ref: int) -> bytes:
    """The 326 leaf bytes of the record ``ref`` of the session log ``base``."""
    path = _segment_path(base, ref >> _REF_SHIFT)
    with open(path, "rb") as fh:
        fh.seek((ref & _OFFSET_MASK) + _KEY_SIZE)
        leaf = fh.read(_LEAF_SIZE)
    if len(leaf) != _LEAF_SIZE:
        raise LogCorrupt(f"{path}: no record at {ref & _OFFSET_MASK}")
    return leaf


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_marker(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    _fsync_dir(path.parent)


class _Segment:
    """One segment file open for appends, with what was written since its last good fsync."""

    __slots__ = (
        "busy",
        "close_after",
        "fd",
        "index",
        "path",
        "sealed",
        "size",
        "synced_size",
        "unsynced",
    )

    def __init__(self, index: int, path: Path, fd: int, size: int) -> None:
        self.index = index
        self.path = path
        self.fd: int | None = fd
        self.size = size
        self.synced_size = size
        self.sealed = False
        self.unsynced: list[tuple[bytes, bytes]] = []
        self.busy = False  # a commit round is fsyncing its fd (outside the lock)
        self.close_after = False  # dropped meanwhile: that round closes it

    def close(self) -> None:
        if self.busy:  # never close an fd under a running fdatasync (its number may be reused)
            self.close_after = True
            return
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):  # the fsync that matters already ran (or failed)
                os.close(fd)


class SessionLog:
    """One session's log, open for appends. Use :meth:`RelayLog.open` to get one."""

    def __init__(self, key: SessionKey, base: Path, next_index: int, count: int) -> None:
        self.key = key
        self.path = base
        self.count = count
        self.closed = False
        self._next_index = next_index
        self._current: _Segment | None = None
        self._open: list[_Segment] = []  # the current segment and sealed ones not yet fsynced

    @property
    def size(self) -> int:
        return 0 if self._current is None else self._current.size

    def new_segment(self, continues: tuple[int, int] | None = None) -> _Segment:
        """Create the next segment file with its header on disk; on failure nothing is left."""
        index = self._next_index
        self._next_index += 1
        path = _segment_path(self.path, index)
        header = FILE_HEADER if continues is None else CONTINUATION_HEADER + _CONT.pack(*continues)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(fd, header)
            os.fdatasync(fd)
            _fsync_dir(path.parent)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return _Segment(index, path, fd, len(header))

    def append(self, relay_key: bytes, leaf: bytes) -> int:
        """Write one record (``os.write``, not yet fsynced); returns its ref.

        A failed write seals the segment (a torn record may now end it) and raises
        :class:`LogUnavailable`; the next append starts a fresh segment."""
        if len(relay_key) != _KEY_SIZE or len(leaf) != _LEAF_SIZE:
            raise LogCorrupt("a log record is a 32-byte relay key and a 326-byte leaf")
        seg = self._current
        if seg is None:
            try:
                seg = self._current = self.new_segment()
            except OSError as exc:
                raise LogUnavailable(f"cannot start a relay log segment: {exc}") from exc
            self._open.append(seg)
        assert seg.fd is not None
        try:
            _write_all(seg.fd, _frame(relay_key, leaf))
        except OSError as exc:
            self.seal(seg)
            raise LogUnavailable(f"writing the relay log failed: {exc}") from exc
        ref = (seg.index << _REF_SHIFT) | (seg.size + _PREFIX.size)
        seg.size += _RECORD_SIZE
        seg.unsynced.append((relay_key, leaf))
        self.count += 1
        return ref

    def seal(self, seg: _Segment) -> None:
        """Nothing more is written to ``seg``; it closes once its records are fsynced."""
        seg.sealed = True
        if self._current is seg:
            self._current = None
        if not seg.unsynced:
            self._drop(seg)

    def _drop(self, seg: _Segment) -> None:
        seg.close()
        with contextlib.suppress(ValueError):
            self._open.remove(seg)

    def synced(self, seg: _Segment, records: int, size: int) -> None:
        """The first ``records`` unsynced records (up to ``size`` bytes) are on disk."""
        del seg.unsynced[:records]
        seg.synced_size = max(seg.synced_size, size)
        if seg.sealed and not seg.unsynced:
            self._drop(seg)

    def open_segments(self) -> list[_Segment]:
        return list(self._open)

    def close(self) -> None:
        """Close every segment (no fsync: :meth:`RelayLog.close` commits first)."""
        self.closed = True
        for seg in list(self._open):
            seg.sealed = True
            self._drop(seg)
        self._current = None

    def records(self) -> Iterator[LogRecord]:
        """Every record on disk, in order (reads the files; safe while appends go on)."""
        yield from iter_records(self.path)

    def read_leaf(self, ref: int) -> bytes:
        return read_leaf(self.path, ref)


class _Committer(Enum):
    """Where the group-commit thread is (changed under ``RelayLog._mutex``)."""

    OFF = "off"  # no thread: :meth:`RelayLog.commit` runs the rounds
    IDLE = "idle"  # waiting for a kick; the next write arms the gather timer
    ARMED = "armed"  # the loop's timer will kick it
    BUSY = "busy"  # in a round (or between two): writes only mark their log dirty


class RelayLog:
    """All session logs under ``<data_dir>/logs``, and the group-commit thread that fsyncs
    them.

    The thread runs while :meth:`run_committer` is awaited (the server's ``cleanup_ctx``
    starts it as a task); between rounds it waits for a kick that the first write after an
    idle spell arms (a loop timer of :data:`GATHER_SECONDS`). :meth:`commit` runs one round
    at once (off the loop), with or without the thread.
    """

    def __init__(
        self,
        root: Path,
        metrics: RelayerMetrics | None = None,
        *,
        fsync_fault_file: Path | None = None,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self.root = root
        self._metrics = metrics
        self._gather = gather_seconds
        self._open: dict[SessionKey, SessionLog] = {}
        self._retired: set[SessionKey] = set()
        self._dirty: dict[int, SessionLog] = {}
        self._held: dict[SessionKey, list[tuple[bytes, bytes]]] = {}
        self._mutex = threading.Lock()  # what the loop and the committer thread share
        self._round_lock = threading.Lock()  # one commit round at a time
        self._kick = threading.Lock()  # held while the committer has nothing to do
        self._kick.acquire()
        self._state = _Committer.OFF
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = 0  # segments whose fsync failed and whose records are not yet rewritten
        self.broken = False
        self.fsync_failures = 0
        self._fault_file = fsync_fault_file
        self._faults = 0
        self._faults_lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    # -- state ------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """False once a failed fsync could not be repaired: stop serving (readyz 503)."""
        return not self.broken

    def check_writable(self) -> None:
        """Refuse a new relay while a failed fsync is being repaired, or for good once broken."""
        if self.broken:
            raise LogUnavailable("the relay log cannot be written (fsync failed twice)")
        if self._failing:
            raise LogUnavailable("the relay log is rewriting records after a failed fsync")

    def _set_state_metric(self) -> None:
        if self._metrics is not None:
            self._metrics.log_state.set(2 if self.broken else 1 if self._failing else 0)

    # -- opening ----------------------------------------------------------------------------

    def path_for(self, key: SessionKey) -> Path:
        """Segment 0 of the session's log (the others sit next to it)."""
        return self.root / key.service_id / key.filename()

    def _marker(self, key: SessionKey) -> Path:
        return self.path_for(key).with_suffix(".retired")

    def is_retired(self, key: SessionKey) -> bool:
        return key in self._retired or self._marker(key).exists()

    def open(self, key: SessionKey) -> SessionLog:
        """The open log of ``key``; a session with a log on disk continues in a new segment.
        A retired session is refused (``SESSION_EXPIRED``): its trie may already be built."""
        log_ = self._open.get(key)
        if log_ is not None:
            return log_
        if self.is_retired(key):
            self._retired.add(key)
            raise RelayRefused(ErrorCode.SESSION_EXPIRED, f"session {key.n} is closed for claims")
        base = self.path_for(key)
        base.parent.mkdir(parents=True, exist_ok=True)
        segments = _segments(base)
        count = sum(1 for _ in iter_records(base)) if segments else 0
        next_index = segments[-1][0] + 1 if segments else 0
        log_ = SessionLog(key, base, next_index, count)
        self._open[key] = log_
        if self._metrics is not None:
            self._metrics.open_sessions.set(len(self._open))
        return log_

    def existing(self) -> list[SessionKey]:
        """Every session that has a log on disk (open or not), oldest session first."""
        keys = {SessionKey.from_path(p) for p in self.root.glob("*/*.log*")}
        keys |= {SessionKey.from_path(p) for p in self.root.glob("*/*.held")}
        keys |= set(self._held)
        return sorted(keys, key=lambda k: (k.n, k.service_id, k.app))

    def records(
        self, key: SessionKey, limits: Mapping[int, int] | None = None
    ) -> Iterator[LogRecord]:
        """Every record of the session — on disk, then those held in memory (a broken log)
        that the disk does not show — in order; ``limits`` (segment → count) reads exactly what
        a claim counted."""
        held = self._load_held(key)
        if not held:
            yield from iter_records(self.path_for(key), limits)
            return
        held_keys = {k for k, _ in held}
        on_disk: set[bytes] = set()
        for record in iter_records(self.path_for(key), limits):
            if record.relay_key in held_keys:
                on_disk.add(record.relay_key)
            yield record
        limit = len(held) if limits is None else limits.get(HELD_SEGMENT, 0)
        for i, (relay_key, leaf) in enumerate(held):
            if limit <= 0:
                break
            if relay_key not in on_disk:
                limit -= 1
                yield LogRecord(relay_key, leaf, (HELD_SEGMENT << _REF_SHIFT) | i)

    def read_leaf(self, key: SessionKey, ref: int) -> bytes:
        if ref >> _REF_SHIFT == HELD_SEGMENT:
            return self._load_held(key)[ref & _OFFSET_MASK][1]
        return read_leaf(self.path_for(key), ref)

    def _held_path(self, key: SessionKey) -> Path:
        return self.path_for(key).with_suffix(".held")

    def _load_held(self, key: SessionKey) -> list[tuple[bytes, bytes]]:
        """The records held for ``key``: in memory, or as saved by a broken log's shutdown."""
        held = self._held.get(key)
        if held is None:
            path = self._held_path(key)
            if not path.exists():
                return []
            held = self._held[key] = [(k, leaf) for k, leaf, _ in _scan(path)]
        return held

    def _save_held(self) -> None:
        """Shutdown of a broken log: keep the held records for the next process's claimer
        (``<n>-<app>.held``, the same framing); a failure is logged, never hidden."""
        for key, held in self._held.items():
            path = self._held_path(key)
            tmp = path.with_suffix(".held-tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(FILE_HEADER + b"".join(_frame(k, leaf) for k, leaf in held))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                _fsync_dir(path.parent)
            except OSError as exc:
                log.critical("cannot save %d held records of %s: %s", len(held), path, exc)

    # -- appends and group commit ---------------------------------------------------------

    def append(self, log_: SessionLog, relay_key: bytes, leaf: bytes) -> int:
        """Write one record now and schedule it for the next group commit."""
        if log_.closed:
            raise RelayRefused(
                ErrorCode.SESSION_EXPIRED, f"session {log_.key.n} is closed for claims"
            )
        with self._mutex:
            if self.broken or self._failing:
                self.check_writable()
            try:
                return log_.append(relay_key, leaf)
            except LogUnavailable:
                if self._metrics is not None:
                    self._metrics.log_write_failures.inc()
                raise
            finally:
                if log_._open:
                    self._dirty[id(log_)] = log_
                    if self._state is _Committer.IDLE:  # the first write of a round
                        self._state = _Committer.ARMED
                        assert self._loop is not None
                        self._loop.call_later(self._gather, self._fire)

    def _fire(self) -> None:
        """The gather timer (on the loop): wake the committer thread."""
        with self._mutex:
            if self._state is _Committer.ARMED:
                self._state = _Committer.BUSY
                self._kick.release()

    def _take_faults(self) -> None:
        path = self._fault_file
        if path is None:
            return
        try:
            text = path.read_text()
            path.unlink()
        except FileNotFoundError:
            return
        with self._faults_lock:
            self._faults += int(text.strip() or "1")

    def _fdatasync(self, seg: _Segment) -> None:
        """fdatasync one segment. An injected failure (tests) also drops what the file held
        past its last good fsync, as a failed writeback may lose those pages."""
        assert seg.fd is not None
        self._take_faults()
        with self._faults_lock:
            fail = self._faults > 0
            if fail:
                self._faults -= 1
        if fail:
            with contextlib.suppress(OSError):
                os.ftruncate(seg.fd, seg.synced_size)
            raise OSError(errno.EIO, "injected fsync failure (log.fsync_fault_file)")
        os.fdatasync(seg.fd)

    def _round(self) -> None:
        """One group-commit round (in a thread): fdatasync every segment written since the
        last round, outside the lock; then mark what was synced, or repair what failed."""
        with self._round_lock:
            with self._mutex:
                logs = list(self._dirty.values())
                self._dirty.clear()
                work = [(lg, seg, len(seg.unsynced), seg.size) for lg in logs for seg in lg._open]
                for _, seg, _, _ in work:
                    seg.busy = True
            if not work:
                return
            started = time.perf_counter()
            errors: list[OSError | None] = []
            for _, seg, _, _ in work:
                try:
                    if seg.fd is not None:
                        self._fdatasync(seg)
                    errors.append(None)
                except OSError as exc:
                    errors.append(exc)
            if self._metrics is not None:
                self._metrics.fsync_seconds.observe(time.perf_counter() - started)
                self._metrics.fsync_batch.observe(sum(w[2] for w in work))
            failed = []
            with self._mutex:
                for (lg, seg, count, size), error in zip(work, errors, strict=True):
                    seg.busy = False
                    if error is None:
                        lg.synced(seg, count, size)
                    else:
                        failed.append((lg, seg, error))
                    if seg.close_after:
                        seg.close()
                for lg in logs:
                    if any(seg.unsynced for seg in lg._open):
                        self._dirty[id(lg)] = lg
            for lg, seg, error in failed:
                self._repair(lg, seg, error)

    async def commit(self) -> None:
        """One group-commit round now (off the loop): every record written before the call is
        fsynced, or rewritten / held after a failed fsync, when it returns."""
        await asyncio.get_running_loop().run_in_executor(None, self._round)

    def _repair(self, lg: SessionLog, seg: _Segment, error: OSError) -> None:
        """DESIGN §6: a failed fsync seals the segment; its unsynced records, still in memory,
        are rewritten to a fresh continuation segment (relays are refused meanwhile); if that
        fails too the log is broken and holds the records for the claimer."""
        with self._mutex:
            self.fsync_failures += 1
            self._failing += 1
            self._set_state_metric()
            records = list(seg.unsynced)
            seg.unsynced.clear()
            lg.seal(seg)
            lg._drop(seg)
        if self._metrics is not None:
            self._metrics.fsync_failures.inc()
        log.error("fsync of %s failed: %s — rewriting its unsynced records", seg.path, error)
        try:
            fresh = self._rewrite(lg, seg, records)
        except OSError as exc:
            with self._mutex:
                self.broken = True
                self._held.setdefault(lg.key, []).extend(records)
            log.critical(
                "relay log rewrite of %s failed too (%s): refusing relays, %d records held "
                "in memory for the claimer",
                seg.path,
                exc,
                len(records),
            )
        else:
            with self._mutex:
                if lg.closed or lg._current is not None:
                    fresh.close()
                else:
                    lg._current = fresh
                    lg._open.append(fresh)
            log.warning("rewrote %d records of %s to %s", len(records), seg.path, fresh.path)
        finally:
            with self._mutex:
                self._failing -= 1
                self._set_state_metric()

    def _rewrite(
        self, lg: SessionLog, seg: _Segment, records: list[tuple[bytes, bytes]]
    ) -> _Segment:
        """A continuation segment superseding ``seg`` from its last good fsync, holding
        ``records`` — fsynced, or removed again and OSError raised."""
        fresh = lg.new_segment(continues=(seg.index, seg.synced_size))
        try:
            assert fresh.fd is not None
            _write_all(fresh.fd, b"".join(_frame(k, leaf) for k, leaf in records))
            fresh.size += _RECORD_SIZE * len(records)
            self._fdatasync(fresh)
            fresh.synced_size = fresh.size
        except OSError:
            fresh.close()
            with contextlib.suppress(OSError):
                fresh.path.unlink()
            raise
        return fresh

    def _commit_loop(self) -> None:
        """The committer thread: wait for a kick, then rounds — :data:`GATHER_SECONDS` apart
        while writes keep coming — until nothing is left to sync."""
        while True:
            self._kick.acquire()
            while True:
                if self._stopping:
                    return
                try:
                    self._round()
                except Exception:  # never let the thread die: the next round retries
                    log.exception("relay log commit round failed")
                with self._mutex:
                    if self._stopping:
                        return
                    if not self._dirty:
                        self._state = _Committer.IDLE
                        break
                time.sleep(self._gather)

    async def run_committer(self) -> None:
        """Run the group-commit thread until cancelled (then stop and join it; records
        written after that are committed by :meth:`close`)."""
        loop = self._loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._commit_loop, name="relaylog-commit", daemon=True)
        with self._mutex:
            self._stopping = False
            self._state = _Committer.BUSY if self._dirty else _Committer.IDLE
            if self._dirty:
                self._kick.release()
        thread.start()
        try:
            await loop.create_future()  # until cancelled
        finally:
            with self._mutex:
                self._stopping = True
                if self._state is not _Committer.BUSY:  # waiting for a kick: give it one
                    self._kick.release()
                self._state = _Committer.OFF
            await asyncio.shield(loop.run_in_executor(None, thread.join))

    async def retire(self, key: SessionKey) -> None:
        """Close a session's log for good (its grace ended, or it is being claimed): a marker
        on disk makes :meth:`open` refuse it from now on, across restarts. Raises OSError when
        the marker cannot be written (the caller retries; this process refuses it already)."""
        self._retired.add(key)
        log_ = self._open.get(key)
        if log_ is not None:
            log_.closed = True
        marker = self._marker(key)
        if not marker.exists():
            try:  # off the event loop: many sessions retire at once at a session boundary
                await asyncio.get_running_loop().run_in_executor(None, _create_marker, marker)
            except OSError as exc:
                raise LogUnavailable(f"cannot mark session {key.n} retired: {exc}") from exc
        await self.commit()
        await self._close_log(key)

    async def _close_log(self, key: SessionKey) -> None:
        with self._mutex:
            log_ = self._open.pop(key, None)
            if log_ is not None:
                self._dirty.pop(id(log_), None)
                log_.close()
        if self._metrics is not None:
            self._metrics.open_sessions.set(len(self._open))

    async def delete(self, key: SessionKey, *, marker: bool = False) -> None:
        """Remove a settled session's log; the retired marker stays (it is never reopened)
        unless ``marker`` (pruning long after the session's windows closed)."""
        await self.retire(key)
        if marker:
            with contextlib.suppress(FileNotFoundError):
                self._marker(key).unlink()
            self._retired.discard(key)
        self._held.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            self._held_path(key).unlink()
        for _, path in _segments(self.path_for(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def close(self) -> None:
        """Final commit and close of every open log (shutdown; the sessions stay open)."""
        await self.commit()
        for key in list(self._open):
            await self._close_log(key)
        if self._held:
            self._save_held()
