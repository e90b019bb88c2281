"""What both stand-ins share: a loopback aiohttp server and a block clock.

:class:`StandInServer` runs one ``web.Application`` on ``127.0.0.1`` (a free port when ``port``
is 0) with one ``AppRunner``; :class:`BlockClock` advances a height every ``block_time`` seconds
(or only when told, with ``block_time = 0``) and wakes the waiters and subscribers of new blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

__all__ = ["BlockClock", "StandIn", "StandInServer", "run_standin"]

log = logging.getLogger("rollups.standins")

BlockListener = Callable[[int], Awaitable[None]]


class BlockClock:
    """A chain head that grows by one block every ``block_time`` seconds."""

    def __init__(self, start_height: int = 1, block_time: float = 1.0) -> None:
        if start_height < 1:
            raise ValueError("start_height must be at least 1")
        self.height = start_height
        self.block_time = block_time
        self._changed = asyncio.Condition()
        self._listeners: list[BlockListener] = []
        self._task: asyncio.Task[None] | None = None

    def on_block(self, listener: BlockListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self.block_time > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="standin-block-clock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.block_time)
            await self.advance(1)

    async def advance(self, blocks: int = 1) -> int:
        """Produce ``blocks`` new blocks now; returns the new height."""
        for _ in range(blocks):
            self.height += 1
            async with self._changed:
                self._changed.notify_all()
            for listener in list(self._listeners):
                await listener(self.height)
        return self.height

    async def wait_for(self, height: int) -> int:
        """Wait until the head reaches ``height`` (bound it with ``asyncio.timeout``)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.height >= height)
        return self.height


class StandInServer:
    """One stand-in application served on a loopback port."""

    def __init__(self, app: web.Application, name: str) -> None:
        self.app = app
        self.name = name
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("%s stand-in listening on %s:%d", self.name, host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class StandIn:
    """A node stand-in's common part: its block clock, its server, what reached it.

    A subclass sets ``clock`` and ``server`` and names its open WebSockets (closed first)."""

    clock: BlockClock
    server: StandInServer
    requests: list[dict[str, Any]]  # what reached the node (method, headers)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def height(self) -> int:
        return self.clock.height

    def _open_sockets(self) -> Iterable[web.WebSocketResponse]:
        return ()

    async def start(self, port: int = 0) -> None:
        await self.server.start(port)
        self.clock.start()

    async def close(self) -> None:
        await self.clock.stop()
        for ws in list(self._open_sockets()):
            await ws.close()
        await self.server.close()

    async def advance(self, blocks: int = 1) -> int:
        return await self.clock.advance(blocks)

    def _note(self, request: web.Request, method: str) -> None:
        self.requests.append({"method": method, "headers": dict(request.headers)})
        if len(self.requests) > 1000:
            del self.requests[:500]


async def serve_forever(server: StandInServer, port: int) -> None:
    """Run a stand-in until cancelled (the ``python -m`` entries)."""
    await server.start(port)
    print(f"{server.name} stand-in listening on {server.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def run_standin(make: Callable[[], StandIn], port: int) -> None:
    """Serve the stand-in ``make()`` builds (on the serving loop) until interrupted: the
    ``python -m`` entries."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run() -> None:
        standin = make()
        standin.clock.start()
        try:
            await serve_forever(standin.server, port)
        finally:
            await standin.clock.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
