"""The relayer's composition root: everything built leaves-first from one validated config.

    config ─┬─ metrics
            ├─ deployment → domain, follower (→ snapshot, readiness)
            ├─ services (chain spec pricing, backends, headers)
            ├─ relay log (data_dir/logs) ─ budget meter ─ verifier ─ recorder
            ├─ backend transport (keep-alive pool)
            ├─ claim store (data_dir/claims) ─ ledger client → chain ─ claimer
            └─ relay app (POST/WS /v1/relay, /healthz, /readyz) + metrics app

:func:`build_relayer` wires the parts; :meth:`Relayer.web_app` returns the aiohttp app whose
``cleanup_ctx`` starts and stops the long-lived resources (follower, group commit, claimer,
housekeeping, HTTP pools) in order; :func:`serve` runs it with one ``AppRunner`` per port
until SIGINT/SIGTERM. Tests may inject the snapshot, chain and transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from protocol.encoding import address_from_hex
from protocol.errors import RelaynetError
from protocol.keys import AccountKey, ReceiptKey
from protocol.relay import Domain
from relayer.backend import Http1Transport
from relayer.budget import BudgetMeter
from relayer.claimer import Claimer, ClaimStore
from relayer.config import RelayerConfig
from relayer.errors import ConfigError
from relayer.gauges import AccountGauges, LedgerAccount
from relayer.interfaces import BackendTransport, ServiceRuntime, SettlementChain
from relayer.keyring import ReceiptKeyring
from relayer.metrics import RelayerMetrics
from relayer.pricing import SpecPricing, resolve_spec
from relayer.recorder import Recorder
from relayer.relaylog import RelayLog
from relayer.server import RELAY_PATH, RelayService, metrics_app, relay_app
from relayer.verify import Verifier
from relayer.websocket import WebSocketRelay
from session.snapshot import RegistrySnapshot
from transport.fastserve import FastSite

__all__ = ["Follower", "Relayer", "RelayerKeys", "build_relayer", "build_services", "serve"]

log = logging.getLogger("relaynet.relayer")

_HOUSEKEEPING_INTERVAL = 0.5


@dataclass(frozen=True)
class RelayerKeys:
    """The supplier's keys, loaded by the CLI from the files the config names."""

    account: AccountKey
    receipt: ReceiptKey


