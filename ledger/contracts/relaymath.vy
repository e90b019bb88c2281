# pragma version ~=0.4.3
"""
@title relaymath
@notice Pure protocol math of DESIGN §3 shared by Settlement and MathHarness: session seeds and
        slot positions (§3.2), the EIP-712 request digest, relay keys, mining and signature
        recovery (§3.3), strict weighted-proof verification of the Merkle sum trie (§3.4) and the
        claim / settlement arithmetic (§3.5). No state.
"""

import structs

HEADER_SIZE: constant(uint256) = 157
MAX_SLASH_MULTIPLIER_BPS: constant(uint256) = 1000000
MAX_UNBONDING_SESSIONS: constant(uint256) = 10000
MAX_LIST: constant(uint256) = 16
LEAF_SIZE: constant(uint256) = 326
MAX_DEPTH: constant(uint256) = 256
MAX_UINT64: constant(uint256) = 2**64 - 1
# secp256k1 group order / 2: a signature's s must not exceed it (low-s).
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

DOMAIN_TYPE: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
RELAY_TYPE: constant(bytes32) = keccak256(
    "Relay(uint8 version,bytes32 serviceId,address application,address signer,address supplier,uint64 session,bytes32 payloadHash,bytes16 nonce,uint32 maxIndex,uint32 computeUnits)"
)
NAME_HASH: constant(bytes32) = keccak256("relaynet")
VERSION_HASH: constant(bytes32) = keccak256("1")

# verdicts of verify_proof / recover_code (0 = valid)
OK: constant(uint8) = 0
E_TOO_MANY_SIBLINGS: constant(uint8) = 1
E_NON_CANONICAL: constant(uint8) = 2
E_EMPTY_LOWEST: constant(uint8) = 3
E_SUM_OVERFLOW: constant(uint8) = 4
E_ROOT_MISMATCH: constant(uint8) = 5
E_OUTSIDE_LEAF: constant(uint8) = 6
E_BAD_V: constant(uint8) = 7
E_HIGH_S: constant(uint8) = 8
E_NO_RECOVERY: constant(uint8) = 9
E_NO_SLOTS: constant(uint8) = 10
E_SLOT_RANGE: constant(uint8) = 11
E_SLOT_ORDER: constant(uint8) = 12
MAX_SLOTS: constant(uint256) = 64


struct Node:
    digest: bytes32
    sum: uint64
    count: uint64


struct Header:
    version: uint256
    service: bytes32
    application: address
    signer: address
    supplier: address
    session: uint256
    payload_hash: bytes32
    nonce: bytes16
    max_index: uint256
    compute_units: uint256


@internal
@pure
def u64(x: uint256) -> bytes8:
    return convert(convert(x, uint64), bytes8)


# ---- §3.2 sessions -------------------------------------------------------------------------


@internal
@pure
def pending_sessions(L: uint256, G: uint256, CO: uint256, CW: uint256, PO: uint256, PW: uint256) -> uint256:
    total: uint256 = G + CO + CW + PO + PW
    return (total + L - 1) // L + 1


@internal
@pure
def session_seed(h_n: bytes32, service: bytes32, app: address, n: uint256) -> bytes32:
    return sha256(concat(h_n, service, convert(app, bytes20), self.u64(n)))


@internal
@pure
def slot_position(seed: bytes32, j: uint256, c: uint256) -> uint256:
    h: bytes32 = sha256(concat(seed, convert(convert(j, uint16), bytes2)))
    return convert(h, uint256) % c


@internal
@pure
def check_slots(slots: DynArray[uint256, MAX_SLOTS], S: uint256) -> uint8:
    """0 when the claimed slots are non-empty, strictly increasing and below S."""
    if len(slots) == 0:
        return E_NO_SLOTS
    for i: uint256 in range(MAX_SLOTS):
        if i >= len(slots):
            break
        if slots[i] >= S:
            return E_SLOT_RANGE
        if i > 0 and slots[i] <= slots[i - 1]:
            return E_SLOT_ORDER
    return OK


# ---- §3.3 relays ---------------------------------------------------------------------------


@internal
@pure
def domain_separator(chain_id: uint256, verifying: address) -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPE, NAME_HASH, VERSION_HASH, chain_id, verifying))


@internal
@pure
def addr_at(b: Bytes[LEAF_SIZE], start: uint256) -> address:
    return convert(convert(slice(b, start, 20), bytes20), address)


