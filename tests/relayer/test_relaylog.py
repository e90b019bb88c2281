"""The durable session log: framing, group commit, segments, torn and failed writes, failed
fsyncs, retired sessions, read-back by ref."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import ErrorCode
from relayer.errors import LogUnavailable, RelayRefused
from relayer.metrics import RelayerMetrics
from relayer.relaylog import (
    FILE_HEADER,
    HELD_SEGMENT,
    RelayLog,
    SessionKey,
    SessionLog,
    segment_of,
)

APP = bytes(range(20))
KEY = SessionKey("eth", APP, 7)
RECORD = 2 + 4 + 32 + 326 + 4


def _leaf(i: int) -> bytes:
    return bytes([i % 256]) * 326


def _rk(i: int) -> bytes:
    return i.to_bytes(32, "big")


def _keys(rlog: RelayLog, key: SessionKey = KEY) -> list[bytes]:
    return [r.relay_key for r in rlog.records(key)]


async def test_append_commit_and_read_back(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    refs = [rlog.append(log, _rk(i), _leaf(i)) for i in range(5)]
    await rlog.commit()
    records = list(rlog.records(KEY))
    assert [r.relay_key for r in records] == [_rk(i) for i in range(5)]
    assert [r.ref for r in records] == refs
    assert rlog.read_leaf(KEY, refs[3]) == _leaf(3)
    assert rlog.existing() == [KEY]
    assert oct(os.stat(rlog.path_for(KEY)).st_mode & 0o777) == "0o600"
    await rlog.close()


async def test_written_before_fsync_is_readable(tmp_path: Path) -> None:
    """os.write puts the record in the page cache at once: a reader sees it before any fsync."""
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(1), _leaf(1))
    assert _keys(RelayLog(tmp_path)) == [_rk(1)]
    await rlog.close()


async def _three_records(directory: Path) -> Path:
    """A closed log of ``KEY`` with three records; its segment's path."""
    rlog = RelayLog(directory)
    log = rlog.open(KEY)
    for i in range(3):
        rlog.append(log, _rk(i), _leaf(i))
    await rlog.close()
    return rlog.path_for(KEY)


@pytest.mark.parametrize("cut", [1, 5, 100, 360, 367])
async def test_torn_tail_hides_only_itself(tmp_path: Path, cut: int) -> None:
    """A crash mid-record: the restarted log continues in a new segment; nothing is truncated
    and every later record is read."""
    path = await _three_records(tmp_path)
    full = path.stat().st_size
    with open(path, "r+b") as fh:  # a crash in the middle of the third record
        fh.truncate(full - RECORD + cut)
    reopened = RelayLog(tmp_path)
    log2 = reopened.open(KEY)
    assert log2.count == 2
    ref = reopened.append(log2, _rk(9), _leaf(9))
    await reopened.close()
    assert path.stat().st_size == full - RECORD + cut  # recovery truncates nothing
    assert segment_of(ref) == 1
    assert _keys(RelayLog(tmp_path)) == [_rk(0), _rk(1), _rk(9)]
    assert RelayLog(tmp_path).read_leaf(KEY, ref) == _leaf(9)


