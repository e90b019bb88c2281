"""``relaynet network deploy`` on a fresh anvil with chain id 4242: a dry run sends nothing, a
deploy killed half-way and rerun makes each contract exactly once, parameters are validated
before the first transaction, and every address's code is checked against the artifacts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.artifacts import CONTRACT_NAMES
from ledger.network import FAULT_ENV, FAULT_EXIT_CODE, code_problem, create_address, journal_path
from relaynet.commands.staking_common import load_deployment
from tests.deploy.netdeploy import CHAIN_ID, Chain, fresh_chain

pytestmark = pytest.mark.slow  # starts anvil and `relaynet network` subprocesses

STEPS = 9  # six CREATEs and three wiring calls


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    yield from fresh_chain(tmp_path)


def _contracts_created(chain: Chain) -> list[str]:
    """Every address a CREATE of the deployer made (code at CREATE(deployer, n), n < nonce)."""
    w3 = chain.w3()
    return [
        a
        for a in (create_address(chain.me, n) for n in range(chain.nonce()))
        if w3.eth.get_code(a)  # type: ignore[arg-type]
    ]


def _assert_one_deployment(chain: Chain, out: Path) -> None:
    deployment = load_deployment(out)
    assert deployment.chain_id == CHAIN_ID
    assert chain.nonce() == STEPS
    created = _contracts_created(chain)
    assert created == [create_address(chain.me, n) for n in range(len(CONTRACT_NAMES))]
    assert [deployment.contracts[n] for n in CONTRACT_NAMES] == created
    show = chain.network("show", "--deployment", str(out), "--json")
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    assert set(doc["code"].values()) == {"artifact ✓"}
    assert doc["chain_id"] == CHAIN_ID


def test_dry_run_sends_nothing(chain: Chain) -> None:
    out = chain.tmp / "deployment.json"
    result = chain.deploy(out, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "nothing sent" in result.stdout
    for n, contract in enumerate(CONTRACT_NAMES):
        assert f"create {contract}" in result.stdout
        assert create_address(chain.me, n) in result.stdout
    assert "cost ≤" in result.stdout
    assert chain.nonce() == 0
    assert chain.w3().eth.block_number == 0
    assert not out.exists() and not journal_path(out).exists()


@pytest.mark.parametrize(
    ("fault", "nonce_at_kill"),
    [("after-broadcast:4", 4), ("before-broadcast:5", 4), ("after-broadcast:7", 7)],
)
def test_killed_deploy_resumes_without_a_second_copy(
    chain: Chain, fault: str, nonce_at_kill: int
) -> None:
    out = chain.tmp / "deployment.json"
    killed = chain.deploy(out, env={FAULT_ENV: fault})
    assert killed.returncode == FAULT_EXIT_CODE, killed.stderr
    assert chain.nonce() == nonce_at_kill
    assert not out.exists()
    recorded = json.loads(journal_path(out).read_text())["steps"]
    assert len(recorded) == int(fault.split(":")[1])  # recorded before its broadcast

    rerun = chain.deploy(out)
    assert rerun.returncode == 0, rerun.stderr
    assert "found" in rerun.stdout  # the recorded CREATEs were found by their nonce
    _assert_one_deployment(chain, out)

    again = chain.deploy(out)  # a complete deployment reruns as a no-op
    assert again.returncode == 0, again.stderr
    assert "sent " not in again.stdout
    assert chain.nonce() == STEPS


def test_parameters_are_validated_before_the_first_transaction(chain: Chain) -> None:
    params = chain.tmp / "params.toml"
    params.write_text("proof_probability_bps = 2500\nslash_multiplier_bps = 30000\n")
    result = chain.deploy(chain.tmp / "d.json", "--params", str(params))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --params refused: params: proof economics p*m*(1-b) >= (1-p) violated; "
        "slash_multiplier_bps is at most 1000000"
    ]
    assert chain.nonce() == 0

    params.write_text("min_stake_app = 100\n")  # a token amount without a unit
    result = chain.deploy(chain.tmp / "d.json", "--params", str(params))
    assert result.returncode == 1 and "write tokens with a unit" in result.stderr
    assert chain.nonce() == 0


def test_params_file_shapes_the_deployment(chain: Chain) -> None:
    params = chain.tmp / "params.toml"
    params.write_text(
        '[params]\nL = 12\nCW = 6\nmin_stake_supplier = "250rly"\nmax_delegations = 4\n'
    )
    out = chain.tmp / "d.json"
    result = chain.deploy(out, "--params", str(params))
    assert result.returncode == 0, result.stderr
    assert load_deployment(out).shape.L == 12 and load_deployment(out).shape.CW == 6
    shown = chain.network("params", "show", "--deployment", str(out), "--json")
    doc = json.loads(shown.stdout)
    assert doc["max_delegations"] == "4"
    assert doc["min_stake_supplier"].startswith("250 RLY")


def test_a_wrong_contract_at_an_address_is_found(chain: Chain) -> None:
    out = chain.tmp / "d.json"
    assert chain.deploy(out).returncode == 0
    doc = json.loads(out.read_text())
    doc["contracts"]["Apps"], doc["contracts"]["Suppliers"] = (
        doc["contracts"]["Suppliers"],
        doc["contracts"]["Apps"],
    )
    out.write_text(json.dumps(doc))
    show = chain.network("show", "--deployment", str(out))
    assert show.returncode == 1
    assert "not the committed artifact's runtime" in show.stdout
    assert "error: a contract's code is not the committed artifact" in show.stderr

    # the same runtime with other immutables (Services built for another Sessions)
    w3 = chain.w3()
    services = bytes(w3.eth.get_code(doc["contracts"]["Services"]))
    good = [int(doc["contracts"]["Sessions"], 16), int(doc["contracts"]["Token"], 16)]
    assert code_problem("Services", services, good) is None
    assert code_problem("Services", services, [good[0] + 1, good[1]]) == (
        "the Services immutables differ from its constructor arguments"
    )


def test_admin_handover_and_pause(chain: Chain) -> None:
    from ledger.bootstrap import dev_account
    from relayer.keyfiles import write_account_key

    new_admin = dev_account(1)
    out = chain.tmp / "d.json"
    result = chain.deploy(out, "--admin", "0x" + new_admin.address.hex())
    assert result.returncode == 0, result.stderr
    doc = json.loads(chain.network("show", "--deployment", str(out), "--json").stdout)
    assert doc["pending_admin"].lower() == "0x" + new_admin.address.hex()

    ks = chain.tmp / "admin2.json"
    write_account_key(ks, new_admin, "pw2", iterations=1024)
    (chain.tmp / "pw2").write_text("pw2\n")
    theirs = ["--keystore", str(ks), "--passphrase-file", str(chain.tmp / "pw2"), "--yes"]
    dep = ["--deployment", str(out)]
    refused = chain.network("pause", *dep, *chain.key_args()[:0], *theirs)
    assert refused.returncode == 1 and "not admin" in refused.stderr
    accepted = chain.network("admin", "accept", *dep, *theirs)
    assert accepted.returncode == 0, accepted.stderr
    assert chain.network("pause", *dep, *theirs).returncode == 0
    doc = json.loads(chain.network("show", *dep, "--json").stdout)
    assert doc["paused"] is True and doc["pending_admin"] is None
    assert doc["admin"].lower() == "0x" + new_admin.address.hex()
    old = chain.network("unpause", *dep, *chain.key_args(), "--yes")
    assert old.returncode == 1 and "not admin" in old.stderr
    assert chain.network("unpause", *dep, *theirs).returncode == 0


def test_unreachable_node_is_one_line(chain: Chain) -> None:
    from ledger.anvil import free_port

    for extra in ((), ("--dry-run",)):
        result = chain.network(
            "deploy", "--rpc-url", f"http://127.0.0.1:{free_port()}", *chain.key_args(),
            "--out", str(chain.tmp / "d.json"), *extra,
        )  # fmt: skip
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: deploy: http://127.0.0.1:"), lines
