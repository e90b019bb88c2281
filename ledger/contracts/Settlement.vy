# pragma version ~=0.4.3
"""
@title Settlement
@notice Claims, proofs and settlement (DESIGN §3.5). The EIP-712 verifyingContract of relay
        requests and the Token's minter. A claim locks the slash it could cost; a proof is checked
        strictly (weighted trie proof, leaf header, compute units, indexes, signature, signer,
        mining); settlement burns `paid` from the app's stake and mints it as shares, or slashes
        a claim that required a proof it did not get.
"""
import relaymath
import structs

interface ISessions:
    def checkpoint(): nonpayable
    def paused() -> bool: view
    def h_n(n: uint256) -> bytes32: view
    def h_g(n: uint256) -> bytes32: view
    def h_c(n: uint256) -> bytes32: view
    def chain_id_of(n: uint256) -> uint256: view
    def econ_params(n: uint256) -> structs.EconParams: view
    def treasury() -> address: view
    def genesis_block() -> uint256: view
    def L() -> uint256: view
    def G() -> uint256: view
    def CO() -> uint256: view
    def CW() -> uint256: view
    def PO() -> uint256: view
    def PW() -> uint256: view
    def S() -> uint256: view
    def P() -> uint256: view

interface IServices:
    def is_registered(service: bytes32) -> bool: view
    def owner_of(service: bytes32) -> address: view
    def service_params(service: bytes32, n: uint256) -> structs.ServiceParams: view

interface ISuppliers:
    def length(service: bytes32, n: uint256) -> uint256: view
    def occupant(service: bytes32, p: uint256, n: uint256) -> address: view
    def lock(supplier: address, amount: uint256): nonpayable
    def unlock(supplier: address, amount: uint256): nonpayable
    def slash(supplier: address, claim_id: bytes32, claimed: uint256, multiplier_bps: uint256, bounty_bps: uint256, bounty_to: address) -> (uint256, uint256, uint256): nonpayable

interface IApps:
    def app_staked_for(app: address, service: bytes32, n: uint256) -> uint256: view
    def signer_ok(app: address, signer: address, n: uint256) -> bool: view
    def burn_stake(app: address, claim_id: bytes32, amount: uint256) -> uint256: nonpayable
    def claim_opened(app: address): nonpayable
    def claim_closed(app: address): nonpayable

interface IToken:
    def mint(receiver: address, amount: uint256): nonpayable

event Claimed:
    claim_id: indexed(bytes32)
    supplier: indexed(address)
    app: indexed(address)
    service: bytes32
    session: uint256
    slots: DynArray[uint256, MAX_SLOTS]
    root: Bytes[48]
    claimed: uint256
    lock: uint256

event Proved:
    claim_id: indexed(bytes32)
    prover: indexed(address)
    relay_key: bytes32

event Settled:
    claim_id: indexed(bytes32)
    supplier: indexed(address)
    app: indexed(address)
    paid: uint256
    supplier_share: uint256
    owner_share: uint256
    treasury_share: uint256
    owner: address
    treasury: address

event Voided:
    claim_id: indexed(bytes32)
    supplier: indexed(address)
    settler: indexed(address)
    slashed: uint256
    bounty: uint256
    burned: uint256

MAX_SLOTS: constant(uint256) = relaymath.MAX_SLOTS
MASK64: constant(uint256) = 2**64 - 1
STATUS_OPEN: constant(uint8) = 1
STATUS_PROVED: constant(uint8) = 2
STATUS_SETTLED: constant(uint8) = 3
STATUS_VOIDED: constant(uint8) = 4

struct Claim:
    supplier: address
    app: address
    service: bytes32
    session: uint256
    n_slots: uint256
    root_digest: bytes32
    sum: uint256
    count: uint256
    claimed: uint256
    lock: uint256
    seed: bytes32
    status: uint8

# What storage holds: seven slots (session, sum, count, n_slots and status packed into one;
# the seed is recomputed from H_n, which never changes once recorded).
struct StoredClaim:
    supplier: address
    app: address
    service: bytes32
    root_digest: bytes32
    claimed: uint256
    lock: uint256
    packed: uint256

SESSIONS: public(immutable(ISessions))
SERVICES: public(immutable(IServices))
SUPPLIERS: public(immutable(ISuppliers))
APPS: public(immutable(IApps))
TOKEN: public(immutable(IToken))
B0: immutable(uint256)
L: immutable(uint256)
GRACE_CLAIM: immutable(uint256)  # L - 1 + G + CO: claim_open(n) - 1 = start(n) + GRACE_CLAIM
CW: immutable(uint256)
PO: immutable(uint256)
PW: immutable(uint256)
S: immutable(uint256)
P: immutable(uint256)

