"""The settlement arithmetic of a claim (DESIGN §3.5) and the parameter rules of §3.1.

Exact integer functions, computed the same way by relayers (to decide what to claim and
whether to prove), by the gateway's budget metering (§3.6) and by the contracts::

    P        = ceil((G+CO+CW+PO+PW) / L) + 1
    budget   = (len(slots) × stake(app, n)) // (S × P)
    tokens   = (sum × cu_price) << difficulty_bits
    claimed  = min(tokens, budget)
    required = claimed >= proof_threshold
               or uint256(sha256(root48 ‖ H_c)) mod 10000 < proof_probability_bps
    r        = uint256(sha256(H_c ‖ session_id ‖ supplier)) mod sum

Worked example (devnet shape: ``G, CO, CW, PO, PW = 2, 1, 5, 0, 5``, ``L = 10``, ``S = 6``)::

    >>> P = pending_sessions(10, 2, 1, 5, 0, 5)
    >>> P, budget(2, 6_000, 6, P)
    (3, 666)
    >>> settle_valid(666, 10_000, (9000, 500, 500))
    Payout(paid=666, supplier=599, owner=33, treasury=34)
    >>> settle_void(666, 30000, 1_000, 1000)
    Slash(slash=1000, bounty=100, burned=900)

Every function refuses out-of-range inputs with ProtocolError(MALFORMED_INPUT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.errors import ProtocolError

__all__ = [
    "BPS",
    "MAX_SLASH_MULTIPLIER_BPS",
    "MAX_UNBONDING_SESSIONS",
    "MAX_WINDOW_BLOCKS",
    "ParamSet",
    "Payout",
    "Slash",
    "budget",
    "challenge",
    "claim_tokens",
    "claimed_amount",
    "params_error",
    "pending_sessions",
    "proof_economics_ok",
    "proof_required",
    "settle_valid",
    "settle_void",
    "validate_mint_shares",
    "validate_params",
    "validate_slots",
    "validate_windows",
]

BPS = 10_000
MAX_WINDOW_BLOCKS = 200  # G+CO+CW+PO+PW must stay below this (DESIGN §3.1)
MAX_DIFFICULTY_BITS = 64
MAX_CLAIM_SPAN = 256  # L+G+CO+CW must stay below this, so a claim can itself record H_n
MAX_SLOTS = 64
MAX_LIST = 16  # most delegations per app and services per supplier the contracts can hold
MAX_UNBONDING_SESSIONS = 10_000
MAX_SLASH_MULTIPLIER_BPS = 1_000_000  # the contracts' upper cap on slash_multiplier_bps
MIN_SUPPLIER_SHARE_BPS = 5_000
MAX_SETTLE_BOUNTY_BPS = 5_000
MAX_CU_PRICE = 2**128
MAX_STREAM_RELAYS = 2**32 - 1
_ROOT_SIZE = 48
_HASH_SIZE = 32
_ADDRESS_SIZE = 20


@dataclass(frozen=True, slots=True)
class Payout:
    """A valid claim settled: ``paid`` burned from the app's stake and minted, split three ways."""

    paid: int
    supplier: int
    owner: int
    treasury: int


@dataclass(frozen=True, slots=True)
class Slash:
    """A void claim settled: ``slash`` taken from the supplier, ``bounty`` to the caller."""

    slash: int
    bounty: int
    burned: int


# -- value of a claim ------------------------------------------------------------------------


