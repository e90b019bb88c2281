"""A small delaying TCP proxy for the multi-host tests: ``python -m tests.support.delay_proxy
LISTEN_PORT TARGET_HOST:PORT DELAY_FILE``. Each chunk from the client is forwarded after the
delay (seconds, read from DELAY_FILE for every chunk: write "0.2" to add 200 ms, "0" to stop);
the answers come back undelayed. Order is kept (one forwarding task per direction)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def _delay(path: Path) -> float:
    try:
        return max(0.0, float(path.read_text().strip() or 0))
    except (OSError, ValueError):
        return 0.0


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Path | None
) -> None:
    try:
        while chunk := await reader.read(65536):
            if delay is not None and (seconds := _delay(delay)) > 0:
                await asyncio.sleep(seconds)
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(port: int, target: str, delay: Path) -> None:
    host, _, tport = target.rpartition(":")

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(host, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(_pipe(cr, uw, delay), _pipe(ur, cw, None))

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
