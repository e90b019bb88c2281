"""The durable session log: framing, group commit, torn-tail recovery, read-back by ref."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relayer.relaylog import FILE_HEADER, RelayLog, SessionKey, iter_records, recover

APP = bytes(range(20))
KEY = SessionKey("eth", APP, 7)


def _leaf(i: int) -> bytes:
    return bytes([i % 256]) * 326


def _rk(i: int) -> bytes:
    return i.to_bytes(32, "big")


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


async def test_written_before_fsync_survives_process_loss(tmp_path: Path) -> None:
    """os.write puts the record in the page cache at once: a reader sees it before any fsync."""
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(1), _leaf(1))
    assert [r.relay_key for r in iter_records(rlog.path_for(KEY))] == [_rk(1)]
    await rlog.close()


@pytest.mark.parametrize("cut", [1, 5, 100, 360, 367])
async def test_torn_tail_is_cut_on_open(tmp_path: Path, cut: int) -> None:
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    for i in range(3):
        rlog.append(log, _rk(i), _leaf(i))
    await rlog.close()
    path = rlog.path_for(KEY)
    full = path.stat().st_size
    with open(path, "r+b") as fh:  # a crash in the middle of the third record
        fh.truncate(full - 368 + cut)
    reopened = RelayLog(tmp_path)
    log2 = reopened.open(KEY)
    assert log2.count == 2
    assert path.stat().st_size == len(FILE_HEADER) + 2 * 368
    reopened.append(log2, _rk(9), _leaf(9))
    await reopened.close()
    assert [r.relay_key for r in iter_records(path)] == [_rk(0), _rk(1), _rk(9)]


async def test_damaged_record_stops_the_scan(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    for i in range(3):
        rlog.append(log, _rk(i), _leaf(i))
    await rlog.close()
    path = rlog.path_for(KEY)
    data = bytearray(path.read_bytes())
    data[len(FILE_HEADER) + 368 + 100] ^= 0xFF  # flip a byte inside record 2's body
    path.write_bytes(bytes(data))
    assert recover(path) == (len(FILE_HEADER) + 368, 1)


async def test_torn_header_recovers_empty(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    path = rlog.path_for(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(FILE_HEADER[:3])
    log = rlog.open(KEY)
    assert log.count == 0
    rlog.append(log, _rk(1), _leaf(1))
    await rlog.close()
    assert len(list(iter_records(path))) == 1


async def test_delete_removes_the_log(tmp_path: Path) -> None:
    rlog = RelayLog(tmp_path)
    log = rlog.open(KEY)
    rlog.append(log, _rk(1), _leaf(1))
    await rlog.delete(KEY)
    assert not rlog.path_for(KEY).exists()
    assert rlog.existing() == []
