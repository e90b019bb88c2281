"""Quorum reads (DESIGN §4): one read relayed to N distinct suppliers at once, answered only
when every leg's status and body are byte-identical.

The rules, in the order :func:`quorum_read` applies them:

1. ``admit``   — N is 1–5; only calls the handler classes as reads; N above the signing
                 session's distinct suppliers is the client's mistake (-32602, HTTP 400);
2. ``legs``    — N distinct suppliers chosen by selection; fewer eligible ones is -32005 with
                 ``Retry-After``; a failed leg is replaced by a fresh supplier until the
                 deadline; every leg's receipt is verified in full (never sampled);
                 an answer over the call's size cap is replaced once (as a single read's),
                 and its supplier blamed only when another answered within the cap; when no
                 leg fits, :class:`ResponseTooLarge`;
3. ``agree``   — identical (status, body) → the answer, every leg listed in its group;
                 head-dependent reads that differ are asked again, once, one block time later;
4. ``floor``   — an agreed head height goes through the single read's floor rules
                 (:func:`settle_floor`): never below the client's floor, and entering it only
                 within the rule;
5. ``disagree``— -32098 "suppliers disagree" with every signed answer (HTTP 200), logged and
                 counted; nothing is cached.

REST-like reads (Cosmos REST, CometBFT URI calls) follow the same rules: the legs carry the
canonical payload, a refusal is :class:`QuorumRefused`, and a disagreement's body is the
bare error object of :func:`disagreement_object` (no JSON-RPC envelope to hold it).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import orjson

from gateway.config import RelayConfig
from gateway.errors import ClientReason, NoSupplier, RelayFailed, ResponseTooLarge
from gateway.failsafe.attempts import AttemptHost
from gateway.relay_client import RelayAnswer, RelayClient, RelayError
from gateway.selection import Qos
from gateway.services import Service
from gateway.sessions import SessionBook, SessionView
from rollups.answers import FloorRule
from rollups.errors import InvalidParamsError
from rollups.handler import CallPlan, MethodClass

__all__ = [
    "DISAGREE_CODE",
    "MAX_QUORUM",
    "QuorumRefused",
    "check_suppliers",
    "disagreement_body",
    "disagreement_object",
    "log_disagreement",
    "log_suppliers_disagree",
    "parse_quorum",
    "quorum_read",
    "settle_floor",
]

log = logging.getLogger("relaynet.gateway.quorum")

MAX_QUORUM = 5
DISAGREE_CODE = -32098
RETRY_AFTER = 2  # seconds: selection's breakers re-admit suppliers about this fast


class Router(AttemptHost, Protocol):
    """What a quorum needs of :class:`gateway.router.Router` (which imports this module):
    the attempt loop's host, with its sessions, relay client and relay settings."""

    sessions: SessionBook
    client: RelayClient
    cfg: RelayConfig


class Client(Protocol):
    """What the floor rules need of :class:`gateway.router.ClientContext`."""

    @property
    def service(self) -> Service: ...


C = TypeVar("C", bound=Client, contravariant=True)


class Floors(Protocol[C]):
    """The router's floor steps a quorum's agreed head height goes through."""

    qos: Qos

    def _height_limit(self, svc: Service, view: SessionView, rule: FloorRule) -> int | None: ...

    async def _floor(self, ctx: C) -> int | None: ...

    async def _raise_floor(self, ctx: C, height: int) -> None: ...


class QuorumRefused(Exception):
    """A quorum the call cannot have (-32602, HTTP 400): the client's mistake."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_quorum(text: str | None) -> int | None:
    """``Relay-Quorum`` / ``?quorum=`` as an int in 1–5; None when absent; raises
    :class:`QuorumRefused` otherwise."""
    if text is None:
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 2):
        raise QuorumRefused(f"quorum must be a number from 1 to {MAX_QUORUM}")
    n = int(value)
    if not 1 <= n <= MAX_QUORUM:
        raise QuorumRefused(f"quorum must be a number from 1 to {MAX_QUORUM}")
    return n


@dataclass(frozen=True, slots=True)
class Agreed:
    """N legs with byte-identical status and body."""

    legs: tuple[RelayAnswer, ...]


@dataclass(frozen=True, slots=True)
class Disagreed:
    """Legs whose answers differ (each one verified)."""

    legs: tuple[RelayAnswer, ...]


def admit(plan: CallPlan, view: SessionView, n: int) -> None:
    """Refuse what a quorum cannot serve (DESIGN §4)."""
    if plan.method_class is not MethodClass.READ:
        raise QuorumRefused(
            f"quorum {n} is for reads only ({plan.call.method} is {plan.method_class.value})"
        )
    check_suppliers(view, n)


def check_suppliers(view: SessionView, n: int) -> None:
    """A quorum above the signing session's distinct suppliers is refused (DESIGN §4)."""
    distinct = len(set(view.suppliers))
    if n > distinct:
        raise QuorumRefused(
            f"quorum {n} is more than the session's {distinct} distinct supplier(s)"
        )


