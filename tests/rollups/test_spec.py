"""Chain specs: the catalogue loads; broken specs are refused with a message saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollups import ChainSpec, SpecError, catalogue, load_catalogue, load_spec, parse_spec
from rollups.catalogue import catalogue_spec

GOOD = """
service_id = "my-chain"
name = "My chain"
rpc_type = "evm"
chain_id = 777
finality_depth = 10
"""

EXPECTED = {
    "eth": ("evm", 1),
    "eth-sepolia": ("evm", 11155111),
    "op-mainnet": ("op-stack", 10),
    "base": ("op-stack", 8453),
    "arb-one": ("arbitrum", 42161),
    "arb-nova": ("arbitrum", 42170),
    "devnet": ("evm", 31337),
    "rollchain-evm": ("evm", 262144),
}
# Non-EVM entries (rollups part 2): rpc type and network name.
EXPECTED_NETWORKS = {
    "celestia": ("celestia", "celestia"),
    "celestia-mocha": ("celestia", "mocha-4"),
    "celestia-consensus": ("cometbft", "celestia"),
    "celestia-mocha-consensus": ("cometbft", "mocha-4"),
    "rollchain-rpc": ("cometbft", "rollchain_262144-1"),
    "rollchain-rest": ("cosmos-rest", "rollchain_262144-1"),
}


@pytest.mark.parametrize("service_id", sorted(EXPECTED))
def test_each_catalogue_entry_loads(service_id: str) -> None:
    spec = catalogue()[service_id]
    assert spec.service_id == service_id
    assert (spec.rpc_type, spec.chain_id) == EXPECTED[service_id]
    assert spec.identity == str(spec.chain_id)
    cu = spec.compute_units
    assert cu.price("eth_getLogs") > cu.price("eth_getBalance")
    assert cu.price("debug_traceTransaction") > cu.price("eth_getBalance")
    assert cu.price("trace_block") > cu.price("eth_getBalance")
    assert 1 <= cu.default <= cu.max
    assert spec.finality_depth > 0


def test_catalogue_is_exactly_the_shipped_set() -> None:
    assert set(catalogue()) == set(EXPECTED) | set(EXPECTED_NETWORKS)
    for service_id, (rpc_type, network) in EXPECTED_NETWORKS.items():
        spec = catalogue()[service_id]
        assert (spec.rpc_type, spec.identity) == (rpc_type, network)
    assert catalogue_spec("base").name == "Base"
    with pytest.raises(SpecError, match="known: arb-nova"):
        catalogue_spec("nope")


def test_catalogue_specifics() -> None:
    assert catalogue()["op-mainnet"].role_for("optimism_syncStatus") == "op-node"
    assert catalogue()["base"].role_for("optimism_outputAtBlock") == "op-node"
    one, nova = catalogue()["arb-one"], catalogue()["arb-nova"]
    assert one.arbitrum is not None and one.arbitrum.classic_last_block == 22_207_815
    assert nova.arbitrum is not None and nova.arbitrum.classic_last_block is None


def test_spec_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "my-chain.toml"
    path.write_text(GOOD)
    spec = load_spec(path)
    assert isinstance(spec, ChainSpec)
    assert spec.compute_units.default == 1
    assert spec.methods.allow_writes


def refused(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, origin="broken.toml")
    message = exc.value.message
    assert message.startswith("broken.toml: ")
    return message


def test_unknown_rpc_type() -> None:
    message = refused(GOOD.replace('rpc_type = "evm"', 'rpc_type = "solana"'))
    assert "rpc_type: unknown RPC type 'solana'" in message
    assert "use one of arbitrum, celestia, cometbft, cosmos-rest, evm, op-stack" in message


@pytest.mark.parametrize("field", ["service_id", "name", "rpc_type", "finality_depth"])
def test_missing_field(field: str) -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith(field))
    message = refused(text)
    assert f"{field}: missing field — add `{field}`" in message


def test_missing_chain_identity() -> None:
    message = refused(GOOD.replace("chain_id = 777", ""))
    assert "missing chain identity" in message
    assert "set `chain_id`" in message


def test_unknown_field_names_where() -> None:
    message = refused(GOOD + "chainid = 5\n")
    assert "chainid: unknown field — remove it or check its spelling" in message
    message = refused(GOOD + "[cache]\nttl = 5\n")
    assert "cache.ttl: unknown field" in message


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("default = -1", "default = -1: compute units must be at least 1"),
        ("default = 0", "default = 0: compute units must be at least 1"),
        ("max = 0", "compute units must be at least 1"),
        ("default = 50\nmax = 10", "max = 10 is below default = 50"),
        ("[compute_units.methods]\neth_getLogs = -5", "methods.eth_getLogs = -5"),
        ("[compute_units.methods]\neth_getLogs = 0", "compute units must be at least 1"),
        ("[compute_units.methods]\neth_getLogs = 500", "exceeds max = 100"),
        ('[compute_units.methods]\n"bad name!" = 5', "not a method name"),
    ],
)
def test_bad_compute_units(table: str, expected: str) -> None:
    message = refused(GOOD + "[compute_units]\n" + table + "\n")
    assert "compute_units" in message
    assert expected in message


def test_bad_service_id() -> None:
    message = refused(GOOD.replace('"my-chain"', '"My Chain!"'))
    assert "service_id: 'My Chain!' is not a service id — use 1-32 of [a-z0-9_-]" in message
    refused(GOOD.replace('"my-chain"', '"' + "a" * 33 + '"'))


def test_override_naming_unknown_class() -> None:
    message = refused(GOOD + '[methods.overrides]\neth_call = { class = "readonly" }\n')
    assert "methods.overrides.eth_call.class: unknown method class 'readonly'" in message
    assert "use one of read, write, stateful, subscription, long_poll, denied" in message


def test_override_must_say_something() -> None:
    assert "must set `class` and/or `cacheable`" in refused(
        GOOD + "[methods.overrides]\neth_call = {}\n"
    )


@pytest.mark.parametrize(
    "name", ["admin_addPeer", "admin_*", "personal_*", "debug_*", "debug_setHead"]
)
def test_override_cannot_allow_node_administration(name: str) -> None:
    message = refused(GOOD + f'[methods.overrides]\n"{name}" = {{ class = "read" }}\n')
    assert f"methods.overrides.{name}" in message
    assert "always denied" in message or "never relayed" in message


def test_override_denying_admin_is_fine() -> None:
    parse_spec(GOOD + '[methods.overrides]\n"admin_*" = { class = "denied" }\n')


def test_cacheable_write_is_inconsistent() -> None:
    message = refused(
        GOOD + '[methods.overrides]\neth_foo = { class = "write", cacheable = true }\n'
    )
    assert "only reads can be cacheable" in message


def test_backends_roles() -> None:
    message = refused(GOOD + '[backends.a]\nmethods = ["x_*"]\n[backends.b]\nmethods = ["x_*"]\n')
    assert "routed to both 'a' and 'b'" in message
    assert "remove its `methods` list" in refused(GOOD + '[backends.rpc]\nmethods = ["x_*"]\n')


def test_evm_needs_chain_id_not_network() -> None:
    message = refused(GOOD.replace("chain_id = 777", 'network = "mocha-4"'))
    assert "chain_id: missing — rpc_type 'evm' needs an EVM chain id" in message


def test_arbitrum_table_only_for_arbitrum() -> None:
    assert "arbitrum: only for rpc_type" in refused(GOOD + "[arbitrum]\nclassic_last_block = 1\n")


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid TOML" in refused("service_id = ")
    with pytest.raises(SpecError, match="cannot read chain spec"):
        load_spec(tmp_path / "absent.toml")


def test_several_problems_are_all_listed() -> None:
    message = refused(
        'service_id = "x"\nname = "x"\nrpc_type = "evm"\nchain_id = 1\nfinality_depth = -3\n'
        "[compute_units]\ndefault = 0\n"
    )
    assert "finality_depth" in message
    assert "compute_units" in message


def test_duplicate_service_id_in_a_catalogue(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD.replace("chain_id = 777", "chain_id = 778"))
    with pytest.raises(SpecError) as exc:
        load_catalogue(tmp_path)
    assert "b.toml: duplicate service id 'my-chain' (also in a.toml)" in exc.value.message


def test_catalogue_reports_broken_files(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text(GOOD.replace('"my-chain"', '"other"') + "oops = 1\n")
    with pytest.raises(SpecError, match=r"bad.toml: chain spec refused:\n  oops: unknown field"):
        load_catalogue(tmp_path)
    (tmp_path / "bad.toml").unlink()
    assert list(load_catalogue(tmp_path)) == ["my-chain"]


def test_specs_are_frozen() -> None:
    spec = parse_spec(GOOD)
    with pytest.raises(ValueError):
        spec.chain_id = 5  # type: ignore[misc]
