"""Which supplier endpoints the gateway may call: never private, loopback or link-local
addresses unless it runs in devnet mode — checked on the resolved IP, not on the name.

:class:`GuardedResolver` sits inside the HTTP client's connector, so the address actually
connected to is the one checked (a name that re-resolves to 127.0.0.1 is refused too);
:func:`check_literal` covers URLs that name an IP directly (those skip the resolver).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from gateway.errors import GatewayError

__all__ = [
    "EndpointRefused",
    "EndpointRefusedOSError",
    "GuardedResolver",
    "check_literal",
    "forbidden_ip",
]


class EndpointRefused(GatewayError):
    """A supplier endpoint the gateway will not call (bad URL, private address)."""


class EndpointRefusedOSError(OSError):
    """Raised inside the resolver (aiohttp wraps resolver failures as connector errors)."""


def forbidden_ip(ip: str) -> str | None:
    """Why an IP may not be called outside devnet, or None when it may."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_private:
        return "private"
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved:
        return "reserved"
    return None


def check_literal(url: str, *, devnet: bool) -> None:
    """Refuse malformed URLs, and IP-literal hosts that are forbidden outside devnet."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise EndpointRefused(f"endpoint {url!r} is not an http(s) URL")
    if devnet:
        return
    try:
        why = forbidden_ip(parts.hostname)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if why is not None:
        raise EndpointRefused(f"endpoint {url!r} is a {why} address")


class GuardedResolver(AbstractResolver):
    """A resolver that drops forbidden addresses (and fails when none is left)."""

    def __init__(self, *, devnet: bool, inner: AbstractResolver | None = None) -> None:
        self._devnet = devnet
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._devnet:
            return results
        allowed = [r for r in results if forbidden_ip(r["host"]) is None]
        if not allowed:
            raise EndpointRefusedOSError(f"{host} resolves only to private/loopback addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - passthrough
        return getattr(self._inner, name)
