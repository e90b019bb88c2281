"""An aiohttp application served from its own event-loop thread on a loopback port: scripted
suppliers (the lying relayers) that a test drives from synchronous code."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from aiohttp import web

from ledger.anvil import free_port


class ThreadedApp:
    """``start()`` serves :meth:`app` on ``127.0.0.1:port`` from a daemon thread and returns
    once it listens; ``stop()`` cleans up and joins. Subclasses build the app and may open and
    close their own resources in :meth:`opened` / :meth:`closing` (on the loop)."""

    name = "threaded-app"
    shutdown_timeout = 60.0

    def __init__(self) -> None:
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    @property
    def relay_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/relay"

    def app(self) -> web.Application:
        raise NotImplementedError

    async def opened(self) -> None:
        """After the server listens."""

    async def closing(self) -> None:
        """Before the server is cleaned up."""

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{self.name} did not start")
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.run_until_complete(self._serve())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._close())
        loop.run_until_complete(cancel_rest())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        await self.opened()

    async def _close(self) -> None:
        await self.closing()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(20)


async def cancel_rest() -> None:
    """Cancel and await what the app left running (a handler still inside a stream). Left
    pending, its coroutine is closed later by the garbage collector in whatever the test process
    runs then; Python 3.11.7 reports that through pytest's unraisable hook, and a report landing
    inside an ``ast.parse`` (assertion rewriting) breaks the parser's recursion count
    (``SystemError: AST constructor recursion depth mismatch``, CPython gh-106905, fixed 3.11.8)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
