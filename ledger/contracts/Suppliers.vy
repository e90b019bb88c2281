# pragma version ~=0.4.3
"""
@title Suppliers
@notice Supplier stakes (DESIGN §3.1, §3.2): services with an endpoint URL each, the ed25519
        receipt key, top-up, unstake, withdraw after unbonding with no open claim; the positions
        of every service with history (stake appends at `length`, unstake moves the last
        supplier into the leaver's position); claim stake locks and slashing (Settlement only).
"""
import history
import relaymath
import structs

initializes: history

interface ISessions:
    def checkpoint(): nonpayable
    def current_session() -> uint256: view
    def econ_params(n: uint256) -> structs.EconParams: view
    def paused() -> bool: view

interface IServices:
    def is_registered(service: bytes32) -> bool: view

interface IToken:
    def transferFrom(sender: address, receiver: address, amount: uint256) -> bool: nonpayable
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable
    def burn(amount: uint256): nonpayable

event SupplierStaked:
    supplier: indexed(address)
    stake: uint256
    receipt_key: bytes32

event SupplierServiceSet:
    supplier: indexed(address)
    service: indexed(bytes32)
    endpoint: String[256]

event SupplierToppedUp:
    supplier: indexed(address)
    amount: uint256
    stake: uint256

event SupplierUnstaked:
    supplier: indexed(address)
    from_session: uint256
    withdrawable_session: uint256
    forced: bool

event SupplierWithdrawn:
    supplier: indexed(address)
    amount: uint256

event SupplierLocked:
    supplier: indexed(address)
    amount: uint256
    locked: uint256
    open_claims: uint256

event SupplierUnlocked:
    supplier: indexed(address)
    amount: uint256
    locked: uint256
    open_claims: uint256

event SupplierSlashed:
    supplier: indexed(address)
    claim_id: indexed(bytes32)
    slashed: uint256
    bounty: uint256
    burned: uint256
    stake: uint256

event PositionSet:
    service: indexed(bytes32)
    position: uint256
    supplier: address
    from_session: uint256

event LengthSet:
    service: indexed(bytes32)
    length: uint256
    from_session: uint256

event ServiceAdded:
    supplier: indexed(address)
    service: indexed(bytes32)
    endpoint: String[256]
    from_session: uint256

event ServiceRemoved:
    supplier: indexed(address)
    service: indexed(bytes32)
    from_session: uint256

event ReceiptKeySet:
    supplier: indexed(address)
    receipt_key: bytes32
    from_session: uint256

event SettlementSet:
    settlement: indexed(address)

MAX_SERVICES: constant(uint256) = 16
STATUS_NONE: constant(uint8) = 0
STATUS_STAKED: constant(uint8) = 1
STATUS_UNBONDING: constant(uint8) = 2

struct Supplier:
    stake: uint256
    locked: uint256
    receipt_key: bytes32
    status: uint8
    unstake_session: uint256
    withdrawable_session: uint256
    open_claims: uint256

SESSIONS: public(immutable(ISessions))
SERVICES: public(immutable(IServices))
TOKEN: public(immutable(IToken))
deployer: public(address)
settlement: public(address)

supplier: public(HashMap[address, Supplier])
_services: HashMap[address, DynArray[bytes32, MAX_SERVICES]]
_endpoint: HashMap[address, HashMap[bytes32, String[256]]]
_staked_for: HashMap[address, HashMap[bytes32, bool]]
_position: HashMap[bytes32, HashMap[address, uint256]]
_receipt_keys: HashMap[address, HashMap[uint256, bytes32]]  # record index -> key (history holds the index)


@deploy
def __init__(sessions: address, services: address, token: address):
    SESSIONS = ISessions(sessions)
    SERVICES = IServices(services)
    TOKEN = IToken(token)
    self.deployer = msg.sender


@external
def set_settlement(settlement: address):
    assert msg.sender == self.deployer, "wiring: not deployer"
    assert self.settlement == empty(address), "wiring: already set"
    assert settlement != empty(address), "wiring: zero address"
    self.settlement = settlement
    log SettlementSet(settlement=settlement)


# ---- positions with history ----------------------------------------------------------------


@internal
@pure
def _length_key(service: bytes32) -> bytes32:
    return keccak256(abi_encode(service, max_value(uint256)))


