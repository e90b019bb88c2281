"""Start, watch and stop the devnet's processes — and only those.

Each child runs in its own process group (``start_new_session``), so a Ctrl-C in the terminal
reaches only ``relaynet devnet up``, which then stops the children in reverse start order
(SIGTERM to the group, SIGKILL after a grace period). Every child has a pid file
``<root>/pids/<name>.pid`` holding ``pid start_time`` (``start_time`` from ``/proc/<pid>/stat``),
so ``relaynet devnet down`` — from another shell, even after the supervisor was killed — stops
exactly the processes this devnet started and never a later process that reused a pid.
Output of each child goes to ``<root>/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SUPERVISOR_NAME",
    "Child",
    "PidRecord",
    "Supervisor",
    "is_alive",
    "process_start_time",
    "read_pid_records",
    "server_command",
    "stop_records",
]


def server_command(role: str, config: str | Path, *extra: str) -> list[str]:
    """The command line of one of our servers: ``python -m relaynet <role> run --config …``."""
    return [sys.executable, "-m", "relaynet", role, "run", "--config", str(config), *extra]


SUPERVISOR_NAME = "devnet-up"


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    rest = raw.rsplit(")", 1)[-1].split()
    try:
        state, start = rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None
    return None if state == "Z" else start


@dataclass(frozen=True)
class PidRecord:
    """One pid file: which process, and how to tell it from a later one with the same pid."""

    name: str
    pid: int
    start_time: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    @classmethod
    def parse(cls, path: Path) -> PidRecord | None:
        try:
            pid_text, start_text = path.read_text().split()[:2]
            return cls(path.stem, int(pid_text), int(start_text))
        except (OSError, ValueError):
            return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    return process_start_time(pid) is not None


def read_pid_records(pid_dir: Path) -> list[PidRecord]:
    records = [PidRecord.parse(p) for p in sorted(pid_dir.glob("*.pid"))]
    return [r for r in records if r is not None]


def _signal_group(record: PidRecord, sig: signal.Signals) -> None:
    """Signal the record's process group (it leads its own session), else the process."""
    if not record.alive():
        return
    try:
        os.killpg(record.pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)
    except PermissionError:
        pass


def stop_records(records: Sequence[PidRecord], timeout: float = 8.0) -> list[PidRecord]:
    """SIGTERM each live record's group, SIGKILL what is left after ``timeout``.

    Returns the records that were still alive when asked to stop."""
    live = [r for r in records if r.alive()]
    for r in live:
        _signal_group(r, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(r.alive() for r in live):
        time.sleep(0.05)
    for r in live:
        if r.alive():
            _signal_group(r, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(r.alive() for r in live):
        time.sleep(0.05)
    return live


@dataclass
class Child:
    """A started process: its name, Popen, pid record and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    record: PidRecord
    log: Path
    tier: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """The devnet's children. ``tier`` orders shutdown: higher tiers stop first."""

    def __init__(self, root: Path) -> None:
        self.pid_dir = root / "pids"
        self.log_dir = root / "logs"
        self.children: list[Child] = []

    def record_self(self) -> None:
        """Write the supervisor's own pid file (``down`` asks it to stop first)."""
        self._write_pid(SUPERVISOR_NAME, os.getpid())

    def _write_pid(self, name: str, pid: int) -> PidRecord:
        start = process_start_time(pid) or 0
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        (self.pid_dir / f"{name}.pid").write_text(f"{pid} {start}\n")
        return PidRecord(name, pid, start)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        tier: int,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        """Start ``argv`` in its own session, output to ``logs/<name>.log``, pid file written."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, proc, self._write_pid(name, proc.pid), log, tier)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.running()]

    def stop_all(self, timeout: float = 8.0) -> None:
        """Stop every child, highest tier first (each tier in parallel), reap, drop pid files."""
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            stop_records([c.record for c in group], timeout)
            for c in group:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(timeout=1)
        self._remove_pid_files(c.name for c in self.children)
        self.children.clear()

    def forget_self(self) -> None:
        self._remove_pid_files([SUPERVISOR_NAME])

    def _remove_pid_files(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.pid_dir / f"{name}.pid").unlink()
