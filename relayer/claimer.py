"""Claims, proofs and settlements — the relayer's earnings, driven from its logs and disk state.

For every (service, app, n) it has a log of, once the session's grace has ended, the claimer
walks one state machine per session, persisting every step in ``<data_dir>/claims`` (written
atomically) *before* it acts, so that a restart resumes where it stopped and never claims twice::

    pending → claiming → claimed → (proving → proved | not_required) → settled   (log deleted)
            ↘ skipped (empty, or reward below its gas or min_reward — the log, status and
                       ``claims_skipped_total{reason}`` say so)
            ↘ failed  (a window was missed; the reason is kept)

Steps: build the trie from the log in one pass (keys, value hashes, weights and log offsets —
never whole leaves), keeping the relays mined under ``H_g``; checkpoint ``H_n``/``H_g`` (before
claiming) and ``H_c`` (after the claim window) when nobody has; claim inside the window naming
every slot held; when a proof is required, open the leaf drawn by ``r`` and submit it in the
proof window; settle after the proof window. A failing chain call is retried with exponential
backoff (``claims.retry_initial`` … ``retry_max``).

Worth it (``claims.min_reward``): by default a claim is made only when its expected reward
covers its expected gas — the claim's gas plus the proof's weighted by the chance one is
required, at the current gas price, priced in token base units at ``tokens_per_gas_wei``. A
number instead is a fixed floor in base units (``0``: claim everything). Amounts in log lines
are in token units (``reward 0.45 RLY``).

Confirmation depth d (``confirmations``): the claim waits until ``H_g`` is d blocks deep, the
proof requirement until ``H_c`` is.

Reorganisations (:meth:`Claimer.on_reorg`, a listener of the registry follower): before its
next step the claimer forgets its nonce and cached tries, then re-checks on the chain every
claim it has acted on — what was dropped goes back to the state before it (a dropped claim to
``pending``, so slots, session id and the rest are recomputed from the new branch; a dropped
proof or settlement to ``claimed``/``proved``), and every claim still open has its proof
requirement and challenge recomputed from the post-reorg ``H_c``. A claim is never sent twice:
the chain is read first, and a claim refused because one with the same root already exists
counts as made. Relays of a session the reorganisation re-drew so that this supplier holds no
slot in it are unclaimable: counted (``unclaimable_relays``) and logged, never claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from protocol.errors import RelaynetError
from protocol.relay import is_mined, leaf_compute_units
from protocol.settlement import (
    budget as session_budget,
)
from protocol.settlement import (
    challenge,
    claim_tokens,
    claimed_amount,
    proof_required,
)
from protocol.trie import Root, SumTrie
from relayer.config import ClaimsConfig
from relayer.interfaces import ClaimStatus, SettlementChain, TxReceipt
from relayer.metrics import RelayerMetrics
from relayer.relaylog import RelayLog, SessionKey, segment_of
from relayer.units import eth, rly
from session.hydrate import hydrate
from session.snapshot import RegistrySnapshot
from session.windows import Windows, session_of, windows

__all__ = [
    "SKIP_REASONS",
    "ClaimRecord",
    "ClaimState",
    "ClaimStore",
    "Claimer",
    "TrieSummary",
    "build_trie",
]

log = logging.getLogger("relaynet.relayer.claimer")

_CHECKPOINT_LOOKBACK = 128  # blocks: older boundaries are left to the claims that need them

#: the ``reason`` label of ``claims_skipped_total`` (a fixed set)
SKIP_REASONS = ("no_relays", "no_mined_relays", "below_gas", "below_min_reward")


class ClaimState(StrEnum):
    PENDING = "pending"
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    PROVING = "proving"
    PROVED = "proved"
    NOT_REQUIRED = "not_required"
    SETTLED = "settled"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ClaimState.SETTLED, ClaimState.SKIPPED, ClaimState.FAILED)


@dataclass(frozen=True)
class ClaimRecord:
    """What the relayer knows and did about one session's claim (persisted as JSON)."""

    service_id: str
    app: str  # 0x hex
    n: int
    state: ClaimState = ClaimState.PENDING
    relays: int = 0
    mined: int = 0
    root48: str = ""
    sum: int = 0
    count: int = 0
    slots: tuple[int, ...] = ()
    session_id: str = ""
    claimed: int = 0
    required: bool | None = None
    reward: int = 0
    paid: int = 0
    gas_wei: int = 0
    txs: tuple[str, ...] = ()
    counted: tuple[tuple[int, int], ...] = ()  # (log segment, records) the claim's trie read
    reason: str = ""
    updated: float = 0.0

    def to_json(self) -> bytes:
        data = asdict(self)
        data["state"] = self.state.value
        return json.dumps(data, indent=2).encode()  # token amounts exceed 64 bits

    @classmethod
    def from_json(cls, raw: bytes) -> ClaimRecord:
        data: dict[str, Any] = json.loads(raw)
        data["state"] = ClaimState(data["state"])
        data["slots"] = tuple(data.get("slots", ()))
        data["txs"] = tuple(data.get("txs", ()))
        data["counted"] = tuple((int(seg), int(n)) for seg, n in data.get("counted", ()))
        return cls(**data)

    def spent(self, receipt: TxReceipt) -> ClaimRecord:
        return replace(
            self, gas_wei=self.gas_wei + receipt.cost_wei, txs=(*self.txs, receipt.tx_hash)
        )


