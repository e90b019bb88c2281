"""One call's attempts: retries, hedges, session switches and answer checks (DESIGN §3.3).

:class:`Attempts` relays one payload within a session view until an answer passes the checks
or the call's rules (:class:`~gateway.failsafe.retry.RetryState`, the hedge delay of
:class:`~gateway.failsafe.hedge.Hedger`, the deadline) say stop. Its state is that of one call:
who was tried, what is in flight, which failures were seen. The router does one attempt and
says what a supplier did (:class:`AttemptHost`); this module only decides what comes next.

- a call that may not be hedged runs its attempts one after the other, each awaited directly
  (no task, no timer beyond the attempt's own);
- a read that may be hedged starts its first attempt as a task and sends a second one to
  another supplier when the hedge delay passes without an answer; the first good answer wins;
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
        "svc",
        "switches",
        "tried",
        "view",
    )

    def __init__(
        self,
        host: AttemptHost,
        svc: Service,
        view: SessionView,
        plan: CallPlan,
        payload: bytes,
        retry: RetryState,
        per_try: float,
        deadline: float,
        hedger: Hedger | None,
        *,
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
        self.pending: dict[asyncio.Future[RelayAnswer], bytes] = {}
        self.queued: tuple[bytes, Coroutine[Any, Any, RelayAnswer]] | None = None
        self.failures: list[RelayError] = []
        self.oversized: list[bytes] = []
        self.oversize_retried = False
        self.fallback: RelayAnswer | None = None  # an answer kept for when nothing better comes
        self.first: bytes | None = None
        self.hedged = False
        self.switches = 0

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
                    supplier, attempt = self.queued
                    self.queued = None
                    try:
                        answer = await attempt
                    except RelayError as exc:
                        await self._failed(supplier, exc)
                        continue
                    if self._accepted(supplier, answer):
                        return self._won(answer)
                    continue
                won = await self._race()
                if won is not None:
                    return self._won(won)
        finally:
            if self.queued is not None:
                self.queued[1].close()
            for task in self.pending:
                task.cancel()
        return self._give_up()

    async def _race(self) -> RelayAnswer | None:
        """Wait for the attempts in flight (or the hedge delay); handle what finished."""
        wait = self.deadline - self.loop.time()
        if self._hedge_due():
            assert self.hedger is not None
            wait = min(wait, self.hedger.delay())
        done = await self._first_done(wait)
        if not done:
            if self._hedge_due() and self.loop.time() < self.deadline and self._launch():
                self.hedged = True
                self.host.metrics.hedges.labels(self.sid, "fired").inc()
            return None
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

    async def _first_done(self, wait: float) -> list[asyncio.Future[RelayAnswer]]:
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

    def _hedge_due(self) -> bool:
        return self.hedger is not None and not self.hedged and len(self.pending) == 1

    # -- starting an attempt -----------------------------------------------------------
    def _launch(self) -> bool:
        """Start an attempt on the next supplier; False when none is left."""
        if self.pinned_to is not None:
            supplier = self.pinned_to if self.pinned_to not in self.tried else None
        else:
            supplier = self.host.qos.choose(self.sid, self.view.suppliers, self.tried)
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
            self.svc, target, self.plan, self.payload, per_try, bool(self.failures)
        )
        if self.hedger is None:
            self.queued = (supplier, attempt)  # awaited directly by run()
        else:
            self.pending[self.loop.create_task(attempt)] = supplier  # not ensure_future: its checks
        return True

    def _again(self, outcome: Outcome) -> bool:
        """Another attempt after ``outcome``, if the retry rules and suppliers allow it."""
        if self.pending or not self.retry.after(outcome) or not self._launch():
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
        if check.retry_elsewhere and self.retry.idempotent:
            # another supplier may answer: the one still out (a hedge's twin), or one more
            if self.pending or self._again(Outcome.RETRYABLE):
                self.fallback = answer
                return False
        if self.hedged and supplier != self.first:
            self.host.metrics.hedges.labels(self.sid, "won").inc()
        return True

    async def _failed(self, supplier: bytes, exc: RelayError) -> None:
        self.failures.append(exc)
        if exc.oversized:
            self.oversized.append(supplier)
            if not self.oversize_retried and self.retry.idempotent and self.pinned_to is None:
                if not self.pending and self._launch():
                    self.oversize_retried = True  # once elsewhere, whatever the attempts
                    self.host.metrics.retries.labels(self.sid).inc()
            return
        if exc.relay_code is None and exc.refusal is None:
            self.dead.add(supplier)
        if exc.relay_code in _SESSION_TIMING and self.pinned_to is None:
            await self._switch_session(exc.relay_code)
        self._again(exc.outcome)

    async def _switch_session(self, code: ErrorCode | None) -> None:
        """A matter of whose head is where: another session, or the same one a moment later
        (at most ~0.5 s of waiting); costs no attempt."""
        if self.switches >= _MAX_SWITCHES:
            return
        self.switches += 1
        alt = await self.host.other_session(self.sid, self.view, code)
        if alt is not None:
            self.view = alt
        self.tried = set(self.dead)
        self.retry.max_attempts += 1

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
