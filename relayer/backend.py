"""Forwarding to the backend node over a keep-alive aiohttp pool (the transport seam).

:class:`AiohttpTransport` sends the payload byte for byte with only the configured headers
(``Content-Type`` and the operator's, e.g. a node token) — no client header ever reaches the
backend — and returns the complete response, whatever its status. aiohttp's failures are
translated at this boundary: a timeout is ``BACKEND_TIMEOUT``, a refused or reset connection or
a truncated body is ``BACKEND_UNAVAILABLE``. :class:`MockTransport` wraps a handler function
for tests, like httpx's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import yarl

from protocol.errors import ErrorCode
from relayer.errors import BackendError
from relayer.interfaces import BackendRequest, BackendResponse

__all__ = ["AiohttpTransport", "MockTransport"]


class AiohttpTransport:
    """One ``ClientSession`` with a keep-alive connection pool shared by every service."""

    def __init__(self, *, limit: int = 512, limit_per_host: int = 256) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=30.0,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    def _timeout(self, request: BackendRequest) -> aiohttp.ClientTimeout:
        pair = (request.timeout, request.connect_timeout)
        timeout = self._timeouts.get(pair)
        if timeout is None:
            timeout = self._timeouts[pair] = aiohttp.ClientTimeout(
                total=request.timeout, sock_connect=request.connect_timeout
            )
        return timeout

    async def send(self, request: BackendRequest) -> BackendResponse:
        try:
            async with self._client().request(
                request.http_method,
                # path and query exactly as the client's payload has them: never normalised
                # (yarl would resolve "..", "%2e%2e" and re-quote otherwise)
                yarl.URL(request.url, encoded=True),
                data=request.body,
                headers=request.headers,
                timeout=self._timeout(request),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return BackendResponse(
                    resp.status, body, resp.headers.get("Content-Type", "application/json")
                )
        except TimeoutError as exc:
            raise BackendError(
                f"{request.service_id}: backend did not answer within {request.timeout}s",
                code=ErrorCode.BACKEND_TIMEOUT,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise BackendError(
                f"{request.service_id}: backend unavailable ({type(exc).__name__})",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class MockTransport:
    """A transport that calls ``handler(request)`` — for tests of the pipeline."""

    def __init__(self, handler: Callable[[BackendRequest], Awaitable[BackendResponse]]) -> None:
        self._handler = handler

    async def send(self, request: BackendRequest) -> BackendResponse:
        try:
            return await self._handler(request)
        except TimeoutError as exc:
            raise BackendError("mock backend timed out", code=ErrorCode.BACKEND_TIMEOUT) from exc

    async def close(self) -> None:
        return None