@internal
@pure
def _position_key(service: bytes32, p: uint256) -> bytes32:
    return keccak256(abi_encode(service, p))


@internal
@view
def _current_length(service: bytes32) -> uint256:
    found: bool = False
    f: uint256 = 0
    v: uint256 = 0
    found, f, v = history.latest(self._length_key(service))
    return v


@internal
def _write_length(service: bytes32, length: uint256, from_session: uint256):
    history.write(self._length_key(service), from_session, length)
    log LengthSet(service=service, length=length, from_session=from_session)


@internal
def _write_position(service: bytes32, p: uint256, supplier: address, from_session: uint256):
    history.write(self._position_key(service, p), from_session, convert(supplier, uint256))
    log PositionSet(service=service, position=p, supplier=supplier, from_session=from_session)


@internal
def _append(service: bytes32, supplier: address, from_session: uint256):
    length: uint256 = self._current_length(service)
    self._write_position(service, length, supplier, from_session)
    self._write_length(service, length + 1, from_session)
    self._position[service][supplier] = length


@internal
def _remove(service: bytes32, supplier: address, from_session: uint256):
    p: uint256 = self._position[service][supplier]
    last: uint256 = self._current_length(service) - 1
    if p != last:
        found: bool = False
        f: uint256 = 0
        v: uint256 = 0
        found, f, v = history.latest(self._position_key(service, last))
        mover: address = convert(v, address)
        self._write_position(service, p, mover, from_session)
        self._position[service][mover] = p
    self._write_length(service, last, from_session)


@external
@view
def length(service: bytes32, n: uint256) -> uint256:
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._length_key(service), n)
    return v


@external
@view
def occupant(service: bytes32, p: uint256, n: uint256) -> address:
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._position_key(service, p), n)
    return convert(v, address)


@external
@view
def current_length(service: bytes32) -> uint256:
    return self._current_length(service)


@external
@view
def position_of(service: bytes32, supplier: address) -> uint256:
    assert self._staked_for[supplier][service], "supplier: not staked for service"
    return self._position[service][supplier]


@external
@view
def length_records(service: bytes32) -> uint256:
    return history.count(self._length_key(service))


@external
@view
def length_record(service: bytes32, i: uint256) -> (uint256, uint256):
    key: bytes32 = self._length_key(service)
    assert i < history.count(key), "supplier: no such record"
    return history.record(key, i)


@external
@view
def position_records(service: bytes32, p: uint256) -> uint256:
    return history.count(self._position_key(service, p))


@external
@view
def position_record(service: bytes32, p: uint256, i: uint256) -> (uint256, address):
    key: bytes32 = self._position_key(service, p)
    assert i < history.count(key), "supplier: no such record"
    f: uint256 = 0
    v: uint256 = 0
    f, v = history.record(key, i)
    return f, convert(v, address)


@internal
@pure
def _key_key(supplier: address) -> bytes32:
    return keccak256(abi_encode(supplier, "receipt_key"))


@internal
def _set_receipt_key(supplier: address, receipt_key: bytes32, from_session: uint256):
    assert receipt_key != empty(bytes32), "supplier: zero receipt key"
    k: bytes32 = self._key_key(supplier)
    found: bool = False
    last_from: uint256 = 0
    idx: uint256 = 0
    found, last_from, idx = history.latest(k)
    if not found or last_from != from_session:
        idx = history.count(k)
    self._receipt_keys[supplier][idx] = receipt_key
    history.write(k, from_session, idx)
    self.supplier[supplier].receipt_key = receipt_key
    log ReceiptKeySet(supplier=supplier, receipt_key=receipt_key, from_session=from_session)


@external
@view
def receipt_key_at(supplier: address, n: uint256) -> bytes32:
    """receipt_key(supplier, n): the latest record with from_session <= n (zero if none)."""
    found: bool = False
    idx: uint256 = 0
    found, idx = history.at(self._key_key(supplier), n)
    if not found:
        return empty(bytes32)
    return self._receipt_keys[supplier][idx]


# ---- staking -------------------------------------------------------------------------------


