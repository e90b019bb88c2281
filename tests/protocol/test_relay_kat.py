"""The `relays` known-answer vectors of DESIGN §3.3, every case, valid and invalid."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from protocol.encoding import hex_to_bytes, to_hex
from protocol.errors import ErrorCode, ProtocolError, RelaynetError
from protocol.payload import parse_rest_payload, rest_payload
from protocol.relay import (
    Leaf,
    RelayHeader,
    encode_leaf,
    is_mined,
    receipt_message,
    receipted_leaf,
    recover_signer,
    relay_key,
    request_digest,
    request_digest_of_bytes,
    response_hash,
    value_hash,
    verify_receipt,
)
from relaynet.vectors import domain_of, header_of


def _cases(kat: dict[str, Any], valid: bool) -> list[tuple[int, dict[str, Any]]]:
    cases = [(i, c) for i, c in enumerate(kat["relays"]) if c.get("valid", True) is valid]
    assert cases, f"the KAT file has no {'valid' if valid else 'invalid'} relay cases"
    return cases


def test_valid_relay_cases(kat: dict[str, Any]) -> None:
    for i, case in _cases(kat, valid=True):
        header = header_of(case)
        rh = header.encode()
        assert to_hex(rh) == case["rh"], i
        assert RelayHeader.decode(rh) == header, i

        digest = request_digest(header, domain_of(case))
        assert to_hex(digest) == case["request_digest"], i
        assert request_digest_of_bytes(rh, domain_of(case)) == digest, i

        answer = response_hash(case["response_status"], hex_to_bytes(case["response_payload"]))
        assert to_hex(answer) == case["response_hash"], i

        request_sig = hex_to_bytes(case["request_sig"], 65)
        receipt_sig = hex_to_bytes(case["receipt_sig"], 64)
        leaf = encode_leaf(rh, request_sig, case["index"], answer, receipt_sig)
        assert to_hex(leaf) == case["leaf"], i
        decoded = Leaf.decode(leaf)
        assert decoded.header == header and decoded.index == case["index"], i
        assert decoded.encode() == leaf, i

        key = relay_key(digest, case["index"])
        assert to_hex(key) == case["relay_key"], i
        assert to_hex(value_hash(leaf)) == case["value_hash"], i
        h_g = hex_to_bytes(case["h_g"], 32)
        assert is_mined(key, h_g, case["difficulty_bits"]) is case["mined"], i

        assert recover_signer(digest, request_sig) == header.signer, i
        pubkey = hex_to_bytes(case["receipt_pubkey"], 32)
        verify_receipt(pubkey, digest, case["index"], answer, receipt_sig)


class _KnownSignature:
    """A receipt key whose signature is the vector's (the vectors hold only its public key);
    it keeps the message it was asked to sign."""

    def __init__(self, signature: bytes) -> None:
        self.signature = signature
        self.messages: list[bytes] = []

    def sign(self, message: bytes) -> bytes:
        self.messages.append(message)
        return self.signature


def test_the_relayers_one_step_leaf_matches_the_vectors(kat: dict[str, Any]) -> None:
    for i, case in _cases(kat, valid=True):
        header = header_of(case)
        digest = request_digest(header, domain_of(case))
        key = _KnownSignature(hex_to_bytes(case["receipt_sig"], 64))
        status, body = case["response_status"], hex_to_bytes(case["response_payload"])
        rh, sig, leaf = receipted_leaf(
            key,  # type: ignore[arg-type]
            header.encode(),
            hex_to_bytes(case["request_sig"], 65),
            digest,
            case["index"],
            status,
            body,
        )
        assert to_hex(rh) == case["response_hash"] and sig == key.signature, i
        assert key.messages == [receipt_message(digest, case["index"], rh)], i
        assert to_hex(leaf) == case["leaf"], i


def test_rest_like_cases_use_the_canonical_payload(kat: dict[str, Any]) -> None:
    rest = [c for _, c in _cases(kat, valid=True) if "request" in c]
    assert rest, "the KAT file has no REST-like relay case"
    for case in rest:
        req = case["request"]
        body = base64.b64decode(req["body"], validate=True)
        payload = rest_payload(req["method"], req["path"], req["query"], body)
        assert payload == hex_to_bytes(case["request_payload"])
        parsed = parse_rest_payload(payload)
        assert (parsed.method, parsed.path, parsed.query, parsed.body) == (
            req["method"],
            req["path"],
            req["query"],
            body,
        )


def _twin_of(kat: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """The valid case an invalid one was derived from (same inputs but the mutated field)."""
    same = ("chain_id", "settlement", "nonce", "app", "signer", "n", "service_id")
    for _, valid in _cases(kat, valid=True):
        if all(valid[k] == case[k] for k in same):
            return valid
    raise AssertionError("invalid case without its valid twin")


def test_invalid_relay_cases_are_refused_by_their_check(kat: dict[str, Any]) -> None:
    kinds: set[str] = set()
    for i, case in _cases(kat, valid=False):
        twin = _twin_of(kat, case)
        header = header_of(case)
        digest = request_digest(header, domain_of(case))
        answer = response_hash(case["response_status"], hex_to_bytes(case["response_payload"]))
        request_sig = hex_to_bytes(case["request_sig"], 65)
        receipt_sig = hex_to_bytes(case["receipt_sig"], 64)
        pubkey = hex_to_bytes(case["receipt_pubkey"], 32)
        if case["request_sig"] != twin["request_sig"]:
            # the high-s twin: same r, s' = n - s, flipped v — recovers, but is not low-s
            kinds.add("high-s")
            assert request_sig[:32] == hex_to_bytes(twin["request_sig"])[:32], i
            with pytest.raises(ProtocolError) as err:
                recover_signer(digest, request_sig)
            assert err.value.code is ErrorCode.BAD_SIGNATURE, i
            assert "high s" in err.value.message, i
            verify_receipt(pubkey, digest, case["index"], answer, receipt_sig)  # rest is fine
        else:
            # a receipt signed over another answer: the signature is valid, the receipt is not
            kinds.add("receipt")
            assert recover_signer(digest, request_sig) == header.signer, i
            with pytest.raises(RelaynetError) as rerr:
                verify_receipt(pubkey, digest, case["index"], answer, receipt_sig)
            assert rerr.value.code is ErrorCode.BAD_RECEIPT, i
    assert kinds == {"high-s", "receipt"}