class Follower(Protocol):
    """What the relayer needs of ``ledger.follower.RegistryFollower``."""

    @property
    def snapshot(self) -> Any: ...

    @property
    def caught_up(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_services(config: RelayerConfig, base: Path | None = None) -> dict[str, ServiceRuntime]:
    """Per served service: its chain spec's pricing, backend URLs, headers and limits."""
    services: dict[str, ServiceRuntime] = {}
    for sid, svc in config.services.items():
        spec = resolve_spec(svc.chain, base)
        pricing = SpecPricing.for_spec(spec, allow_writes=svc.allow_writes)
        policy = pricing.handler.header_policy(spec)
        headers = policy.backend_headers(extra=svc.header_values())
        services[sid] = ServiceRuntime(
            service_id=sid,
            pricing=pricing,
            backends=dict(svc.backends),
            headers=headers,
            max_body_bytes=svc.max_body_bytes,
            timeout=svc.timeout,
            connect_timeout=svc.connect_timeout,
            ws_backend=svc.ws_backend,
        )
    return services


@dataclass
class Relayer:
    """Every part of a running relayer, built by :func:`build_relayer`."""

    config: RelayerConfig
    keys: RelayerKeys
    metrics: RelayerMetrics
    snapshot: RegistrySnapshot
    relay_log: RelayLog
    meter: BudgetMeter
    verifier: Verifier
    recorder: Recorder
    transport: BackendTransport
    service: RelayService
    websocket: WebSocketRelay
    store: ClaimStore
    claimer: Claimer | None
    follower: Follower | None = None
    closers: list[Callable[[], Any]] = field(default_factory=list)
    probe_backends: bool = True
    gauges: AccountGauges | None = None
    keyring: ReceiptKeyring | None = None

    def ready(self) -> bool:
        return self.relay_log.healthy and (self.follower is None or self.follower.caught_up)

    def not_ready_reason(self) -> str:
        if not self.relay_log.healthy:
            return "relay log failed (fsync and rewrite)"
        return "follower catching up"

    # -- resources, in start order ----------------------------------------------------------

    async def _follower_ctx(self, app: web.Application) -> AsyncIterator[None]:
        if self.follower is not None:
            await self.follower.start()
        yield
        if self.follower is not None:
            await self.follower.stop()

    async def _committer_ctx(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self.relay_log.run_committer(), name="relaylog-commit")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.relay_log.close()

    async def _transport_ctx(self, app: web.Application) -> AsyncIterator[None]:
        yield
        await self.transport.close()
        await self.websocket.close()
        for closer in self.closers:
            result = closer()
            if asyncio.iscoroutine(result):
                await result

    async def _background_ctx(self, app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self._housekeeping(), name="relayer-housekeeping")]
        if self.probe_backends:
            tasks.append(asyncio.create_task(self._probe_backends(), name="relayer-probe"))
        if self.claimer is not None:
            tasks.append(asyncio.create_task(self._claims(), name="relayer-claimer"))
        if self.gauges is not None:
            interval = lambda: self.config.metrics.account_interval  # noqa: E731 — SIGHUP
            tasks.append(asyncio.create_task(self.gauges.run(interval), name="relayer-gauges"))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_backends(self) -> None:
        """Once at start: say in the log whether each backend answers and is the right chain
        (``relaynet relayer init`` refuses a wrong one; a running relayer only warns)."""
        import aiohttp

        from rollups.health import probe

        async with aiohttp.ClientSession() as session:
            for sid, runtime in self.verifier.services.items():
                pricing = runtime.pricing
                if not isinstance(pricing, SpecPricing):
                    continue
                try:
                    health = await probe(
                        pricing.spec, dict(runtime.backends), session, headers=runtime.headers
                    )
                except (RelaynetError, aiohttp.ClientError, OSError) as exc:
                    log.warning("%s: backend check failed — %s", sid, exc)
                    continue
                if health.ok:
                    log.info(
                        "%s: backend ok (chain %s, height %s)", sid, health.chain_id, health.height
                    )
                else:
                    log.warning(
                        "%s: backend check failed — %s: %s", sid, health.status, health.reason
                    )

    async def _claims(self) -> None:
        assert self.claimer is not None
        while not self.ready():  # noqa: ASYNC110 — readiness is a property, not an event
            await asyncio.sleep(0.1)
        await self.claimer.run()

    async def _housekeeping(self) -> None:
        """Close the logs and caches of sessions whose grace ended."""
        while True:
            await asyncio.sleep(_HOUSEKEEPING_INTERVAL)
            if self.follower is not None and not self.follower.caught_up:
                continue
            if self.keyring is not None:
                self.keyring.reload()  # a rotated receipt key file (a stat; re-read if changed)
            head = self.snapshot.head()
            self.metrics.follower_head.set(head)
            for key in self.verifier.expire(head):
                try:
                    await self.relay_log.retire(key)
                except RelaynetError as exc:  # the claimer retires it again before claiming
                    log.warning("cannot retire session %s: %s", key.n, exc.message)

    def web_app(self) -> web.Application:
        app = relay_app(self.service, self.websocket.handle)
        app.cleanup_ctx.extend(
            [self._follower_ctx, self._transport_ctx, self._committer_ctx, self._background_ctx]
        )
        return app


