"""Test helpers for the settlement contracts: a deployed chain driven with web3.py directly.

Accounts: anvil's dev accounts are unlocked; any other address is impersonated
(``anvil_impersonateAccount``) and funded with ETH, so tests can act as arbitrary suppliers.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import ContractLogicError

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess
from ledger.artifacts import CONTRACT_NAMES, load_artifact
from ledger.bootstrap import Network
from ledger.deploy import TOKEN_UNIT, Deployment, DeployParams
from ledger.network import deploy_network
from protocol.encoding import service_id_to_bytes
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import (
    Domain,
    RelayHeader,
    encode_leaf,
    relay_key,
    request_digest,
    response_hash,
    sign_receipt,
    sign_request,
    value_hash,
)
from protocol.trie import SumTrie

__all__ = [
    "Chain",
    "LedgerNet",
    "Raw",
    "RelayFactory",
    "dev_key",
    "leaf_trie",
    "sid",
    "trie_item",
]

TOKEN = TOKEN_UNIT


def dev_key(i: int) -> AccountKey:
    return AccountKey(bytes.fromhex(DEV_ACCOUNTS[i][1][2:]))


def sid(service_id: str) -> bytes:
    return service_id_to_bytes(service_id)


def cs(address: bytes | str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


@dataclass(frozen=True)
class LedgerNet:
    """A chain and the network deployed on it (the ``ledger_net`` fixture: service ``eth``,
    nothing staked, rolled back after each test)."""

    anvil: AnvilProcess
    net: Network
    head: int  # the block number right after deployment (every test starts there)


class Chain:
    """One deployment on one anvil, with helpers to transact and expect reverts."""

    def __init__(self, anvil: AnvilProcess, params: DeployParams | None = None) -> None:
        self.anvil = anvil
        self.params = params or DeployParams()
        self.w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
        self.deployment: Deployment = deploy_network(anvil.url, dev_key(0).private_key, self.params)
        self.deployer = cs(DEV_ACCOUNTS[0][0])
        self.c: dict[str, Any] = {
            name: self.w3.eth.contract(
                address=cs(self.deployment.contracts[name]), abi=load_artifact(name).abi
            )
            for name in CONTRACT_NAMES
        }
        self.shape = self.deployment.shape
        self.B0 = self.deployment.genesis_block
        self._impersonated: set[str] = {cs(a) for a, _ in DEV_ACCOUNTS}

    # -- plumbing --------------------------------------------------------------------------
    def account(self, address: bytes | str) -> str:
        addr = cs(address)
        if addr not in self._impersonated:
            self.anvil.rpc("anvil_impersonateAccount", [addr])
            self.anvil.rpc("anvil_setBalance", [addr, hex(10**21)])
            self._impersonated.add(addr)
        return addr

    def send(self, fn: Any, sender: bytes | str) -> Any:
        frm = self.account(sender)
        gas = fn.estimate_gas({"from": frm})
        tx_hash = fn.transact({"from": frm, "gas": gas * 5 // 4 + 100_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, receipt
        return receipt

    def reverts(self, fn: Any, sender: bytes | str, reason: str) -> None:
        frm = self.account(sender)
        try:
            fn.estimate_gas({"from": frm})
        except ContractLogicError as exc:
            assert reason in str(exc), f"expected {reason!r}, got {exc}"
            return
        raise AssertionError(f"expected revert {reason!r}")

    def fn(self, contract: str, name: str, *args: Any) -> Any:
        return getattr(self.c[contract].functions, name)(*args)

    def call(self, contract: str, name: str, *args: Any) -> Any:
        return self.fn(contract, name, *args).call()

    def tx(self, contract: str, name: str, sender: bytes | str, *args: Any) -> Any:
        return self.send(self.fn(contract, name, *args), sender)

    def claim(
        self,
        supplier: bytes | str,
        app: bytes,
        n: int,
        slots: list[int],
        root: bytes,
        service: str = "eth",
    ) -> Any:
        """``Settlement.claim`` sent by ``supplier`` for ``app``'s session ``n``."""
        return self.tx("Settlement", "claim", supplier, cs(app), sid(service), n, slots, root)

    def events(self, contract: str, event: str, receipt: Any) -> list[Any]:
        ev = getattr(self.c[contract].events, event)()
        return list(ev.process_receipt(receipt))

    def snapshot(self) -> str:
        return str(self.anvil.rpc("evm_snapshot"))

    def revert_to(self, snap: str) -> None:
        assert self.anvil.rpc("evm_revert", [snap]) is True

    # -- time ------------------------------------------------------------------------------
    def block(self) -> int:
        return self.anvil.block_number()

    def session(self) -> int:
        return int(self.call("Sessions", "current_session"))

    def windows(self, n: int) -> tuple[int, ...]:
        return tuple(self.call("Sessions", "windows", n))

    def mine_to(self, height: int) -> None:
        """Mine until the latest block is ``height`` (calls are estimated against it; the
        next transaction lands in ``height + 1``)."""
        now = self.block()
        if height > now:
            self.anvil.mine(height - now)

    def checkpoint(self) -> None:
        self.tx("Sessions", "checkpoint", self.deployer)

    # -- tokens ----------------------------------------------------------------------------
    def fund(self, to: bytes | str, amount: int) -> None:
        self.tx("Token", "transfer", self.deployer, self.account(to), amount)

    def approve(self, owner: bytes | str, spender: str, amount: int) -> None:
        self.tx("Token", "approve", owner, self.deployment.contracts[spender], amount)

    def balance(self, who: bytes | str) -> int:
        return int(self.call("Token", "balanceOf", cs(who)))

    # -- actors ----------------------------------------------------------------------------
    def register(
        self, service: str, owner: bytes | str, cu: int = 1, max_cu: int = 100, d: int = 0
    ) -> Any:
        self.fund(owner, self.params.service_registration_fee)
        self.approve(owner, "Services", self.params.service_registration_fee)
        return self.tx(
            "Services", "register_service", owner, sid(service), service, "evm", "", cu, max_cu, d
        )

    def stake_supplier(
        self,
        who: bytes | str,
        services: Sequence[str],
        amount: int | None = None,
        receipt_key: bytes | None = None,
    ) -> Any:
        amount = amount if amount is not None else self.params.min_stake_supplier
        self.fund(who, amount)
        self.approve(who, "Suppliers", amount)
        key = receipt_key or hashlib.sha256(bytes.fromhex(cs(who)[2:])).digest()
        return self.tx(
            "Suppliers",
            "stake_supplier",
            who,
            amount,
            [sid(s) for s in services],
            [f"http://127.0.0.1:1/{s}" for s in services],
            key,
        )

    def stake_app(self, who: bytes | str, service: str, amount: int) -> Any:
        self.fund(who, amount)
        self.approve(who, "Apps", amount)
        return self.tx("Apps", "stake_app", who, sid(service), amount)

    def stake_gateway(self, who: bytes | str, amount: int | None = None) -> Any:
        amount = amount if amount is not None else self.params.min_stake_gateway
        self.fund(who, amount)
        self.approve(who, "Apps", amount)
        return self.tx("Apps", "stake_gateway", who, amount, "http://127.0.0.1:2")

    def domain(self) -> Domain:
        return Domain(self.deployment.chain_id, bytes.fromhex(self.deployment.settlement[2:]))


