"""Deploy and wire the settlement contracts on any EVM chain, resumably (DESIGN §3.1).

:func:`deploy_network` is the one code path behind ``relaynet network deploy``, the devnet's
bootstrap, the test chains and the gas bench. It runs the :func:`plan` — six ``CREATE``\\ s (in
:data:`~ledger.artifacts.CONTRACT_NAMES` order), the three wiring calls, and optionally the
proposal of a new admin — one transaction at a time from the deployer's key:

- **Validated first**: the parameters are checked by the protocol's validator
  (:func:`protocol.settlement.validate_params`) before the first transaction.
- **Recorded before broadcast**: each transaction is signed, then ``(step, deployer nonce, tx
  hash)`` is written to the journal (``<out>.journal.json``, atomically), then broadcast.
- **Resumable**: a rerun with the same journal derives each recorded ``CREATE`` address from the
  deployer and the nonce and looks for code there; a recorded transaction that is neither mined
  nor pending is re-sent *with the same nonce*, so at most one of its versions can ever be mined.
  A kill between broadcast and record therefore never deploys a contract twice. Wiring steps read
  the state first and send only what is missing.
- **Checked**: the code at every address is compared with the committed artifact — the runtime
  (the code minus its immutables) must appear in the creation bytecode, and the immutables
  appended to it must equal the values the constructor arguments give.
- **Dry run**: :func:`dry_run` lists the transactions with their gas and cost and sends nothing.

The result is a :class:`~ledger.deploy.Deployment` (chain id, addresses, ``B0`` and the shape;
``extra["deploy_block"]`` is the block of the first contract). The EIP-712 domain is computed
from it, never stored.

``RELAYNET_DEPLOY_FAULT`` (tests only) makes the process exit abruptly (``os._exit``) around
the N-th broadcast: ``after-broadcast:N`` just after sending it, ``before-broadcast:N`` after
recording it but before sending.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams

from ledger.artifacts import CONTRACT_NAMES, load_artifact
from ledger.deploy import DeployError, Deployment, DeployParams
from protocol.errors import ProtocolError
from protocol.settlement import ParamSet, validate_params

__all__ = [
    "FAULT_ENV",
    "PlannedTx",
    "check_params",
    "code_problem",
    "create_address",
    "deploy_network",
    "dry_run",
    "journal_path",
    "plan",
]

to_checksum_address = Web3.to_checksum_address
keccak = Web3.keccak

FAULT_ENV = "RELAYNET_DEPLOY_FAULT"
FAULT_EXIT_CODE = 75
# Gas of a wiring call when it cannot be estimated before the contracts exist (dry run): one
# storage slot from zero, one event, call overhead — an upper bound, shown as such.
_WIRING_GAS_BOUND = 80_000


def create_address(deployer: bytes | str, nonce: int) -> str:
    """The address a ``CREATE`` from ``deployer`` at ``nonce`` makes (keccak(rlp([a, n])))."""
    raw = bytes.fromhex(deployer[2:]) if isinstance(deployer, str) else deployer
    return to_checksum_address(keccak(rlp.encode([raw, nonce]))[12:])


def check_params(params: DeployParams) -> None:
    """The protocol's validator on the whole set (raises ``ProtocolError`` with the rule)."""
    e = params.economic_params()
    validate_params(
        ParamSet(
            **params.shape_fields(),
            min_stake_supplier=e.min_stake_supplier,
            min_stake_app=e.min_stake_app,
            min_stake_gateway=e.min_stake_gateway,
            unbonding_sessions=e.unbonding_sessions,
            max_delegations=e.max_delegations,
            max_services_per_supplier=e.max_services_per_supplier,
            proof_probability_bps=e.proof_probability_bps,
            slash_multiplier_bps=e.slash_multiplier_bps,
            settle_bounty_bps=e.settle_bounty_bps,
            cu_price=e.cu_price,
            mint_shares=tuple(e.mint_shares),  # type: ignore[arg-type]
            max_stream_relays=e.max_stream_relays,
        )
    )


# -- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTx:
    """One step: ``create`` of ``contract`` with ``args``, or ``call`` of ``contract.function``
    with ``args``. ``done`` reads the chain: True when the step's effect is already there
    (calls only; creates are found through the journal)."""

    key: str
    kind: str  # "create" | "call"
    contract: str
    args: tuple[Any, ...]
    function: str = ""
    done: Callable[[Web3, Mapping[str, str]], bool] | None = field(default=None, compare=False)


