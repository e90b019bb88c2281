"""The follower's JSON-RPC seam (``ledger.follower._ChainRpc``) against a scripted in-process
HTTP server: polls share one kept-alive connection, and every failure is a LedgerError."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from ledger.anvil import free_port
from ledger.errors import ChainRPCError, ChainUnavailable
from ledger.follower import _ChainRpc

Answer = Callable[[dict[str, object]], bytes]


class Rpc:
    """Answers each JSON-RPC request with ``answer(request)`` (an HTTP body); counts
    connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[dict[str, object]] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = json.loads(await reader.readexactly(length))
                self.requests.append(request)
                body = self.answer(request)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def rpc() -> AsyncIterator[Callable[[Answer], Rpc]]:
    made: list[Rpc] = []

    async def start(answer: Answer) -> Rpc:
        server = Rpc(answer)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        made.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in made:
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()


def _result(value: object) -> Answer:
    return lambda req: json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": value}).encode()


async def test_polls_share_one_kept_alive_connection(rpc) -> None:  # type: ignore[no-untyped-def]
    server = await rpc(_result({"number": "0x10", "hash": "0x" + "ab" * 32}))
    chain = _ChainRpc(server.url, timeout=10)
    try:
        for _ in range(5):
            block = await chain.call("eth_getBlockByNumber", ["latest", False])
            assert block["number"] == "0x10"
        assert server.connections == 1  # not a connection per poll
        assert [r["method"] for r in server.requests] == ["eth_getBlockByNumber"] * 5
        assert len({r["id"] for r in server.requests}) == 5
        await chain.close()  # dropped (as after a failed pass): the next call connects afresh
        await chain.call("eth_chainId", [])
        assert server.connections == 2
    finally:
        await chain.close()


async def test_failures_are_ledger_errors(rpc) -> None:  # type: ignore[no-untyped-def]
    error = await rpc(
        lambda req: json.dumps(
            {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32000, "message": "nope"}}
        ).encode()
    )
    garbage = await rpc(lambda req: b"<html>bad gateway</html>")
    chains = [_ChainRpc(error.url, 10), _ChainRpc(garbage.url, 10)]
    try:
        with pytest.raises(ChainRPCError, match="eth_chainId: nope"):
            await chains[0].call("eth_chainId", [])
        with pytest.raises(ChainUnavailable, match="not a JSON-RPC answer"):
            await chains[1].call("eth_chainId", [])
        refused = _ChainRpc(f"http://127.0.0.1:{free_port()}/", 10)  # nothing listens
        chains.append(refused)
        with pytest.raises(ChainUnavailable, match="unreachable"):
            await refused.call("eth_chainId", [])
        bad = _ChainRpc(
            f"ws://127.0.0.1:{free_port()}/", 10
        )  # refused on every call, never a crash
        chains.append(bad)
        with pytest.raises(ChainUnavailable, match="URL refused"):
            await bad.call("eth_blockNumber", [])
    finally:
        for chain in chains:
            await chain.close()