def build_relayer(
    config: RelayerConfig,
    keys: RelayerKeys,
    *,
    snapshot: RegistrySnapshot | None = None,
    follower: Follower | None = None,
    chain: SettlementChain | None = None,
    transport: BackendTransport | None = None,
    domain: Domain | None = None,
    spec_base: Path | None = None,
    probe_backends: bool = True,
) -> Relayer:
    """Build every part from ``config`` (leaves first). Without an injected ``snapshot`` the
    deployment file is read and a ``RegistryFollower`` keeps the snapshot; without an injected
    ``chain`` a ``LedgerClient`` for the supplier account submits claims. ``probe_backends``
    logs one health probe per backend at start."""
    metrics = RelayerMetrics()
    ledger = _ledger(config, keys, snapshot, follower, chain, domain)
    relay = _relay_path(config, keys, ledger, metrics, transport, spec_base)
    store = ClaimStore(config.data_dir / "claims")
    claimer = _claimer(config, keys, ledger, relay.relay_log, store, metrics)
    relayer = Relayer(
        config=config,
        keys=keys,
        metrics=metrics,
        snapshot=ledger.snapshot,
        relay_log=relay.relay_log,
        meter=relay.meter,
        verifier=relay.verifier,
        recorder=relay.recorder,
        transport=relay.transport,
        service=relay.service,
        websocket=relay.websocket,
        store=store,
        claimer=claimer,
        follower=ledger.follower,
        closers=ledger.closers,
        probe_backends=probe_backends,
        keyring=relay.keyring,
        gauges=AccountGauges(
            metrics,
            ledger.account,
            config.data_dir,
            claim_gas=config.claims.claim_gas_estimate + config.claims.proof_gas_estimate,
        ),
    )
    relay.service.ready = relayer.ready
    relay.service.not_ready_reason = relayer.not_ready_reason
    return relayer


@dataclass
class _Ledger:
    """What the relayer knows of the settlement chain: the registry snapshot (kept by the
    follower unless injected), the EIP-712 domain, and the chain claims are submitted to."""

    snapshot: RegistrySnapshot
    domain: Domain
    follower: Follower | None
    chain: SettlementChain | None
    account: LedgerAccount | None = None
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def on_reorg(self, listener: Callable[..., Any]) -> None:
        """Call ``listener`` after a settlement-chain reorganisation (a follower's only)."""
        add = getattr(self.follower, "add_reorg_listener", None)
        if add is not None:
            add(listener)


def _ledger(
    config: RelayerConfig,
    keys: RelayerKeys,
    snapshot: RegistrySnapshot | None,
    follower: Follower | None,
    chain: SettlementChain | None,
    domain: Domain | None,
) -> _Ledger:
    """Step 1: the deployment (read only when something is not injected), the domain, the
    follower and the claims chain."""
    deployment = None
    if snapshot is None or domain is None or (chain is None and config.claims.enabled):
        deployment = _load_deployment(config.chain.deployment)
    if domain is None:
        assert deployment is not None
        domain = Domain(deployment.chain_id, address_from_hex(deployment.settlement))
    if deployment is not None:
        from ledger.follower import check_confirmations

        try:
            check_confirmations(config.chain.confirmations, deployment.shape, "chain.confirmations")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if snapshot is None:
        from ledger.follower import RegistryFollower

        assert deployment is not None
        follower = RegistryFollower(
            config.chain.rpc_url,
            deployment,
            poll_interval=config.chain.poll_interval,
            confirmations=config.chain.confirmations,
        )
        snapshot = follower.snapshot
    ledger = _Ledger(snapshot, domain, follower, chain)
    if chain is None and config.claims.enabled:
        from ledger.client import LedgerClient
        from relayer.chain import LedgerChain

        client = LedgerClient(config.chain.rpc_url, deployment, keys.account)  # type: ignore[arg-type]
        ledger.chain = LedgerChain(client)
        ledger.account = LedgerAccount(client)
        ledger.closers.append(client.close)
    return ledger


@dataclass
class _RelayPath:
    """The hot path's stages (verify → forward → record) and the servers over them."""

    relay_log: RelayLog
    meter: BudgetMeter
    verifier: Verifier
    keyring: ReceiptKeyring
    recorder: Recorder
    transport: BackendTransport
    service: RelayService
    websocket: WebSocketRelay


