"""Gas of the settlement contracts (DESIGN §6 "gas"): stake, claim, proof and settle.

Each scenario deploys the contracts on a fresh anvil (FIFO mempool), stakes ``N`` suppliers for
one service, optionally churns the positions so that every position carries ``H`` history
records (one unstake + one fresh stake per position per session; the churn goes on during the
claimed session, so reads of that session take the binary-search path, not the latest-record
shortcut), then measures, with real relays signed by ``protocol/``:

- stake: the last supplier's ``stake_supplier`` (N-1 already staked);
  (each measured call is preceded by a ``checkpoint()``, as relayers do at session
  boundaries, so that it pays for itself, not for recording old block hashes);
- claim: a one-slot claim of 8 relays; proof: its weighted proof; settle: the valid claim.

Bar: gas(1000 suppliers) / gas(10) < 1.5 for claim, proof and settle, also with 100 history
records per position.

    python -m bench gas
    python -m bench.bench_gas --suppliers 10 100 1000 --history 100
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from web3 import Web3

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess
from ledger.artifacts import load_artifact
from ledger.deploy import TOKEN_UNIT, Deployment, DeployParams
from ledger.network import deploy_network
from protocol.encoding import service_id_to_bytes
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from session.slots import session_seed, slot_positions
from tests.support.chain import RelayFactory, leaf_trie

__all__ = ["main"]

BAR_RATIO = 1.5
SERVICE = "eth"


def _abi_type(item: dict[str, Any]) -> str:
    t = str(item["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + t[5:]
    return t


class _Rpc:
    """Plain JSON-RPC on one kept-alive connection; senders are unlocked or impersonated."""

    def __init__(self, anvil: AnvilProcess, deployment: Deployment) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", anvil.port, timeout=60)
        self.deployment = deployment
        self.n = 0
        self.fns: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}

    def rpc(self, method: str, params: list[Any]) -> Any:
        self.n += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params})
        self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(self.conn.getresponse().read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def _fn(self, contract: str, name: str) -> tuple[bytes, list[str], list[str]]:
        if (contract, name) not in self.fns:
            (item,) = [
                x
                for x in load_artifact(contract).abi
                if x.get("type") == "function" and x["name"] == name
            ]
            ins = [_abi_type(i) for i in item["inputs"]]
            sel = bytes(Web3.keccak(text=f"{name}({','.join(ins)})")[:4])
            self.fns[(contract, name)] = (sel, ins, [_abi_type(o) for o in item["outputs"]])
        return self.fns[(contract, name)]

    def data(self, contract: str, name: str, *args: Any) -> str:
        sel, ins, _ = self._fn(contract, name)
        return "0x" + (sel + abi_encode(ins, list(args))).hex()

    def send(self, sender: str, contract: str, name: str, *args: Any) -> str:
        tx = {
            "from": sender,
            "to": self.deployment.contracts[contract],
            "data": self.data(contract, name, *args),
            "gas": hex(1_500_000),
        }
        return str(self.rpc("eth_sendTransaction", [tx]))

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        for _ in range(5000):
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                if receipt["status"] != "0x1":
                    raise RuntimeError(f"transaction {tx_hash} reverted")
                return dict(receipt)
            time.sleep(0.002)
        raise RuntimeError(f"no receipt for {tx_hash}")

    def flush(self) -> None:
        """Mine blocks until nothing is pending (automine off)."""
        for _ in range(10_000):
            status = self.rpc("txpool_status", [])
            if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                return
            self.rpc("evm_mine", [])
        raise RuntimeError("transactions stay pending")

    def gas_of(self, tx_hash: str) -> int:
        return int(self.receipt(tx_hash)["gasUsed"], 16)

    def call(self, contract: str, name: str, *args: Any) -> Any:
        _, _, outs = self._fn(contract, name)
        tx = {"to": self.deployment.contracts[contract], "data": self.data(contract, name, *args)}
        values = abi_decode(outs, bytes.fromhex(self.rpc("eth_call", [tx])[2:]))
        return values[0] if len(values) == 1 else values

    def block(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def mine_to(self, height: int) -> None:
        """Mine (including anything pending) until the latest block is ``height``."""
        now = self.block()
        if height > now:
            self.rpc("anvil_mine", [hex(height - now)])

    def new_account(self) -> str:
        addr = Web3.to_checksum_address(os.urandom(20))
        self.rpc("anvil_impersonateAccount", [addr])
        self.rpc("anvil_setBalance", [addr, hex(10**21)])
        return addr


@dataclass
class Row:
    suppliers: int
    history: int
    stake: int
    claim: int
    proof: int
    settle: int
    siblings: int


def _windows(rpc: _Rpc, n: int) -> tuple[int, ...]:
    return tuple(rpc.call("Sessions", "windows", n))


def _stake_many(rpc: _Rpc, deployer: str, count: int, stake: int, sid: bytes) -> list[str]:
    """Stake ``count`` fresh suppliers (as many per block as fit)."""
    suppliers = rpc.deployment.contracts["Suppliers"]
    addrs = []
    pending: list[str] = []
    for _ in range(count):
        addr = rpc.new_account()
        addrs.append(addr)
        rpc.send(deployer, "Token", "transfer", addr, stake)
        rpc.send(addr, "Token", "approve", suppliers, stake)
        key = hashlib.sha256(addr.encode()).digest()
        pending.append(
            rpc.send(addr, "Suppliers", "stake_supplier", stake, [sid], ["http://s"], key)
        )
    rpc.flush()
    for tx in pending:
        rpc.receipt(tx)
    return addrs


def _churn(rpc: _Rpc, deployer: str, current: list[str], stake: int, sid: bytes) -> None:
    """One session of churn: each position's occupant leaves and a fresh supplier joins, so every
    position gets one record for the next session (FIFO order within one block)."""
    suppliers = rpc.deployment.contracts["Suppliers"]
    fresh = []
    for _ in current:
        addr = rpc.new_account()
        fresh.append(addr)
        rpc.send(deployer, "Token", "transfer", addr, stake)
        rpc.send(addr, "Token", "approve", suppliers, stake)
    rpc.flush()
    sent = []
    for p in range(len(current)):
        leaver = current[p]
        sent.append(rpc.send(leaver, "Suppliers", "unstake_supplier"))
        current[p] = current[-1]  # swap-last-in
        current.pop()
        addr = fresh[p]
        key = hashlib.sha256(addr.encode()).digest()
        sent.append(rpc.send(addr, "Suppliers", "stake_supplier", stake, [sid], ["http://s"], key))
        current.append(addr)
    rpc.flush()
    for tx in sent:
        rpc.receipt(tx)


def run_scenario(n_suppliers: int, history: int) -> Row:
    params = DeployParams(
        min_stake_supplier=TOKEN_UNIT,
        min_stake_app=TOKEN_UNIT,
        service_registration_fee=0,
    )
    # base fee 0: hundreds of full blocks would otherwise price the later transactions out
    # (anvil then drops them); gas used, what this measures, does not depend on the price
    with AnvilProcess(extra_args=["--order", "fifo", "--block-base-fee-per-gas", "0"]) as anvil:
        deployer_key = bytes.fromhex(DEV_ACCOUNTS[0][1][2:])
        deployment = deploy_network(anvil.url, deployer_key, params)
        rpc = _Rpc(anvil, deployment)
        deployer = Web3.to_checksum_address(DEV_ACCOUNTS[0][0])
        shape = deployment.shape
        sid = service_id_to_bytes(SERVICE)
        rpc.receipt(
            rpc.send(deployer, "Services", "register_service", sid, SERVICE, "evm", "", 1, 100, 0)
        )
        app = AccountKey.generate()
        app_addr = Web3.to_checksum_address(app.address)
        rpc.rpc("anvil_impersonateAccount", [app_addr])
        rpc.rpc("anvil_setBalance", [app_addr, hex(10**21)])
        app_stake = 1000 * TOKEN_UNIT
        rpc.receipt(rpc.send(deployer, "Token", "transfer", app_addr, app_stake))
        rpc.receipt(rpc.send(app_addr, "Token", "approve", deployment.contracts["Apps"], app_stake))
        rpc.receipt(rpc.send(app_addr, "Apps", "stake_app", sid, app_stake))

        rpc.rpc("evm_setAutomine", [False])
        current = _stake_many(rpc, deployer, n_suppliers - 1, TOKEN_UNIT, sid)
        # the last supplier's stake, measured alone in its block
        last = rpc.new_account()
        rpc.send(deployer, "Token", "transfer", last, TOKEN_UNIT)
        rpc.send(last, "Token", "approve", deployment.contracts["Suppliers"], TOKEN_UNIT)
        rpc.send(deployer, "Sessions", "checkpoint")
        rpc.flush()
        receipt_key = ReceiptKey.generate()
        stake_tx = rpc.send(
            last,
            "Suppliers",
            "stake_supplier",
            TOKEN_UNIT,
            [sid],
            ["http://s"],
            receipt_key.public_key,
        )
        rpc.rpc("evm_mine", [])
        stake_gas = rpc.gas_of(stake_tx)
        current.append(last)
        keys = {last: receipt_key}

        def session_now() -> int:
            return int(rpc.call("Sessions", "current_session"))

        for _ in range(history):
            _churn(rpc, deployer, current, TOKEN_UNIT, sid)
            rpc.mine_to(_windows(rpc, session_now() + 1)[0])
        n = session_now() + 1
        rpc.mine_to(_windows(rpc, n)[0])
        checkpoint = rpc.send(deployer, "Sessions", "checkpoint")
        rpc.rpc("evm_mine", [])
        rpc.receipt(checkpoint)
        if history:  # churn during n: records from n+1 exist when session n is read
            _churn(rpc, deployer, current, TOKEN_UNIT, sid)
        rpc.rpc("evm_setAutomine", [True])
        h_n = bytes(rpc.call("Sessions", "h_n", n))
        length = int(rpc.call("Suppliers", "length", sid, n))
        seed = session_seed(h_n, SERVICE, app.address, n)
        positions = slot_positions(seed, shape.S, length)
        claimer = Web3.to_checksum_address(rpc.call("Suppliers", "occupant", sid, positions[0], n))
        slot = 0
        receipt = keys.get(claimer, ReceiptKey.generate())

        domain = Domain(deployment.chain_id, bytes.fromhex(deployment.settlement[2:]))
        relays = RelayFactory(domain, SERVICE, app.address, bytes.fromhex(claimer[2:]), n, receipt)
        pairs = [relays.leaf(app, cu=1 + i % 3) for i in range(8)]
        leaves = {key: leaf for leaf, key in pairs}
        trie = leaf_trie(pairs)
        rpc.mine_to(_windows(rpc, n)[3])
        rpc.receipt(rpc.send(deployer, "Sessions", "checkpoint"))
        claim_gas = rpc.gas_of(
            rpc.send(claimer, "Settlement", "claim", app_addr, sid, n, [slot], trie.root.encode())
        )
        claim_id = rpc.call("Settlement", "claim_id_of", claimer, app_addr, sid, n)
        rpc.mine_to(_windows(rpc, n)[5])
        rpc.receipt(rpc.send(deployer, "Sessions", "checkpoint"))
        r = int(rpc.call("Settlement", "challenge_of", claim_id))
        proof = trie.prove(r)
        siblings = [(s.digest, s.sum, s.count) for s in proof.siblings]
        proof_gas = rpc.gas_of(
            rpc.send(claimer, "Settlement", "prove", claim_id, leaves[proof.key], siblings)
        )
        rpc.mine_to(_windows(rpc, n)[6] + 1)
        rpc.receipt(rpc.send(deployer, "Sessions", "checkpoint"))
        settle_gas = rpc.gas_of(rpc.send(deployer, "Settlement", "settle", claim_id))
        return Row(n_suppliers, history, stake_gas, claim_gas, proof_gas, settle_gas, len(siblings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_gas", description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--history",
        type=int,
        default=100,
        help="records per position in the history scenario (0: skip it)",
    )
    args = parser.parse_args(argv)
    scenarios = [(n, 0) for n in args.suppliers]
    if args.history:
        scenarios.append((min(args.suppliers), args.history))
    rows = []
    print(
        f"{'suppliers':>9} {'records/pos':>11} {'stake':>8} {'claim':>8} {'proof':>8} "
        f"{'settle':>8} {'siblings':>8} {'seconds':>8}"
    )
    for n, h in scenarios:
        started = time.monotonic()
        row = run_scenario(n, h)
        rows.append(row)
        print(
            f"{row.suppliers:>9} {row.history + 1:>11} {row.stake:>8} {row.claim:>8} "
            f"{row.proof:>8} {row.settle:>8} {row.siblings:>8} "
            f"{time.monotonic() - started:>8.1f}",
            flush=True,
        )
    base = rows[0]
    print(f"\nratios against {base.suppliers} suppliers (bar < {BAR_RATIO}):")
    for row in rows[1:]:
        ratios = [getattr(row, k) / getattr(base, k) for k in ("claim", "proof", "settle")]
        verdict = "ok" if max(ratios) < BAR_RATIO else "FAIL"
        label = f"{row.suppliers} suppliers, {row.history + 1} records/position"
        print(
            f"  {label:<38} claim {ratios[0]:.3f}  proof {ratios[1]:.3f}  "
            f"settle {ratios[2]:.3f}  {verdict}"
        )


if __name__ == "__main__":
    main()
