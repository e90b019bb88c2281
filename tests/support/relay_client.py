"""A test client's side of the relay protocol: sign relay requests, check receipts."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from protocol.keys import AccountKey
from protocol.relay import (
    Domain,
    RelayHeader,
    decode_receipt,
    encode_relay_request,
    request_digest,
    response_hash,
    sign_request,
    verify_receipt,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def rpc(method: str, params: list[object] | None = None, id_: int = 1) -> bytes:
    import orjson

    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []})


@dataclass(frozen=True)
class SignedRelay:
    header: RelayHeader
    header_bytes: bytes
    signature: bytes
    digest: bytes
    payload: bytes

    @property
    def relay_request(self) -> str:
        return encode_relay_request(self.header_bytes, self.signature)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Relay-Request": self.relay_request, "Content-Type": "application/json", **extra}

    def check_receipt(self, receipt_pubkey: bytes, status: int, body: bytes, value: str) -> None:
        rh, sig = decode_receipt(value)
        assert rh == response_hash(status, body)
        verify_receipt(receipt_pubkey, self.digest, 0, rh, sig)


def sign_relay(
    domain: Domain,
    key: AccountKey,
    *,
    service_id: str,
    app: bytes | None = None,
    supplier: bytes,
    n: int,
    payload: bytes,
    cu: int = 1,
    version: int = 1,
    max_index: int = 0,
    signer: bytes | None = None,
    payload_hash: bytes | None = None,
) -> SignedRelay:
    header = RelayHeader(
        version=version,
        service_id=service_id,
        application=key.address if app is None else app,
        signer=signer if signer is not None else key.address,
        supplier=supplier,
        session=n,
        payload_hash=payload_hash or hashlib.sha256(payload).digest(),
        nonce=os.urandom(16),
        max_index=max_index,
        compute_units=cu,
    )
    hb = header.encode()
    digest = request_digest(header, domain)
    return SignedRelay(header, hb, sign_request(digest, key), digest, payload)


def high_s(signature: bytes) -> bytes:
    """The high-s twin of a valid signature (same r, s' = n - s, v flipped)."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
