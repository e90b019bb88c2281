"""``POST /v1/{service}[/{key}]`` on the fast front (:mod:`transport.fastserve`).

The front frames plain POSTs to the two JSON-RPC paths itself; this module runs the same
guarded ``handle_rpc`` on them through :class:`FastRpcRequest`, the subset of
``web.Request`` the handler reads (app, match info, headers, method, body), and hands its
:class:`~gateway.server.Reply` to the front as it is (no aiohttp response in between).
WebSocket upgrades, REST paths, ``OPTIONS``, health and anything odd never reach here: the
front hands them to aiohttp untouched.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

from gateway.keys import hash_key
from gateway.server import Answer, Reply
from transport.fastserve import FastRequest, Handler

__all__ = ["ROUTES_KEPT", "FastRpcRequest", "RpcRoutes", "rpc_route"]


@functools.lru_cache(maxsize=64)
def _wire_name(name: str) -> bytes:
    """A header name as the front keys it (lower case, bytes)."""
    return name.lower().encode("latin-1")


class _Headers:
    """Case-insensitive ``get`` over the front's lower-case header dict (what handle_rpc uses)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[bytes, bytes]) -> None:
        self._raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._raw.get(_wire_name(name))
        return default if value is None else value.decode("latin-1")

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _wire_name(name) in self._raw


class FastRpcRequest:
    """What ``handle_rpc`` reads of a request, for a body the front already read;
    ``key_digest`` is ``sha256`` of the path's key, worked out once for the path (see
    :class:`RpcRoutes`), or None when the path holds no key."""

    __slots__ = (
        "_body",
        "_query",
        "app",
        "content_length",
        "headers",
        "key_digest",
        "match_info",
        "method",
        "path",
    )

    def __init__(
        self,
        app: web.Application,
        match: dict[str, str],
        request: FastRequest,
        key_digest: str | None = None,
    ) -> None:
        self.app = app
        self.key_digest = key_digest
        self.match_info = match
        self.method = "POST"
        self.path = request.path
        self._body = request.body
        self._query = request.query
        self.content_length = len(request.body)
        self.headers = _Headers(request.headers)

    async def read(self) -> bytes:
        return self._body

    @property
    def query(self) -> dict[str, str]:
        """The URL's query (first value of each name), as ``web.Request.query`` gives it."""
        if not self._query:
            return {}
        return dict(reversed(urllib.parse.parse_qsl(self._query)))


def _match(path: str) -> dict[str, str] | None:
    """``/v1/{service}`` or ``/v1/{service}/{key}`` (aiohttp's patterns: no empty segment)."""
    parts = path.split("/")
    if len(parts) not in (3, 4) or parts[0] or parts[1] != "v1" or not all(parts[2:]):
        return None
    if "%" in path:  # percent-encoded segments: aiohttp's router decodes them
        return None
    if len(parts) == 3:
        return {"service": parts[2]}
    return {"service": parts[2], "key": parts[3]}


#: paths the route table remembers (a path names a service and maybe a key: bounded)
ROUTES_KEPT = 1024


class RpcRoutes:
    """The front's route table: the JSON-RPC paths run ``handler`` (the gateway's guarded
    JSON-RPC route, :func:`gateway.server.serve_fast`), others go to aiohttp (None). A
    path's answer is worked out once and kept (up to :data:`ROUTES_KEPT` paths, then the
    table starts over), so a request pays no path split, no closure and no hashing of the
    path's key (the key ring still judges the digest on every request). The table holds the
    paths it was asked for, keys included, as the route's match did before it."""

    __slots__ = ("app", "handler", "kept")

    def __init__(
        self, app: web.Application, handler: Callable[[web.Request], Awaitable[Answer]]
    ) -> None:
        self.app = app
        self.handler = handler
        self.kept: dict[str, Handler | None] = {}

    def __call__(self, path: str) -> Handler | None:
        kept = self.kept
        if path in kept:
            return kept[path]
        match = _match(path)
        serve = None
        if match is not None:
            key = match.get("key")
            digest = None if key is None else hash_key(key)
            serve = functools.partial(_serve, self.app, self.handler, match, digest)
        if len(kept) >= ROUTES_KEPT:
            kept.clear()
        kept[path] = serve
        return serve


def rpc_route(
    app: web.Application, handler: Callable[[web.Request], Awaitable[Answer]]
) -> Callable[[str], Handler | None]:
    """The front's route table (:class:`RpcRoutes`)."""
    return RpcRoutes(app, handler)


def _serve(
    app: web.Application,
    handler: Callable[[web.Request], Awaitable[Answer]],
    match: dict[str, str],
    digest: str | None,
    request: FastRequest,
) -> Awaitable[Reply]:
    """The route's answer, a :class:`Reply` the front writes as it is: the front takes no
    upgrades, so it is never a ``StreamResponse`` (no coroutine of its own in between)."""
    answer = handler(FastRpcRequest(app, match, request, digest))  # type: ignore[arg-type]
    return cast(Awaitable[Reply], answer)
