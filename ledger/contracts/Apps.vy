# pragma version ~=0.4.3
"""
@title Apps
@notice Applications (DESIGN §3.2): one service each, stake with history, delegations to
        gateways with history (at most max_delegations), unstake and withdraw after unbonding
        with no open claim; gateways: stake, URL, unstake, withdraw. Settlement burns paid
        amounts from an app's stake.
"""
import history
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

event AppStaked:
    app: indexed(address)
    service: indexed(bytes32)
    amount: uint256

event AppStakeSet:
    app: indexed(address)
    service: indexed(bytes32)
    stake: uint256
    from_session: uint256

event AppToppedUp:
    app: indexed(address)
    amount: uint256
    stake: uint256

event AppUnstaked:
    app: indexed(address)
    from_session: uint256
    withdrawable_session: uint256

event AppWithdrawn:
    app: indexed(address)
    amount: uint256

event AppStakeBurned:
    app: indexed(address)
    claim_id: indexed(bytes32)
    amount: uint256
    stake: uint256

event Delegated:
    app: indexed(address)
    gateway: indexed(address)
    epoch: uint256
    from_session: uint256

event Undelegated:
    app: indexed(address)
    gateway: indexed(address)
    from_session: uint256

event GatewayStakeSet:
    gateway: indexed(address)
    staked: bool
    epoch: uint256
    from_session: uint256

event GatewayStaked:
    gateway: indexed(address)
    stake: uint256
    url: String[256]

event GatewayToppedUp:
    gateway: indexed(address)
    amount: uint256
    stake: uint256

event GatewayUrlSet:
    gateway: indexed(address)
    url: String[256]

event GatewayUnstaked:
    gateway: indexed(address)
    withdrawable_session: uint256

event GatewayWithdrawn:
    gateway: indexed(address)
    amount: uint256

event AppOpenClaims:
    app: indexed(address)
    open_claims: uint256

event SettlementSet:
    settlement: indexed(address)

MAX_DELEGATIONS: constant(uint256) = 16
STATUS_STAKED: constant(uint8) = 1
STATUS_UNBONDING: constant(uint8) = 2

struct App:
    service: bytes32
    stake: uint256
    status: uint8
    unstake_session: uint256
    withdrawable_session: uint256
    open_claims: uint256

struct Gateway:
    stake: uint256
    url: String[256]
    status: uint8
    unstake_session: uint256
    withdrawable_session: uint256

SESSIONS: public(immutable(ISessions))
SERVICES: public(immutable(IServices))
TOKEN: public(immutable(IToken))
deployer: public(address)
settlement: public(address)

app: public(HashMap[address, App])
gateway: public(HashMap[address, Gateway])
_delegations: HashMap[address, DynArray[address, MAX_DELEGATIONS]]


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


@internal
@pure
def _stake_key(app: address) -> bytes32:
    return keccak256(abi_encode(app))


@internal
@pure
def _delegation_key(app: address, gateway: address) -> bytes32:
    return keccak256(abi_encode(app, gateway))


@internal
@pure
def _gateway_key(gateway: address) -> bytes32:
    return keccak256(abi_encode(gateway, "gateway"))


@internal
@view
def _gateway_latest(gateway: address) -> (bool, uint256):
    """(staked, epoch) of the gateway's latest stake record."""
    found: bool = False
    f: uint256 = 0
    v: uint256 = 0
    found, f, v = history.latest(self._gateway_key(gateway))
    return v & 1 == 1, v >> 1


@internal
def _record_gateway(gateway: address, staked: bool, epoch: uint256, from_session: uint256):
    history.write(self._gateway_key(gateway), from_session, convert(staked, uint256) | (epoch << 1))
    log GatewayStakeSet(gateway=gateway, staked=staked, epoch=epoch, from_session=from_session)


@internal
def _write_delegation(app: address, gateway: address, active: bool, epoch: uint256, from_session: uint256):
    history.write(self._delegation_key(app, gateway), from_session, convert(active, uint256) | (epoch << 1))
    if active:
        log Delegated(app=app, gateway=gateway, epoch=epoch, from_session=from_session)
    else:
        log Undelegated(app=app, gateway=gateway, from_session=from_session)


@internal
@view
def _current() -> uint256:
    return staticcall SESSIONS.current_session()


@internal
def _record_stake(app: address, service: bytes32, stake: uint256, from_session: uint256):
    history.write(self._stake_key(app), from_session, stake)
    log AppStakeSet(app=app, service=service, stake=stake, from_session=from_session)


# ---- applications --------------------------------------------------------------------------


