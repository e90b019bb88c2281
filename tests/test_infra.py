"""The test infrastructure itself: real anvil and redis-server come up and answer."""

from __future__ import annotations

import socket

import pytest

from ledger.anvil import AnvilProcess
from ledger.bootstrap import dev_account
from tests.support.chain import LedgerNet
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow  # starts processes (anvil, redis, our servers)


def test_anvil_answers_and_mines(anvil: AnvilProcess) -> None:
    assert anvil.rpc("eth_chainId") == hex(31337)
    before = anvil.block_number()
    anvil.mine(3)
    assert anvil.block_number() == before + 3


def test_anvil_custom_chain_id(anvil_factory) -> None:  # type: ignore[no-untyped-def]
    node = anvil_factory(chain_id=4242)
    assert node.rpc("eth_chainId") == hex(4242)


def test_anvil_stops() -> None:
    node = AnvilProcess().start()
    port = node.port
    node.stop()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_redis_answers(redis_server: RedisServer) -> None:
    with socket.create_connection(("127.0.0.1", redis_server.port)) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16).startswith(b"+PONG")


@pytest.mark.parametrize("turn", [1, 2])
async def test_ledger_net_starts_each_test_at_the_deployment(
    ledger_net: LedgerNet, turn: int
) -> None:
    """Whichever turn runs second sees what the first did unless the fixture rolled it back."""
    anvil, net = ledger_net.anvil, ledger_net.net
    other = dev_account(6).address
    assert anvil.block_number() == ledger_net.head
    async with net.client() as admin:
        assert await admin.balance(other) == 0
        await admin.transfer(other, 5)
        assert await admin.balance(other) == 5
    anvil.mine(3)
    assert anvil.block_number() == ledger_net.head + 4
