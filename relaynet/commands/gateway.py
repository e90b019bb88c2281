"""``relaynet gateway``: run a gateway (``run``) and manage its API keys (``keys …``).

Composes the packages only: config through :mod:`gateway.config`, the server through
:func:`gateway.app.serve`, keys through :mod:`gateway.keys` on the backend the config names
(the keys file, or Redis shared by replicas). Running gateways pick key changes up without a
restart. ``stake``/``unstake``/``withdraw`` come from :mod:`relaynet.commands.gateway_stake`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import GatewayConfig
from gateway.keys import ApiKey, KeyBackend, generate_key, hash_key, revoked
from gateway.limiter import Limiter
from gateway.quorum import MAX_QUORUM
from protocol.encoding import address_from_hex, address_to_checksum, address_to_hex
from protocol.errors import RelaynetError
from relaynet.commands.problems import explain
from relaynet.config import load_gateway

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Run a gateway and manage its API keys.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: add, list, revoke, usage.")
app.add_typer(keys_app, name="keys")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="gateway config (TOML)")]
KeyIdArg = Annotated[str, typer.Argument(help="key id (a prefix of its hash) or the key")]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _config(path: Path, *, check_files: bool = False) -> GatewayConfig:
    """The config; ``check_files``: refuse missing input files too (what ``run`` needs)."""
    try:
        return load_gateway(path, check_files=check_files)
    except RelaynetError as exc:
        raise _fail(exc.message) from None


@app.command("run")
def run(
    config: ConfigOpt,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve dApps: POST /v1/{service} (Bearer key) or /v1/{service}/{key}, WebSocket too."""
    cfg = _config(config, check_files=True)
    from transport.logs import configure

    configure(cfg.gateway.log_level or log_level, cfg.gateway.log_format)
    from gateway.app import serve

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        if cfg.gateway.workers > 1:
            raise typer.Exit(code=_run_workers(cfg, config))
        asyncio.run(serve(cfg, reload=lambda: load_gateway(config, check_files=True)))
    except (RelaynetError, OSError) as exc:
        raise _fail(explain(config, exc)) from None


def _run_workers(cfg: GatewayConfig, config: Path) -> int:
    """``workers = N``: the parent forks and supervises N gateways (gateway.workers)."""
    from gateway.app import serve
    from gateway.workers import Supervisor, WorkerSeat, worker_config

    def one(worker_cfg: GatewayConfig, seat: WorkerSeat) -> None:
        def reread() -> GatewayConfig:
            return worker_config(load_gateway(config, check_files=True), seat.index)

        asyncio.run(serve(worker_cfg, reload=reread, seat=seat))

    return Supervisor(cfg, one).run()


@app.command("check")
def check(config: ConfigOpt) -> None:
    """Is this gateway ready? Config, key, key store, chain and deployment, stake, services
    (✓/✗ each; exit 1 on any ✗)."""
    from relaynet.checks import gateway_checks
    from relaynet.commands.tables import print_checks

    checks = gateway_checks(config)
    if not print_checks(f"gateway check {config}", checks):
        raise typer.Exit(code=1)


def _with_backend(cfg: GatewayConfig) -> tuple[KeyBackend, object]:
    from gateway.app import build_store, key_backend

    store = build_store(cfg)
    return key_backend(cfg, store), store


async def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        await close()


def _find(records: dict[str, ApiKey], key_id: str) -> ApiKey:
    wanted = key_id.lower()
    if wanted.startswith("rn_"):
        wanted = hash_key(key_id)
    matches = [r for h, r in records.items() if h.startswith(wanted)]
    if len(matches) != 1:
        raise _fail(f"{len(matches)} keys match {key_id!r}: give more of the key id")
    return matches[0]


OriginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--origin",
        help="a browser origin allowed by CORS, e.g. https://app.example (repeat; none: any)",
    ),
]


def _services(cfg: GatewayConfig, config: Path, items: list[str]) -> dict[str, str]:
    """``SERVICE=0xAPP`` items → {service: app}, each service one the gateway serves."""
    services: dict[str, str] = {}
    for item in items:
        sid, sep, app_hex = item.partition("=")
        if not sep:
            raise _fail(f"--service {item!r}: use SERVICE=0xAPP")
        if sid not in cfg.services:
            served = ", ".join(sorted(cfg.services)) or "none"
            raise _fail(
                f"--service {sid}: {config} serves no {sid!r} (its services: {served}) — "
                f"fix the id or add [services.{sid}] to the config"
            )
        try:
            services[sid] = address_to_hex(address_from_hex(app_hex))
        except RelaynetError as exc:
            raise _fail(f"--service {item!r}: {exc.message}") from exc
    return services


