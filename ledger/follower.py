"""The registry follower: a :class:`session.memory.MemorySnapshot` kept current from the chain.

:class:`RegistryFollower` reads the settlement contracts' events from the deployment's genesis
block onwards and applies each to the snapshot, in chain order:

==========================================  ==================================================
event                                       snapshot
==========================================  ==================================================
``ShapeSet``                                ``set_shape``
``EconParamsSet``                           ``set_economic_params(from_session, …)``
``Checkpoint``                              ``set_block_hash`` (and :attr:`checkpoints`)
``ServiceRegistered`` / ``…MetadataSet`` /  ``register_service``
``ServiceOwnerSet``
``ServiceParamsSet``                        ``set_service_params(service, from_session, …)``
``PositionSet`` / ``LengthSet``             ``set_position`` / ``set_length``
``SupplierStaked`` / ``SupplierServiceSet``  ``put_supplier`` (stake, receipt key, endpoints)
/ ``SupplierToppedUp`` / ``SupplierSlashed``
``SupplierWithdrawn``                       ``remove_supplier``
``AppStaked`` / ``AppStakeSet``             ``set_app`` / ``set_app_stake(app, from_session, …)``
``AppWithdrawn``                            ``set_app(app, None)``
``Delegated`` / ``Undelegated``             ``set_delegation(app, gateway, from_session, …)``
``GatewayStakeSet``                         ``set_gateway_stake`` (records with epochs)
``ServiceAdded`` / ``ServiceRemoved``       the supplier's endpoints (positions come from
                                            ``PositionSet`` / ``LengthSet``)
``ReceiptKeySet``                           ``set_receipt_key`` (history by session)
``SessionChainId``                          ``set_chain_id`` (the chain id recorded with H_n)
``Gateway*``                                :attr:`gateways`
==========================================  ==================================================

The chain id of a session whose ``H_n`` is not recorded yet is what ``eth_chainId`` answers
when the follower first sees block ``start(n) - 1``; a ``SessionChainId`` event overrides it.

It also fetches from the chain the hashes of every session boundary block — ``start(n) - 1``
(H_n), ``grace_end(n)`` (H_g) and ``claim_close(n)`` (H_c) — once the head has reached them,
for the last ``hash_sessions`` sessions, and sets the snapshot's head last, so a reader that
sees head ``h`` finds every boundary hash at or below ``h``.

Each pass reads everything it needs from the chain first and then applies it in memory, so a
failing RPC never leaves a half-applied batch: the next pass simply starts again from the
first unapplied block. The poll loop survives the RPC going away (``ChainUnavailable``),
backing off up to ``max_backoff`` seconds, and carries on when it comes back. After a failed
pass the HTTP connections are dropped (a kept-alive connection into a cut link would hang the
first request after the link returns until its timeout), and while the RPC is away each pass's
first request waits at most ``probe_timeout`` seconds, so the follower is back within about
``max_backoff + probe_timeout`` of the RPC's return. :meth:`refresh` wakes the loop at once and
waits for its next pass: a gateway told by a relayer that its session is over (its head lags the
chain's, e.g. just after an outage) catches up before it signs again.

Reorganisations. The follower keeps the hash of the last block of every pass (and its parent)
for the last ``reorg_window`` blocks, and a copy of its whole state (snapshot, checkpoints,
gateways) every ``save_every`` blocks over the same window. Each pass first asks the chain for
the hash of its own head; when that hash changed (or the head no longer exists), it walks back
through the hashes it kept to the newest one the chain still has — the common ancestor —
restores the newest saved copy at or below it and reads the events again from there. The
restore and the replayed events are applied in one synchronous step, so a reader never sees the
older head in between. A reorganisation deeper than the window replays from the deployment's
genesis (slower, equally correct). Listeners added with :meth:`add_reorg_listener` are told
(:class:`Reorg`) once the snapshot holds the new branch. A read that straddles a reorganisation
(the hash of its last block changed while its logs were read) is discarded and retried.

Confirmation depth ``confirmations`` (d): the boundary hashes ``H_n``, ``H_g`` and ``H_c``
enter the snapshot only once their block is d blocks deep (a ``Checkpoint`` event's hash too),
so a relayer accepts session n, and a gateway signs for it, only once ``H_n`` is confirmed, and
the claimer uses ``H_g``/``H_c`` only when confirmed. Events and the head are applied at once
(staking changes take effect from the next session, whose ``H_n`` is confirmed later still).
Servers validate ``d <= G`` (:func:`check_confirmations`): a gateway d blocks behind a new
session keeps signing for the previous one, which relayers accept only during its grace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from ledger.artifacts import load_artifact
from ledger.client import CONTRACTS, econ_params_from_values
from ledger.deploy import Deployment
from ledger.errors import ChainRPCError, ChainUnavailable, LedgerError
from ledger.events import Event, EventDecoder
from protocol.encoding import service_id_from_bytes
from session.memory import MemorySnapshot
from session.snapshot import ServiceInfo, ServiceParams, SessionShape, SupplierInfo
from session.windows import session_of, windows
from transport.http1 import HttpClient, HttpError, Route

__all__ = ["GatewayRecord", "RegistryFollower", "Reorg", "check_confirmations"]

log = logging.getLogger(__name__)

_ECON_FIELDS = (
    "min_stake_supplier",
    "min_stake_app",
    "min_stake_gateway",
    "unbonding_sessions",
    "max_delegations",
    "max_services_per_supplier",
    "proof_probability_bps",
    "proof_threshold",
    "slash_multiplier_bps",
    "settle_bounty_bps",
    "cu_price",
    "service_registration_fee",
    "mint_supplier_bps",
    "mint_owner_bps",
    "mint_treasury_bps",
    "max_stream_relays",
)


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """A staked (or unbonding) gateway as the follower last saw it."""

    address: bytes
    stake: int
    url: str
    staked: bool = True


@dataclass(frozen=True, slots=True)
class Reorg:
    """A reorganisation the follower saw: blocks above ``ancestor`` were replaced.

    ``ancestor`` is the newest block the follower had recorded that the chain still has (the
    fork point or below it; -1 when none was left); ``old_head`` the follower's head before,
    ``new_head`` the head it replayed to."""

    ancestor: int
    old_head: int
    new_head: int

    @property
    def depth(self) -> int:
        return self.old_head - self.ancestor


@dataclass(slots=True)
class _Saved:
    """The follower's whole state as of block ``height`` (a point to roll back to)."""

    height: int
    snapshot: MemorySnapshot
    checkpoints: dict[tuple[int, int], bytes]
    gateways: dict[bytes, GatewayRecord]
    recorded_chain_ids: set[int]


