"""The gateway's composition root: one validated config in, one running server out.

Dependencies are built leaves first — store (Redis with a memory fallback, or memory), API keys,
services and their chain specs, the registry snapshot (the ledger follower's, or one given by a
test), sessions, QoS, the relay client, cache, router — and handed to the HTTP surface. Every
resource is opened and closed in ``cleanup_ctx``. :func:`serve` runs main and metrics sites and
drains in-flight requests on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from gateway.cache import AnswerCache
from gateway.config import GatewayConfig, parse_listen
from gateway.endpoints import AddressPolicy, GuardedConnector, GuardedResolve, no_redirects
from gateway.fastpath import rpc_route
from gateway.health import Prober
from gateway.keys import FileKeyBackend, KeyBackend, KeyRing, RedisKeyBackend
from gateway.limiter import Limiter
from gateway.metrics import GatewayMetrics
from gateway.outage import Outage
from gateway.relay_client import AnswerBudget, RelayClient
from gateway.router import Router
from gateway.selection import Qos
from gateway.server import add_routes, metrics_app, serve_fast
from gateway.services import ServiceTable
from gateway.sessions import SessionBook
from gateway.state import GATEWAY, Gateway
from gateway.store.base import Store
from gateway.store.fallback import FallbackStore
from gateway.store.memory import MemoryStore
from gateway.store.redis import RedisStore
from gateway.workers import WorkerSeat
from gateway.ws import Upstream, websocket_handler
from protocol.encoding import address_from_hex, address_to_checksum
from protocol.errors import RelaynetError
from protocol.keys import AccountKey
from protocol.relay import Domain
from session.snapshot import RegistrySnapshot
from transport.fastserve import FastSite
from transport.http1 import HttpClient
from transport.logs import configure

__all__ = ["build_outage", "build_store", "create_app", "key_backend", "serve"]

log = logging.getLogger("relaynet.gateway")


def build_store(config: GatewayConfig, metrics: GatewayMetrics | None = None) -> Store:
    """Redis (with a memory fallback while it is away) when configured, else memory."""
    memory = MemoryStore(max_cache_entries=config.cache.max_entries)
    if config.redis is None:
        return memory

    def changed(up: bool) -> None:
        log.warning("shared store %s", "back" if up else "unreachable: serving from memory")

    redis_store = RedisStore(config.redis.url.get_secret_value(), prefix=config.redis.prefix)
    return FallbackStore(
        redis_store, memory, retry_after=config.redis.retry_after, on_change=changed
    )


def build_outage(
    config: GatewayConfig, store: Store, metrics: GatewayMetrics | None = None
) -> Outage | None:
    """The Redis outage rules (heartbeat, snapshot, journal) when Redis is the shared store."""
    primary = store.primary if isinstance(store, FallbackStore) else store
    if config.redis is None or not isinstance(primary, RedisStore):
        return None
    state_dir = config.redis.state_dir or Path(tempfile.gettempdir()) / (
        "relaynet-gateway-" + hashlib.sha256(str(config.gateway.listen).encode()).hexdigest()[:12]
    )

    def changed(up: bool) -> None:
        if metrics is not None:
            metrics.store_degraded.set(0 if up else 1)

    state = Path(state_dir)
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe = state / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        state = Path(tempfile.mkdtemp(prefix="relaynet-gateway-state-"))
        log.warning(
            "redis.state_dir %s is not writable (%s): using %s, which a restart may lose",
            state_dir,
            exc.strerror,
            state,
        )
    return Outage(
        primary,
        state,
        heartbeat_interval=config.redis.heartbeat_interval,
        heartbeat_ttl=config.redis.heartbeat_ttl,
        retry_after=config.redis.retry_after,
        on_change=changed,
    )


def key_backend(config: GatewayConfig, store: Store) -> KeyBackend:
    """Where API keys live: the keys file when given, else the Redis hash."""
    if config.keys.file is not None:
        return FileKeyBackend(Path(config.keys.file))
    primary = store.primary if isinstance(store, FallbackStore) else store
    if not isinstance(primary, RedisStore):
        raise ValueError("API keys need keys.file or [redis]")
    assert config.redis is not None
    return RedisKeyBackend(primary.client, config.redis.prefix)


def relay_tls(config: GatewayConfig) -> ssl.SSLContext:
    """How the gateway checks relayers' https:// and wss:// endpoints: certificate and host
    name verified, against ``[relay] ca_file`` or the system's bundle."""
    ca = config.relay.ca_file
    return ssl.create_default_context(cafile=str(ca) if ca is not None else None)


