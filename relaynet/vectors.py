"""Protocol test vectors: generate fresh random cases, and check any vectors file.

``generate(seed)`` computes every answer with the project's own code (``protocol/`` and
``session/``) in exactly the format of ``tests/vectors/protocol-kat.json`` (sections
``windows``, ``histories``, ``sessions``, ``relays``, ``tries``, ``claims``, ``params``,
``delegations``, which only generated files carry, and ``payloads`` from
:mod:`relaynet.payload_vectors`), so that an
independent implementation — the Vyper contracts, another language — can recompute them.
``check(data)`` recomputes every answer of a vectors file and lists the disagreements; it is
how the known-answer file and generated files are verified.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from typing import Any

import orjson

from protocol import settlement as st
from protocol.encoding import address_from_hex, hex_to_bytes, to_hex
from protocol.errors import RelaynetError
from protocol.keys import AccountKey, ReceiptKey
from protocol.payload import rest_payload
from protocol.relay import (
    Domain,
    RelayHeader,
    encode_leaf,
    is_mined,
    recover_signer,
    relay_key,
    request_digest,
    response_hash,
    sign_receipt,
    sign_request,
    value_hash,
    verify_receipt,
)
from protocol.trie import EMPTY, Node, Root, SumTrie, proof_is_valid
from relaynet import payload_vectors
from session.delegations import DelegationBook
from session.positions import PositionHistory
from session.slots import distinct_suppliers, session_seed, slots
from session.snapshot import SessionShape
from session.windows import session_of, windows

__all__ = [
    "SECTIONS",
    "check",
    "claim_out",
    "domain_of",
    "generate",
    "header_of",
    "shape_of",
    "window_out",
]

SECTIONS = (
    "windows",
    "histories",
    "sessions",
    "relays",
    "tries",
    "claims",
    "params",
    "delegations",
    "payloads",
)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
Case = dict[str, Any]


def _h(b: bytes) -> str:
    return to_hex(b)


def _addr(rng: random.Random) -> bytes:
    return rng.randbytes(20)


# ---------------------------------------------------------------------------------------------
# generation


def generate(seed: int) -> dict[str, list[Case]]:
    """Fresh random cases for every section, deterministic in ``seed``, edge cases included."""
    rng = random.Random(seed)
    return {
        "windows": [_gen_window(rng, i) for i in range(8)],
        "histories": [_gen_history(rng, i)[0] for i in range(12)],
        "sessions": [_gen_session(rng, i) for i in range(12)],
        "relays": _gen_relays(rng),
        "tries": _gen_tries(rng),
        "claims": _gen_claims(rng),
        "payloads": payload_vectors.generate(seed),
        "params": _gen_params(rng),
        "delegations": _gen_delegations(rng),
    }


def _shape(rng: random.Random, S: int = 1) -> SessionShape:
    while True:
        G, CO, CW = rng.randint(1, 6), rng.randint(0, 4), rng.randint(1, 20)
        PO, PW = rng.randint(0, 4), rng.randint(1, 20)
        if G + CO + CW + PO + PW < 200:
            break
    return SessionShape(
        B0=rng.randint(0, 500),
        L=rng.choice([10, 60, rng.randint(1, 100)]),
        G=G,
        CO=CO,
        CW=CW,
        PO=PO,
        PW=PW,
        S=S,
    )


def _gen_window(rng: random.Random, i: int) -> Case:
    sh = _shape(rng)
    n = rng.randint(0, 1000)
    heights = [sh.B0, sh.B0 + sh.L - 1, sh.B0 + sh.L, rng.randint(sh.B0, sh.B0 + 10**6)]
    case: Case = {**_fields(sh, *WINDOW_FIELDS), "n": n, "heights": heights}
    case["out"] = window_out(case)
    return case


#: The shape's fields a `windows` case carries.
WINDOW_FIELDS = ("B0", "L", "G", "CO", "CW", "PO", "PW")


def _fields(sh: SessionShape, *names: str) -> Case:
    return {name: getattr(sh, name) for name in names}


def shape_of(case: Case, S: int = 1) -> SessionShape:
    """The session shape a case describes (``S`` when the case has none)."""
    return SessionShape(**{name: case[name] for name in WINDOW_FIELDS}, S=S)


def window_out(case: Case) -> dict[str, Any]:
    """Every output of a `windows` case, computed with session.windows."""
    sh = shape_of(case)
    w = windows(sh, case["n"])
    return {
        "start": w.start,
        "end": w.end,
        "grace_end": w.grace_end,
        "claim_open": w.claim_open,
        "claim_close": w.claim_close,
        "proof_open": w.proof_open,
        "proof_close": w.proof_close,
        "h_n_block": w.h_n_block,
        "h_g_block": w.h_g_block,
        "h_c_block": w.h_c_block,
        "session_of": {str(h): session_of(h, sh.B0, sh.L) for h in case["heights"]},
    }


def _gen_ops(rng: random.Random, i: int) -> list[Case]:
    """Stakes and unstakes in transaction order; several per session, swaps and emptyings."""
    ops: list[Case] = []
    staked: list[str] = []
    sessions = rng.randint(2, 7)
    for s in range(rng.randint(0, 2), sessions + 1):
        for _ in range(rng.randint(1, 4)):
            if staked and rng.random() < (0.6 if i % 4 == 1 else 0.35):
                who = rng.choice(staked)
                staked.remove(who)
                ops.append({"session": s, "op": "unstake", "supplier": who})
            else:
                who = _h(_addr(rng))
                staked.append(who)
                ops.append({"session": s, "op": "stake", "supplier": who})
        if i % 4 == 2 and s == sessions:  # empty the list: length 0 from the next session
            for who in list(staked):
                staked.remove(who)
                ops.append({"session": s, "op": "unstake", "supplier": who})
    return ops


def _history_of(ops: list[Case]) -> PositionHistory:
    hist = PositionHistory()
    for op in ops:
        who = address_from_hex(op["supplier"])
        if op["op"] == "stake":
            hist.stake(who, op["session"])
        else:
            hist.unstake(who, op["session"])
    return hist


def _export(hist: PositionHistory) -> tuple[list[Case], list[list[Case]]]:
    lengths: list[Case] = [dict(rec) for rec in hist.lengths()]
    positions: list[list[Case]] = [[dict(rec) for rec in records] for records in hist.positions()]
    return lengths, positions


def _gen_history(rng: random.Random, i: int) -> tuple[Case, PositionHistory]:
    ops = _gen_ops(rng, i)
    hist = _history_of(ops)
    lengths, positions = _export(hist)
    return {"ops": ops, "lengths": lengths, "positions": positions}, hist


def _gen_session(rng: random.Random, i: int) -> Case:
    hist_case, _ = _gen_history(rng, i)
    last = max((op["session"] for op in hist_case["ops"]), default=0) + 1
    n = rng.randint(0, last + 1)
    lengths = hist_case["lengths"]
    if i % 4 == 2 and lengths and lengths[-1]["length"] == 0:
        n = lengths[-1]["from_session"] + rng.randint(0, 2)  # no session: C = 0
    S = rng.randint(1, 8)
    case: Case = {
        "block_hash": _h(rng.randbytes(32)),
        "service_id": rng.choice(["eth", "base", "celestia-mocha", "rollchain-rest", "op_1"]),
        "app": _h(_addr(rng)),
        "n": n,
        "S": S,
        "lengths": hist_case["lengths"],
        "positions": hist_case["positions"],
    }
    case.update(_session_out(case))
    return case


def _history_from_case(case: Case) -> PositionHistory:
    return PositionHistory.from_records(case["lengths"], case["positions"])


def _session_out(case: Case) -> dict[str, Any]:
    hist = _history_from_case(case)
    n = case["n"]
    seed = session_seed(
        hex_to_bytes(case["block_hash"], 32), case["service_id"], address_from_hex(case["app"]), n
    )
    C = hist.length(n)
    chosen = slots(seed, case["S"], C, lambda p: hist.occupant(p, n)) if C else []
    return {
        "seed": _h(seed),
        "C": C,
        "slots": [_h(a) for a in chosen],
        "suppliers": [_h(a) for a in distinct_suppliers(chosen)],
    }


def _private_key(rng: random.Random) -> AccountKey:
    while True:
        k = rng.randbytes(32)
        if 0 < int.from_bytes(k, "big") < SECP256K1_N:
            return AccountKey(k)


def _gen_relays(rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    kinds = ["jsonrpc", "jsonrpc_diff", "stream", "rest", "jsonrpc", "stream", "rest", "jsonrpc"]
    for i, kind in enumerate(kinds):
        cases.append(_gen_relay(rng, i, kind))
    # invalid: a high-s twin of a valid signature
    bad = dict(cases[0])
    sig = hex_to_bytes(bad["request_sig"], 65)
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    cases.append(_strip_outputs(bad) | {"request_sig": _h(twin), "valid": False})
    # invalid: a receipt signed over another answer
    bad = dict(cases[1])
    receipt = ReceiptKey(rng.randbytes(32))
    other = response_hash(bad["response_status"], b'{"jsonrpc":"2.0","id":1,"result":"0xdead"}')
    digest = hex_to_bytes(bad["request_digest"], 32)
    forged = sign_receipt(receipt, digest, bad["index"], other)
    cases.append(
        _strip_outputs(bad)
        | {"receipt_pubkey": _h(receipt.public_key), "receipt_sig": _h(forged), "valid": False}
    )
    return cases


_RELAY_OUTPUTS = (
    "rh",
    "request_digest",
    "response_hash",
    "leaf",
    "relay_key",
    "value_hash",
    "mined",
)


def _strip_outputs(case: Case) -> Case:
    return {k: v for k, v in case.items() if k not in _RELAY_OUTPUTS}


def _gen_relay(rng: random.Random, i: int, kind: str) -> Case:
    app_key, gw_key = _private_key(rng), _private_key(rng)
    signer = app_key if rng.random() < 0.3 else gw_key
    receipt = ReceiptKey(rng.randbytes(32))
    case: Case = {
        "chain_id": rng.choice([1, 10, 8453, 31337, rng.randint(1, 2**40)]),
        "settlement": _h(_addr(rng)),
        "version": 1,
        "service_id": rng.choice(["eth", "base", "celestia-mocha", "rollchain-rest"]),
        "app": _h(app_key.address),
        "signer": _h(signer.address),
        "supplier": _h(_addr(rng)),
        "n": rng.randint(0, 2**32),
    }
    result = _h(rng.randbytes(rng.randint(1, 8)))
    if kind == "rest":
        request = {
            "method": "GET",
            "path": f"/cosmos/bank/v1beta1/balances/cosmos1{i}",
            "query": f"pagination.limit={rng.randint(1, 100)}",
            "body": "",
        }
        if rng.random() < 0.5:
            request = {
                "method": "POST",
                "path": "/cosmos/tx/v1beta1/simulate",
                "query": "",
                "body": base64.b64encode(rng.randbytes(rng.randint(1, 40))).decode(),
            }
        payload = rest_payload(
            request["method"], request["path"], request["query"], base64.b64decode(request["body"])
        )
        case["service_id"] = "rollchain-rest"
    else:
        method = rng.choice(["eth_blockNumber", "eth_chainId", "eth_getBalance", "eth_call"])
        payload = orjson.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": []})
    stream = kind == "stream"
    case["request_payload"] = _h(payload)
    if kind == "rest":
        case["request"] = request
    case["nonce"] = _h(rng.randbytes(16))
    case["max_index"] = rng.randint(1, 1000) if stream else 0
    case["compute_units"] = rng.randint(1, 100)
    case["index"] = rng.randint(1, case["max_index"]) if stream else 0
    case["response_status"] = 101 if stream else rng.choice([200, 200, 200, 400, 500])
    case["response_payload"] = _h(orjson.dumps({"jsonrpc": "2.0", "id": i, "result": result}))
    case["receipt_pubkey"] = _h(receipt.public_key)
    case["difficulty_bits"] = rng.choice([0, 1, 2, 8]) if kind != "jsonrpc_diff" else 4
    case["h_g"] = _h(rng.randbytes(32))
    header = header_of(case)
    digest = request_digest(header, domain_of(case))
    case["request_sig"] = _h(sign_request(digest, signer))
    rh = response_hash(case["response_status"], hex_to_bytes(case["response_payload"]))
    case["receipt_sig"] = _h(sign_receipt(receipt, digest, case["index"], rh))
    case.update(_relay_out(case))
    return case


def header_of(case: Case) -> RelayHeader:
    """The relay header a `relays` case describes."""
    return RelayHeader(
        version=case["version"],
        service_id=case["service_id"],
        application=address_from_hex(case["app"]),
        signer=address_from_hex(case["signer"]),
        supplier=address_from_hex(case["supplier"]),
        session=case["n"],
        payload_hash=hashlib.sha256(hex_to_bytes(case["request_payload"])).digest(),
        nonce=hex_to_bytes(case["nonce"], 16),
        max_index=case["max_index"],
        compute_units=case["compute_units"],
    )


def domain_of(case: Case) -> Domain:
    return Domain(chain_id=case["chain_id"], settlement=address_from_hex(case["settlement"]))


def _relay_out(case: Case) -> dict[str, Any]:
    header = header_of(case)
    rh_bytes = header.encode()
    digest = request_digest(header, domain_of(case))
    sig = hex_to_bytes(case["request_sig"], 65)
    resp = response_hash(case["response_status"], hex_to_bytes(case["response_payload"]))
    receipt_sig = hex_to_bytes(case["receipt_sig"], 64)
    leaf = encode_leaf(rh_bytes, sig, case["index"], resp, receipt_sig)
    key = relay_key(digest, case["index"])
    return {
        "rh": _h(rh_bytes),
        "request_digest": _h(digest),
        "response_hash": _h(resp),
        "leaf": _h(leaf),
        "relay_key": _h(key),
        "value_hash": _h(value_hash(leaf)),
        "mined": is_mined(key, hex_to_bytes(case["h_g"], 32), case["difficulty_bits"]),
    }


def _relay_refused(case: Case) -> str | None:
    """Why an invalid relay case is refused (None if it is not)."""
    header = header_of(case)
    digest = request_digest(header, domain_of(case))
    try:
        signer = recover_signer(digest, hex_to_bytes(case["request_sig"]))
    except RelaynetError as exc:
        return exc.code.value
    if signer != address_from_hex(case["signer"]):
        return "BAD_SIGNATURE"
    resp = response_hash(case["response_status"], hex_to_bytes(case["response_payload"]))
    try:
        verify_receipt(
            hex_to_bytes(case["receipt_pubkey"], 32),
            digest,
            case["index"],
            resp,
            hex_to_bytes(case["receipt_sig"]),
        )
    except RelaynetError as exc:
        return exc.code.value
    return None


def _gen_tries(rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    # empty, one leaf, two leaves sharing a long prefix, with duplicates, a larger one
    cases.append(_trie_case(rng, []))
    cases.append(_trie_case(rng, [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 9))]))
    prefix = rng.randbytes(25)
    two = [(prefix + rng.randbytes(7), rng.randbytes(32), rng.randint(1, 9)) for _ in range(2)]
    cases.append(_trie_case(rng, two))
    base = [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 9)) for _ in range(8)]
    dup = (base[3][0], rng.randbytes(32), rng.randint(1, 9))  # same key again: first stays
    cases.append(_trie_case(rng, [*base[:5], dup, *base[5:]]))
    many = [(rng.randbytes(32), rng.randbytes(32), rng.randint(1, 100)) for _ in range(60)]
    cases.append(_trie_case(rng, many))
    return cases


def _trie_case(rng: random.Random, leaves: list[tuple[bytes, bytes, int]]) -> Case:
    trie = SumTrie.build(leaves)
    root = trie.root
    case: Case = {
        "leaves": [{"key": _h(k), "value_hash": _h(v), "weight": w} for k, v, w in leaves],
        "root": _h(root.encode()),
        "challenges": [],
    }
    if root.sum == 0:
        return case
    rs = sorted({0, root.sum - 1, *(rng.randrange(root.sum) for _ in range(4))})
    for r in rs:
        proof = trie.prove(r)
        case["challenges"].append(_challenge(r, proof.key, proof.siblings))
    if len(leaves) >= 2:
        r = rs[-1]
        proof = trie.prove(r)
        sib = list(proof.siblings)
        # a sibling's sum changed
        j = next(i for i, s in enumerate(sib) if s.count > 0)
        changed = [*sib[:j], Node(sib[j].digest, sib[j].sum + 1, sib[j].count), *sib[j + 1 :]]
        case["challenges"].append(_challenge(r, proof.key, changed) | {"valid": False})
        # siblings reversed (root first becomes leaf first)
        if len(sib) > 1 and sib != sib[::-1]:
            case["challenges"].append(_challenge(r, proof.key, sib[::-1]) | {"valid": False})
        # an extra empty sibling
        case["challenges"].append(_challenge(r, proof.key, [*sib, EMPTY]) | {"valid": False})
        # the right proof for another r
        other = next((x for x in range(root.sum) if trie.prove(x).key != proof.key), None)
        if other is not None:
            case["challenges"].append(_challenge(other, proof.key, sib) | {"valid": False})
    return case


def _challenge(r: int, key: bytes, siblings: list[Node] | tuple[Node, ...]) -> Case:
    return {
        "r": r,
        "leaf_key": _h(key),
        "siblings": [[_h(s.digest), s.sum, s.count] for s in siblings],
    }


def _gen_claims(rng: random.Random) -> list[Case]:
    cases = [_gen_claim(rng, i) for i in range(12)]
    bad = {k: v for k, v in cases[0].items() if k != "out"}
    first = bad["slots"][0] if bad["slots"] else 0
    cases.append(bad | {"slots": [first, first], "valid": False})
    return cases


def _gen_claim(rng: random.Random, i: int) -> Case:
    sh = _shape(rng, S=rng.randint(1, 24))
    slots_ = sorted(rng.sample(range(sh.S), rng.randint(1, sh.S)))
    count = rng.randint(1, 100_000)
    s = count * rng.randint(1, 50)
    case: Case = {
        **_fields(sh, *WINDOW_FIELDS[1:], "S"),
        "slots": slots_,
        "app_stake": rng.randint(10**18, 10**22),
        "cu_price": rng.randint(1, 10**9),
        "difficulty_bits": rng.choice([0, 0, 1, 3]),
        "proof_threshold": rng.choice([0, 10**15, 2**255]),
        "proof_probability_bps": rng.choice([0, 2500, 5000, 10000]),
        "h_c": _h(rng.randbytes(32)),
        "session_id": _h(rng.randbytes(32)),
        "supplier": _h(_addr(rng)),
        "app_remaining_stake": rng.randint(0, 10**22),
        "mint_shares": rng.choice([[9000, 500, 500], [8000, 1000, 1000], [7777, 1111, 1112]]),
        "slash_multiplier_bps": rng.choice([10000, 30000]),
        "settle_bounty_bps": rng.choice([0, 1000, 2500]),
        "supplier_stake": rng.randint(10**15, 10**22),
        "count": count,
        "sum": s,
    }
    if i % 4 == 1:  # a capped budget: tiny stake
        case["app_stake"] = rng.randint(1, 10**6)
    if i % 4 == 2:  # the app's remaining stake below the claim
        case["app_remaining_stake"] = rng.randint(0, 1000)
    if i % 4 == 3:  # a slash capped by the supplier's stake
        case["supplier_stake"] = rng.randint(1, 1000)
    case["root"] = _h(rng.randbytes(32) + s.to_bytes(8, "big") + count.to_bytes(8, "big"))
    case["out"] = claim_out(case)
    return case


def claim_out(case: Case) -> dict[str, Any]:
    """Every output of a `claims` case, computed with protocol.settlement."""
    st.validate_slots(case["slots"], case["S"])
    P = st.pending_sessions(case["L"], case["G"], case["CO"], case["CW"], case["PO"], case["PW"])
    budget = st.budget(len(case["slots"]), case["app_stake"], case["S"], P)
    tokens = st.claim_tokens(case["sum"], case["cu_price"], case["difficulty_bits"])
    claimed = st.claimed_amount(tokens, budget)
    h_c = hex_to_bytes(case["h_c"], 32)
    required = st.proof_required(
        claimed,
        case["proof_threshold"],
        hex_to_bytes(case["root"], 48),
        h_c,
        case["proof_probability_bps"],
    )
    r = st.challenge(
        h_c, hex_to_bytes(case["session_id"], 32), address_from_hex(case["supplier"]), case["sum"]
    )
    payout = st.settle_valid(claimed, case["app_remaining_stake"], tuple(case["mint_shares"]))
    void = st.settle_void(
        claimed, case["slash_multiplier_bps"], case["supplier_stake"], case["settle_bounty_bps"]
    )
    return {
        "P": P,
        "budget": budget,
        "tokens": tokens,
        "claimed": claimed,
        "required": required,
        "r": r,
        "paid": payout.paid,
        "supplier_share": payout.supplier,
        "owner_share": payout.owner,
        "treasury_share": payout.treasury,
        "slash": void.slash,
        "bounty": void.bounty,
    }


# params: §3.1's rules on whole parameter sets


_PARAM_FIELDS = (
    "L",
    "G",
    "CO",
    "CW",
    "PO",
    "PW",
    "proof_probability_bps",
    "slash_multiplier_bps",
    "settle_bounty_bps",
    "unbonding_sessions",
    "mint_shares",
)


def param_set(case: Case) -> st.ParamSet:
    """The :class:`protocol.settlement.ParamSet` of a ``params`` case (other fields: devnet)."""
    values = {k: case[k] for k in _PARAM_FIELDS}
    values["mint_shares"] = tuple(case["mint_shares"])
    return st.ParamSet(**values)


def _gen_params(rng: random.Random) -> list[Case]:
    """Random sets near each rule's boundary, about half of them valid."""
    cases: list[Case] = []
    for i in range(40):
        case: Case = {
            "L": rng.choice([1, 10, 60, 200, rng.randint(1, 255)]),
            "G": rng.randint(0, 10),
            "CO": rng.randint(0, 5),
            "CW": rng.randint(1, 40),
            "PO": rng.randint(0, 5),
            "PW": rng.randint(1, 60),
            "proof_probability_bps": rng.choice([0, 1, 2500, 2500, 5000, 9999, 10000, 10000]),
            "settle_bounty_bps": rng.choice([0, 1000, 2500, 5000]),
            "mint_shares": rng.choice([[9000, 500, 500], [5000, 2500, 2500], [10000, 0, 0]]),
        }
        p, b = case["proof_probability_bps"], case["settle_bounty_bps"]
        # the smallest multiplier the bounty rule accepts, then one side of it
        need = st.BPS**3 * (st.BPS - p)
        m = 0 if p == 0 else -(-need // (p * (st.BPS - b))) // st.BPS
        while p and p * m * (st.BPS - b) < (st.BPS - p) * st.BPS**2:
            m += 1
        offset = rng.choice([-1, 0, 0, 1, 500])
        case["slash_multiplier_bps"] = min(max(m + offset, 0), 1_000_001)
        P = st.pending_sessions(
            case["L"], case["G"], case["CO"], case["CW"], case["PO"], case["PW"]
        )
        case["unbonding_sessions"] = P
        kind = i % 8
        if kind == 1:  # the claim span L+G+CO+CW around 256
            case["L"] = 256 - case["G"] - case["CO"] - case["CW"] - rng.choice([0, 1])
        elif kind == 2:  # the windows' sum around 200
            case["PW"] = max(
                1, 200 - case["G"] - case["CO"] - case["CW"] - case["PO"] - rng.choice([0, 1])
            )
        elif kind == 3:  # supplier's mint share around half
            s = rng.choice([4999, 5000])
            case["mint_shares"] = [s, 10000 - s - 100, 100]
        elif kind == 4:  # bounty around half
            case["settle_bounty_bps"] = rng.choice([5000, 5001])
            case["slash_multiplier_bps"] = 1_000_000
            case["proof_probability_bps"] = 5000
        elif kind == 5:  # empty windows
            case[rng.choice(["CW", "PW", "L"])] = 0
        elif kind == 6:  # the old rule's multiplier
            case["proof_probability_bps"], case["settle_bounty_bps"] = 2500, 1000
            case["slash_multiplier_bps"] = 30000
        P = (
            st.pending_sessions(
                case["L"], case["G"], case["CO"], case["CW"], case["PO"], case["PW"]
            )
            if case["L"] >= 1
            else 1
        )
        case["unbonding_sessions"] = rng.choice(
            [max(0, P - 1), P, P, P, P + 2, P + 2, 10_000, 10_001]
        )
        reason = st.params_error(param_set(case))
        case["valid"] = reason is None
        case["note"] = reason or "valid"
        cases.append(case)
    return cases


# delegations: gateway stake records, epochs and signer_ok (§3.2)

DELEGATION_UNBONDING = 2  # unbonding_sessions of the cases (P of the replaying test's shape)


def _gen_delegations(rng: random.Random) -> list[Case]:
    return [_gen_delegation(rng) for _ in range(6)]


def _gen_delegation(rng: random.Random) -> Case:
    """Operations by session, in transaction order, only those the contracts accept, then
    ``signer_ok(app, g, n)`` queries. A restake after an unstake waits out the unbonding."""
    apps = [_h(_addr(rng)) for _ in range(rng.randint(1, 2))]
    gateways = [_h(_addr(rng)) for _ in range(rng.randint(1, 3))]
    book = DelegationBook()
    staked: dict[str, bool] = dict.fromkeys(gateways, False)
    withdrawable: dict[str, int] = dict.fromkeys(gateways, 0)
    delegated: set[tuple[str, str]] = set()
    ops: list[Case] = []
    last = rng.randint(5, 9)
    for s in range(last):
        for _ in range(rng.randint(0, 3)):
            g, a = rng.choice(gateways), rng.choice(apps)
            choice = rng.random()
            if not staked[g] and s >= withdrawable[g]:
                book.stake_gateway(address_from_hex(g), s)
                staked[g] = True
                ops.append({"session": s, "op": "stake", "gateway": g})
            elif staked[g] and choice < 0.25:
                book.unstake_gateway(address_from_hex(g), s)
                staked[g] = False
                withdrawable[g] = s + DELEGATION_UNBONDING
                ops.append({"session": s, "op": "unstake", "gateway": g})
            elif (a, g) in delegated and choice < 0.45:
                book.undelegate(address_from_hex(a), address_from_hex(g), s)
                delegated.discard((a, g))
                ops.append({"session": s, "op": "undelegate", "app": a, "gateway": g})
            elif staked[g] and (a, g) not in delegated:
                book.delegate(address_from_hex(a), address_from_hex(g), s)
                delegated.add((a, g))
                ops.append({"session": s, "op": "delegate", "app": a, "gateway": g})
    queries = [
        {"app": a, "gateway": g, "n": n, "signer_ok": _signer_ok(book, a, g, n)}
        for a in apps
        for g in [*gateways, a]
        for n in range(last + 2)
    ]
    return {"unbonding_sessions": DELEGATION_UNBONDING, "ops": ops, "queries": queries}


def _signer_ok(book: DelegationBook, app: str, gateway: str, n: int) -> bool:
    return book.signer_ok(address_from_hex(app), address_from_hex(gateway), n)


def delegation_book(ops: list[Case]) -> DelegationBook:
    """Replay a ``delegations`` case's operations with the contract rules of ``session/``."""
    book = DelegationBook()
    for op in ops:
        g, s = address_from_hex(op["gateway"]), op["session"]
        if op["op"] == "stake":
            book.stake_gateway(g, s)
        elif op["op"] == "unstake":
            book.unstake_gateway(g, s)
        elif op["op"] == "delegate":
            book.delegate(address_from_hex(op["app"]), g, s)
        else:
            book.undelegate(address_from_hex(op["app"]), g, s)
    return book


# ---------------------------------------------------------------------------------------------
# checking


def check(data: dict[str, list[Case]]) -> list[str]:
    """Recompute every answer of a vectors file; return the disagreements (empty: all agree)."""
    failures: list[str] = []
    checkers: dict[str, Callable[[Case], list[str]]] = {
        "windows": _check_window,
        "histories": _check_history,
        "sessions": _check_session,
        "relays": _check_relay,
        "tries": _check_trie,
        "claims": _check_claim,
        "payloads": payload_vectors.check,
        "params": _check_params,
        "delegations": _check_delegations,
    }
    for section in SECTIONS:
        for i, case in enumerate(data.get(section, [])):
            try:
                problems = checkers[section](case)
            except (RelaynetError, KeyError, ValueError, TypeError) as exc:
                problems = [f"raised {exc!r}"]
            failures += [f"{section}[{i}]: {p}" for p in problems]
    return failures


def _diff(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    return [
        f"{k}: expected {expected[k]!r}, got {got.get(k)!r}"
        for k in expected
        if expected[k] != got.get(k)
    ]


def _check_window(case: Case) -> list[str]:
    return _diff(case["out"], window_out(case))


def _check_history(case: Case) -> list[str]:
    lengths, positions = _export(_history_of(case["ops"]))
    return _diff(
        {"lengths": case["lengths"], "positions": case["positions"]},
        {"lengths": lengths, "positions": positions},
    )


def _check_session(case: Case) -> list[str]:
    expected = {k: case[k] for k in ("seed", "C", "slots", "suppliers")}
    return _diff(expected, _session_out(case))


def _check_relay(case: Case) -> list[str]:
    if case.get("valid") is False:
        return [] if _relay_refused(case) else ["invalid case was accepted"]
    problems = _diff({k: case[k] for k in _RELAY_OUTPUTS}, _relay_out(case))
    if case.get("request") is not None:
        req = case["request"]
        payload = rest_payload(
            req["method"], req["path"], req["query"], base64.b64decode(req["body"])
        )
        if _h(payload) != case["request_payload"]:
            problems.append("request_payload is not the canonical REST payload of request")
    why = _relay_refused(case)
    if why:
        problems.append(f"valid case refused: {why}")
    return problems


def _check_trie(case: Case) -> list[str]:
    leaves = [
        (hex_to_bytes(x["key"], 32), hex_to_bytes(x["value_hash"], 32), x["weight"])
        for x in case["leaves"]
    ]
    trie = SumTrie.build(leaves)
    problems = _diff({"root": case["root"]}, {"root": _h(trie.root.encode())})
    first: dict[bytes, tuple[bytes, int]] = {}
    for k, v, w in leaves:
        first.setdefault(k, (v, w))
    root = Root.decode(hex_to_bytes(case["root"], 48))
    for j, ch in enumerate(case["challenges"]):
        key = hex_to_bytes(ch["leaf_key"], 32)
        sibs = [Node(hex_to_bytes(d, 32), s, c) for d, s, c in ch["siblings"]]
        vh, w = first.get(key, (bytes(32), 0))
        ok = proof_is_valid(root, ch["r"], key, vh, w, sibs)
        if ch.get("valid") is False:
            if ok:
                problems.append(f"challenge {j}: invalid proof accepted")
            continue
        if not ok:
            problems.append(f"challenge {j}: valid proof refused")
        proof = trie.prove(ch["r"])
        got = _challenge(ch["r"], proof.key, proof.siblings)
        problems += [
            f"challenge {j}: {p}"
            for p in _diff({"leaf_key": ch["leaf_key"], "siblings": ch["siblings"]}, got)
        ]
    return problems


def _check_claim(case: Case) -> list[str]:
    if case.get("valid") is False:
        try:
            st.validate_slots(case["slots"], case["S"])
        except RelaynetError:
            return []
        return ["invalid slots accepted"]
    return _diff(case["out"], claim_out(case))


def _check_params(case: Case) -> list[str]:
    reason = st.params_error(param_set(case))
    if (reason is None) != case["valid"]:
        return [f"valid: expected {case['valid']!r}, got {reason or 'valid'}"]
    return []


def _check_delegations(case: Case) -> list[str]:
    book = delegation_book(case["ops"])
    return [
        f"signer_ok({q['app']}, {q['gateway']}, {q['n']}): expected {q['signer_ok']}"
        for q in case["queries"]
        if _signer_ok(book, q["app"], q["gateway"], q["n"]) != q["signer_ok"]
    ]
