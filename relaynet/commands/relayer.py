"""``relaynet relayer``: set up (``init``), run (``run``) and inspect (``status``) a relayer.

Composes the packages only: keys through :mod:`relayer.keyfiles`, config through
:mod:`relayer.config`, the server through :func:`relayer.app.build_relayer`, backend checks
through :func:`rollups.health.probe`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from protocol.encoding import address_to_checksum
from protocol.errors import RelaynetError
from relaynet.commands.problems import explain

app = typer.Typer(no_args_is_help=True, help="Run a relayer (node runners).")

__all__ = ["app"]

DEFAULT_PASSPHRASE_ENV = "RELAYER_PASSPHRASE"  # noqa: S105 — a variable name


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


# --- run ---------------------------------------------------------------------------------------


@app.command("run")
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="relayer config (TOML)")],
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Serve relays, record them durably, claim and prove automatically."""
    from relayer.app import RelayerKeys, build_relayer, serve
    from relayer.keyfiles import read_account_key, read_receipt_key
    from relaynet.config import load_relayer
    from transport.logs import configure

    configure(log_level)
    try:
        cfg = load_relayer(config)
        configure(cfg.server.log_level or log_level, cfg.server.log_format)
        keys = RelayerKeys(
            account=read_account_key(cfg.keys.supplier_keystore, cfg.passphrase()),
            receipt=read_receipt_key(cfg.keys.receipt_key),
        )
        relayer = build_relayer(cfg, keys, spec_base=config.resolve().parent)
    except RelaynetError as exc:
        raise _fail(explain(config, exc)) from None

    def ready(port: int, metrics_port: int) -> None:
        address = address_to_checksum(keys.account.address)
        print(
            f"relayer ready supplier={address} port={port} metrics_port={metrics_port}",
            flush=True,
        )

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(serve(relayer, on_ready=ready, reload=lambda: load_relayer(config)))


# --- init --------------------------------------------------------------------------------------


def _parse_pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise _fail(f"{what} {value!r}: write it as ID=VALUE")
        out[key] = rest
    return out


def _headers(values: list[str]) -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {}
    for sid, spec in _parse_pairs(values, "--header").items():
        name, sep, value = spec.partition(":")
        if not sep:
            raise _fail(f"--header {sid}={spec!r}: write it as SERVICE=NAME:VALUE")
        headers.setdefault(sid, {})[name.strip()] = value.strip()
    return headers