def plan(params: DeployParams, deployer: str, admin: str | None = None) -> list[PlannedTx]:
    """The steps of a deployment, in order. Constructor arguments that are addresses of earlier
    contracts are written ``"@Name"`` and resolved as the steps run."""
    treasury = to_checksum_address(params.treasury) if params.treasury else deployer
    steps = [
        PlannedTx("create Token", "create", "Token", (params.initial_supply,)),
        PlannedTx(
            "create Sessions",
            "create",
            "Sessions",
            (
                "@Token",
                treasury,
                params.L,
                params.G,
                params.CO,
                params.CW,
                params.PO,
                params.PW,
                params.S,
                params.econ_tuple(),
            ),
        ),
        PlannedTx("create Services", "create", "Services", ("@Sessions", "@Token")),
        PlannedTx("create Suppliers", "create", "Suppliers", ("@Sessions", "@Services", "@Token")),
        PlannedTx("create Apps", "create", "Apps", ("@Sessions", "@Services", "@Token")),
        PlannedTx(
            "create Settlement",
            "create",
            "Settlement",
            ("@Sessions", "@Services", "@Suppliers", "@Apps", "@Token"),
        ),
        PlannedTx(
            "wire Token.set_minter",
            "call",
            "Token",
            ("@Settlement",),
            "set_minter",
            _wired("Token", "minter"),
        ),
        PlannedTx(
            "wire Suppliers.set_settlement",
            "call",
            "Suppliers",
            ("@Settlement",),
            "set_settlement",
            _wired("Suppliers", "settlement"),
        ),
        PlannedTx(
            "wire Apps.set_settlement",
            "call",
            "Apps",
            ("@Settlement",),
            "set_settlement",
            _wired("Apps", "settlement"),
        ),
    ]
    if admin is not None and to_checksum_address(admin) != deployer:
        target = to_checksum_address(admin)
        steps.append(
            PlannedTx(
                "propose admin",
                "call",
                "Sessions",
                (target,),
                "propose_admin",
                _admin_proposed(target),
            )
        )
    return steps


def _contract(w3: Web3, addresses: Mapping[str, str], name: str) -> Any:
    address = to_checksum_address(addresses[name])
    return w3.eth.contract(address=address, abi=load_artifact(name).abi)


def _wired(name: str, getter: str) -> Callable[[Web3, Mapping[str, str]], bool]:
    def done(w3: Web3, addresses: Mapping[str, str]) -> bool:
        current = str(getattr(_contract(w3, addresses, name).functions, getter)().call())
        if int(current, 16) == 0:
            return False
        if current.lower() != addresses["Settlement"].lower():
            raise DeployError(
                f"{name}.{getter} is already {current}, not this deployment's Settlement "
                f"{addresses['Settlement']}: the contracts were wired by someone else"
            )
        return True

    return done


def _admin_proposed(target: str) -> Callable[[Web3, Mapping[str, str]], bool]:
    def done(w3: Web3, addresses: Mapping[str, str]) -> bool:
        sessions = _contract(w3, addresses, "Sessions").functions
        current = str(sessions.admin().call()).lower()
        pending = str(sessions.pending_admin().call()).lower()
        return target.lower() in (current, pending)

    return done


def _resolve(args: tuple[Any, ...], addresses: Mapping[str, str]) -> tuple[Any, ...]:
    return tuple(addresses[a[1:]] if isinstance(a, str) and a.startswith("@") else a for a in args)


# -- code checks ---------------------------------------------------------------------------


def expected_immutables(
    name: str, addresses: Mapping[str, str], params: DeployParams, genesis_block: int
) -> list[int]:
    """The immutables ``name``'s constructor stores, in declaration order, as words."""

    def a(n: str) -> int:
        return int(addresses[n], 16)

    P = params.P
    if name == "Token":
        return []
    if name == "Sessions":
        return [genesis_block, params.L, params.G, params.CO, params.CW, params.PO, params.PW,
                params.S, P]  # fmt: skip
    if name == "Services":
        return [a("Sessions"), a("Token")]
    if name in ("Suppliers", "Apps"):
        return [a("Sessions"), a("Services"), a("Token")]
    if name == "Settlement":
        return [a("Sessions"), a("Services"), a("Suppliers"), a("Apps"), a("Token"),
                genesis_block, params.L, params.L - 1 + params.G + params.CO, params.CW,
                params.PO, params.PW, params.S, P]  # fmt: skip
    raise KeyError(name)


