"""The claimer and its log (issue 12): the trie is rebuilt from exactly the records the claim
counted, and boundary block hashes are checkpointed after a random wait, only when missing."""

from __future__ import annotations

from pathlib import Path

from protocol.trie import Root
from relayer.claimer import Claimer, ClaimState, ClaimStore
from relayer.config import ClaimsConfig
from relayer.interfaces import ClaimStatus
from relayer.relaylog import RelayLog, SessionLog
from session.windows import windows
from tests.relayer.test_claimer import (
    APP,
    KEY,
    SHAPE,
    SUPPLIER,
    FakeChain,
    N,
    W,
    _leaf,
    _relay_key,
    _snapshot,
)


def _claimer(chain: FakeChain, rlog: RelayLog, store: ClaimStore, **cfg: object) -> Claimer:
    cfg = {"min_reward": 0, **cfg}
    config = ClaimsConfig(retry_initial=0.01, retry_max=0.05, **cfg)  # type: ignore[arg-type]
    return Claimer(
        config=config,
        snapshot=chain.snapshot,
        chain=chain,
        relay_log=rlog,
        store=store,
        supplier=SUPPLIER,
    )


async def test_restart_proves_from_exactly_the_counted_records(tmp_path: Path) -> None:
    """Records that reach the log after the claim (however they got there) are not in the
    trie a restarted claimer rebuilds: the proof still matches the claimed root."""
    chain = FakeChain(_snapshot(), height=W.claim_open - 1)
    rlog = RelayLog(tmp_path / "logs")
    log = rlog.open(KEY)
    for i, cu in enumerate((1, 2, 3)):
        leaf = _leaf(i, cu)
        rlog.append(log, _relay_key(leaf), leaf)
    await rlog.commit()
    store = ClaimStore(tmp_path / "claims")
    await _claimer(chain, rlog, store).tick()
    _status, root48, _slots = chain.claims[(APP, "devnet", N)]
    assert Root.decode(root48).count == 3
    record = store.load(KEY)
    assert record is not None and record.counted == ((0, 3),)

    # a record lands behind the claim: in a further segment, and at the end of segment 0
    late = SessionLog(KEY, rlog.path_for(KEY), 1, 0)
    extra = _leaf(7, 9)
    late.append(_relay_key(extra), extra)
    late.close()
    with open(rlog.path_for(KEY), "ab") as fh:
        from relayer.relaylog import _frame

        more = _leaf(8, 9)
        fh.write(_frame(_relay_key(more), more))

    chain.height = W.claim_close + 1
    restarted = _claimer(chain, RelayLog(tmp_path / "logs"), store)
    await restarted.tick()
    assert chain.claims[(APP, "devnet", N)][0] is ClaimStatus.PROVED
    record = store.load(KEY)
    assert record is not None and record.state is ClaimState.PROVED, record.reason


async def test_checkpoints_after_a_random_wait_only_when_missing(tmp_path: Path) -> None:
    """With no claim to make, the claimer checkpoints H_n at a session's start, H_g after its
    grace and H_c after its claim window — each 1..wait blocks late, once, and not at all when
    someone else recorded it."""
    n = N + 1
    w = windows(SHAPE, n)
    chain = FakeChain(_snapshot())
    claimer = _claimer(chain, RelayLog(tmp_path / "logs"), ClaimStore(tmp_path / "c"))
    claimer.config = ClaimsConfig(checkpoint_wait_blocks=3, min_reward=0)
    everything = set(range(1000))
    for kind, block in ((0, w.h_n_block), (1, w.h_g_block), (2, w.h_c_block)):
        chain.recorded = everything - {block}  # only this boundary is missing
        chain.height = block
        await claimer.tick()
        assert chain.calls.count("checkpoint") == kind, "checkpointed without waiting"
        chain.height = block + 3
        await claimer.tick()
        assert chain.calls.count("checkpoint") == kind + 1
        assert (await chain.recorded_hashes(n))[kind] is not None
        await claimer.tick()
        assert chain.calls.count("checkpoint") == kind + 1  # recorded: never again

    # recorded by someone else before the wait ended: no checkpoint
    block = windows(SHAPE, n + 1).h_n_block
    chain.recorded = everything - {block}
    chain.height = block
    await claimer.tick()
    chain.recorded.add(block)
    chain.height = block + 3
    await claimer.tick()
    assert chain.calls.count("checkpoint") == 3
