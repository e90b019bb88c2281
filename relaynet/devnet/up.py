"""``relaynet devnet up``: the whole network on this machine, as a sequence of named steps.

1. ``prepare``    — the state folder (refused while a devnet from it still runs);
2. ``chains``     — the settlement anvil (automine while setting up), the backends: anvils for
                    Ethereum (31337) and an EVM rollup (262144), the CometBFT and celestia-node
                    stand-ins — all started at once;
3. ``contracts``  — deploy with DESIGN §3.1's devnet parameters, register the services, fund and
                    stake three suppliers, one app per service delegated to the gateway, the
                    gateway (:func:`ledger.bootstrap.bootstrap_network`); then the settlement
                    chain mines a block a second so that sessions roll;
4. ``configs``    — keys and configs of the relayers and the gateway, one API key per app;
5. ``servers``    — three relayers and the gateway, waited for (``/readyz``);
6. ``state``      — ``state.json`` and the baseline token balances; the banner.

Then it stays in the foreground until Ctrl-C (or SIGTERM from ``relaynet devnet down``) and
stops every process it started; with ``detach`` it returns and ``down`` stops them later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import aiohttp

from ledger.anvil import find_anvil
from ledger.bootstrap import (
    AppSpec,
    GatewaySpec,
    Network,
    ServiceSpec,
    SupplierSpec,
    bootstrap_network,
)
from ledger.client import LedgerClient
from protocol.encoding import address_to_hex
from relaynet.devnet.configs import (
    write_api_keys,
    write_deployment,
    write_gateway_files,
    write_relayer_files,
)
from relaynet.devnet.plan import BLOCK_TIME, SETTLEMENT_CHAIN_ID, BackendPlan, DevnetPlan, make_plan
from relaynet.devnet.state import (
    AppState,
    DevnetError,
    DevnetState,
    GatewayState,
    Layout,
    RelayerState,
    ServiceState,
    SettlementState,
)
from relaynet.devnet.supervisor import Child, Supervisor, read_pid_records, server_command
from rollups.catalogue import catalogue

__all__ = ["Devnet", "run_devnet", "start_devnet"]

# shutdown order: the gateway first, then relayers, then backends and the settlement chain
TIER_CHAIN, TIER_RELAYER, TIER_GATEWAY = 0, 1, 2
READY_TIMEOUT = 60.0

Echo = Callable[[str], object]


@dataclass
class Devnet:
    """A started devnet: its supervisor, plan and state."""

    layout: Layout
    supervisor: Supervisor
    plan: DevnetPlan
    state: DevnetState
    started: float

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.supervisor.forget_self()


class _Stop(BaseException):
    """SIGTERM or SIGINT while up (a BaseException, like KeyboardInterrupt)."""


# --- steps -------------------------------------------------------------------------------------


_OURS = ("pids", "logs", "gateway", "state.json", "deployment.json", "baseline.json")


def prepare(layout: Layout) -> None:
    """Refuse while processes of a previous run live; clear what a previous run left."""
    live = [r for r in read_pid_records(layout.pids) if r.alive()]
    if live:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in live)
        raise DevnetError(
            f"a devnet from {layout.root} is still running: {names} — "
            f"stop it with `relaynet devnet down --state-file {layout.state_file}`"
        )
    for name in _OURS:
        path = layout.root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for path in layout.root.glob("relayer[0-9]*"):
        if path.is_dir():
            shutil.rmtree(path)
    if layout.state_file.exists():
        layout.state_file.unlink()
    layout.make()


def _python_env() -> dict[str, str]:
    """The children's environment: ours, with the project importable from any folder."""
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = project + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _anvil_argv(port: int, chain_id: int, block_time: int | None) -> list[str]:
    argv = [
        find_anvil(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        "10",
        "--balance",
        "10000",
        "--silent",
    ]
    if block_time is not None:
        argv += ["--block-time", str(block_time)]
    return argv


def _backend_argv(backend: BackendPlan, plan: DevnetPlan) -> list[str]:
    py = [sys.executable, "-m"]
    if backend.kind == "anvil":
        assert backend.chain_id is not None
        return _anvil_argv(backend.port, backend.chain_id, BLOCK_TIME)
    if backend.kind == "cometbft":
        return [*py, "rollups.standins.cometbft", "--port", str(backend.port), "--block-time", "1"]
    if backend.kind == "celestia":
        return [
            *py,
            "rollups.standins.celestia",
            "--port",
            str(backend.port),
            "--jwt-secret",
            plan.celestia_secret.hex(),
            "--block-time",
            "1",
        ]
    raise DevnetError(f"unknown backend kind {backend.kind!r}")


async def _jsonrpc_ok(session: aiohttp.ClientSession, url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    async with session.post(url, json=body) as resp:
        return resp.status == 200 and "result" in await resp.json(content_type=None)


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url) as resp:
        await resp.read()
        return True


async def _readyz(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url + "/readyz") as resp:
        await resp.read()
        return resp.status == 200


Probe = Callable[[aiohttp.ClientSession, str], Awaitable[bool]]


async def wait_ready(children: Sequence[tuple[Child, str, Probe]], within: float) -> None:
    """Poll each child's probe until all pass; fail fast (with its log) when one exits."""
    deadline = time.monotonic() + within
    pending = list(children)
    client_timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        while pending:
            still: list[tuple[Child, str, Probe]] = []
            for child, url, probe in pending:
                if not child.running():
                    raise DevnetError(
                        f"{child.name} exited with code {child.proc.returncode}; "
                        f"its log ({child.log}):\n{child.log_tail()}"
                    )
                ok = False
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    ok = await probe(session, url)
                if not ok:
                    still.append((child, url, probe))
            pending = still
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(c.name for c, _, _ in pending)
                tails = "\n".join(f"--- {c.name}:\n{c.log_tail(15)}" for c, _, _ in pending)
                raise DevnetError(f"not ready within {within:.0f}s: {names}\n{tails}")
            await asyncio.sleep(0.1)


def start_chains(sup: Supervisor, plan: DevnetPlan) -> None:
    env = _python_env()
    settlement = sup.spawn(
        "settlement-anvil",
        _anvil_argv(plan.settlement_port, SETTLEMENT_CHAIN_ID, None),
        tier=TIER_CHAIN,
    )
    probes: list[tuple[Child, str, Probe]] = [(settlement, plan.settlement_url, _jsonrpc_ok)]
    for backend in plan.backends.values():
        child = sup.spawn(backend.name, _backend_argv(backend, plan), tier=TIER_CHAIN, env=env)
        probe: Probe = _jsonrpc_ok if backend.kind == "anvil" else _answers
        probes.append((child, backend.url, probe))
    asyncio.run(wait_ready(probes, READY_TIMEOUT))


async def _deploy_and_stake(plan: DevnetPlan) -> tuple[Network, dict[str, int]]:
    specs = catalogue()
    gateway = plan.gateway
    network = await bootstrap_network(
        plan.settlement_url,
        deployer=plan.deployer,
        services=[
            ServiceSpec(
                svc.service_id,
                name=specs[svc.spec].name,
                rpc_type=specs[svc.spec].rpc_type,
                metadata_uri=f"catalogue:{svc.spec}",
            )
            for svc in plan.services
        ],
        suppliers=[
            SupplierSpec(
                key=r.account,
                endpoints={svc.service_id: r.relay_url for svc in plan.services},
                receipt_key=r.receipt,
            )
            for r in plan.relayers
        ],
        apps=[
            AppSpec(key=key, service_id=sid, gateways=[gateway.address])
            for sid, key in plan.apps.items()
        ],
        gateways=[GatewaySpec(key=gateway, url=plan.gateway_url)],
    )
    client = LedgerClient(plan.settlement_url, network.deployment, plan.deployer)
    try:
        baseline = {
            address_to_hex(r.account.address): await client.balance(r.account.address)
            for r in plan.relayers
        }
        # from here on a block a second (automine off), so sessions roll by themselves
        await client.w3.provider.make_request("evm_setIntervalMining", [BLOCK_TIME])  # type: ignore[arg-type]
    finally:
        await client.close()
    return network, baseline


def start_servers(
    sup: Supervisor, layout: Layout, plan: DevnetPlan, relayer_configs: Sequence[Path]
) -> list[Child]:
    env = _python_env()
    probes: list[tuple[Child, str, Probe]] = []
    relayers: list[Child] = []
    for r, config in zip(plan.relayers, relayer_configs, strict=True):
        child = sup.spawn(
            r.name,
            server_command("relayer", config),
            tier=TIER_RELAYER,
            env=env,
            cwd=config.parent,
        )
        relayers.append(child)
        probes.append((child, r.url, _readyz))
    gateway = sup.spawn(
        "gateway",
        server_command("gateway", layout.gateway_dir / "gateway.toml"),
        tier=TIER_GATEWAY,
        env=env,
        cwd=layout.gateway_dir,
    )
    probes.append((gateway, plan.gateway_url, _readyz))
    asyncio.run(wait_ready(probes, READY_TIMEOUT))
    return relayers


def build_state(
    plan: DevnetPlan, network: Network, api_keys: dict[str, str], relayers: Sequence[Child]
) -> DevnetState:
    specs = catalogue()
    deployment = network.deployment
    services = {}
    for svc in plan.services:
        url = f"{plan.gateway_url}/v1/{svc.service_id}/{api_keys[svc.service_id]}"
        services[svc.service_id] = ServiceState(
            gateway_url=url,
            ws_url=url.replace("http://", "ws://", 1),
            backend_url=plan.backend_of(svc).url,
            rpc_type=specs[svc.spec].rpc_type,
        )
    return DevnetState(
        settlement=SettlementState(
            rpc_url=plan.settlement_url,
            chain_id=deployment.chain_id,
            contracts={k: v.lower() for k, v in deployment.contracts.items()},
            token=deployment.token.lower(),
        ),
        gateway=GatewayState(url=plan.gateway_url, metrics_url=plan.gateway_metrics_url),
        services=services,
        relayers=tuple(
            RelayerState(
                address=address_to_hex(r.account.address),
                url=r.url,
                metrics_url=r.metrics_url,
                pid=child.pid,
            )
            for r, child in zip(plan.relayers, relayers, strict=True)
        ),
        apps=tuple(
            AppState(address=address_to_hex(key.address), api_key=api_keys[sid], service=sid)
            for sid, key in plan.apps.items()
        ),
        deployment=json.loads(deployment.to_json()),
    )


# --- the sequence ------------------------------------------------------------------------------


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    del frame
    raise _Stop(signal.Signals(signum).name)


def start_devnet(state_file: Path, *, gateway_port: int = 0, echo: Echo = print) -> Devnet:
    """Run steps 1–6; on any failure (or a signal) stop what was started and re-raise."""
    t0 = time.monotonic()

    def step(name: str, detail: str = "") -> None:
        echo(f"[{time.monotonic() - t0:5.1f}s] {name}" + (f" — {detail}" if detail else ""))

    layout = Layout(state_file.absolute())
    prepare(layout)
    sup = Supervisor(layout.root)
    sup.record_self()
    try:
        plan = make_plan(gateway_port=gateway_port)
        start_chains(sup, plan)
        step(
            "chains up",
            f"settlement {plan.settlement_url}, "
            + ", ".join(f"{b.name} {b.url}" for b in plan.backends.values()),
        )
        network, baseline = asyncio.run(_deploy_and_stake(plan))
        step(
            "contracts deployed and staked",
            f"{len(plan.services)} services, {len(plan.relayers)} suppliers, "
            f"{len(plan.apps)} apps, 1 gateway; session {network.active_session} active",
        )
        write_deployment(layout, network.deployment)
        layout.baseline.write_text(json.dumps({"balances": baseline}, indent=2) + "\n")
        relayer_configs = [write_relayer_files(layout, plan, r) for r in plan.relayers]
        write_gateway_files(layout, plan)
        api_keys = asyncio.run(write_api_keys(layout, plan))
        step("configs written", str(layout.root))
        relayers = start_servers(sup, layout, plan, relayer_configs)
        step("relayers and gateway ready", plan.gateway_url)
        state = build_state(plan, network, api_keys, relayers)
        state.write(layout.state_file)
        return Devnet(layout, sup, plan, state, t0)
    except BaseException:
        sup.stop_all()
        sup.forget_self()
        raise


def run_devnet(
    state_file: Path,
    *,
    detach: bool = False,
    gateway_port: int = 0,
    echo: Echo = print,
    banner: Callable[[Devnet], str] | None = None,
) -> int:
    """Start the devnet, print the banner, then (unless ``detach``) supervise until a signal.

    Returns the exit code."""
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            devnet = start_devnet(state_file, gateway_port=gateway_port, echo=echo)
        except _Stop as stop:
            echo(f"stopped ({stop}) while starting; every process is stopped")
            return 130
        if banner is not None:
            echo(banner(devnet))
        if detach:
            devnet.supervisor.forget_self()
            echo(f"detached: stop it with `relaynet devnet down --state-file {state_file}`")
            return 0
        reported: set[str] = set()
        try:
            while True:
                for child in devnet.supervisor.dead():
                    if child.name not in reported:
                        reported.add(child.name)
                        echo(
                            f"warning: {child.name} exited (code {child.proc.returncode}); "
                            f"log: {child.log}"
                        )
                time.sleep(0.5)
        except (_Stop, KeyboardInterrupt):
            echo("stopping the devnet …")
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            devnet.stop()
            echo("every devnet process is stopped")
            return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