def code_problem(name: str, code: bytes, immutables: list[int]) -> str | None:
    """Why ``code`` is not artifact ``name`` deployed with these immutables (None: it is)."""
    if not code:
        return f"no code at the {name} address"
    tail = 32 * len(immutables)
    if len(code) <= tail:
        return f"the {name} code is too short to be the artifact"
    runtime, data = code[: len(code) - tail], code[len(code) - tail :]
    if runtime not in load_artifact(name).bytecode:
        return f"the {name} code is not the committed artifact's runtime"
    want = b"".join(v.to_bytes(32, "big") for v in immutables)
    if data != want:
        return f"the {name} immutables differ from its constructor arguments"
    return None


# -- the journal ---------------------------------------------------------------------------


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal.json")


def _params_doc(params: DeployParams) -> dict[str, Any]:
    doc = asdict(params)
    doc["treasury"] = None if params.treasury is None else "0x" + params.treasury.hex()
    doc["mint_shares"] = list(params.mint_shares)
    return doc


class _Journal:
    """``{"chain_id", "deployer", "params", "steps": {key: {"nonce", "tx"}}}``, kept on disk
    (atomic replace + fsync) when a path is given, in memory otherwise."""

    def __init__(self, path: Path | None, chain_id: int, deployer: str, params: DeployParams):
        self.path = path
        self.doc: dict[str, Any] = {
            "chain_id": chain_id,
            "deployer": deployer,
            "params": _params_doc(params),
            "steps": {},
        }
        if path is not None and path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise DeployError(f"cannot read the deploy journal {path}: {exc}") from None
            for k in ("chain_id", "deployer", "params"):
                if old.get(k) != self.doc[k]:
                    raise DeployError(
                        f"the deploy journal {path} is for another {k.replace('_', ' ')} — "
                        "use another --out or remove the journal to start over"
                    )
            self.doc["steps"] = dict(old.get("steps", {}))

    def get(self, key: str) -> dict[str, Any] | None:
        rec = self.doc["steps"].get(key)
        return dict(rec) if rec else None

    def record(self, key: str, nonce: int, tx_hash: str, **extra: Any) -> None:
        self.doc["steps"][key] = {"nonce": nonce, "tx": tx_hash, **extra}
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.doc, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


# -- running -------------------------------------------------------------------------------


class _Fault:
    def __init__(self) -> None:
        spec = os.environ.get(FAULT_ENV, "")
        self.where, _, n = spec.partition(":")
        self.at = int(n) if n.isdigit() else 0
        self.count = 0

    def check(self, where: str) -> None:
        if self.at and where == self.where and self.count == self.at:
            os._exit(FAULT_EXIT_CODE)


