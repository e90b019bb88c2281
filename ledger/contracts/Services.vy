# pragma version ~=0.4.3
"""
@title Services
@notice Service registry (DESIGN §3.1): registration by anyone (the caller becomes the owner and
        pays service_registration_fee to the treasury), per-service parameters with history
        (the owner's; effective next session), metadata and ownership.
"""
import history
import structs

initializes: history

interface ISessions:
    def checkpoint(): nonpayable
    def current_session() -> uint256: view
    def econ_params(n: uint256) -> structs.EconParams: view
    def treasury() -> address: view
    def paused() -> bool: view

interface IToken:
    def transferFrom(sender: address, receiver: address, amount: uint256) -> bool: nonpayable

event ServiceRegistered:
    service: indexed(bytes32)
    owner: indexed(address)
    name: String[64]
    rpc_type: String[32]
    metadata_uri: String[256]
    fee: uint256

event ServiceParamsSet:
    service: indexed(bytes32)
    from_session: uint256
    cu_per_relay: uint256
    max_cu_per_relay: uint256
    difficulty_bits: uint256

event ServiceMetadataSet:
    service: indexed(bytes32)
    name: String[64]
    rpc_type: String[32]
    metadata_uri: String[256]

event ServiceOwnerSet:
    service: indexed(bytes32)
    owner: indexed(address)

event ServiceOwnerProposed:
    service: indexed(bytes32)
    owner: indexed(address)
    proposed: indexed(address)

struct Service:
    owner: address
    name: String[64]
    rpc_type: String[32]
    metadata_uri: String[256]

SESSIONS: public(immutable(ISessions))
TOKEN: public(immutable(IToken))

services: HashMap[bytes32, Service]
service_count: public(uint256)
service_at: public(HashMap[uint256, bytes32])
pending_owner: public(HashMap[bytes32, address])


@deploy
def __init__(sessions: address, token: address):
    SESSIONS = ISessions(sessions)
    TOKEN = IToken(token)


@internal
@pure
def _valid_id(service: bytes32) -> bool:
    """1-32 characters of [a-z0-9_-], right-padded with zeros."""
    x: uint256 = convert(service, uint256)
    ended: bool = False
    for i: uint256 in range(32):
        c: uint256 = (x >> (8 * (31 - i))) & 255
        if c == 0:
            if i == 0:
                return False
            ended = True
        elif ended:
            return False
        elif not ((c >= 97 and c <= 122) or (c >= 48 and c <= 57) or c == 95 or c == 45):
            return False
    return True


@internal
@pure
def _validate(cu_per_relay: uint256, max_cu_per_relay: uint256, difficulty_bits: uint256):
    assert cu_per_relay >= 1, "services: cu_per_relay must be >= 1"
    assert max_cu_per_relay >= cu_per_relay and max_cu_per_relay < 2**32, "services: max_cu_per_relay must be >= cu_per_relay and < 2**32"
    assert difficulty_bits <= 64, "services: difficulty_bits must be <= 64"


@internal
def _set_params(service: bytes32, from_session: uint256, cu: uint256, max_cu: uint256, d: uint256):
    self._validate(cu, max_cu, d)
    history.write(service, from_session, cu | (max_cu << 64) | (d << 128))
    log ServiceParamsSet(
        service=service, from_session=from_session, cu_per_relay=cu, max_cu_per_relay=max_cu, difficulty_bits=d
    )


@internal
@view
def _only_owner(service: bytes32):
    owner: address = self.services[service].owner
    assert owner != empty(address), "services: unknown service"
    assert msg.sender == owner, "services: not owner"


