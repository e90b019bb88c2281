"""``.devnet/state.json``: what a running devnet is, in the issue's exact shape.

Written once every process is ready (atomically: temp file, then rename) and read by
``relaynet devnet status``/``down``, the tests and any tool of the user's::

    {"settlement": {"rpc_url": "…", "chain_id": 31337, "contracts": {"Token": "0x…"},
                    "token": "0x…"},
     "gateway": {"url": "http://127.0.0.1:…", "metrics_url": "…"},
     "services": {"eth": {"gateway_url": "…/v1/eth/<key>", "ws_url": "ws://…", "backend_url": "…",
                          "rpc_type": "evm"}},
     "relayers": [{"address": "0x…", "url": "…", "metrics_url": "…", "pid": 0}],
     "apps": [{"address": "0x…", "api_key": "…", "service": "eth"}],
     "deployment": {…}}

Addresses are EIP-55 checksummed (web3.py refuses lowercase contract addresses).
``deployment`` (beyond the issue's five keys) is the full
:class:`ledger.deploy.Deployment` JSON, so the staking CLI's default ``--deployment
.devnet/state.json`` works against a devnet as is. The folder around the state file
(``Layout``) holds the rest: keys, configs, logs and pid files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.encoding import address_to_checksum
from protocol.errors import ErrorCode, RelaynetError

__all__ = [
    "DEFAULT_STATE_FILE",
    "AppState",
    "DevnetError",
    "DevnetState",
    "GatewayState",
    "Layout",
    "RelayerState",
    "ServiceState",
    "SettlementState",
    "checksummed",
]

DEFAULT_STATE_FILE = Path(".devnet") / "state.json"


class DevnetError(RelaynetError):
    """The devnet could not start, or its state folder is unusable (the message says why)."""

    code = ErrorCode.MALFORMED_INPUT


@dataclass(frozen=True)
class Layout:
    """Where a devnet keeps its files: the folder of its state file."""

    state_file: Path

    @property
    def root(self) -> Path:
        return self.state_file.parent

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def deployment(self) -> Path:
        return self.root / "deployment.json"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def baseline(self) -> Path:
        """Token balances of the relayers when the devnet came up (for "balances grew")."""
        return self.root / "baseline.json"

    def relayer_dir(self, i: int) -> Path:
        return self.root / f"relayer{i + 1}"

    def relayer_configs(self) -> list[Path]:
        return sorted(self.root.glob("relayer*/relayer.toml"))

    def make(self) -> None:
        for path in (self.root, self.pids, self.logs):
            path.mkdir(parents=True, exist_ok=True)


def checksummed(value: Any) -> Any:
    """Every ``0x`` + 40 hex string in ``value`` in its EIP-55 form (nested dicts and lists):
    web3.py and ethers refuse a lowercase contract address."""
    if isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X"):
        try:
            return address_to_checksum(bytes.fromhex(value[2:]))
        except ValueError:
            return value
    if isinstance(value, Mapping):
        return {k: checksummed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [checksummed(v) for v in value]
    return value


@dataclass(frozen=True)
class SettlementState:
    rpc_url: str
    chain_id: int
    contracts: Mapping[str, str]
    token: str


@dataclass(frozen=True)
class GatewayState:
    url: str
    metrics_url: str


@dataclass(frozen=True)
class ServiceState:
    gateway_url: str
    ws_url: str
    backend_url: str
    rpc_type: str


@dataclass(frozen=True)
class RelayerState:
    address: str
    url: str
    metrics_url: str
    pid: int


@dataclass(frozen=True)
class AppState:
    address: str
    api_key: str
    service: str


@dataclass(frozen=True)
class DevnetState:
    settlement: SettlementState
    gateway: GatewayState
    services: Mapping[str, ServiceState]
    relayers: tuple[RelayerState, ...]
    apps: tuple[AppState, ...]
    deployment: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.settlement
        out: dict[str, Any] = {
            "settlement": {
                "rpc_url": s.rpc_url,
                "chain_id": s.chain_id,
                "contracts": {name: checksummed(addr) for name, addr in s.contracts.items()},
                "token": checksummed(s.token),
            },
            "gateway": {"url": self.gateway.url, "metrics_url": self.gateway.metrics_url},
            "services": {
                sid: {
                    "gateway_url": v.gateway_url,
                    "ws_url": v.ws_url,
                    "backend_url": v.backend_url,
                    "rpc_type": v.rpc_type,
                }
                for sid, v in self.services.items()
            },
            "relayers": [
                {
                    "address": checksummed(r.address),
                    "url": r.url,
                    "metrics_url": r.metrics_url,
                    "pid": r.pid,
                }
                for r in self.relayers
            ],
            "apps": [
                {"address": checksummed(a.address), "api_key": a.api_key, "service": a.service}
                for a in self.apps
            ],
        }
        if self.deployment is not None:
            out["deployment"] = checksummed(self.deployment)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DevnetState:
        try:
            s = data["settlement"]
            g = data["gateway"]
            return cls(
                settlement=SettlementState(
                    rpc_url=str(s["rpc_url"]),
                    chain_id=int(s["chain_id"]),
                    contracts={str(k): str(v) for k, v in dict(s["contracts"]).items()},
                    token=str(s["token"]),
                ),
                gateway=GatewayState(url=str(g["url"]), metrics_url=str(g["metrics_url"])),
                services={
                    str(sid): ServiceState(
                        gateway_url=str(v["gateway_url"]),
                        ws_url=str(v["ws_url"]),
                        backend_url=str(v["backend_url"]),
                        rpc_type=str(v["rpc_type"]),
                    )
                    for sid, v in dict(data["services"]).items()
                },
                relayers=tuple(
                    RelayerState(
                        address=str(r["address"]),
                        url=str(r["url"]),
                        metrics_url=str(r["metrics_url"]),
                        pid=int(r["pid"]),
                    )
                    for r in data["relayers"]
                ),
                apps=tuple(
                    AppState(
                        address=str(a["address"]),
                        api_key=str(a["api_key"]),
                        service=str(a["service"]),
                    )
                    for a in data["apps"]
                ),
                deployment=dict(data["deployment"]) if "deployment" in data else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DevnetError(f"malformed devnet state: {exc!r}") from exc

    def write(self, path: Path) -> None:
        """Write atomically (readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)  # it holds the API keys
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> DevnetState:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise DevnetError(
                f"no devnet state at {path}: start one with `relaynet devnet up`"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DevnetError(f"cannot read devnet state {path}: {exc}") from exc
        return cls.from_dict(data)