async def quorum_read(
    router: Router, svc: Service, view: SessionView, plan: CallPlan, payload: bytes, n: int
) -> Agreed | Disagreed:
    """Relay ``payload`` to ``n`` distinct suppliers; retry head-dependent disagreements once."""
    legs = await _legs(router, svc, view, plan, payload, n)
    if _identical(legs):
        return Agreed(legs)
    if svc.handler.head_dependent(svc.spec, plan.call):
        await asyncio.sleep(svc.spec.block_time or 1.0)  # one block time: the heads catch up
        fresh = router.sessions.signing(svc.service_id, view.app)
        legs = await _legs(router, svc, fresh, plan, payload, n)
        if _identical(legs):
            return Agreed(legs)
    return Disagreed(legs)


async def rest_read(
    router: Router, svc: Service, view: SessionView, plan: CallPlan, n: int
) -> Agreed | bytes:
    """A REST-like quorum read (``plan.call.raw`` is the canonical payload): the agreed legs,
    or the disagreement's bare -32098 object (logged and counted). A refused quorum is
    :class:`~rollups.errors.InvalidParamsError` (HTTP 400, grpc code 3)."""
    try:
        admit(plan, view, n)
    except QuorumRefused as exc:
        raise InvalidParamsError(exc.message) from exc
    result = await quorum_read(router, svc, view, plan, plan.call.raw, n)
    if isinstance(result, Agreed):
        return result
    log_disagreement(svc.service_id, plan.call.method, result.legs)
    router.metrics.child(router.metrics.disagreements, svc.service_id, plan.call.method).inc()
    return disagreement_object(result.legs)


def _identical(legs: tuple[RelayAnswer, ...]) -> bool:
    first = legs[0]
    return all(a.status == first.status and a.body == first.body for a in legs[1:])


async def _legs(
    router: Router, svc: Service, view: SessionView, plan: CallPlan, payload: bytes, n: int
) -> tuple[RelayAnswer, ...]:
    """N verified answers from N distinct suppliers; failed legs replaced until the deadline."""
    legs = _Legs(router, svc, view, plan, payload, n)
    try:
        legs.start()
        return await legs.gather()
    finally:
        legs.cancel()


