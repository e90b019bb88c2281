"""Supplier endpoints and SSRF (DESIGN §4): the gateway's own table of non-global ranges, IPv4
embedded in IPv6 in every form, ``allow_networks``, and the guarded connector on real HTTP and
WebSocket connections to a name that resolves to loopback; redirects never followed."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.endpoints import (
    AddressPolicy,
    EndpointRefusedOSError,
    GuardedConnector,
    RedirectRefused,
    embedded_ipv4,
    forbidden_ip,
    no_redirects,
)


def teredo(server: str, client: str) -> str:
    s = int(ipaddress.IPv4Address(server))
    c = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (s << 64) | c))


LOOPBACK_FORMS = {
    "v4-mapped": "::ffff:127.0.0.1",
    "v4-compatible": "::127.0.0.1",
    "v4-translated": "::ffff:0:7f00:1",
    "6to4": "2002:7f00:1::1",
    "nat64": "64:ff9b::127.0.0.1",
    "nat64 local-use": "64:ff9b:1:7f00:0:100::",
    "teredo client": teredo("8.8.8.8", "127.0.0.1"),
}


@pytest.mark.parametrize("form", sorted(LOOPBACK_FORMS))
def test_embedded_loopback_is_found_in_every_form(form: str) -> None:
    addr = ipaddress.IPv6Address(LOOPBACK_FORMS[form])
    assert (form, ipaddress.IPv4Address("127.0.0.1")) in embedded_ipv4(addr)


@pytest.mark.parametrize(
    "ip",
    ["::ffff:127.0.0.1", "::127.0.0.1", "::ffff:0:a00:1", "2002:a9fe:a9fe::", "64:ff9b::a00:1"],
)
def test_embedded_non_global_ipv4_is_refused(ip: str) -> None:
    why = forbidden_ip(ip)
    assert why is not None and ("loopback" in why or "private" in why or "link" in why)


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("100.64.0.1", "shared address space"),
        ("100.127.255.254", "shared address space"),
        ("0.1.2.3", "unspecified"),
        ("192.0.0.8", "ietf protocol assignment"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fc00::1", "private"),
        ("fec0::1", "site-local"),
        ("100::1", "discard-only"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("ff02::1", "multicast"),
        ("5f00::1", "srv6 sids"),
        ("64:ff9b:1::8.8.8.8", "local-use translation"),
        ("2001::1", "ietf protocol assignment"),  # Teredo itself is not global
    ],
)
def test_special_purpose_ranges_are_refused(ip: str, why: str) -> None:
    assert forbidden_ip(ip) == why


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",
        "100.128.0.1",  # just past 100.64/10
        "2606:4700::1111",
        "2002:808:808::1",  # 6to4 of a global address
        "64:ff9b::8.8.8.8",  # NAT64 of a global address
        "::ffff:8.8.8.8",
    ],
)
def test_global_addresses_pass(ip: str) -> None:
    assert forbidden_ip(ip) is None


def test_allow_networks_opens_a_range_and_its_embedded_forms() -> None:
    policy = AddressPolicy(allow_networks=["127.0.0.0/8", "100.64.0.0/10"])
    for ip in ("127.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1", "100.64.1.1"):
        assert policy.why_refused(ip) is None, ip
    assert policy.why_refused("10.0.0.1") == "private"
    assert policy.why_refused("::1") == "loopback"
    assert AddressPolicy(devnet=True).why_refused("10.0.0.1") is None


# -- real connections ----------------------------------------------------------------------


@pytest.fixture
async def loopback_server() -> AsyncIterator[int]:
    """HTTP + WebSocket + a redirect on 127.0.0.1 (reached below as ``localhost``)."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hello")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str("hello")
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port
    await runner.cleanup()


def session(policy: AddressPolicy) -> aiohttp.ClientSession:
    # the gateway's own client session is built the same way (gateway.app.create_app)
    return aiohttp.ClientSession(
        connector=GuardedConnector(policy=policy), trace_configs=[no_redirects()]
    )


def refused(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "os_error", None), EndpointRefusedOSError)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_http_and_websocket_to_loopback_refused_outside_devnet(
    loopback_server: int, host: str
) -> None:
    async with session(AddressPolicy()) as http:
        with pytest.raises(aiohttp.ClientConnectorError) as exc:
            await http.get(f"http://{host}:{loopback_server}/hello")
        assert refused(exc.value)
        with pytest.raises(aiohttp.ClientConnectorError) as exc:
            await http.ws_connect(f"http://{host}:{loopback_server}/ws")
        assert refused(exc.value)


async def test_allow_networks_and_devnet_let_loopback_through(loopback_server: int) -> None:
    for policy in (
        AddressPolicy(allow_networks=["127.0.0.0/8", "::1/128"]),
        AddressPolicy(devnet=True),
    ):
        async with session(policy) as http:
            async with http.get(f"http://localhost:{loopback_server}/hello") as resp:
                assert await resp.text() == "hello"
            ws = await http.ws_connect(f"http://localhost:{loopback_server}/ws")
            msg = await ws.receive()
            assert msg.data == "hello"
            await ws.close()


async def test_redirects_are_never_followed(loopback_server: int) -> None:
    async with session(AddressPolicy(devnet=True)) as http:
        with pytest.raises(RedirectRefused):
            await http.get(f"http://127.0.0.1:{loopback_server}/redirect")
