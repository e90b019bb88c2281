"""``relaynet chain register|list|show`` end to end on anvil, with the stand-ins as live probes,
and each refusal saying what to fix."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.testing
from typer.testing import CliRunner

from ledger.anvil import AnvilProcess
from ledger.bootstrap import Network, ServiceSpec, bootstrap_network
from ledger.client import LedgerClient
from protocol.keys import AccountKey
from relayer.keyfiles import write_account_key
from relaynet.cli import app as cli
from rollups.celestia import Permission
from rollups.standins import CelestiaStandIn
from tests.support.standins import StandIns

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


UNIT = 10**18
PW = "chain owner pw"

SPEC = """\
service_id = "{sid}"
name = "My rollchain"
rpc_type = "{rpc_type}"
network = "{network}"
finality_depth = 0
block_time = 1.0

[compute_units]
default = 2
max = 50

[metadata]
website = "https://rollchain.example"
"""


@dataclass
class Env:
    net: Network
    deployment: Path
    keystore: Path
    owner: AccountKey
    tmp: Path
    comet_url: str
    node: CelestiaStandIn
    runner: CliRunner

    def args(self) -> list[str]:
        return [
            "--deployment",
            str(self.deployment),
            "--keystore",
            str(self.keystore),
            "--passphrase-env",
            "CHAIN_TEST_PW",
        ]

    def spec(self, name: str, **fields: str) -> Path:
        values = {"sid": "my-rollchain", "rpc_type": "cometbft", "network": "rollchain_262144-1"}
        values.update(fields)
        path = self.tmp / name
        path.write_text(SPEC.format(**values))
        return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("chain")
    owner = AccountKey.generate()
    standin = StandIns(b"cli secret", block_time=0, comet_height=12, node_height=30)
    try:
        with AnvilProcess() as node:
            net = asyncio.run(
                bootstrap_network(
                    node.url,
                    services=[ServiceSpec("eth")],
                    extra_accounts=[owner.address],
                    token_funding=1_000 * UNIT,
                    activate=False,
                )
            )
            deployment = tmp / "deployment.json"
            deployment.write_text(net.deployment.to_json())
            keystore = tmp / "owner.keystore.json"
            write_account_key(keystore, owner, PW, iterations=1024)
            runner = CliRunner(
                env={"CHAIN_TEST_PW": PW, "NODE_JWT": standin.node.token(Permission.READ)}
            )
            yield Env(
                net, deployment, keystore, owner, tmp, standin.comet.url, standin.node, runner
            )
    finally:
        standin.stop()


def ok(result: typer.testing.Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def refused(result: typer.testing.Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def register_probed(env: Env, spec: Path) -> typer.testing.Result:
    """``relaynet chain register --spec … --probe <the CometBFT stand-in> --yes``."""
    argv = ["chain", "register", "--spec", str(spec), "--probe", env.comet_url, *env.args()]
    return env.runner.invoke(cli, [*argv, "--yes"])


def test_register_probe_list_show(env: Env) -> None:
    spec = env.spec("good.toml")
    out = ok(register_probed(env, spec))
    assert "serves rollchain_262144-1 at height 12" in out
    assert out.strip().splitlines()[-1] == "my-rollchain"  # the service id, printed last

    async def read() -> tuple[bytes, str, int, int]:
        async with LedgerClient(env.net.rpc_url, env.net.deployment) as client:
            info = await client.service("my-rollchain")
            assert info is not None
            params = await client.service_params("my-rollchain", await client.current_session() + 1)
            return info.owner, info.rpc_type, params.cu_per_relay, params.max_cu_per_relay

    owner, rpc_type, cu, max_cu = asyncio.run(read())
    assert owner == env.owner.address and rpc_type == "cometbft" and (cu, max_cu) == (2, 50)

    listed = ok(env.runner.invoke(cli, ["chain", "list", "--deployment", str(env.deployment)]))
    assert "my-rollchain" in listed and "cometbft" in listed and "eth" in listed
    shown = json.loads(
        ok(
            env.runner.invoke(
                cli,
                ["chain", "show", "my-rollchain", "--deployment", str(env.deployment), "--json"],
            )
        )
    )
    assert shown["rpc_type"] == "cometbft" and shown["metadata_uri"] == "https://rollchain.example"
    assert shown["owner"].lower() == "0x" + env.owner.address.hex()
    missing = refused(
        env.runner.invoke(cli, ["chain", "show", "nope", "--deployment", str(env.deployment)])
    )
    assert "no service 'nope' is registered" in missing


def test_register_a_celestia_spec_from_the_catalogue_without_probe(env: Env) -> None:
    spec = env.tmp / "mocha.toml"
    from rollups.catalogue import __file__ as catalogue_init

    spec.write_text((Path(catalogue_init).parent / "celestia-mocha.toml").read_text())
    out = ok(
        env.runner.invoke(cli, ["chain", "register", "--spec", str(spec), *env.args(), "--json"])
    )
    assert json.loads(out)["service_id"] == "celestia-mocha"


def test_duplicate_service_id_is_refused(env: Env) -> None:
    spec = env.spec("eth-again.toml", sid="eth")
    out = refused(
        env.runner.invoke(cli, ["chain", "register", "--spec", str(spec), *env.args(), "--yes"])
    )
    assert "service id 'eth' is already registered" in out
    assert "choose another `service_id`" in out


def test_unknown_rpc_type_is_refused(env: Env) -> None:
    spec = env.spec("grpc.toml", sid="grpc-chain", rpc_type="grpc")
    out = refused(
        env.runner.invoke(cli, ["chain", "register", "--spec", str(spec), *env.args(), "--yes"])
    )
    assert "unknown RPC type 'grpc'" in out and "use one of" in out and "cometbft" in out


def test_missing_field_is_refused(env: Env) -> None:
    spec = env.tmp / "no-name.toml"
    spec.write_text(env.spec("tmp.toml").read_text().replace('name = "My rollchain"\n', ""))
    out = refused(
        env.runner.invoke(cli, ["chain", "register", "--spec", str(spec), *env.args(), "--yes"])
    )
    assert "name: missing field — add `name`" in out


def test_probe_that_disagrees_with_the_spec_is_refused(env: Env) -> None:
    spec = env.spec("wrong-net.toml", sid="wrong-net", network="celestia")
    out = refused(register_probed(env, spec))
    assert "serves chain 'rollchain_262144-1'" in out and "fix `network`" in out
    evm = env.tmp / "evm.toml"
    evm.write_text(
        'service_id = "evm-x"\nname = "x"\nrpc_type = "evm"\nchain_id = 5\nfinality_depth = 1\n'
    )
    out = refused(
        env.runner.invoke(
            cli,
            [
                "chain",
                "register",
                "--spec",
                str(evm),
                "--probe",
                env.comet_url,
                *env.args(),
                "--yes",
            ],
        )
    )
    assert "does not answer like a 'evm' node" in out and "check `rpc_type`" in out

    async def registered() -> bool:
        async with LedgerClient(env.net.rpc_url, env.net.deployment) as client:
            return await client.service("wrong-net") is not None

    assert not asyncio.run(registered())


def test_register_a_celestia_node_probed_with_its_token(env: Env) -> None:
    spec = env.spec("da.toml", sid="my-da", rpc_type="celestia", network="mocha-4")
    base = ["chain", "register", "--spec", str(spec), "--probe", env.node.url, *env.args()]
    out = refused(env.runner.invoke(cli, [*base, "--yes"]))
    assert "missing permission" in out and "--probe-token-env" in out
    out = ok(env.runner.invoke(cli, [*base, "--probe-token-env", "NODE_JWT", "--yes"]))
    assert "serves mocha-4 at height 30" in out
    assert out.strip().splitlines()[-1] == "my-da"