@dataclass
class RelayFactory:
    """Signs real relays with protocol/: header, request signature, receipt, leaf."""

    domain: Domain
    service_id: str
    app: bytes
    supplier: bytes
    session: int
    receipt_key: ReceiptKey

    def leaf(
        self,
        signer: AccountKey,
        cu: int = 1,
        max_index: int = 0,
        index: int = 0,
        body: bytes = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
        sign: Callable[[bytes, AccountKey], bytes] | None = None,
        header_changes: dict[str, Any] | None = None,
    ) -> tuple[bytes, bytes]:
        """(leaf bytes, relay_key)."""
        fields: dict[str, Any] = {
            "version": 1,
            "service_id": self.service_id,
            "application": self.app,
            "signer": signer.address,
            "supplier": self.supplier,
            "session": self.session,
            "payload_hash": hashlib.sha256(body).digest(),
            "nonce": os.urandom(16),
            "max_index": max_index,
            "compute_units": cu,
        }
        fields.update(header_changes or {})
        header = RelayHeader(**fields)
        digest = request_digest(header, self.domain)
        sig = (sign or sign_request)(digest, signer)
        rh = response_hash(200, b'{"jsonrpc":"2.0","id":1,"result":"0x1"}')
        receipt = sign_receipt(self.receipt_key, digest, index, rh)
        leaf = encode_leaf(header.encode(), sig, index, rh, receipt)
        return leaf, relay_key(digest, index)


