"""Throughput of the relay hot path's cryptography (protocol.keys, protocol.relay).

Prints operations per second for request signing and recovery (secp256k1), receipt signing
and verification (ed25519), EIP-712 digests, header decoding, and the keccak256 backends.
Each row runs a bounded loop for about ``--seconds`` (default 1 s) on one core.

    python -m bench.bench_crypto [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from protocol.keys import AccountKey, ReceiptKey, keccak256
from protocol.relay import (
    Domain,
    RelayHeader,
    decode_relay_request,
    encode_relay_request,
    recover_signer,
    request_digest,
    request_digest_of_bytes,
    response_hash,
    sign_receipt,
    sign_request,
    verify_receipt,
)

MAX_ITERATIONS = 2_000_000


def _rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``op`` over about ``seconds`` (batches, bounded count)."""
    op()  # warm up
    done, batch = 0, 16
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds and done < MAX_ITERATIONS:
        for _ in range(batch):
            op()
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed < seconds / 10:
            batch *= 2
    return done / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_crypto", description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per row (default 1)")
    args = parser.parse_args(argv)
    seconds: float = args.seconds

    account = AccountKey(b"\x42" * 32)
    receipt_key = ReceiptKey(b"\x43" * 32)
    domain = Domain(31337, b"\x09" * 20)
    header = RelayHeader(
        1, "eth", b"\x01" * 20, account.address, b"\x03" * 20, 7, b"\x04" * 32, b"\x05" * 16, 0, 3
    )
    header_bytes = header.encode()
    digest = request_digest(header, domain)
    sig = sign_request(digest, account)
    transport = encode_relay_request(header_bytes, sig)
    answer = response_hash(200, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')
    receipt = sign_receipt(receipt_key, digest, 0, answer)
    blob = header_bytes + sig  # 222 bytes, an EIP-712 struct-sized input

    rows: list[tuple[str, Callable[[], object]]] = [
        ("request signs (secp256k1)", lambda: sign_request(digest, account)),
        ("request recovers (secp256k1)", lambda: recover_signer(digest, sig)),
        ("receipt signs (ed25519)", lambda: sign_receipt(receipt_key, digest, 0, answer)),
        (
            "receipt verifies (ed25519)",
            lambda: verify_receipt(receipt_key.public_key, digest, 0, answer, receipt),
        ),
        ("request digests (EIP-712, from header)", lambda: request_digest(header, domain)),
        (
            "request digests (EIP-712, from bytes)",
            lambda: request_digest_of_bytes(header_bytes, domain),
        ),
        ("Relay-Request decodes", lambda: decode_relay_request(transport)),
        ("keccak256 222 B (protocol.keys)", lambda: keccak256(blob)),
    ]
    try:
        from eth_hash.auto import keccak as eth_keccak

        rows.append(("keccak256 222 B (eth_hash)", lambda: eth_keccak(blob)))
    except ImportError:  # pragma: no cover - optional comparison
        pass
    try:
        from Crypto.Hash import keccak as pycryptodome_keccak

        rows.append(
            (
                "keccak256 222 B (Crypto.Hash.keccak)",
                lambda: pycryptodome_keccak.new(data=blob, digest_bits=256).digest(),
            )
        )
    except ImportError:  # pragma: no cover - optional comparison
        pass

    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  {'ops/s':>12}  {'µs/op':>8}")
    print(f"{'-' * width}  {'-' * 12}  {'-' * 8}")
    for name, op in rows:
        rate = _rate(op, seconds)
        print(f"{name:<{width}}  {rate:>12,.0f}  {1e6 / rate:>8.2f}")


if __name__ == "__main__":
    main()
