"""The verification algorithm (README, "Verifying an answer"; DESIGN §3.3 and §4).

:func:`verify_leg` runs the checks on one relayed answer in this order, each a named step
that either passes or raises :class:`CheckFailed` naming itself:

1. ``relay_request`` — ``Relay-Request`` decodes to ``RH ‖ request_sig`` (157 + 65 bytes);
2. ``payload_hash`` — ``RH.payload_hash = sha256(request payload)``;
3. ``supplier`` — ``Relay-Supplier`` names ``RH.supplier``;
4. ``domain`` — the EIP-712 domain of session n: the chain id recorded with ``H_n``
   (``Sessions.chain_id_of(n)``; before the checkpoint, the chain's id now) and the settlement
   address; ``request_digest`` is computed from the 157 header bytes under it;
5. ``signature`` — low-s, v in {27, 28}, recovers to ``RH.signer``;
6. ``signer_ok`` — ``Apps.signer_ok(app, signer, n)``;
7. ``compute_units`` — ``1 <= cu <= max_cu_per_relay(service, n)``;
8. ``max_index`` — ``index <= max_index <= max_stream_relays(n)``: index 0 over HTTP, the
   frame's own on a WebSocket stream (whose relay has ``max_index >= 1``);
9. ``response_hash`` — ``sha256(uint16(Relay-Backend-Status) ‖ body)`` equals the receipt's;
10. ``receipt`` — ed25519 (strict) under ``receipt_key(supplier, n)``;
11. ``slot`` — the supplier holds a slot of session n: ``H_n``, ``C = length(service, n)``,
    ``slot_j = occupant(uint256(sha256(seed ‖ uint16(j))) mod C, n)`` for ``j < S``.

What a passing leg proves is a :class:`Proven` (who served, for which app and session, and the
blocks in which the supplier may claim it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from protocol.encoding import address_to_checksum, service_id_to_bytes
from protocol.errors import ErrorCode, ProtocolError
from protocol.relay import (
    Domain,
    RelayHeader,
    decode_receipt,
    decode_relay_request,
    recover_signer,
    request_digest_of_bytes,
    response_hash,
    verify_receipt,
)
from session.errors import SessionError
from session.slots import session_seed, slots
from session.windows import windows
from verify.chain import ChainReader, ChainRevert
from verify.errors import CheckFailed
from verify.exchange import AnswerObject, Exchange, Leg, answer_objects

__all__ = ["CHECKS", "LegResult", "Proven", "Report", "verify_exchange", "verify_leg"]

CHECKS: Final = (
    "relay_request",
    "payload_hash",
    "supplier",
    "domain",
    "signature",
    "signer_ok",
    "compute_units",
    "max_index",
    "response_hash",
    "receipt",
    "slot",
)

_STATUSES: Final = range(100, 600)
_ZERO32: Final = bytes(32)


@dataclass(frozen=True, slots=True)
class Proven:
    """What one verified leg proves."""

    service: str
    app: bytes
    signer: bytes
    supplier: bytes
    session: int
    chain_id: int
    slots: tuple[int, ...]  # the slots of session n the supplier holds
    compute_units: int
    cu_per_relay: int  # the service's default price at n, for comparison
    max_cu_per_relay: int
    backend_status: int
    status_from_header: bool
    receipt_key: bytes
    claim_open: int
    claim_close: int
    head: int

    def describe(self) -> str:
        signer = (
            "the app itself"
            if self.signer == self.app
            else f"gateway {address_to_checksum(self.signer)} (signer_ok at n)"
        )
        claim = f"claimable in blocks {self.claim_open}..{self.claim_close} (head {self.head}" + (
            ", claim window closed)" if self.head > self.claim_close else ")"
        )
        status = "" if self.status_from_header else " (status recovered from the receipt)"
        return (
            f"supplier {address_to_checksum(self.supplier)} served app "
            f"{address_to_checksum(self.app)} on service {self.service!r} in session "
            f"{self.session} (chain id {self.chain_id}), slots {list(self.slots)}; signed by "
            f"{signer}; {self.compute_units} compute units (service default "
            f"{self.cu_per_relay}, max {self.max_cu_per_relay}); backend status "
            f"{self.backend_status}{status}; receipt key 0x{self.receipt_key.hex()}; {claim}"
        )


@dataclass(frozen=True, slots=True)
class LegResult:
    position: int
    leg_index: int
    proven: Proven | None
    failure: CheckFailed | None


@dataclass(frozen=True, slots=True)
class Report:
    objects: tuple[AnswerObject, ...]
    results: tuple[LegResult, ...]

    @property
    def ok(self) -> bool:
        """Every relayed leg verified, and at least one did."""
        return bool(self.results) and all(r.failure is None for r in self.results)

    def lines(self) -> list[str]:
        out: list[str] = []
        for obj in self.objects:
            if not obj.legs:
                origin = "the cache" if obj.source == "cache" else "the gateway itself"
                out.append(f"answer {obj.position}: not verifiable (answered by {origin})")
        disagreements = {o.position for o in self.objects if o.source == "disagreement"}
        for position in sorted(disagreements):
            out.append(
                f"answer {position}: suppliers disagree (-32098); checking every signed answer"
            )
        frames = {o.position for o in self.objects if o.source == "frame"}
        for r in self.results:
            many = r.leg_index or r.position in disagreements
            where = f"answer {r.position}" + (f" leg {r.leg_index}" if many else "")
            if r.position in frames:
                where = f"frame {r.position}"
            if r.proven is not None:
                out.append(f"{where}: OK — {r.proven.describe()}")
            else:
                assert r.failure is not None
                out.append(f"{where}: FAILED {r.failure.code.value} at {r.failure.message}")
        if not self.results:
            out.append("nothing to verify: no answer object was relayed")
        return out


def verify_exchange(exchange: Exchange, chain: ChainReader) -> Report:
    """Verify every relayed leg of ``exchange``; ExchangeError when its headers are unusable."""
    objects = answer_objects(exchange)
    results: list[LegResult] = []
    for obj in objects:
        for k, leg in enumerate(obj.legs):
            try:
                results.append(LegResult(obj.position, k, verify_leg(leg, chain), None))
            except CheckFailed as exc:
                results.append(LegResult(obj.position, k, None, exc))
    return Report(tuple(objects), tuple(results))


def verify_leg(leg: Leg, chain: ChainReader) -> Proven:
    """Run the checks of the module docstring on one leg, in order."""
    # 1. relay_request
    try:
        header, header_bytes, request_sig = decode_relay_request(leg.relay_request)
    except ProtocolError as exc:
        raise CheckFailed("relay_request", exc.message, code=exc.code) from exc
    n = header.session

    # 2. payload_hash: the request payload this relay signed
    if not any(hashlib.sha256(r).digest() == header.payload_hash for r in leg.requests):
        raise CheckFailed(
            "payload_hash",
            f"RH.payload_hash 0x{header.payload_hash.hex()} is not sha256 of the request"
            + (" or of any element of the batch" if len(leg.requests) > 1 else ""),
            code=ErrorCode.PAYLOAD_HASH_MISMATCH,
        )

    # 3. supplier
    if leg.supplier is not None:
        try:
            named = bytes.fromhex(leg.supplier.removeprefix("0x"))
        except ValueError:
            named = b""
        if named != header.supplier:
            raise CheckFailed(
                "supplier",
                f"Relay-Supplier {leg.supplier} but the signed header names "
                f"{address_to_checksum(header.supplier)}",
                code=ErrorCode.WRONG_SUPPLIER,
            )

    # 4. domain of session n
    chain_id = chain.recorded_chain_id(n) or chain.chain_id()
    digest = request_digest_of_bytes(header_bytes, Domain(chain_id, chain.settlement))

    # 5. signature
    try:
        signer = recover_signer(digest, request_sig)
    except ProtocolError as exc:
        raise CheckFailed("signature", exc.message, code=ErrorCode.BAD_SIGNATURE) from exc
    if signer != header.signer:
        raise CheckFailed(
            "signature",
            f"recovers to {address_to_checksum(signer)}, not RH.signer "
            f"{address_to_checksum(header.signer)} (under chain id {chain_id})",
            code=ErrorCode.BAD_SIGNATURE,
        )

    # 6. signer_ok
    if not chain.signer_ok(header.application, header.signer, n):
        raise CheckFailed(
            "signer_ok",
            f"signer {address_to_checksum(header.signer)} is neither app "
            f"{address_to_checksum(header.application)} nor a gateway it delegates to, "
            f"staked in the same epoch, at session {n}",
            code=ErrorCode.SIGNER_NOT_DELEGATED,
        )

    # 7. compute_units
    service_bytes = service_id_to_bytes(header.service_id)
    try:
        limits = chain.service_limits(service_bytes, n)
    except ChainRevert as exc:
        raise CheckFailed(
            "compute_units",
            f"service {header.service_id!r} has no parameters at session {n} ({exc.message})",
            code=ErrorCode.UNKNOWN_SERVICE,
        ) from exc
    if not 1 <= header.compute_units <= limits.max_cu_per_relay:
        raise CheckFailed(
            "compute_units",
            f"{header.compute_units} outside 1..max_cu_per_relay={limits.max_cu_per_relay} "
            f"of session {n}",
            code=ErrorCode.BAD_COMPUTE_UNITS,
        )

    # 8. max_index (an HTTP answer is index 0; a stream's frame has its own)
    index = leg.index
    max_stream = chain.max_stream_relays(n)
    if not index <= header.max_index <= max_stream or (leg.stream and header.max_index == 0):
        raise CheckFailed(
            "max_index",
            f"index {index} <= max_index {header.max_index} <= max_stream_relays {max_stream}"
            " does not hold",
            code=ErrorCode.MALFORMED_HEADER,
        )

    # 9. response_hash
    try:
        receipt_hash, receipt_sig = decode_receipt(leg.relay_receipt)
    except ProtocolError as exc:
        raise CheckFailed("response_hash", exc.message, code=ErrorCode.BAD_RECEIPT) from exc
    status = _answer(leg, receipt_hash)

    # 10. receipt under receipt_key(supplier, n)
    key = chain.receipt_key(header.supplier, n)
    if key == _ZERO32:
        raise CheckFailed(
            "receipt",
            f"supplier {address_to_checksum(header.supplier)} has no receipt key at session {n}",
            code=ErrorCode.BAD_RECEIPT,
        )
    try:
        verify_receipt(key, digest, index, receipt_hash, receipt_sig)
    except ProtocolError as exc:
        raise CheckFailed(
            "receipt",
            f"the signature does not verify under {address_to_checksum(header.supplier)}'s "
            f"receipt key 0x{key.hex()} valid at session {n}",
            code=ErrorCode.BAD_RECEIPT,
        ) from exc

    # 11. slot
    held = _slots_held(chain, header, n)

    shape = chain.shape()
    w = windows(shape, n)
    return Proven(
        service=header.service_id,
        app=header.application,
        signer=header.signer,
        supplier=header.supplier,
        session=n,
        chain_id=chain_id,
        slots=held,
        compute_units=header.compute_units,
        cu_per_relay=limits.cu_per_relay,
        max_cu_per_relay=limits.max_cu_per_relay,
        backend_status=status,
        status_from_header=leg.backend_status is not None,
        receipt_key=key,
        claim_open=w.claim_open,
        claim_close=w.claim_close,
        head=chain.head(),
    )


def _answer(leg: Leg, receipt_hash: bytes) -> int:
    """The status the receipt's response_hash covers: with ``Relay-Backend-Status``,
    that status exactly; without it, the one status in 100–599 whose hash matches (the
    receipt signs the hash, so recovering the status proves as much as reading it)."""
    statuses = [leg.backend_status] if leg.backend_status is not None else list(_STATUSES)
    for body in leg.response:
        for status in statuses:
            if response_hash(status, body) == receipt_hash:
                return status
    said = (
        f"uint16({leg.backend_status})"
        if leg.backend_status is not None
        else "uint16(any status 100–599)"
    )
    raise CheckFailed(
        "response_hash",
        f"sha256({said} ‖ body) is not the receipt's response_hash "
        f"0x{receipt_hash.hex()} — the body or status is not what the supplier signed",
        code=ErrorCode.BAD_RECEIPT,
    )


def _slots_held(chain: ChainReader, header: RelayHeader, n: int) -> tuple[int, ...]:
    shape = chain.shape()
    h_n = chain.recorded_h_n(n)
    if h_n == _ZERO32:
        block = chain.block_hash(shape.B0 + n * shape.L - 1)
        if block is None:
            raise CheckFailed(
                "slot",
                f"session {n} has not started (block {shape.B0 + n * shape.L - 1} not mined)",
                code=ErrorCode.SESSION_NOT_STARTED,
            )
        h_n = block
    service_bytes = service_id_to_bytes(header.service_id)
    C = chain.length(service_bytes, n)
    try:
        seed = session_seed(h_n, header.service_id, header.application, n)
        drawn = slots(seed, shape.S, C, lambda p: chain.occupant(service_bytes, p, n))
    except SessionError as exc:
        raise CheckFailed("slot", exc.message, code=ErrorCode.NOT_IN_SESSION) from exc
    held = tuple(j for j, s in enumerate(drawn) if s == header.supplier)
    if not held:
        present = ", ".join(address_to_checksum(s) for s in dict.fromkeys(drawn)) or "none"
        raise CheckFailed(
            "slot",
            f"supplier {address_to_checksum(header.supplier)} holds no slot of session {n} "
            f"(its {shape.S} slots go to {present})",
            code=ErrorCode.NOT_IN_SESSION,
        )
    return held
