"""The fast front's route table for ``POST /v1/{service}[/{key}]`` (gateway/fastpath.py).

It keeps what it worked out per path; these check that a kept answer is the right one for
its path (service and key, never another path's), that paths aiohttp serves stay with
aiohttp, and that the table stays bounded however many distinct paths (keys) arrive.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.fastpath import ROUTES_KEPT, rpc_route
from gateway.keys import hash_key
from gateway.server import Reply
from transport.fastserve import FastRequest


def _request(path: str) -> FastRequest:
    return FastRequest(path=path, headers={}, body=b"{}", peer=None)


def _echo_routes() -> tuple[object, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> Reply:
        seen.append(dict(request.match_info))
        digest = getattr(request, "key_digest", None)
        return Reply(200, request.match_info.get("key", "-").encode(), {"digest": str(digest)})

    return rpc_route(web.Application(), handler), seen


def test_each_path_is_served_with_its_own_service_and_key_also_once_kept() -> None:
    route, seen = _echo_routes()
    assert callable(route)

    async def serve(path: str) -> bytes:
        handler = route(path)  # type: ignore[operator]
        assert handler is not None, path
        return (await handler(_request(path))).body

    async def main() -> list[bytes]:
        out = []
        for _ in range(2):  # the second pass is answered from the kept table
            out.append(await serve("/v1/eth/alpha"))
            out.append(await serve("/v1/eth/beta"))
            out.append(await serve("/v1/base"))
        return out

    assert asyncio.run(main()) == [b"alpha", b"beta", b"-"] * 2
    assert (
        seen
        == [
            {"service": "eth", "key": "alpha"},
            {"service": "eth", "key": "beta"},
            {"service": "base"},
        ]
        * 2
    )


def test_other_paths_stay_with_aiohttp_also_when_asked_again() -> None:
    route, _ = _echo_routes()
    for _ in range(2):
        for path in ("/healthz", "/v1", "/v1/", "/v1/eth/", "/v1/e%74h", "/v2/eth", "/v1/a/b/c"):
            assert route(path) is None, path  # type: ignore[operator]


def test_the_table_stays_bounded_and_right_past_its_size() -> None:
    route, seen = _echo_routes()
    paths = [f"/v1/eth/key{i}" for i in range(ROUTES_KEPT * 2 + 5)]

    async def main() -> None:
        for path in paths:
            handler = route(path)  # type: ignore[operator]
            assert handler is not None
            await handler(_request(path))
            assert len(route.kept) <= ROUTES_KEPT  # type: ignore[attr-defined]

    asyncio.run(main())
    assert seen == [{"service": "eth", "key": f"key{i}"} for i in range(len(paths))]


def test_each_path_carries_the_digest_of_its_own_key_also_once_kept() -> None:
    """The table hashes a path's key once for the path: every request on it, and only on it,
    carries that digest (the key ring judges it); a path without a key carries none."""
    route, _ = _echo_routes()

    async def digest(path: str) -> str:
        handler = route(path)  # type: ignore[operator]
        assert handler is not None, path
        return dict((await handler(_request(path))).headers)["digest"]

    async def main() -> list[str]:
        paths = ["/v1/eth/alpha", "/v1/eth/beta", "/v1/base/alpha", "/v1/base"]
        return [await digest(p) for _ in range(2) for p in paths]

    a, b = hash_key("alpha"), hash_key("beta")
    assert asyncio.run(main()) == [a, b, a, "None"] * 2