async def test_failed_write_mid_record_seals_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after half a record: that relay is refused, the segment is sealed, and every
    record written afterwards (to a fresh segment) is read back — before and after restart."""
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    for i in range(2):
        rlog.append(log, _rk(i), _leaf(i))
    real_write = os.write
    calls = {"n": 0}

    def short_then_enospc(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_enospc)
    with pytest.raises(LogUnavailable) as refused:
        rlog.append(log, _rk(2), _leaf(2))
    assert refused.value.code is ErrorCode.INTERNAL
    monkeypatch.setattr(os, "write", real_write)
    for i in range(3, 6):
        rlog.append(log, _rk(i), _leaf(i))
    await rlog.commit()
    expected = [_rk(i) for i in (0, 1, 3, 4, 5)]
    assert _keys(rlog) == expected
    await rlog.close()
    assert _keys(RelayLog(tmp_path)) == expected
    again = RelayLog(tmp_path)
    assert again.open(KEY).count == 5


async def test_damaged_record_stops_only_its_segment(tmp_path: Path) -> None:
    path = await _three_records(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(FILE_HEADER) + RECORD + 100] ^= 0xFF  # flip a byte inside record 2's body
    path.write_bytes(bytes(data))
    again = RelayLog(tmp_path)
    log2 = again.open(KEY)
    assert log2.count == 1
    again.append(log2, _rk(7), _leaf(7))
    await again.close()
    assert _keys(RelayLog(tmp_path)) == [_rk(0), _rk(7)]


async def test_torn_header_reads_empty(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    path = rlog.path_for(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(FILE_HEADER[:3])
    log = rlog.open(KEY)
    assert log.count == 0
    rlog.append(log, _rk(1), _leaf(1))
    await rlog.close()
    assert _keys(RelayLog(tmp_path)) == [_rk(1)]


async def test_retired_session_is_never_reopened(tmp_path: Path) -> None:
    """Retiring writes a marker: open() refuses the session (SESSION_EXPIRED) in this process
    and after a restart, so no record can land after its trie was built."""
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(1), _leaf(1))
    await rlog.retire(KEY)
    with pytest.raises(RelayRefused) as refused:
        rlog.append(log, _rk(2), _leaf(2))
    assert refused.value.code is ErrorCode.SESSION_EXPIRED
    with pytest.raises(RelayRefused):
        rlog.open(KEY)
    restarted = RelayLog(tmp_path)
    with pytest.raises(RelayRefused) as again:
        restarted.open(KEY)
    assert again.value.code is ErrorCode.SESSION_EXPIRED
    assert _keys(restarted) == [_rk(1)]
    # retiring a session this process never opened (the claimer after a restart) also holds
    other = SessionKey("eth", APP, 8)
    await restarted.retire(other)
    with pytest.raises(RelayRefused):
        RelayLog(tmp_path).open(other)


async def test_failed_fsync_rewrites_unsynced_records(tmp_path: Path) -> None:
    """An fsync fails once: its segment is sealed, the records written since its last good
    fsync are rewritten to a continuation segment, each record is read exactly once, relays
    are accepted again, and the failure is counted."""
    fault = tmp_path / "fault"
    rlog = RelayLog(tmp_path / "logs", fsync_fault_file=fault)
    log = rlog.open(KEY)
    rlog.append(log, _rk(0), _leaf(0))
    await rlog.commit()
    for i in (1, 2):
        rlog.append(log, _rk(i), _leaf(i))
    fault.write_text("1")
    await rlog.commit()
    assert rlog.fsync_failures == 1 and rlog.healthy
    assert not fault.exists()
    rlog.check_writable()
    rlog.append(log, _rk(3), _leaf(3))
    await rlog.commit()
    expected = [_rk(i) for i in range(4)]
    assert _keys(rlog) == expected
    segments = sorted(p.name for p in (tmp_path / "logs" / "eth").glob("*.log*"))
    assert len(segments) == 2
    await rlog.close()
    assert _keys(RelayLog(tmp_path / "logs")) == expected


async def test_failed_fsync_and_rewrite_break_the_log_but_keep_records(tmp_path: Path) -> None:
    """The rewrite fails too: relays are refused for good (the log is not healthy), and the
    unsynced records stay readable (in memory) for the claimer."""
    fault = tmp_path / "fault"
    rlog = RelayLog(tmp_path / "logs", fsync_fault_file=fault)
    log = rlog.open(KEY)
    rlog.append(log, _rk(0), _leaf(0))
    await rlog.commit()
    rlog.append(log, _rk(1), _leaf(1))
    fault.write_text("2")
    await rlog.commit()
    assert not rlog.healthy
    with pytest.raises(LogUnavailable):
        rlog.check_writable()
    with pytest.raises(LogUnavailable):
        rlog.append(log, _rk(2), _leaf(2))
    # the failed writeback lost record 1 on disk (the injection cuts it): the held copy stays
    assert rlog.path_for(KEY).stat().st_size == len(FILE_HEADER) + RECORD
    records = list(rlog.records(KEY))
    assert [r.relay_key for r in records] == [_rk(0), _rk(1)]
    assert segment_of(records[1].ref) == HELD_SEGMENT
    assert rlog.read_leaf(KEY, records[1].ref) == _leaf(1)
    await rlog.retire(KEY)
    assert [r.relay_key for r in rlog.records(KEY)] == [_rk(0), _rk(1)]
    # a graceful shutdown saves them: the next process reads the same records, same refs
    await rlog.close()
    restarted = RelayLog(tmp_path / "logs")
    again = list(restarted.records(KEY, {0: 1, HELD_SEGMENT: 1}))
    assert [(r.relay_key, r.ref) for r in again] == [(r.relay_key, r.ref) for r in records]
    assert restarted.read_leaf(KEY, again[1].ref) == _leaf(1)
    assert restarted.existing() == [KEY]
    await restarted.delete(KEY)
    assert restarted.existing() == []


async def test_limits_read_exactly_what_was_counted(tmp_path: Path) -> None:
    await _three_records(tmp_path)
    again = RelayLog(tmp_path)
    log2 = again.open(KEY)
    again.append(log2, _rk(5), _leaf(5))
    await again.close()
    assert [r.relay_key for r in again.records(KEY, {0: 2})] == [_rk(0), _rk(1)]
    assert [r.relay_key for r in again.records(KEY, {0: 3, 1: 1})] == [
        _rk(0),
        _rk(1),
        _rk(2),
        _rk(5),
    ]


async def test_delete_removes_the_log(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(1), _leaf(1))
    await rlog.delete(KEY)
    assert not rlog.path_for(KEY).exists()
    assert rlog.existing() == []


# --- the group-commit thread ---------------------------------------------------------------------


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (bounded in count, not a timed assertion)."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def _synced(log: SessionLog) -> bool:
    return not any(seg.unsynced for seg in log.open_segments())


def _fsync_rounds(metrics: RelayerMetrics) -> tuple[float, float]:
    """(rounds, records) of the fsync batch histogram."""
    samples = {s.name: s.value for s in metrics.fsync_batch.collect()[0].samples}
    return (
        samples["relaynet_relayer_log_fsync_batch_records_count"],
        samples["relaynet_relayer_log_fsync_batch_records_sum"],
    )


def _committers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "relaylog-commit"]


async def test_the_committer_thread_syncs_what_is_written(tmp_path: Path) -> None:
    """With the committer running, a write is fsynced without anyone calling commit(): the
    first write after an idle spell arms the round (twice here), and cancelling the task stops
    the thread; what is written afterwards is committed by close()."""
    metrics = RelayerMetrics()
    rlog = RelayLog(tmp_path, metrics)
    log = rlog.open(KEY)
    task = asyncio.create_task(rlog.run_committer())
    await _until(lambda: len(_committers()) == 1, "the committer thread started")
    for i in range(3):
        rlog.append(log, _rk(i), _leaf(i))
    await _until(lambda: _synced(log) and _fsync_rounds(metrics)[1] == 3, "3 records synced")
    rlog.append(log, _rk(3), _leaf(3))  # after an idle spell: a new round is armed
    await _until(lambda: _synced(log) and _fsync_rounds(metrics)[1] == 4, "a 4th record synced")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _committers() == []
    rlog.append(log, _rk(4), _leaf(4))
    assert not _synced(log)
    await rlog.close()
    assert _fsync_rounds(metrics)[1] == 5
    assert _keys(RelayLog(tmp_path)) == [_rk(i) for i in range(5)]


async def test_the_committer_thread_repairs_a_failed_fsync(tmp_path: Path) -> None:
    """The fsync that fails is the committer thread's own: it rewrites the unsynced records to
    a continuation segment, relays are taken again, and each record is read once."""
    fault = tmp_path / "fault"
    rlog = RelayLog(tmp_path / "logs", fsync_fault_file=fault)
    log = rlog.open(KEY)
    task = asyncio.create_task(rlog.run_committer())
    rlog.append(log, _rk(0), _leaf(0))
    await _until(lambda: _synced(log), "record 0 synced")
    fault.write_text("1")
    rlog.append(log, _rk(1), _leaf(1))
    await _until(
        lambda: rlog.fsync_failures == 1 and rlog.healthy and _synced(log) and not rlog._failing,
        "the failed fsync repaired",
    )
    rlog.check_writable()
    rlog.append(log, _rk(2), _leaf(2))
    await _until(lambda: _synced(log), "record 2 synced")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rlog.close()
    assert _keys(RelayLog(tmp_path / "logs")) == [_rk(i) for i in range(3)]
    assert len(list((tmp_path / "logs" / "eth").glob("*.log*"))) == 2


async def test_a_segment_is_closed_only_after_its_running_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fdatasync of a round runs outside the lock: a log closed meanwhile keeps the
    segment's fd open until that fsync returns (its number is never reused under it)."""
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(0), _leaf(0))
    seg = log.open_segments()[0]
    entered, go = threading.Event(), threading.Event()
    real = rlog._fdatasync

    def slow_fdatasync(segment: Any) -> None:
        entered.set()
        go.wait(30)
        real(segment)

    monkeypatch.setattr(rlog, "_fdatasync", slow_fdatasync)
    commit = asyncio.create_task(rlog.commit())
    assert await asyncio.to_thread(entered.wait, 30)
    await rlog._close_log(KEY)
    assert seg.fd is not None  # the round is still fsyncing it
    go.set()
    await commit
    assert seg.fd is None
    await rlog.close()
    assert _keys(RelayLog(tmp_path)) == [_rk(0)]
