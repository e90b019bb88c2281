"""A real redis-server on a free loopback port, for tests of the Redis paths.

``RedisServer()`` keeps nothing (a temporary folder, no persistence). ``DurableRedis(folder)``
survives ``kill -9``: append-only file with ``appendfsync always``, restarted on its port with
its data, and commands can be appended to its file while it is down."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ledger.anvil import ManagedChild, free_port, stop_child


class RedisMissing(RuntimeError):
    pass


def redis_argv(directory: Path | str, *, port: int, bind: str, durable: bool) -> list[str]:
    """``redis-server``'s arguments: no RDB snapshots; with ``durable`` an AOF fsynced on every
    write (a restart keeps the data), otherwise no persistence."""
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    return ["--port", str(port), "--bind", bind, "--save", "", *aof, "--dir", str(directory)]


@dataclass
class RedisServer(ManagedChild):
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    durable = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path | None:
        return Path(self._dir.name) if self._dir else None

    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="relaynet-redis-")
        return Path(self._dir.name)

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisMissing("redis-server is not installed: run `make setup`")
        self.port = self.port or free_port()
        argv = redis_argv(self._directory(), port=self.port, bind="127.0.0.1", durable=self.durable)
        self._proc = subprocess.Popen(
            [binary, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
        self.stop()
        raise RuntimeError("redis-server did not come up")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, connections reset — Redis simply disappears."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class DurableRedis(RedisServer):
    """A real redis-server in ``directory`` whose data outlives a SIGKILL (AOF, ``appendfsync
    always``); ``start()`` again restarts it on its port with its data."""

    directory: Path = field(default_factory=Path)

    durable = True

    def _directory(self) -> Path:
        return self.directory

    def start(self, timeout: float = 15.0) -> DurableRedis:
        super().start(timeout)
        return self

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
