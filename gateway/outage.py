"""Serving through a Redis outage (DESIGN §4): heartbeats, the key snapshot, shares, the journal.

Each replica renews a heartbeat key every ``heartbeat_interval`` (TTL ``heartbeat_ttl``);
R is the number of live heartbeats at the last successful read (at least 1). On every key
reload the replica writes a snapshot file (0600; key hashes, never keys) holding the key
records, R and each key's quota count in its period. While Redis is unreachable — at start or
later — the replica serves the snapshot's keys and limits each key to rate/R (burst/R) and to
(quota − last count)/R more requests in the period, counting locally and journalling what it
counted to a file. When Redis answers again the journal is replayed first: its lines become
numbered batches (written to ``replay.json`` before they are sent), and each batch is added by
a script guarded by ``SET NX`` on ``replay:<replica>:<seq>``, so a batch counts exactly once
even when the replica dies mid-replay and replays it again after a restart. Only then does the
replica count in Redis again.

A call in flight at the moment Redis fails is ambiguous: Redis may have run its script and lost
only the reply. The replica then counts it locally as well, so such a call is counted at least
once and at most twice (never lost); usage counted during the outage lands exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.keys import ApiKey
from gateway.store.base import Admission, Charge, StoreUnavailable
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore

__all__ = ["Outage", "Snapshot"]

log = logging.getLogger("relaynet.gateway")

SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
REPLAY = "replay.json"
REPLICA = "replica-id"


def _write_private(path: Path, data: bytes) -> None:
    """Write a file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + "-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a replica knows to serve without Redis."""

    keys: dict[str, ApiKey]
    replicas: int
    counts: dict[str, tuple[int, int]]  # key hash -> (quota period, count)
    saved: float

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "saved": self.saved,
                "replicas": self.replicas,
                "keys": [r.to_json() for r in self.keys.values()],
                "counts": {h: list(pc) for h, pc in self.counts.items()},
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Snapshot:
        data = json.loads(raw)
        records = (ApiKey.from_json(d) for d in data.get("keys", []))
        return cls(
            keys={r.key_hash: r for r in records},
            replicas=max(1, int(data.get("replicas", 1))),
            counts={str(h): (int(pc[0]), int(pc[1])) for h, pc in data["counts"].items()},
            saved=float(data.get("saved", 0.0)),
        )


