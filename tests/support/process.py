"""The one launcher base for our servers as subprocesses (``relaynet gateway run``,
``relaynet relayer run``): start with the repository on ``PYTHONPATH`` and output appended to a
log file, wait for ``/readyz``, stop with SIGTERM then SIGKILL, ``kill -9``, a context manager.

A subclass names its ``role`` and its files; :meth:`ServerProcess.command` and
:meth:`ServerProcess.environment` are the hooks (a relayer started inside a mount namespace
prefixes ``nsenter``)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ledger.anvil import ManagedChild, stop_child
from relaynet.devnet.supervisor import server_command

REPO = Path(__file__).resolve().parents[2]


def _probe_tls() -> ssl.SSLContext:
    """Readiness probes of our own loopback servers serving TLS: no verification (the tests
    that serve TLS check certificates where it matters, through the gateway)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


PROBE_TLS = _probe_tls()


def toml_str(value: str) -> str:
    """A TOML basic string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_str(value)
    return repr(value)


def is_ready(url: str) -> bool:
    """``GET {url}/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(  # noqa: S310
            f"{url}/readyz", timeout=1, context=PROBE_TLS if url.startswith("https") else None
        ) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ServerProcess(ManagedChild):
    """``relaynet <role> run --config <files.config>``; output goes to ``<role>.log``."""

    files: Any  # GatewayFiles | RelayerFiles: directory, config, url, metrics_port
    ready_timeout: float = 60.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    role = "server"
    stop_timeout = 10.0

    @property
    def url(self) -> str:
        url: str = self.files.url
        return url

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.files.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return Path(self.files.directory) / f"{self.role}.log"

    def command(self) -> list[str]:
        return server_command(self.role, self.files.config)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def start(self) -> Self:
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                cwd=str(REPO),
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise RuntimeError(f"{self.role} exited with {code}:\n{self.log_tail()}")
            if is_ready(self.url):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"{self.role} not ready within {self.ready_timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        """Send SIGTERM (the server drains in-flight requests) without waiting."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return proc.wait(timeout=timeout)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return stop_child(proc, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final fsync."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
