"""What the ``relaynet network`` tests share: a fresh anvil on another chain id, a cheap
keystore of the deployer, and ``relaynet network …`` (in-process, or a real subprocess when a
fault is injected)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner
from web3 import Web3

from ledger.anvil import AnvilProcess
from ledger.bootstrap import dev_account
from protocol.keys import AccountKey
from relayer.keyfiles import write_account_key
from relaynet.cli import app as cli

CHAIN_ID = 4242  # not anvil's 31337: nothing may assume the devnet's chain
PASSPHRASE = "deploy-test"


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Chain:
    anvil: AnvilProcess
    tmp: Path
    deployer: AccountKey
    keystore: Path
    passphrase_file: Path

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def me(self) -> str:
        return Web3.to_checksum_address(self.deployer.address)

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url))

    def nonce(self) -> int:
        return int(self.w3().eth.get_transaction_count(self.me))

    def key_args(self) -> list[str]:
        return ["--keystore", str(self.keystore), "--passphrase-file", str(self.passphrase_file)]

    def network(self, *argv: str, env: Mapping[str, str] | None = None) -> Ran:
        """``relaynet network ARGV``: in-process (the CLI runner), or — with ``env``, e.g. a
        fault to inject that exits the process — in a subprocess of this interpreter."""
        if env is None:
            result = CliRunner().invoke(cli, ["network", *argv])
            if result.exception and not isinstance(result.exception, SystemExit):
                raise result.exception
            return Ran(result.exit_code, result.stdout, result.stderr)
        done = subprocess.run(
            [sys.executable, "-m", "relaynet", "network", *argv],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, **env},
            cwd=self.tmp,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def deploy(self, out: Path, *extra: str, env: Mapping[str, str] | None = None) -> Ran:
        return self.network(
            "deploy", "--rpc-url", self.url, *self.key_args(), "--out", str(out), *extra, env=env
        )


def fresh_chain(tmp: Path, deployer: AccountKey | None = None) -> Iterator[Chain]:
    """A fresh anvil (chain id :data:`CHAIN_ID`) and a keystore of ``deployer`` (anvil's
    first dev account by default: funded)."""
    key = deployer or dev_account(0)
    keystore = tmp / "deployer.keystore.json"
    write_account_key(keystore, key, PASSPHRASE, iterations=1024)  # cheap KDF
    pw = tmp / "passphrase"
    pw.write_text(PASSPHRASE + "\n")
    with AnvilProcess(chain_id=CHAIN_ID) as anvil:
        yield Chain(anvil, tmp, key, keystore, pw)