@internal
def _unstake(supplier: address, forced: bool):
    m: uint256 = staticcall SESSIONS.current_session()
    unbonding: uint256 = (staticcall SESSIONS.econ_params(m)).unbonding_sessions
    services: DynArray[bytes32, MAX_SERVICES] = self._services[supplier]
    for service: bytes32 in services:
        self._remove(service, supplier, m + 1)
        self._staked_for[supplier][service] = False
    self.supplier[supplier].status = STATUS_UNBONDING
    self.supplier[supplier].unstake_session = m
    self.supplier[supplier].withdrawable_session = m + unbonding
    log SupplierUnstaked(supplier=supplier, from_session=m + 1, withdrawable_session=m + unbonding, forced=forced)


@external
def stake_supplier(
    amount: uint256,
    services: DynArray[bytes32, MAX_SERVICES],
    endpoints: DynArray[String[256], MAX_SERVICES],
    receipt_key: bytes32,
):
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    status: uint8 = self.supplier[msg.sender].status
    assert status != STATUS_STAKED, "supplier: already staked"
    assert status != STATUS_UNBONDING, "supplier: unbonding, withdraw first"
    m: uint256 = staticcall SESSIONS.current_session()
    p: structs.EconParams = staticcall SESSIONS.econ_params(m)
    assert amount >= p.min_stake_supplier, "supplier: stake below minimum"
    assert len(services) > 0, "supplier: no services"
    assert len(services) <= p.max_services_per_supplier, "supplier: too many services"
    assert len(services) == len(endpoints), "supplier: services and endpoints differ in length"
    assert receipt_key != empty(bytes32), "supplier: zero receipt key"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    self.supplier[msg.sender] = Supplier(
        stake=amount,
        locked=0,
        receipt_key=receipt_key,
        status=STATUS_STAKED,
        unstake_session=0,
        withdrawable_session=0,
        open_claims=self.supplier[msg.sender].open_claims,
    )
    log SupplierStaked(supplier=msg.sender, stake=amount, receipt_key=receipt_key)
    self._set_receipt_key(msg.sender, receipt_key, m + 1)
    for i: uint256 in range(MAX_SERVICES):
        if i >= len(services):
            break
        service: bytes32 = services[i]
        assert staticcall SERVICES.is_registered(service), "supplier: unknown service"
        assert not self._staked_for[msg.sender][service], "supplier: duplicate service"
        assert len(endpoints[i]) > 0, "supplier: empty endpoint"
        self._staked_for[msg.sender][service] = True
        self._endpoint[msg.sender][service] = endpoints[i]
        log SupplierServiceSet(supplier=msg.sender, service=service, endpoint=endpoints[i])
        self._append(service, msg.sender, m + 1)
    self._services[msg.sender] = services


@external
def top_up_supplier(amount: uint256):
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    self.supplier[msg.sender].stake += amount
    log SupplierToppedUp(supplier=msg.sender, amount=amount, stake=self.supplier[msg.sender].stake)


@external
def set_endpoint(service: bytes32, endpoint: String[256]):
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    assert self._staked_for[msg.sender][service], "supplier: not staked for service"
    assert len(endpoint) > 0, "supplier: empty endpoint"
    self._endpoint[msg.sender][service] = endpoint
    log SupplierServiceSet(supplier=msg.sender, service=service, endpoint=endpoint)


@external
def add_service(service: bytes32, endpoint: String[256]):
    """Serve one more service from the next session (appended at `length`, like staking)."""
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    assert staticcall SERVICES.is_registered(service), "supplier: unknown service"
    assert not self._staked_for[msg.sender][service], "supplier: duplicate service"
    assert len(endpoint) > 0, "supplier: empty endpoint"
    m: uint256 = staticcall SESSIONS.current_session()
    n_services: uint256 = len(self._services[msg.sender])
    assert n_services < (staticcall SESSIONS.econ_params(m)).max_services_per_supplier, "supplier: too many services"
    self._services[msg.sender].append(service)
    self._staked_for[msg.sender][service] = True
    self._endpoint[msg.sender][service] = endpoint
    self._append(service, msg.sender, m + 1)
    log ServiceAdded(supplier=msg.sender, service=service, endpoint=endpoint, from_session=m + 1)


@external
def remove_service(service: bytes32):
    """Stop serving one service from the next session (the unstake swap for that service)."""
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    assert self._staked_for[msg.sender][service], "supplier: not staked for service"
    current: DynArray[bytes32, MAX_SERVICES] = self._services[msg.sender]
    assert len(current) > 1, "supplier: last service, unstake instead"
    kept: DynArray[bytes32, MAX_SERVICES] = []
    for sv: bytes32 in current:
        if sv != service:
            kept.append(sv)
    self._services[msg.sender] = kept
    self._staked_for[msg.sender][service] = False
    m: uint256 = staticcall SESSIONS.current_session()
    self._remove(service, msg.sender, m + 1)
    log ServiceRemoved(supplier=msg.sender, service=service, from_session=m + 1)


