"""The relay log under faults (DESIGN §6 durability, issue 12), end to end on anvil.

Each test runs the relayer as a subprocess, hurts its log — a follower lagging past the claim,
a disk that fills up mid-record (a small tmpfs in a mount namespace), fsyncs that fail — then
restarts it on the same data folder and drives the session through claim, proof and
settlement (``min_reward = 0``, every claim needs a proof on devnet): every answered relay is
claimed, every claim is proved, nothing is slashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest

from ledger.client import ClaimStatus, LedgerClient, claim_id_of
from session.windows import windows
from tests.support.relay_client import SignedRelay, rpc
from tests.support.relayer_net import BIG_APP_STAKE, Net, relayer_network
from tests.support.relayer_proc import RelayerProcess, ServiceBackend, write_relayer_files

pytestmark = pytest.mark.slow  # starts processes (anvil, our relayer, a mount namespace)

HEADER = 8
RECORD = 2 + 4 + 32 + 326 + 4


def _sign(net: Net, n: int) -> SignedRelay:
    return net.sign(rpc("eth_chainId"), n=n)


@dataclass
class Answer:
    status: int
    body: bytes


async def _relay(net: Net, relay: SignedRelay) -> Answer:
    async with (
        aiohttp.ClientSession() as s,
        s.post(net.relayer.relay_url, data=relay.payload, headers=relay.headers()) as r,
    ):
        return Answer(r.status, await r.read())


async def _relay_ok(net: Net, n: int, answered: list[SignedRelay]) -> None:
    relay = _sign(net, n)
    got = await _relay(net, relay)
    assert got.status == 200, got.body
    answered.append(relay)


def _set_config(net: Net, pattern: str, line: str) -> None:
    cfg = net.files.config
    text = cfg.read_text()
    assert re.search(pattern, text, re.M)
    cfg.write_text(re.sub(pattern, line, text, flags=re.M))


def _metric(net: Net, name: str) -> float:
    with urllib.request.urlopen(net.relayer.metrics_url, timeout=5) as resp:  # noqa: S310
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not found")


def _readyz(net: Net) -> int:
    try:
        with urllib.request.urlopen(f"{net.relayer.url}/readyz", timeout=5) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def _until(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _claim_status(client: LedgerClient, cid: bytes) -> ClaimStatus:
    state = await client.claim_state(cid)
    return ClaimStatus.NONE if state is None else state.status


def _mine_to(net: Net, height: int) -> None:
    ahead = height - net.chain.block_number()
    if ahead > 0:
        net.chain.mine(ahead)


async def _claim_prove_settle(
    net: Net, n: int, answered: list[SignedRelay], *, restart_before: str = "claim"
) -> None:
    """Drive session ``n`` to settlement; the relayer is restarted (same data folder) just
    before ``restart_before`` ("claim", "proof" or "settle"). Every answered relay must be in
    the claim, the claim proved and settled, and the supplier's stake untouched (no slash)."""
    w = windows(net.network.deployment.shape, n)
    client = LedgerClient(net.chain.url, net.network.deployment)
    try:
        cid = claim_id_of(net.supplier.address, net.apps["main"].address, "devnet", n)
        stake_before = (await client.supplier(net.supplier.address)).stake
        balance_before = await client.balance(net.supplier.address)
        if restart_before == "claim":
            net.relayer.stop()
            net.relayer.start()
        _mine_to(net, w.claim_open - 1)
        await _until("the claim", lambda: _is(client, cid, ClaimStatus.OPEN))
        state = await client.claim_state(cid)
        assert state is not None
        assert state.count == len(answered), (state.count, len(answered))
        assert state.sum == len(answered)  # one compute unit each
        if restart_before == "proof":
            net.relayer.stop()
            net.relayer.start()
        _mine_to(net, w.claim_close + 1)
        await _until("the proof", lambda: _is(client, cid, ClaimStatus.PROVED))
        if restart_before == "settle":
            net.relayer.stop()
            net.relayer.start()
        _mine_to(net, w.proof_close + 1)
        await _until("the settlement", lambda: _is(client, cid, ClaimStatus.SETTLED))
        state = await client.claim_state(cid)
        assert state is not None and state.status is ClaimStatus.SETTLED  # not VOIDED
        assert (await client.supplier(net.supplier.address)).stake == stake_before
        reward = await client.balance(net.supplier.address) - balance_before
        assert reward == state.claimed * 9000 // 10000
    finally:
        await client.close()


async def _recorded(client: LedgerClient, n: int, kind: int) -> bool:
    return (await client.checkpoints(n))[kind] is not None