_claims: HashMap[bytes32, StoredClaim]


@deploy
def __init__(sessions: address, services: address, suppliers: address, apps: address, token: address):
    SESSIONS = ISessions(sessions)
    SERVICES = IServices(services)
    SUPPLIERS = ISuppliers(suppliers)
    APPS = IApps(apps)
    TOKEN = IToken(token)
    B0 = staticcall SESSIONS.genesis_block()
    L = staticcall SESSIONS.L()
    GRACE_CLAIM = L - 1 + staticcall SESSIONS.G() + staticcall SESSIONS.CO()
    CW = staticcall SESSIONS.CW()
    PO = staticcall SESSIONS.PO()
    PW = staticcall SESSIONS.PW()
    S = staticcall SESSIONS.S()
    P = staticcall SESSIONS.P()


@internal
@view
def _load(claim_id: bytes32) -> Claim:
    """The claim as the `Claim` struct (status 0 = none)."""
    st: StoredClaim = self._claims[claim_id]
    if st.packed == 0:
        return empty(Claim)
    session: uint256 = st.packed & MASK64
    seed: bytes32 = relaymath.session_seed(staticcall SESSIONS.h_n(session), st.service, st.app, session)
    return Claim(
        supplier=st.supplier,
        app=st.app,
        service=st.service,
        session=session,
        n_slots=(st.packed >> 192) & 255,
        root_digest=st.root_digest,
        sum=(st.packed >> 64) & MASK64,
        count=(st.packed >> 128) & MASK64,
        claimed=st.claimed,
        lock=st.lock,
        seed=seed,
        status=convert(st.packed >> 200, uint8),
    )


@internal
def _set_status(claim_id: bytes32, status: uint8):
    packed: uint256 = self._claims[claim_id].packed
    self._claims[claim_id].packed = (packed & (2**200 - 1)) | (convert(status, uint256) << 200)


@external
@view
def claims(claim_id: bytes32) -> Claim:
    return self._load(claim_id)


@internal
@view
def _claim_close(n: uint256) -> uint256:
    return B0 + n * L + GRACE_CLAIM + CW


@external
@view
def domain_separator() -> bytes32:
    """The EIP-712 domain under the chain's id now (a session's own is domain_of(n))."""
    return relaymath.domain_separator(chain.id, self)


@external
@view
def domain_of(n: uint256) -> bytes32:
    """The EIP-712 domain of session n: under the chain id recorded with H_n (DESIGN §3.5)."""
    cid: uint256 = staticcall SESSIONS.chain_id_of(n)
    assert cid != 0, "settle: H_n not recorded"
    return relaymath.domain_separator(cid, self)


@external
@pure
def claim_id_of(supplier: address, app: address, service: bytes32, n: uint256) -> bytes32:
    return keccak256(abi_encode(supplier, app, service, n))


@internal
@pure
def _root48(c: Claim) -> Bytes[48]:
    return concat(c.root_digest, relaymath.u64(c.sum), relaymath.u64(c.count))


@internal
@view
def _required(c: Claim, h_c: bytes32) -> bool:
    if h_c == empty(bytes32):
        return True
    p: structs.EconParams = staticcall SESSIONS.econ_params(c.session)
    return relaymath.proof_required(c.claimed, p.proof_threshold, self._root48(c), h_c, p.proof_probability_bps)


@external
@view
def proof_required(claim_id: bytes32) -> bool:
    c: Claim = self._load(claim_id)
    assert c.status != 0, "settle: unknown claim"
    return self._required(c, staticcall SESSIONS.h_c(c.session))


@external
@view
def challenge_of(claim_id: bytes32) -> uint256:
    c: Claim = self._load(claim_id)
    assert c.status != 0, "settle: unknown claim"
    h_c: bytes32 = staticcall SESSIONS.h_c(c.session)
    assert h_c != empty(bytes32), "settle: H_c not recorded"
    return relaymath.challenge(h_c, c.seed, c.supplier, c.sum)


# ---- claim ---------------------------------------------------------------------------------