@dataclass
class _Run:
    w3: Web3
    key: bytes
    params: DeployParams
    journal: _Journal
    confirmations: int
    log: Callable[[str], None]
    receipt_timeout: float
    addresses: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    fault: _Fault = field(default_factory=_Fault)

    def __post_init__(self) -> None:
        self.account = Account.from_key(self.key)
        self.me = str(self.account.address)
        self.chain_id = int(self.w3.eth.chain_id)

    # one transaction ---------------------------------------------------------------------

    def _build(self, step: PlannedTx, nonce: int) -> TxParams:
        args = _resolve(step.args, self.addresses)
        base: TxParams = {"from": self.me, "nonce": nonce, "chainId": self.chain_id}  # type: ignore[typeddict-item]
        art = load_artifact(step.contract)
        if step.kind == "create":
            tx = (
                self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
                .constructor(*args)
                .build_transaction(base)
            )
        else:
            fn = getattr(_contract(self.w3, self.addresses, step.contract).functions, step.function)
            tx = fn(*args).build_transaction(base)
        # Estimates run against the latest block; checkpoints written by the mined block may
        # cost more, so leave headroom.
        tx["gas"] = int(tx["gas"]) * 5 // 4 + 100_000
        built: TxParams = tx
        return built

    def _send(self, step: PlannedTx, nonce: int) -> str:
        signed = self.account.sign_transaction(self._build(step, nonce))
        tx_hash = "0x" + bytes(signed.hash).hex()
        self.journal.record(step.key, nonce, tx_hash)
        self.fault.count += 1
        self.fault.check("before-broadcast")
        self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.fault.check("after-broadcast")
        self.log(f"sent {step.key}: nonce {nonce}, transaction {tx_hash}")
        return tx_hash

    def _receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _in_pool(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            return True
        except TransactionNotFound:
            return False

    def _wait(self, step: PlannedTx, tx_hash: str) -> Any:
        deadline = time.monotonic() + self.receipt_timeout
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                break
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{step.key}: transaction {tx_hash} not mined within "
                    f"{self.receipt_timeout:.0f}s — rerun the same command to resume"
                )
            time.sleep(0.2)
        if receipt["status"] != 1:
            raise DeployError(f"{step.key}: transaction {tx_hash} reverted")
        want = int(receipt["blockNumber"]) + self.confirmations - 1
        while int(self.w3.eth.block_number) < want:
            if time.monotonic() > deadline:
                raise DeployError(f"{step.key}: fewer than {self.confirmations} confirmations")
            time.sleep(0.5)
        return receipt

    def _resume(self, step: PlannedTx, rec: dict[str, Any]) -> Any:
        """A recorded transaction: its receipt, or (not mined, not pending, nonce still free)
        the same nonce re-signed and re-sent."""
        receipt = self._receipt(rec["tx"])
        if receipt is None and self._in_pool(rec["tx"]):
            return self._wait(step, rec["tx"])
        if receipt is None:
            used = int(self.w3.eth.get_transaction_count(self.me, "latest"))  # type: ignore[arg-type]
            if used > rec["nonce"]:
                raise DeployError(
                    f"{step.key}: nonce {rec['nonce']} of the deployer was used by another "
                    f"transaction than the recorded {rec['tx']} — resolve by hand"
                )
            self.log(f"{step.key}: recorded transaction never arrived; re-sending nonce "
                     f"{rec['nonce']}")  # fmt: skip
            return self._wait(step, self._send(step, int(rec["nonce"])))
        return self._wait(step, rec["tx"])

    # one step ----------------------------------------------------------------------------

    def create(self, step: PlannedTx) -> None:
        rec = self.journal.get(step.key)
        if rec is not None:
            address = create_address(self.me, int(rec["nonce"]))
            if not self.w3.eth.get_code(address):  # type: ignore[arg-type]
                self._resume(step, rec)
            self.log(f"{step.contract} at {address} (nonce {rec['nonce']}, found)")
        else:
            nonce = int(self.w3.eth.get_transaction_count(self.me, "pending"))  # type: ignore[arg-type]
            address = create_address(self.me, nonce)
            if self.w3.eth.get_code(address):  # type: ignore[arg-type]
                raise DeployError(f"{address} (deployer nonce {nonce}) already holds code")
            self._wait(step, self._send(step, nonce))
            self.log(f"{step.contract} at {address} (nonce {nonce})")
        self.addresses[step.contract] = address
        rec = self.journal.get(step.key)
        assert rec is not None
        receipt = self._receipt(rec["tx"])
        if receipt is None or receipt["contractAddress"] is None:
            raise DeployError(f"{step.key}: no receipt for the recorded {rec['tx']}")
        if receipt["contractAddress"].lower() != address.lower():
            raise DeployError(f"{step.key}: {rec['tx']} created another address")
        self.blocks[step.contract] = int(receipt["blockNumber"])

    def call(self, step: PlannedTx) -> None:
        assert step.done is not None
        if step.done(self.w3, self.addresses):
            self.log(f"{step.key}: already done")
            return
        rec = self.journal.get(step.key)
        if rec is not None:
            self._resume(step, rec)
        else:
            nonce = int(self.w3.eth.get_transaction_count(self.me, "pending"))  # type: ignore[arg-type]
            self._wait(step, self._send(step, nonce))
        if not step.done(self.w3, self.addresses):
            raise DeployError(f"{step.key}: mined, but the state does not show it")
        self.log(f"{step.key}: done")

    def verify(self) -> None:
        sessions = _contract(self.w3, self.addresses, "Sessions")
        genesis = int(sessions.functions.genesis_block().call())
        if genesis != self.blocks["Sessions"]:
            raise DeployError("Sessions.genesis_block is not the block that created it")
        for name in CONTRACT_NAMES:
            code = bytes(self.w3.eth.get_code(self.addresses[name]))  # type: ignore[arg-type]
            imm = expected_immutables(name, self.addresses, self.params, genesis)
            problem = code_problem(name, code, imm)
            if problem:
                raise DeployError(f"{problem} ({self.addresses[name]})")


