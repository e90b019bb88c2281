"""Sessions as the gateway uses them: hydrated from the registry snapshot, cached per
(app, service, n), and the next one prepared before rollover.

The snapshot (kept current by the ledger follower) answers from memory; hydration is pure
``session.hydrate``. :meth:`SessionBook.signing` picks the session to sign for with
``session.windows.signing_session`` and :meth:`SessionBook.fallback` the one to try after a
relayer answered ``SESSION_NOT_STARTED``.

A relayer answering ``SESSION_EXPIRED`` for the session the book signs for says the chain's
head is past that session's grace end while the book's is not: the follower lags (just after the
settlement RPC was unreachable, say; a relayer whose RPC came back first is ahead of it).
:meth:`SessionBook.catch_up` then asks the follower for a pass at once and waits for it (bounded),
so the router signs for the next session as soon as the follower confirms it, instead of giving
up while the follower sleeps or waits on a dead connection. The relayer's word alone never moves
the book (a lying relayer could otherwise stop a gateway signing): only the follower's head does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.errors import ClientReason, NoSupplier
from gateway.relay_client import Target
from session.errors import SessionError
from session.hydrate import hydrate
from session.snapshot import RegistrySnapshot, SessionShape
from session.windows import fallback_session, session_of, signing_session, windows

__all__ = ["SessionBook", "SessionView"]

log = logging.getLogger("relaynet.gateway")


@dataclass(frozen=True, slots=True)
class SessionView:
    """One session's relay targets (suppliers with an endpoint), in slot order."""

    service_id: str
    app: bytes
    n: int
    targets: tuple[Target, ...]

    suppliers: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "suppliers", tuple(t.supplier for t in self.targets))

    def target(self, supplier: bytes) -> Target | None:
        for t in self.targets:
            if t.supplier == supplier:
                return t
        return None


class SessionBook:
    """Hydrated sessions by (app, service, n); remembers which pairs are in use."""

    def __init__(
        self,
        snapshot: RegistrySnapshot,
        *,
        lag: int = 1,
        max_entries: int = 10_000,
        refresh: Callable[[float], Awaitable[bool]] | None = None,
        catch_up_wait: float = 1.0,
    ) -> None:
        self.snapshot = snapshot
        self._lag = lag
        self._refresh = refresh  # the follower's: one pass now (see RegistryFollower.refresh)
        self._catch_up_wait = catch_up_wait
        self._max = max_entries
        self._views: OrderedDict[tuple[bytes, str, int], SessionView] = OrderedDict()
        self.active: dict[tuple[str, bytes], int] = {}  # (service, app) -> last n used
        self.hydrations = 0
        self._signing_memo: tuple[int, SessionShape, int] | None = None  # (head, shape, n)
        self._signing_views: dict[tuple[str, bytes], SessionView] = {}  # (service, app): n's

    def forget(self) -> None:
        """Drop every hydrated session (a settlement-chain reorganisation may have re-drawn
        them); the next request hydrates again from the snapshot."""
        self._views.clear()
        self._signing_views.clear()
        log.warning("settlement chain reorganised: sessions are drawn again from the new branch")

    def view(self, service_id: str, app: bytes, n: int) -> SessionView | None:
        """Session ``n`` (cached); None when it does not exist (yet)."""
        key = (app, service_id, n)
        cached = self._views.get(key)
        if cached is not None:
            self._views.move_to_end(key)
            return cached
        try:
            session = hydrate(self.snapshot, service_id, app, n)
        except SessionError as exc:
            raise NoSupplier(exc.message, reason=ClientReason.NO_SESSION) from exc
        self.hydrations += 1
        if session is None:
            return None  # not cached: H_n may appear any moment
        targets = tuple(
            Target(
                service_id=service_id,
                app=app,
                n=n,
                supplier=s.address,
                endpoint=s.endpoint,
                receipt_key=s.receipt_key,
            )
            for s in session.suppliers
            if s.endpoint
        )
        result = SessionView(service_id, app, n, targets)
        self._views[key] = result
        while len(self._views) > self._max:
            self._views.popitem(last=False)
        return result

    def signing_number(self) -> int:
        """The session to sign for at the snapshot's head (a pure function of head and shape:
        computed once per head)."""
        head, shape = self.snapshot.head(), self.snapshot.shape()
        memo = self._signing_memo
        if memo is not None and memo[0] == head and memo[1] is shape:
            return memo[2]
        n = signing_session(head, shape, self._lag)
        self._signing_memo = (head, shape, n)
        return n

    async def catch_up(self) -> None:
        """Let the follower catch up now (a bounded wait for its next pass); a short pause
        when the book has no follower."""
        if self._refresh is None:
            await asyncio.sleep(0.05)
        else:
            await self._refresh(self._catch_up_wait)

    def signing(self, service_id: str, app: bytes) -> SessionView:
        """The session to sign for now; ``NoSupplier(NO_SESSION)`` when there is none."""
        n = self.signing_number()
        key = (service_id, app)
        view = self._signing_views.get(key)
        if view is not None and view.n == n:  # the pair's session for n, hydrated before
            return view
        self.active[key] = n
        view = self.view(service_id, app, n)
        if view is None or not view.targets:
            fb = self.fallback(service_id, app, n)
            if fb is not None and fb.targets:
                return fb
            raise NoSupplier(
                f"no session {n} for this app on {service_id!r}", reason=ClientReason.NO_SESSION
            )
        if len(self._signing_views) >= self._max:
            self._signing_views.clear()
        self._signing_views[key] = view
        return view

    def fallback(self, service_id: str, app: bytes, n: int) -> SessionView | None:
        """After SESSION_NOT_STARTED for ``n``: session ``n - 1`` while it is in grace."""
        prev = fallback_session(self.snapshot.head(), n, self.snapshot.shape())
        return None if prev is None else self.view(service_id, app, prev)

    def upcoming(self) -> list[SessionView]:
        """The next sessions of every pair in use whose ``H_n`` is already known — hydrated
        ahead of rollover so the first request of the new session finds it ready."""
        shape = self.snapshot.shape()
        head = self.snapshot.head()
        out: list[SessionView] = []
        current = session_of(head, shape.B0, shape.L) if head >= shape.B0 else 0
        for (service_id, app), _n in list(self.active.items()):
            for n in (current, current + 1):
                if self.snapshot.block_hash(windows(shape, n).h_n_block) is None:
                    continue
                try:
                    view = self.view(service_id, app, n)
                except NoSupplier:
                    continue
                if view is not None:
                    out.append(view)
        return out
