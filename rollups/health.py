"""The health probe over HTTP: send a handler's probe requests, read height and identity.

:func:`probe` is the async convenience both servers use (aiohttp); the reading itself is the
handler's (:meth:`~rollups.handler.RpcHandler.read_health`), so a test or a server with its own
transport can send :meth:`~rollups.handler.RpcHandler.probe_requests` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from rollups.handler import DEFAULT_ROLE, Health, ProbeAnswer, ProbeRequest
from rollups.registry import handler_for
from rollups.spec import ChainSpec

__all__ = ["probe"]


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    request: ProbeRequest,
    headers: Mapping[str, str],
    timeout_s: float,
) -> ProbeAnswer | None:
    target = url.rstrip("/") + request.path if request.path else url
    try:
        async with session.request(
            request.http_method,
            target,
            data=request.body if request.http_method != "GET" else None,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            return ProbeAnswer(status=response.status, body=await response.read())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def probe(
    spec: ChainSpec,
    url: str | Mapping[str, str],
    http_session: aiohttp.ClientSession,
    *,
    probe_timeout: float = 5.0,
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Health:
    """Probe a backend for ``spec``: its health, height and chain identity.

    ``url`` is the backend of the default ``"rpc"`` role, or a mapping role → URL (probes of a
    role without a URL are skipped). ``token`` / ``headers`` are the relayer's own backend
    credentials (added per the handler's header policy); ``probe_timeout`` bounds each request
    in seconds. A backend whose chain id differs from
    the spec's comes back ``ok=False`` with ``status=HealthStatus.WRONG_CHAIN``; an unreachable
    one with ``HealthStatus.UNREACHABLE``. Never raises for network failures.
    """
    handler = handler_for(spec.rpc_type)
    urls = {DEFAULT_ROLE: url} if isinstance(url, str) else dict(url)
    send_headers = handler.header_policy(spec).backend_headers(token=token, extra=headers)
    requests = [r for r in handler.probe_requests(spec) if r.role in urls]
    answers = await asyncio.gather(
        *(_send(http_session, urls[r.role], r, send_headers, probe_timeout) for r in requests)
    )
    return handler.read_health(spec, {r.name: a for r, a in zip(requests, answers, strict=True)})