class _ChainRpc:
    """The follower's JSON-RPC calls over kept-alive HTTP/1.1 (``transport.http1``): a poll
    is one small request on a warm connection, not a connection and web3's middleware stack."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        headers = {"Content-Type": "application/json"}
        if parts.username is not None:  # credentials in the URL, as web3/aiohttp would send
            user_pass = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
        self.timeout = timeout
        self._client = HttpClient(max_idle_per_origin=4)
        self._route: Route | None = None
        self._bad_url = ""
        try:
            self._route = Route.build("POST", url, headers)
        except ValueError as exc:  # every pass fails with it (as web3 did), none crashes
            self._bad_url = f"settlement RPC URL refused: {exc}"
        self._id = 0

    async def call(self, method: str, params: list[Any], within: float | None = None) -> Any:
        """The call's ``result``; ChainUnavailable when the RPC cannot be reached or times out,
        ChainRPCError when it answers with an error."""
        if self._route is None:
            raise ChainUnavailable(f"{method}: {self._bad_url}")
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        try:
            answer = await self._client.request(
                self._route, body.encode(), within=self.timeout if within is None else within
            )
        except (HttpError, OSError) as exc:
            raise ChainUnavailable(f"{method}: settlement chain unreachable: {exc}") from exc
        except TimeoutError as exc:
            raise ChainUnavailable(f"{method}: settlement chain timed out") from exc
        try:
            document = json.loads(answer.body)
        except ValueError:
            document = None
        if not isinstance(document, dict) or ("result" not in document and "error" not in document):
            raise ChainUnavailable(f"{method}: HTTP {answer.status}, not a JSON-RPC answer")
        error = document.get("error")
        if error is not None:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ChainRPCError(f"{method}: {message}")
        return document["result"]

    async def close(self) -> None:
        """Drop the kept-alive connections; the next call connects afresh."""
        client, self._client = self._client, HttpClient(max_idle_per_origin=4)
        await client.close()


def _header_of(block: Any) -> tuple[bytes, bytes] | None:
    """``(hash, parent hash)`` of an ``eth_getBlockByNumber`` result (None: no such block)."""
    if not isinstance(block, dict) or block.get("hash") is None:
        return None
    return _hex_bytes(block["hash"]), _hex_bytes(block["parentHash"])


def _hex_bytes(value: Any) -> bytes:
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _log_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An ``eth_getLogs`` entry with its block number and index as integers (what
    :class:`EventDecoder` reads)."""
    return {**raw, "blockNumber": int(raw["blockNumber"], 16), "logIndex": int(raw["logIndex"], 16)}


