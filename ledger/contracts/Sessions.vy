# pragma version ~=0.4.3
"""
@title Sessions
@notice Session shape (fixed at deployment), global economic parameters with history (admin,
        effective next session), checkpoints of H_n, H_g, H_c (DESIGN §3.5), pause, admin and
        treasury. Every other contract calls checkpoint() at the start of each state change.
"""
import history
import relaymath
import structs

initializes: history

event ShapeSet:
    genesis_block: uint256
    L: uint256
    G: uint256
    CO: uint256
    CW: uint256
    PO: uint256
    PW: uint256
    S: uint256
    P: uint256

event EconParamsSet:
    from_session: uint256
    min_stake_supplier: uint256
    min_stake_app: uint256
    min_stake_gateway: uint256
    unbonding_sessions: uint256
    max_delegations: uint256
    max_services_per_supplier: uint256
    proof_probability_bps: uint256
    proof_threshold: uint256
    slash_multiplier_bps: uint256
    settle_bounty_bps: uint256
    cu_price: uint256
    service_registration_fee: uint256
    mint_supplier_bps: uint256
    mint_owner_bps: uint256
    mint_treasury_bps: uint256
    max_stream_relays: uint256

event Checkpoint:
    session: indexed(uint256)
    kind: uint8
    block_number: uint256
    block_hash: bytes32

event Paused:
    account: indexed(address)

event Unpaused:
    account: indexed(address)

event TreasurySet:
    treasury: indexed(address)

event AdminTransferred:
    previous: indexed(address)
    admin: indexed(address)

event AdminProposed:
    admin: indexed(address)
    proposed: indexed(address)

event SessionChainId:
    session: indexed(uint256)
    chain_id: uint256

ECON_KEY: constant(bytes32) = keccak256("relaynet/econ")
KIND_H_N: constant(uint8) = 0
KIND_H_G: constant(uint8) = 1
KIND_H_C: constant(uint8) = 2

genesis_block: public(immutable(uint256))
L: public(immutable(uint256))
G: public(immutable(uint256))
CO: public(immutable(uint256))
CW: public(immutable(uint256))
PO: public(immutable(uint256))
PW: public(immutable(uint256))
S: public(immutable(uint256))
P: public(immutable(uint256))

token: public(address)
admin: public(address)
pending_admin: public(address)
treasury: public(address)
paused: public(bool)

h_n: public(HashMap[uint256, bytes32])
h_g: public(HashMap[uint256, bytes32])
h_c: public(HashMap[uint256, bytes32])
chain_id_of: public(HashMap[uint256, uint256])  # recorded with H_n: the EIP-712 chain id of session n
last_checkpoint_block: public(uint256)

econ: HashMap[uint256, structs.EconParams]


@deploy
def __init__(
    token: address,
    treasury: address,
    L_: uint256,
    G_: uint256,
    CO_: uint256,
    CW_: uint256,
    PO_: uint256,
    PW_: uint256,
    S_: uint256,
    econ: structs.EconParams,
):
    err: String[96] = relaymath.params_error(L_, G_, CO_, CW_, PO_, PW_, S_, econ)
    assert len(err) == 0, err
    assert token != empty(address) and treasury != empty(address), "sessions: zero address"
    genesis_block = block.number
    L = L_
    G = G_
    CO = CO_
    CW = CW_
    PO = PO_
    PW = PW_
    S = S_
    P = relaymath.pending_sessions(L_, G_, CO_, CW_, PO_, PW_)
    self.token = token
    self.admin = msg.sender
    self.treasury = treasury
    log ShapeSet(
        genesis_block=block.number, L=L_, G=G_, CO=CO_, CW=CW_, PO=PO_, PW=PW_, S=S_, P=P
    )
    log TreasurySet(treasury=treasury)
    self._write_econ(0, econ)
    assert block.number >= 1, "sessions: deploy after block 0"
    h0: bytes32 = blockhash(block.number - 1)
    if h0 != empty(bytes32):
        self.h_n[0] = h0
        self.chain_id_of[0] = chain.id
        log Checkpoint(session=0, kind=KIND_H_N, block_number=block.number - 1, block_hash=h0)
        log SessionChainId(session=0, chain_id=chain.id)
    self.last_checkpoint_block = block.number - 1


# ---- views ---------------------------------------------------------------------------------


@internal
@view
def _current() -> uint256:
    return (block.number - genesis_block) // L


@external
@view
def current_session() -> uint256:
    return self._current()


@external
@view
def session_of(height: uint256) -> uint256:
    assert height >= genesis_block, "sessions: height before genesis"
    return (height - genesis_block) // L