class Outage:
    """One replica's view of the shared store's health, and its serving rules while away."""

    def __init__(
        self,
        redis: RedisStore,
        state_dir: Path,
        *,
        heartbeat_interval: float = 5.0,
        heartbeat_ttl: float = 15.0,
        retry_after: float = 2.0,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.redis = redis
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.replica = self._replica_id()
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_ttl = heartbeat_ttl
        self.retry_after = retry_after
        self._clock = clock
        self._on_change = on_change
        self.degraded = False
        self.replicas = 1
        self._counts: dict[str, tuple[int, int]] = {}
        self._epoch = 0
        self.local = MemoryStore()
        self._lock = asyncio.Lock()
        snap = self.load_snapshot()
        if snap is not None:
            self.replicas, self._counts = snap.replicas, dict(snap.counts)

    # -- files ---------------------------------------------------------------------------
    def _replica_id(self) -> str:
        path = self.dir / REPLICA
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            text = secrets.token_hex(8)
            _write_private(path, text.encode())
        return text

    def load_snapshot(self) -> Snapshot | None:
        try:
            return Snapshot.from_bytes((self.dir / SNAPSHOT).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, IndexError):
            log.warning("the key snapshot in %s is unreadable: ignored", self.dir)
            return None

    def _journal(self, charge: Charge) -> None:
        line = json.dumps(
            [charge.tag, charge.period, charge.service, charge.count, charge.period_ttl]
        )
        fd = os.open(self.dir / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as fh:
            fh.write(line + "\n")

    def _pending(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.dir / REPLAY).read_bytes())
            return data
        except FileNotFoundError:
            return {"next_seq": 1, "batches": []}

    def _cut_journal(self) -> dict[str, Any]:
        """Turn the journal's lines into numbered batches in ``replay.json`` (written before
        the journal is emptied), and return the pending batches. Synchronous: no admission
        can interleave."""
        pending = self._pending()
        path = self.dir / JOURNAL
        try:
            lines = path.read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            lines = []
        totals: dict[tuple[str, int, str], list[Any]] = {}
        for line in lines:
            try:
                tag, period, service, count, ttl = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash
            entry = totals.setdefault((tag, period, service), [0, ttl])
            entry[0] += int(count)
        if totals:
            seq = int(pending["next_seq"])
            for (tag, period, service), (count, ttl) in totals.items():
                pending["batches"].append(
                    {
                        "seq": seq,
                        "tag": tag,
                        "period": period,
                        "service": service,
                        "count": count,
                        "ttl": ttl,
                    }
                )
                seq += 1
            pending["next_seq"] = seq
            _write_private(self.dir / REPLAY, json.dumps(pending).encode())
        if lines:
            path.unlink()
        return pending

    # -- serving -------------------------------------------------------------------------
    def lost(self) -> None:
        """A call to Redis failed: serve locally until the monitor sees it back."""
        if not self.degraded:
            self.degraded = True
            self._epoch += 1
            log.warning(
                "redis unreachable: serving the key snapshot, limits shared by R=%d", self.replicas
            )
            if self._on_change is not None:
                self._on_change(False)

    def share(self, record: ApiKey, charge: Charge) -> Charge | None:
        """This replica's share of a charge while Redis is away (None: nothing left)."""
        r = self.replicas
        quota = 0
        if charge.quota > 0:
            period, last = self._counts.get(record.key_hash, (charge.period, 0))
            if period != charge.period:
                last = 0
            quota = (charge.quota - last) // r
            if quota <= 0:
                return None
        return Charge(
            tag=f"{charge.tag}@{self._epoch}",
            rate=charge.rate / r,
            burst=charge.burst / r,
            tokens=charge.tokens,
            quota=quota,
            period=charge.period,
            period_ttl=charge.period_ttl,
            need=charge.need,
            count=charge.count,
            service=charge.service,
        )

    async def admit_local(self, record: ApiKey, charge: Charge) -> Admission:
        local = self.share(record, charge)
        if local is None:
            return Admission(False, "quota")
        adm = await self.local.admit(local)
        if adm.ok and charge.count > 0:
            self._journal(charge)
        return adm

    # -- snapshot and heartbeat ----------------------------------------------------------
    async def after_reload(self, keys: Mapping[str, ApiKey], clock: float) -> None:
        """Refresh the snapshot (called after every successful key reload)."""
        if self.degraded:
            return
        wanted = {h: int(clock) // max(1, r.quota_period) for h, r in keys.items() if r.quota > 0}
        counts = await self.redis.quota_counts(wanted)
        self._counts = {h: (wanted[h], c) for h, c in counts.items()}
        snap = Snapshot(dict(keys), self.replicas, dict(self._counts), self._clock())
        await asyncio.to_thread(_write_private, self.dir / SNAPSHOT, snap.to_bytes())

    async def beat(self) -> bool:
        """One heartbeat; then, if the journal holds anything, replay it. True when Redis is
        in use again (nothing left to replay)."""
        async with self._lock:
            try:
                self.replicas = await self.redis.heartbeat(self.replica, self.heartbeat_ttl)
                pending = self._cut_journal()
                while pending["batches"]:
                    b = pending["batches"][0]
                    guard = f"replay:{self.replica}:{b['seq']}"
                    await self.redis.replay(
                        guard,
                        b["tag"],
                        int(b["period"]),
                        b["service"],
                        int(b["count"]),
                        float(b["ttl"]),
                    )
                    pending["batches"].pop(0)
                    _write_private(self.dir / REPLAY, json.dumps(pending).encode())
                    if not pending["batches"]:
                        pending = self._cut_journal()  # usage counted meanwhile
            except StoreUnavailable:
                self.lost()
                return False
            if self.degraded:
                self.degraded = False
                log.warning("redis back: journal replayed, counting in redis again")
                if self._on_change is not None:
                    self._on_change(True)
            return True

    async def run(self) -> None:
        """Heartbeat forever (faster while Redis is away)."""
        while True:
            await self.beat()
            await asyncio.sleep(self.retry_after if self.degraded else self.heartbeat_interval)
