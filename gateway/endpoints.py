"""Which supplier endpoints the gateway may call (DESIGN §4): only globally routable addresses,
unless the gateway runs in devnet mode or the operator lists the range in ``allow_networks``.

The gateway keeps its own table of non-global ranges, taken from the IANA special-purpose
address registries (IPv4 and IPv6), instead of ``ipaddress``'s ``is_private``/``is_global``
(their answers differ between patch releases), and checks IPv4 addresses embedded in IPv6 ones
too: v4-mapped, v4-compatible, SIIT v4-translated, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``
and ``64:ff9b:1::/48``, Teredo ``2001::/32`` (server and client).

:class:`GuardedConnector` is the one place where this is enforced: it resolves the name itself,
checks every address (a name with one bad address is refused whole, IP literals included), and
the connection then goes to that checked address with the hostname kept for ``Host`` and SNI.
HTTP relays and upstream WebSockets share it; :func:`no_redirects` makes the client session
refuse every redirect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from gateway.errors import GatewayError

__all__ = [
    "NON_GLOBAL",
    "AddressPolicy",
    "EndpointRefused",
    "EndpointRefusedOSError",
    "GuardedConnector",
    "GuardedResolve",
    "GuardedResolver",
    "check_literal",
    "embedded_ipv4",
    "forbidden_ip",
    "no_redirects",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(GatewayError):
    """A supplier endpoint the gateway will not call (bad URL, non-global address)."""


class EndpointRefusedOSError(OSError):
    """Raised inside the connector (aiohttp wraps it as a ``ClientConnectorError``)."""


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (range, why) — every range of the IANA IPv4/IPv6 special-purpose registries that is not
# globally reachable, plus multicast and the reserved blocks. More specific entries first.
NON_GLOBAL: tuple[tuple[Network, str], ...] = tuple(
    (net, why)
    for why, nets in (
        ("loopback", _nets("127.0.0.0/8", "::1/128")),
        ("unspecified", _nets("0.0.0.0/8", "::/128")),
        ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
        ("shared address space", _nets("100.64.0.0/10")),
        ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
        ("site-local", _nets("fec0::/10")),
        ("ietf protocol assignment", _nets("192.0.0.0/24", "2001::/23")),
        ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
        ("documentation", _nets("2001:db8::/32", "3fff::/20")),
        ("benchmarking", _nets("198.18.0.0/15", "2001:2::/48")),
        ("6to4 relay anycast", _nets("192.88.99.0/24")),
        ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
        ("reserved", _nets("240.0.0.0/4", "255.255.255.255/32")),
        ("discard-only", _nets("100::/64")),
        ("dummy prefix", _nets("100:0:0:1::/64")),
        ("local-use translation", _nets("64:ff9b:1::/48")),
        ("srv6 sids", _nets("5f00::/16")),
    )
    for net in nets
)

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def _v4(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value & 0xFFFFFFFF)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address an IPv6 address carries, with the form's name."""
    n = int(addr)
    out: list[tuple[str, ipaddress.IPv4Address]] = []
    if addr in _MAPPED:
        out.append(("v4-mapped", _v4(n)))
    elif addr in _TRANSLATED:
        out.append(("v4-translated", _v4(n)))
    elif addr in _COMPAT and n > 1:
        out.append(("v4-compatible", _v4(n)))
    if addr in _SIX_TO_FOUR:
        out.append(("6to4", _v4(n >> 80)))
    if addr in _NAT64:
        out.append(("nat64", _v4(n)))
    if addr in _NAT64_LOCAL:
        # RFC 6052 places the IPv4 address by prefix length; /48: bits 48..63 and 72..87
        out.append(("nat64 local-use", _v4(((n >> 64) & 0xFFFF) << 16 | ((n >> 40) & 0xFFFF))))
        out.append(("nat64 local-use", _v4(n)))  # and as a /96 translator would
    if addr in _TEREDO:
        out.append(("teredo server", _v4(n >> 64)))
        out.append(("teredo client", _v4(~n)))
    return out


def _table_reason(addr: Address) -> str | None:
    for net, why in NON_GLOBAL:
        if addr.version == net.version and addr in net:
            return why
    return None