@external
def claim(app: address, service: bytes32, session: uint256, slots: DynArray[uint256, MAX_SLOTS], root: Bytes[48]) -> bytes32:
    extcall SESSIONS.checkpoint()
    close: uint256 = self._claim_close(session)
    assert block.number + CW > close and block.number <= close, "claim: outside claim window"
    assert len(root) == 48, "claim: root must be 48 bytes"
    assert staticcall SERVICES.is_registered(service), "claim: unknown service"
    h_n: bytes32 = staticcall SESSIONS.h_n(session)
    assert h_n != empty(bytes32), "claim: H_n not recorded"
    assert staticcall SESSIONS.h_g(session) != empty(bytes32), "claim: H_g not recorded"
    claim_id: bytes32 = keccak256(abi_encode(msg.sender, app, service, session))
    assert self._claims[claim_id].packed == 0, "claim: already claimed"
    slot_check: uint8 = relaymath.check_slots(slots, S)
    assert slot_check != relaymath.E_NO_SLOTS, "claim: no slots"
    assert slot_check != relaymath.E_SLOT_RANGE, "claim: slot out of range"
    assert slot_check == 0, "claim: slots not strictly increasing"
    c: uint256 = staticcall SUPPLIERS.length(service, session)
    assert c > 0, "claim: no session"
    seed: bytes32 = relaymath.session_seed(h_n, service, app, session)
    for j: uint256 in slots:
        p: uint256 = relaymath.slot_position(seed, j, c)
        assert staticcall SUPPLIERS.occupant(service, p, session) == msg.sender, "claim: slot not held"
    stake: uint256 = staticcall APPS.app_staked_for(app, service, session)
    assert stake > 0, "claim: app not staked for service"
    digest: bytes32 = extract32(root, 0)
    sum_: uint256 = convert(slice(root, 32, 8), uint256)
    count: uint256 = convert(slice(root, 40, 8), uint256)
    assert count > 0, "claim: empty root"
    sp: structs.ServiceParams = staticcall SERVICES.service_params(service, session)
    assert count <= sum_ and sum_ <= count * sp.max_cu_per_relay, "claim: sum out of range"
    ep: structs.EconParams = staticcall SESSIONS.econ_params(session)
    budget: uint256 = relaymath.budget(len(slots), stake, S, P)
    claimed: uint256 = relaymath.claimed_amount(sum_, ep.cu_price, sp.difficulty_bits, budget)
    lock: uint256 = claimed * ep.slash_multiplier_bps // 10000
    extcall SUPPLIERS.lock(msg.sender, lock)
    extcall APPS.claim_opened(app)
    assert session <= MASK64, "claim: session out of range"
    self._claims[claim_id] = StoredClaim(
        supplier=msg.sender,
        app=app,
        service=service,
        root_digest=digest,
        claimed=claimed,
        lock=lock,
        packed=session | (sum_ << 64) | (count << 128) | (len(slots) << 192) | (convert(STATUS_OPEN, uint256) << 200),
    )
    log Claimed(
        claim_id=claim_id,
        supplier=msg.sender,
        app=app,
        service=service,
        session=session,
        slots=slots,
        root=root,
        claimed=claimed,
        lock=lock,
    )
    return claim_id


# ---- proof ---------------------------------------------------------------------------------


@internal
@view
def _check_leaf(c: Claim, leaf: Bytes[326]) -> (bytes32, uint256):
    """Header, compute units, indexes, mining and signature checks; returns (relay_key, weight)."""
    h: relaymath.Header = relaymath.decode_header(leaf)
    assert h.version == 1, "proof: bad leaf version"
    assert h.service == c.service, "proof: leaf of another service"
    assert h.application == c.app, "proof: leaf of another app"
    assert h.supplier == c.supplier, "proof: leaf of another supplier"
    assert h.session == c.session, "proof: leaf of another session"
    sp: structs.ServiceParams = staticcall SERVICES.service_params(c.service, c.session)
    assert h.compute_units >= 1 and h.compute_units <= sp.max_cu_per_relay, "proof: compute units out of range"
    max_stream: uint256 = (staticcall SESSIONS.econ_params(c.session)).max_stream_relays
    assert h.max_index <= max_stream, "proof: max_index above max_stream_relays"
    index: uint256 = convert(slice(leaf, 222, 8), uint256)
    assert index <= h.max_index, "proof: index above max_index"
    domain: bytes32 = relaymath.domain_separator(staticcall SESSIONS.chain_id_of(c.session), self)
    digest: bytes32 = relaymath.request_digest(h, domain)
    key: bytes32 = relaymath.relay_key(digest, index)
    h_g: bytes32 = staticcall SESSIONS.h_g(c.session)
    assert relaymath.is_mined(key, h_g, sp.difficulty_bits), "proof: relay not mined"
    signer: address = empty(address)
    code: uint8 = 0
    signer, code = relaymath.recover(
        digest,
        convert(slice(leaf, 157, 32), uint256),
        convert(slice(leaf, 189, 32), uint256),
        convert(slice(leaf, 221, 1), uint256),
    )
    assert code != relaymath.E_BAD_V, "proof: bad signature v"
    assert code != relaymath.E_HIGH_S, "proof: signature not low-s"
    assert code == 0 and signer == h.signer, "proof: signature does not recover to signer"
    assert signer == c.app or staticcall APPS.signer_ok(c.app, signer, c.session), "proof: signer not app or delegated gateway"
    return key, h.compute_units


