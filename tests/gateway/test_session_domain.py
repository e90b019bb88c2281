"""The gateway signs session n under the chain id recorded for n (DESIGN §3.5)."""

from __future__ import annotations

import base64

import aiohttp

from gateway.relay_client import RelayClient, Target
from protocol.keys import AccountKey
from protocol.relay import Domain, recover_signer, request_digest
from session.memory import MemorySnapshot

DOMAIN = Domain(31337, b"\x5e" * 20)


async def test_gateway_signs_each_session_under_its_chain_id() -> None:
    snap = MemorySnapshot()
    snap.set_chain_id(3, 31337)
    snap.set_chain_id(4, 4242)  # the chain split before session 4 started
    key = AccountKey.generate()
    async with aiohttp.ClientSession() as http:
        client = RelayClient(http, key, DOMAIN, devnet=True, chain_id_of=snap.chain_id)
        for n, chain_id in ((3, 31337), (4, 4242)):
            target = Target("devnet", b"\x0a" * 20, n, b"\x0b" * 20, "http://127.0.0.1:1", None)
            signed = client.sign(target, b"{}", 1)
            domain = Domain(chain_id, DOMAIN.settlement)
            assert signed.digest == request_digest(signed.header, domain)
            assert client.domain_of(n) == domain
        # a session the registry knows nothing about yet: the deployment's domain
        assert client.domain_of(9) == DOMAIN
    assert recover_signer(signed.digest, _sig(signed.relay_request)) == key.address


def _sig(relay_request: str) -> bytes:
    return base64.b64decode(relay_request)[157:]
