"""Operators' CLI on one real anvil: supplier top-up and endpoint moves, ``gateway status``,
``devnet status`` seeing a supplier staked later, ``--version``, ``chain list``/``catalogue``,
and every common mistake as one ``error:`` line that names the option or file and the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import Result

from ledger import bootstrap
from protocol.encoding import address_to_checksum
from protocol.keys import AccountKey
from relaynet.devnet.state import (
    DevnetState,
    GatewayState,
    Layout,
    SettlementState,
)
from relaynet.devnet.status import collect, render
from tests.support.cli_chain import UNIT, ChainEnv, chain_env, ok

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


ROLES = ("supplier", "late", "gateway", "app")


async def _network(url: str, keys: dict[str, AccountKey]) -> bootstrap.Network:
    return await bootstrap.bootstrap_network(
        url,
        services=[bootstrap.ServiceSpec("eth"), bootstrap.ServiceSpec("base")],
        suppliers=[
            bootstrap.SupplierSpec(keys["supplier"], {"eth": "http://old.example/v1/relay"})
        ],
        gateways=[bootstrap.GatewaySpec(keys["gateway"], url="https://gw.example")],
        apps=[
            bootstrap.AppSpec(
                keys["app"], "eth", gateways=[keys["gateway"].address], stake=200 * UNIT
            )
        ],
        extra_accounts=[keys["late"].address],
        token_funding=1_000 * UNIT,
    )


@dataclass
class Env(ChainEnv):
    gateway_toml: Path = Path()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with chain_env(tmp_path_factory.mktemp("operator"), ROLES, _network) as chain:
        gateway_toml = chain.tmp / "gateway.toml"
        gateway_toml.write_text(
            "[gateway]\n"
            f'private_key = "0x{chain.keys["gateway"].private_key.hex()}"\n'
            "[settlement]\n"
            f'rpc_url = "{chain.net.rpc_url}"\n'
            'deployment = "deployment.json"\n'  # relative to the config's folder
            "[keys]\n"
            'file = "keys.json"\n'
            "[services.eth]\n"
            'catalogue = "eth"\n'
        )
        yield Env(**vars(chain), gateway_toml=gateway_toml)


def one_error(result: Result, code: int = 1) -> str:
    """The failure is exactly one ``error: …`` line: no traceback, no usage box, no URL."""
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "http" not in lines[0].replace("http://127.0.0.1", "") or "endpoint" in lines[0]
    return lines[0]


def supplier_doc(env: Env, role: str) -> dict:
    address = address_to_checksum(env.keys[role].address)
    out = ok(
        env.run(
            "supplier",
            "status",
            "--address",
            address,
            "--deployment",
            str(env.deployment),
            "--json",
        )
    )
    return json.loads(out)


def test_supplier_tops_up_and_moves_its_endpoint_without_unstaking(env: Env) -> None:
    before = int(supplier_doc(env, "supplier")["stake"])
    out = ok(env.run("supplier", "top-up", "--amount", "12.5rly", *env.args("supplier"), "--yes"))
    assert "topped up: transaction 0x" in out
    assert int(supplier_doc(env, "supplier")["stake"]) == before + 125 * UNIT // 10

    out = ok(
        env.run(
            "supplier",
            "set-endpoint",
            "--service",
            "eth=https://new.example/v1/relay",
            *env.args("supplier"),
            "--yes",
        )
    )
    assert "http://old.example/v1/relay -> https://new.example/v1/relay" in out
    doc = supplier_doc(env, "supplier")
    assert doc["status"] == "staked"
    assert doc["endpoints"] == {"eth": "https://new.example/v1/relay"}


def test_gateway_status_tells_apps_the_address_to_delegate_to(env: Env) -> None:
    gateway = address_to_checksum(env.keys["gateway"].address)
    app = address_to_checksum(env.keys["app"].address)
    out = ok(env.run("gateway", "status", "--config", str(env.gateway_toml)))
    assert f"gateway {gateway}: staked" in out
    assert f"{app}  service eth" in out and "services eth" in out
    assert f"relaynet app delegate {gateway}" in out
    doc = json.loads(
        ok(
            env.run(
                "gateway",
                "status",
                "--address",
                gateway,
                "--deployment",
                str(env.deployment),
                "--json",
            )
        )
    )
    assert doc["address"] == gateway and doc["url"] == "https://gw.example"
    assert doc["delegations"] == {app: "eth"} and doc["services"] == ["eth"]


def test_devnet_status_lists_a_supplier_staked_later(env: Env, tmp_path: Path) -> None:
    late = address_to_checksum(env.keys["late"].address)
    ok(
        env.run(
            "supplier",
            "stake",
            "--amount",
            "500rly",
            "--service",
            "base=http://late.example/v1/relay",
            "--receipt-key",
            str(env.receipt_key),
            *env.args("late"),
            "--yes",
        )
    )
    layout = Layout(tmp_path / "state.json")
    layout.deployment.write_text(env.deployment.read_text())
    settlement = SettlementState(env.net.rpc_url, 31337, {}, env.net.deployment.token)
    state = DevnetState(settlement, GatewayState("", ""), {}, (), ())
    report = collect(state, layout)
    rows = {r["address"]: r for r in report.relayers}
    assert rows[late]["staked"] and rows[late]["services"] == ["base"]
    assert address_to_checksum(env.keys["supplier"].address) in rows
    text = render(report)
    assert "every staked supplier" in text and "staked" in text.splitlines()[2]  # a header
    assert late in text


def test_version_and_chain_list_says_what_it_lists(env: Env) -> None:
    assert ok(env.run("--version")).strip() == f"relaynet {version('relaynet')}"
    out = ok(env.run("chain", "list", "--deployment", str(env.deployment)))
    assert out.startswith("Services registered on chain (2)")
    assert "service" in out and "owner" in out  # the header
    assert "relaynet chain catalogue" in out
    out = ok(env.run("chain", "catalogue"))
    assert out.startswith("Chain specs in the catalogue") and " eth " in out


# Ten common mistakes, each one short line naming the option or file and the fix.


def test_a_bare_amount_is_refused_with_how_to_write_it(env: Env) -> None:
    line = one_error(
        env.run("app", "stake", "--service", "eth", "--amount", "1000", *env.args("app"))
    )
    assert line == (
        "error: --amount 1000: a bare number has no unit — "
        "write it as 1000rly (tokens) or 5base (base units)"
    )
    line = one_error(env.run("token", "transfer", "0x" + "ab" * 20, "0.5eth", *env.args("app")))
    assert line.startswith("error: AMOUNT 0.5eth: wrong kind of amount here — write it as 1000rly")


def test_a_stake_below_the_minimum_says_the_minimum(env: Env) -> None:
    line = one_error(
        env.run(
            "gateway", "stake", "--amount", "5rly", "--url", "https://x", *env.args("late"), "-y"
        )
    )
    assert line == (
        "error: --amount 5rly is below the minimum gateway stake of "
        "100 RLY (100000000000000000000 base units) — stake at least 100rly"
    )


def test_an_api_key_for_a_service_the_gateway_does_not_serve_is_refused(env: Env) -> None:
    app = address_to_checksum(env.keys["app"].address)
    line = one_error(
        env.run(
            "gateway", "keys", "add", "--config", str(env.gateway_toml), "--service", f"base={app}"
        )
    )
    assert line == (
        f"error: --service base: {env.gateway_toml} serves no 'base' (its services: eth) — "
        "fix the id or add [services.base] to the config"
    )
    assert not (env.tmp / "keys.json").exists()  # nothing stored


def test_usage_mistakes_are_one_line_with_where_help_is(env: Env) -> None:
    line = one_error(env.run("app", "stake", "--service", "eth"), code=2)
    assert line == "error: Missing option '--amount' — see `relaynet app stake --help`"
    line = one_error(env.run("relayer", "status", "--config", "x.toml", "--last", "0"), code=2)
    assert "'--last'" in line and "relaynet relayer status --help" in line


def test_staking_again_points_to_top_up(env: Env) -> None:
    line = one_error(
        env.run(
            "supplier",
            "stake",
            "--amount",
            "100rly",
            "--service",
            "eth=http://x.example/v1/relay",
            "--receipt-key",
            str(env.receipt_key),
            *env.args("supplier"),
            "--yes",
        )
    )
    assert "is already a supplier (staked)" in line and "relaynet supplier top-up" in line


def test_moving_an_endpoint_of_a_service_not_served_is_refused(env: Env) -> None:
    line = one_error(
        env.run(
            "supplier", "set-endpoint", "--service", "btc=http://x", *env.args("supplier"), "--yes"
        )
    )
    assert "--service btc" in line and "does not serve 'btc' (its services: eth)" in line


def test_file_mistakes_name_the_file_and_the_fix(env: Env, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    line = one_error(env.run("token", "balance", "0x" + "00" * 20, "--deployment", str(missing)))
    assert line == (
        f"error: deployment file {missing} not found — pass --deployment FILE "
        "(or start a devnet: relaynet devnet up)"
    )
    line = one_error(env.run("app", "delegate", "0xzz", *env.args("app"), "--yes"))
    assert line == "error: GATEWAY '0xzz' is not an address — give 0x and 40 hex digits"

    bad = env.gateway_toml.parent / "gw-bad.toml"  # beside it: its relative paths still hold
    bad.write_text(env.gateway_toml.read_text().replace("[keys]", "[keys]\nfiel = 1"))
    line = one_error(env.run("gateway", "keys", "list", "--config", str(bad)))
    assert line == (
        f"error: {bad}: unknown key `keys.fiel` (did you mean `file`?) — delete it or check its "
        "spelling"
    )
    line = one_error(env.run("gateway", "keys", "list", "--config", str(tmp_path / "no.toml")))
    assert line == (
        f"error: cannot read {tmp_path / 'no.toml'}: No such file or directory — check the "
        "--config path"
    )

    relayer = tmp_path / "relayer.toml"
    relayer.write_text('data_dir = "d"\n')
    line = one_error(env.run("relayer", "status", "--config", str(relayer)))
    assert "`keys` is missing — add it" in line and "`services` is missing — add it" in line


def test_gateway_and_app_top_up_and_the_gateway_moves_its_url(env: Env) -> None:
    def doc(group: str, role: str) -> dict:
        who = address_to_checksum(env.keys[role].address)
        argv = [group, "status", "--address", who, "--deployment", str(env.deployment), "--json"]
        return json.loads(ok(env.run(*argv)))

    gw, app = int(doc("gateway", "gateway")["stake"]), int(doc("app", "app")["stake"])
    ok(env.run("gateway", "top-up", "--amount", "10rly", *env.args("gateway"), "--yes"))
    out = ok(
        env.run("gateway", "set-url", "--url", "https://gw2.example", *env.args("gateway"), "-y")
    )
    assert "https://gw.example -> https://gw2.example" in out
    ok(env.run("app", "top-up", "--amount", "1rly", *env.args("app"), "--yes"))
    after = doc("gateway", "gateway")
    assert int(after["stake"]) == gw + 10 * UNIT and after["url"] == "https://gw2.example"
    assert int(doc("app", "app")["stake"]) == app + UNIT
    ok(env.run("gateway", "set-url", "--url", "https://gw.example", *env.args("gateway"), "-y"))