@app.command("init")
def init(
    directory: Annotated[Path, typer.Option("--dir", help="where config and keys go")] = Path(
        "relayer"
    ),
    service: Annotated[
        list[str] | None, typer.Option("--service", help="SERVICE=BACKEND_URL (repeatable)")
    ] = None,
    chain: Annotated[
        list[str] | None,
        typer.Option("--chain", help="SERVICE=CHAIN_SPEC (catalogue name or file; default: id)"),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="SERVICE=NAME:VALUE, a header added for the backend"),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="settlement chain RPC URL (default: the deployment's)")
    ] = None,
    deployment: Annotated[Path | None, typer.Option(help="deployment JSON file")] = None,
    host: Annotated[str, typer.Option(help="listen address")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="listen port")] = 8081,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port")] = 9101,
    public_url: Annotated[
        str | None, typer.Option(help="URL clients reach this relayer at (for staking)")
    ] = None,
    stake: Annotated[str, typer.Option(help="stake for the printed command, e.g. 1000rly")] = (
        "1000rly"
    ),
    passphrase_env: Annotated[
        str | None, typer.Option(help="environment variable holding the keystore passphrase")
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="file holding the keystore passphrase")
    ] = None,
    check: Annotated[bool, typer.Option(help="probe each backend (chain and health)")] = True,
    force: Annotated[bool, typer.Option(help="overwrite existing files")] = False,
    interactive: Annotated[
        bool, typer.Option(help="prompt for missing values (default when a terminal)")
    ] = sys.stdin.isatty(),
) -> None:
    """Create the supplier keys and a config, check the backends, print the stake command."""
    from relayer.keyfiles import resolve_passphrase
    from relayer.setup import RelayerPlan, check_backends, create_relayer, stake_command
    from relaynet.commands.staking_common import parse_amount

    services = _parse_pairs(service or [], "--service")
    if not services and interactive:
        sid = typer.prompt("Service id to serve", default="eth")
        services[sid] = typer.prompt(f"Backend URL for {sid}", default="http://127.0.0.1:8545")
    if deployment is None:
        if not interactive:
            raise _fail(
                "--deployment is required: pass --deployment FILE (a devnet's is "
                ".devnet/deployment.json)"
            )
        deployment = Path(typer.prompt("Deployment file", default=".devnet/deployment.json"))
    env_name = passphrase_env
    if passphrase_file is None and env_name is None:
        env_name = DEFAULT_PASSPHRASE_ENV
    plan = RelayerPlan(
        directory=directory.resolve(),
        services=services,
        deployment=deployment,
        rpc_url=rpc_url,
        chains=_parse_pairs(chain or [], "--chain"),
        headers=_headers(header or []),
        host=host,
        port=port,
        metrics_port=metrics_port,
        passphrase_env=None if passphrase_file is not None else env_name,
        passphrase_file=passphrase_file,
    )
    try:
        parse_amount(stake, "--stake")
        if passphrase_file is not None:
            passphrase = resolve_passphrase(file=passphrase_file)
        elif env_name in os.environ:
            passphrase = resolve_passphrase(env_var=env_name)
        elif interactive:
            passphrase = resolve_passphrase(prompt="New keystore passphrase: ", confirm=True)
        else:
            raise _fail(f"set ${env_name} or pass --passphrase-file PATH")
        setup = create_relayer(plan, passphrase, force=force)
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"wrote {plan.config_path}")
    typer.echo(f"supplier account {setup.address_checksum} (keystore {plan.keystore})")
    typer.echo(f"receipt key 0x{setup.receipt_public_key.hex()} ({plan.receipt_key})")

    if check:
        checks = asyncio.run(check_backends(setup.config))
        for c in checks:
            typer.secho(c.message, fg=None if c.ok else typer.colors.RED, err=not c.ok)
        if not all(c.ok for c in checks):
            raise typer.Exit(code=1)

    typer.echo("\nNext, stake the supplier (fund the account with tokens and gas first):\n")
    typer.echo("  " + stake_command(setup, stake=stake, public_url=public_url))
    typer.echo(f"\nthen: relaynet relayer run --config {plan.config_path}")


# --- status ------------------------------------------------------------------------------------


@app.command("status")
def status(
    config: Annotated[Path, typer.Option("--config", "-c", help="relayer config (TOML)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    chain: Annotated[bool, typer.Option(help="also read stake and balance from the chain")] = (
        True
    ),
    last: Annotated[
        int, typer.Option("--last", min=1, help="claims of the last N sessions (newest first)")
    ] = 10,
) -> None:
    """Sessions served, relays per service, claims and proofs, rewards, gas, stake, balance."""
    from relayer.status import CLAIM_COLUMNS, claim_rows, collect_status, render_status
    from relaynet.commands.tables import print_table
    from relaynet.config import load_relayer

    try:
        cfg = load_relayer(config, check_files=False)
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    report = collect_status(cfg, with_chain=chain, progress=None if as_json else typer.echo)
    sessions = sorted({c["session"] for c in report["claims"]}, reverse=True)[:last]
    if as_json:
        report["claims"] = [c for c in report["claims"] if c["session"] in sessions]
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(render_status(report))
    if report["claims"]:
        rows = claim_rows(report, last)
        typer.echo("")
        print_table(
            f"Claims of the last {len(sessions)} session(s), newest first",
            CLAIM_COLUMNS,
            rows,
            right=("session", "relays", "claimed", "reward"),
            caption=f"{len(rows)} of {len(report['claims'])} claims; --last N for more",
        )


# --- check -------------------------------------------------------------------------------------


@app.command("check")
def check(
    config: Annotated[Path, typer.Option("--config", "-c", help="relayer config (TOML)")],
    devnet: Annotated[
        bool, typer.Option(help="allow loopback/private endpoints, as devnet gateways do")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="seconds to keep trying an endpoint that does not answer yet")
    ] = 0.0,
) -> None:
    """Is this relayer ready? Config, keys, chain and deployment, backends, gas, stake
    headroom, the staked endpoints (✓/✗ each; exit 1 on any ✗)."""
    from relaynet.checks import relayer_checks
    from relaynet.commands.tables import print_checks

    checks = relayer_checks(config, devnet=devnet, wait=wait)
    if not print_checks(f"relayer check {config}", checks):
        raise typer.Exit(code=1)
