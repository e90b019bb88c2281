"""The multi-host network of ``tests/multihost``: every part on its own host (a network
namespace of :mod:`tests.support.netns`), set up with ``relaynet network deploy`` and the staking
CLI, relayers and gateways running the production configs of ``deploy/config`` (``devnet =
false``; ``allow_networks`` lists our test range).

Parameters: deploy/'s, with a claim window of ``CLAIM_WINDOW`` blocks.

Hosts (10.213.7.0/24): chain .2 (the settlement anvil, chain id 4242, 1 s blocks), eth .3 (the
Ethereum backend, an anvil with chain id 1 as the ``eth`` spec says), redis .4, gw1 .11, gw2 .12,
r1 .21, r2 .22, r3 .23."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from typer.testing import CliRunner

from ledger.anvil import find_anvil
from ledger.bootstrap import dev_account
from protocol.keys import AccountKey, ReceiptKey
from relayer.keyfiles import write_account_key, write_receipt_key
from relaynet.cli import app as cli
from relaynet.commands.staking_common import load_deployment
from tests.support.gateway_proc import add_key
from tests.support.netns import SUBNET, Host, Lab
from tests.support.redis_server import redis_argv

REPO = Path(__file__).resolve().parents[2]
CHAIN_ID = 4242
SERVICE = "eth"
PASSPHRASE = "multihost-pw"
RELAYERS = ("r1", "r2", "r3")
GATEWAYS = ("gw1", "gw2")
DELAYED = "r3"  # the relayer behind the delaying proxy
PYTHON = str(REPO / ".venv" / "bin" / "python")
CLAIM_WINDOW = 90  # blocks (1 s each): longer than the settlement RPC's outage in scenario.py


def wait_for(what: str, check: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"{what} not reached within {timeout}s (last error: {last})")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 — our own test hosts
        return bool(resp.status == 200)


def rpc(url: str, method: str, params: list[object] | None = None) -> object:
    import json

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(  # noqa: S310
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
        return json.loads(resp.read())["result"]


def _production(template: str, root: Path, extra: dict[str, str]) -> str:
    """A deploy/ config with its container paths moved under ``root``."""
    text = (REPO / "deploy" / "config" / template).read_text()
    text = text.replace("/etc/relaynet/", f"{root}/etc/").replace(
        "/var/lib/relaynet/", f"{root}/var/"
    )
    for old, new in extra.items():
        assert old in text, (template, old)
        text = text.replace(old, new)
    return text


@dataclass
class Net:
    lab: Lab
    tmp: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    api_key: str = ""
    suppliers: dict[str, str] = field(default_factory=dict)  # host -> supplier address
    env: dict[str, str] = field(default_factory=dict)

    @property
    def chain_url(self) -> str:
        return f"http://{SUBNET}.2:8545"

    @property
    def eth_url(self) -> str:
        return f"http://{SUBNET}.3:8545"

    def gateway_url(self, name: str) -> str:
        return f"http://{self.hosts[name].address}:8080/v1/{SERVICE}/{self.api_key}"

    # -- set-up -------------------------------------------------------------------------------

    def build(self) -> Net:
        for name, octet in (
            ("chain", 2),
            ("eth", 3),
            ("redis", 4),
            ("gw1", 11),
            ("gw2", 12),
            ("r1", 21),
            ("r2", 22),
            ("r3", 23),
        ):
            self.hosts[name] = self.lab.host(name, octet)
        anvil = find_anvil()
        common = ["--host", "0.0.0.0", "--port", "8545", "--silent", "--accounts", "10"]
        self.hosts["chain"].popen(
            [anvil, *common, "--chain-id", str(CHAIN_ID), "--block-time", "1"],
            log=self.tmp / "chain.log",
        )
        self.hosts["eth"].popen([anvil, *common, "--chain-id", "1"], log=self.tmp / "eth.log")
        self.start_redis()
        wait_for("settlement chain", lambda: rpc(self.chain_url, "eth_chainId") == hex(CHAIN_ID))
        wait_for("eth backend", lambda: rpc(self.eth_url, "eth_chainId") == "0x1")
        self.deploy_and_stake()
        for name in RELAYERS:
            self.start_relayer(name)
        for name in RELAYERS:
            url = f"http://{self.hosts[name].address}:8081/readyz"
            wait_for(f"{name} ready", lambda url=url: http_ok(url))
        for name in GATEWAYS:
            self.start_gateway(name)
        for name in GATEWAYS:
            url = f"http://{self.hosts[name].address}:8080/readyz"
            wait_for(f"{name} ready", lambda url=url: http_ok(url))
        return self

    def start_redis(self) -> None:
        """redis-server with its AOF fsynced on every write (a restart keeps the API keys)."""
        data = self.tmp / "redis-data"
        data.mkdir(exist_ok=True)
        self.hosts["redis"].popen(
            [
                "redis-server",
                *redis_argv(data, port=6379, bind="0.0.0.0", durable=True),
                "--protected-mode",
                "no",
            ],
            log=self.tmp / "redis.log",
        )

    def cli(self, argv: list[str], keys: list[str]) -> str:
        result = CliRunner(env={"MH_PW": PASSPHRASE}).invoke(cli, [*argv, *keys])
        assert result.exit_code == 0, (argv, result.output)
        return result.output

    def params(self) -> Path:
        """deploy/'s parameters with a claim window longer than the settlement RPC's outage
        (``CLAIM_WINDOW`` blocks at 1 s), so claims whose window is open when it returns can
        still be made."""
        text = (REPO / "deploy" / "config" / "params.toml").read_text()
        assert "\nCW = " in text
        lines = [
            f"CW = {CLAIM_WINDOW}" if line.startswith("CW = ") else line
            for line in text.split("\n")
        ]
        path = self.tmp / "params.toml"
        path.write_text("\n".join(lines))
        return path

    def deploy_and_stake(self) -> None:
        out = self.tmp / "deployment.json"
        stores: dict[str, Path] = {}
        accounts: dict[str, AccountKey] = {
            "deployer": dev_account(0),
            "gateway": dev_account(1),
            "app": dev_account(2),
        }
        for i, name in enumerate(RELAYERS):
            accounts[name] = dev_account(3 + i)
        for role, key in accounts.items():
            stores[role] = self.tmp / f"{role}.keystore.json"
            write_account_key(stores[role], key, PASSPHRASE, iterations=1024)
        pw = self.tmp / "passphrase"
        pw.write_text(PASSPHRASE + "\n")
        self.cli(
            [
                "network",
                "deploy",
                "--rpc-url",
                self.chain_url,
                "--out",
                str(out),
                "--params",
                str(self.params()),
            ],
            ["--keystore", str(stores["deployer"]), "--passphrase-file", str(pw)],
        )
        self.deployment = out
        spec = str(REPO / "rollups" / "catalogue" / "eth.toml")

        def as_(role: str, *argv: str) -> None:
            self.cli(
                [*argv, "--deployment", str(out), "--rpc-url", self.chain_url, "--yes"],
                ["--keystore", str(stores[role]), "--passphrase-env", "MH_PW"],
            )

        as_("deployer", "chain", "register", "--spec", spec, "--probe", self.eth_url)
        for role in accounts:
            if role != "deployer":
                as_("deployer", "token", "transfer", "0x" + accounts[role].address.hex(), "1000rly")
        self.receipts: dict[str, ReceiptKey] = {}
        self.accounts = accounts
        for name in RELAYERS:
            receipt = ReceiptKey.generate()
            self.receipts[name] = receipt
            rfile = self.tmp / f"{name}.receipt.json"
            write_receipt_key(rfile, receipt)
            endpoint = f"{SERVICE}=http://{self.hosts[name].address}:8081/v1/relay"
            as_(
                name,
                "supplier",
                "stake",
                "--amount",
                "200rly",
                "--service",
                endpoint,
                "--receipt-key",
                str(rfile),
            )
            self.suppliers[name] = "0x" + accounts[name].address.hex()
        as_("gateway", "gateway", "stake", "--url", "https://gw.example/", "--amount", "200rly")
        as_("app", "app", "stake", "--service", SERVICE, "--amount", "200rly")
        as_("app", "app", "delegate", "0x" + accounts["gateway"].address.hex())
        shape = load_deployment(out).shape
        head = int(str(rpc(self.chain_url, "eth_blockNumber")), 16)
        into = (head - shape.B0) % shape.L
        rpc(self.chain_url, "anvil_mine", [hex(shape.L - into + 1)])

    def _host_files(self, name: str) -> Path:
        root = self.tmp / name
        for sub in ("etc/keys", "etc/deployment", "var/relayer", "var/gateway"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "etc" / "deployment" / "deployment.json").write_text(self.deployment.read_text())
        return root

    def start_relayer(self, name: str) -> None:
        root = self.tmp / name
        if not (root / "relayer.toml").exists():
            root = self._host_files(name)
            write_account_key(
                root / "etc/keys/supplier.json", self.accounts[name], PASSPHRASE, iterations=1024
            )
            write_receipt_key(root / "etc/keys/receipt-key.json", self.receipts[name])
            # r3 listens on 8082 behind a delaying proxy on its staked port 8081 (delay 0 until
            # a test sets one with set_delay)
            ports = {"port = 8081": "port = 8082"} if name == DELAYED else {}
            (root / "relayer.toml").write_text(_production("relayer.toml", root, ports))
        env = {
            **os.environ,
            "RELAYER_PASSPHRASE": PASSPHRASE,
            "SETTLEMENT_RPC_URL": self.chain_url,
            "ETH_NODE_URL": self.eth_url,
            "ETH_NODE_WS_URL": self.eth_url.replace("http", "ws", 1),
        }
        if name == DELAYED:
            self.set_delay(0)
            self.hosts[name].popen(
                [
                    PYTHON,
                    "-m",
                    "tests.support.delay_proxy",
                    "8081",
                    "127.0.0.1:8082",
                    str(self.tmp / "delay"),
                ],
                log=root / "proxy.log",
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        self.hosts[name].popen(
            [PYTHON, "-m", "relaynet", "relayer", "run", "--config", str(root / "relayer.toml")],
            log=root / "relayer.log",
            env=env,
        )

    def set_delay(self, seconds: float) -> None:
        """The delay the proxy in front of r3 adds to each chunk towards the relayer."""
        (self.tmp / "delay").write_text(f"{seconds}\n")

    def gateway_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SETTLEMENT_RPC_URL": self.chain_url,
            "REDIS_URL": f"redis://{SUBNET}.4:6379/0",
        }

    def start_gateway(self, name: str) -> None:
        root = self._host_files(name)
        key = root / "etc" / "keys" / "gateway.key"
        key.write_text("0x" + self.accounts["gateway"].private_key.hex())
        os.chmod(key, 0o600)
        allow = f'devnet = false\nallow_networks = ["{SUBNET}.0/24"]'
        (root / "gateway.toml").write_text(
            _production("gateway.toml", root, {"devnet = false": allow})
        )
        if not self.api_key:
            self.api_key = self.add_key(root / "gateway.toml")
        self.hosts[name].popen(
            [PYTHON, "-m", "relaynet", "gateway", "run", "--config", str(root / "gateway.toml")],
            log=root / "gateway.log",
            env=self.gateway_env(),
        )

    def add_key(self, config: Path) -> str:
        services = {SERVICE: "0x" + self.accounts["app"].address.hex()}
        return add_key(config, services, env=self.gateway_env(), name="multihost", burst=1000.0)


@dataclass
class Load:
    """Bounded load: ``rate`` reads a second for ``seconds``, alternating the gateways, each a
    single POST (no retries); a distinct address per read so no cache answers it."""

    ok: int = 0
    failed: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


async def _one(session: aiohttp.ClientSession, url: str, n: int, load: Load) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": n,
        "method": "eth_getBalance",
        "params": ["0x" + f"{n + 0x1000:040x}", "latest"],
    }
    start = time.monotonic()
    try:
        async with session.post(url, json=body) as resp:
            answer = await resp.json(content_type=None)
            if resp.status == 200 and answer.get("result") == "0x0":
                load.ok += 1
                load.latencies.append(time.monotonic() - start)
                return
            load.failed.append(f"#{n} {url}: {resp.status} {str(answer)[:200]}")
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        load.failed.append(f"#{n} {url}: {exc!r}")


def run_load(urls: list[str], seconds: float, rate: float = 20.0, first: int = 0) -> Load:
    load = Load()

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks = []
            start = time.monotonic()
            for i in range(int(seconds * rate)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing of the load, not synchronisation
                n = first + i
                tasks.append(asyncio.create_task(_one(session, urls[n % len(urls)], n, load)))
            await asyncio.gather(*tasks)

    asyncio.run(main())
    return load


def session_number(net: Net) -> int:
    from session.windows import session_of

    shape = load_deployment(net.deployment).shape
    return session_of(int(str(rpc(net.chain_url, "eth_blockNumber")), 16), shape.B0, shape.L)


def session_suppliers(net: Net, first: int | None = None) -> dict[int, dict[str, str]]:
    """The suppliers of the app's sessions ``first`` … the head's (default: the head's only),
    read from the chain by a follower of our own: session -> {host name: endpoint} of the
    staked relayers it holds."""
    from ledger.follower import RegistryFollower
    from session.hydrate import hydrate
    from session.windows import session_of

    deployment = load_deployment(net.deployment)
    shape = deployment.shape
    head = int(str(rpc(net.chain_url, "eth_blockNumber")), 16)
    last = session_of(head, shape.B0, shape.L)

    async def read() -> dict[int, dict[str, str]]:
        found: dict[int, dict[str, str]] = {}
        async with RegistryFollower(net.chain_url, deployment, poll_interval=0.2) as follower:
            await follower.wait_for_block(head, timeout=60)
            for n in range(last if first is None else first, last + 1):
                session = hydrate(follower.snapshot, SERVICE, net.accounts["app"].address, n)
                assert session is not None, f"no session {n} of the app"
                held = {"0x" + s.address.hex(): s.endpoint or "" for s in session.suppliers}
                found[n] = {
                    name: held[addr] for name, addr in net.suppliers.items() if addr in held
                }
        return found

    return asyncio.run(read())
