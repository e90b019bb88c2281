"""Forwarding to the backend node over a keep-alive pool (the transport seam).

:class:`Http1Transport` (the default) is the hot path's own HTTP/1.1 client
(:mod:`transport.http1`): the request head of each backend URL is built once and the answer is
read under ``max_answer_bytes``. :class:`AiohttpTransport` is the general client it replaced;
both send the payload byte for byte with only the configured headers
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
from transport.http1 import BodyTooLarge, HttpClient, HttpError, Route

__all__ = ["DEFAULT_MAX_ANSWER", "AiohttpTransport", "Http1Transport", "MockTransport"]

DEFAULT_MAX_ANSWER = 64 * 1024 * 1024
_MAX_ROUTES = 4096  # REST paths vary per request: the cache is bounded


class Http1Transport:
    """The backend pool on :class:`transport.http1.HttpClient`; errors as AiohttpTransport's."""

    def __init__(
        self, *, limit_per_host: int = 256, max_answer_bytes: int = DEFAULT_MAX_ANSWER
    ) -> None:
        self._client = HttpClient(
            max_idle_per_origin=limit_per_host, limit_per_origin=limit_per_host
        )
        self._max_answer = max_answer_bytes
        #: (method, url) → (the headers mapping it was built with, route): a service's headers
        #: are one mapping for the process, so an identity check replaces hashing its items
        self._routes: dict[tuple[str, str], tuple[object, Route]] = {}

    def _route(self, request: BackendRequest) -> Route:
        key = (request.http_method, request.url)
        cached = self._routes.get(key)
        if cached is not None and cached[0] is request.headers:
            return cached[1]
        route = self._client.route(request.http_method, request.url, request.headers)
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[key] = (request.headers, route)
        return route

    async def send(self, request: BackendRequest) -> BackendResponse:
        try:
            route = self._route(request)
            answer = await self._client.request(
                route,
                request.body,
                within=request.timeout,
                connect_timeout=request.connect_timeout,
                max_body=self._max_answer,
            )
        except TimeoutError as exc:
            raise BackendError(
                f"{request.service_id}: backend did not answer within {request.timeout}s",
                code=ErrorCode.BACKEND_TIMEOUT,
            ) from exc
        except BodyTooLarge as exc:
            raise BackendError(
                f"{request.service_id}: backend answer over {self._max_answer} bytes",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            ) from exc
        except (HttpError, OSError) as exc:
            raise BackendError(
                f"{request.service_id}: backend unavailable ({type(exc).__name__})",
                code=ErrorCode.BACKEND_UNAVAILABLE,
            ) from exc
        except ValueError as exc:  # a backend URL the client cannot send to
            raise BackendError(
                f"{request.service_id}: bad backend URL", code=ErrorCode.BACKEND_UNAVAILABLE
            ) from exc
        return BackendResponse(
            answer.status, answer.body, answer.header(b"content-type") or "application/json"
        )

    async def close(self) -> None:
        await self._client.close()


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