def serving_tls(config: GatewayConfig) -> ssl.SSLContext | None:
    """The listener's TLS (``gateway.tls_cert`` / ``tls_key``), None for plain HTTP."""
    cert, key = config.gateway.tls_cert, config.gateway.tls_key
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def create_app(
    config: GatewayConfig,
    *,
    snapshot: RegistrySnapshot | None = None,
    domain: Domain | None = None,
    ready: Callable[[], bool] | None = None,
) -> web.Application:
    """Build the gateway application. Without ``snapshot`` it follows the settlement chain
    named by the config (ledger follower); tests may hand in a snapshot and a domain."""
    metrics = GatewayMetrics()
    store = build_store(config, metrics)
    keys = KeyRing(key_backend(config, store), reload_interval=config.keys.reload_interval)
    outage = build_outage(config, store, metrics)
    services = ServiceTable.from_config(config.services)
    follower = None
    if snapshot is None:
        from ledger.deploy import Deployment
        from ledger.follower import RegistryFollower, check_confirmations

        text = await asyncio.to_thread(Path(config.settlement.deployment).read_text)
        deployment = Deployment.from_json(text)
        try:
            confirmations = check_confirmations(
                config.settlement.confirmations, deployment.shape, "settlement.confirmations"
            )
        except ValueError as exc:
            raise RelaynetError(str(exc)) from None
        follower = RegistryFollower(
            config.settlement.rpc_url,
            deployment,
            poll_interval=config.settlement.poll_interval,
            confirmations=confirmations,
        )
        snapshot = follower.snapshot
        domain = Domain(deployment.chain_id, address_from_hex(deployment.settlement))
        f = follower
        ready = lambda: f.caught_up  # noqa: E731
    if domain is None:
        raise ValueError("a domain is needed with an injected snapshot")
    is_ready: Callable[[], bool] = ready or (lambda: True)
    account = AccountKey(config.gateway.key_bytes())
    lag = max(config.relay.session_lag, config.settlement.confirmations)
    sessions = SessionBook(snapshot, lag=lag, refresh=follower.refresh if follower else None)
    if follower is not None:
        follower.add_reorg_listener(lambda reorg: sessions.forget())
    qos = Qos(
        alpha=config.qos.ewma_alpha,
        max_height_lag=config.qos.max_height_lag,
        breaker_failures=config.qos.breaker_failures,
        breaker_cooldown=config.qos.breaker_cooldown,
    )
    # every supplier address (HTTP and WebSocket, names and literals) passes one check
    policy = AddressPolicy(
        devnet=config.gateway.devnet, allow_networks=config.gateway.allow_networks
    )
    tls = relay_tls(config)
    connector = GuardedConnector(
        policy=policy,
        ssl=tls,
        limit=config.relay.connections,
        limit_per_host=config.relay.connections,
        ttl_dns_cache=10,
        enable_cleanup_closed=True,
    )
    # bodies pass through byte for byte (no decompression), so ask for no encoding either
    http = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=("Accept", "Accept-Encoding"),
        trace_configs=[no_redirects()],  # a supplier's redirect is never followed
    )
    client = RelayClient(
        http,
        account,
        domain,
        devnet=config.gateway.devnet,
        receipt_check=config.relay.receipt_check,
        chain_id_of=snapshot.chain_id,
        budget=AnswerBudget(config.relay.answer_budget),
        # relays on the hot path's own HTTP/1.1 client, behind the same address check
        fast=HttpClient(
            resolve=GuardedResolve(policy),
            max_idle_per_origin=config.relay.connections,
            limit_per_origin=config.relay.connections,
            ssl_context=tls,
        ),
    )
    budget = client.budget
    metrics.answer_bytes.set_function(lambda: budget.in_use)
    metrics.answer_bytes_peak.set_function(lambda: budget.high_water)
    metrics.answer_shed.set_function(lambda: budget.shed)
    cache = AnswerCache(store, agreement=config.cache.agreement) if config.cache.enabled else None
    router = Router(
        sessions=sessions,
        client=client,
        qos=qos,
        cache=cache,
        metrics=metrics,
        config=config.relay,
        store=store,
    )
    prober = Prober(
        sessions=sessions,
        services=services,
        client=client,
        qos=qos,
        store=store,
        metrics=metrics,
        interval=config.qos.probe_interval,
        timeout=config.relay.timeout,
    )
    gw = Gateway(
        config=config,
        keys=keys,
        # with Redis, the limiter talks to it directly: a failure must reach the outage rules
        # (journal), never the fallback store's silent per-replica memory
        limiter=Limiter(outage.redis if outage is not None else store, outage=outage),
        services=services,
        sessions=sessions,
        router=router,
        metrics=metrics,
        store=store,
        ready=is_ready,
    )
    metrics.inflight.set_function(lambda: gw.inflight)  # no per-request gauge updates
    app = web.Application(client_max_size=config.limits.max_body_bytes + 1)
    app[GATEWAY] = gw
    add_routes(app, websocket_handler(Upstream(client=client, qos=qos, store=store)))

    async def resources(_app: web.Application) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        with contextlib.suppress(Exception):  # first load; the loop below keeps retrying
            await keys.refresh()
        after = None
        if outage is not None:
            if not keys.loaded:  # Redis unreachable at start: serve the snapshot's keys
                snap = outage.load_snapshot()
                if snap is not None:
                    keys.adopt(snap.keys)
                outage.lost()
            o = outage
            after = lambda records: o.after_reload(records, time.time())  # noqa: E731
            tasks.append(asyncio.create_task(outage.run(), name="redis-heartbeat"))
        if follower is not None:
            await follower.start()
        tasks.append(asyncio.create_task(keys.run(after), name="keys-reload"))
        tasks.append(asyncio.create_task(prober.run(), name="qos-prober"))
        tasks.append(asyncio.create_task(_flush_metrics(metrics), name="metrics-flush"))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if follower is not None:
                await follower.stop()
            await http.close()
            if client.fast is not None:
                await client.fast.close()
            await store.close()

    app.cleanup_ctx.append(resources)
    return app


