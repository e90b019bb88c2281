"""Start ``relaynet gateway run`` as a real subprocess — for gateway, devnet and bench runs.

Typical use::

    files = write_gateway_files(
        tmp_path / "gw",
        rpc_url=chain.url,                      # the settlement chain
        deployment=network.deployment,          # ledger.deploy.Deployment (or its JSON text)
        account=gateway_key,                    # protocol.keys.AccountKey (staked gateway)
        services={"devnet": "devnet"},          # service id -> catalogue name or spec path
        redis_url=None,                         # or redis_server.url (then keys live in Redis)
        devnet=True,                            # allow loopback supplier endpoints
    )
    key = add_key(files, {"devnet": app_hex}, rate_limit=100, quota=0)
    with GatewayProcess(files) as gw:           # waits for /readyz
        gw.rpc_url("devnet", key)               # http://127.0.0.1:<port>/v1/devnet/<key>
        gw.ws_url("devnet", key)
        gw.kill() / gw.stop() (SIGTERM, drains) / gw.start()
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ledger.anvil import free_port
from protocol.keys import AccountKey
from tests.support.relayer_proc import PROBE_TLS

__all__ = ["GatewayFiles", "GatewayProcess", "add_key", "write_gateway_files"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GatewayFiles:
    directory: Path
    config: Path
    port: int
    metrics_port: int
    redis_url: str | None
    tls: bool = False  # serves https:// (gateway.tls_cert / tls_key)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def keys_file(self) -> Path:
        return self.directory / "keys.json"


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _q(value)
    return repr(value)


def write_gateway_files(
    directory: Path,
    *,
    rpc_url: str,
    deployment: Any,
    account: AccountKey,
    services: Mapping[str, str],
    redis_url: str | None = None,
    devnet: bool = True,
    port: int | None = None,
    metrics_port: int | None = None,
    tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> GatewayFiles:
    """``gateway.toml``, the deployment JSON, the key file (0600) in ``directory``.

    ``tables`` adds or overrides settings, e.g. ``{"relay": {"hedge_delay": 0.1}}``."""
    directory.mkdir(parents=True, exist_ok=True)
    text = deployment if isinstance(deployment, str) else deployment.to_json()
    (directory / "deployment.json").write_text(text)
    key_file = directory / "gateway.key"
    key_file.write_text("0x" + account.private_key.hex())
    os.chmod(key_file, 0o600)
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    sections: dict[str, dict[str, Any]] = {
        "gateway": {
            "listen": f"127.0.0.1:{port}",
            "metrics_listen": f"127.0.0.1:{metrics_port}",
            "devnet": devnet,
            "private_key_file": "gateway.key",
            "drain_timeout": 5.0,
            "drain_seconds": 0,
        },
        "settlement": {"rpc_url": rpc_url, "deployment": "deployment.json", "poll_interval": 0.1},
        "keys": {"reload_interval": 0.2},
        "qos": {"probe_interval": 0.5},
    }
    if redis_url is not None:
        sections["redis"] = {"url": redis_url, "retry_after": 0.5}
    else:
        sections["keys"]["file"] = "keys.json"
    for name, values in (tables or {}).items():
        sections.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for sid, source in services.items():
        lines.append(f"[services.{sid}]")
        if source.endswith(".toml"):
            lines.append(f"spec = {_q(source)}")
        else:
            lines.append(f"catalogue = {_q(source)}")
        lines.append("")
    config = directory / "gateway.toml"
    config.write_text("\n".join(lines))
    os.chmod(config, 0o600)
    tls = "tls_cert" in sections["gateway"]
    return GatewayFiles(directory, config, port, metrics_port, redis_url, tls)


def add_key(
    files: GatewayFiles,
    services: Mapping[str, str],
    *,
    name: str = "test",
    rate_limit: float = 0.0,
    burst: float = 100.0,
    quota: int = 0,
    quota_period: int = 86_400,
    quorum: int = 1,
) -> str:
    """Create an API key in the gateway's key store (file or Redis); returns the key."""
    from gateway.app import build_store, key_backend
    from gateway.keys import ApiKey, generate_key, hash_key
    from relaynet.config import load_gateway as load_config

    cfg = load_config(files.config)
    key = generate_key()
    record = ApiKey(
        key_hash=hash_key(key),
        name=name,
        services=dict(services),
        rate_limit=rate_limit,
        burst=burst,
        quota=quota,
        quota_period=quota_period,
        quorum=quorum,
        created=time.time(),
    )

    async def put() -> None:
        store = build_store(cfg)
        try:
            await key_backend(cfg, store).put(record)
        finally:
            await store.close()

    asyncio.run(put())
    return key


@dataclass
class GatewayProcess:
    """``relaynet gateway run --config …`` as a subprocess; output goes to ``gateway.log``."""

    files: GatewayFiles
    ready_timeout: float = 60.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return self.files.url

    def rpc_url(self, service: str, key: str | None = None) -> str:
        return f"{self.url}/v1/{service}" + (f"/{key}" if key else "")

    def ws_url(self, service: str, key: str | None = None) -> str:
        return self.rpc_url(service, key).replace("http", "ws", 1)  # https -> wss

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.files.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.files.directory / "gateway.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> GatewayProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "relaynet",
                    "gateway",
                    "run",
                    "--config",
                    str(self.files.config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(REPO),
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(  # noqa: S310
                    f"{self.url}/readyz", timeout=1, context=PROBE_TLS
                ) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"gateway not ready within {self.ready_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        """Send SIGTERM (the gateway drains in-flight requests) without waiting."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)

    def __enter__(self) -> GatewayProcess:
        return self.start() if self._proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