class _Legs:
    """One quorum read's legs: N launched at once, each settled as it ends (verified answer,
    lie, failure), a failed one replaced by a fresh supplier while any is eligible, until N
    answered or the deadline (then the reason: too large, or what failed)."""

    def __init__(
        self,
        router: Router,
        svc: Service,
        view: SessionView,
        plan: CallPlan,
        payload: bytes,
        n: int,
    ) -> None:
        self.router, self.svc, self.view = router, svc, view
        self.plan, self.payload, self.n = plan, payload, n
        self.sid = svc.service_id
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + router.cfg.deadline
        self.timeout = min(router.cfg.timeout, plan.retry.timeout)
        self.tried: set[bytes] = set()
        self.pending: dict[asyncio.Task[RelayAnswer], bytes] = {}
        self.answers: dict[bytes, RelayAnswer] = {}
        self.failures: list[RelayError] = []
        self.oversized: list[bytes] = []  # suppliers whose answer went over the call's cap

    def start(self) -> None:
        """N legs at once; fewer eligible suppliers is -32005 with ``Retry-After``."""
        for _ in range(self.n):
            if not self.launch():
                err = NoSupplier(
                    f"quorum {self.n}: only {len(self.pending)} eligible supplier(s) for "
                    f"{self.sid!r} in session {self.view.n}",
                    reason=ClientReason.QUORUM_UNAVAILABLE,
                )
                err.retry_after = RETRY_AFTER
                raise err

    def launch(self) -> bool:
        """One more leg to a supplier not tried yet; False when none is left."""
        # only suppliers selection admits now (an open breaker is not a leg, not even as
        # choose's last resort): too few of them is -32005, not a leg sure to fail
        qos = self.router.qos
        eligible = qos.eligible(self.sid, self.view.suppliers, exclude=self.tried)
        supplier = qos.choose(self.sid, eligible) if eligible else None
        if supplier is None:
            return False
        self.tried.add(supplier)
        target = self.view.target(supplier)
        if target is None:
            return False
        # inline: every leg's receipt signature is verified now, never sampled
        attempt = self.router.attempt(
            self.svc, target, self.plan, self.payload, self.timeout, inline=True
        )
        self.pending[asyncio.ensure_future(attempt)] = supplier
        return True

    async def gather(self) -> tuple[RelayAnswer, ...]:
        """Settles legs as they end until N answered; short of N at the deadline (or with
        nothing left in flight) raises :meth:`short`'s error."""
        while len(self.answers) < self.n:
            remaining = self.deadline - self.loop.time()
            if remaining <= 0 or not self.pending:
                raise self.short()
            done, _ = await asyncio.wait(
                self.pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                self.settle(task)
        self.blame_oversized()
        return tuple(self.answers.values())

    def settle(self, task: asyncio.Task[RelayAnswer]) -> None:
        """One ended leg: an answer is checked, a relay error replaced; anything else raised."""
        supplier = self.pending.pop(task)
        exc = task.exception()
        if exc is None:
            self.answered(supplier, task.result())
            return
        if not isinstance(exc, RelayError):
            raise exc
        self.failures.append(exc)
        if exc.oversized:
            self.oversized.append(supplier)
            if len(self.oversized) > 1:
                return  # an answer over the cap is retried once elsewhere, no more
        self.launch()  # replace the failed leg with a fresh supplier, if any is left

    def answered(self, supplier: bytes, answer: RelayAnswer) -> None:
        """A leg counts only verified; a bad receipt is the supplier's lie, and replaced."""
        try:
            self.router.client.confirm(answer)
        except RelayError as bad:
            self.router.lied(self.sid, supplier, "answer")
            self.failures.append(bad)
            self.launch()
            return
        self.answers[supplier] = answer

    def short(self) -> Exception:
        """Why fewer than N legs answered: no leg fits (:class:`ResponseTooLarge`, nobody
        lied), or :class:`RelayFailed` naming the failures."""
        if not self.answers and self.oversized and all(f.oversized for f in self.failures):
            return ResponseTooLarge("response too large")
        self.blame_oversized()
        causes = "; ".join(sorted({f.message for f in self.failures})) or "deadline exceeded"
        return RelayFailed(
            f"quorum {self.n}: {len(self.answers)} of {self.n} legs answered: {causes}"
        )

    def blame_oversized(self) -> None:
        """Another supplier answered within the cap: the oversized answers were lies (as in
        :class:`gateway.failsafe.attempts.Attempts`)."""
        if self.answers:
            for supplier in self.oversized:
                self.router.lied(self.sid, supplier, "oversized")

    def cancel(self) -> None:
        """Legs still in flight are not waited for."""
        for task in self.pending:
            task.cancel()


async def settle_floor(
    router: Floors[C],
    ctx: C,
    view: SessionView,
    rule: FloorRule,
    raw_id: bytes,
    legs: tuple[RelayAnswer, ...],
) -> bytes | None:
    """An agreed head height under the single read's floor rules (DESIGN §4): every leg's
    height is a report; a height below the client's floor is answered with the floor by the
    gateway (the bytes returned); it enters the floor only within the rule. None: answer
    the agreed legs."""
    svc = ctx.service
    first = legs[0]
    height = svc.handler.read_height(first.body) if first.status == 200 else None
    if height is None:
        return None
    for leg in legs:
        router.qos.observe_height(svc.service_id, leg.supplier, height)
    floor = await router._floor(ctx)
    if floor is not None and height < floor:
        # never backwards; a single supplier's fresher answer would not be a quorum's
        return svc.handler.height_answer(raw_id, floor)
    limit = router._height_limit(svc, view, rule)
    if limit is not None and height <= limit:
        await router._raise_floor(ctx, height)
    return None


def disagreement_body(raw_id: bytes, legs: tuple[RelayAnswer, ...]) -> bytes:
    """DESIGN §4's -32098 answer with every signed answer, the client's id as sent."""
    error = disagreement_object(legs)
    return b'{"jsonrpc":"2.0","id":' + raw_id + b',"error":' + error + b"}"


def disagreement_object(legs: tuple[RelayAnswer, ...]) -> bytes:
    """The -32098 error object: ``{"code", "message", "data": {"answers": […]}}``."""
    answers = [
        {
            "supplier": "0x" + a.supplier.hex(),
            "relay_request": a.relay_request,
            "relay_receipt": a.relay_receipt,
            "backend_status": a.status,
            "body_base64": base64.b64encode(a.body).decode(),
        }
        for a in legs
    ]
    error = {"code": DISAGREE_CODE, "message": "suppliers disagree", "data": {"answers": answers}}
    return orjson.dumps(error)


def log_disagreement(service: str, method: str, legs: tuple[RelayAnswer, ...]) -> None:
    log_suppliers_disagree(service, method, [a.supplier for a in legs])


def log_suppliers_disagree(service: str, method: str, suppliers: Iterable[bytes]) -> None:
    """The log line of every disagreement (HTTP legs, WebSocket pushes)."""
    named = " ".join("0x" + s.hex() for s in suppliers)
    log.warning("quorum disagreement: service=%s method=%s suppliers=%s", service, method, named)