@external
def rotate_receipt_key(receipt_key: bytes32):
    """A new ed25519 receipt key from the next session; receipts of earlier sessions stay
    checked against the key valid then."""
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    self._set_receipt_key(msg.sender, receipt_key, staticcall SESSIONS.current_session() + 1)


@external
def unstake_supplier():
    extcall SESSIONS.checkpoint()
    assert self.supplier[msg.sender].status == STATUS_STAKED, "supplier: not staked"
    self._unstake(msg.sender, False)


@external
def withdraw_supplier():
    extcall SESSIONS.checkpoint()
    s: Supplier = self.supplier[msg.sender]
    assert s.status == STATUS_UNBONDING, "supplier: not unstaked"
    assert staticcall SESSIONS.current_session() >= s.withdrawable_session, "supplier: still unbonding"
    assert s.open_claims == 0, "supplier: open claims"
    self.supplier[msg.sender] = empty(Supplier)
    self._services[msg.sender] = []
    if s.stake > 0:
        extcall TOKEN.transfer(msg.sender, s.stake)
    log SupplierWithdrawn(supplier=msg.sender, amount=s.stake)


# ---- settlement hooks ----------------------------------------------------------------------


@internal
@view
def _only_settlement():
    assert msg.sender == self.settlement, "supplier: not settlement"


@external
def lock(supplier: address, amount: uint256):
    self._only_settlement()
    s: Supplier = self.supplier[supplier]
    free: uint256 = 0
    if s.stake > s.locked:
        free = s.stake - s.locked
    assert amount <= free, "claim: stake lock not covered"
    self.supplier[supplier].locked = s.locked + amount
    self.supplier[supplier].open_claims = s.open_claims + 1
    log SupplierLocked(supplier=supplier, amount=amount, locked=s.locked + amount, open_claims=s.open_claims + 1)


@external
def unlock(supplier: address, amount: uint256):
    self._only_settlement()
    s: Supplier = self.supplier[supplier]
    locked: uint256 = s.locked - min(amount, s.locked)
    self.supplier[supplier].locked = locked
    self.supplier[supplier].open_claims = s.open_claims - 1
    log SupplierUnlocked(supplier=supplier, amount=amount, locked=locked, open_claims=s.open_claims - 1)


@external
def slash(
    supplier: address,
    claim_id: bytes32,
    claimed: uint256,
    multiplier_bps: uint256,
    bounty_bps: uint256,
    bounty_to: address,
) -> (uint256, uint256, uint256):
    """Slash claimed × multiplier (capped by the stake): bounty to bounty_to, the rest burned;
    a staked supplier left under the minimum stake is unstaked."""
    self._only_settlement()
    stake: uint256 = self.supplier[supplier].stake
    slashed: uint256 = 0
    bounty: uint256 = 0
    burned: uint256 = 0
    slashed, bounty, burned = relaymath.slash_amounts(claimed, multiplier_bps, stake, bounty_bps)
    stake -= slashed
    self.supplier[supplier].stake = stake
    if bounty > 0:
        extcall TOKEN.transfer(bounty_to, bounty)
    if burned > 0:
        extcall TOKEN.burn(burned)
    log SupplierSlashed(supplier=supplier, claim_id=claim_id, slashed=slashed, bounty=bounty, burned=burned, stake=stake)
    if self.supplier[supplier].status == STATUS_STAKED:
        m: uint256 = staticcall SESSIONS.current_session()
        if stake < (staticcall SESSIONS.econ_params(m)).min_stake_supplier:
            self._unstake(supplier, True)
    return slashed, bounty, burned


# ---- views ---------------------------------------------------------------------------------


@external
@view
def services_of(supplier: address) -> DynArray[bytes32, MAX_SERVICES]:
    return self._services[supplier]


@external
@view
def endpoint(supplier: address, service: bytes32) -> String[256]:
    return self._endpoint[supplier][service]


@external
@view
def is_staked_for(supplier: address, service: bytes32) -> bool:
    return self._staked_for[supplier][service]
