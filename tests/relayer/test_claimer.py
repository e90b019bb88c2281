"""The claim state machine against an in-memory chain: claim with all slots, prove the drawn
leaf, settle, delete the log; retry with backoff; resume after restart without claiming twice;
skip claims not worth it and say why."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from protocol.errors import ErrorCode, RelaynetError
from protocol.relay import Leaf, RelayHeader, encode_leaf, value_hash
from protocol.settlement import challenge
from protocol.trie import Node, Root, verify_proof
from relayer.claimer import Claimer, ClaimRecord, ClaimState, ClaimStore
from relayer.config import ClaimsConfig
from relayer.interfaces import ChainClaim, ClaimStatus, TxReceipt
from relayer.metrics import RelayerMetrics
from relayer.relaylog import RelayLog, SessionKey
from relayer.status import claim_rows
from session.hydrate import hydrate
from session.memory import MemorySnapshot
from session.snapshot import SessionShape
from session.windows import windows
from tests.support.snapshots import block_hash, served_snapshot, set_chain

SHAPE = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
SUPPLIER = b"\x0a" * 20
APP = b"\x0b" * 20
N = 2
KEY = SessionKey("devnet", APP, N)
W = windows(SHAPE, N)


_hash = block_hash


@dataclass
class FakeChain:
    """A settlement chain in memory; checks the proof it is given like the contract does."""

    snapshot: MemorySnapshot
    height: int = 0
    down: bool = False
    claims: dict[tuple[bytes, str, int], tuple[ClaimStatus, bytes, tuple[int, ...]]] = field(
        default_factory=dict
    )
    calls: list[str] = field(default_factory=list)
    recorded: set[int] = field(default_factory=set)

    def _up(self, what: str) -> None:
        if self.down:
            raise RelaynetError("chain down", code=ErrorCode.BACKEND_UNAVAILABLE)
        self.calls.append(what)

    def _tx(self) -> TxReceipt:
        self.height += 1
        return TxReceipt("0x" + "ab" * 32, 100_000, 2)

    async def head(self) -> int:
        self._up("head")
        return self.height

    async def resync(self) -> None:
        self._up("resync")

    async def block_hash(self, height: int) -> bytes | None:
        return _hash(height) if height <= self.height else None

    async def recorded_hashes(self, n: int) -> tuple[bytes | None, bytes | None, bytes | None]:
        self._up("recorded")
        w = windows(SHAPE, n)
        return tuple(  # type: ignore[return-value]
            _hash(b) if b in self.recorded else None
            for b in (w.h_n_block, w.h_g_block, w.h_c_block)
        )

    async def checkpoint(self) -> TxReceipt:
        self._up("checkpoint")
        self.recorded |= {h for h in range(self.height - 255, self.height + 1)}
        return self._tx()

    async def gas_price(self) -> int:
        return 10

    async def claim_state(self, app: bytes, service_id: str, n: int) -> ChainClaim:
        self._up("claim_state")
        c = self.claims.get((app, service_id, n))
        return ChainClaim(ClaimStatus.NONE) if c is None else ChainClaim(c[0], c[1][:32])

    async def claim(
        self, app: bytes, service_id: str, n: int, slots: tuple[int, ...], root48: bytes
    ) -> TxReceipt:
        self._up("claim")
        assert (app, service_id, n) not in self.claims, "claimed twice"
        assert W.claim_open <= self.height + 1 <= W.claim_close
        self.claims[(app, service_id, n)] = (ClaimStatus.OPEN, root48, slots)
        return self._tx()

    async def prove(
        self, app: bytes, service_id: str, n: int, leaf: bytes, siblings: Sequence[object]
    ) -> TxReceipt:
        self._up("prove")
        _status, root48, slots = self.claims[(app, service_id, n)]
        assert W.proof_open <= self.height + 1 <= W.proof_close
        root = Root.decode(root48)
        session = hydrate(self.snapshot, service_id, app, n)
        assert session is not None
        r = challenge(_hash(W.h_c_block), session.seed, SUPPLIER, root.sum)
        decoded = Leaf.decode(leaf)
        nodes = [s for s in siblings if isinstance(s, Node)]
        key = _relay_key(leaf)
        verify_proof(root, r, key, value_hash(leaf), decoded.header.compute_units, nodes)
        self.claims[(app, service_id, n)] = (ClaimStatus.PROVED, root48, slots)
        return self._tx()

    async def settle(self, app: bytes, service_id: str, n: int) -> TxReceipt:
        self._up("settle")
        status, root48, slots = self.claims[(app, service_id, n)]
        assert status is ClaimStatus.PROVED and self.height + 1 > W.proof_close
        self.claims[(app, service_id, n)] = (ClaimStatus.SETTLED, root48, slots)
        tx = self._tx()
        return TxReceipt(tx.tx_hash, tx.gas_used, tx.gas_price, {"paid": 100, "supplier": 90})

    async def balance(self) -> int:
        return 0

    async def stake(self) -> int:
        return 0


def _snapshot() -> MemorySnapshot:
    snap = served_snapshot(
        SHAPE,
        "devnet",
        cu_price=1000,
        supplier=SUPPLIER,
        stake=10**9,
        receipt_key=b"\x02" * 32,
        endpoints={},
    )
    snap.set_app(APP, "devnet")
    snap.set_app_stake(APP, 1, 10**9)
    return set_chain(snap, range(90, 200), W.end)


def _relay_key(leaf: bytes) -> bytes:
    """These fake leaves carry no real signature: their relay key is a hash of the leaf."""
    return hashlib.sha256(b"rk" + leaf).digest()


def _leaf(i: int, cu: int) -> bytes:
    header = RelayHeader(
        1, "devnet", APP, APP, SUPPLIER, N, bytes(32), i.to_bytes(16, "big"), 0, cu
    )
    return encode_leaf(header.encode(), b"\x01" * 65, 0, bytes(32), b"\x02" * 64)


Parts = tuple[MemorySnapshot, FakeChain, RelayLog, ClaimStore]


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    return _parts(tmp_path)


def _parts(tmp_path: Path) -> Parts:
    snap = _snapshot()
    chain = FakeChain(snap, height=W.grace_end + 1)
    rlog = RelayLog(tmp_path / "logs")
    log = rlog.open(KEY)
    for i, cu in enumerate((1, 2, 3, 4, 5)):
        leaf = _leaf(i, cu)
        log.append(_relay_key(leaf), leaf)
    log.close()
    return snap, chain, rlog, ClaimStore(tmp_path / "claims")


def _claimer(parts: Parts, **cfg: object) -> Claimer:
    snap, chain, rlog, store = parts
    cfg = {"min_reward": 0, **cfg}
    config = ClaimsConfig(retry_initial=0.01, retry_max=0.05, **cfg)  # type: ignore[arg-type]
    return Claimer(
        config=config, snapshot=snap, chain=chain, relay_log=rlog, store=store, supplier=SUPPLIER
    )


async def test_claim_prove_settle_with_backoff_and_restart(parts: Parts) -> None:
    _snap, chain, rlog, store = parts
    claimer = _claimer(parts)
    chain.down = True
    await claimer.tick()  # chain down: nothing happens, retried later
    assert chain.claims == {}
    chain.down = False
    await asyncio.sleep(0.02)
    await claimer.tick()
    _status, root48, slots = chain.claims[(APP, "devnet", N)]
    assert slots == (0, 1, 2, 3, 4, 5)  # every slot held
    assert Root.decode(root48).sum == 15 and Root.decode(root48).count == 5
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.CLAIMED and record.claimed == 15_000

    # restart: a new claimer from the same folder never claims again
    claimer = _claimer(parts)
    await claimer.tick()
    assert chain.calls.count("claim") == 1

    chain.height = W.claim_close + 1  # H_c known: a proof is required (probability 10000 bps)
    await claimer.tick()
    assert chain.claims[(APP, "devnet", N)][0] is ClaimStatus.PROVED
    assert "checkpoint" in chain.calls  # H_c was not recorded: the relayer recorded it

    chain.height = W.proof_close + 1
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.SETTLED
    assert record.reward == 90 and record.gas_wei > 0 and len(record.txs) >= 3
    assert not rlog.path_for(KEY).exists()  # the log goes once settled


async def test_crash_after_claim_landed_is_not_claimed_twice(parts: Parts) -> None:
    _snap, chain, _rlog, store = parts
    claimer = _claimer(parts)
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None
    # as if the process died after the tx but before writing "claimed"
    from dataclasses import replace

    store.save(KEY, replace(record, state=ClaimState.CLAIMING))
    await _claimer(parts).tick()
    assert chain.calls.count("claim") == 1
    assert store.load(KEY).state is ClaimState.CLAIMED  # type: ignore[union-attr]


async def test_claim_not_worth_it_is_skipped_and_says_why(parts: Parts) -> None:
    _snap, chain, rlog, store = parts
    metrics = RelayerMetrics()
    claimer = _claimer(parts, min_reward=10**6)
    claimer.metrics = metrics
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.SKIPPED
    assert record.reason == "reward 0.000000000000015 RLY below min_reward 0.000000000001 RLY"
    assert _sample(metrics, "claims_skipped_total", reason="below_min_reward") == 1
    assert "claim" not in chain.calls
    assert not rlog.path_for(KEY).exists()


def _sample(metrics: RelayerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"relaynet_relayer_{name}", labels)


async def test_by_default_a_claim_worth_less_than_its_gas_is_skipped_one_that_pays_is_made(
    parts: Parts, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``min_reward = "gas"`` (the default): 15,000 base units against (400k claim + 400k
    proof, always required here) × 10 wei priced at 1 base unit per wei — skipped, with its
    reason in the record, the log, ``relayer status`` and the metric. The same claim with gas
    priced at 0.001 base units per wei (8,000) pays: it is made."""
    _snap, chain, _rlog, store = parts
    metrics = RelayerMetrics()
    claimer = _claimer(parts, min_reward="gas")
    claimer.metrics = metrics
    with caplog.at_level("INFO", logger="relaynet.relayer.claimer"):
        await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.SKIPPED
    reason = (
        "reward 0.000000000000015 RLY below its gas 0.000000000008 RLY (0.000000000008 ETH:"
        " 800,000 gas at 10 wei) — set [claims] min_reward = 0 to claim anyway"
    )
    assert record.reason == reason
    assert reason in caplog.text and "skipped" in caplog.text
    assert _sample(metrics, "claims_skipped_total", reason="below_gas") == 1
    assert _sample(metrics, "claims_total", state="skipped") == 1
    assert "claim" not in chain.calls
    report = {"claims": [{**_status_row(record)}]}
    assert claim_rows(report)[0][-1] == reason  # `relayer status` shows why

    other = _parts(tmp_path / "paying")
    paying = _claimer(other, min_reward="gas", tokens_per_gas_wei=0.001)
    paying.metrics = metrics
    await paying.tick()
    record = other[3].load(KEY)
    assert record is not None and record.state is ClaimState.CLAIMED and record.reason == ""
    assert other[1].calls.count("claim") == 1
    assert _sample(metrics, "claims_skipped_total", reason="below_gas") == 1