def pending_sessions(L: int, G: int, CO: int, CW: int, PO: int, PW: int) -> int:
    """``P = ceil((G+CO+CW+PO+PW) / L) + 1``: sessions whose claims may still be open.

    >>> pending_sessions(60, 5, 2, 20, 1, 20)
    2
    """
    _require_int(L, "L", minimum=1)
    for name, value in (("G", G), ("CO", CO), ("CW", CW), ("PO", PO), ("PW", PW)):
        _require_int(value, name)
    total = G + CO + CW + PO + PW
    return -(-total // L) + 1


def budget(n_slots: int, app_stake: int, S: int, P: int) -> int:
    """``(n_slots × app_stake) // (S × P)``: the most one supplier's claim on an app can pay.

    >>> budget(3, 1000, 24, 2)
    62
    """
    _require_int(n_slots, "n_slots")
    _require_int(app_stake, "app_stake")
    _require_int(S, "S", minimum=1)
    _require_int(P, "P", minimum=1)
    if n_slots > S:
        raise ProtocolError(f"n_slots {n_slots} exceeds S {S}")
    return (n_slots * app_stake) // (S * P)


def claim_tokens(sum_: int, cu_price: int, difficulty_bits: int) -> int:
    """``(sum × cu_price) << difficulty_bits``: what the claimed compute units are worth.

    >>> claim_tokens(10, 3, 2)
    120
    """
    _require_int(sum_, "sum")
    _require_int(cu_price, "cu_price")
    _require_int(difficulty_bits, "difficulty_bits")
    if difficulty_bits > MAX_DIFFICULTY_BITS:
        raise ProtocolError(f"difficulty_bits {difficulty_bits} exceeds {MAX_DIFFICULTY_BITS}")
    return (sum_ * cu_price) << difficulty_bits


def claimed_amount(tokens: int, budget: int) -> int:
    """``min(tokens, budget)``."""
    _require_int(tokens, "tokens")
    _require_int(budget, "budget")
    return min(tokens, budget)


def proof_required(
    claimed: int,
    proof_threshold: int,
    root48: bytes,
    h_c: bytes,
    proof_probability_bps: int,
) -> bool:
    """Whether the claim must be proved.

    ``claimed >= proof_threshold`` or ``uint256(sha256(root48 ‖ H_c)) mod 10000 <
    proof_probability_bps``.
    """
    _require_int(claimed, "claimed")
    _require_int(proof_threshold, "proof_threshold")
    _require_bytes(root48, _ROOT_SIZE, "root")
    _require_bytes(h_c, _HASH_SIZE, "H_c")
    _require_bps(proof_probability_bps, "proof_probability_bps")
    if claimed >= proof_threshold:
        return True
    draw = int.from_bytes(hashlib.sha256(bytes(root48) + bytes(h_c)).digest(), "big") % BPS
    return draw < proof_probability_bps


def challenge(h_c: bytes, session_id: bytes, supplier: bytes, sum_: int) -> int:
    """``r = uint256(sha256(H_c ‖ session_id ‖ supplier)) mod sum``, the weighted challenge."""
    _require_bytes(h_c, _HASH_SIZE, "H_c")
    _require_bytes(session_id, _HASH_SIZE, "session_id")
    _require_bytes(supplier, _ADDRESS_SIZE, "supplier")
    _require_int(sum_, "sum", minimum=1)
    digest = hashlib.sha256(bytes(h_c) + bytes(session_id) + bytes(supplier)).digest()
    return int.from_bytes(digest, "big") % sum_


# -- settlement ----------------------------------------------------------------------------


def settle_valid(claimed: int, app_remaining_stake: int, mint_shares: Sequence[int]) -> Payout:
    """A valid claim: ``paid = min(claimed, app stake left)``, split by ``mint_shares`` (bps).

    ``supplier = paid × s // 10000``, ``owner = paid × o // 10000``, and the treasury gets the
    rest (its share plus the rounding remainder).
    """
    _require_int(claimed, "claimed")
    _require_int(app_remaining_stake, "app_remaining_stake")
    supplier_bps, owner_bps, _ = validate_mint_shares(mint_shares)
    paid = min(claimed, app_remaining_stake)
    supplier = paid * supplier_bps // BPS
    owner = paid * owner_bps // BPS
    return Payout(paid=paid, supplier=supplier, owner=owner, treasury=paid - supplier - owner)


def settle_void(
    claimed: int, slash_multiplier_bps: int, supplier_stake: int, settle_bounty_bps: int
) -> Slash:
    """A void claim (required, not proved): slash the supplier, pay the settler a bounty.

    ``slash = min(claimed × slash_multiplier_bps // 10000, supplier_stake)``,
    ``bounty = slash × settle_bounty_bps // 10000``, the rest is burned.
    """
    _require_int(claimed, "claimed")
    _require_int(slash_multiplier_bps, "slash_multiplier_bps")
    _require_int(supplier_stake, "supplier_stake")
    _require_bps(settle_bounty_bps, "settle_bounty_bps")
    slash = min(claimed * slash_multiplier_bps // BPS, supplier_stake)
    bounty = slash * settle_bounty_bps // BPS
    return Slash(slash=slash, bounty=bounty, burned=slash - bounty)


# -- validation ----------------------------------------------------------------------------


def validate_slots(slots: Sequence[int], S: int) -> None:
    """Claimed slots must be non-empty, strictly increasing and each in ``[0, S)``.

    >>> validate_slots([0, 0], 6)
    Traceback (most recent call last):
    ...
    protocol.errors.ProtocolError: slots must be strictly increasing: [0, 0]
    """
    _require_int(S, "S", minimum=1)
    if not slots:
        raise ProtocolError("a claim names at least one slot")
    previous = -1
    for slot in slots:
        _require_int(slot, "slot")
        if slot <= previous:
            raise ProtocolError(f"slots must be strictly increasing: {list(slots)}")
        if slot >= S:
            raise ProtocolError(f"slot {slot} is not below S = {S}")
        previous = slot


def validate_windows(G: int, CO: int, CW: int, PO: int, PW: int) -> None:
    """The session-shape windows of §3.1: non-negative, CW and PW at least one block,
    ``G+CO+CW+PO+PW < 200`` (claims and proofs must fit in the last 256 block hashes)."""
    for name, value in (("G", G), ("CO", CO), ("PO", PO)):
        _require_int(value, name)
    _require_int(CW, "CW", minimum=1)
    _require_int(PW, "PW", minimum=1)
    total = G + CO + CW + PO + PW
    if total >= MAX_WINDOW_BLOCKS:
        raise ProtocolError(f"G+CO+CW+PO+PW = {total} must be below {MAX_WINDOW_BLOCKS}")


def proof_economics_ok(
    proof_probability_bps: int, slash_multiplier_bps: int, settle_bounty_bps: int
) -> bool:
    """Whether fabricating a claim never pays, counting the bounty a supplier takes back when it
    settles its own void claim: ``p × m × (1 − b) >= (1 − p)`` in bps (§3.1).

    >>> proof_economics_ok(2500, 33334, 1000), proof_economics_ok(2500, 33333, 1000)
    (True, False)
    >>> proof_economics_ok(2500, 30000, 1000)  # the old rule p × m >= 1 − p is not enough
    False
    """
    _require_bps(proof_probability_bps, "proof_probability_bps")
    _require_int(slash_multiplier_bps, "slash_multiplier_bps")
    _require_bps(settle_bounty_bps, "settle_bounty_bps")
    return (
        proof_probability_bps * slash_multiplier_bps * (BPS - settle_bounty_bps)
        >= (BPS - proof_probability_bps) * BPS * BPS
    )


@dataclass(frozen=True, slots=True)
class ParamSet:
    """Every parameter §3.1's rules speak about: the session shape and the global economics.

    Defaults are the devnet column (a valid set); :func:`params_error` checks a whole set.
    """

    L: int = 10
    G: int = 2
    CO: int = 1
    CW: int = 5
    PO: int = 0
    PW: int = 5
    S: int = 6
    min_stake_supplier: int = 1
    min_stake_app: int = 1
    min_stake_gateway: int = 1
    unbonding_sessions: int = 3
    max_delegations: int = 7
    max_services_per_supplier: int = 16
    proof_probability_bps: int = 10_000
    slash_multiplier_bps: int = 10_000
    settle_bounty_bps: int = 1_000
    cu_price: int = 1
    mint_shares: tuple[int, int, int] = (9000, 500, 500)
    max_stream_relays: int = 1000


def params_error(p: ParamSet) -> str | None:
    """The first of DESIGN §3.1's rules the whole set ``p`` breaks, or None when it keeps all.

    The message is the contracts' revert reason, word for word (the known answers' ``params``
    section and the Python = Vyper tests hold both to it).

    >>> params_error(ParamSet()) is None
    True
    >>> params_error(ParamSet(proof_probability_bps=2500, slash_multiplier_bps=30000))
    'params: proof economics p*m*(1-b) >= (1-p) violated'
    >>> params_error(ParamSet(L=200, CW=53))
    'params: L+G+CO+CW must be < 256'
    """
    for name in (
        "L", "G", "CO", "CW", "PO", "PW", "S", "min_stake_supplier", "min_stake_app",
        "min_stake_gateway", "unbonding_sessions", "max_delegations", "max_services_per_supplier",
        "proof_probability_bps", "slash_multiplier_bps", "settle_bounty_bps", "cu_price",
        "max_stream_relays",
    ):  # fmt: skip
        _require_int(getattr(p, name), name)
    if len(p.mint_shares) != 3:
        raise ProtocolError("mint_shares must be (supplier, owner, treasury) bps")
    for value in p.mint_shares:
        _require_int(value, "mint_shares")
    supplier_bps, owner_bps, treasury_bps = p.mint_shares
    for broken, reason in (
        (p.L < 1, "params: L must be >= 1"),
        (not 1 <= p.S <= MAX_SLOTS, "params: S must be 1..64"),
        (p.CW < 1, "params: CW must be >= 1"),
        (p.PW < 1, "params: PW must be >= 1"),
        (p.G + p.CO + p.CW + p.PO + p.PW >= MAX_WINDOW_BLOCKS, "params: G+CO+CW+PO+PW must be < 200"),  # noqa: E501
        (p.L + p.G + p.CO + p.CW >= MAX_CLAIM_SPAN, "params: L+G+CO+CW must be < 256"),
    ):  # fmt: skip
        if broken:
            return reason
    P = pending_sessions(p.L, p.G, p.CO, p.CW, p.PO, p.PW)
    rules: tuple[tuple[bool, str], ...] = (
        (
            min(p.min_stake_supplier, p.min_stake_app, p.min_stake_gateway) == 0,
            "params: min stakes must be > 0",
        ),
        (p.unbonding_sessions < P, "params: unbonding_sessions must be >= P"),
        (
            p.unbonding_sessions > MAX_UNBONDING_SESSIONS,
            f"params: unbonding_sessions must be <= {MAX_UNBONDING_SESSIONS}",
        ),
        (not 1 <= p.max_delegations <= MAX_LIST, "params: max_delegations must be 1..16"),
        (
            not 1 <= p.max_services_per_supplier <= MAX_LIST,
            "params: max_services_per_supplier must be 1..16",
        ),
        (p.proof_probability_bps > BPS, "params: proof_probability_bps above 10000"),
        (p.settle_bounty_bps > MAX_SETTLE_BOUNTY_BPS, "params: settle_bounty_bps above 5000"),
        (
            p.slash_multiplier_bps > MAX_SLASH_MULTIPLIER_BPS,
            f"params: slash_multiplier_bps above {MAX_SLASH_MULTIPLIER_BPS}",
        ),
    )
    for broken, reason in rules:
        if broken:
            return reason
    if not proof_economics_ok(p.proof_probability_bps, p.slash_multiplier_bps, p.settle_bounty_bps):
        return "params: proof economics p*m*(1-b) >= (1-p) violated"
    for broken, reason in (
        (not 1 <= p.cu_price <= MAX_CU_PRICE, "params: cu_price must be 1..2**128"),
        (supplier_bps + owner_bps + treasury_bps != BPS, "params: mint shares must sum to 10000"),
        (supplier_bps < MIN_SUPPLIER_SHARE_BPS, "params: supplier mint share must be >= 5000"),
        (
            not 1 <= p.max_stream_relays <= MAX_STREAM_RELAYS,
            "params: max_stream_relays must be 1..2**32-1",
        ),
    ):  # fmt: skip
        if broken:
            return reason
    return None


def validate_params(p: ParamSet) -> None:
    """:func:`params_error` as a check: ProtocolError with the broken rule's reason; a reason
    about the multiplier also states the contracts' cap on it.

    >>> try:
    ...     validate_params(ParamSet(proof_probability_bps=2500, slash_multiplier_bps=30000))
    ... except ProtocolError as exc:
    ...     print(exc.message)
    params: proof economics p*m*(1-b) >= (1-p) violated; slash_multiplier_bps is at most 1000000
    """
    reason = params_error(p)
    if reason is None:
        return
    if "proof economics" in reason:
        reason += f"; slash_multiplier_bps is at most {MAX_SLASH_MULTIPLIER_BPS}"
    raise ProtocolError(reason)


def validate_mint_shares(mint_shares: Sequence[int]) -> tuple[int, int, int]:
    """``(supplier, owner, treasury)`` bps, each non-negative, summing to 10000."""
    if len(mint_shares) != 3:
        raise ProtocolError("mint_shares must be (supplier, owner, treasury) bps")
    for name, value in zip(("supplier", "owner", "treasury"), mint_shares, strict=True):
        _require_bps(value, f"mint_shares.{name}")
    supplier, owner, treasury = mint_shares
    if supplier + owner + treasury != BPS:
        raise ProtocolError(f"mint_shares must sum to {BPS}: {list(mint_shares)}")
    return supplier, owner, treasury


# -- small checks ----------------------------------------------------------------------------


def _require_int(value: object, what: str, *, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _require_bps(value: object, what: str) -> None:
    _require_int(value, what)
    if value > BPS:  # type: ignore[operator]
        raise ProtocolError(f"{what} must be at most {BPS} bps, got {value!r}")


def _require_bytes(value: object, size: int, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != size:
        raise ProtocolError(f"{what} must be {size} bytes")
