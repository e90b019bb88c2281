"""``relaynet relayer check`` and ``gateway check`` on one real anvil (the settlement chain and,
for the relayer, its Ethereum backend): a wrong-chain backend, an empty gas balance, an endpoint
gateways would refuse and one that does not answer are each one ✗; exit 1 on any ✗."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import AsyncWeb3

from ledger import bootstrap
from protocol.keys import AccountKey, ReceiptKey
from relayer.keyfiles import write_receipt_key
from relaynet.checks import Check, gateway_checks, relayer_checks
from tests.support.cli_chain import PW, ChainEnv, chain_env, ok

pytestmark = pytest.mark.slow  # starts anvil

ROLES = ("supplier", "gateway")
RECEIPT = ReceiptKey.generate()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DEAD = f"http://127.0.0.1:{_closed_port()}/v1/relay"  # nothing listens there


async def _network(url: str, keys: dict[str, AccountKey]) -> bootstrap.Network:
    return await bootstrap.bootstrap_network(
        url,
        services=[bootstrap.ServiceSpec("eth")],
        suppliers=[bootstrap.SupplierSpec(keys["supplier"], {"eth": DEAD}, receipt_key=RECEIPT)],
        gateways=[bootstrap.GatewaySpec(keys["gateway"], url="https://gw.example")],
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    with chain_env(tmp_path_factory.mktemp("checks"), ROLES, _network) as chain:
        write_receipt_key(chain.tmp / "staked-receipt.key", RECEIPT)
        yield chain


def _relayer_toml(env: ChainEnv, *, chain: str = "devnet", name: str = "relayer.toml") -> Path:
    path = env.tmp / name
    path.write_text(
        'data_dir = "data"\n'
        "[keys]\n"
        f'supplier_keystore = "{env.keystores["supplier"].name}"\n'
        'receipt_key = "staked-receipt.key"\n'
        f'passphrase = "{PW}"\n'
        "[chain]\n"
        f'rpc_url = "{env.net.rpc_url}"\n'
        'deployment = "deployment.json"\n'
        "[services.eth]\n"
        f'chain = "{chain}"\n'
        f'backends = {{ rpc = "{env.net.rpc_url}" }}\n'  # the anvil: chain 31337
    )
    return path


def _by_what(checks: list[Check]) -> dict[str, Check]:
    return {c.what: c for c in checks}


def _set_eth(env: ChainEnv, wei: int) -> None:
    async def go() -> None:
        w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(env.net.rpc_url))
        address = w3.to_checksum_address(env.keys["supplier"].address)
        await w3.provider.make_request("anvil_setBalance", [address, hex(wei)])  # type: ignore[arg-type]
        await w3.provider.disconnect()  # type: ignore[attr-defined]

    asyncio.run(go())


def test_a_ready_relayer_passes_everything_but_its_dead_endpoint(env: ChainEnv) -> None:
    checks = _by_what(relayer_checks(_relayer_toml(env), devnet=True))
    passed = ["config", "keys", "backend eth", "settlement RPC", "deployment", "gas"]
    assert all(checks[w].ok for w in passed), checks
    assert "chain 31337, height" in checks["backend eth"].detail
    assert "code at all 6 contracts, shape matches" in checks["deployment"].detail
    headroom = checks["stake headroom"]
    assert headroom.ok and "a claim locks 1× what it claims" in headroom.detail
    # the staked endpoint is allowed on a devnet, but nothing answers there
    endpoint = checks["endpoint eth"]
    assert not endpoint.ok
    assert endpoint.detail.startswith(f"{DEAD} unreachable (")
    assert endpoint.detail.endswith("is `relaynet relayer run` up?")


def test_wrong_chain_backend_is_caught(env: ChainEnv) -> None:
    # the `eth` spec is mainnet (chain id 1); the backend is the anvil (31337)
    checks = _by_what(relayer_checks(_relayer_toml(env, chain="eth", name="wrong.toml")))
    backend = checks["backend eth"]
    assert not backend.ok
    assert "wrong_chain" in backend.detail and "31337" in backend.detail
    assert checks["settlement RPC"].ok  # the other checks still run


def test_empty_gas_balance_is_caught(env: ChainEnv) -> None:
    _set_eth(env, 0)
    try:
        gas = _by_what(relayer_checks(_relayer_toml(env), devnet=True))["gas"]
    finally:
        _set_eth(env, 10**21)
    assert not gas.ok
    assert gas.detail.startswith("0 ETH at 0x")
    assert "a claim and its proof cost about" in gas.detail and "800,000 gas" in gas.detail
    assert gas.detail.endswith("— send it ETH for gas")


def test_loopback_endpoint_refused_outside_a_devnet(env: ChainEnv) -> None:
    endpoint = _by_what(relayer_checks(_relayer_toml(env), devnet=False))["endpoint eth"]
    assert not endpoint.ok
    assert endpoint.detail == (
        f"{DEAD} resolves to 127.0.0.1, a loopback address: gateways refuse it outside a devnet "
        "— stake a public URL (relaynet supplier set-endpoint)"
    )


def test_cli_lists_each_check_and_exits_1_on_a_cross(env: ChainEnv) -> None:
    result = env.run("relayer", "check", "--config", str(_relayer_toml(env)), "--devnet")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("relayer check ")
    assert lines[1].startswith("✓ config: ") and lines[2].startswith("✓ keys: supplier 0x")
    assert lines[-1].startswith("✗ endpoint eth: ")
    assert "Traceback" not in result.output


def test_config_mistake_is_one_cross(env: ChainEnv) -> None:
    bad = env.tmp / "bad.toml"
    bad.write_text(_relayer_toml(env).read_text().replace("[chain]", "[chain]\nrpc = 1"))
    checks = relayer_checks(bad)
    assert [c.ok for c in checks] == [False]
    assert "unknown key `chain.rpc`" in checks[0].detail


def _gateway_toml(env: ChainEnv, name: str, store: str, *services: str) -> Path:
    """A gateway config of the staked gateway key: ``store``'s table, then ``services``."""
    path = env.tmp / name
    path.write_text(
        "[gateway]\n"
        f'private_key = "0x{env.keys["gateway"].private_key.hex()}"\n'
        "[settlement]\n"
        f'rpc_url = "{env.net.rpc_url}"\n'
        'deployment = "deployment.json"\n'
        + store
        + "".join(f'[services.{sid}]\ncatalogue = "devnet"\n' for sid in services)
    )
    return path