def deploy_network(
    rpc_url: str,
    deployer_private_key: bytes,
    params: DeployParams | None = None,
    *,
    journal: Path | None = None,
    admin: str | None = None,
    confirmations: int = 1,
    log: Callable[[str], None] = lambda _line: None,
    receipt_timeout: float = 120.0,
) -> Deployment:
    """Deploy, wire, check (see the module doc); ``journal`` None keeps the record in memory
    (a fresh devnet chain), else a rerun resumes from it."""
    params = params or DeployParams()
    try:
        check_params(params)
    except ProtocolError as exc:
        raise DeployError(f"parameters refused: {exc.message}") from None
    if confirmations < 1:
        raise DeployError("confirmations must be at least 1")
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    me = str(Account.from_key(deployer_private_key).address)
    run = _Run(
        w3=w3,
        key=deployer_private_key,
        params=params,
        journal=_Journal(journal, int(w3.eth.chain_id), me, params),
        confirmations=confirmations,
        log=log,
        receipt_timeout=receipt_timeout,
    )
    for step in plan(params, me, admin):
        if step.kind == "create":
            run.create(step)
        else:
            run.call(step)
    run.verify()
    genesis = run.blocks["Sessions"]
    return Deployment(
        chain_id=run.chain_id,
        rpc_url=rpc_url,
        contracts={n: run.addresses[n] for n in CONTRACT_NAMES},
        token=run.addresses["Token"],
        settlement=run.addresses["Settlement"],
        genesis_block=genesis,
        shape=params.session_shape(genesis),
        deployer=me,
        extra={"deploy_block": run.blocks["Token"]},
    )


# -- dry run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRunLine:
    step: str
    nonce: int
    address: str  # the CREATE address, or the contract called
    gas: int
    bound: bool  # gas is an upper bound, not an estimate


def dry_run(
    rpc_url: str, deployer: str, params: DeployParams | None = None, admin: str | None = None
) -> tuple[list[DryRunLine], int, int]:
    """The transactions a fresh deployment would send, with gas; and the gas price (wei) and
    the deployer's balance. Nothing is sent. Creations are estimated against the chain with
    the earlier contracts' code put in place by a state override (when the node supports it);
    wiring calls are given an upper bound."""
    params = params or DeployParams()
    try:
        check_params(params)
    except ProtocolError as exc:
        raise DeployError(f"parameters refused: {exc.message}") from None
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    me = to_checksum_address(deployer)
    nonce = int(w3.eth.get_transaction_count(me, "pending"))
    addresses: dict[str, str] = {}
    override: dict[str, Any] = {}
    lines: list[DryRunLine] = []
    for step in plan(params, me, admin):
        if step.kind == "create":
            address = create_address(me, nonce)
            art = load_artifact(step.contract)
            ctor = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(
                *_resolve(step.args, addresses)
            )
            data = ctor.build_transaction({"from": me, "gas": 1, "gasPrice": 0})["data"]
            call: dict[str, Any] = {"from": me, "data": data}
            override[me] = {"nonce": hex(nonce)}  # creates at ``address``, past the others
            runtime = w3.eth.call(call, "pending", override)  # type: ignore[arg-type]
            gas = int(w3.eth.estimate_gas(call, "pending", override))  # type: ignore[arg-type]
            override[address] = {"code": "0x" + bytes(runtime).hex()}
            addresses[step.contract] = address
            lines.append(DryRunLine(step.key, nonce, address, gas, False))
        else:
            lines.append(
                DryRunLine(step.key, nonce, addresses[step.contract], _WIRING_GAS_BOUND, True)
            )
        nonce += 1
    return lines, int(w3.eth.gas_price), int(w3.eth.get_balance(me))