QuorumOpt = Annotated[
    int | None,
    typer.Option(
        "--quorum",
        help="default quorum of the key's reads: suppliers that must agree, 1–5 (DESIGN §4)",
    ),
]


def _quorum(n: int) -> int:
    if not 1 <= n <= MAX_QUORUM:
        raise _fail(f"--quorum {n}: a quorum is 1 to {MAX_QUORUM} suppliers")
    return n


def _origins(items: list[str] | None) -> tuple[str, ...]:
    """Origins as browsers send them: ``scheme://host[:port]``, no path, no trailing slash."""
    out: list[str] = []
    for item in items or ():
        scheme, sep, rest = item.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise _fail(
                f"--origin {item!r}: an origin is scheme://host[:port] with no path, "
                "e.g. https://app.example"
            )
        out.append(item)
    return tuple(out)


@keys_app.command("add")
def keys_add(
    config: ConfigOpt,
    service: Annotated[
        list[str], typer.Option("--service", "-s", help="SERVICE=0xAPP (the app that pays)")
    ],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
    rate_limit: Annotated[float, typer.Option(help="requests per second (0: none)")] = 50.0,
    burst: Annotated[float, typer.Option(help="token bucket size")] = 100.0,
    quota: Annotated[int, typer.Option(help="requests per quota period (0: none)")] = 0,
    quota_period: Annotated[int, typer.Option(help="quota period, seconds")] = 86_400,
    origin: OriginOpt = None,
    quorum: QuorumOpt = None,
) -> None:
    """Create a key; it is printed once and stored only as its sha256."""
    cfg = _config(config)
    default_quorum = _quorum(quorum) if quorum is not None else 1
    key = generate_key()
    record = ApiKey(
        key_hash=hash_key(key),
        name=name,
        services=_services(cfg, config, service),
        rate_limit=rate_limit,
        burst=burst,
        quota=quota,
        quota_period=quota_period,
        created=time.time(),
        origins=_origins(origin),
        quorum=default_quorum,
    )

    async def action() -> None:
        backend, store = _with_backend(cfg)
        try:
            await backend.put(record)
        finally:
            await _close(store)

    asyncio.run(action())
    typer.echo(key)
    typer.echo(f"key id {record.key_id} — store the key now, it is not shown again", err=True)


@keys_app.command("list")
def keys_list(config: ConfigOpt) -> None:
    """Every key: id, name, services, limits, state."""
    cfg = _config(config)

    async def action() -> dict[str, ApiKey]:
        backend, store = _with_backend(cfg)
        try:
            return await backend.load()
        finally:
            await _close(store)

    records = asyncio.run(action())
    from relaynet.commands.tables import print_table

    rows = [
        [
            r.key_id,
            "revoked" if r.revoked else "active",
            r.name or "-",
            f"{r.rate_limit:g}/s",
            f"{r.burst:g}",
            f"{r.quota}/{r.quota_period}s" if r.quota else "-",
            ", ".join(
                f"{s}={address_to_checksum(address_from_hex(a))}"
                for s, a in sorted(r.services.items())
            ),
            " ".join(r.origins) or "*",
            str(r.quorum),
        ]
        for r in sorted(records.values(), key=lambda r: r.created)
    ]
    print_table(
        f"API keys of {config} ({len(rows)})",
        [
            *("key id", "state", "name", "rate", "burst", "quota"),
            *("services (service=app)", "origins", "quorum"),
        ],
        rows,
        right=("rate", "burst", "quorum"),
    )


@keys_app.command("revoke")
def keys_revoke(config: ConfigOpt, key_id: KeyIdArg) -> None:
    """Revoke a key; running gateways refuse it within their reload interval."""
    cfg = _config(config)

    async def action() -> ApiKey:
        backend, store = _with_backend(cfg)
        try:
            record = _find(await backend.load(), key_id)
            await backend.put(revoked(record))
            return record
        finally:
            await _close(store)

    record = asyncio.run(action())
    typer.echo(f"revoked {record.key_id}")


