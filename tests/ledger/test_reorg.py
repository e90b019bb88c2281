"""Settlement-chain reorganisations on a private anvil: the follower rolls back and replays,
the claimer re-checks what it sent, resends what was dropped and reports what became
unclaimable.

What ``anvil_reorg(depth, txs)`` does (anvil 1.x, probed by
:func:`test_anvil_reorg_semantics`, which asserts each point):

- it replaces the last ``depth`` blocks: blocks ``head - depth + 1 .. head`` get new hashes
  (the first one's parent is the unchanged block ``head - depth``) and the head's *number*
  stays the same — the chain is as long as before, on another branch;
- transactions of the replaced blocks are gone: no receipt, no transaction by hash, and they
  are not put back into the pool (``txpool_status`` is empty), so the sender's nonce goes
  back (``eth_getTransactionCount`` drops) — a sender keeping its nonce locally must re-read it;
- ``txs`` is a list of ``[transaction request, block offset]``: each is mined into the new
  block ``head - depth + 1 + offset`` (the replaced blocks are otherwise empty).

A real chain differs in one way that matters: dropped transactions usually return to the
mempool and may be mined again later; the claimer therefore treats "already claimed" with the
same root as success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.anvil import DEV_ACCOUNTS, AnvilProcess
from ledger.bootstrap import AppSpec, ServiceSpec, SupplierSpec, bootstrap_network
from ledger.client import LedgerClient
from ledger.deploy import DeployParams
from ledger.follower import RegistryFollower, check_confirmations
from protocol.encoding import address_from_hex
from protocol.errors import ErrorCode
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from relayer.budget import BudgetMeter
from relayer.chain import LedgerChain
from relayer.claimer import Claimer, ClaimState, ClaimStore
from relayer.config import ClaimsConfig
from relayer.errors import RelayRefused
from relayer.interfaces import ClaimStatus, ServiceRuntime
from relayer.metrics import RelayerMetrics
from relayer.pricing import SpecPricing, resolve_spec
from relayer.recorder import Recorder
from relayer.relaylog import RelayLog, SessionKey
from relayer.verify import Verifier
from session.hydrate import hydrate
from session.memory import MemorySnapshot
from session.snapshot import SessionShape
from session.windows import session_of, windows
from tests.support.relay_client import rpc, sign_relay

pytestmark = pytest.mark.slow  # starts processes (anvil)

TOKEN = 10**18
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'


def _dump(value: Any) -> Any:
    """Everything an object holds, as plain nested data (for equality of whole snapshots)."""
    if isinstance(value, dict):
        return {repr(_dump(k)): _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(_dump(v)) for v in value)
    if hasattr(value, "__dict__") or hasattr(value, "__slots__"):
        names = list(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            names += list(getattr(cls, "__slots__", ()))
        return {type(value).__name__: {n: _dump(getattr(value, n)) for n in sorted(set(names))}}
    return value


def snapshot_state(snapshot: MemorySnapshot) -> Any:
    return _dump(snapshot)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- anvil's own behaviour ---------------------------------------------------------------------


def test_anvil_reorg_semantics(anvil: AnvilProcess) -> None:
    def block(n: int) -> dict[str, Any]:
        b = anvil.rpc("eth_getBlockByNumber", [hex(n), False])
        assert isinstance(b, dict)
        return b

    sender, to = DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[1][0]
    anvil.mine(10)
    tx = anvil.rpc("eth_sendTransaction", [{"from": sender, "to": to, "value": "0x1"}])
    anvil.mine(2)
    head = anvil.block_number()  # 13; the transaction is in block 11
    before = {n: block(n)["hash"] for n in range(9, head + 1)}
    assert anvil.rpc("eth_getTransactionCount", [sender, "latest"]) == "0x1"

    anvil.rpc("anvil_reorg", [4, []])

    assert anvil.block_number() == head  # same height, another branch
    assert block(head - 4)["hash"] == before[head - 4]
    for n in range(head - 3, head + 1):
        assert block(n)["hash"] != before[n]
    assert block(head - 3)["parentHash"] == before[head - 4]
    assert anvil.rpc("eth_getTransactionReceipt", [tx]) is None
    assert anvil.rpc("eth_getTransactionByHash", [tx]) is None
    assert anvil.rpc("txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert anvil.rpc("eth_getTransactionCount", [sender, "latest"]) == "0x0"

    anvil.rpc("anvil_reorg", [2, [[{"from": sender, "to": to, "value": "0x3"}, 1]]])
    assert anvil.block_number() == head
    assert len(block(head)["transactions"]) == 1  # offset 1 of the new blocks head-1, head
    assert anvil.rpc("eth_getTransactionCount", [sender, "latest"]) == "0x1"


# -- confirmation depth ------------------------------------------------------------------------


def test_confirmations_are_at_most_the_grace_period() -> None:
    shape = SessionShape(B0=0, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    assert check_confirmations(2, shape) == 2
    with pytest.raises(ValueError, match=r"chain.confirmations = 3 exceeds .* G = 2"):
        check_confirmations(3, shape, "chain.confirmations")
    with pytest.raises(ValueError, match="0 or more"):
        check_confirmations(-1, shape)


def test_a_depth_above_grace_is_refused_when_a_config_is_loaded(tmp_path: Path) -> None:
    """End to end: ``relaynet gateway run`` with d > G of its deployment stops at the config
    with the message, before anything starts; the relayer's config load says the same."""
    from typer.testing import CliRunner

    from ledger.deploy import Deployment
    from protocol.keys import AccountKey
    from relaynet.cli import app as cli
    from relaynet.config import ConfigProblem, load_relayer

    shape = SessionShape(B0=10, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
    zero = "0x" + "00" * 20
    deployment = Deployment(4242, "http://127.0.0.1:1", {"Settlement": zero}, zero, zero, 10, shape)
    (tmp_path / "deployment.json").write_text(deployment.to_json())
    key = tmp_path / "gw.key"
    key.write_text("0x" + AccountKey.generate().private_key.hex())
    key.chmod(0o600)
    config = tmp_path / "gateway.toml"
    for depth, refused in ((2, False), (3, True)):
        config.write_text(
            f"""[gateway]
private_key_file = "gw.key"
[settlement]
rpc_url = "http://127.0.0.1:1"
deployment = "deployment.json"
confirmations = {depth}
[keys]
file = "keys.json"
[services.eth]
catalogue = "eth"
"""
        )
        if not refused:
            from relaynet.config import load_gateway

            assert load_gateway(config).settlement.confirmations == 2
            continue
        result = CliRunner().invoke(cli, ["gateway", "run", "--config", str(config)])
        assert result.exit_code != 0
        assert "settlement.confirmations = 3 exceeds the deployment's grace period G = 2" in (
            result.output
        ), result.output

    text = (Path(__file__).resolve().parents[2] / "deploy" / "config" / "relayer.toml").read_text()
    text = text.replace(
        "/etc/relaynet/deployment/deployment.json", str(tmp_path / "deployment.json")
    )
    (tmp_path / "relayer.toml").write_text(text)  # confirmations = 3 there
    env = {"RELAYER_PASSPHRASE": "x", "SETTLEMENT_RPC_URL": "http://127.0.0.1:1"}
    env |= {"ETH_NODE_URL": "http://127.0.0.1:1", "ETH_NODE_WS_URL": "ws://127.0.0.1:1"}
    with pytest.raises(ConfigProblem, match=r"chain.confirmations = 3 exceeds .* G = 2"):
        load_relayer(tmp_path / "relayer.toml", env=env, check_files=False)


# -- the must-show: a reorganisation deeper than a session boundary while relays and claims flow


class Supplier:
    """One relayer's pipeline in process: verifier → recorder → relay log → claimer."""

    def __init__(
        self,
        key: AccountKey,
        receipt: ReceiptKey,
        follower: RegistryFollower,
        domain: Domain,
        chain_url: str,
        deployment: Any,
        data: Path,
    ) -> None:
        self.key = key
        self.metrics = RelayerMetrics()
        self.log = RelayLog(data / "logs", self.metrics)
        spec = resolve_spec("eth")
        runtime = ServiceRuntime(
            service_id="eth",
            pricing=SpecPricing.for_spec(spec, allow_writes=False),
            backends={"rpc": "http://127.0.0.1:1"},
            headers={},
            max_body_bytes=1 << 20,
            timeout=5.0,
            connect_timeout=1.0,
        )
        self.verifier = Verifier(
            follower.snapshot,
            key.address,
            domain,
            {"eth": runtime},
            BudgetMeter(),
            existing_records=self.log.records,
        )
        self.recorder = Recorder(self.log, receipt)
        self.client = LedgerClient(chain_url, deployment, key, receipt_timeout=30.0)
        self.store = ClaimStore(data / "claims")
        self.claimer = Claimer(
            config=ClaimsConfig(
                retry_initial=0.01, retry_max=0.05, checkpoint_wait_blocks=1, min_reward=0
            ),
            snapshot=follower.snapshot,
            chain=LedgerChain(self.client),
            relay_log=self.log,
            store=self.store,
            supplier=key.address,
            metrics=self.metrics,
            confirmations=1,
        )
        follower.add_reorg_listener(self.verifier.on_reorg)  # as relayer/app.py wires them
        follower.add_reorg_listener(self.claimer.on_reorg)
        self.answered: dict[int, int] = {}  # session -> relays answered
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.log.run_committer())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.log.close()
        await self.client.close()

    def relay(self, domain: Domain, app: AccountKey, n: int) -> None:
        signed = sign_relay(
            domain,
            app,
            service_id="eth",
            supplier=self.key.address,
            n=n,
            payload=rpc("eth_blockNumber"),
        )
        verified = self.verifier.verify(signed.relay_request, signed.payload)
        self.recorder.record(verified, 200, ANSWER)
        self.answered[n] = self.answered.get(n, 0) + 1

    def record(self, app: bytes, n: int) -> Any:
        return self.store.load(SessionKey("eth", app, n))


