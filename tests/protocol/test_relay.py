"""protocol.relay: header codec, EIP-712 digest, signatures, receipts, leaves, mining, transport.

Properties run on fresh random inputs every run; every refusal carries a stable code.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak as eth_keccak
from eth_utils.address import to_checksum_address
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.encoding import service_id_to_bytes
from protocol.errors import ErrorCode, ProtocolError, RelaynetError
from protocol.keys import SECP256K1_N, AccountKey, ReceiptKey
from protocol.relay import (
    LEAF_SIZE,
    RELAY_HEADER_SIZE,
    REQUEST_SIG_SIZE,
    WS_FRAME_PREFIX_SIZE,
    Domain,
    Leaf,
    RelayHeader,
    SessionDigester,
    decode_receipt,
    decode_relay_request,
    decode_ws_frame,
    encode_leaf,
    encode_receipt,
    encode_relay_request,
    encode_ws_frame,
    is_mined,
    receipt_message,
    recover_signer,
    relay_key,
    request_digest,
    request_digest_of_bytes,
    response_hash,
    sign_receipt,
    sign_request,
    value_hash,
    verify_receipt,
)

SID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
service_ids = st.text(alphabet=SID_CHARS, min_size=1, max_size=32)
addresses = st.binary(min_size=20, max_size=20)
hashes = st.binary(min_size=32, max_size=32)
uint32 = st.integers(0, 2**32 - 1)


@st.composite
def headers(draw: st.DrawFn) -> RelayHeader:
    return RelayHeader(
        version=1,
        service_id=draw(service_ids),
        application=draw(addresses),
        signer=draw(addresses),
        supplier=draw(addresses),
        session=draw(st.integers(0, 2**64 - 1)),
        payload_hash=draw(hashes),
        nonce=draw(st.binary(min_size=16, max_size=16)),
        max_index=draw(uint32),
        compute_units=draw(st.integers(1, 2**32 - 1)),
    )


domains = st.builds(Domain, st.integers(0, 2**256 - 1), addresses)
FIXED = RelayHeader(
    1, "eth", b"\x01" * 20, b"\x02" * 20, b"\x03" * 20, 7, b"\x04" * 32, b"\x05" * 16, 0, 3
)
DOMAIN = Domain(31337, b"\x09" * 20)
ACCOUNT = AccountKey(b"\x42" * 32)
RECEIPT = ReceiptKey(b"\x43" * 32)


def _code(exc: pytest.ExceptionInfo[RelaynetError]) -> ErrorCode:
    return exc.value.code


# --- the header ------------------------------------------------------------------------------


@given(headers())
def test_header_round_trip(header: RelayHeader) -> None:
    raw = header.encode()
    assert len(raw) == RELAY_HEADER_SIZE
    assert raw[0] == 1 and raw[1:33] == service_id_to_bytes(header.service_id)
    assert raw[93:101] == header.session.to_bytes(8, "big")
    assert raw[153:157] == header.compute_units.to_bytes(4, "big")
    assert RelayHeader.decode(raw) == header
    assert RelayHeader.decode(bytearray(raw)) == header  # type: ignore[arg-type]
    assert RelayHeader.decode(memoryview(raw)) == header  # type: ignore[arg-type]


@given(headers(), st.data())
def test_wrong_length_is_malformed(header: RelayHeader, data: st.DataObject) -> None:
    raw = header.encode()
    size = data.draw(st.integers(1, 400).filter(lambda n: n != RELAY_HEADER_SIZE))
    bad = (raw * 3)[:size]
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode(bad)
    assert _code(err) is ErrorCode.MALFORMED_HEADER
    assert "157 bytes" in err.value.message


def test_empty_header_is_malformed() -> None:
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode(b"")
    assert _code(err) is ErrorCode.MALFORMED_HEADER


@given(headers(), st.integers(0, 255).filter(lambda v: v != 1), st.integers(1, 300))
def test_other_versions_are_unsupported(header: RelayHeader, version: int, size: int) -> None:
    raw = bytes([version]) + header.encode()[1:]
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode(raw)
    assert _code(err) is ErrorCode.UNSUPPORTED_VERSION
    # the version is read first: another version may have another size
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode((raw * 2)[:size])
    assert _code(err) is ErrorCode.UNSUPPORTED_VERSION


def _bad_service_id_bytes(raw: bytes) -> bool:
    text = raw.rstrip(b"\x00")
    return not text or any(c not in SID_CHARS.encode() for c in text)


@given(headers(), st.binary(min_size=32, max_size=32).filter(_bad_service_id_bytes))
def test_bad_service_id_is_malformed(header: RelayHeader, sid: bytes) -> None:
    raw = header.encode()
    bad = raw[:1] + sid + raw[33:]
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode(bad)
    assert _code(err) is ErrorCode.MALFORMED_HEADER
    assert err.value.message.startswith("service_id")


@pytest.mark.parametrize(
    ("sid", "reason"),
    [
        (bytes(32), "empty"),
        (b"eth\x00eth" + bytes(25), "zero-padded"),
        (b"eth" + b" " * 29, "characters"),
        (b"Eth" + bytes(29), "characters"),
        (b"eth" + bytes(28) + b"\x01", "zero-padded"),
    ],
)
def test_service_id_reasons(sid: bytes, reason: str) -> None:
    raw = FIXED.encode()
    with pytest.raises(ProtocolError, match=reason) as err:
        RelayHeader.decode(raw[:1] + sid + raw[33:])
    assert _code(err) is ErrorCode.MALFORMED_HEADER


@given(headers())
def test_zero_compute_units_is_malformed(header: RelayHeader) -> None:
    raw = header.encode()[:153] + bytes(4)
    with pytest.raises(ProtocolError) as err:
        RelayHeader.decode(raw)
    assert _code(err) is ErrorCode.MALFORMED_HEADER
    assert "compute_units" in err.value.message


@given(st.binary(max_size=200))
def test_random_bytes_never_escape(raw: bytes) -> None:
    try:
        header = RelayHeader.decode(raw)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.MALFORMED_HEADER, ErrorCode.UNSUPPORTED_VERSION)
    else:
        assert header.encode() == raw


@given(st.binary(min_size=156, max_size=156))
def test_random_v1_headers_decode_or_name_a_field(rest: bytes) -> None:
    raw = b"\x01" + rest
    try:
        header = RelayHeader.decode(raw)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED_HEADER
        assert exc.message.split(":")[0] in ("service_id", "compute_units")
    else:
        assert header.encode() == raw


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 256),
        ("version", -1),
        ("service_id", "Bad"),
        ("service_id", ""),
        ("service_id", "x" * 33),
        ("application", b"\x01" * 19),
        ("signer", b"\x01" * 21),
        ("supplier", "0x" + "00" * 20),
        ("session", 2**64),
        ("session", -1),
        ("session", True),
        ("payload_hash", b"\x00" * 31),
        ("nonce", b"\x00" * 32),
        ("max_index", 2**32),
        ("compute_units", 0),
        ("compute_units", 2**32),
        ("compute_units", 1.0),
    ],
)
def test_constructor_names_the_bad_field(field: str, value: Any) -> None:
    fields = {f: getattr(FIXED, f) for f in RelayHeader.__dataclass_fields__}
    fields[field] = value
    with pytest.raises(ProtocolError) as err:
        RelayHeader(**fields)
    assert _code(err) is ErrorCode.MALFORMED_HEADER
    assert err.value.message.startswith(field)


def test_header_normalises_bytes_like_fields() -> None:
    header = RelayHeader(
        1,
        "eth",
        bytearray(20),  # type: ignore[arg-type]
        bytes(20),
        bytes(20),
        0,
        bytes(32),
        bytes(16),
        0,
        1,
    )
    assert type(header.application) is bytes
    assert hash(header) == hash(RelayHeader.decode(header.encode()))


# --- EIP-712 ---------------------------------------------------------------------------------

TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Relay": [
        {"name": "version", "type": "uint8"},
        {"name": "serviceId", "type": "bytes32"},
        {"name": "application", "type": "address"},
        {"name": "signer", "type": "address"},
        {"name": "supplier", "type": "address"},
        {"name": "session", "type": "uint64"},
        {"name": "payloadHash", "type": "bytes32"},
        {"name": "nonce", "type": "bytes16"},
        {"name": "maxIndex", "type": "uint32"},
        {"name": "computeUnits", "type": "uint32"},
    ],
}


def _eth_account_digest(header: RelayHeader, domain: Domain) -> bytes:
    message = {
        "types": TYPES,
        "primaryType": "Relay",
        "domain": {
            "name": "relaynet",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.settlement),
        },
        "message": {
            "version": header.version,
            "serviceId": service_id_to_bytes(header.service_id),
            "application": to_checksum_address(header.application),
            "signer": to_checksum_address(header.signer),
            "supplier": to_checksum_address(header.supplier),
            "session": header.session,
            "payloadHash": header.payload_hash,
            "nonce": header.nonce,
            "maxIndex": header.max_index,
            "computeUnits": header.compute_units,
        },
    }
    signable = encode_typed_data(full_message=message)
    assert signable.header == domain.separator
    return bytes(eth_keccak(b"\x19" + signable.version + signable.header + signable.body))


@settings(max_examples=40, deadline=None)
@given(headers(), domains)
def test_digest_equals_eth_account_typed_data(header: RelayHeader, domain: Domain) -> None:
    digest = request_digest(header, domain)
    assert digest == _eth_account_digest(header, domain)
    assert request_digest_of_bytes(header.encode(), domain) == digest


@given(headers(), domains, domains)
def test_digest_depends_on_domain(header: RelayHeader, a: Domain, b: Domain) -> None:
    assume(a != b)
    assert request_digest(header, a) != request_digest(header, b)


def test_domain_checks_and_caches() -> None:
    assert Domain(1, b"\x01" * 20) == Domain(1, bytearray(b"\x01" * 20))  # type: ignore[arg-type]
    assert Domain(1, b"\x01" * 20).separator == Domain(1, b"\x01" * 20).separator
    assert Domain(1, b"\x01" * 20).separator != Domain(2, b"\x01" * 20).separator
    for bad in ((1, b"\x01" * 19), (-1, b"\x01" * 20), (2**256, b"\x01" * 20)):
        with pytest.raises(ProtocolError) as err:
            Domain(*bad)
        assert _code(err) is ErrorCode.MALFORMED_INPUT


@settings(max_examples=40, deadline=None)
@given(headers(), headers(), domains)
def test_a_session_digester_gives_each_headers_own_digest(
    header: RelayHeader, other: RelayHeader, domain: Domain
) -> None:
    """The digester of one header's session bytes gives the typed-data digest of every header
    with those session bytes, whatever its own fields; a header of another signer or session
    is refused, not hashed under the wrong prefix."""
    digester = SessionDigester(header.encode(), domain)
    assert digester.digest(header.encode()) == _eth_account_digest(header, domain)
    same_session = RelayHeader(
        1,
        header.service_id,
        header.application,
        header.signer,
        header.supplier,
        header.session,
        other.payload_hash,
        other.nonce,
        other.max_index,
        other.compute_units,
    )
    assert digester.digest(same_session.encode()) == request_digest(same_session, domain)
    assert digester.digest(header.encode()) == request_digest(header, domain)  # state unspent
    if other.encode()[:101] != header.encode()[:101]:
        with pytest.raises(ValueError):
            digester.digest(other.encode())
    with pytest.raises(ValueError):
        digester.digest(header.encode()[:-1])


def test_digest_from_bytes_wants_157_bytes() -> None:
    with pytest.raises(ProtocolError) as err:
        request_digest_of_bytes(FIXED.encode()[:-1], DOMAIN)
    assert _code(err) is ErrorCode.MALFORMED_HEADER


# --- request signatures ----------------------------------------------------------------------

private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=50)
@given(private_keys, hashes)
def test_sign_recover_round_trip(private_key: bytes, digest: bytes) -> None:
    key = AccountKey(private_key)
    sig = sign_request(digest, key)
    assert len(sig) == REQUEST_SIG_SIZE and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
    assert recover_signer(digest, sig) == key.address


def _high_s_twin(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])


@settings(max_examples=50)
@given(private_keys, hashes)
def test_high_s_twin_is_refused(private_key: bytes, digest: bytes) -> None:
    sig = AccountKey(private_key).sign_digest(digest)
    twin = _high_s_twin(sig)
    assert twin[64] in (27, 28) and twin != sig
    with pytest.raises(ProtocolError) as err:
        recover_signer(digest, twin)
    assert _code(err) is ErrorCode.BAD_SIGNATURE


@given(hashes, st.integers(0, 255).filter(lambda v: v not in (27, 28)))
def test_v_outside_27_28_is_refused(digest: bytes, v: int) -> None:
    sig = ACCOUNT.sign_digest(digest)
    with pytest.raises(ProtocolError) as err:
        recover_signer(digest, sig[:64] + bytes([v]))
    assert _code(err) is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("size", [0, 1, 64, 66, 130])
def test_signature_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(ProtocolError) as err:
        recover_signer(b"\x00" * 32, b"\x1b" * size)
    assert _code(err) is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (0, 0), (SECP256K1_N, 1), (2**256 - 1, 1)],
)
def test_out_of_range_r_s_are_refused(r: int, s: int) -> None:
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b"
    with pytest.raises(ProtocolError) as err:
        recover_signer(b"\x11" * 32, sig)
    assert _code(err) is ErrorCode.BAD_SIGNATURE


@given(hashes, st.binary(min_size=65, max_size=65))
def test_random_signatures_never_escape(digest: bytes, sig: bytes) -> None:
    try:
        address = recover_signer(digest, sig)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.BAD_SIGNATURE
    else:
        assert len(address) == 20 and address != bytes(20)


def test_signature_for_another_digest_recovers_someone_else() -> None:
    sig = sign_request(b"\x01" * 32, ACCOUNT)
    assert recover_signer(b"\x02" * 32, sig) != ACCOUNT.address


def test_recover_wants_a_32_byte_digest() -> None:
    with pytest.raises(ProtocolError) as err:
        recover_signer(b"\x01" * 31, sign_request(b"\x01" * 32, ACCOUNT))
    assert _code(err) is ErrorCode.MALFORMED_INPUT


@settings(max_examples=20)
@given(headers(), domains)
def test_header_sign_recover_end_to_end(header: RelayHeader, domain: Domain) -> None:
    digest = request_digest(header, domain)
    sig = sign_request(digest, ACCOUNT)
    parsed, header_bytes, parsed_sig = decode_relay_request(
        encode_relay_request(header.encode(), sig)
    )
    assert parsed == header and parsed_sig == sig
    assert (
        recover_signer(request_digest_of_bytes(header_bytes, domain), parsed_sig) == ACCOUNT.address
    )


# --- answers and receipts --------------------------------------------------------------------


@given(st.integers(0, 65535), st.binary(max_size=300))
def test_response_hash_definition(status: int, body: bytes) -> None:
    assert response_hash(status, body) == hashlib.sha256(status.to_bytes(2, "big") + body).digest()


@pytest.mark.parametrize("status", [-1, 65536, "200", None])
def test_response_hash_bad_status(status: Any) -> None:
    with pytest.raises(ProtocolError) as err:
        response_hash(status, b"")
    assert _code(err) is ErrorCode.MALFORMED_INPUT


@given(hashes, st.integers(0, 2**64 - 1), hashes)
def test_receipt_round_trip(digest: bytes, index: int, answer: bytes) -> None:
    message = receipt_message(digest, index, answer)
    assert message == b"relaynet/receipt/v1" + digest + index.to_bytes(8, "big") + answer
    sig = sign_receipt(RECEIPT, digest, index, answer)
    assert len(sig) == 64
    verify_receipt(RECEIPT.public_key, digest, index, answer, sig)


@given(hashes, st.integers(0, 2**32), hashes, st.integers(0, 3), st.data())
def test_tampered_receipts_are_refused(
    digest: bytes, index: int, answer: bytes, which: int, data: st.DataObject
) -> None:
    sig = sign_receipt(RECEIPT, digest, index, answer)
    args = [RECEIPT.public_key, digest, index, answer, sig]
    if which == 2:
        args[2] = index + data.draw(st.integers(1, 2**31))
    else:
        slot = {0: 1, 1: 3, 3: 4}[which]
        original = args[slot]
        assert isinstance(original, bytes)
        pos = data.draw(st.integers(0, len(original) - 1))
        flip = data.draw(st.integers(1, 255))
        args[slot] = original[:pos] + bytes([original[pos] ^ flip]) + original[pos + 1 :]
    with pytest.raises(RelaynetError) as err:
        verify_receipt(*args)  # type: ignore[arg-type]
    assert _code(err) is ErrorCode.BAD_RECEIPT


def test_receipt_under_another_key_is_refused() -> None:
    sig = sign_receipt(RECEIPT, b"\x01" * 32, 0, b"\x02" * 32)
    with pytest.raises(RelaynetError) as err:
        verify_receipt(ReceiptKey.generate().public_key, b"\x01" * 32, 0, b"\x02" * 32, sig)
    assert _code(err) is ErrorCode.BAD_RECEIPT


@pytest.mark.parametrize(
    ("pubkey", "digest", "index", "answer", "sig"),
    [
        (b"\x00" * 31, b"\x01" * 32, 0, b"\x02" * 32, b"\x00" * 64),
        (None, b"\x01" * 32, 0, b"\x02" * 32, b"\x00" * 64),
        (RECEIPT.public_key, b"\x01" * 31, 0, b"\x02" * 32, b"\x00" * 64),
        (RECEIPT.public_key, b"\x01" * 32, -1, b"\x02" * 32, b"\x00" * 64),
        (RECEIPT.public_key, b"\x01" * 32, 2**64, b"\x02" * 32, b"\x00" * 64),
        (RECEIPT.public_key, b"\x01" * 32, 0, b"\x02" * 33, b"\x00" * 64),
        (RECEIPT.public_key, b"\x01" * 32, 0, b"\x02" * 32, b"\x00" * 63),
        (RECEIPT.public_key, b"\x01" * 32, 0, b"\x02" * 32, "00" * 64),
    ],
)
def test_malformed_receipt_inputs_are_bad_receipts(
    pubkey: Any, digest: bytes, index: int, answer: bytes, sig: Any
) -> None:
    with pytest.raises(RelaynetError) as err:
        verify_receipt(pubkey, digest, index, answer, sig)
    assert _code(err) is ErrorCode.BAD_RECEIPT


# --- leaves, relay keys, mining --------------------------------------------------------------


@given(
    headers(),
    st.binary(min_size=65, max_size=65),
    st.integers(0, 2**64 - 1),
    hashes,
    st.binary(min_size=64, max_size=64),
)
def test_leaf_round_trip(
    header: RelayHeader, request_sig: bytes, index: int, answer: bytes, receipt_sig: bytes
) -> None:
    raw = encode_leaf(header.encode(), request_sig, index, answer, receipt_sig)
    assert len(raw) == LEAF_SIZE
    leaf = Leaf.decode(raw)
    assert leaf == Leaf(header, header.encode(), request_sig, index, answer, receipt_sig)
    assert leaf.encode() == raw
    assert value_hash(raw) == hashlib.sha256(raw).digest()


@pytest.mark.parametrize("size", [0, 325, 327, 157])
def test_leaf_wrong_size(size: int) -> None:
    with pytest.raises(ProtocolError) as err:
        Leaf.decode(b"\x01" * size)
    assert _code(err) is ErrorCode.MALFORMED_INPUT
    with pytest.raises(ProtocolError):
        value_hash(b"\x01" * size)


def test_leaf_with_a_bad_header_names_the_header() -> None:
    raw = encode_leaf(FIXED.encode(), b"\x00" * 65, 0, b"\x00" * 32, b"\x00" * 64)
    with pytest.raises(ProtocolError) as err:
        Leaf.decode(b"\x02" + raw[1:])
    assert _code(err) is ErrorCode.UNSUPPORTED_VERSION
    with pytest.raises(ProtocolError) as err:
        Leaf.decode(raw[:1] + bytes(32) + raw[33:])
    assert _code(err) is ErrorCode.MALFORMED_HEADER


@pytest.mark.parametrize(
    "args",
    [
        (b"\x00" * 156, b"\x00" * 65, 0, b"\x00" * 32, b"\x00" * 64),
        (b"\x00" * 157, b"\x00" * 64, 0, b"\x00" * 32, b"\x00" * 64),
        (b"\x00" * 157, b"\x00" * 65, -1, b"\x00" * 32, b"\x00" * 64),
        (b"\x00" * 157, b"\x00" * 65, 0, b"\x00" * 31, b"\x00" * 64),
        (b"\x00" * 157, b"\x00" * 65, 0, b"\x00" * 32, b"\x00" * 65),
    ],
)
def test_encode_leaf_checks_sizes(args: tuple[Any, ...]) -> None:
    with pytest.raises(ProtocolError) as err:
        encode_leaf(*args)
    assert _code(err) is ErrorCode.MALFORMED_INPUT


@given(hashes, st.integers(0, 2**64 - 1))
def test_relay_key_definition(digest: bytes, index: int) -> None:
    assert relay_key(digest, index) == hashlib.sha256(digest + index.to_bytes(8, "big")).digest()


@given(hashes, hashes, st.integers(0, 256))
def test_mining_reads_the_top_bits(key: bytes, h_g: bytes, bits: int) -> None:
    h = hashlib.sha256(key + h_g).digest()
    top = format(int.from_bytes(h, "big"), "0256b")[:bits]
    assert is_mined(key, h_g, bits) is (top == "0" * bits)
    if is_mined(key, h_g, bits):
        assert all(is_mined(key, h_g, b) for b in range(bits + 1))


def test_mining_at_difficulty_zero_and_bad_inputs() -> None:
    assert is_mined(b"\xff" * 32, b"\xff" * 32, 0)
    for args in (
        (b"\x00" * 32, b"\x00" * 32, -1),
        (b"\x00" * 32, b"\x00" * 32, 257),
        (b"\x00" * 31, b"\x00" * 32, 1),
        (b"\x00" * 32, b"\x00" * 33, 1),
    ):
        with pytest.raises(ProtocolError) as err:
            is_mined(*args)
        assert _code(err) is ErrorCode.MALFORMED_INPUT


# --- transport -------------------------------------------------------------------------------


@given(headers(), st.binary(min_size=65, max_size=65))
def test_relay_request_header_round_trip(header: RelayHeader, sig: bytes) -> None:
    value = encode_relay_request(header.encode(), sig)
    assert value == base64.b64encode(header.encode() + sig).decode()
    assert decode_relay_request(value) == (header, header.encode(), sig)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "!!!!",
        "AAAA" * 10,
        base64.b64encode(b"\x01" * 221).decode(),
        base64.b64encode(b"\x01" * 223).decode(),
        base64.urlsafe_b64encode(b"\xff" * 222).decode(),
        base64.b64encode(b"\x01" * 222).decode() + "\n",
        " " + base64.b64encode(b"\x01" * 222).decode(),
        "é" * 296,
    ],
)
def test_bad_relay_request_header_is_malformed(value: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_relay_request(value)
    assert _code(err) is ErrorCode.MALFORMED_HEADER


def test_relay_request_with_another_version() -> None:
    value = base64.b64encode(b"\x02" + FIXED.encode()[1:] + b"\x00" * 65).decode()
    with pytest.raises(ProtocolError) as err:
        decode_relay_request(value)
    assert _code(err) is ErrorCode.UNSUPPORTED_VERSION


@given(st.text(max_size=320))
def test_relay_request_text_never_escapes(value: str) -> None:
    try:
        decode_relay_request(value)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.MALFORMED_HEADER, ErrorCode.UNSUPPORTED_VERSION)


@given(hashes, st.binary(min_size=64, max_size=64))
def test_receipt_header_round_trip(answer: bytes, sig: bytes) -> None:
    value = encode_receipt(answer, sig)
    assert base64.b64decode(value, validate=True) == answer + sig
    assert decode_receipt(value) == (answer, sig)


@pytest.mark.parametrize(
    "value",
    ["", "x", base64.b64encode(b"\x00" * 95).decode(), base64.b64encode(b"\x00" * 97).decode()],
)
def test_bad_receipt_header(value: str) -> None:
    with pytest.raises(RelaynetError) as err:
        decode_receipt(value)
    assert _code(err) is ErrorCode.BAD_RECEIPT


@given(
    st.integers(0, 2**64 - 1), hashes, st.binary(min_size=64, max_size=64), st.binary(max_size=200)
)
def test_ws_frame_round_trip(index: int, answer: bytes, sig: bytes, body: bytes) -> None:
    frame = encode_ws_frame(index, answer, sig, body)
    assert frame[:8] == index.to_bytes(8, "big") and len(frame) == WS_FRAME_PREFIX_SIZE + len(body)
    assert decode_ws_frame(frame) == (index, answer, sig, body)


def test_short_ws_frame_is_a_bad_receipt() -> None:
    with pytest.raises(RelaynetError) as err:
        decode_ws_frame(b"\x00" * (WS_FRAME_PREFIX_SIZE - 1))
    assert _code(err) is ErrorCode.BAD_RECEIPT
    with pytest.raises(ProtocolError):
        encode_ws_frame(-1, b"\x00" * 32, b"\x00" * 64, b"")


def test_s_at_half_the_order_is_low_and_one_above_it_is_high() -> None:
    digest = b"\x21" * 32
    r = ACCOUNT.sign_digest(digest)[:32]
    half = SECP256K1_N // 2
    with pytest.raises(ProtocolError, match="high s"):
        recover_signer(digest, r + (half + 1).to_bytes(32, "big") + b"\x1b")
    try:  # n/2 itself is low: recovered, or refused for another reason
        recover_signer(digest, r + half.to_bytes(32, "big") + b"\x1b")
    except ProtocolError as exc:
        assert "high s" not in exc.message
    last = (SECP256K1_N - 1).to_bytes(32, "big")  # r = n - 1 is in range
    try:
        recover_signer(digest, last + (1).to_bytes(32, "big") + b"\x1b")
    except ProtocolError as exc:
        assert "out of range" not in exc.message
