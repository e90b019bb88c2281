"""``relaynet devnet down``: stop every process a devnet started, from any shell.

The supervisor (``relaynet devnet up`` in the foreground) is asked first (SIGTERM), so it stops
its children in order; whatever is still alive afterwards — a supervisor that was killed, or a
detached devnet — is stopped from the pid files. Only recorded (pid, start time) pairs are
signalled: a later process that reused a pid is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from relaynet.devnet.state import Layout
from relaynet.devnet.supervisor import SUPERVISOR_NAME, PidRecord, read_pid_records, stop_records

__all__ = ["stop_devnet"]


def stop_devnet(state_file: Path, *, timeout: float = 30.0) -> list[PidRecord]:
    """Stop the devnet whose state file is ``state_file``; returns the records found alive."""
    layout = Layout(state_file.absolute())
    records = read_pid_records(layout.pids)
    alive = [r for r in records if r.alive()]
    for r in records:
        if r.name == SUPERVISOR_NAME and r.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(r.pid, signal.SIGTERM)  # only the process: its group may be a shell job
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and r.alive():
                time.sleep(0.1)
            if r.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(r.pid, signal.SIGKILL)
    rest = [r for r in read_pid_records(layout.pids) if r.name != SUPERVISOR_NAME]
    stop_records(rest)
    for path in layout.pids.glob("*.pid"):
        record = PidRecord.parse(path)
        if record is None or not record.alive():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return alive