async def _is(client: LedgerClient, cid: bytes, status: ClaimStatus) -> bool:
    got = await _claim_status(client, cid)
    assert got is not ClaimStatus.VOIDED, "the claim was slashed"
    return got >= status


async def _fresh_session(net: Net) -> int:
    """Mine to the first block of the next session (so the test has all of it) and wait until
    the relayer's follower has seen it."""
    shape = net.network.deployment.shape
    n = net.session() + 1
    start = windows(shape, n).start
    _mine_to(net, start)
    await _until("the follower", lambda: _metric(net, "relaynet_relayer_follower_head") >= start)
    return n


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """One chain, backend and staked network for the module (each test has its own sessions)."""
    with relayer_network(
        tmp_path_factory.mktemp("relaylog-faults"),
        services={"devnet": ServiceBackend("anvil")},
        staked_services=("devnet",),
        app_services={"main": ("devnet", BIG_APP_STAKE)},
        claims={"min_reward": 0},
    ) as shared:
        shared.relayer.stop()
        yield shared


@pytest.fixture
def net(network: Net, tmp_path: Path) -> Iterator[Net]:
    """The shared network with a relayer of this test's own (config and data folder), not
    started yet: each test starts it the way it needs."""
    files = write_relayer_files(
        tmp_path / "relayer",
        rpc_url=network.chain.url,
        deployment=network.network.deployment,
        account=network.supplier,
        receipt=network.receipt,
        services={"devnet": ServiceBackend(network.backend.url)},
        claims={"min_reward": 0},
    )
    relayer = RelayerProcess(files)
    mine = replace(network, files=files, relayer=relayer)
    try:
        yield mine
    finally:
        mine.relayer.stop()


# -- a follower lagging past the claim ------------------------------------------------------


async def test_lagging_follower_cannot_reopen_a_claimed_log(net: Net) -> None:
    """The claimer (reading the chain's head) retires and claims session n while the follower
    (polling once a minute) still thinks n is in grace: a relay for n is refused, not written
    behind the claim's trie; after a restart the claim is proved and settled."""
    net.relayer.start()
    n = await _fresh_session(net)
    w = windows(net.network.deployment.shape, n)
    # a quiet chain (no claims yet): the relayer itself checkpoints H_n within a few blocks
    client = LedgerClient(net.chain.url, net.network.deployment)
    try:
        _mine_to(net, w.h_n_block + 3)
        await _until("H_n", lambda: _recorded(client, n, 0))
    finally:
        await client.close()
    answered: list[SignedRelay] = []
    for _ in range(4):
        await _relay_ok(net, n, answered)
    net.relayer.stop()
    _mine_to(net, w.grace_end - 1)  # the last height at which n's relays are accepted
    _set_config(net, r"^poll_interval = .*$", "poll_interval = 60")
    net.relayer.start()  # the follower syncs once, to grace_end - 1, and then lags
    client = LedgerClient(net.chain.url, net.network.deployment)
    try:
        cid = claim_id_of(net.supplier.address, net.apps["main"].address, "devnet", n)
        _mine_to(net, w.claim_open - 1)
        await _until("the claim", lambda: _is(client, cid, ClaimStatus.OPEN))
    finally:
        await client.close()
    late = _sign(net, n)
    got = await _relay(net, late)
    if got.status == 200:
        answered.append(late)  # answered: it must then be claimed too (it cannot be)
    assert got.status == 410 and b"SESSION_EXPIRED" in got.body, got
    _set_config(net, r"^poll_interval = .*$", "poll_interval = 0.1")
    net.relayer.stop()
    net.relayer.start()
    await _claim_prove_settle(net, n, answered, restart_before="none")


# -- ENOSPC mid-record: a small tmpfs in a mount namespace ----------------------------------


