# pragma version ~=0.4.3
"""
@title MathHarness
@notice Test-only: exposes relaymath (the math Settlement runs) for Python-vs-Vyper agreement tests.
"""
import relaymath
import structs


@external
@pure
def pending_sessions(L: uint256, G: uint256, CO: uint256, CW: uint256, PO: uint256, PW: uint256) -> uint256:
    return relaymath.pending_sessions(L, G, CO, CW, PO, PW)


@external
@pure
def session_seed(h_n: bytes32, service: bytes32, app: address, n: uint256) -> bytes32:
    return relaymath.session_seed(h_n, service, app, n)


@external
@pure
def slot_position(seed: bytes32, j: uint256, c: uint256) -> uint256:
    return relaymath.slot_position(seed, j, c)


@external
@pure
def check_slots(slots: DynArray[uint256, 64], S: uint256) -> uint8:
    return relaymath.check_slots(slots, S)


@external
@pure
def domain_separator(chain_id: uint256, verifying: address) -> bytes32:
    return relaymath.domain_separator(chain_id, verifying)


@external
@pure
def request_digest(header: Bytes[157], domain: bytes32) -> bytes32:
    return relaymath.request_digest(relaymath.decode_header(header), domain)


@external
@pure
def relay_key(digest: bytes32, index: uint256) -> bytes32:
    return relaymath.relay_key(digest, index)


@external
@pure
def is_mined(key: bytes32, h_g: bytes32, difficulty_bits: uint256) -> bool:
    return relaymath.is_mined(key, h_g, difficulty_bits)


@external
@view
def recover(digest: bytes32, signature: Bytes[65]) -> (address, uint8):
    r: uint256 = convert(slice(signature, 0, 32), uint256)
    s: uint256 = convert(slice(signature, 32, 32), uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    return relaymath.recover(digest, r, s, v)


@external
@pure
def leaf_digest(key: bytes32, value_hash: bytes32, weight: uint256) -> bytes32:
    return relaymath.leaf_digest(key, value_hash, weight)


@external
@pure
def verify_proof(
    root: Bytes[48],
    r: uint256,
    key: bytes32,
    value_hash: bytes32,
    weight: uint256,
    siblings: DynArray[relaymath.Node, 256],
) -> uint8:
    return relaymath.verify_proof(
        extract32(root, 0),
        convert(slice(root, 32, 8), uint256),
        convert(slice(root, 40, 8), uint256),
        r,
        key,
        value_hash,
        weight,
        siblings,
    )


@external
@pure
def budget(n_slots: uint256, app_stake: uint256, S: uint256, P: uint256) -> uint256:
    return relaymath.budget(n_slots, app_stake, S, P)


@external
@pure
def claimed_amount(sum_: uint256, cu_price: uint256, difficulty_bits: uint256, budget_: uint256) -> uint256:
    return relaymath.claimed_amount(sum_, cu_price, difficulty_bits, budget_)


@external
@pure
def proof_required(
    claimed: uint256, threshold: uint256, root: Bytes[48], h_c: bytes32, probability_bps: uint256
) -> bool:
    return relaymath.proof_required(claimed, threshold, root, h_c, probability_bps)


@external
@pure
def challenge(h_c: bytes32, session_id: bytes32, supplier: address, sum_: uint256) -> uint256:
    return relaymath.challenge(h_c, session_id, supplier, sum_)


@external
@pure
def shares(paid: uint256, supplier_bps: uint256, owner_bps: uint256) -> (uint256, uint256, uint256):
    return relaymath.shares(paid, supplier_bps, owner_bps)


@external
@pure
def slash_amounts(
    claimed: uint256, multiplier_bps: uint256, supplier_stake: uint256, bounty_bps: uint256
) -> (uint256, uint256, uint256):
    return relaymath.slash_amounts(claimed, multiplier_bps, supplier_stake, bounty_bps)


@external
@pure
def params_error(
    L: uint256, G: uint256, CO: uint256, CW: uint256, PO: uint256, PW: uint256, S: uint256, p: structs.EconParams
) -> String[96]:
    return relaymath.params_error(L, G, CO, CW, PO, PW, S, p)