def trie_item(leaf: bytes, key: bytes, weight: int) -> tuple[bytes, bytes, int]:
    return key, value_hash(leaf), weight


def leaf_trie(leaves: Iterable[tuple[bytes, bytes]]) -> SumTrie:
    """The sum trie of ``(leaf, relay key)`` pairs, each weighted by its compute units."""
    return SumTrie.build(
        [trie_item(leaf, key, int.from_bytes(leaf[153:157], "big")) for leaf, key in leaves]
    )


def _abi_type(item: dict[str, Any]) -> str:
    t = str(item["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){t[5:]}"
    return t


class Raw:
    """Fast transactions and calls over plain JSON-RPC (no web3 middleware): for tests that
    send hundreds of transactions. Senders must be unlocked or impersonated."""

    def __init__(self, anvil: AnvilProcess) -> None:
        self.anvil = anvil
        self._conn = http.client.HTTPConnection("127.0.0.1", anvil.port, timeout=30)
        self._id = 0
        self._fns: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}

    def _fn(self, contract: str, name: str) -> tuple[bytes, list[str], list[str]]:
        key = (contract, name)
        if key not in self._fns:
            (item,) = [
                x
                for x in load_artifact(contract).abi
                if x.get("type") == "function" and x.get("name") == name
            ]
            ins = [_abi_type(i) for i in item["inputs"]]
            outs = [_abi_type(o) for o in item["outputs"]]
            sel = Web3.keccak(text=f"{name}({','.join(ins)})")[:4]
            self._fns[key] = (bytes(sel), ins, outs)
        return self._fns[key]

    def rpc(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call on a kept-alive connection."""
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(self._conn.getresponse().read())
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def data(self, contract: str, name: str, *args: Any) -> str:
        sel, ins, _ = self._fn(contract, name)
        return "0x" + (sel + abi_encode(ins, list(args))).hex()

    def send(self, sender: str, to: str, data: str, gas: int = 3_000_000) -> dict[str, Any]:
        tx = {"from": sender, "to": to, "data": data, "gas": hex(gas)}
        receipt = self.receipt(self.rpc("eth_sendTransaction", [tx]))
        assert receipt["status"] == "0x1", (tx, receipt)
        return receipt

    def send_async(self, sender: str, to: str, data: str, gas: int = 3_000_000) -> str:
        """Send without waiting (automine off): the transaction hash."""
        tx = {"from": sender, "to": to, "data": data, "gas": hex(gas)}
        return str(self.rpc("eth_sendTransaction", [tx]))

    def receipt(self, tx_hash: object) -> dict[str, Any]:
        """The receipt, once the (automined) transaction is in a block."""
        for _ in range(1000):
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if isinstance(receipt, dict):
                return receipt
            time.sleep(0.002)
        raise AssertionError(f"no receipt for {tx_hash}")

    def tx(self, sender: str, contract: str, address: str, name: str, *args: Any) -> None:
        self.send(sender, address, self.data(contract, name, *args))

    def call(self, contract: str, address: str, name: str, *args: Any) -> Any:
        _, _, outs = self._fn(contract, name)
        raw = self.rpc("eth_call", [{"to": address, "data": self.data(contract, name, *args)}])
        assert isinstance(raw, str)
        values = abi_decode(outs, bytes.fromhex(raw[2:]))
        return values[0] if len(values) == 1 else values

    def deploy(self, sender: str, contract: str, *args: Any) -> str:
        art = load_artifact(contract)
        (ctor,) = [x for x in art.abi if x.get("type") == "constructor"] or [{"inputs": []}]
        types = [_abi_type(i) for i in ctor["inputs"]]
        data = "0x" + (art.bytecode + abi_encode(types, list(args))).hex()
        tx = {"from": sender, "data": data, "gas": hex(15_000_000)}
        receipt = self.receipt(self.rpc("eth_sendTransaction", [tx]))
        assert receipt["status"] == "0x1", receipt
        return str(receipt["contractAddress"])