@internal
@pure
def decode_header(h: Bytes[LEAF_SIZE]) -> Header:
    return Header(
        version=convert(slice(h, 0, 1), uint256),
        service=extract32(h, 1),
        application=self.addr_at(h, 33),
        signer=self.addr_at(h, 53),
        supplier=self.addr_at(h, 73),
        session=convert(slice(h, 93, 8), uint256),
        payload_hash=extract32(h, 101),
        nonce=convert(slice(h, 133, 16), bytes16),
        max_index=convert(slice(h, 149, 4), uint256),
        compute_units=convert(slice(h, 153, 4), uint256),
    )


@internal
@pure
def request_digest(h: Header, domain: bytes32) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(
            RELAY_TYPE,
            h.version,
            h.service,
            h.application,
            h.signer,
            h.supplier,
            h.session,
            h.payload_hash,
            h.nonce,
            h.max_index,
            h.compute_units,
        )
    )
    return keccak256(concat(b"\x19\x01", domain, struct_hash))


@internal
@pure
def relay_key(digest: bytes32, index: uint256) -> bytes32:
    return sha256(concat(digest, self.u64(index)))


@internal
@pure
def is_mined(key: bytes32, h_g: bytes32, difficulty_bits: uint256) -> bool:
    if difficulty_bits == 0:
        return True
    h: uint256 = convert(sha256(concat(key, h_g)), uint256)
    return (h >> (256 - difficulty_bits)) == 0


@internal
@view
def recover(digest: bytes32, r: uint256, s: uint256, v: uint256) -> (address, uint8):
    """Signer of ``digest`` under a 65-byte r‖s‖v signature, or a verdict code."""
    if v != 27 and v != 28:
        return empty(address), E_BAD_V
    if s > HALF_N:
        return empty(address), E_HIGH_S
    signer: address = ecrecover(digest, v, r, s)
    if signer == empty(address):
        return empty(address), E_NO_RECOVERY
    return signer, OK


# ---- §3.4 trie -----------------------------------------------------------------------------


@internal
@pure
def leaf_digest(key: bytes32, value_hash: bytes32, weight: uint256) -> bytes32:
    return sha256(concat(b"\x00", key, value_hash, self.u64(weight), self.u64(1)))


@internal
@pure
def inner_digest(ld: bytes32, ls: uint256, lc: uint256, rd: bytes32, rs: uint256, rc: uint256) -> bytes32:
    return sha256(
        concat(b"\x01", ld, self.u64(ls), self.u64(lc), rd, self.u64(rs), self.u64(rc))
    )


@internal
@pure
def verify_proof(
    root_digest: bytes32,
    root_sum: uint256,
    root_count: uint256,
    r: uint256,
    key: bytes32,
    value_hash: bytes32,
    weight: uint256,
    siblings: DynArray[Node, MAX_DEPTH],
) -> uint8:
    """Strict weighted-proof verdict (DESIGN §3.4): 0 when valid, else an E_* code."""
    depth: uint256 = len(siblings)
    if weight > MAX_UINT64:
        return E_SUM_OVERFLOW
    if depth > 0:
        lowest: Node = siblings[depth - 1]
        if lowest.count == 0:
            return E_EMPTY_LOWEST
    k: uint256 = convert(key, uint256)
    d: bytes32 = self.leaf_digest(key, value_hash, weight)
    s: uint256 = weight
    c: uint256 = 1
    offset: uint256 = 0
    for i: uint256 in range(MAX_DEPTH):
        if i >= depth:
            break
        level: uint256 = depth - 1 - i
        sib: Node = siblings[level]
        sc: uint256 = convert(sib.count, uint256)
        ss: uint256 = convert(sib.sum, uint256)
        if sc == 0:
            if ss != 0 or sib.digest != empty(bytes32):
                return E_NON_CANONICAL
        elif sib.digest == empty(bytes32):
            return E_NON_CANONICAL
        if (k >> (255 - level)) & 1 == 0:
            d = self.inner_digest(d, s, c, sib.digest, ss, sc)
        else:
            d = self.inner_digest(sib.digest, ss, sc, d, s, c)
            offset += ss
        s += ss
        c += sc
        if s > MAX_UINT64 or c > MAX_UINT64:
            return E_SUM_OVERFLOW
    if d != root_digest or s != root_sum or c != root_count:
        return E_ROOT_MISMATCH
    if r < offset or r >= offset + weight:
        return E_OUTSIDE_LEAF
    return OK


# ---- §3.5 claim and settlement arithmetic -------------------------------------------------


