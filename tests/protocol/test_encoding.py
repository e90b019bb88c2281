"""protocol.encoding: hex, addresses, service ids — round trips and stable refusals."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from protocol.encoding import (
    address_from_hex,
    address_to_checksum,
    address_to_hex,
    hex_to_bytes,
    is_valid_service_id,
    service_id_from_bytes,
    service_id_to_bytes,
    to_hex,
)
from protocol.errors import ErrorCode, ProtocolError

SERVICE_IDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=32)


@given(st.binary(max_size=64))
def test_hex_round_trip(data: bytes) -> None:
    assert hex_to_bytes(to_hex(data)) == data
    assert hex_to_bytes(data.hex()) == data
    assert hex_to_bytes("0X" + data.hex().upper()) == data
    assert to_hex(data) == "0x" + data.hex()


@pytest.mark.parametrize(
    "text", ["0x0", "0xzz", "xyz", "0x 00", " 00", "00 ", "0x00\n", "0x0x00", "０１", "0x+1"]
)
def test_bad_hex_is_malformed_input(text: str) -> None:
    with pytest.raises(ProtocolError) as err:
        hex_to_bytes(text, what="nonce")
    assert err.value.code is ErrorCode.MALFORMED_INPUT
    assert "nonce" in err.value.message


@given(st.text(max_size=20))
def test_arbitrary_text_never_escapes(text: str) -> None:
    try:
        hex_to_bytes(text)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED_INPUT


def test_non_string_hex_is_refused() -> None:
    with pytest.raises(ProtocolError):
        hex_to_bytes(None)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        hex_to_bytes(b"00")  # type: ignore[arg-type]


def test_length_is_checked() -> None:
    assert hex_to_bytes("0x0011", 2) == b"\x00\x11"
    with pytest.raises(ProtocolError, match="expected 3 bytes, got 2"):
        hex_to_bytes("0x0011", 3)


@given(st.binary(min_size=20, max_size=20))
def test_address_forms(raw: bytes) -> None:
    lower = address_to_hex(raw)
    assert lower == lower.lower() and address_from_hex(lower) == raw
    checksum = address_to_checksum(raw)
    assert checksum == to_checksum_address(raw)
    assert address_from_hex(checksum) == raw
    assert address_from_hex(lower.upper()[2:]) == raw


def test_bad_checksum_is_refused() -> None:
    good = address_to_checksum(bytes.fromhex("7a04311e82c9866c402ac3abae7843e3e1a0c758"))
    flipped = good[:2] + good[2:].swapcase()
    # swapcase keeps it mixed-case (the address holds letters and digits) but breaks EIP-55
    with pytest.raises(ProtocolError, match="checksum"):
        address_from_hex(flipped)


@pytest.mark.parametrize("text", ["0x" + "00" * 19, "0x" + "00" * 21, "", "0x"])
def test_address_wrong_length(text: str) -> None:
    with pytest.raises(ProtocolError) as err:
        address_from_hex(text)
    assert err.value.code is ErrorCode.MALFORMED_INPUT


def test_address_to_hex_wrong_length() -> None:
    with pytest.raises(ProtocolError):
        address_to_hex(b"\x00" * 19)


@given(SERVICE_IDS)
def test_service_id_round_trip(sid: str) -> None:
    raw = service_id_to_bytes(sid)
    assert len(raw) == 32
    assert raw == sid.encode() + bytes(32 - len(sid))
    assert service_id_from_bytes(raw) == sid
    assert service_id_from_bytes(bytearray(raw)) == sid  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sid", ["", "ETH", "eth.main", "a" * 33, "eth ", "é", "eth\x00", "eth/1", 7, None]
)
def test_bad_service_ids(sid: object) -> None:
    assert not is_valid_service_id(sid)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError) as err:
        service_id_to_bytes(sid)  # type: ignore[arg-type]
    assert err.value.code is ErrorCode.MALFORMED_INPUT


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytes(32), "empty"),
        (b"eth\x00x" + bytes(27), "zero-padded"),
        (b"\x00eth" + bytes(28), "zero-padded"),
        (b"ETH" + bytes(29), "characters"),
        (b"eth", "expected 32 bytes"),
        (b"e" * 33, "expected 32 bytes"),
        (b"\xff" * 32, "characters"),
    ],
)
def test_bad_service_id_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as err:
        service_id_from_bytes(raw)
    assert err.value.code is ErrorCode.MALFORMED_INPUT


@given(st.binary(min_size=32, max_size=32))
def test_service_id_bytes_never_escape(raw: bytes) -> None:
    try:
        sid = service_id_from_bytes(raw)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED_INPUT
    else:
        assert service_id_to_bytes(sid) == raw
