"""A gateway whose follower lags the chain (just after the settlement RPC was unreachable) never
fails a read for signing a session that is over: on SESSION_EXPIRED it has its follower catch
up and signs for the next session (in process: a real SessionBook and Router, relayers scripted
by their own head)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from gateway.config import RelayConfig
from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayAnswer, RelayError, Target, classify_code
from gateway.router import ClientContext, Router
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionBook
from protocol.errors import ErrorCode, Refusal
from rollups.catalogue import catalogue_spec
from rollups.registry import handler_for
from session.memory import MemorySnapshot
from session.snapshot import ServiceInfo, SessionShape, SupplierInfo
from session.windows import check_relay_session, windows
from tests.gateway.test_router import READ, _echo_result, call

SHAPE = SessionShape(B0=100, L=10, G=2, CO=1, CW=5, PO=0, PW=5, S=6)
APP = b"\xaa" * 20
SID = "devnet"


def chain_snapshot(head: int) -> MemorySnapshot:
    """Three suppliers staked in session 0; every boundary hash up to ``head`` known."""
    snap = MemorySnapshot(SHAPE)
    snap.register_service(ServiceInfo(SID, b"\x0f" * 20))
    for i in (1, 2, 3):
        info = SupplierInfo(bytes([i]) * 20, 1000, bytes([i]) * 32, {SID: f"http://r{i}.test/"})
        snap.stake_supplier(SID, info, current_session=0)
    advance(snap, head)
    return snap


def advance(snap: MemorySnapshot, head: int) -> None:
    """What a follower's pass does: the boundary hashes up to ``head``, then the head."""
    for n in range(0, 30):
        h = windows(SHAPE, n).h_n_block
        if h <= head:
            snap.set_block_hash(h, h.to_bytes(32, "big"))
    snap.set_head(head)


@dataclass
class Relayers:
    """Every relayer at the chain's head ``head``: the relayer's own session check."""

    head: int
    signed: list[int] = field(default_factory=list)

    async def relay(self, target: Target, payload: bytes, compute_units: int, **_: object):  # type: ignore[no-untyped-def]
        self.signed.append(target.n)
        try:
            check_relay_session(self.head, target.n, SHAPE)
        except Exception as exc:
            code = ErrorCode(exc.code.value)  # type: ignore[attr-defined]
            raise RelayError(
                f"{code.value}: {exc}",
                outcome=classify_code(code),
                relay_code=code,
                supplier=target.supplier,
                refusal=Refusal.VIEW,
            ) from None
        return RelayAnswer(target.supplier, 200, _echo_result(payload), "rq", "rc", 0.001, True)

    def confirm(self, answer: RelayAnswer) -> None:
        return None


def _router(book: SessionBook, relayers: Relayers) -> tuple[Router, ClientContext]:
    """A real router over ``book`` relaying to the scripted ``relayers`` (no hedging)."""
    router = Router(
        sessions=book,
        client=relayers,  # type: ignore[arg-type]
        qos=Qos(),
        cache=None,
        metrics=GatewayMetrics(),
        config=RelayConfig(hedge_delay=None, max_attempts=3, deadline=5.0),
    )
    svc = Service(SID, catalogue_spec("devnet"), handler_for("evm"))
    return router, ClientContext("client-1", "c1", svc, APP)


async def test_a_lagging_follower_catches_up_instead_of_failing_the_read() -> None:
    grace_end_1 = windows(SHAPE, 1).grace_end  # 121
    snap = chain_snapshot(head=grace_end_1 - 3)  # the follower froze in session 1's grace
    chain_head = grace_end_1 + 4  # the chain (and every relayer) moved on
    refreshed: list[int] = []

    async def follower_pass(timeout: float) -> bool:
        # the follower's next pass, asked for now: it reads the chain's head
        refreshed.append(chain_head)
        advance(snap, chain_head)
        return True

    book = SessionBook(snap, lag=1, refresh=follower_pass)
    relayers = Relayers(chain_head)
    router, ctx = _router(book, relayers)

    assert book.signing(SID, APP).n == 1  # by its own (stale) head the gateway signs for 1
    answer = await router.execute(ctx, call(READ))
    assert answer.status == 200
    assert relayers.signed[0] == 1 and relayers.signed[-1] == 2, relayers.signed
    assert refreshed == [chain_head]  # the follower was asked for a pass once
    # and from then on it signs for the session the chain is in
    relayers.signed.clear()
    assert (await router.execute(ctx, call(READ))).status == 200
    assert relayers.signed == [2]


async def test_a_follower_sessions_behind_is_waited_for_never_bounced_back() -> None:
    """The follower froze knowing session 2's hash but signing for 1, the chain is in session
    4, and the follower's next passes fail a while (the RPC just came back): after a relayer
    said 2 is over, the gateway waits for its follower on 2 — it never signs for 1 again —
    and the read is answered once a pass gets through."""
    snap = chain_snapshot(head=windows(SHAPE, 2).h_n_block)  # knows H_2, still signs for 1
    chain_head = windows(SHAPE, 4).start + 2
    passes: list[bool] = []

    async def follower_pass(timeout: float) -> bool:
        ok = len(passes) >= 5  # the first five passes fail
        passes.append(ok)
        if ok:
            advance(snap, chain_head)
        return ok

    book = SessionBook(snap, lag=1, refresh=follower_pass)
    relayers = Relayers(chain_head)
    router, ctx = _router(book, relayers)

    assert book.signing(SID, APP).n == 1
    answer = await router.execute(ctx, call(READ))
    assert answer.status == 200
    signed = relayers.signed
    assert signed[0] == 1 and signed[-1] == 4, signed
    assert all(a <= b for a, b in pairwise(signed)), signed  # never back
    assert passes == [False] * 5 + [True]


def test_the_signing_view_is_drawn_again_after_a_reorganisation() -> None:
    """The session a pair signs for is remembered per head's session, and forgotten with every
    hydrated session when the settlement chain reorganises (its suppliers may differ)."""
    snap = chain_snapshot(125)
    book = SessionBook(snap)
    first = book.signing(SID, APP)
    assert book.signing(SID, APP) is first  # remembered: no second hydration
    hydrations = book.hydrations
    book.forget()
    again = book.signing(SID, APP)
    assert again is not first and again.n == first.n
    assert book.hydrations == hydrations + 1