def _relay_path(
    config: RelayerConfig,
    keys: RelayerKeys,
    ledger: _Ledger,
    metrics: RelayerMetrics,
    transport: BackendTransport | None,
    spec_base: Path | None,
) -> _RelayPath:
    """Step 2: relay log, budget meter, verifier, receipt keys, recorder, backend transport,
    and the HTTP and WebSocket servers over them."""
    relay_log = RelayLog(
        config.data_dir / "logs", metrics, fsync_fault_file=config.log.fsync_fault_file
    )
    meter = BudgetMeter()
    verifier = Verifier(
        ledger.snapshot,
        keys.account.address,
        ledger.domain,
        build_services(config, spec_base),
        meter,
        existing_records=relay_log.records,
    )
    ledger.on_reorg(verifier.on_reorg)  # a reorganisation may re-draw sessions: check afresh
    keyring = ReceiptKeyring(
        keys.receipt,
        supplier=keys.account.address,
        snapshot=ledger.snapshot,
        path=config.keys.receipt_key,
    )
    recorder = Recorder(relay_log, keyring)
    transport = transport or Http1Transport(
        limit_per_host=max(s.max_connections for s in config.services.values())
    )
    service = RelayService(verifier, transport, recorder, metrics, ready=lambda: True)
    websocket = WebSocketRelay(
        service,
        verifier,
        recorder,
        metrics,
        max_streams_per_app=config.server.max_streams_per_app,
    )
    return _RelayPath(relay_log, meter, verifier, keyring, recorder, transport, service, websocket)


def _claimer(
    config: RelayerConfig,
    keys: RelayerKeys,
    ledger: _Ledger,
    relay_log: RelayLog,
    store: ClaimStore,
    metrics: RelayerMetrics,
) -> Claimer | None:
    """Step 3: the claimer, when claims are on and there is a chain to submit them to."""
    if ledger.chain is None or not config.claims.enabled:
        return None
    claimer = Claimer(
        config=config.claims,
        snapshot=ledger.snapshot,
        chain=ledger.chain,
        relay_log=relay_log,
        store=store,
        supplier=keys.account.address,
        metrics=metrics,
        confirmations=config.chain.confirmations,
        retention=config.log.retention_hours * 3600,
    )
    ledger.on_reorg(claimer.on_reorg)
    return claimer


def _load_deployment(path: Path) -> Any:
    from ledger.deploy import Deployment

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read deployment file {path}: {exc}") from exc
    return Deployment.from_json(text)


async def serve(
    relayer: Relayer,
    *,
    on_ready: Callable[[int, int], None] | None = None,
    reload: Callable[[], RelayerConfig] | None = None,
) -> None:
    """Run the relay and metrics apps until SIGINT/SIGTERM; ``on_ready(port, metrics_port)``.
    SIGHUP reads the config again through ``reload`` (:mod:`relayer.reload`)."""
    cfg = relayer.config
    ssl_context = None
    if cfg.server.tls_cert is not None and cfg.server.tls_key is not None:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(cfg.server.tls_cert, cfg.server.tls_key)
    runner = web.AppRunner(relayer.web_app(), access_log=None, handle_signals=False)
    await runner.setup()
    runner._shutdown_timeout = cfg.server.shutdown_grace
    fast = relayer.service.relay_fast
    site = FastSite(  # POST /v1/relay off aiohttp's per-request cost; the rest on aiohttp
        runner,
        cfg.server.host,
        cfg.server.port,
        route=lambda path: fast if path == RELAY_PATH else None,
        max_body=relayer.verifier.max_body_bytes,
        ssl_context=ssl_context,
        backlog=1024,
    )
    await site.start()
    port = _bound_port(site)
    metrics_runner: web.AppRunner | None = None
    metrics_port = 0
    if cfg.metrics.enabled:
        metrics_runner = web.AppRunner(
            metrics_app(relayer.metrics, relayer.service.tally.flush), access_log=None
        )
        await metrics_runner.setup()
        msite = web.TCPSite(metrics_runner, cfg.metrics.host, cfg.metrics.port)
        await msite.start()
        metrics_port = _bound_port(msite)
    gc.freeze()  # start-up's objects (snapshot, sessions, modules) leave the collector's scans
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        from relayer.reload import hangup

        loop.add_signal_handler(signal.SIGHUP, hangup, relayer, reload)
    if on_ready is not None:
        on_ready(port, metrics_port)
    try:
        await stop.wait()
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0