async def _flush_metrics(metrics: GatewayMetrics, every: float = 1.0) -> None:
    """Fold the request path's lock-free metric cells into the series once a second (a scrape
    folds them too; this keeps series shared with other processes current)."""
    while True:
        await asyncio.sleep(every)
        metrics.flush()


def reloaded(old: GatewayConfig, new: GatewayConfig) -> tuple[GatewayConfig, list[str]]:
    """What SIGHUP applies: ``[limits]`` (but ``max_body_bytes``, fixed by the listener),
    ``[ws]``, ``gateway.access_log``, ``log_format`` and ``log_level``; keys reload on their
    own. Returns the config in force and the changed settings that need a restart (named, and
    left as they were)."""
    limits = new.limits.model_copy(update={"max_body_bytes": old.limits.max_body_bytes})
    logs = ("access_log", "log_format", "log_level")
    server = old.gateway.model_copy(update={k: getattr(new.gateway, k) for k in logs})
    applied = old.model_copy(update={"limits": limits, "ws": new.ws, "gateway": server})
    fixed = [
        f"{section}.{name}"
        for section in type(old).model_fields
        for name, value in _fields(getattr(new, section)).items()
        if _fields(getattr(applied, section)).get(name) != value
    ]
    return applied, fixed


def _fields(value: object) -> dict[str, object]:
    if hasattr(value, "model_dump"):
        return dict(value.model_dump())
    if isinstance(value, dict):
        return {k: _fields(v) for k, v in value.items()}
    return {"": value}


