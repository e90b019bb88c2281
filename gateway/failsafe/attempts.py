"""One call's attempts: retries, hedges, session switches and answer checks (DESIGN §3.3).

:class:`Attempts` relays one payload within a session view until an answer passes the checks
or the call's rules (:class:`~gateway.failsafe.retry.RetryState`, the hedge delay of
:class:`~gateway.failsafe.hedge.Hedger`, the deadline) say stop. Its state is that of one call:
who was tried, what is in flight, which failures were seen. The router does one attempt and
says what a supplier did (:class:`AttemptHost`); this module only decides what comes next.

- attempts run one after the other on the call's own coroutine, each awaited directly (no
  task); a call that may not be hedged has no timer beyond the attempt's own;
- a read that may be hedged is watched by one timer while its attempt is out: when the hedge
  delay passes without an answer, a second attempt goes to another supplier — as a task, the
  only one a call makes; the first good answer wins and the loser is cancelled (the hedge's
  answer interrupts the wait for the attempt before it, see :meth:`Attempts._watch`); a hedge
  that fails or answers badly is noted and the wait goes on; the deadline ends the call;
- an answer that fails a check (a head height above the floor rule, an answer the handler
  wants from elsewhere) is retried on another supplier when the call is idempotent;
- a refusal about session timing switches the session (costs no attempt);
- an answer over the call's cap is retried once elsewhere; the oversized ones are lies only
  when another supplier answered within the cap.

This module is not imported by ``gateway/failsafe/__init__`` (the relay client imports the
retry primitives from that package).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from gateway.errors import ClientReason, NoSupplier, RelayFailed, ResponseTooLarge
from gateway.failsafe.hedge import Hedger
from gateway.failsafe.retry import Outcome, RetryState
from gateway.metrics import GatewayMetrics
from gateway.relay_client import RelayAnswer, RelayError, Target
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionView
from protocol.errors import ErrorCode, Refusal
from rollups.handler import CallPlan

__all__ = ["AttemptHost", "Attempts"]

# Refusals about session timing: sign for another session, costs no attempt.
_SESSION_TIMING = frozenset({ErrorCode.SESSION_NOT_STARTED, ErrorCode.SESSION_EXPIRED})
# Refusals a client may see (DESIGN §3.3): only when every supplier tried answered one of them.
_SHOWN = frozenset({Refusal.VIEW, Refusal.RETRYABLE})
_MAX_SWITCHES = 10  # session switches per call (each may wait ~50 ms for the follower)


class AttemptHost(Protocol):
    """What the attempts need from the router: one attempt, and verdicts on suppliers."""

    qos: Qos
    metrics: GatewayMetrics

    def attempt(
        self,
        svc: Service,
        target: Target,
        plan: CallPlan,
        payload: bytes,
        per_try: float,
        inline: bool = False,
    ) -> Coroutine[Any, Any, RelayAnswer]: ...

    def lied(self, sid: str, supplier: bytes, kind: str) -> None: ...

    def bad_height(self, svc: Service, view: SessionView, plan: CallPlan, body: bytes) -> bool: ...

    async def other_session(
        self, sid: str, view: SessionView, code: ErrorCode | None
    ) -> SessionView | None: ...


class Attempts:
    """The attempts of one call within ``view`` (see the module's text for the rules)."""

    __slots__ = (
        "current",
        "dead",
        "deadline",
        "failures",
        "fallback",
        "first",
        "hedged",
        "hedger",
        "host",
        "loop",
        "oversize_retried",
        "oversized",
        "payload",
        "pending",
        "per_try",
        "pinned_to",
        "plan",
        "queued",
        "retry",
        "sid",
        "stop",
        "svc",
        "switches",
        "switching",
        "timer",
        "tried",
        "view",
        "watcher",
    )

    def __init__(
        self,
        host: AttemptHost,
        svc: Service,
        view: SessionView,
        plan: CallPlan,
        payload: bytes,
        *,
        retry: RetryState,
        per_try: float,
        deadline: float,
        hedger: Hedger | None,
        pinned_to: bytes | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.host, self.svc, self.view, self.plan, self.payload = host, svc, view, plan, payload
        self.sid = svc.service_id
        self.retry = retry
        self.per_try = per_try
        self.deadline = deadline  # loop time
        self.hedger = hedger  # None: this call is never hedged
        self.pinned_to = pinned_to
        self.loop = loop or asyncio.get_running_loop()
        self.tried: set[bytes] = set()
        self.dead: set[bytes] = set()  # unreachable in any session
        self.queued: tuple[bytes, Coroutine[Any, Any, RelayAnswer]] | None = None
        self.current: bytes | None = None  # the attempt out on the call's coroutine
        self.pending: dict[asyncio.Task[RelayAnswer], bytes] = {}  # the hedge, a task
        self.failures: list[RelayError] = []
        self.oversized: list[bytes] = []
        self.oversize_retried = False
        self.fallback: RelayAnswer | None = None  # an answer kept for when nothing better comes
        self.first: bytes | None = None
        self.hedged = False
        self.switches = 0
        self.switching: asyncio.Task[None] | None = None  # a hedge's session switch
        # while a hedged call's attempt is watched (_watch): its task, timer, and what ends it
        self.watcher: asyncio.Task[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stop: RelayAnswer | BaseException | None = None

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> RelayAnswer:
        """The answer to return, or raise :class:`RelayFailed` / :class:`ResponseTooLarge` /
        :class:`NoSupplier` once no attempt may follow."""
        if not self._launch():
            raise NoSupplier(self._no_supplier())
        try:
            while self.queued is not None or self.pending:
                if self.deadline - self.loop.time() <= 0:
                    raise RelayFailed("deadline exceeded", relay_code=ErrorCode.BACKEND_TIMEOUT)
                if self.queued is not None:
                    won = await self._next()
                else:
                    won = await self._race()
                if won is not None:
                    return self._won(won)
        finally:
            self._end()
        return self._give_up()

    async def _next(self) -> RelayAnswer | None:
        """Await the queued attempt on the call's own coroutine (a hedged read's watched,
        :meth:`_watch`); the answer that ends the call, or None."""
        assert self.queued is not None
        supplier, attempt = self.queued
        self.queued = None
        self.current = supplier  # in flight until its outcome is taken
        try:
            if self.hedger is None:
                answer = await attempt
            else:
                answer = await self._watch(attempt)
        except RelayError as exc:
            await self._switched()
            self.current = None
            await self._failed(supplier, exc)
            return None
        if self.stop is not None:
            return answer  # the hedge's, taken while this attempt was out
        await self._switched()
        self.current = None
        return answer if self._accepted(supplier, answer) else None

    async def _race(self) -> RelayAnswer | None:
        """Wait for the hedge still out once the attempt before it ended (or the deadline)."""
        done = await self._first_done(self.deadline - self.loop.time())
        for task in done:
            supplier = self.pending.pop(task)
            exc = task.exception()
            if exc is None:
                if self._accepted(supplier, task.result()):
                    return task.result()
            elif isinstance(exc, RelayError):
                await self._failed(supplier, exc)
            else:
                raise exc
        return None

    async def _first_done(self, wait: float) -> list[asyncio.Task[RelayAnswer]]:
        """The attempts in flight that finished once one did or ``wait`` seconds passed: one
        future and one timer (what ``asyncio.wait`` does, without its sets and copies)."""
        waiter: asyncio.Future[None] = self.loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = self.loop.call_later(wait, wake)
        for task in self.pending:
            task.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            for task in self.pending:
                task.remove_done_callback(wake)
        return [task for task in self.pending if task.done()]

    def _end(self) -> None:
        """The call is over: whatever is still out is cancelled."""
        if self.queued is not None:
            self.queued[1].close()
        for task in self.pending:
            task.cancel()
        if self.switching is not None:
            if self.switching.done() and not self.switching.cancelled():
                self.switching.exception()  # retrieved: the call ended on something else
            self.switching.cancel()

    # -- a hedged call's watched attempt ---------------------------------------------------
    async def _watch(self, attempt: Coroutine[Any, Any, RelayAnswer]) -> RelayAnswer:
        """Await ``attempt`` while one timer watches it (:meth:`_on_timer`: the hedge, then
        the deadline). The hedge's good answer or the deadline ends the wait at once by
        cancelling this task (:meth:`_interrupt`): the attempt is then cancelled like any
        loser — its connection closed, its budget given back — and the cancel taken back here.
        A cancel from outside (the client went away) is never taken for ours."""
        task = asyncio.current_task(self.loop)  # given the loop: no getpid() (3.11)
        assert task is not None
        cancelling = task.cancelling()
        self.watcher, self.timer = task, self._arm()
        try:
            return await attempt
        except asyncio.CancelledError:
            if self.stop is None or task.uncancel() > cancelling:
                raise
        finally:
            self.watcher = None
            self.timer.cancel()
        if isinstance(self.stop, BaseException):
            raise self.stop
        assert self.stop is not None
        return self.stop  # the hedge's answer, accepted already

    def _arm(self) -> asyncio.TimerHandle:
        """The watching timer: at the hedge delay while a hedge is due, else the deadline."""
        at = self.deadline
        if self._hedge_due():
            assert self.hedger is not None
            at = min(at, self.loop.time() + self.hedger.delay())
        return self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        """Past the deadline, end the call; else send the hedge when it is due, and watch on."""
        if self.watcher is None:
            return
        try:
            if self.loop.time() >= self.deadline:
                failed = RelayFailed("deadline exceeded", relay_code=ErrorCode.BACKEND_TIMEOUT)
                self._interrupt(failed)
                return
            if self._hedge_due() and self._launch():
                self.hedged = True
                self.host.metrics.hedges.labels(self.sid, "fired").inc()
            self.timer = self._arm()
        except Exception as exc:  # raised by run(), as if it had sent the hedge itself
            self._interrupt(exc)

    def _hedge_done(self, task: asyncio.Task[RelayAnswer]) -> None:
        """The hedge ended while the attempt before it is still out (afterwards
        :meth:`_race` takes its outcome): a good answer ends the wait; a failure is noted and
        the wait goes on (a session switch runs meanwhile, awaited before that attempt's own
        outcome is taken, as if this one had been taken first)."""
        if self.watcher is None or self.stop is not None or task.cancelled():
            return
        supplier = self.pending.pop(task, None)
        if supplier is None:
            return
        try:
            exc = task.exception()
            if exc is None:
                if self._accepted(supplier, task.result()):
                    self._interrupt(task.result())
            elif not isinstance(exc, RelayError):
                self._interrupt(exc)
            elif self._noted(supplier, exc):
                self.switching = self.loop.create_task(self._switch_session(exc))
        except Exception as err:  # raised by run(), as if it had taken the hedge itself
            self._interrupt(err)

    def _interrupt(self, stop: RelayAnswer | BaseException) -> None:
        """End the watched wait with ``stop`` (the winning answer, or what to raise)."""
        if self.watcher is not None and self.stop is None:
            self.stop = stop
            self.watcher.cancel()

    async def _switched(self) -> None:
        """Let a hedge's session switch finish before the outcome of the attempt it outran."""
        if self.switching is not None:
            switching, self.switching = self.switching, None
            await switching

    def _hedge_due(self) -> bool:
        return (
            self.hedger is not None
            and not self.hedged
            and len(self.pending) + (self.current is not None) == 1
        )

    # -- starting an attempt -----------------------------------------------------------
    def _launch(self) -> bool:
        """Start an attempt on the next supplier; False when none is left. With none in
        flight it is queued for the call's coroutine; otherwise it is a hedge (a task)."""
        if self.pinned_to is not None:
            supplier = self.pinned_to if self.pinned_to not in self.tried else None
        else:
            supplier = self.host.qos.choose(self.sid, self.view.suppliers, exclude=self.tried)
        if supplier is None:
            return False
        self.tried.add(supplier)
        if self.first is None:
            self.first = supplier
        target = self.view.target(supplier)
        if target is None:
            return False
        per_try = min(self.per_try, max(self.deadline - self.loop.time(), 0.001))
        # after a failure the answer's receipt is verified inline (DESIGN §6)
        attempt = self.host.attempt(
            self.svc, target, self.plan, self.payload, per_try, inline=bool(self.failures)
        )
        if self.current is None and not self.pending:
            self.queued = (supplier, attempt)  # awaited by _next
        else:
            task = self.loop.create_task(attempt)  # not ensure_future: its checks
            task.add_done_callback(self._hedge_done)
            self.pending[task] = supplier
        return True

    def _busy(self) -> bool:
        return self.current is not None or bool(self.pending)

    def _again(self, outcome: Outcome) -> bool:
        """Another attempt after ``outcome``, if the retry rules and suppliers allow it."""
        if self._busy() or not self.retry.after(outcome) or not self._launch():
            return False
        self.host.metrics.retries.labels(self.sid).inc()
        return True

    # -- what came back ----------------------------------------------------------------
    def _accepted(self, supplier: bytes, answer: RelayAnswer) -> bool:
        """Does ``answer`` end the call? (Otherwise it is kept as a fallback or retried.)"""
        if self.host.bad_height(self.svc, self.view, self.plan, answer.body):
            self.host.lied(self.sid, supplier, "height")
            if not (self.retry.idempotent and self._again(Outcome.RETRYABLE)):
                self.fallback = self.fallback or answer
            return False
        check = self.svc.handler.check_answer(
            self.svc.spec, self.plan.call, answer.status, answer.body
        )
        if check.retry_elsewhere and self.retry.idempotent and self._again(Outcome.RETRYABLE):
            self.fallback = answer
            return False
        if self.hedged and supplier != self.first:
            self.host.metrics.hedges.labels(self.sid, "won").inc()
        return True

    async def _failed(self, supplier: bytes, exc: RelayError) -> None:
        if self._noted(supplier, exc):
            await self._switch_session(exc)

    def _noted(self, supplier: bytes, exc: RelayError) -> bool:
        """Note a failed attempt and go again if the rules allow; True when the session must
        switch first (the caller awaits :meth:`_switch_session`, which goes again after)."""
        self.failures.append(exc)
        if exc.oversized:
            self.oversized.append(supplier)
            if not self.oversize_retried and self.retry.idempotent and self.pinned_to is None:
                if not self._busy() and self._launch():
                    self.oversize_retried = True  # once elsewhere, whatever the attempts
                    self.host.metrics.retries.labels(self.sid).inc()
            return False
        if exc.relay_code is None and exc.refusal is None:
            self.dead.add(supplier)
        if exc.relay_code in _SESSION_TIMING and self.pinned_to is None:
            return True
        self._again(exc.outcome)
        return False

    async def _switch_session(self, exc: RelayError) -> None:
        """A matter of whose head is where: another session, or the same one a moment later
        (at most ~0.5 s of waiting); costs no attempt. Then go again."""
        if self.switches < _MAX_SWITCHES:
            self.switches += 1
            alt = await self.host.other_session(self.sid, self.view, exc.relay_code)
            if alt is not None:
                self.view = alt
            self.tried = set(self.dead)
            self.retry.max_attempts += 1
        self._again(exc.outcome)

    def _won(self, answer: RelayAnswer) -> RelayAnswer:
        for s in self.oversized:  # another answered within the cap: the oversized ones lied
            self.host.lied(self.sid, s, "oversized")
        return answer

    def _give_up(self) -> RelayAnswer:
        if self.fallback is not None:
            return self._won(self.fallback)
        failures = self.failures
        if self.oversized and all(f.oversized for f in failures):
            raise ResponseTooLarge("response too large")
        if failures:
            last = failures[-1]
            if all(f.refusal in _SHOWN and f.relay_code is not None for f in failures):
                raise RelayFailed(last.message, relay_code=last.relay_code)
            # in the gateway's words: a relayer's own text never reaches the client
            causes = sorted({_cause(f) for f in failures})
            raise RelayFailed(f"no supplier answered ({len(failures)} tried): {'; '.join(causes)}")
        raise NoSupplier(f"no eligible supplier for {self.sid!r}", reason=ClientReason.NO_SUPPLIER)

    def _no_supplier(self) -> str:
        qos, sid = self.host.qos, self.sid
        refused = {r for s in self.view.suppliers if (r := qos.stats(sid, s).refused) is not None}
        why = f": refused endpoints ({'; '.join(sorted(refused))})" if refused else ""
        return f"no eligible supplier for {sid!r} in session {self.view.n}{why}"


def _cause(exc: RelayError) -> str:
    if exc.lie:
        return "malformed answer"
    if exc.relay_code is not None:
        return f"refused ({exc.relay_code.value})"
    return exc.message  # the gateway's own words (transport, refused endpoint)