@keys_app.command("update")
def keys_update(
    config: ConfigOpt,
    key_id: KeyIdArg,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="SERVICE=0xAPP (replaces the key's services)"),
    ] = None,
    rate_limit: Annotated[float | None, typer.Option(help="requests per second (0: none)")] = None,
    burst: Annotated[float | None, typer.Option(help="token bucket size")] = None,
    quota: Annotated[int | None, typer.Option(help="requests per quota period (0: none)")] = None,
    quota_period: Annotated[int | None, typer.Option(help="quota period, seconds")] = None,
    origin: OriginOpt = None,
    any_origin: Annotated[
        bool, typer.Option("--any-origin", help="drop the origin allowlist (CORS: *)")
    ] = False,
    quorum: QuorumOpt = None,
) -> None:
    """Change a key's limits, services or allowed origins; the key itself stays the same."""
    cfg = _config(config)
    if origin and any_origin:
        raise _fail("--origin and --any-origin exclude each other — give one")
    changes: dict[str, object] = {
        k: v
        for k, v in {
            "rate_limit": rate_limit,
            "burst": burst,
            "quota": quota,
            "quota_period": quota_period,
            "quorum": _quorum(quorum) if quorum is not None else None,
        }.items()
        if v is not None
    }
    if service:
        changes["services"] = _services(cfg, config, service)
    if origin:
        changes["origins"] = _origins(origin)
    if any_origin:
        changes["origins"] = ()
    if not changes:
        raise _fail(
            "nothing to change — give --rate-limit, --burst, --quota, --quota-period, "
            "--quorum, --service, --origin or --any-origin"
        )

    async def action() -> ApiKey:
        backend, store = _with_backend(cfg)
        try:
            record = _find(await backend.load(), key_id)
            if record.revoked:
                raise _fail(f"key {record.key_id} is revoked — add a new one")
            updated = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
            await backend.put(updated)
            return updated
        finally:
            await _close(store)

    record = asyncio.run(action())
    typer.echo(f"updated {record.key_id}: " + ", ".join(sorted(changes)))


@keys_app.command("rotate")
def keys_rotate(config: ConfigOpt, key_id: KeyIdArg) -> None:
    """A new secret with the same services, limits and origins; the old one is revoked."""
    cfg = _config(config)
    key = generate_key()

    async def action() -> tuple[ApiKey, ApiKey]:
        backend, store = _with_backend(cfg)
        try:
            old = _find(await backend.load(), key_id)
            if old.revoked:
                raise _fail(f"key {old.key_id} is revoked — add a new one")
            new = dataclasses.replace(old, key_hash=hash_key(key), created=time.time())
            await backend.put(new)  # the new key first: no moment without a valid key
            await backend.put(revoked(old))
            return old, new
        finally:
            await _close(store)

    old, new = asyncio.run(action())
    typer.echo(key)
    typer.echo(
        f"key id {new.key_id} replaces {old.key_id} (revoked) — store the key now, "
        "it is not shown again",
        err=True,
    )


@keys_app.command("usage")
def keys_usage(config: ConfigOpt, key_id: KeyIdArg) -> None:
    """Requests counted for a key: this quota period, in total, per service.

    With Redis the counters are shared by every replica and read from Redis; without Redis
    they live in the running gateway and are read from its metrics port."""
    cfg = _config(config)

    async def action() -> tuple[ApiKey, str]:
        backend, store = _with_backend(cfg)
        try:
            record = _find(await backend.load(), key_id)
            if cfg.redis is None:
                return record, _usage_from_metrics(cfg, record)
            usage = await Limiter(store).usage(record)  # type: ignore[arg-type]
            per = ", ".join(f"{s}={n}" for s, n in usage.by_service.items())
            return record, (
                f"period={usage.period_requests}"
                f"{'/' + str(record.quota) if record.quota else ''} "
                f"total={usage.total_requests} ({per})"
            )
        finally:
            await _close(store)

    record, text = asyncio.run(action())
    typer.echo(f"{record.key_id}  {text}")


def _usage_from_metrics(cfg: GatewayConfig, record: ApiKey) -> str:
    if not cfg.gateway.metrics_listen:
        raise _fail("no Redis and no metrics port: usage lives only in the running gateway")
    url = f"http://{cfg.gateway.metrics_listen}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError as exc:
        raise _fail(f"cannot read {url}: {exc}") from exc
    total = 0.0
    per: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("relaynet_gateway_key_requests_total{") and (
            f'key_id="{record.key_id}"' in line
        ):
            labels, _, value = line.rpartition(" ")
            service = labels.split('service="', 1)[1].split('"', 1)[0]
            per[service] = float(value)
            total += float(value)
    detail = ", ".join(f"{s}={int(n)}" for s, n in per.items())
    return f"total={int(total)} since the gateway started ({detail})"


try:
    from relaynet.commands.gateway_stake import add_to
except ModuleNotFoundError:  # pragma: no cover - lands with the staking commands
    pass
else:
    add_to(app)
