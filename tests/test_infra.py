"""The test infrastructure itself: real anvil and redis-server come up and answer."""

from __future__ import annotations

import socket

import pytest

from ledger.anvil import AnvilProcess
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