@external
@view
def windows(n: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    """(start, end, grace_end, claim_open, claim_close, proof_open, proof_close) of session n."""
    start: uint256 = genesis_block + n * L
    end: uint256 = start + L - 1
    grace_end: uint256 = end + G
    claim_close: uint256 = grace_end + CO + CW
    return start, end, grace_end, grace_end + CO + 1, claim_close, claim_close + PO + 1, claim_close + PO + PW


@external
@view
def econ_params(n: uint256) -> structs.EconParams:
    found: bool = False
    idx: uint256 = 0
    found, idx = history.at(ECON_KEY, n)
    return self.econ[idx]


@external
@view
def econ_count() -> uint256:
    return history.count(ECON_KEY)


@external
@view
def econ_record(i: uint256) -> (uint256, structs.EconParams):
    assert i < history.count(ECON_KEY), "sessions: no such record"
    from_session: uint256 = 0
    idx: uint256 = 0
    from_session, idx = history.record(ECON_KEY, i)
    return from_session, self.econ[idx]


# ---- checkpoints ---------------------------------------------------------------------------


@internal
def _store(kind: uint8, n: uint256, b: uint256):
    if kind == KIND_H_N:
        if self.h_n[n] != empty(bytes32):
            return
    elif kind == KIND_H_G:
        if self.h_g[n] != empty(bytes32):
            return
    elif self.h_c[n] != empty(bytes32):
        return
    h: bytes32 = blockhash(b)
    if h == empty(bytes32):
        return
    if kind == KIND_H_N:
        self.h_n[n] = h
        self.chain_id_of[n] = chain.id
        log SessionChainId(session=n, chain_id=chain.id)
    elif kind == KIND_H_G:
        self.h_g[n] = h
    else:
        self.h_c[n] = h
    log Checkpoint(session=n, kind=kind, block_number=b, block_hash=h)


@internal
def _checkpoint():
    hi: uint256 = block.number - 1
    last: uint256 = self.last_checkpoint_block
    if last >= hi:
        return
    lo: uint256 = last + 1
    if block.number > 256 and lo < block.number - 256:
        lo = block.number - 256
    bases: uint256[3] = [
        genesis_block - 1,
        genesis_block + L - 1 + G,
        genesis_block + L - 1 + G + CO + CW,
    ]
    for kind: uint256 in range(3):
        base: uint256 = bases[kind]
        n0: uint256 = 0
        if lo > base:
            n0 = (lo - base + L - 1) // L
        for i: uint256 in range(257):
            b: uint256 = base + (n0 + i) * L
            if b > hi:
                break
            self._store(convert(kind, uint8), n0 + i, b)
    self.last_checkpoint_block = hi


@external
def checkpoint():
    """Record the missing H_n, H_g, H_c whose blocks are among the last 256."""
    self._checkpoint()


# ---- admin ---------------------------------------------------------------------------------


@internal
def _set_econ(from_session: uint256, p: structs.EconParams):
    err: String[96] = relaymath.params_error(L, G, CO, CW, PO, PW, S, p)
    assert len(err) == 0, err
    self._write_econ(from_session, p)


@internal
def _write_econ(from_session: uint256, p: structs.EconParams):
    found: bool = False
    last_from: uint256 = 0
    idx: uint256 = 0
    found, last_from, idx = history.latest(ECON_KEY)
    if not found or last_from != from_session:
        idx = history.count(ECON_KEY)
    self.econ[idx] = p
    history.write(ECON_KEY, from_session, idx)
    log EconParamsSet(
        from_session=from_session,
        min_stake_supplier=p.min_stake_supplier,
        min_stake_app=p.min_stake_app,
        min_stake_gateway=p.min_stake_gateway,
        unbonding_sessions=p.unbonding_sessions,
        max_delegations=p.max_delegations,
        max_services_per_supplier=p.max_services_per_supplier,
        proof_probability_bps=p.proof_probability_bps,
        proof_threshold=p.proof_threshold,
        slash_multiplier_bps=p.slash_multiplier_bps,
        settle_bounty_bps=p.settle_bounty_bps,
        cu_price=p.cu_price,
        service_registration_fee=p.service_registration_fee,
        mint_supplier_bps=p.mint_supplier_bps,
        mint_owner_bps=p.mint_owner_bps,
        mint_treasury_bps=p.mint_treasury_bps,
        max_stream_relays=p.max_stream_relays,
    )


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "admin: not admin"


@external
def set_econ_params(p: structs.EconParams):
    self._only_admin()
    self._checkpoint()
    self._set_econ(self._current() + 1, p)


@external
def pause():
    self._only_admin()
    assert not self.paused, "sessions: already paused"
    self._checkpoint()
    self.paused = True
    log Paused(account=msg.sender)


@external
def unpause():
    self._only_admin()
    assert self.paused, "sessions: not paused"
    self._checkpoint()
    self.paused = False
    log Unpaused(account=msg.sender)


@external
def set_treasury(treasury: address):
    self._only_admin()
    assert treasury != empty(address), "sessions: zero address"
    self._checkpoint()
    self.treasury = treasury
    log TreasurySet(treasury=treasury)


@external
def propose_admin(admin: address):
    """Step one of the two-step transfer: `admin` becomes admin when it calls accept_admin()."""
    self._only_admin()
    self._checkpoint()
    self.pending_admin = admin
    log AdminProposed(admin=msg.sender, proposed=admin)


@external
def accept_admin():
    assert msg.sender == self.pending_admin and msg.sender != empty(address), "admin: not proposed"
    self._checkpoint()
    log AdminTransferred(previous=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


@external
def transfer_admin(admin: address):
    self._only_admin()
    assert admin != empty(address), "sessions: zero address"
    self._checkpoint()
    log AdminTransferred(previous=self.admin, admin=admin)
    self.admin = admin
    self.pending_admin = empty(address)
