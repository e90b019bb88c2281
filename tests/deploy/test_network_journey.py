"""A network from `relaynet network deploy` alone, on a chain that is not the devnet's: deploy on
a fresh anvil with chain id 4242, register a service, fund, stake a supplier, a gateway and an
app and delegate — all with the CLI, no devnet option or state file anywhere — then run a
relayer and a gateway (production mode, ``devnet = false``) from that deployment file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from ledger.anvil import AnvilProcess
from ledger.bootstrap import dev_account
from protocol.keys import ReceiptKey
from relayer.keyfiles import write_account_key, write_receipt_key
from relaynet.cli import app as cli
from relaynet.commands.staking_common import load_deployment
from tests.deploy.netdeploy import CHAIN_ID, Chain, fresh_chain
from tests.support.gateway_proc import GatewayProcess, add_key, write_gateway_files
from tests.support.relayer_proc import RelayerProcess, ServiceBackend, write_relayer_files

SERVICE = "anvil-eth"
PW_ENV = "JOURNEY_PW"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    yield from fresh_chain(tmp_path)


def _spec(tmp: Path) -> Path:
    """A chain spec of the Ethereum backend (an anvil, chain id 31337) under our own id."""
    source = Path(__file__).resolve().parents[2] / "rollups" / "catalogue" / "devnet.toml"
    text = source.read_text().replace('service_id = "devnet"', f'service_id = "{SERVICE}"')
    path = tmp / f"{SERVICE}.toml"
    path.write_text(text)
    return path


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, Any]]:
    async def post() -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(url, json=body) as response,
        ):
            return response.status, await response.json(content_type=None)

    return asyncio.run(post())


@pytest.mark.slow
def test_deploy_stake_and_serve_on_another_chain(chain: Chain) -> None:
    out = chain.tmp / "deployment.json"
    deployed = chain.deploy(out)
    assert deployed.returncode == 0, deployed.stderr
    deployment = load_deployment(out)
    assert deployment.chain_id == CHAIN_ID != 31337

    roles = {"supplier": dev_account(1), "gateway": dev_account(2), "app": dev_account(3)}
    stores = {}
    for role, key in roles.items():
        stores[role] = chain.tmp / f"{role}.json"
        write_account_key(stores[role], key, "pw", iterations=1024)
    receipt = ReceiptKey.generate()
    receipt_file = chain.tmp / "receipt.key"
    write_receipt_key(receipt_file, receipt)
    runner = CliRunner(env={PW_ENV: "pw"})

    def run(role: str | None, *argv: str) -> str:
        keys = (
            chain.key_args()
            if role is None
            else ["--keystore", str(stores[role]), "--passphrase-env", PW_ENV]
        )
        result = runner.invoke(cli, [*argv, "--deployment", str(out), *keys, "--yes"])
        assert result.exit_code == 0, (argv, result.output)
        return result.output

    with AnvilProcess() as backend:  # the Ethereum node the supplier serves
        relayer_files = write_relayer_files(
            chain.tmp / "relayer",
            rpc_url=chain.url,
            deployment=out.read_text(),
            account=roles["supplier"],
            receipt=receipt,
            services={SERVICE: ServiceBackend(backend.url, chain=str(_spec(chain.tmp)))},
        )
        run(None, "chain", "register", "--spec", str(_spec(chain.tmp)), "--probe", backend.url)
        for role in roles:
            run(None, "token", "transfer", "0x" + roles[role].address.hex(), "1000rly")
        endpoint = f"{SERVICE}={relayer_files.relay_url}"
        run("supplier", "supplier", "stake", "--amount", "200rly",
            "--service", endpoint, "--receipt-key", str(receipt_file))  # fmt: skip
        run("gateway", "gateway", "stake", "--url", "https://gw.example/", "--amount", "200rly")
        run("app", "app", "stake", "--service", SERVICE, "--amount", "200rly")
        run("app", "app", "delegate", "0x" + roles["gateway"].address.hex())
        # the stakes are in force from the next session: mine to its start
        head = int(chain.w3().eth.block_number)
        shape = deployment.shape
        into = (head - shape.B0) % shape.L
        chain.anvil.rpc("anvil_mine", [hex(shape.L - into + 1)])

        gateway_files = write_gateway_files(
            chain.tmp / "gateway",
            rpc_url=chain.url,
            deployment=out.read_text(),
            account=roles["gateway"],
            services={SERVICE: str(_spec(chain.tmp))},
            devnet=False,
            # production mode: private supplier ranges only where the operator allows them
            tables={"gateway": {"allow_networks": ["127.0.0.0/8"]}},
        )
        api_key = add_key(gateway_files, {SERVICE: "0x" + roles["app"].address.hex()})
        with RelayerProcess(relayer_files) as relayer, GatewayProcess(gateway_files) as gateway:
            assert relayer.pid and gateway.pid
            status, answer = _post(
                gateway.rpc_url(SERVICE, api_key),
                {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            )
            assert status == 200, answer
            assert answer["result"] == hex(31337)  # the backend's chain, through our relayer
            # the relayer runs from the same file (ready: its follower caught up on chain 4242)
            assert relayer.files.supplier == roles["supplier"].address
