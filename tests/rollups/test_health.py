"""The health probe against real anvils: height, chain id, and the wrong chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from ledger.anvil import AnvilProcess, free_port
from rollups import (
    ChainSpec,
    HealthStatus,
    ProbeAnswer,
    catalogue,
    handler_for,
    parse_spec,
    probe,
)

EVM = handler_for("evm")


def spec_for(chain_id: int) -> ChainSpec:
    return parse_spec(
        f'service_id = "c{chain_id}"\nname = "t"\nrpc_type = "evm"\n'
        f"chain_id = {chain_id}\nfinality_depth = 2\n"
    )


async def test_probe_reads_height_and_chain_id(anvil: AnvilProcess) -> None:
    anvil.mine(7)
    expected = anvil.block_number()
    assert expected >= 7
    async with aiohttp.ClientSession() as session:
        health = await probe(catalogue()["devnet"], anvil.url, session)
    assert health.ok, health.reason
    assert health.status is HealthStatus.OK
    assert health.height == expected
    assert health.chain_id == "31337"
    anvil.mine(3)
    async with aiohttp.ClientSession() as session:
        again = await probe(catalogue()["devnet"], {"rpc": anvil.url}, session)
    assert again.height == expected + 3


async def test_backend_on_another_chain_is_the_wrong_chain(
    anvil_factory: Callable[..., AnvilProcess],
) -> None:
    other = anvil_factory(chain_id=4242)
    async with aiohttp.ClientSession() as session:
        wrong = await probe(catalogue()["devnet"], other.url, session)
        right = await probe(spec_for(4242), other.url, session)
        mainnet = await probe(catalogue()["eth"], other.url, session)
    assert not wrong.ok
    assert wrong.status is HealthStatus.WRONG_CHAIN
    assert wrong.chain_id == "4242"
    assert "wrong chain" in wrong.reason and "4242" in wrong.reason and "31337" in wrong.reason
    assert right.ok and right.chain_id == "4242" and right.height == other.block_number()
    assert mainnet.status is HealthStatus.WRONG_CHAIN


async def test_unreachable_backend() -> None:
    async with aiohttp.ClientSession() as session:
        health = await probe(
            catalogue()["devnet"], f"http://127.0.0.1:{free_port()}", session, probe_timeout=2.0
        )
    assert not health.ok
    assert health.status is HealthStatus.UNREACHABLE
    assert health.height is None and health.chain_id is None


def answer(result: Any, status: int = 200) -> ProbeAnswer:
    return ProbeAnswer(status, orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": result}))


def test_read_health_cases() -> None:
    spec = catalogue()["eth"]
    good = EVM.read_health(spec, {"chain_id": answer("0x1"), "height": answer("0x10")})
    assert (good.ok, good.height, good.chain_id) == (True, 16, "1")
    syncing = EVM.read_health(
        spec,
        {
            "chain_id": answer("0x1"),
            "height": answer("0x10"),
            "syncing": answer({"currentBlock": "0x10", "highestBlock": "0x100"}),
        },
    )
    assert syncing.status is HealthStatus.SYNCING and not syncing.ok
    assert "of 256" in syncing.reason
    unsupported = ProbeAnswer(
        200, b'{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope"}}'
    )
    fine = EVM.read_health(
        spec, {"chain_id": answer("0x1"), "height": answer("0x10"), "syncing": unsupported}
    )
    assert fine.ok
    bad = EVM.read_health(spec, {"chain_id": ProbeAnswer(502, b"oops"), "height": answer("0x1")})
    assert bad.status is HealthStatus.BAD_ANSWER and not bad.ok
    no_height = EVM.read_health(spec, {"chain_id": answer("0x1"), "height": answer(None)})
    assert no_height.status is HealthStatus.BAD_ANSWER
    gone = EVM.read_health(spec, {"chain_id": None, "height": answer("0x1")})
    assert gone.status is HealthStatus.UNREACHABLE


def test_read_height() -> None:
    assert EVM.read_height(b'{"jsonrpc":"2.0","id":1,"result":"0x2a"}') == 42
    assert EVM.read_height(b'{"jsonrpc":"2.0","id":1,"result":"latest"}') is None
    assert EVM.read_height(b"nope") is None