def _status_row(record: ClaimRecord) -> dict[str, object]:
    return {
        "service": record.service_id,
        "session": record.n,
        "app": record.app,
        "state": record.state.value,
        "relays": record.relays,
        "claimed": record.claimed,
        "reward": record.reward,
        "reason": record.reason,
    }


async def test_missed_claim_window_fails_with_a_reason(parts: Parts) -> None:
    _snap, chain, _rlog, store = parts
    chain.height = W.claim_close + 1
    await _claimer(parts).tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.FAILED
    assert record.reason == "claim window missed"


# -- after a settlement-chain reorganisation (the end-to-end case: tests/ledger/test_reorg.py) --


@dataclass(frozen=True)
class _Reorg:
    ancestor: int


class _LaggingChain(FakeChain):
    """Answers one claim-state read from before the claim (a node still on the old branch,
    or a dropped claim that a mempool re-included), and refuses a second claim the way the
    contract does."""

    stale_reads: int = 0

    async def claim_state(self, app: bytes, service_id: str, n: int) -> ChainClaim:
        if self.stale_reads:
            self.stale_reads -= 1
            self._up("claim_state")
            return ChainClaim(ClaimStatus.NONE)
        return await super().claim_state(app, service_id, n)

    async def claim(
        self, app: bytes, service_id: str, n: int, slots: tuple[int, ...], root48: bytes
    ) -> TxReceipt:
        if (app, service_id, n) in self.claims:
            self._up("claim")
            raise RelaynetError("claim: already claimed")
        return await super().claim(app, service_id, n, slots, root48)