class AddressPolicy:
    """Which addresses may be called: ``devnet`` allows all; otherwise an address (and every
    IPv4 address embedded in it) must be global or inside one of ``allow_networks``."""

    def __init__(self, *, devnet: bool = False, allow_networks: Iterable[str] = ()) -> None:
        self.devnet = devnet
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in allow_networks
        )

    def _allowed(self, addr: Address) -> bool:
        return any(addr.version == net.version and addr in net for net in self.allow)

    def why_refused(self, ip: str) -> str | None:
        """Why ``ip`` may not be called, or None when it may."""
        if self.devnet:
            return None
        addr = ipaddress.ip_address(ip.split("%", 1)[0])  # a zone id says nothing about range
        if not self._allowed(addr):
            why = _table_reason(addr)
            if why is not None:
                return why
        if isinstance(addr, ipaddress.IPv6Address):
            for form, v4 in embedded_ipv4(addr):
                if self._allowed(v4):
                    continue
                why = _table_reason(v4)
                if why is not None:
                    return f"{form} {why} ({v4})"
        return None


def forbidden_ip(ip: str, allow_networks: Iterable[str] = ()) -> str | None:
    """Why an IP may not be called outside devnet, or None when it may."""
    return AddressPolicy(allow_networks=allow_networks).why_refused(ip)


def check_literal(url: str) -> None:
    """Refuse URLs that are not http(s)/ws(s) with a host. Addresses — IP literals and
    resolved names alike — are checked by :class:`GuardedConnector` when it connects."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise EndpointRefused(f"endpoint {url!r} is not an http(s) URL")


class GuardedResolver(AbstractResolver):
    """A resolver that refuses a name when any address it resolves to is refused."""

    def __init__(
        self,
        *,
        devnet: bool = False,
        inner: AbstractResolver | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        self.policy = policy or AddressPolicy(devnet=devnet)
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        check_results(self.policy, host, results)
        return results

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - passthrough
        return getattr(self._inner, name)


def check_results(policy: AddressPolicy, host: str, results: Sequence[ResolveResult]) -> None:
    check_addresses(policy, host, [r["host"] for r in results])


def check_addresses(policy: AddressPolicy, host: str, addresses: Sequence[str]) -> None:
    if not addresses:
        raise EndpointRefusedOSError(f"{host} resolves to no address")
    for addr in addresses:
        why = policy.why_refused(addr)
        if why is not None:
            raise EndpointRefusedOSError(
                f"endpoint refused: {host} resolves to a {why} address ({addr})"
            )


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that checks every address it is about to connect to — names it
    resolves and IP literals alike — so HTTP relays, upstream WebSockets and anything else
    sharing the client session pass one check. aiohttp then connects to the checked address,
    keeping the hostname for ``Host`` and TLS SNI."""

    def __init__(self, *, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        check_results(self.policy, host, results)
        return results


class GuardedResolve:
    """The address check for :class:`transport.http1.HttpClient` (its ``resolve`` hook): the
    same rule as :class:`GuardedConnector` — every address of a name, IP literals included —
    with resolved names cached for ``ttl`` seconds."""

    def __init__(self, policy: AddressPolicy, *, ttl: float = 10.0, size: int = 4096) -> None:
        self.policy = policy
        self.ttl = ttl
        self.size = size
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        import asyncio
        import time

        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:  # a literal: checked every time (cheap), never cached
            check_addresses(self.policy, host, [host])
            return [host]
        now = time.monotonic()
        hit = self._cache.get((host, port))
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
        check_addresses(self.policy, host, addrs)
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[(host, port)] = (now + self.ttl, addrs)
        return addrs


class RedirectRefused(aiohttp.ClientError):
    """A supplier answered with a redirect: never followed."""


async def _refuse_redirect(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any
) -> None:
    raise RedirectRefused(f"redirect from {params.url} refused")


def no_redirects() -> aiohttp.TraceConfig:
    """A trace config that makes a client session refuse every redirect (WebSocket upgrades
    included, which aiohttp would otherwise follow)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_refuse_redirect)
    return trace
