"""Start and stop anvil — the settlement chain and EVM backend of the devnet and the tests.

anvil comes from npm (``@foundry-rs/anvil``) installed into ``tools/anvil`` by the Makefile; the
binary ships in a per-platform optional dependency. ``RELAYNET_ANVIL`` names another binary.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import orjson

__all__ = [
    "DEV_ACCOUNTS",
    "AnvilError",
    "AnvilProcess",
    "ManagedChild",
    "find_anvil",
    "free_port",
    "stop_child",
]

# anvil's default mnemonic ("test test … junk"): the first ten dev accounts, funded by anvil.
DEV_ACCOUNTS: tuple[tuple[str, str], ...] = (
    (
        "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    (
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    (
        "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ),
    (
        "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    ),
    (
        "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    ),
    (
        "0x9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    ),
    (
        "0x976ea74026e726554db657fa54763abd0c3a0aa9",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    ),
    (
        "0x14dc79964da2c08b23698b3d3cc7ca32193d9955",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    ),
    (
        "0x23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    ),
    (
        "0xa0ee7a142d267c1f36714e4a8f75612f20a79720",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ),
)

_REPO = Path(__file__).resolve().parent.parent


class AnvilError(RuntimeError):
    """anvil could not be found or did not come up."""


def find_anvil() -> str:
    """The anvil binary: ``$RELAYNET_ANVIL``, the project-local npm install, or ``PATH``."""
    override = os.environ.get("RELAYNET_ANVIL")
    if override:
        return override
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = platform.system().lower()
    local = _REPO / "tools" / "anvil" / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}"
    candidate = local / "bin" / "anvil"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilError(
        "anvil not found: run `make setup` (installs @foundry-rs/anvil into tools/anvil) "
        "or set RELAYNET_ANVIL"
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


class ManagedChild:
    """A child process as a context manager: ``with`` starts it unless it runs already, and
    stops it on the way out (anvil here; the test launchers of our servers and Redis)."""

    _proc: subprocess.Popen[bytes] | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class AnvilProcess(ManagedChild):
    """One anvil on a free loopback port. Use as a context manager, or ``start``/``stop``.

    ``block_time`` None means blocks are mined per transaction (automine); tests advance
    blocks with ``mine``.
    """

    chain_id: int = 31337
    block_time: float | None = None
    port: int = 0
    accounts: int = 10
    balance_eth: int = 10_000
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        binary = find_anvil()
        if not self.port:
            self.port = free_port()
        args = [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_eth),
            "--silent",
        ]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += self.extra_args
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            if self.log_path and not isinstance(out, int):
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AnvilError(f"anvil exited with code {self._proc.returncode}")
            with contextlib.suppress(OSError, AnvilError):
                if self.rpc("eth_chainId") is not None:
                    return self
            time.sleep(0.05)
        self.stop()
        raise AnvilError(f"anvil did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc)

    def rpc(self, method: str, params: list[object] | None = None) -> object:
        """One blocking JSON-RPC call (set-up and tests; never on a hot path)."""
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        req = urllib.request.Request(  # noqa: S310 (our own loopback http URL)
            self.url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback URL)
                answer = orjson.loads(resp.read())
        except urllib.error.URLError as exc:
            raise AnvilError(f"anvil at {self.url} unreachable: {exc}") from exc
        if "error" in answer:
            raise AnvilError(f"{method}: {answer['error']}")
        return answer.get("result")

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def block_number(self) -> int:
        result = self.rpc("eth_blockNumber")
        assert isinstance(result, str)
        return int(result, 16)