async def test_already_claimed_with_the_same_root_is_success(tmp_path: Path) -> None:
    snap = _snapshot()
    chain = _LaggingChain(snap, height=W.grace_end + 1)
    rlog = RelayLog(tmp_path / "logs")
    log = rlog.open(KEY)
    for i in range(3):
        log.append(_relay_key(_leaf(i, 1)), _leaf(i, 1))
    log.close()
    store = ClaimStore(tmp_path / "claims")
    claimer = _claimer((snap, chain, rlog, store))
    await claimer.tick()
    assert store.load(KEY).state is ClaimState.CLAIMED  # type: ignore[union-attr]
    chain.stale_reads = 2  # the re-check and the resume both read "no claim"
    claimer.on_reorg(_Reorg(W.grace_end))
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.CLAIMED
    assert chain.calls.count("claim") == 2 and "resync" in chain.calls
    assert len(chain.claims) == 1  # never twice


async def test_a_reorg_recomputes_the_proof_requirement_from_the_new_h_c(parts: Parts) -> None:
    """Claimed, then "no proof required" under the old H_c; the reorganisation replaces H_c
    and under the new one a proof is required: the claimer proves instead of settling void."""
    from dataclasses import replace as dc_replace

    from protocol.settlement import proof_required

    snap, chain, _rlog, store = parts
    claimer = _claimer(parts)
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.CLAIMED
    root48 = bytes.fromhex(record.root48[2:])
    new_h_c = _hash(W.h_c_block)  # what the fake chain challenges with
    draw = int.from_bytes(hashlib.sha256(root48 + new_h_c).digest(), "big") % 10_000
    bps = draw + 1  # required under the new H_c …
    old_h_c = next(
        h
        for h in (hashlib.sha256(b"old" + bytes([i])).digest() for i in range(256))
        if not proof_required(record.claimed, 2**200, root48, h, bps)
    )  # … and not under the old one
    econ = dc_replace(snap.economic_params(N), proof_probability_bps=bps, proof_threshold=2**200)
    snap.set_economic_params(0, econ)
    snap.set_block_hash(W.h_c_block, old_h_c)
    chain.height = W.claim_close + 1
    await claimer.tick()
    assert store.load(KEY).state is ClaimState.NOT_REQUIRED  # type: ignore[union-attr]

    snap.set_block_hash(W.h_c_block, new_h_c)  # the reorganisation, as the follower replays it
    claimer.on_reorg(_Reorg(W.claim_close - 1))
    chain.height = W.proof_open
    await claimer.tick()
    assert chain.claims[(APP, "devnet", N)][0] is ClaimStatus.PROVED
    chain.height = W.proof_close + 1
    await claimer.tick()
    assert store.load(KEY).state is ClaimState.SETTLED  # type: ignore[union-attr]