class ClaimStore:
    """One JSON file per session under ``<data_dir>/claims/<service>/``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: SessionKey) -> Path:
        return self.root / key.service_id / key.filename().replace(".log", ".json")

    def load(self, key: SessionKey) -> ClaimRecord | None:
        path = self.path(key)
        try:
            return ClaimRecord.from_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def save(self, key: SessionKey, record: ClaimRecord) -> ClaimRecord:
        record = replace(record, updated=time.time())
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(record.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return record

    def all(self) -> list[ClaimRecord]:
        out = []
        for path in sorted(self.root.glob("*/*.json")):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.append(ClaimRecord.from_json(path.read_bytes()))
        return out


@dataclass(frozen=True, slots=True)
class TrieSummary:
    """A session's trie as built from its log."""

    trie: SumTrie
    relays: int
    mined: int
    counted: tuple[tuple[int, int], ...] = ()

    @property
    def root(self) -> Root:
        return self.trie.root


def build_trie(
    relay_log: RelayLog,
    key: SessionKey,
    h_g: bytes,
    difficulty_bits: int,
    counted: Mapping[int, int] | None = None,
) -> TrieSummary:
    """One pass over the log: (relay_key, sha256(leaf), compute_units, ref) of mined relays.

    ``counted`` (log segment → records) reads exactly the records a claim counted, so a
    restart rebuilds the claimed trie; the summary says what this pass read."""
    relays = 0
    per_segment: dict[int, int] = {}
    items: list[tuple[bytes, bytes, int, int]] = []
    sha = hashlib.sha256
    for record in relay_log.records(key, counted):
        relays += 1
        seg = segment_of(record.ref)
        per_segment[seg] = per_segment.get(seg, 0) + 1
        if difficulty_bits and not is_mined(record.relay_key, h_g, difficulty_bits):
            continue
        leaf = record.leaf
        items.append((record.relay_key, sha(leaf).digest(), leaf_compute_units(leaf), record.ref))
    mined = len(items)
    return TrieSummary(SumTrie.build(items), relays, mined, tuple(sorted(per_segment.items())))


@dataclass
class _Backoff:
    delay: float
    next_at: float = 0.0
    attempts: int = 0