class _Namespace:
    """A private mount namespace holding a tmpfs at ``target``, alive while its anchor process
    runs (the anchor exits when the test closes its stdin — or dies with the test — and the
    tmpfs goes with the namespace). The test reaches the tmpfs via /proc/<anchor>/root."""

    def __init__(self, target: Path, size: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.anchor = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount -t tmpfs -o size="$1",mode=0700 tmpfs "$0" && echo mounted && exec cat',
                str(target),
                size,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.anchor.stdout is not None
        line = self.anchor.stdout.readline()
        if line.strip() != b"mounted":
            self.close()
            raise RuntimeError(f"cannot mount a tmpfs in a mount namespace: {line!r}")

    def path(self, relative: str = "") -> Path:
        """``target/relative`` as seen inside the namespace."""
        return Path(f"/proc/{self.anchor.pid}/root{self.target}") / relative

    def close(self) -> None:
        if self.anchor.stdin is not None:
            with contextlib.suppress(OSError):
                self.anchor.stdin.close()
        try:
            self.anchor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.anchor.kill()
            self.anchor.wait(timeout=5)
        if self.anchor.stdout is not None:
            self.anchor.stdout.close()


class _NamespacedRelayer(RelayerProcess):
    """The relayer subprocess started inside the namespace (``nsenter``), so its data
    folder's ``logs`` is the tmpfs."""

    ns: _Namespace | None = None

    def command(self) -> list[str]:
        assert self.ns is not None
        return ["nsenter", "-t", str(self.ns.anchor.pid), "-m", "--", *super().command()]


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                if os.write(fd, b"\0" * 4096) == 0:
                    return
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return
                raise
    finally:
        os.close(fd)


async def test_disk_full_mid_record_hides_no_later_record(net: Net) -> None:
    """The log's file system fills up in the middle of a record: that relay is refused
    (INTERNAL, retryable), so are the next while the disk is full; once space is back the
    relays land in a fresh segment. After a restart every answered relay is claimed."""
    ns = _Namespace(net.files.data_dir / "logs", "64k")
    try:
        relayer = _NamespacedRelayer(net.files)
        relayer.ns = ns
        net.relayer = relayer
        relayer.start()
        n = await _fresh_session(net)
        answered: list[SignedRelay] = []
        for _ in range(3):
            await _relay_ok(net, n, answered)
        logs = ns.path("devnet")
        segment0 = next(logs.glob("*.log"))
        _fill(ns.path("filler"))
        refused = None
        for _ in range(40):
            relay = _sign(net, n)
            got = await _relay(net, relay)
            if got.status != 200:
                refused = got
                break
            answered.append(relay)
        assert refused is not None, "the full disk never refused a relay"
        assert refused.status == 500 and b'"INTERNAL"' in refused.body, refused
        assert b'"retryable": true' in refused.body or b'"retryable":true' in refused.body
        torn = segment0.stat().st_size - HEADER
        assert torn % RECORD != 0, "the failed write did not stop mid-record"
        got = await _relay(net, _sign(net, n))  # still full: refused, nothing written
        assert got.status == 500, got
        ns.path("filler").unlink()
        for _ in range(4):
            await _relay_ok(net, n, answered)
        await _claim_prove_settle(net, n, answered)
    finally:
        net.relayer.stop()
        ns.close()


# -- fsync failures ---------------------------------------------------------------------------


async def test_failed_fsyncs_rewrite_then_stop_serving_and_lose_nothing(net: Net) -> None:
    """An injected fsync failure (which also loses the segment's unsynced pages): the records
    are rewritten to a fresh segment and relays go on. A second failure whose rewrite fails
    too: readyz 503, relays refused (INTERNAL), the record kept in memory — the claimer still
    claims it, the shutdown saves it, and the restarted relayer proves and settles the claim;
    nothing slashed."""
    fault = net.files.directory / "fsync-fault"
    config = net.files.config
    config.write_text(
        config.read_text().replace("[log]\n", f'[log]\nfsync_fault_file = "{fault}"\n', 1)
    )
    net.relayer.start()
    n = await _fresh_session(net)
    answered: list[SignedRelay] = []
    for _ in range(3):
        await _relay_ok(net, n, answered)
    synced = "relaynet_relayer_log_fsync_batch_records_sum"
    await _until("the first fsyncs", lambda: _metric(net, synced) >= 3)

    fault.write_text("1")  # the next fsync fails: the rewrite succeeds
    await _relay_ok(net, n, answered)
    failures = "relaynet_relayer_log_fsync_failures_total"
    await _until("the failed fsync", lambda: _metric(net, failures) == 1)
    assert not fault.exists()
    await _until("the rewrite", lambda: _metric(net, "relaynet_relayer_log_state") == 0)
    assert _readyz(net) == 200
    for _ in range(2):
        await _relay_ok(net, n, answered)
    # the fault must hit the next relay's fsync, not theirs: wait until they are synced
    await _until("the relays synced", lambda: _metric(net, synced) >= len(answered))

    fault.write_text("2")  # the next fsync and the rewrite's fsync fail: the log is broken
    await _relay_ok(net, n, answered)
    await _until("the broken log", lambda: _metric(net, "relaynet_relayer_log_state") == 2)
    assert _readyz(net) == 503
    got = await _relay(net, _sign(net, n))
    assert got.status == 500 and b'"INTERNAL"' in got.body, got
    await _claim_prove_settle(net, n, answered, restart_before="proof")