async def test_a_settled_sessions_log_is_kept_for_the_retention_period_then_pruned(
    parts: Parts,
) -> None:
    """``[log] retention_hours``: the log and its retired marker stay after settlement, and go
    once the claim finished longer ago than that (counted in ``logs_pruned_total``)."""
    _snap, chain, rlog, store = parts
    metrics = RelayerMetrics()
    claimer = _claimer(parts)
    claimer.metrics, claimer.retention = metrics, 3600.0
    await claimer.tick()
    chain.height = W.claim_close + 1
    await claimer.tick()
    chain.height = W.proof_close + 1
    await claimer.tick()
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.SETTLED
    marker = rlog.path_for(KEY).with_suffix(".retired")
    assert rlog.path_for(KEY).exists() and marker.exists()
    await claimer.tick()  # within the period: kept
    assert rlog.path_for(KEY).exists()

    store.path(KEY).write_bytes(replace(record, updated=time.time() - 7200).to_json())
    later = _claimer(parts)  # e.g. after a restart, two hours on
    later.metrics, later.retention = metrics, 3600.0
    await later.tick()
    assert not rlog.path_for(KEY).exists() and not marker.exists()
    assert _sample(metrics, "logs_pruned_total") == 1
    assert store.load(KEY) is not None  # the claim's record stays for `relayer status`
