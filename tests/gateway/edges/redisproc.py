"""A redis-server that survives ``kill -9`` (append-only file, fsync always) and can be
restarted on its port, with its data."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger.anvil import free_port


@dataclass
class DurableRedis:
    """A real redis-server whose data outlives a SIGKILL (AOF, ``appendfsync always``)."""

    directory: Path
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> DurableRedis:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed: run `make setup`"
        self.port = self.port or free_port()
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("redis-server did not come up")

    def kill(self) -> None:
        """SIGKILL: no shutdown, connections reset — Redis simply disappears."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def append_commands(self, *commands: list[str]) -> None:
        """Append commands to the append-only file while the server is down (they run at the
        next start): a change made "while the gateways could not see Redis"."""
        assert self._proc is None, "only while redis is down"
        incr = sorted((self.directory / "appendonlydir").glob("*.incr.aof"))
        assert incr, "no incremental AOF file"
        with open(incr[-1], "ab") as fh:
            for cmd in commands:
                fh.write(f"*{len(cmd)}\r\n".encode())
                for arg in cmd:
                    raw = arg.encode()
                    fh.write(b"$%d\r\n%s\r\n" % (len(raw), raw))
