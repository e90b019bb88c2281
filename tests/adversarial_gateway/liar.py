"""A scripted malicious relayer: a test double speaking the relay wire protocol over HTTP.

It is a staked supplier of the session like any other (its receipt key is registered), and
forwards each relay to the real backend (anvil) so that, when it is honest, its answers and
receipts verify. Its ``mode`` decides how it lies to client calls (payloads whose id is a
string starting with ``"t``; health probes get honest answers, except in ``"height"`` mode,
where every ``eth_blockNumber`` is answered ``0xffffffffff``):

=============  ============================================================================
``honest``     the backend's answer and a correct receipt
``status``     ``Relay-Backend-Status: 70000``
``oversized``  a chunked answer of ``oversized_bytes`` (far over the class's cap)
``fatal``      HTTP 400 with an invented code ``CLIENT_IS_WRONG`` ("your request is bad")
``lie_code``   HTTP 401 ``BAD_SIGNATURE`` (a code of the lie group, for a valid signature)
``receipt``    the backend's answer with a receipt over other bytes (hash mismatch)
``encoding``   the backend's answer marked ``Content-Encoding: gzip``
``height``     ``eth_blockNumber`` answered ``0xffffffffff`` (probes included)
``differ``     the backend's answer with ``"result":"0x`` → ``"result":"0x1``, correctly
               signed (one supplier's word against another's: a quorum disagreement)
``signature``  the backend's answer, its receipt signed by a key that is not its own
=============  ============================================================================

``served`` counts the lies told per mode, so a test knows the liar was actually asked.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import orjson
from aiohttp import web

from protocol.keys import ReceiptKey
from protocol.relay import (
    Domain,
    decode_relay_request,
    encode_receipt,
    request_digest_of_bytes,
    response_hash,
    sign_receipt,
)
from tests.support.threaded_app import ThreadedApp

HUGE_HEIGHT = 0xFFFFFFFFFF


class LyingRelayer(ThreadedApp):
    name = "lying-relayer"

    def __init__(self, receipt: ReceiptKey, backend_url: str) -> None:
        super().__init__()
        self.receipt = receipt
        self.backend_url = backend_url
        self.domain: Domain | None = None  # set once the deployment is known
        self.mode = "honest"
        self.other_key = ReceiptKey.generate()  # signs the ``signature`` mode's receipts
        self.oversized_bytes = 200 * 1024 * 1024
        self.served: Counter[str] = Counter()
        self.streamed = 0  # bytes of oversized answers actually written to the gateway
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/v1/relay", self._relay)
        return app

    async def opened(self) -> None:
        self._http = aiohttp.ClientSession(auto_decompress=False)

    async def closing(self) -> None:
        if self._http is not None:
            await self._http.close()

    # -- the wire protocol -------------------------------------------------------------
    async def _backend(self, payload: bytes) -> tuple[int, bytes]:
        assert self._http is not None
        async with self._http.post(
            self.backend_url, data=payload, headers={"Content-Type": "application/json"}
        ) as resp:
            return resp.status, await resp.read()

    def _headers(self, digest: bytes, status: int, body: bytes) -> dict[str, str]:
        rhash = response_hash(status, body)
        sig = sign_receipt(self.receipt, digest, 0, rhash)
        return {
            "Content-Type": "application/json",
            "Relay-Backend-Status": str(status),
            "Relay-Receipt": encode_receipt(rhash, sig),
        }

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self.domain is not None
        _header, header_bytes, _sig = decode_relay_request(request.headers["Relay-Request"])
        digest = request_digest_of_bytes(header_bytes, self.domain)
        payload = await request.read()
        call = orjson.loads(payload)
        client_call = isinstance(call.get("id"), str) and call["id"].startswith("t")
        mode = self.mode if client_call else "honest"
        if self.mode == "height" and call.get("method") == "eth_blockNumber":
            mode = "height"
        if mode != "honest" and client_call:
            self.served[mode] += 1  # lies told to client calls (probes are not counted)
        if mode == "fatal":
            return web.json_response(
                {"code": "CLIENT_IS_WRONG", "message": "your request is bad", "retryable": False},
                status=400,
            )
        if mode == "lie_code":
            return web.json_response(
                {"code": "BAD_SIGNATURE", "message": "bad signature", "retryable": False},
                status=401,
            )
        if mode == "oversized":
            return await self._stream_oversized(request, digest, call)
        if mode == "height":
            rid = orjson.dumps(call.get("id"))
            body = b'{"jsonrpc":"2.0","id":' + rid + b',"result":"' + hex(HUGE_HEIGHT).encode()
            body += b'"}'
            return web.Response(status=200, body=body, headers=self._headers(digest, 200, body))
        status, body = await self._backend(payload)
        headers = self._headers(digest, status, body)
        if mode == "status":
            headers["Relay-Backend-Status"] = "70000"
        elif mode == "receipt":
            headers = self._headers(digest, status, body + b" ")
        elif mode == "encoding":
            headers["Content-Encoding"] = "gzip"
        elif mode == "differ":
            body = body.replace(b'"result":"0x', b'"result":"0x1', 1)
            headers = self._headers(digest, status, body)
        elif mode == "signature":
            rhash = response_hash(status, body)
            forged = sign_receipt(self.other_key, digest, 0, rhash)
            headers["Relay-Receipt"] = encode_receipt(rhash, forged)
        return web.Response(status=200, body=body, headers=headers)

    async def _stream_oversized(
        self, request: web.Request, digest: bytes, call: dict[str, object]
    ) -> web.StreamResponse:
        """A valid-looking JSON-RPC answer far over the cap, sent chunked (no length)."""
        rid = orjson.dumps(call.get("id"))
        head = b'{"jsonrpc":"2.0","id":' + rid + b',"result":"0x'
        filler = b"00" * 32768
        total = self.oversized_bytes
        resp = web.StreamResponse(status=200)
        resp.headers.update(self._headers(digest, 200, head))
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        try:
            await resp.write(head)
            while sent < total:
                await resp.write(filler)
                sent += len(filler)
                self.streamed += len(filler)
            await resp.write(b'"}')
            await resp.write_eof()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the gateway hung up on it: exactly what a capped reader does
        return resp