def holders(snapshot: MemorySnapshot, app: bytes, n: int) -> set[bytes]:
    session = hydrate(snapshot, "eth", app, n)
    return set() if session is None else {s.address for s in session.suppliers}


async def test_reorg_deeper_than_a_session_boundary_while_relays_and_claims_flow(
    anvil: AnvilProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a_key, b_key, app = AccountKey.generate(), AccountKey.generate(), AccountKey.generate()
    a_receipt, b_receipt = ReceiptKey.generate(), ReceiptKey.generate()
    # S = 16 slots: with two suppliers, one holds none of a session with probability 2^-16
    params = DeployParams(S=16, cu_price=TOKEN // 1000, min_stake_app=TOKEN)
    net = await bootstrap_network(
        anvil.url,
        params=params,
        services=[ServiceSpec("eth")],
        suppliers=[SupplierSpec(a_key, {"eth": "http://127.0.0.1:1/a"}, a_receipt)],
        apps=[AppSpec(app, "eth", stake=1000 * TOKEN)],
        extra_accounts=[b_key.address],
        token_funding=10_000 * TOKEN,
    )
    d = net.deployment
    shape = d.shape
    domain = Domain(d.chain_id, address_from_hex(d.settlement))
    follower = RegistryFollower(anvil.url, d, poll_interval=0.05, confirmations=1, save_every=4)
    a = Supplier(a_key, a_receipt, follower, domain, anvil.url, d, tmp_path / "a")
    b = Supplier(b_key, b_receipt, follower, domain, anvil.url, d, tmp_path / "b")
    fresh: RegistryFollower | None = None
    reorgs: list[Any] = []
    follower.add_reorg_listener(reorgs.append)

    def session_now() -> int:
        return session_of(anvil.block_number(), shape.B0, shape.L)

    async def tick() -> None:
        """Let the follower reach the head, then each claimer take one step on it."""
        await follower.wait_for_block(anvil.block_number(), timeout=30)
        for s in (a, b):
            await s.claimer.tick()
        await follower.wait_for_block(anvil.block_number(), timeout=30)

    async def mine_until(what: str, check: Callable[[], bool], blocks: int = 120) -> None:
        # blocks advance only between the claimers' steps: deterministic in blocks, whatever
        # the machine's speed (each transaction a claimer sends mines a block of its own)
        for _ in range(blocks):
            if check():
                return
            anvil.mine(1)
            await tick()
        raise AssertionError(f"{what}: not within {blocks} blocks")

    async def settled(s: Supplier, n: int) -> bool:
        state = await s.claimer.chain.claim_state(app.address, "eth", n)
        return state.status is ClaimStatus.SETTLED

    async def scenario() -> None:
        nonlocal fresh
        await follower.wait_caught_up(timeout=30)
        m = session_now()
        w_m = windows(shape, m)
        # session m: only A is staked; relays flow to it
        await mine_until(
            "H_m confirmed", lambda: follower.snapshot.block_hash(w_m.h_n_block) is not None
        )
        for _ in range(5):
            a.relay(domain, app, m)
        # B stakes during m (in force from n = m + 1): the block the reorg will cut above
        async with net.client(b_key) as bc:
            econ = await bc.economic_params(m)
            staked = await bc.stake_supplier(
                econ.min_stake_supplier * 2, {"eth": "http://127.0.0.1:1/b"}, b_receipt.public_key
            )
        assert session_of(staked.block_number, shape.B0, shape.L) == m
        fork_parent = staked.block_number - 1
        n = m + 1
        w_n = windows(shape, n)
        # confirmation depth 1: H_n enters the snapshot one block after its block
        await mine_until("block start(n) - 1", lambda: anvil.block_number() >= w_n.h_n_block)
        if anvil.block_number() == w_n.h_n_block:
            assert follower.snapshot.block_hash(w_n.h_n_block) is None
        await mine_until(
            "H_n confirmed", lambda: follower.snapshot.block_hash(w_n.h_n_block) is not None
        )
        assert anvil.block_number() >= w_n.h_n_block + 1
        drawn = holders(follower.snapshot, app.address, n)
        assert drawn == {a_key.address, b_key.address}
        for _ in range(4):
            a.relay(domain, app, n)
            b.relay(domain, app, n)
        # A's claim of session m lands; then the chain reorganises from just before B's stake
        await mine_until(
            "A's claim of session m",
            lambda: (
                (r := a.record(app.address, m)) is not None
                and r.state in (ClaimState.CLAIMED, ClaimState.PROVING)
            ),
        )
        a_state = await a.claimer.chain.claim_state(app.address, "eth", m)
        assert a_state.status is not ClaimStatus.NONE
        head = anvil.block_number()
        assert head > w_n.h_n_block > fork_parent  # deeper than the session boundary
        anvil.rpc("anvil_reorg", [head - fork_parent, []])
        await until("the follower's rollback", lambda: _true(bool(reorgs)))
        await tick()
        assert reorgs[0].ancestor <= fork_parent and reorgs[0].depth >= head - fork_parent

        # the new branch: B never staked, session n is re-drawn with A alone
        assert follower.snapshot.supplier(b_key.address) is None
        assert holders(follower.snapshot, app.address, n) == {a_key.address}
        for _ in range(3):
            a.relay(domain, app, n)  # relays keep flowing to the session as drawn now
        # B's cached context of session n went with the reorg: B no longer accepts its relays
        with pytest.raises(RelayRefused) as refused:
            b.relay(domain, app, n)
        assert refused.value.code is ErrorCode.NOT_IN_SESSION

        await mine_until(
            "sessions m and n settled",
            lambda: (
                (r1 := a.record(app.address, m)) is not None
                and r1.state is ClaimState.SETTLED
                and (r2 := a.record(app.address, n)) is not None
                and r2.state is ClaimState.SETTLED
                and (r3 := b.record(app.address, n)) is not None
                and r3.state.final
            ),
        )

        # every relay A answered is in exactly one claim per session, and rewards arrived
        async with LedgerClient(anvil.url, d) as reader:
            for session in (m, n):
                state = await reader.claim_state(_claim_id(a_key.address, app.address, session))
                assert state is not None and state.status.name == "SETTLED"
                assert state.count == a.answered[session]
                assert await settled(a, session)
            claims = await _claim_events(reader, a_key.address)
            assert sorted(claims) == [m, n]  # once each on the final chain
            assert await _claim_events(reader, b_key.address) == []
            assert a.record(app.address, m).reward > 0 and a.record(app.address, n).reward > 0
            assert await reader.balance(a_key.address) >= (
                a.record(app.address, m).reward + a.record(app.address, n).reward
            )
        # B's relays of the re-drawn session are reported, never claimed
        b_record = b.record(app.address, n)
        assert b_record.state is ClaimState.FAILED and "unclaimable" in b_record.reason
        assert b.metrics.unclaimable_relays._value.get() == b.answered[n]
        assert a.metrics.unclaimable_relays._value.get() == 0
        assert any("relays unclaimable" in r.getMessage() for r in caplog.records)
        assert a.metrics.reorg_rechecks.labels("pending")._value.get() >= 1

        # the follower's snapshot equals a fresh follower's at the same head
        fresh = RegistryFollower(anvil.url, d, poll_interval=0.05, confirmations=1)
        await fresh.start()
        await fresh.wait_caught_up(timeout=30)
        top = anvil.block_number()
        await fresh.wait_for_block(top, timeout=30)
        await follower.wait_for_block(top, timeout=30)
        assert fresh.head == follower.head
        assert snapshot_state(follower.snapshot) == snapshot_state(fresh.snapshot)
        assert follower.checkpoints == fresh.checkpoints

    await follower.start()
    a.start()
    b.start()
    try:
        async with asyncio.timeout(240):  # a claimer stuck on a transaction fails, not hangs
            await scenario()
    finally:
        await a.stop()
        await b.stop()
        await follower.stop()
        if fresh is not None:
            await fresh.stop()


async def _true(value: bool) -> bool:
    return value


def _claim_id(supplier: bytes, app: bytes, n: int) -> bytes:
    from ledger.client import claim_id_of

    return claim_id_of(supplier, app, "eth", n)


async def _claim_events(reader: LedgerClient, supplier: bytes) -> list[int]:
    """Sessions of the claims ``supplier`` has on the chain now (from the Claimed events)."""
    settlement = reader.deployment.contracts["Settlement"]
    logs = await reader.w3.eth.get_logs(
        {"fromBlock": 0, "toBlock": "latest", "address": reader.w3.to_checksum_address(settlement)}
    )
    out = []
    for raw in logs:
        event = reader.events.decode(raw)  # type: ignore[arg-type]
        if event is not None and event.name == "Claimed" and event.args.get("supplier") == supplier:
            out.append(int(event.args["session"]))
    return out


# -- a gateway through a reorganisation --------------------------------------------------------


def test_a_gateway_keeps_serving_through_a_reorg_and_never_signs_for_a_redrawn_supplier(
    tmp_path: Path,
) -> None:
    """A gateway subprocess (and relayer subprocesses) on a private anvil: B stakes in session
    m and serves in m + 1; the chain reorganises from before B's stake (deeper than the session
    boundary), so m + 1 is re-drawn with A alone. Reads keep working, and once the gateway's
    follower has seen the reorganisation no relay is signed for B again."""
    import urllib.request

    from tests.support.gateway_net import SERVICE, post, start_gateway_proc, start_net
    from tests.support.relayer_proc import RelayerProcess, ServiceBackend, write_relayer_files

    net = start_net(
        tmp_path, relayers=1, start_gateway=False, params=DeployParams(S=16, G=4)
    )  # A alone
    try:
        shape = net.network.deployment.shape
        b_key, b_receipt = AccountKey.generate(), ReceiptKey.generate()
        svc = {SERVICE: ServiceBackend(net.backend.url)}
        b_files = write_relayer_files(
            tmp_path / "relayer-b",
            rpc_url=net.settlement.url,
            deployment=net.network.deployment,
            account=b_key,
            receipt=b_receipt,
            services=svc,
        )

        async def stake_b() -> int:
            async with net.network.client() as admin:
                econ = await admin.economic_params(0)
                await admin.transfer(b_key.address, econ.min_stake_supplier * 4)
                net.settlement.rpc("anvil_setBalance", ["0x" + b_key.address.hex(), hex(10**20)])
            async with net.network.client(b_key) as bc:
                staked = await bc.stake_supplier(
                    econ.min_stake_supplier * 2,
                    {SERVICE: b_files.relay_url},
                    b_receipt.public_key,
                )
            return int(staked.block_number)

        staked_at = asyncio.run(stake_b())
        m = session_of(staked_at, shape.B0, shape.L)
        w_n = windows(shape, m + 1)
        b = RelayerProcess(b_files).start()
        net.extra.append(b)
        gateway = start_gateway_proc(net)

        def relays_to_b() -> float:
            """Relay requests B's relayer received: answered or refused (its own metrics)."""
            text = urllib.request.urlopen(b.metrics_url, timeout=5).read().decode()  # noqa: S310
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("relaynet_relayer_relays_total{")
            )

        reads = iter(range(10_000))

        def read() -> None:
            n = next(reads)
            address = f"0x{n + 0x1000:040x}"
            body = (
                f'{{"jsonrpc":"2.0","id":{n},"method":"eth_getBalance",'
                f'"params":["{address}","latest"]}}'
            )
            status, answer, _ = post(net.rpc_url, body.encode(), timeout=30)
            assert status == 200 and b'"result":"0x0"' in answer, (n, status, answer[:300])

        # into session m + 1 (drawn with A and B), both followers past its H_n
        head = net.settlement.block_number()
        net.mine_settlement(max(0, w_n.h_n_block + 1 - head))
        for _ in range(200):  # B serves some of the session's reads
            read()
            if relays_to_b() >= 3:
                break
        assert relays_to_b() >= 3
        head = net.settlement.block_number()
        assert session_of(head, shape.B0, shape.L) == m + 1 and staked_at - 1 < w_n.h_n_block

        # the reorganisation: from just before B's stake, deeper than the session boundary
        net.settlement.rpc("anvil_reorg", [head - (staked_at - 1), []])
        # each has applied the new branch and told its listeners (the gateway's sessions, the
        # relayer's verifier)
        for proc, line in ((gateway, "sessions are drawn again"), (b, "reorganised")):
            for _ in range(300):
                if line in proc.log_path.read_text():
                    break
                time.sleep(0.1)  # the follower polls every 0.1 s
            else:
                raise AssertionError(f"no reorganisation seen:\n{proc.log_tail()}")
        before = relays_to_b()
        for _ in range(40):
            read()  # every read answered …
        assert relays_to_b() == before  # … and none signed for B, re-drawn out of m + 1
    finally:
        net.stop()
