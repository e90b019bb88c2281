"""The CometBFT and celestia-node stand-ins on their own event-loop thread, so that a test (or
the CLI under test, which runs ``asyncio.run`` itself) can use them from synchronous code and
see what reached the node."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from rollups.standins import CelestiaStandIn, CometBftStandIn, start_celestia, start_cometbft
from tests.support.threaded_app import cancel_rest


class StandIns:
    """Both stand-ins on one background event loop: ``comet`` (network
    ``rollchain_262144-1``) and ``node`` (celestia-node, ``mocha-4``)."""

    def __init__(
        self,
        jwt_secret: bytes,
        *,
        block_time: float,
        comet_height: int,
        node_height: int,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.comet: CometBftStandIn = self.run(
            start_cometbft("rollchain_262144-1", block_time=block_time, start_height=comet_height)
        )
        self.node: CelestiaStandIn = self.run(
            start_celestia(jwt_secret, "mocha-4", block_time=block_time, start_height=node_height)
        )

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the stand-ins' loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.run(self.comet.close())
        self.run(self.node.close())
        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
