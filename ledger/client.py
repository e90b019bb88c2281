"""A typed async client for every action and query of the settlement contracts.

:class:`LedgerClient` wraps web3.py's ``AsyncWeb3`` behind methods named after what a user
does (``stake_supplier``, ``delegate``, ``claim``, ``prove``, ``settle`` …) and queries that
answer in the project's own types (raw 20-byte addresses, ``service_id`` strings,
:mod:`session.snapshot` dataclasses). Transactions go through :class:`ledger.tx.TxSender`
(nonces, fees, receipts, replacement); staking calls approve the token transfer they need
first. Every failure is a :class:`ledger.errors.LedgerError`; a contract refusal is a
:class:`~ledger.errors.TransactionReverted` whose ``reason`` is the contract's revert string.

The contracts' interface is described in ``ledger/contracts`` (see ``ledger.artifacts``);
``Deployment.contracts`` names their addresses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import aiohttp
from eth_typing import ChecksumAddress
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract

from ledger.artifacts import load_artifact
from ledger.deploy import Deployment
from ledger.econ import econ_params_from_values, econ_tuple
from ledger.errors import LedgerError, translate_errors
from ledger.events import Event, EventDecoder
from ledger.tx import TxReceipt, TxSender
from protocol.encoding import service_id_from_bytes, service_id_to_bytes
from protocol.keys import AccountKey, keccak256
from protocol.trie import Node
from session.snapshot import EconomicParams, ServiceInfo, ServiceParams, SessionShape

__all__ = [
    "CONTRACTS",
    "AppState",
    "ClaimReceipt",
    "ClaimState",
    "ClaimStatus",
    "GatewayState",
    "LedgerClient",
    "SettleResult",
    "StakeStatus",
    "SupplierState",
    "claim_id_of",
    "econ_params_from_values",  # lives in ledger.econ; ledger.follower imports it from here
    "make_web3",
]

CONTRACTS: tuple[str, ...] = ("Token", "Sessions", "Services", "Suppliers", "Apps", "Settlement")
_ZERO32 = b"\x00" * 32
# gas for checkpoint records found at inclusion but not at the estimate: an H_n (two slots, two
# events) and an H_g and an H_c (one slot, one event each), i.e. one more session's boundaries
CHECKPOINT_HEADROOM = 120_000
_ZERO20 = b"\x00" * 20


class StakeStatus(IntEnum):
    NONE = 0
    STAKED = 1
    UNBONDING = 2


class ClaimStatus(IntEnum):
    NONE = 0
    OPEN = 1
    PROVED = 2
    SETTLED = 3
    VOIDED = 4


@dataclass(frozen=True)
class SupplierState:
    address: bytes
    stake: int
    locked: int
    receipt_key: bytes
    status: StakeStatus
    unstake_session: int
    withdrawable_session: int
    open_claims: int
    endpoints: Mapping[str, str]  # service_id -> relay URL


@dataclass(frozen=True)
class AppState:
    address: bytes
    service_id: str | None
    stake: int  # remaining, live
    status: StakeStatus
    unstake_session: int
    withdrawable_session: int
    open_claims: int
    delegations: tuple[bytes, ...]  # gateways delegated now (current list)


@dataclass(frozen=True)
class GatewayState:
    address: bytes
    stake: int
    url: str
    status: StakeStatus
    unstake_session: int
    withdrawable_session: int


@dataclass(frozen=True)
class ClaimState:
    claim_id: bytes
    supplier: bytes
    app: bytes
    service_id: str
    session: int
    n_slots: int
    root_digest: bytes
    sum: int
    count: int
    claimed: int
    lock: int
    seed: bytes
    status: ClaimStatus


@dataclass(frozen=True)
class ClaimReceipt:
    claim_id: bytes
    claimed: int
    lock: int
    receipt: TxReceipt


@dataclass(frozen=True)
class SettleResult:
    claim_id: bytes
    valid: bool
    paid: int = 0
    supplier_share: int = 0
    owner_share: int = 0
    treasury_share: int = 0
    slashed: int = 0
    bounty: int = 0
    burned: int = 0
    receipt: TxReceipt | None = None


def claim_id_of(supplier: bytes, app: bytes, service_id: str, n: int) -> bytes:
    """``keccak256(pad32(supplier) ‖ pad32(app) ‖ service ‖ uint256(n))`` (the contract's id)."""
    return keccak256(
        supplier.rjust(32, b"\x00")
        + app.rjust(32, b"\x00")
        + service_id_to_bytes(service_id)
        + n.to_bytes(32, "big")
    )


def make_web3(rpc_url: str, timeout: float = 30.0) -> AsyncWeb3[Any]:
    """An ``AsyncWeb3`` over HTTP without web3's own retries (we translate failures)."""
    provider = AsyncHTTPProvider(
        rpc_url,
        request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
        exception_retry_configuration=None,
    )
    return AsyncWeb3(provider)


def _cs(address: bytes) -> ChecksumAddress:
    if len(address) != 20:
        raise LedgerError("an address is 20 bytes")
    return AsyncWeb3.to_checksum_address(address)


def _addr(value: Any) -> bytes:
    return bytes.fromhex(str(value)[2:].lower())


def _values(result: Any) -> list[Any]:
    """A view's outputs as a list, whether web3 gave a struct tuple or several outputs."""
    if isinstance(result, (list, tuple)):
        if len(result) == 1 and isinstance(result[0], (list, tuple)):
            return list(result[0])
        return list(result)
    return [result]


def _sid(raw: bytes) -> str | None:
    raw = bytes(raw)
    return None if raw == _ZERO32 else service_id_from_bytes(raw)


class LedgerClient:
    """Actions and queries of the settlement contracts for one account (or read-only)."""

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        account: AccountKey | None = None,
        *,
        request_timeout: float = 30.0,
        receipt_timeout: float = 120.0,
        replace_after: float = 20.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.account = account
        self.w3 = make_web3(rpc_url, request_timeout)
        self._contracts: dict[str, AsyncContract] = {}
        decoder_input: dict[str, tuple[bytes, list[dict[str, Any]]]] = {}
        for name in CONTRACTS:
            address = deployment.contracts.get(name)
            if address is None:
                raise LedgerError(f"deployment names no {name} contract")
            abi = load_artifact(name).abi
            self._contracts[name] = self.w3.eth.contract(
                address=AsyncWeb3.to_checksum_address(address), abi=abi
            )
            decoder_input[name] = (_addr(address), abi)
        self.events = EventDecoder(decoder_input)
        self.sender: TxSender | None = None
        if account is not None:
            self.sender = TxSender(
                self.w3,
                account,
                chain_id=deployment.chain_id,
                receipt_timeout=receipt_timeout,
                replace_after=replace_after,
            )

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the HTTP session."""
        provider = self.w3.provider
        if isinstance(provider, AsyncHTTPProvider):
            await provider.disconnect()

    async def __aenter__(self) -> LedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def address(self) -> bytes:
        """The account's address (LedgerError for a read-only client)."""
        if self.account is None:
            raise LedgerError("this client has no account (read-only)")
        return self.account.address

    def contract_address(self, name: str) -> bytes:
        return _addr(self.deployment.contracts[name])

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, contract: str, fn: str, *args: Any) -> Any:
        with translate_errors(f"{contract}.{fn}"):
            return await self._contracts[contract].functions[fn](*args).call()

    async def _send(
        self, contract: str, fn: str, *args: Any, gas: int | None = None, headroom: int = 0
    ) -> TxReceipt:
        if self.sender is None:
            raise LedgerError(f"{fn}: this client has no account (read-only)")
        c = self._contracts[contract]
        with translate_errors(f"{contract}.{fn}"):
            data = c.encode_abi(fn, args=list(args))
        return await self.sender.send(
            str(c.address), bytes.fromhex(data[2:]), gas=gas, headroom=headroom, action=fn
        )

    def decode_events(self, receipt: TxReceipt, name: str | None = None) -> list[Event]:
        """The contract events of a receipt (only those named ``name`` when given)."""
        events = self.events.decode_all(receipt.logs)
        return [e for e in events if name is None or e.name == name]

    async def _ensure_allowance(self, spender: str, amount: int) -> None:
        if amount <= 0:
            return
        spender_address = self.contract_address(spender)
        current = await self.allowance(self.address, spender_address)
        if current < amount:
            await self.approve(spender_address, amount)

    # -- chain -----------------------------------------------------------------------------

    async def block_number(self) -> int:
        with translate_errors("eth_blockNumber"):
            return int(await self.w3.eth.block_number)

    async def chain_id(self) -> int:
        with translate_errors("eth_chainId"):
            return int(await self.w3.eth.chain_id)

    async def eth_balance(self, address: bytes | None = None) -> int:
        """Native balance (gas money) of ``address`` (default: the account)."""
        with translate_errors("eth_getBalance"):
            return int(await self.w3.eth.get_balance(_cs(address or self.address)))

    # -- token -----------------------------------------------------------------------------

    async def balance(self, address: bytes | None = None) -> int:
        """Token balance of ``address`` (default: the account), in base units."""
        return int(await self._call("Token", "balanceOf", _cs(address or self.address)))

    async def allowance(self, owner: bytes, spender: bytes) -> int:
        return int(await self._call("Token", "allowance", _cs(owner), _cs(spender)))

    async def total_supply(self) -> int:
        return int(await self._call("Token", "totalSupply"))

    async def decimals(self) -> int:
        return int(await self._call("Token", "decimals"))

    async def transfer(self, to: bytes, amount: int) -> TxReceipt:
        return await self._send("Token", "transfer", _cs(to), amount)

    async def approve(self, spender: bytes, amount: int) -> TxReceipt:
        return await self._send("Token", "approve", _cs(spender), amount)

    # -- sessions: shape, parameters, checkpoints, pause -----------------------------------

    async def shape(self) -> SessionShape:
        names = ("genesis_block", "L", "G", "CO", "CW", "PO", "PW", "S")
        values = [int(await self._call("Sessions", n)) for n in names]
        return SessionShape(*values)

    async def current_session(self) -> int:
        return int(await self._call("Sessions", "current_session"))

    async def economic_params(self, n: int) -> EconomicParams:
        return econ_params_from_values(_values(await self._call("Sessions", "econ_params", n)))

    async def set_economic_params(self, params: EconomicParams) -> TxReceipt:
        """Admin: new global parameters, in force from the next session."""
        return await self._send("Sessions", "set_econ_params", econ_tuple(params))

    async def checkpoints(self, n: int) -> tuple[bytes | None, bytes | None, bytes | None]:
        """``(H_n, H_g, H_c)`` of session ``n`` as recorded by the contract (None: missing)."""
        out: list[bytes | None] = []
        for fn in ("h_n", "h_g", "h_c"):
            value = bytes(await self._call("Sessions", fn, n))
            out.append(None if value == _ZERO32 else value)
        return out[0], out[1], out[2]

    async def checkpoint(self) -> TxReceipt:
        """Record the missing H_n / H_g / H_c among the last 256 blocks. Its work grows with
        every block mined after the estimate (a boundary passed meanwhile is one more record),
        so it carries gas for a few more records than the estimate saw."""
        return await self._send("Sessions", "checkpoint", headroom=CHECKPOINT_HEADROOM)

    async def paused(self) -> bool:
        return bool(await self._call("Sessions", "paused"))

    async def pause(self) -> TxReceipt:
        return await self._send("Sessions", "pause")

    async def unpause(self) -> TxReceipt:
        return await self._send("Sessions", "unpause")

    async def treasury(self) -> bytes:
        return _addr(await self._call("Sessions", "treasury"))

    async def admin(self) -> bytes:
        return _addr(await self._call("Sessions", "admin"))

    async def propose_admin(self, new_admin: bytes) -> TxReceipt:
        """Admin: step one of the two-step transfer (``new_admin`` then calls accept_admin)."""
        return await self._send("Sessions", "propose_admin", _cs(new_admin))

    async def accept_admin(self) -> TxReceipt:
        """The proposed admin takes over."""
        return await self._send("Sessions", "accept_admin")

    async def chain_id_of(self, n: int) -> int | None:
        """The chain id recorded with ``H_n`` (the EIP-712 domain of session ``n``), or None."""
        value = int(await self._call("Sessions", "chain_id_of", n))
        return value or None

    # -- services --------------------------------------------------------------------------

    async def register_service(
        self,
        service_id: str,
        *,
        name: str = "",
        rpc_type: str = "evm",
        metadata_uri: str = "",
        cu_per_relay: int = 1,
        max_cu_per_relay: int = 100,
        difficulty_bits: int = 0,
    ) -> TxReceipt:
        """Register a service (the account becomes its owner); pays the registration fee."""
        current = await self.current_session()
        fee = (await self.economic_params(current)).service_registration_fee
        await self._ensure_allowance("Services", fee)
        return await self._send(
            "Services",
            "register_service",
            service_id_to_bytes(service_id),
            name or service_id,
            rpc_type,
            metadata_uri,
            cu_per_relay,
            max_cu_per_relay,
            difficulty_bits,
        )

    async def set_service_params(
        self, service_id: str, cu_per_relay: int, max_cu_per_relay: int, difficulty_bits: int
    ) -> TxReceipt:
        """Owner: new parameters of the service, in force from the next session."""
        return await self._send(
            "Services",
            "set_service_params",
            service_id_to_bytes(service_id),
            cu_per_relay,
            max_cu_per_relay,
            difficulty_bits,
        )

    async def set_service_metadata(
        self, service_id: str, name: str, rpc_type: str, metadata_uri: str
    ) -> TxReceipt:
        return await self._send(
            "Services",
            "set_service_metadata",
            service_id_to_bytes(service_id),
            name,
            rpc_type,
            metadata_uri,
        )

    async def transfer_service(self, service_id: str, new_owner: bytes) -> TxReceipt:
        return await self._send(
            "Services", "transfer_service", service_id_to_bytes(service_id), _cs(new_owner)
        )

    async def propose_service_owner(self, service_id: str, new_owner: bytes) -> TxReceipt:
        """Owner: step one of the two-step transfer (``new_owner`` then accepts)."""
        return await self._send(
            "Services", "propose_service_owner", service_id_to_bytes(service_id), _cs(new_owner)
        )

    async def accept_service_owner(self, service_id: str) -> TxReceipt:
        return await self._send("Services", "accept_service_owner", service_id_to_bytes(service_id))

    async def service(self, service_id: str) -> ServiceInfo | None:
        raw = service_id_to_bytes(service_id)
        if not await self._call("Services", "is_registered", raw):
            return None
        owner, name, rpc_type, metadata_uri = _values(
            await self._call("Services", "service_info", raw)
        )
        return ServiceInfo(service_id, _addr(owner), str(name), str(rpc_type), str(metadata_uri))

    async def service_params(self, service_id: str, n: int) -> ServiceParams:
        v = _values(
            await self._call("Services", "service_params", service_id_to_bytes(service_id), n)
        )
        return ServiceParams(int(v[0]), int(v[1]), int(v[2]))

    async def services(self) -> list[str]:
        """Every registered service id, in registration order."""
        count = int(await self._call("Services", "service_count"))
        out: list[str] = []
        for i in range(count):
            sid = _sid(await self._call("Services", "service_at", i))
            if sid is not None:
                out.append(sid)
        return out

    # -- suppliers -------------------------------------------------------------------------

    async def stake_supplier(
        self, stake: int, services: Mapping[str, str], receipt_key: bytes
    ) -> TxReceipt:
        """Stake ``stake`` for ``services`` (service_id -> endpoint URL) with the ed25519
        ``receipt_key`` (32-byte public key). Approves the token transfer first."""
        if len(receipt_key) != 32:
            raise LedgerError("a receipt key is a 32-byte ed25519 public key")
        await self._ensure_allowance("Suppliers", stake)
        ids = [service_id_to_bytes(s) for s in services]
        return await self._send(
            "Suppliers", "stake_supplier", stake, ids, list(services.values()), receipt_key
        )

    async def top_up_supplier(self, amount: int) -> TxReceipt:
        await self._ensure_allowance("Suppliers", amount)
        return await self._send("Suppliers", "top_up_supplier", amount)

    async def set_endpoint(self, service_id: str, endpoint: str) -> TxReceipt:
        return await self._send(
            "Suppliers", "set_endpoint", service_id_to_bytes(service_id), endpoint
        )

    async def add_service(self, service_id: str, endpoint: str) -> TxReceipt:
        """Staked supplier: serve ``service_id`` too, from the next session."""
        return await self._send(
            "Suppliers", "add_service", service_id_to_bytes(service_id), endpoint
        )

    async def remove_service(self, service_id: str) -> TxReceipt:
        """Staked supplier: stop serving ``service_id`` from the next session."""
        return await self._send("Suppliers", "remove_service", service_id_to_bytes(service_id))

    async def rotate_receipt_key(self, receipt_key: bytes) -> TxReceipt:
        """Staked supplier: a new ed25519 receipt key, in force from the next session."""
        if len(receipt_key) != 32:
            raise LedgerError("a receipt key is a 32-byte ed25519 public key")
        return await self._send("Suppliers", "rotate_receipt_key", receipt_key)

    async def receipt_key_at(self, supplier: bytes, n: int) -> bytes | None:
        """``receipt_key(supplier, n)`` as the contract records it (None: no record)."""
        value = bytes(await self._call("Suppliers", "receipt_key_at", _cs(supplier), n))
        return None if value == _ZERO32 else value

    async def unstake_supplier(self) -> TxReceipt:
        return await self._send("Suppliers", "unstake_supplier")

    async def withdraw_supplier(self) -> TxReceipt:
        return await self._send("Suppliers", "withdraw_supplier")

    async def supplier(self, address: bytes | None = None) -> SupplierState:
        """The supplier's record (status NONE when it never staked or withdrew)."""
        who = address or self.address
        v = _values(await self._call("Suppliers", "supplier", _cs(who)))
        endpoints: dict[str, str] = {}
        for raw in _values(await self._call("Suppliers", "services_of", _cs(who))):
            sid = _sid(raw)
            if sid is not None:
                endpoints[sid] = str(await self._call("Suppliers", "endpoint", _cs(who), raw))
        return SupplierState(
            address=who,
            stake=int(v[0]),
            locked=int(v[1]),
            receipt_key=bytes(v[2]),
            status=StakeStatus(int(v[3])),
            unstake_session=int(v[4]),
            withdrawable_session=int(v[5]),
            open_claims=int(v[6]),
            endpoints=endpoints,
        )

    async def length(self, service_id: str, n: int) -> int:
        return int(await self._call("Suppliers", "length", service_id_to_bytes(service_id), n))

    async def occupant(self, service_id: str, position: int, n: int) -> bytes:
        return _addr(
            await self._call("Suppliers", "occupant", service_id_to_bytes(service_id), position, n)
        )

    # -- applications ----------------------------------------------------------------------

    async def stake_app(self, service_id: str, stake: int) -> TxReceipt:
        """Stake the account as an application of ``service_id`` (from the next session)."""
        await self._ensure_allowance("Apps", stake)
        return await self._send("Apps", "stake_app", service_id_to_bytes(service_id), stake)

    async def top_up_app(self, amount: int) -> TxReceipt:
        await self._ensure_allowance("Apps", amount)
        return await self._send("Apps", "top_up_app", amount)

    async def unstake_app(self) -> TxReceipt:
        return await self._send("Apps", "unstake_app")

    async def withdraw_app(self) -> TxReceipt:
        return await self._send("Apps", "withdraw_app")

    async def delegate(self, gateway: bytes) -> TxReceipt:
        return await self._send("Apps", "delegate", _cs(gateway))

    async def undelegate(self, gateway: bytes) -> TxReceipt:
        return await self._send("Apps", "undelegate", _cs(gateway))

    async def app(self, address: bytes | None = None) -> AppState:
        who = address or self.address
        v = _values(await self._call("Apps", "app", _cs(who)))
        delegations = tuple(
            _addr(g) for g in _values(await self._call("Apps", "delegations", _cs(who)))
        )
        return AppState(
            address=who,
            service_id=_sid(v[0]),
            stake=int(v[1]),
            status=StakeStatus(int(v[2])),
            unstake_session=int(v[3]),
            withdrawable_session=int(v[4]),
            open_claims=int(v[5]),
            delegations=delegations,
        )

    async def app_stake(self, app: bytes, n: int) -> int:
        return int(await self._call("Apps", "app_stake", _cs(app), n))

    async def delegated(self, app: bytes, gateway: bytes, n: int) -> bool:
        return bool(await self._call("Apps", "delegated", _cs(app), _cs(gateway), n))

    async def signer_ok(self, app: bytes, signer: bytes, n: int) -> bool:
        """``signer_ok(app, signer, n)`` of DESIGN §3.2, as the contract computes it."""
        return bool(await self._call("Apps", "signer_ok", _cs(app), _cs(signer), n))

    async def gateway_stake_at(self, gateway: bytes, n: int) -> tuple[bool, int]:
        """``(staked(g, n), epoch(g, n))`` from the gateway's stake records."""
        staked, epoch = _values(await self._call("Apps", "gateway_stake_at", _cs(gateway), n))
        return bool(staked), int(epoch)

    # -- gateways --------------------------------------------------------------------------

    async def stake_gateway(self, stake: int, url: str) -> TxReceipt:
        await self._ensure_allowance("Apps", stake)
        return await self._send("Apps", "stake_gateway", stake, url)

    async def top_up_gateway(self, amount: int) -> TxReceipt:
        await self._ensure_allowance("Apps", amount)
        return await self._send("Apps", "top_up_gateway", amount)

    async def set_gateway_url(self, url: str) -> TxReceipt:
        return await self._send("Apps", "set_gateway_url", url)

    async def unstake_gateway(self) -> TxReceipt:
        return await self._send("Apps", "unstake_gateway")

    async def withdraw_gateway(self) -> TxReceipt:
        return await self._send("Apps", "withdraw_gateway")

    async def gateway(self, address: bytes | None = None) -> GatewayState:
        who = address or self.address
        v = _values(await self._call("Apps", "gateway", _cs(who)))
        return GatewayState(
            address=who,
            stake=int(v[0]),
            url=str(v[1]),
            status=StakeStatus(int(v[2])),
            unstake_session=int(v[3]),
            withdrawable_session=int(v[4]),
        )

    # -- claims, proofs, settlement --------------------------------------------------------

    async def claim(
        self, app: bytes, service_id: str, n: int, slots: Sequence[int], root48: bytes
    ) -> ClaimReceipt:
        """Claim the work of session ``n`` for ``app`` on ``service_id`` (caller = supplier)."""
        receipt = await self._send(
            "Settlement",
            "claim",
            _cs(app),
            service_id_to_bytes(service_id),
            n,
            list(slots),
            root48,
        )
        for event in self.decode_events(receipt, "Claimed"):
            return ClaimReceipt(
                claim_id=bytes(event.args["claim_id"]),
                claimed=int(event.args["claimed"]),
                lock=int(event.args["lock"]),
                receipt=receipt,
            )
        raise LedgerError("claim: the transaction emitted no Claimed event")

    async def prove(self, claim_id: bytes, leaf: bytes, siblings: Sequence[Node]) -> TxReceipt:
        """Submit the weighted proof of a claim (siblings root first)."""
        nodes = [(s.digest, s.sum, s.count) for s in siblings]
        return await self._send("Settlement", "prove", claim_id, leaf, nodes)

    async def settle(self, claim_id: bytes) -> SettleResult:
        """Settle a claim after its proof window (anyone); valid → paid, void → slashed."""
        receipt = await self._send("Settlement", "settle", claim_id)
        for event in self.decode_events(receipt):
            a = event.args
            if event.name == "Settled":
                return SettleResult(
                    claim_id=claim_id,
                    valid=True,
                    paid=int(a["paid"]),
                    supplier_share=int(a["supplier_share"]),
                    owner_share=int(a["owner_share"]),
                    treasury_share=int(a["treasury_share"]),
                    receipt=receipt,
                )
            if event.name == "Voided":
                return SettleResult(
                    claim_id=claim_id,
                    valid=False,
                    slashed=int(a["slashed"]),
                    bounty=int(a["bounty"]),
                    burned=int(a["burned"]),
                    receipt=receipt,
                )
        raise LedgerError("settle: the transaction emitted neither Settled nor Voided")

    async def claim_state(self, claim_id: bytes) -> ClaimState | None:
        """The claim's record, or None when no such claim exists."""
        v = _values(await self._call("Settlement", "claims", claim_id))
        status = ClaimStatus(int(v[11]))
        if status is ClaimStatus.NONE:
            return None
        return ClaimState(
            claim_id=claim_id,
            supplier=_addr(v[0]),
            app=_addr(v[1]),
            service_id=_sid(v[2]) or "",
            session=int(v[3]),
            n_slots=int(v[4]),
            root_digest=bytes(v[5]),
            sum=int(v[6]),
            count=int(v[7]),
            claimed=int(v[8]),
            lock=int(v[9]),
            seed=bytes(v[10]),
            status=status,
        )

    async def proof_required(self, claim_id: bytes) -> bool:
        return bool(await self._call("Settlement", "proof_required", claim_id))

    async def challenge(self, claim_id: bytes) -> int:
        """The challenge ``r`` of a claim (needs H_c recorded)."""
        return int(await self._call("Settlement", "challenge_of", claim_id))

    async def domain_separator(self) -> bytes:
        return bytes(await self._call("Settlement", "domain_separator"))
