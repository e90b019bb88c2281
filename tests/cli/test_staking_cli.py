"""The staking CLI end to end against a real anvil: relaynet supplier / app / gateway / token
with keystore files, confirmations, transaction hashes, and clean errors (no tracebacks)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ledger.bootstrap import Network, ServiceSpec, bootstrap_network
from protocol.keys import AccountKey
from relaynet.cli import app as cli
from relaynet.commands.gateway_stake import add_to
from tests.support.cli_chain import UNIT, ChainEnv, chain_env, ok

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)

REPO = Path(__file__).resolve().parents[2]


async def _network(url: str, keys: dict[str, AccountKey]) -> Network:
    return await bootstrap_network(
        url,
        services=[ServiceSpec("eth")],
        extra_accounts=[k.address for k in keys.values()],
        token_funding=1_000 * UNIT,
        activate=False,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    roles = ("supplier", "app", "gateway", "holder")
    with chain_env(tmp_path_factory.mktemp("cli"), roles, _network) as chain:
        yield chain


def failed(result: typer.testing.Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"error: {message}" in result.output


def status(env: ChainEnv, group: str, role: str) -> dict:
    address = "0x" + env.keys[role].address.hex()
    out = ok(
        env.runner.invoke(
            cli,
            [group, "status", "--address", address, "--deployment", str(env.deployment), "--json"],
        )
    )
    return json.loads(out)


def test_supplier_stake_status_unstake_withdraw(env: ChainEnv) -> None:
    out = ok(
        env.runner.invoke(
            cli,
            [
                "supplier",
                "stake",
                "--amount",
                "150rly",
                "--service",
                "eth=http://relayer.example/v1/relay",
                "--receipt-key",
                str(env.receipt_key),
                *env.args("supplier"),
                "--yes",
            ],
        )
    )
    assert "Stake 150 RLY" in out and "eth  ->  http://relayer.example/v1/relay" in out
    assert "staked: transaction 0x" in out
    doc = status(env, "supplier", "supplier")
    assert doc["status"] == "staked" and doc["stake"] == str(150 * UNIT)
    assert doc["endpoints"] == {"eth": "http://relayer.example/v1/relay"}

    out = ok(env.runner.invoke(cli, ["supplier", "unstake", *env.args("supplier"), "--yes"]))
    assert "unstaked: transaction 0x" in out and "withdrawable from session" in out
    assert status(env, "supplier", "supplier")["status"] == "unbonding"
    failed(
        env.runner.invoke(cli, ["supplier", "withdraw", *env.args("supplier"), "--yes"]),
        "withdraw_supplier: reverted: supplier: still unbonding",
    )


def test_app_stake_delegate_undelegate_unstake_and_gateway(env: ChainEnv) -> None:
    gateway_cli = typer.Typer()
    add_to(gateway_cli)
    out = ok(
        env.runner.invoke(
            gateway_cli,
            [
                "stake",
                "--amount",
                "100rly",
                "--url",
                "https://gw.example",
                *env.args("gateway"),
                "--yes",
            ],
        )
    )
    assert "as a gateway at https://gw.example" in out
    gw = "0x" + env.keys["gateway"].address.hex()

    ok(
        env.runner.invoke(
            cli,
            [
                "app",
                "stake",
                "--service",
                "eth",
                "--amount",
                "200rly",
                *env.args("app"),
                "--yes",
            ],
        )
    )
    out = ok(env.runner.invoke(cli, ["app", "delegate", gw, *env.args("app"), "--yes"]))
    assert "delegated: transaction 0x" in out
    doc = status(env, "app", "app")
    assert (doc["service"], doc["stake"], doc["status"]) == ("eth", str(200 * UNIT), "staked")
    assert [d.lower() for d in doc["delegations"]] == [gw]
    failed(
        env.runner.invoke(cli, ["app", "delegate", gw, *env.args("app"), "--yes"]),
        "delegate: reverted: delegation: already delegated",
    )
    ok(env.runner.invoke(cli, ["app", "undelegate", gw, *env.args("app"), "--yes"]))
    assert status(env, "app", "app")["delegations"] == []
    out = ok(env.runner.invoke(cli, ["app", "unstake", *env.args("app"), "--yes"]))
    assert "withdrawable from session" in out
    assert status(env, "app", "app")["status"] == "unbonding"
    failed(
        env.runner.invoke(cli, ["app", "withdraw", *env.args("app"), "--yes"]),
        "withdraw_app: reverted: app: still unbonding",
    )
    out = ok(env.runner.invoke(gateway_cli, ["unstake", *env.args("gateway"), "--yes"]))
    assert "unstaked: transaction 0x" in out
    failed(
        env.runner.invoke(gateway_cli, ["withdraw", *env.args("gateway"), "--yes"]),
        "withdraw_gateway: reverted: gateway: still unbonding",
    )


def test_token_transfer_asks_for_confirmation(env: ChainEnv) -> None:
    to = "0x" + "ab" * 20
    args = ["token", "transfer", to, "1.5rly", *env.args("holder")]
    result = env.runner.invoke(cli, args, input="n\n")
    assert result.exit_code == 1 and "aborted: nothing was sent" in result.output
    balance = json.loads(
        ok(
            env.runner.invoke(
                cli, ["token", "balance", to, "--deployment", str(env.deployment), "--json"]
            )
        )
    )
    assert balance["balance"] == "0"

    out = ok(env.runner.invoke(cli, args, input="y\n"))
    assert "Transfer 1.5 RLY" in out and "transferred: transaction 0x" in out
    balance = json.loads(
        ok(
            env.runner.invoke(
                cli, ["token", "balance", to, "--deployment", str(env.deployment), "--json"]
            )
        )
    )
    assert balance["balance"] == str(15 * UNIT // 10)
    mine = ok(env.runner.invoke(cli, ["token", "balance", *env.args("holder")]))
    assert "998.5 RLY" in mine


def test_clear_errors_never_a_traceback(env: ChainEnv, tmp_path: Path) -> None:
    failed(
        env.runner.invoke(
            cli,
            ["token", "balance", "0x" + "00" * 20, "--deployment", str(tmp_path / "missing.json")],
        ),
        "deployment file",
    )
    wrong = CliRunner(env={"RELAYNET_TEST_PW": "wrong"})
    failed(
        wrong.invoke(
            cli, ["token", "transfer", "0x" + "ab" * 20, "1rly", *env.args("holder"), "-y"]
        ),
        "cannot decrypt keystore",
    )
    failed(
        env.runner.invoke(
            cli,
            [
                "token",
                "transfer",
                "0x" + "ab" * 20,
                "1rly",
                "--deployment",
                str(env.deployment),
                "-y",
            ],
        ),
        "a keystore is needed",
    )
    failed(
        env.runner.invoke(cli, ["token", "transfer", "0xzz", "1rly", *env.args("holder")]),
        "TO '0xzz' is not an address — give 0x and 40 hex digits",
    )
    dead = tmp_path / "dead.json"
    doc = json.loads(env.net.deployment.to_json())
    doc["rpc_url"] = "http://127.0.0.1:9"
    dead.write_text(json.dumps({"deployment": doc, "processes": {}}))  # a devnet state file
    failed(
        env.runner.invoke(cli, ["token", "balance", "0x" + "00" * 20, "--deployment", str(dead)]),
        "Token.balanceOf: settlement chain unreachable",
    )
    # the same file pointed at the live chain with --rpc-url works
    ok(
        env.runner.invoke(
            cli,
            [
                "token",
                "balance",
                "0x" + "00" * 20,
                "--deployment",
                str(dead),
                "--rpc-url",
                env.net.rpc_url,
            ],
        )
    )


def test_console_script_runs_the_staking_commands(env: ChainEnv) -> None:
    holder = "0x" + env.keys["holder"].address.hex()
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "relaynet"),
            "token",
            "balance",
            holder,
            "--deployment",
            str(env.deployment),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(json.loads(proc.stdout)["balance"]) > 0