@external
def register_service(
    service: bytes32,
    name: String[64],
    rpc_type: String[32],
    metadata_uri: String[256],
    cu_per_relay: uint256,
    max_cu_per_relay: uint256,
    difficulty_bits: uint256,
):
    assert not staticcall SESSIONS.paused(), "paused"
    extcall SESSIONS.checkpoint()
    assert self._valid_id(service), "services: bad service id"
    assert self.services[service].owner == empty(address), "services: already registered"
    m: uint256 = staticcall SESSIONS.current_session()
    fee: uint256 = (staticcall SESSIONS.econ_params(m)).service_registration_fee
    if fee > 0:
        extcall TOKEN.transferFrom(msg.sender, staticcall SESSIONS.treasury(), fee)
    self.services[service] = Service(owner=msg.sender, name=name, rpc_type=rpc_type, metadata_uri=metadata_uri)
    self.service_at[self.service_count] = service
    self.service_count += 1
    log ServiceRegistered(
        service=service, owner=msg.sender, name=name, rpc_type=rpc_type, metadata_uri=metadata_uri, fee=fee
    )
    self._set_params(service, m, cu_per_relay, max_cu_per_relay, difficulty_bits)


@external
def set_service_params(service: bytes32, cu_per_relay: uint256, max_cu_per_relay: uint256, difficulty_bits: uint256):
    extcall SESSIONS.checkpoint()
    self._only_owner(service)
    m: uint256 = staticcall SESSIONS.current_session()
    self._set_params(service, m + 1, cu_per_relay, max_cu_per_relay, difficulty_bits)


@external
def set_service_metadata(service: bytes32, name: String[64], rpc_type: String[32], metadata_uri: String[256]):
    extcall SESSIONS.checkpoint()
    self._only_owner(service)
    self.services[service].name = name
    self.services[service].rpc_type = rpc_type
    self.services[service].metadata_uri = metadata_uri
    log ServiceMetadataSet(service=service, name=name, rpc_type=rpc_type, metadata_uri=metadata_uri)


@external
def transfer_service(service: bytes32, new_owner: address):
    extcall SESSIONS.checkpoint()
    self._only_owner(service)
    assert new_owner != empty(address), "services: zero address"
    self.services[service].owner = new_owner
    self.pending_owner[service] = empty(address)
    log ServiceOwnerSet(service=service, owner=new_owner)


@external
def propose_service_owner(service: bytes32, new_owner: address):
    """Step one of the two-step transfer: `new_owner` owns the service once it accepts."""
    extcall SESSIONS.checkpoint()
    self._only_owner(service)
    self.pending_owner[service] = new_owner
    log ServiceOwnerProposed(service=service, owner=msg.sender, proposed=new_owner)


@external
def accept_service_owner(service: bytes32):
    extcall SESSIONS.checkpoint()
    assert self.services[service].owner != empty(address), "services: unknown service"
    assert msg.sender == self.pending_owner[service] and msg.sender != empty(address), "services: not proposed"
    self.services[service].owner = msg.sender
    self.pending_owner[service] = empty(address)
    log ServiceOwnerSet(service=service, owner=msg.sender)


@external
@view
def is_registered(service: bytes32) -> bool:
    return self.services[service].owner != empty(address)


@external
@view
def owner_of(service: bytes32) -> address:
    return self.services[service].owner


@external
@view
def service_info(service: bytes32) -> (address, String[64], String[32], String[256]):
    s: Service = self.services[service]
    return s.owner, s.name, s.rpc_type, s.metadata_uri


@external
@view
def service_params(service: bytes32, n: uint256) -> structs.ServiceParams:
    assert self.services[service].owner != empty(address), "services: unknown service"
    found: bool = False
    packed: uint256 = 0
    found, packed = history.at(service, n)
    assert found, "services: no params for session"
    return structs.ServiceParams(
        cu_per_relay=packed & (2**64 - 1),
        max_cu_per_relay=(packed >> 64) & (2**64 - 1),
        difficulty_bits=packed >> 128,
    )


@external
@view
def params_records(service: bytes32) -> uint256:
    return history.count(service)


@external
@view
def params_record(service: bytes32, i: uint256) -> (uint256, structs.ServiceParams):
    assert i < history.count(service), "services: no such record"
    from_session: uint256 = 0
    packed: uint256 = 0
    from_session, packed = history.record(service, i)
    return from_session, structs.ServiceParams(
        cu_per_relay=packed & (2**64 - 1),
        max_cu_per_relay=(packed >> 64) & (2**64 - 1),
        difficulty_bits=packed >> 128,
    )