@internal
@pure
def budget(n_slots: uint256, app_stake: uint256, S: uint256, P: uint256) -> uint256:
    return n_slots * app_stake // (S * P)


@internal
@pure
def claimed_amount(sum_: uint256, cu_price: uint256, difficulty_bits: uint256, budget_: uint256) -> uint256:
    """min((sum × cu_price) << d, budget) without overflow (sum < 2**64, cu_price <= 2**128)."""
    base: uint256 = sum_ * cu_price
    if base > (budget_ >> difficulty_bits):
        return budget_
    return base << difficulty_bits


@internal
@pure
def proof_required(
    claimed: uint256, threshold: uint256, root: Bytes[48], h_c: bytes32, probability_bps: uint256
) -> bool:
    if claimed >= threshold:
        return True
    return convert(sha256(concat(root, h_c)), uint256) % 10000 < probability_bps


@internal
@pure
def challenge(h_c: bytes32, session_id: bytes32, supplier: address, sum_: uint256) -> uint256:
    return convert(sha256(concat(h_c, session_id, convert(supplier, bytes20))), uint256) % sum_


@internal
@pure
def shares(paid: uint256, supplier_bps: uint256, owner_bps: uint256) -> (uint256, uint256, uint256):
    s: uint256 = paid * supplier_bps // 10000
    o: uint256 = paid * owner_bps // 10000
    return s, o, paid - s - o


@internal
@pure
def slash_amounts(
    claimed: uint256, multiplier_bps: uint256, supplier_stake: uint256, bounty_bps: uint256
) -> (uint256, uint256, uint256):
    slash: uint256 = min(claimed * multiplier_bps // 10000, supplier_stake)
    bounty: uint256 = slash * bounty_bps // 10000
    return slash, bounty, slash - bounty


# ---- §3.1 parameter rules ------------------------------------------------------------------


@internal
@pure
def params_error(
    L: uint256, G: uint256, CO: uint256, CW: uint256, PO: uint256, PW: uint256, S: uint256, p: structs.EconParams
) -> String[96]:
    """The first of DESIGN §3.1's rules the whole parameter set breaks ("" when it keeps all)."""
    if L < 1:
        return "params: L must be >= 1"
    if S < 1 or S > MAX_SLOTS:
        return "params: S must be 1..64"
    if CW < 1:
        return "params: CW must be >= 1"
    if PW < 1:
        return "params: PW must be >= 1"
    if G + CO + CW + PO + PW >= 200:
        return "params: G+CO+CW+PO+PW must be < 200"
    if L + G + CO + CW >= 256:
        return "params: L+G+CO+CW must be < 256"
    if p.min_stake_supplier == 0 or p.min_stake_app == 0 or p.min_stake_gateway == 0:
        return "params: min stakes must be > 0"
    if p.unbonding_sessions < self.pending_sessions(L, G, CO, CW, PO, PW):
        return "params: unbonding_sessions must be >= P"
    if p.unbonding_sessions > MAX_UNBONDING_SESSIONS:
        return "params: unbonding_sessions must be <= 10000"
    if p.max_delegations < 1 or p.max_delegations > MAX_LIST:
        return "params: max_delegations must be 1..16"
    if p.max_services_per_supplier < 1 or p.max_services_per_supplier > MAX_LIST:
        return "params: max_services_per_supplier must be 1..16"
    if p.proof_probability_bps > 10000:
        return "params: proof_probability_bps above 10000"
    if p.settle_bounty_bps > 5000:
        return "params: settle_bounty_bps above 5000"
    if p.slash_multiplier_bps > MAX_SLASH_MULTIPLIER_BPS:
        return "params: slash_multiplier_bps above 1000000"
    if p.proof_probability_bps * p.slash_multiplier_bps * (10000 - p.settle_bounty_bps) < (10000 - p.proof_probability_bps) * 10000 * 10000:
        return "params: proof economics p*m*(1-b) >= (1-p) violated"
    if p.cu_price < 1 or p.cu_price > 2**128:
        return "params: cu_price must be 1..2**128"
    if p.mint_supplier_bps + p.mint_owner_bps + p.mint_treasury_bps != 10000:
        return "params: mint shares must sum to 10000"
    if p.mint_supplier_bps < 5000:
        return "params: supplier mint share must be >= 5000"
    if p.max_stream_relays < 1 or p.max_stream_relays > 2**32 - 1:
        return "params: max_stream_relays must be 1..2**32-1"
    return ""