def check_confirmations(
    confirmations: int, shape: SessionShape, what: str = "confirmations"
) -> int:
    """``confirmations`` when ``0 <= d <= G``; otherwise ValueError with a message saying why."""
    if confirmations < 0:
        raise ValueError(f"{what} must be 0 or more, got {confirmations}")
    if confirmations > shape.G:
        raise ValueError(
            f"{what} = {confirmations} exceeds the deployment's grace period G = {shape.G}: "
            f"a gateway waiting for {confirmations} confirmations of a new session would keep "
            f"signing for the previous one after relayers stopped accepting it; use at most "
            f"{shape.G}"
        )
    return confirmations


class RegistryFollower:
    """Keeps ``snapshot`` current from the chain; ``start()`` it, read ``snapshot``."""

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        snapshot: MemorySnapshot | None = None,
        poll_interval: float = 0.2,
        *,
        batch_blocks: int = 2000,
        hash_sessions: int = 64,
        request_timeout: float = 10.0,
        max_backoff: float = 2.0,
        confirmations: int = 0,
        reorg_window: int = 256,
        save_every: int = 16,
        probe_timeout: float = 2.0,
    ) -> None:
        if confirmations < 0 or reorg_window < 1 or save_every < 1:
            raise ValueError("confirmations >= 0, reorg_window >= 1 and save_every >= 1")
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.snapshot = snapshot if snapshot is not None else MemorySnapshot()
        self.snapshot.set_shape(deployment.shape)
        self.poll_interval = poll_interval
        self.batch_blocks = batch_blocks
        self.hash_sessions = hash_sessions
        self.max_backoff = max_backoff
        self.confirmations = confirmations
        self.reorg_window = reorg_window
        self.save_every = save_every
        self.probe_timeout = min(probe_timeout, request_timeout)
        self._rpc = _ChainRpc(rpc_url, request_timeout)
        decoder_input: dict[str, tuple[bytes, list[dict[str, Any]]]] = {}
        for name in CONTRACTS:
            address = deployment.contracts[name]
            decoder_input[name] = (bytes.fromhex(address[2:].lower()), load_artifact(name).abi)
        self._decoder = EventDecoder(decoder_input)
        self._addresses = ["0x" + a.hex() for a in self._decoder.addresses]
        self._next_block = deployment.genesis_block
        self._head = -1
        self._caught_up = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # set by stop() and refresh(): the loop's sleep ends
        self._busy = False  # a pass is running
        self.passes = 0  # successful passes of the loop
        self._listeners: list[Callable[[int], None]] = []
        self._reorg_listeners: list[Callable[[Reorg], None]] = []
        self._hashes: dict[int, bytes] = {}  # recent block -> hash, as applied
        self._saved: list[_Saved] = []  # oldest first
        self._pending: _Saved | None = None  # to restore before the next apply (a reorg)
        self._applying_to = -1
        self.reorgs: list[Reorg] = []
        self.last_error: LedgerError | None = None
        self.checkpoints: dict[tuple[int, int], bytes] = {}  # (session, kind) -> hash
        self.gateways: dict[bytes, GatewayRecord] = {}
        self.events_applied = 0
        self.snapshot.default_chain_id = deployment.chain_id
        self._recorded_chain_ids: set[int] = set()

    # -- state -----------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """The latest block fully applied to the snapshot (-1 before the first pass)."""
        return self._head

    @property
    def caught_up(self) -> bool:
        """True once a pass has reached the chain's head (stays true through outages)."""
        return self._caught_up.is_set()

    @property
    def connected(self) -> bool:
        """Whether the last pass reached the RPC."""
        return self._connected

    @property
    def shape(self) -> SessionShape:
        return self.deployment.shape

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(head)`` after each advance of the head (from the event loop)."""
        self._listeners.append(callback)

    def add_reorg_listener(self, callback: Callable[[Reorg], None]) -> None:
        """Call ``callback(reorg)`` once the snapshot holds the branch that replaced blocks
        (after the rollback and replay; from the event loop)."""
        self._reorg_listeners.append(callback)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following in the background (returns at once; see :meth:`wait_caught_up`)."""
        if self._task is None:
            self._stop.clear()
            self._wake.clear()
            self._task = asyncio.create_task(self._run(), name="registry-follower")

    async def stop(self) -> None:
        """Stop following and close the RPC session."""
        task, self._task = self._task, None
        self._stop.set()
        self._wake.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._rpc.close()

    async def __aenter__(self) -> RegistryFollower:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_caught_up(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until a pass has reached the chain's head; ChainUnavailable on timeout."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), timeout)
        except TimeoutError as exc:
            detail = f": {self.last_error.message}" if self.last_error else ""
            raise ChainUnavailable(
                f"registry follower not caught up within {timeout}s{detail}"
            ) from exc

    async def wait_for_block(self, height: int, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the snapshot reflects block ``height``; ChainUnavailable on timeout."""

        async def reached() -> None:
            async with self._advanced:
                await self._advanced.wait_for(lambda: self._head >= height)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError as exc:
            raise ChainUnavailable(
                f"registry follower did not reach block {height} within {timeout}s "
                f"(head {self._head})"
            ) from exc

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.poll_interval
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self.sync()
            except LedgerError as exc:
                if self._connected or self.last_error is None:
                    log.warning("registry follower: %s (retrying)", exc.message)
                self._connected = False
                self.last_error = exc
                await self._drop_connections()
                delay = min(max(delay * 2, self.poll_interval), self.max_backoff)
            else:
                if not self._connected and self.last_error is not None:
                    log.info("registry follower: settlement chain reachable again")
                self._connected = True
                delay = self.poll_interval
                self.passes += 1
                async with self._advanced:
                    self._advanced.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _drop_connections(self) -> None:
        """Close the kept-alive HTTP connections: the next pass connects afresh."""
        await self._rpc.close()

    async def refresh(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wake the loop now and wait (at most ``timeout`` seconds) for a pass that started
        after this call to succeed; True when one did."""
        if self._task is None:
            return False
        # a pass already running may have read the chain's head before this call: wait for
        # the one after it
        wanted = self.passes + 2 if not self._wake.is_set() and self._busy else self.passes + 1
        self._wake.set()

        async def passed() -> None:
            async with self._advanced:
                await self._advanced.wait_for(lambda: self.passes >= wanted)

        try:
            await asyncio.wait_for(passed(), timeout)
        except TimeoutError:
            return False
        return True

    async def sync(self) -> int:
        """One pass: apply every block up to the chain's current head; returns the new head.

        Raises a :class:`LedgerError` when the RPC fails (nothing is half-applied)."""
        self._busy = True
        try:
            return await self._sync()
        finally:
            self._busy = False

    async def _sync(self) -> int:
        # one call per poll: the chain's newest block. An unchanged head whose hash is the one
        # applied needs nothing more (a reorganisation at the same height changes the hash).
        latest = await self._rpc.call(
            "eth_getBlockByNumber",
            ["latest", False],
            within=None if self._connected else self.probe_timeout,  # a cut link fails fast
        )
        newest = _header_of(latest)
        if newest is None:
            raise ChainUnavailable("eth_getBlockByNumber: the chain has no latest block")
        target = int(latest["number"], 16)
        if target == self._head and self._pending is None and self._hashes.get(target) == newest[0]:
            self._caught_up.set()
            return self._head
        old_head = self._head
        ancestor = await self._find_reorg(target, newest)
        if ancestor is not None:
            self._roll_back(ancestor)
        elif target < self._head:
            raise ChainUnavailable(
                f"the chain's head {target} is below the follower's {self._head}: "
                "the settlement chain was reset"
            )
        while self._next_block <= target:
            to = min(target, self._next_block + self.batch_blocks - 1)
            top = newest if to == target else await self._header(to)
            logs = await self._rpc.call(
                "eth_getLogs",
                [
                    {
                        "fromBlock": hex(self._next_block),
                        "toBlock": hex(to),
                        "address": self._addresses,
                    }
                ],
            )
            events = self._decoder.decode_all(_log_of(log) for log in logs)
            hashes = await self._fetch_boundary_hashes(to, events)
            chain_ids = await self._observe_chain_ids(self._next_block, to)
            again = await self._header(to)
            if top is None or again is None or again[0] != top[0]:
                raise ChainUnavailable(
                    f"block {to} changed while its logs were read (a reorganisation): retrying"
                )
            self._apply(events, hashes, to, chain_ids)
            self._remember(to, top[0], top[1])
            await self._advance(to)
        if target < self.deployment.genesis_block:  # nothing deployed yet at this height
            await self._advance(target)
        if self._pending is not None:  # rolled back to the chain's very head: nothing to read
            height = self._pending.height
            self._apply([], {}, height)
            self._head = -1  # let the head go back
            await self._advance(height)
        if ancestor is not None:
            reorg = Reorg(ancestor, old_head, self._head)
            self.reorgs.append(reorg)
            for listener in self._reorg_listeners:
                listener(reorg)
        self._caught_up.set()
        return self._head

    async def _advance(self, head: int) -> None:
        self._next_block = max(self._next_block, head + 1)
        self._head = head
        async with self._advanced:
            self._advanced.notify_all()
        for callback in self._listeners:
            callback(head)

    # -- reorganisations -------------------------------------------------------------------

    async def _header(self, height: int) -> tuple[bytes, bytes] | None:
        """``(hash, parent hash)`` of block ``height``; None when the chain has no such block."""
        return _header_of(await self._rpc.call("eth_getBlockByNumber", [hex(height), False]))

    async def _find_reorg(self, target: int, newest: tuple[bytes, bytes]) -> int | None:
        """None when the block the follower applied last is still on the chain; otherwise the
        newest recorded block that still is (-1 when none is: replay from genesis)."""
        if self._pending is not None:  # a rollback whose replay failed half-way: carry on
            return None
        if not self._hashes:
            return None
        recorded = sorted(self._hashes, reverse=True)
        top = recorded[0]
        if top == target:
            current: tuple[bytes, bytes] | None = newest
        else:
            current = await self._header(top) if top < target else None
        if current is not None and current[0] == self._hashes[top]:
            return None
        for height in recorded[1:]:
            if height > target:
                continue
            current = await self._header(height)
            if current is not None and current[0] == self._hashes[height]:
                return height
        return -1

    def _roll_back(self, ancestor: int) -> None:
        """Prepare to restore the newest saved state at or below ``ancestor`` (applied with the
        next batch, see :meth:`_apply`) and to read the chain again from just above it."""
        saved = [s for s in self._saved if s.height <= ancestor]
        point = saved[-1] if saved else self._initial()
        self._saved = saved
        self._pending = point
        self._next_block = point.height + 1
        self._hashes = {h: v for h, v in self._hashes.items() if h <= point.height}
        log.warning(
            "registry follower: the settlement chain reorganised above block %d (head was %d);"
            " rolling the snapshot back to block %d and replaying",
            ancestor,
            self._head,
            point.height,
        )

    def _initial(self) -> _Saved:
        fresh = MemorySnapshot()
        fresh.set_shape(self.deployment.shape)
        fresh.default_chain_id = self.deployment.chain_id
        return _Saved(self.deployment.genesis_block - 1, fresh, {}, {}, set())

    def _remember(self, height: int, block_hash: bytes, parent: bytes) -> None:
        """Keep the hash of the block just applied (and its parent) and, every ``save_every``
        blocks, a copy of the whole state; forget what is older than ``reorg_window``."""
        self._hashes[height] = block_hash
        if height > 0:
            self._hashes.setdefault(height - 1, parent)
        floor = height - self.reorg_window
        self._hashes = {h: v for h, v in self._hashes.items() if h >= floor}
        if not self._saved or height - self._saved[-1].height >= self.save_every:
            self._saved.append(
                _Saved(
                    height,
                    self.snapshot.copy(),
                    dict(self.checkpoints),
                    dict(self.gateways),
                    set(self._recorded_chain_ids),
                )
            )
        # keep the newest copy at or below the window's floor, and every copy above it
        while len(self._saved) > 1 and self._saved[1].height <= floor:
            self._saved.pop(0)

    # -- boundary hashes -------------------------------------------------------------------

    def _boundary_heights(self, head: int) -> list[int]:
        shape = self.deployment.shape
        if head < shape.B0 - 1:
            return []
        snapshot = self._pending.snapshot if self._pending is not None else self.snapshot
        confirmed = head - self.confirmations
        current = session_of(max(head, shape.B0), shape.B0, shape.L)
        first = max(0, current - self.hash_sessions)
        heights: list[int] = []
        for n in range(first, current + 2):
            w = windows(shape, n)
            for h in (w.h_n_block, w.h_g_block, w.h_c_block):
                if 0 <= h <= confirmed and snapshot.block_hash(h) is None:
                    heights.append(h)
        return sorted(set(heights))

    async def _fetch_boundary_hashes(self, head: int, events: Iterable[Event]) -> dict[int, bytes]:
        confirmed = head - self.confirmations
        known = {
            int(e.args["block_number"]): bytes(e.args["block_hash"])
            for e in events
            if e.name == "Checkpoint" and int(e.args["block_number"]) <= confirmed
        }
        out: dict[int, bytes] = {}
        for h in self._boundary_heights(head):
            if h in known:
                continue
            header = await self._header(h)
            if header is None:
                raise ChainRPCError(f"eth_getBlockByNumber: block {h} not found")
            out[h] = header[0]
        return out

    async def _observe_chain_ids(self, first: int, to: int) -> dict[int, int]:
        """``eth_chainId`` for the sessions whose block ``start(n) - 1`` is in ``[first, to]``
        (one call per pass, only when a session starts in it; recent sessions only)."""
        shape = self.deployment.shape
        lo = max(0, -(-(first + 1 - shape.B0) // shape.L))
        hi = (to + 1 - shape.B0) // shape.L
        lo = max(lo, hi - self.hash_sessions)
        if to < shape.B0 - 1 or hi < lo:
            return {}
        chain_id = int(await self._rpc.call("eth_chainId", []), 16)
        return dict.fromkeys(range(lo, hi + 1), chain_id)

    # -- applying events -------------------------------------------------------------------

    def _apply(
        self,
        events: Iterable[Event],
        hashes: Mapping[int, bytes],
        head: int,
        chain_ids: Mapping[int, int] | None = None,
    ) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:  # a rollback: restore and replay in one synchronous step
            self.snapshot.restore(pending.snapshot)
            self.checkpoints = dict(pending.checkpoints)
            self.gateways = dict(pending.gateways)
            self._recorded_chain_ids = set(pending.recorded_chain_ids)
        self._applying_to = head
        for event in events:
            handler = _HANDLERS.get(event.name)
            if handler is not None:
                handler(self, event.args)
                self.events_applied += 1
        for n, chain_id in (chain_ids or {}).items():
            if n not in self._recorded_chain_ids:
                self.snapshot.set_chain_id(n, chain_id)
        for height, block_hash in hashes.items():
            self.snapshot.set_block_hash(height, block_hash)
        shape = self.deployment.shape
        if head >= shape.B0:
            keep_from = session_of(head, shape.B0, shape.L) - self.hash_sessions - 1
            if keep_from > 0:
                self.snapshot.prune_block_hashes(windows(shape, keep_from).h_n_block)
        self.snapshot.set_head(head)

    def _supplier(self, address: bytes) -> SupplierInfo:
        info = self.snapshot.supplier(address)
        return info if info is not None else SupplierInfo(address, 0, b"\x00" * 32, {})

    def _service_info(self, sid: str, owner: bytes) -> ServiceInfo:
        info = self.snapshot.service(sid)
        return info if info is not None else ServiceInfo(sid, owner)

    def on_shape_set(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_shape(
            SessionShape(
                int(a["genesis_block"]),
                int(a["L"]),
                int(a["G"]),
                int(a["CO"]),
                int(a["CW"]),
                int(a["PO"]),
                int(a["PW"]),
                int(a["S"]),
            )
        )

    def on_econ_params_set(self, a: Mapping[str, Any]) -> None:
        params = econ_params_from_values([int(a[f]) for f in _ECON_FIELDS])
        self.snapshot.set_economic_params(int(a["from_session"]), params)

    def on_checkpoint(self, a: Mapping[str, Any]) -> None:
        block_hash = bytes(a["block_hash"])
        self.checkpoints[(int(a["session"]), int(a["kind"]))] = block_hash
        height = int(a["block_number"])
        if height <= self._applying_to - self.confirmations:  # else fetched once confirmed
            self.snapshot.set_block_hash(height, block_hash)

    def on_service_registered(self, a: Mapping[str, Any]) -> None:
        sid = service_id_from_bytes(a["service"])
        self.snapshot.register_service(
            ServiceInfo(sid, a["owner"], a["name"], a["rpc_type"], a["metadata_uri"])
        )

    def on_service_metadata_set(self, a: Mapping[str, Any]) -> None:
        sid = service_id_from_bytes(a["service"])
        info = self._service_info(sid, b"\x00" * 20)
        self.snapshot.register_service(
            replace(info, name=a["name"], rpc_type=a["rpc_type"], metadata_uri=a["metadata_uri"])
        )

    def on_service_owner_set(self, a: Mapping[str, Any]) -> None:
        sid = service_id_from_bytes(a["service"])
        self.snapshot.register_service(
            replace(self._service_info(sid, a["owner"]), owner=a["owner"])
        )

    def on_service_params_set(self, a: Mapping[str, Any]) -> None:
        params = ServiceParams(
            int(a["cu_per_relay"]), int(a["max_cu_per_relay"]), int(a["difficulty_bits"])
        )
        self.snapshot.set_service_params(
            service_id_from_bytes(a["service"]), int(a["from_session"]), params
        )

    def on_position_set(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_position(
            service_id_from_bytes(a["service"]),
            int(a["position"]),
            a["supplier"],
            int(a["from_session"]),
        )

    def on_length_set(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_length(
            service_id_from_bytes(a["service"]), int(a["length"]), int(a["from_session"])
        )

    def on_supplier_staked(self, a: Mapping[str, Any]) -> None:
        self.snapshot.put_supplier(
            SupplierInfo(a["supplier"], int(a["stake"]), bytes(a["receipt_key"]), {})
        )

    def on_supplier_service_set(self, a: Mapping[str, Any]) -> None:
        info = self._supplier(a["supplier"])
        endpoints = dict(info.endpoints)
        endpoints[service_id_from_bytes(a["service"])] = str(a["endpoint"])
        self.snapshot.put_supplier(replace(info, endpoints=endpoints))

    def on_supplier_stake(self, a: Mapping[str, Any]) -> None:
        info = self._supplier(a["supplier"])
        self.snapshot.put_supplier(replace(info, stake=int(a["stake"])))

    def on_supplier_withdrawn(self, a: Mapping[str, Any]) -> None:
        self.snapshot.remove_supplier(a["supplier"])

    def on_app_staked(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_app(a["app"], service_id_from_bytes(a["service"]))

    def on_app_stake_set(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_app(a["app"], service_id_from_bytes(a["service"]))
        self.snapshot.set_app_stake(a["app"], int(a["from_session"]), int(a["stake"]))

    def on_app_withdrawn(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_app(a["app"], None)

    def on_delegated(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_delegation(
            a["app"], a["gateway"], int(a["from_session"]), True, int(a["epoch"])
        )

    def on_undelegated(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_delegation(a["app"], a["gateway"], int(a["from_session"]), False, 0)

    def on_gateway_stake_set(self, a: Mapping[str, Any]) -> None:
        self.snapshot.set_gateway_stake(
            a["gateway"], int(a["from_session"]), bool(a["staked"]), int(a["epoch"])
        )

    def on_service_added(self, a: Mapping[str, Any]) -> None:
        info = self._supplier(a["supplier"])
        endpoints = dict(info.endpoints)
        endpoints[service_id_from_bytes(a["service"])] = str(a["endpoint"])
        self.snapshot.put_supplier(replace(info, endpoints=endpoints))

    def on_service_removed(self, a: Mapping[str, Any]) -> None:
        info = self._supplier(a["supplier"])
        endpoints = dict(info.endpoints)
        endpoints.pop(service_id_from_bytes(a["service"]), None)
        self.snapshot.put_supplier(replace(info, endpoints=endpoints))

    def on_receipt_key_set(self, a: Mapping[str, Any]) -> None:
        key = bytes(a["receipt_key"])
        self.snapshot.set_receipt_key(a["supplier"], int(a["from_session"]), key)
        self.snapshot.put_supplier(replace(self._supplier(a["supplier"]), receipt_key=key))

    def on_session_chain_id(self, a: Mapping[str, Any]) -> None:
        n = int(a["session"])
        self._recorded_chain_ids.add(n)
        self.snapshot.set_chain_id(n, int(a["chain_id"]))

    def on_gateway_staked(self, a: Mapping[str, Any]) -> None:
        self.gateways[a["gateway"]] = GatewayRecord(a["gateway"], int(a["stake"]), str(a["url"]))

    def on_gateway_topped_up(self, a: Mapping[str, Any]) -> None:
        record = self.gateways.get(a["gateway"])
        if record is not None:
            self.gateways[a["gateway"]] = replace(record, stake=int(a["stake"]))

    def on_gateway_url_set(self, a: Mapping[str, Any]) -> None:
        record = self.gateways.get(a["gateway"])
        if record is not None:
            self.gateways[a["gateway"]] = replace(record, url=str(a["url"]))

    def on_gateway_unstaked(self, a: Mapping[str, Any]) -> None:
        record = self.gateways.get(a["gateway"])
        if record is not None:
            self.gateways[a["gateway"]] = replace(record, staked=False)

    def on_gateway_withdrawn(self, a: Mapping[str, Any]) -> None:
        self.gateways.pop(a["gateway"], None)


_Handler = Callable[[RegistryFollower, Mapping[str, Any]], None]

_HANDLERS: dict[str, _Handler] = {
    "ShapeSet": RegistryFollower.on_shape_set,
    "EconParamsSet": RegistryFollower.on_econ_params_set,
    "Checkpoint": RegistryFollower.on_checkpoint,
    "ServiceRegistered": RegistryFollower.on_service_registered,
    "ServiceMetadataSet": RegistryFollower.on_service_metadata_set,
    "ServiceOwnerSet": RegistryFollower.on_service_owner_set,
    "ServiceParamsSet": RegistryFollower.on_service_params_set,
    "PositionSet": RegistryFollower.on_position_set,
    "LengthSet": RegistryFollower.on_length_set,
    "SupplierStaked": RegistryFollower.on_supplier_staked,
    "SupplierServiceSet": RegistryFollower.on_supplier_service_set,
    "SupplierToppedUp": RegistryFollower.on_supplier_stake,
    "SupplierSlashed": RegistryFollower.on_supplier_stake,
    "SupplierWithdrawn": RegistryFollower.on_supplier_withdrawn,
    "AppStaked": RegistryFollower.on_app_staked,
    "AppStakeSet": RegistryFollower.on_app_stake_set,
    "AppWithdrawn": RegistryFollower.on_app_withdrawn,
    "Delegated": RegistryFollower.on_delegated,
    "Undelegated": RegistryFollower.on_undelegated,
    "GatewayStakeSet": RegistryFollower.on_gateway_stake_set,
    "ServiceAdded": RegistryFollower.on_service_added,
    "ServiceRemoved": RegistryFollower.on_service_removed,
    "ReceiptKeySet": RegistryFollower.on_receipt_key_set,
    "SessionChainId": RegistryFollower.on_session_chain_id,
    "GatewayStaked": RegistryFollower.on_gateway_staked,
    "GatewayToppedUp": RegistryFollower.on_gateway_topped_up,
    "GatewayUrlSet": RegistryFollower.on_gateway_url_set,
    "GatewayUnstaked": RegistryFollower.on_gateway_unstaked,
    "GatewayWithdrawn": RegistryFollower.on_gateway_withdrawn,
}
