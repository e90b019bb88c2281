"""Batches: one relay per element, answers in the client's order, ids untouched.

Each element is relayed as the exact bytes the client wrote; its answer comes back as the exact
bytes its backend wrote. Notifications get no answer object; a batch of only notifications is
answered ``204 No Content`` like a node does. The Relay-* headers list one entry per answered
answer object of the body, in body order (``-`` for objects the cache or the gateway
answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import GatewayError, jsonrpc_error_object
from gateway.jsonrpc import Call
from gateway.router import CallAnswer, ClientContext, Router

__all__ = ["BatchAnswer", "run_batch"]


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    status: int
    body: bytes
    answers: tuple[CallAnswer, ...]  # one per element, in order
    shown: tuple[CallAnswer, ...] = ()  # one per answer object in the body, in body order


async def _one(
    router: Router, ctx: ClientContext, call: Call, sem: asyncio.Semaphore
) -> CallAnswer:
    async with sem:
        try:
            return await router.execute(ctx, call)
        except GatewayError as exc:
            return CallAnswer(
                200,
                jsonrpc_error_object(call.raw_id, exc.jsonrpc_code, exc.message),
                "gateway",
            )


async def run_batch(
    router: Router, ctx: ClientContext, calls: Sequence[Call], *, concurrency: int = 32
) -> BatchAnswer:
    """Answer every element (concurrently, bounded) and reassemble in the client's order."""
    sem = asyncio.Semaphore(concurrency)
    answers = await asyncio.gather(*(_one(router, ctx, c, sem) for c in calls))
    shown = tuple(
        a
        for c, a in zip(calls, answers, strict=True)
        if a.body and not (c.is_notification and not c.invalid)
    )
    if not shown:
        return BatchAnswer(204, b"", tuple(answers))
    body = b"[" + b",".join(a.body for a in shown) + b"]"
    return BatchAnswer(200, body, tuple(answers), shown)