def test_gateway_check_passes_on_a_staked_gateway(env: ChainEnv) -> None:
    path = _gateway_toml(env, "gateway.toml", '[keys]\nfile = "keys.json"\n', "eth", "base")
    checks = _by_what(gateway_checks(path))
    assert checks["stake"].ok and checks["deployment"].ok and checks["service eth"].ok
    assert not checks["service base"].ok
    assert "base is not registered on chain" in checks["service base"].detail
    result = env.run("gateway", "check", "--config", str(path))
    assert result.exit_code == 1 and "✗ service base: " in result.output
    path.write_text(path.read_text().replace('[services.base]\ncatalogue = "devnet"\n', ""))
    ok(env.run("gateway", "check", "--config", str(path)))


def test_a_receipt_key_other_than_the_staked_one_is_caught(env: ChainEnv) -> None:
    path = _relayer_toml(env, name="other-receipt.toml")
    path.write_text(path.read_text().replace("staked-receipt.key", env.receipt_key.name))
    checks = _by_what(relayer_checks(path, devnet=True))
    assert not checks["receipt key"].ok
    assert checks["receipt key"].detail.startswith("the receipt key on chain is not the configured")


def test_gateway_check_catches_redis_down(env: ChainEnv) -> None:
    redis = f'[redis]\nurl = "redis://127.0.0.1:{_closed_port()}/0"\n'
    path = _gateway_toml(env, "gateway-redis.toml", redis, "eth")
    store = _by_what(gateway_checks(path))["key store"]
    assert not store.ok
    assert store.detail.startswith("Redis does not answer (") and store.detail.endswith("start it")