async def serve(
    config: GatewayConfig,
    *,
    stop: asyncio.Event | None = None,
    reload: Callable[[], GatewayConfig] | None = None,
    seat: WorkerSeat | None = None,
) -> None:
    """Run the gateway until SIGTERM/SIGINT (or ``stop``); drain in-flight requests, exit.
    SIGHUP reads the config again through ``reload`` and applies what :func:`reloaded` can.
    ``seat``: one of ``workers = N`` forked processes (:mod:`gateway.workers`): the listener
    is shared with ``SO_REUSEPORT`` and metrics are served on the seat's socket."""
    app = await create_app(config)
    gw = app[GATEWAY]
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=config.gateway.drain_timeout, access_log=None
    )
    await runner.setup()
    host, port = parse_listen(config.gateway.listen)
    # POST /v1/{service}[/{key}] off aiohttp's per-request cost; the rest stays on aiohttp
    route = rpc_route(app, serve_fast)
    max_body = config.limits.max_body_bytes
    if seat is not None:
        await seat.until_ready(gw.ready)
    await FastSite(
        runner,
        host,
        port,
        route=route,
        max_body=max_body,
        reuse_address=True,
        reuse_port=seat is not None,
        ssl_context=serving_tls(config),
    ).start()
    metrics_runner = None
    if config.gateway.metrics_listen or (seat is not None and seat.metrics_sock is not None):
        metrics_runner = web.AppRunner(metrics_app(gw.metrics), access_log=None)
        await metrics_runner.setup()
        if seat is not None and seat.metrics_sock is not None:
            await web.SockSite(metrics_runner, seat.metrics_sock).start()
        else:
            assert config.gateway.metrics_listen is not None
            mhost, mport = parse_listen(config.gateway.metrics_listen)
            await web.TCPSite(metrics_runner, mhost, mport, reuse_address=True).start()
    if seat is not None:
        seat.listening()
    gc.freeze()  # start-up's objects (snapshot, tables, modules) leave the collector's scans
    log.info("gateway listening on %s", config.gateway.listen)
    log.info(
        "gateway address %s", address_to_checksum(AccountKey(config.gateway.key_bytes()).address)
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        read = reload

        def hangup() -> None:
            try:
                new = read()
            except Exception as exc:  # a broken file keeps the settings in force
                log.warning("SIGHUP: config not reloaded, the old one stays: %s", exc)
                return
            gw.config, fixed = reloaded(gw.config, new)
            current = logging.getLevelName(logging.getLogger().getEffectiveLevel())
            configure(gw.config.gateway.log_level or str(current), gw.config.gateway.log_format)
            log.info("SIGHUP: config reloaded (limits, ws, access_log, log_format, log_level)")
            if fixed:
                log.warning(
                    "SIGHUP: these need a restart and were left as they were: %s", ", ".join(fixed)
                )

        loop.add_signal_handler(signal.SIGHUP, hangup)
    await stop.wait()
    log.info("draining %d in-flight requests", gw.inflight)
    gw.draining = True  # /readyz answers 503 from now on
    if config.gateway.drain_seconds > 0:  # load balancers see the 503 before the listener goes
        log.info("closing the listener in %.1f s", config.gateway.drain_seconds)
        await asyncio.sleep(config.gateway.drain_seconds)
    # stops listening, closes idle connections, waits for in-flight handlers (drain_timeout),
    # then closes the resources; bounded, so that SIGTERM always ends the process
    closing = asyncio.ensure_future(_close(runner, metrics_runner))
    done, _ = await asyncio.wait({closing}, timeout=config.gateway.drain_timeout + SHUTDOWN_GRACE)
    if not done:
        log.error(
            "shutdown not finished %.0f s after the drain timeout: exiting without it",
            SHUTDOWN_GRACE,
        )
        logging.shutdown()
        os._exit(1)
    closing.result()


SHUTDOWN_GRACE = 5.0  # seconds past drain_timeout for closing resources after SIGTERM


async def _close(runner: web.AppRunner, metrics_runner: web.AppRunner | None) -> None:
    await runner.cleanup()
    if metrics_runner is not None:
        await metrics_runner.cleanup()
