"""A deployed chain on a real anvil with keystores for named roles: what the staking CLI tests
share (one per test module: module-scoped fixtures call :func:`chain_env`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from ledger.anvil import AnvilProcess
from ledger.bootstrap import Network
from protocol.keys import AccountKey, ReceiptKey
from relayer.keyfiles import write_account_key, write_receipt_key
from relaynet.cli import app as cli

UNIT = 10**18
PW_ENV = "RELAYNET_TEST_PW"
PW = "correct horse"


@dataclass
class ChainEnv:
    net: Network
    tmp: Path
    deployment: Path
    keys: dict[str, AccountKey]
    keystores: dict[str, Path]
    receipt_key: Path
    runner: CliRunner

    def args(self, role: str) -> list[str]:
        """``--deployment``, ``--keystore`` and ``--passphrase-env`` for ``role``."""
        keystore = str(self.keystores[role])
        return [
            "--deployment",
            str(self.deployment),
            "--keystore",
            keystore,
            "--passphrase-env",
            PW_ENV,
        ]

    def run(self, *argv: str) -> Result:
        return self.runner.invoke(cli, list(argv))


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


@contextmanager
def chain_env(
    tmp: Path,
    roles: tuple[str, ...],
    network: Callable[[str, dict[str, AccountKey]], Awaitable[Network]],
) -> Iterator[ChainEnv]:
    """Anvil, ``network(url, keys)`` deployed on it, a cheap keystore per role, a receipt key."""
    keys = {role: AccountKey.generate() for role in roles}
    with AnvilProcess() as node:
        net = asyncio.run(network(node.url, keys))
        deployment = tmp / "deployment.json"
        deployment.write_text(net.deployment.to_json())
        keystores = {role: tmp / f"{role}.keystore.json" for role in roles}
        for role, key in keys.items():
            write_account_key(keystores[role], key, PW, iterations=1024)  # cheap KDF
        receipt_key = tmp / "receipt.key"
        write_receipt_key(receipt_key, ReceiptKey.generate())
        yield ChainEnv(
            net, tmp, deployment, keys, keystores, receipt_key, CliRunner(env={PW_ENV: PW})
        )