@external
def stake_app(service: bytes32, amount: uint256):
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    status: uint8 = self.app[msg.sender].status
    assert status != STATUS_STAKED, "app: already staked"
    assert status != STATUS_UNBONDING, "app: unbonding, withdraw first"
    assert staticcall SERVICES.is_registered(service), "app: unknown service"
    m: uint256 = self._current()
    assert amount >= (staticcall SESSIONS.econ_params(m)).min_stake_app, "app: stake below minimum"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    self.app[msg.sender] = App(
        service=service, stake=amount, status=STATUS_STAKED, unstake_session=0, withdrawable_session=0, open_claims=self.app[msg.sender].open_claims
    )
    log AppStaked(app=msg.sender, service=service, amount=amount)
    self._record_stake(msg.sender, service, amount, m + 1)


@external
def top_up_app(amount: uint256):
    extcall SESSIONS.checkpoint()
    a: App = self.app[msg.sender]
    assert a.status == STATUS_STAKED, "app: not staked"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    stake: uint256 = a.stake + amount
    self.app[msg.sender].stake = stake
    log AppToppedUp(app=msg.sender, amount=amount, stake=stake)
    self._record_stake(msg.sender, a.service, stake, self._current() + 1)


@external
def unstake_app():
    extcall SESSIONS.checkpoint()
    a: App = self.app[msg.sender]
    assert a.status == STATUS_STAKED, "app: not staked"
    m: uint256 = self._current()
    unbonding: uint256 = (staticcall SESSIONS.econ_params(m)).unbonding_sessions
    self.app[msg.sender].status = STATUS_UNBONDING
    self.app[msg.sender].unstake_session = m
    self.app[msg.sender].withdrawable_session = m + unbonding
    self._record_stake(msg.sender, a.service, 0, m + 1)
    log AppUnstaked(app=msg.sender, from_session=m + 1, withdrawable_session=m + unbonding)


@external
def withdraw_app():
    extcall SESSIONS.checkpoint()
    a: App = self.app[msg.sender]
    assert a.status == STATUS_UNBONDING, "app: not unstaked"
    m: uint256 = self._current()
    assert m >= a.withdrawable_session, "app: still unbonding"
    assert a.open_claims == 0, "app: open claims"
    for gw: address in self._delegations[msg.sender]:
        self._write_delegation(msg.sender, gw, False, 0, m + 1)
    self._delegations[msg.sender] = []
    self.app[msg.sender] = empty(App)
    if a.stake > 0:
        extcall TOKEN.transfer(msg.sender, a.stake)
    log AppWithdrawn(app=msg.sender, amount=a.stake)


@external
def delegate(gateway: address):
    """Delegate from the next session to a gateway whose latest stake record is staked, under
    that record's epoch; re-delegating is allowed only when the gateway has restaked since."""
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    assert self.app[msg.sender].status == STATUS_STAKED, "app: not staked"
    staked: bool = False
    epoch: uint256 = 0
    staked, epoch = self._gateway_latest(gateway)
    assert staked, "delegation: gateway not staked"
    m: uint256 = self._current()
    if gateway in self._delegations[msg.sender]:
        found: bool = False
        f: uint256 = 0
        v: uint256 = 0
        found, f, v = history.latest(self._delegation_key(msg.sender, gateway))
        assert v != 1 | (epoch << 1), "delegation: already delegated"
    else:
        n_current: uint256 = len(self._delegations[msg.sender])
        assert n_current < (staticcall SESSIONS.econ_params(m)).max_delegations, "delegation: too many delegations"
        self._delegations[msg.sender].append(gateway)
    self._write_delegation(msg.sender, gateway, True, epoch, m + 1)


@external
def undelegate(gateway: address):
    extcall SESSIONS.checkpoint()
    current: DynArray[address, MAX_DELEGATIONS] = self._delegations[msg.sender]
    assert gateway in current, "delegation: not delegated"
    kept: DynArray[address, MAX_DELEGATIONS] = []
    for gw: address in current:
        if gw != gateway:
            kept.append(gw)
    self._delegations[msg.sender] = kept
    self._write_delegation(msg.sender, gateway, False, 0, self._current() + 1)


# ---- gateways ------------------------------------------------------------------------------


@external
def stake_gateway(amount: uint256, url: String[256]):
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    status: uint8 = self.gateway[msg.sender].status
    assert status != STATUS_STAKED, "gateway: already staked"
    assert status != STATUS_UNBONDING, "gateway: unbonding, withdraw first"
    assert amount >= (staticcall SESSIONS.econ_params(self._current())).min_stake_gateway, "gateway: stake below minimum"
    assert len(url) > 0, "gateway: empty url"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    self.gateway[msg.sender] = Gateway(stake=amount, url=url, status=STATUS_STAKED, unstake_session=0, withdrawable_session=0)
    log GatewayStaked(gateway=msg.sender, stake=amount, url=url)
    staked: bool = False
    epoch: uint256 = 0
    staked, epoch = self._gateway_latest(msg.sender)
    self._record_gateway(msg.sender, True, epoch + 1, self._current() + 1)


