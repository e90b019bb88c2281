"""The CLI for what the contracts let a staked supplier and a service owner change, on one real
anvil: ``supplier add-service``/``remove-service``, ``supplier rotate-receipt-key`` (a new 0600
key file entry, the old key kept, the relayer picking the key valid at each session) and ``chain
transfer-ownership``/``accept-ownership``; each refusal one ``error:`` line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import bootstrap
from ledger.client import LedgerClient
from protocol.encoding import address_to_checksum
from protocol.keys import AccountKey, ReceiptKey
from relayer.keyfiles import read_receipt_keys, write_receipt_key
from relayer.keyring import ReceiptKeyring
from tests.cli.test_operator_cli import one_error
from tests.support.cli_chain import UNIT, ChainEnv, chain_env, ok

pytestmark = pytest.mark.slow  # starts processes (anvil)

ROLES = ("supplier", "owner", "heir", "stranger")
RECEIPT = ReceiptKey.generate()  # the supplier's receipt key at staking


async def _network(url: str, keys: dict[str, AccountKey]) -> bootstrap.Network:
    return await bootstrap.bootstrap_network(
        url,
        services=[
            bootstrap.ServiceSpec("eth"),
            bootstrap.ServiceSpec("base", owner=keys["owner"]),
        ],
        suppliers=[
            bootstrap.SupplierSpec(
                keys["supplier"], {"eth": "http://eth.example/v1/relay"}, receipt_key=RECEIPT
            )
        ],
        extra_accounts=[keys["heir"].address, keys["stranger"].address],
        token_funding=1_000 * UNIT,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    with chain_env(tmp_path_factory.mktemp("services"), ROLES, _network) as chain:
        yield chain


def _supplier(env: ChainEnv) -> dict[str, object]:
    out = ok(env.run("supplier", "status", *env.args("supplier"), "--json"))
    doc: dict[str, object] = json.loads(out)
    return doc


def _chain(env: ChainEnv, fn: str, *args: object) -> object:
    async def call() -> object:
        client = LedgerClient(env.net.rpc_url, env.net.deployment)
        try:
            return await getattr(client, fn)(*args)
        finally:
            await client.close()

    return asyncio.run(call())


def test_a_staked_supplier_adds_and_removes_a_service_without_unstaking(env: ChainEnv) -> None:
    out = ok(
        env.run(
            "supplier",
            "add-service",
            "--service",
            "base=http://base.example/v1/relay",
            *env.args("supplier"),
            "--yes",
        )
    )
    assert re.search(r"gateways send base relays to http://base.example/v1/relay from session "
                     r"\d+ \(block \d+\)", out)  # fmt: skip
    assert "service added: transaction 0x" in out
    doc = _supplier(env)
    assert doc["status"] == "staked"
    assert doc["endpoints"] == {
        "eth": "http://eth.example/v1/relay",
        "base": "http://base.example/v1/relay",
    }

    again = env.run(
        "supplier", "add-service", "--service", "base=http://x", *env.args("supplier"), "--yes"
    )
    assert "already serves 'base'" in one_error(again)
    unknown = env.run(
        "supplier", "add-service", "--service", "btc=http://x", *env.args("supplier"), "--yes"
    )
    assert one_error(unknown) == (
        "error: --service btc: no service 'btc' is registered on chain — see `relaynet chain list`"
    )

    out = ok(
        env.run("supplier", "remove-service", "--service", "base", *env.args("supplier"), "--yes")
    )
    assert "service removed: transaction 0x" in out
    assert _supplier(env)["endpoints"] == {"eth": "http://eth.example/v1/relay"}
    last = env.run("supplier", "remove-service", "--service", "eth", *env.args("supplier"), "--yes")
    assert "last service — unstake instead" in one_error(last)
    not_staked = env.run(
        "supplier", "add-service", "--service", "base=http://x", *env.args("heir"), "--yes"
    )
    heir = address_to_checksum(env.keys["heir"].address)
    assert one_error(not_staked) == (
        f"error: {heir} is not a staked supplier (none) — stake first with "
        "`relaynet supplier stake`"
    )


class _ChainKeys:
    """The receipt key the contract records for ``(supplier, n)`` (what the relayer's snapshot
    holds), read from the chain."""

    def __init__(self, env: ChainEnv) -> None:
        self.env = env

    def receipt_key(self, supplier: bytes, n: int) -> bytes | None:
        value = _chain(self.env, "receipt_key_at", supplier, n)
        return value if isinstance(value, bytes) else None


def test_rotating_the_receipt_key_keeps_the_old_one_for_earlier_sessions(
    env: ChainEnv, tmp_path: Path
) -> None:
    key_file = tmp_path / "receipt-key.json"
    write_receipt_key(key_file, RECEIPT)
    supplier = env.keys["supplier"].address
    relayer_keys = ReceiptKeyring(
        RECEIPT, supplier=supplier, snapshot=_ChainKeys(env), path=key_file
    )

    wrong = tmp_path / "other.json"
    write_receipt_key(wrong, ReceiptKey.generate())
    refused = env.run(
        "supplier", "rotate-receipt-key", "--receipt-key", str(wrong), *env.args("supplier"), "-y"
    )
    assert "is not in this file — pass the relayer's receipt key file" in one_error(refused)

    out = ok(
        env.run(
            "supplier",
            "rotate-receipt-key",
            "--receipt-key",
            str(key_file),
            *env.args("supplier"),
            "--yes",
        )
    )
    new, old = read_receipt_keys(key_file)
    assert old.public_key == RECEIPT.public_key and new.public_key != RECEIPT.public_key
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    said = re.search(f"new receipt key 0x{new.public_key.hex()} signs from session (\\d+)", out)
    assert said is not None
    m = int(said.group(1)) - 1  # the session the rotation was made in
    assert new.seed.hex() not in out  # the secret is never printed
    assert _chain(env, "receipt_key_at", supplier, m) == RECEIPT.public_key
    assert _chain(env, "receipt_key_at", supplier, m + 1) == new.public_key

    # the running relayer re-reads the file and signs each session with the key valid at it
    assert relayer_keys.reload()
    assert relayer_keys.for_session(m).public_key == RECEIPT.public_key
    assert relayer_keys.for_session(m + 1).public_key == new.public_key
    assert relayer_keys.current.public_key == new.public_key


def test_a_service_owner_transfers_it_in_two_steps(env: ChainEnv) -> None:
    heir = address_to_checksum(env.keys["heir"].address)
    owner = address_to_checksum(env.keys["owner"].address)
    early = env.run("chain", "accept-ownership", "--service", "base", *env.args("heir"), "-y")
    assert f"{heir} was not proposed as its owner" in one_error(early)
    stranger = env.run(
        "chain", "transfer-ownership", "--service", "base", "--to", heir,
        *env.args("stranger"), "-y",
    )  # fmt: skip
    assert f"owned by {owner}" in one_error(stranger)

    out = ok(
        env.run(
            "chain", "transfer-ownership", "--service", "base", "--to", heir,
            *env.args("owner"), "--yes",
        )
    )  # fmt: skip
    assert f"{owner} stays the owner until {heir} runs" in out
    shown = json.loads(ok(env.run("chain", "show", "base", "--deployment", str(env.deployment),
                                  "--json")))  # fmt: skip
    assert shown["owner"] == owner

    wrong = env.run("chain", "accept-ownership", "--service", "base", *env.args("stranger"), "-y")
    assert "was not proposed as its owner" in one_error(wrong)
    ok(env.run("chain", "accept-ownership", "--service", "base", *env.args("heir"), "--yes"))
    shown = json.loads(ok(env.run("chain", "show", "base", "--deployment", str(env.deployment),
                                  "--json")))  # fmt: skip
    assert shown["owner"] == heir