@external
def prove(claim_id: bytes32, leaf: Bytes[326], siblings: DynArray[relaymath.Node, 256]):
    extcall SESSIONS.checkpoint()
    c: Claim = self._load(claim_id)
    assert c.status != 0, "proof: unknown claim"
    assert c.status != STATUS_PROVED, "proof: already proved"
    assert c.status == STATUS_OPEN, "proof: claim settled"
    close: uint256 = self._claim_close(c.session)
    assert block.number > close + PO and block.number <= close + PO + PW, "proof: outside proof window"
    h_c: bytes32 = staticcall SESSIONS.h_c(c.session)
    assert h_c != empty(bytes32), "proof: H_c not recorded"
    assert len(leaf) == 326, "proof: leaf must be 326 bytes"
    key: bytes32 = empty(bytes32)
    weight: uint256 = 0
    key, weight = self._check_leaf(c, leaf)
    r: uint256 = relaymath.challenge(h_c, c.seed, c.supplier, c.sum)
    verdict: uint8 = relaymath.verify_proof(c.root_digest, c.sum, c.count, r, key, sha256(leaf), weight, siblings)
    assert verdict != relaymath.E_TOO_MANY_SIBLINGS, "proof: too many siblings"
    assert verdict != relaymath.E_NON_CANONICAL, "proof: non-canonical sibling"
    assert verdict != relaymath.E_EMPTY_LOWEST, "proof: empty lowest sibling"
    assert verdict != relaymath.E_SUM_OVERFLOW, "proof: sum overflow"
    assert verdict != relaymath.E_ROOT_MISMATCH, "proof: root mismatch"
    assert verdict == 0, "proof: challenge outside leaf"
    self._set_status(claim_id, STATUS_PROVED)
    log Proved(claim_id=claim_id, prover=msg.sender, relay_key=key)


# ---- settle --------------------------------------------------------------------------------


@external
def settle(claim_id: bytes32):
    extcall SESSIONS.checkpoint()
    c: Claim = self._load(claim_id)
    assert c.status != 0, "settle: unknown claim"
    assert c.status == STATUS_OPEN or c.status == STATUS_PROVED, "settle: already settled"
    assert block.number > self._claim_close(c.session) + PO + PW, "settle: proof window not over"
    h_c: bytes32 = staticcall SESSIONS.h_c(c.session)
    extcall SUPPLIERS.unlock(c.supplier, c.lock)
    extcall APPS.claim_closed(c.app)
    p: structs.EconParams = staticcall SESSIONS.econ_params(c.session)
    if c.status == STATUS_PROVED or not self._required(c, h_c):
        self._set_status(claim_id, STATUS_SETTLED)
        paid: uint256 = extcall APPS.burn_stake(c.app, claim_id, c.claimed)
        s: uint256 = 0
        o: uint256 = 0
        t: uint256 = 0
        s, o, t = relaymath.shares(paid, p.mint_supplier_bps, p.mint_owner_bps)
        owner: address = staticcall SERVICES.owner_of(c.service)
        treasury: address = staticcall SESSIONS.treasury()
        if s > 0:
            extcall TOKEN.mint(c.supplier, s)
        if o > 0:
            extcall TOKEN.mint(owner, o)
        if t > 0:
            extcall TOKEN.mint(treasury, t)
        log Settled(
            claim_id=claim_id,
            supplier=c.supplier,
            app=c.app,
            paid=paid,
            supplier_share=s,
            owner_share=o,
            treasury_share=t,
            owner=owner,
            treasury=treasury,
        )
    else:
        self._set_status(claim_id, STATUS_VOIDED)
        slashed: uint256 = 0
        bounty: uint256 = 0
        burned: uint256 = 0
        slashed, bounty, burned = extcall SUPPLIERS.slash(
            c.supplier, claim_id, c.claimed, p.slash_multiplier_bps, p.settle_bounty_bps, msg.sender
        )
        log Voided(claim_id=claim_id, supplier=c.supplier, settler=msg.sender, slashed=slashed, bounty=bounty, burned=burned)