class Claimer:
    """Drives every session's claim state machine; run :meth:`run` as a background task."""

    def __init__(
        self,
        *,
        config: ClaimsConfig,
        snapshot: RegistrySnapshot,
        chain: SettlementChain,
        relay_log: RelayLog,
        store: ClaimStore,
        supplier: bytes,
        metrics: RelayerMetrics | None = None,
        on_session_closed: Callable[[SessionKey], object] | None = None,
        confirmations: int = 0,
        retention: float = 0.0,
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        self.chain = chain
        self.relay_log = relay_log
        self.store = store
        self.supplier = supplier
        self.metrics = metrics
        self._on_closed = on_session_closed
        self._backoff: dict[SessionKey, _Backoff] = {}
        self._global_backoff = _Backoff(config.retry_initial)
        self._tries: dict[SessionKey, TrieSummary] = {}
        self._random = random.Random()
        self._checkpoint_due: dict[tuple[int, int], int] = {}  # (n, kind) -> height to act
        self._checkpoint_done: set[tuple[int, int]] = set()
        self.confirmations = confirmations
        self._reorg_from: int | None = None  # ancestor of a reorganisation not yet handled
        #: seconds a settled or skipped session's log (and retired marker) is kept (0: its log
        #: goes at once, the marker stays)
        self.retention = retention
        self._kept: dict[SessionKey, float] = {}  # final, log kept until (wall clock)

    def on_reorg(self, reorg: Any) -> None:
        """The follower saw blocks above ``reorg.ancestor`` replaced: re-check before acting."""
        ancestor = int(reorg.ancestor)
        if self._reorg_from is None or ancestor < self._reorg_from:
            self._reorg_from = ancestor

    async def run(self) -> None:
        """Tick forever (cancelled at shutdown)."""
        while True:
            try:
                await self.tick()
            except Exception:  # the task's outermost boundary: a bug must not stop earning
                log.exception("claimer tick failed")
            await asyncio.sleep(self.config.tick)

    async def tick(self) -> None:
        """One pass over every session with a log or an unfinished claim."""
        now = time.monotonic()
        if now < self._global_backoff.next_at:
            return
        try:
            head = await self.chain.head()
        except RelaynetError as exc:
            self._failed(self._global_backoff, "head", exc)
            return
        self._global_backoff = _Backoff(self.config.retry_initial)
        if self._reorg_from is not None:
            try:
                await self.after_reorg(self._reorg_from, head)
            except RelaynetError as exc:
                self._failed(self._global_backoff, "reorg", exc)
                return
        try:
            await self.checkpoints(head)
        except RelaynetError as exc:
            self._failed(self._global_backoff, "checkpoint", exc)
        keys = set(self.relay_log.existing())
        for record in self.store.all():
            if not record.state.final:
                keys.add(SessionKey(record.service_id, bytes.fromhex(record.app[2:]), record.n))
        shape = self.snapshot.shape()
        wall = time.time()
        for key in sorted(keys, key=lambda k: (k.n, k.service_id, k.app)):
            if self._kept.get(key, 0.0) > wall:
                continue  # settled: its log is kept for the retention period
            w = windows(shape, key.n)
            if head <= w.grace_end:
                continue
            backoff = self._backoff.get(key)
            if backoff is not None and now < backoff.next_at:
                continue
            try:
                await self.step(key, w, head)
            except RelaynetError as exc:
                if backoff is None:
                    backoff = self._backoff[key] = _Backoff(self.config.retry_initial)
                self._failed(backoff, f"session {key.service_id}/{key.n}", exc)
            else:
                self._backoff.pop(key, None)

    async def checkpoints(self, head: int) -> None:
        """DESIGN §3.5: at each session start, grace end and claim close, after a random wait
        of 1..``checkpoint_wait_blocks`` blocks, checkpoint if the hash is still missing."""
        shape = self.snapshot.shape()
        oldest = max(0, head - _CHECKPOINT_LOOKBACK)
        tail = shape.L - 1 + shape.G + shape.CO + shape.CW  # start(n) .. claim_close(n)
        first = session_of(max(oldest - tail, shape.B0), shape.B0, shape.L)
        last = session_of(max(head + 1, shape.B0), shape.B0, shape.L)
        wait = self.config.checkpoint_wait_blocks
        checkpointed = False  # one checkpoint records every missing hash up to ``head``
        for n in range(first, last + 1):
            w = windows(shape, n)
            recorded: tuple[bytes | None, ...] | None = None
            for kind, block in ((0, w.h_n_block), (1, w.h_g_block), (2, w.h_c_block)):
                event = (n, kind)
                if block > head or block < oldest or event in self._checkpoint_done:
                    continue
                if n == 0 and kind == 0:
                    continue  # H_0 is stored by the constructor
                due = self._checkpoint_due.get(event)
                if due is None:
                    due = block + (self._random.randint(1, wait) if wait else 0)
                    self._checkpoint_due[event] = due
                if head < due:
                    continue
                if not checkpointed:
                    if recorded is None:
                        recorded = await self.chain.recorded_hashes(n)
                    if recorded[kind] is None:
                        receipt = await self.chain.checkpoint()
                        checkpointed = True
                        if self.metrics is not None:
                            self.metrics.checkpoints.inc()
                            self.metrics.gas.inc(receipt.cost_wei)
                        log.info("checkpointed at %d (session %d, kind %d)", head, n, kind)
                self._checkpoint_done.add(event)
                self._checkpoint_due.pop(event, None)
        self._checkpoint_done = {e for e in self._checkpoint_done if e[0] >= first}
        self._checkpoint_due = {e: d for e, d in self._checkpoint_due.items() if e[0] >= first}

    async def after_reorg(self, ancestor: int, head: int) -> None:
        """Re-check on the chain every claim acted on since a reorganisation (module doc)."""
        await self.chain.resync()
        self._tries.clear()  # H_g may have changed, and with it which relays are mined
        self._checkpoint_done.clear()
        self._checkpoint_due.clear()
        shape = self.snapshot.shape()
        for record in self.store.all():
            if record.state in (ClaimState.PENDING, ClaimState.SKIPPED, ClaimState.FAILED):
                continue
            w = windows(shape, record.n)
            if (
                record.state is ClaimState.SETTLED
                and w.proof_close + _CHECKPOINT_LOOKBACK < ancestor
            ):
                continue  # settled long before the fork point
            key = SessionKey(record.service_id, bytes.fromhex(record.app[2:]), record.n)
            onchain = await self.chain.claim_state(key.app, key.service_id, key.n)
            outcome = self._recheck(record, onchain.status)
            if outcome is None:
                continue
            state, what = outcome
            log.warning(
                "session %s/%s n=%d: after the reorganisation above block %d the chain says %s"
                " — %s",
                key.service_id,
                record.app,
                key.n,
                ancestor,
                onchain.status.value,
                what,
            )
            if self.metrics is not None:
                self.metrics.reorg_rechecks.labels(state.value).inc()
            if state is ClaimState.PENDING:
                record = replace(
                    record,
                    root48="",
                    sum=0,
                    count=0,
                    slots=(),
                    session_id="",
                    claimed=0,
                    required=None,
                )
            else:
                record = replace(record, required=None)
            self._save(key, replace(record, state=state, reason=what))
            self._backoff.pop(key, None)
        self._reorg_from = None

    @staticmethod
    def _recheck(record: ClaimRecord, onchain: ClaimStatus) -> tuple[ClaimState, str] | None:
        """Where a claim goes back to once the chain says ``onchain`` after a reorganisation
        (None: it stays)."""
        acted = record.state
        if onchain is ClaimStatus.NONE:
            if acted is ClaimState.CLAIMING:
                return None  # never confirmed sent: resumes (reading the chain first)
            if acted is ClaimState.SETTLED:
                return (
                    ClaimState.FAILED,
                    "claim dropped by a reorganisation after its log was deleted",
                )
            return ClaimState.PENDING, "claim dropped by the reorganisation: claiming again"
        if onchain is ClaimStatus.OPEN and acted in (
            ClaimState.PROVING,
            ClaimState.PROVED,
            ClaimState.NOT_REQUIRED,
            ClaimState.SETTLED,
        ):
            return ClaimState.CLAIMED, "claim open: proof requirement recomputed from the new H_c"
        if onchain is ClaimStatus.PROVED and acted is ClaimState.SETTLED:
            return ClaimState.PROVED, "settlement dropped by the reorganisation: settling again"
        return None

    def _failed(self, backoff: _Backoff, what: str, exc: RelaynetError) -> None:
        backoff.attempts += 1
        backoff.next_at = time.monotonic() + backoff.delay
        log.warning("%s: %s (retry in %.1fs)", what, exc.message, backoff.delay)
        backoff.delay = min(backoff.delay * 2, self.config.retry_max)
        if self.metrics is not None:
            self.metrics.chain_errors.labels(what.split(" ")[0]).inc()

    # -- the state machine --------------------------------------------------------------------

    async def step(self, key: SessionKey, w: Windows, head: int) -> None:
        """Advance one session as far as ``head`` allows."""
        record = self.store.load(key) or ClaimRecord(key.service_id, "0x" + key.app.hex(), key.n)
        if record.state.final:
            await self._cleanup(key, record)
            return
        if record.state is ClaimState.PENDING:
            await self._close_log(key)
            record = await self._claim(key, w, head, record)
        if record.state is ClaimState.CLAIMING:
            record = await self._resume_claim(key, w, head, record)
        if record.state is ClaimState.CLAIMED:
            record = await self._after_claim_window(key, w, head, record)
        if record.state is ClaimState.PROVING:
            record = await self._prove(key, w, head, record)
        if record.state in (ClaimState.PROVED, ClaimState.NOT_REQUIRED):
            record = await self._settle(key, w, head, record)
        if record.state.final:
            await self._cleanup(key, record)

    async def _close_log(self, key: SessionKey) -> None:
        await self.relay_log.retire(key)
        if self._on_closed is not None:
            self._on_closed(key)

    async def _cleanup(self, key: SessionKey, record: ClaimRecord) -> None:
        """Delete a finished session's log once the retention period has passed (at once when
        ``retention`` is 0)."""
        self._tries.pop(key, None)
        until = record.updated + self.retention
        if self.retention > 0 and time.time() < until:
            self._kept[key] = until
            return
        self._kept.pop(key, None)
        await self.relay_log.delete(key, marker=self.retention > 0)
        if self.metrics is not None:
            self.metrics.logs_pruned.inc()

    def _save(self, key: SessionKey, record: ClaimRecord) -> ClaimRecord:
        return self.store.save(key, record)

    async def _hash(self, height: int) -> bytes:
        known = self.snapshot.block_hash(height)
        if known is not None:
            return known
        fetched = await self.chain.block_hash(height)
        if fetched is None:
            raise RelaynetError(f"block {height} is not known yet")
        return fetched

    async def _ensure_recorded(self, n: int, *kinds: int) -> None:
        """Checkpoint when the contract lacks H_n (0), H_g (1) or H_c (2) of session ``n``."""
        recorded = await self.chain.recorded_hashes(n)
        if all(recorded[k] is not None for k in kinds):
            return
        receipt = await self.chain.checkpoint()
        if self.metrics is not None:
            self.metrics.checkpoints.inc()
            self.metrics.gas.inc(receipt.cost_wei)
        recorded = await self.chain.recorded_hashes(n)
        if not all(recorded[k] is not None for k in kinds):
            raise RelaynetError(f"session {n}: block hashes could not be checkpointed")

    def _trie(
        self, key: SessionKey, h_g: bytes, difficulty: int, record: ClaimRecord
    ) -> TrieSummary:
        """The session's trie: from every record at claim time, afterwards from exactly the
        records the claim counted (persisted with it)."""
        summary = self._tries.get(key)
        if summary is None:
            counted = dict(record.counted) if record.counted else None
            summary = build_trie(self.relay_log, key, h_g, difficulty, counted)
            self._tries[key] = summary
        return summary

    async def _claim(
        self, key: SessionKey, w: Windows, head: int, record: ClaimRecord
    ) -> ClaimRecord:
        if head < w.claim_open - 1:
            return record
        if head > w.claim_close:
            return self._final(key, record, ClaimState.FAILED, "claim window missed", "claims")
        if head < w.h_g_block + self.confirmations:
            return record  # H_g not confirmed yet
        h_g = await self._hash(w.h_g_block)
        sparams = self.snapshot.service_params(key.service_id, key.n)
        econ = self.snapshot.economic_params(key.n)
        summary = self._trie(key, h_g, sparams.difficulty_bits, record)
        record = replace(
            record, relays=summary.relays, mined=summary.mined, counted=summary.counted
        )
        if summary.mined == 0:
            reason = "no relays" if summary.relays == 0 else "no mined relays"
            return self._skip(key, record, reason.replace(" ", "_"), reason)
        session = hydrate(self.snapshot, key.service_id, key.app, key.n)
        slots = () if session is None else session.slot_indexes(self.supplier)
        if session is None or not slots:
            return self._unclaimable(key, record, summary)
        shape = self.snapshot.shape()
        root = summary.root
        tokens = claim_tokens(root.sum, econ.cu_price, sparams.difficulty_bits)
        limit = session_budget(
            len(slots),
            self.snapshot.app_stake(key.app, key.n),
            shape.S,
            shape.P,
        )
        claimed = claimed_amount(tokens, limit)
        record = replace(
            record,
            root48="0x" + root.encode().hex(),
            sum=root.sum,
            count=root.count,
            slots=tuple(slots),
            session_id="0x" + session.seed.hex(),
            claimed=claimed,
        )
        proof_bps = 10_000 if claimed >= econ.proof_threshold else econ.proof_probability_bps
        why = await self._not_worth_it(claimed, proof_bps)
        if why is not None:
            return self._skip(key, record, *why)
        record = self._save(key, replace(record, state=ClaimState.CLAIMING))
        return await self._resume_claim(key, w, head, record)

    async def _not_worth_it(self, claimed: int, proof_bps: int) -> tuple[str, str] | None:
        """``(reason label, explanation)`` when the claim is not worth making, else None."""
        cfg = self.config
        if cfg.min_reward != "gas":
            if claimed < cfg.min_reward:
                return "below_min_reward", (
                    f"reward {rly(claimed)} below min_reward {rly(cfg.min_reward)}"
                )
            return None
        gas_price = await self.chain.gas_price()
        gas = cfg.claim_gas_estimate + cfg.proof_gas_estimate * proof_bps // 10_000
        cost = int(gas * gas_price * cfg.tokens_per_gas_wei)
        if claimed < cost:
            return "below_gas", (
                f"reward {rly(claimed)} below its gas {rly(cost)} ({eth(gas * gas_price)}: "
                f"{gas:,} gas at {gas_price:,} wei) — set [claims] min_reward = 0 to claim anyway"
            )
        return None

    async def _resume_claim(
        self, key: SessionKey, w: Windows, head: int, record: ClaimRecord
    ) -> ClaimRecord:
        onchain = await self.chain.claim_state(key.app, key.service_id, key.n)
        if onchain.status is not ClaimStatus.NONE:  # landed before a crash: never claim twice
            return self._save(key, replace(record, state=ClaimState.CLAIMED))
        if head < w.claim_open - 1:
            return record
        if head > w.claim_close:
            return self._final(key, record, ClaimState.FAILED, "claim window missed", "claims")
        await self._ensure_recorded(key.n, 0, 1)
        root48 = bytes.fromhex(record.root48[2:])
        try:
            receipt = await self.chain.claim(key.app, key.service_id, key.n, record.slots, root48)
        except RelaynetError:
            # e.g. "already claimed": an earlier copy landed after all (a dropped transaction
            # re-included from a mempool). The same root on the chain is success.
            onchain = await self.chain.claim_state(key.app, key.service_id, key.n)
            if (
                onchain.status is ClaimStatus.NONE
                or onchain.root48 != root48[: len(onchain.root48)]
            ):
                raise
            log.info(
                "session %s/%s n=%d: already claimed with this root",
                key.service_id,
                record.app,
                key.n,
            )
            return self._save(key, replace(record, state=ClaimState.CLAIMED))
        self._spent(receipt)
        if self.metrics is not None:
            self.metrics.claims.labels("submitted").inc()
        log.info(
            "claimed session %d (%s, app %s): %s for %d compute units, gas %s",
            key.n,
            key.service_id,
            record.app,
            rly(record.claimed),
            record.sum,
            eth(receipt.cost_wei),
        )
        return self._save(key, replace(record.spent(receipt), state=ClaimState.CLAIMED))

    async def _after_claim_window(
        self, key: SessionKey, w: Windows, head: int, record: ClaimRecord
    ) -> ClaimRecord:
        if head <= w.claim_close or head < w.h_c_block + self.confirmations:
            return record
        await self._ensure_recorded(key.n, 2)
        h_c = await self._hash(w.h_c_block)
        econ = self.snapshot.economic_params(key.n)
        required = proof_required(
            record.claimed,
            econ.proof_threshold,
            bytes.fromhex(record.root48[2:]),
            h_c,
            econ.proof_probability_bps,
        )
        state = ClaimState.PROVING if required else ClaimState.NOT_REQUIRED
        return self._save(key, replace(record, required=required, state=state))

    async def _prove(
        self, key: SessionKey, w: Windows, head: int, record: ClaimRecord
    ) -> ClaimRecord:
        onchain = await self.chain.claim_state(key.app, key.service_id, key.n)
        if onchain.status in (ClaimStatus.PROVED, ClaimStatus.SETTLED, ClaimStatus.VOIDED):
            return self._save(key, replace(record, state=ClaimState.PROVED))
        if head < w.proof_open - 1:
            return record
        if head > w.proof_close:
            return self._final(key, record, ClaimState.FAILED, "proof window missed", "proofs")
        h_c = await self._hash(w.h_c_block)
        h_g = await self._hash(w.h_g_block)
        sparams = self.snapshot.service_params(key.service_id, key.n)
        summary = self._trie(key, h_g, sparams.difficulty_bits, record)
        if "0x" + summary.root.encode().hex() != record.root48:
            return self._final(
                key, record, ClaimState.FAILED, "log no longer matches the claimed root", "proofs"
            )
        r = challenge(h_c, bytes.fromhex(record.session_id[2:]), self.supplier, record.sum)
        proof = summary.trie.prove(r)
        assert proof.ref is not None
        leaf = self.relay_log.read_leaf(key, proof.ref)
        receipt = await self.chain.prove(key.app, key.service_id, key.n, leaf, proof.siblings)
        self._spent(receipt)
        if self.metrics is not None:
            self.metrics.proofs.labels("submitted").inc()
        return self._save(key, replace(record.spent(receipt), state=ClaimState.PROVED))

    async def _settle(
        self, key: SessionKey, w: Windows, head: int, record: ClaimRecord
    ) -> ClaimRecord:
        if head <= w.proof_close:
            return record
        onchain = await self.chain.claim_state(key.app, key.service_id, key.n)
        if onchain.status in (ClaimStatus.SETTLED, ClaimStatus.VOIDED):
            return self._final(key, record, ClaimState.SETTLED, "settled by someone else", "")
        receipt = await self.chain.settle(key.app, key.service_id, key.n)
        self._spent(receipt)
        reward = int(receipt.extra.get("supplier", 0))
        paid = int(receipt.extra.get("paid", 0))
        if self.metrics is not None:
            self.metrics.settlements.labels("submitted").inc()
            self.metrics.rewards.inc(reward)
        record = replace(record.spent(receipt), reward=reward, paid=paid)
        log.info(
            "settled session %d (%s, app %s): reward %s (app paid %s), gas %s for the session",
            key.n,
            key.service_id,
            record.app,
            rly(reward),
            rly(paid),
            eth(record.gas_wei),
        )
        return self._final(key, record, ClaimState.SETTLED, "", "")

    def _unclaimable(
        self, key: SessionKey, record: ClaimRecord, summary: TrieSummary
    ) -> ClaimRecord:
        """The relayer answered these relays while it held a slot; a reorganisation re-drew
        the session (a new ``H_n``) and it holds none now: report them, claim nothing."""
        if self.metrics is not None:
            self.metrics.unclaimable_relays.inc(summary.relays)
        log.warning(
            "session %s/%s n=%d: %d relays unclaimable — the session was re-drawn (settlement"
            " chain reorganisation) and this supplier holds no slot in it",
            key.service_id,
            record.app,
            key.n,
            summary.relays,
        )
        reason = "unclaimable: no slot held in the session as drawn now (re-drawn by a reorg)"
        return self._final(key, record, ClaimState.FAILED, reason, "claims")

    def _skip(self, key: SessionKey, record: ClaimRecord, label: str, reason: str) -> ClaimRecord:
        """Skip the claim for ``reason`` (``label`` one of :data:`SKIP_REASONS`)."""
        if self.metrics is not None:
            self.metrics.claims_skipped.labels(label).inc()
        return self._final(key, record, ClaimState.SKIPPED, reason, "claims")

    def _final(
        self, key: SessionKey, record: ClaimRecord, state: ClaimState, reason: str, metric: str
    ) -> ClaimRecord:
        if self.metrics is not None and metric:
            counter = self.metrics.claims if metric == "claims" else self.metrics.proofs
            counter.labels(state.value).inc()
        if reason:
            log.info(
                "session %s/%s n=%d: %s — %s", key.service_id, record.app, key.n, state, reason
            )
        return self._save(key, replace(record, state=state, reason=reason))

    def _spent(self, receipt: TxReceipt) -> None:
        if self.metrics is not None:
            self.metrics.gas.inc(receipt.cost_wei)