@external
def top_up_gateway(amount: uint256):
    extcall SESSIONS.checkpoint()
    assert self.gateway[msg.sender].status == STATUS_STAKED, "gateway: not staked"
    extcall TOKEN.transferFrom(msg.sender, self, amount)
    self.gateway[msg.sender].stake += amount
    log GatewayToppedUp(gateway=msg.sender, amount=amount, stake=self.gateway[msg.sender].stake)


@external
def set_gateway_url(url: String[256]):
    extcall SESSIONS.checkpoint()
    assert self.gateway[msg.sender].status == STATUS_STAKED, "gateway: not staked"
    assert len(url) > 0, "gateway: empty url"
    self.gateway[msg.sender].url = url
    log GatewayUrlSet(gateway=msg.sender, url=url)


@external
def unstake_gateway():
    extcall SESSIONS.checkpoint()
    assert self.gateway[msg.sender].status == STATUS_STAKED, "gateway: not staked"
    m: uint256 = self._current()
    w: uint256 = m + (staticcall SESSIONS.econ_params(m)).unbonding_sessions
    self.gateway[msg.sender].status = STATUS_UNBONDING
    self.gateway[msg.sender].unstake_session = m
    self.gateway[msg.sender].withdrawable_session = w
    log GatewayUnstaked(gateway=msg.sender, withdrawable_session=w)
    staked: bool = False
    epoch: uint256 = 0
    staked, epoch = self._gateway_latest(msg.sender)
    self._record_gateway(msg.sender, False, epoch, m + 1)


@external
def withdraw_gateway():
    extcall SESSIONS.checkpoint()
    g: Gateway = self.gateway[msg.sender]
    assert g.status == STATUS_UNBONDING, "gateway: not unstaked"
    assert self._current() >= g.withdrawable_session, "gateway: still unbonding"
    self.gateway[msg.sender] = empty(Gateway)
    if g.stake > 0:
        extcall TOKEN.transfer(msg.sender, g.stake)
    log GatewayWithdrawn(gateway=msg.sender, amount=g.stake)


# ---- settlement hooks ----------------------------------------------------------------------


@internal
@view
def _only_settlement():
    assert msg.sender == self.settlement, "app: not settlement"


@external
def burn_stake(app: address, claim_id: bytes32, amount: uint256) -> uint256:
    """Burn min(amount, remaining stake) from the app's stake; returns what was burned."""
    self._only_settlement()
    a: App = self.app[app]
    paid: uint256 = min(amount, a.stake)
    stake: uint256 = a.stake - paid
    self.app[app].stake = stake
    if a.status == STATUS_STAKED:
        self._record_stake(app, a.service, stake, self._current() + 1)
    if paid > 0:
        extcall TOKEN.burn(paid)
    log AppStakeBurned(app=app, claim_id=claim_id, amount=paid, stake=stake)
    return paid


@external
def claim_opened(app: address):
    self._only_settlement()
    self.app[app].open_claims += 1
    log AppOpenClaims(app=app, open_claims=self.app[app].open_claims)


@external
def claim_closed(app: address):
    self._only_settlement()
    self.app[app].open_claims -= 1
    log AppOpenClaims(app=app, open_claims=self.app[app].open_claims)


# ---- views ---------------------------------------------------------------------------------


@external
@view
def app_stake(app: address, n: uint256) -> uint256:
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._stake_key(app), n)
    return v


@external
@view
def app_staked_for(app: address, service: bytes32, n: uint256) -> uint256:
    if self.app[app].service != service or service == empty(bytes32):
        return 0
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._stake_key(app), n)
    return v


@external
@view
def app_service(app: address) -> bytes32:
    return self.app[app].service


@external
@view
def delegated(app: address, gateway: address, n: uint256) -> bool:
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._delegation_key(app, gateway), n)
    return v & 1 == 1


@external
@view
def gateway_stake_at(gateway: address, n: uint256) -> (bool, uint256):
    """(staked(g, n), epoch(g, n)) from the latest stake record with from_session <= n."""
    found: bool = False
    v: uint256 = 0
    found, v = history.at(self._gateway_key(gateway), n)
    return v & 1 == 1, v >> 1


@external
@view
def signer_ok(app: address, signer: address, n: uint256) -> bool:
    """DESIGN §3.2: the app itself, or a gateway delegated at n, staked at n, same epoch."""
    if signer == app:
        return True
    found: bool = False
    d: uint256 = 0
    found, d = history.at(self._delegation_key(app, signer), n)
    if d & 1 == 0:
        return False
    g: uint256 = 0
    found, g = history.at(self._gateway_key(signer), n)
    return g & 1 == 1 and g >> 1 == d >> 1


@external
@view
def delegations(app: address) -> DynArray[address, MAX_DELEGATIONS]:
    return self._delegations[app]
