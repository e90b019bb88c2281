"""``relaynet relayer``: set up (``init``), run (``run``) and inspect (``status``) a relayer.

Composes the packages only: keys through :mod:`relaynet.keyfiles`, config through
:mod:`relayer.config`, the server through :func:`relayer.app.build_relayer`, backend checks
through :func:`rollups.health.probe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from protocol.errors import RelaynetError

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
    from relayer.config import load_config
    from relaynet.keyfiles import read_account_key, read_receipt_key

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = load_config(config)
        keys = RelayerKeys(
            account=read_account_key(cfg.keys.supplier_keystore, cfg.passphrase()),
            receipt=read_receipt_key(cfg.keys.receipt_key),
        )
        relayer = build_relayer(cfg, keys, spec_base=config.resolve().parent)
    except RelaynetError as exc:
        raise _fail(exc.message) from None

    def ready(port: int, metrics_port: int) -> None:
        address = "0x" + keys.account.address.hex()
        print(
            f"relayer ready supplier={address} port={port} metrics_port={metrics_port}",
            flush=True,
        )

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(serve(relayer, on_ready=ready))


# --- init --------------------------------------------------------------------------------------


def _parse_pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise _fail(f"{what}: expected ID=VALUE, got {value!r}")
        out[key] = rest
    return out


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
    rpc_url: Annotated[str | None, typer.Option(help="settlement chain RPC URL")] = None,
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
    from protocol.keys import AccountKey, ReceiptKey
    from relayer.config import dump_config, parse_config
    from relaynet.keyfiles import resolve_passphrase, write_account_key, write_receipt_key

    services = _parse_pairs(service or [], "--service")
    if not services and interactive:
        sid = typer.prompt("Service id to serve", default="eth")
        services[sid] = typer.prompt(f"Backend URL for {sid}", default="http://127.0.0.1:8545")
    if not services:
        raise _fail("name at least one --service SERVICE=BACKEND_URL")
    chains = _parse_pairs(chain or [], "--chain")
    headers: dict[str, dict[str, str]] = {}
    for sid, spec in _parse_pairs(header or [], "--header").items():
        name, sep, value = spec.partition(":")
        if not sep:
            raise _fail(f"--header: expected SERVICE=NAME:VALUE, got {sid}={spec}")
        headers.setdefault(sid, {})[name.strip()] = value.strip()
    if rpc_url is None:
        if not interactive:
            raise _fail("--rpc-url is required")
        rpc_url = typer.prompt("Settlement chain RPC URL", default="http://127.0.0.1:8545")
    if deployment is None:
        if not interactive:
            raise _fail("--deployment is required")
        deployment = Path(typer.prompt("Deployment file", default="deployment.json"))
    directory = directory.resolve()
    config_path = directory / "relayer.toml"
    keystore = directory / "keys" / "supplier.json"
    receipt_path = directory / "keys" / "receipt-key.json"
    if config_path.exists() and not force:
        raise _fail(f"{config_path} exists (use --force to overwrite)")

    env_name = passphrase_env
    if passphrase_file is None and env_name is None:
        env_name = DEFAULT_PASSPHRASE_ENV
    try:
        if passphrase_file is not None:
            passphrase = resolve_passphrase(file=passphrase_file)
        elif env_name in os.environ:
            passphrase = resolve_passphrase(env_var=env_name)
        elif interactive:
            passphrase = resolve_passphrase(prompt="New keystore passphrase: ", confirm=True)
        else:
            raise _fail(f"set ${env_name} or pass --passphrase-file")
        (directory / "keys").mkdir(parents=True, exist_ok=True)
        os.chmod(directory / "keys", 0o700)
        account = AccountKey.generate()
        receipt = ReceiptKey.generate()
        write_account_key(keystore, account, passphrase, overwrite=force)
        write_receipt_key(receipt_path, receipt, overwrite=force)
    except RelaynetError as exc:
        raise _fail(exc.message) from None

    raw: dict[str, Any] = {
        "data_dir": str(directory / "data"),
        "keys": {"supplier_keystore": str(keystore), "receipt_key": str(receipt_path)},
        "chain": {"rpc_url": rpc_url, "deployment": str(deployment.resolve())},
        "server": {"host": host, "port": port},
        "metrics": {"port": metrics_port},
        "services": {
            sid: {
                "chain": chains.get(sid, sid),
                "backends": {"rpc": url},
                "headers": headers.get(sid, {}),
            }
            for sid, url in services.items()
        },
    }
    if passphrase_file is not None:
        raw["keys"]["passphrase_file"] = str(passphrase_file.resolve())
    else:
        raw["keys"]["passphrase"] = "${" + str(env_name) + "}"
    try:
        # ${VAR} stays literal in the written file: expand it to itself.
        literal = {str(env_name): "${" + str(env_name) + "}"} if env_name else {}
        cfg = parse_config(raw, env=literal)
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    text = dump_config(cfg)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    typer.echo(f"wrote {config_path}")
    typer.echo(f"supplier account 0x{account.address.hex()} (keystore {keystore})")
    typer.echo(f"receipt key 0x{receipt.public_key.hex()} ({receipt_path})")

    if check:
        problems = asyncio.run(_check_backends(cfg))
        for line in problems:
            typer.secho(line, fg=typer.colors.RED, err=True)
        if problems:
            raise typer.Exit(code=1)

    endpoint = public_url or f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    endpoint = endpoint.rstrip("/")
    if not endpoint.endswith("/v1/relay"):
        endpoint += "/v1/relay"
    service_flags = " ".join(f"--service {sid}={endpoint}" for sid in services)
    secret = (
        f"--passphrase-file {passphrase_file.resolve()}"
        if passphrase_file is not None
        else f"--passphrase-env {env_name}"
    )
    typer.echo("\nNext, stake the supplier (fund the account with tokens and gas first):\n")
    typer.echo(
        f"  relaynet supplier stake --amount {stake} {service_flags} "
        f"--receipt-key {receipt_path} --keystore {keystore} {secret} "
        f"--rpc-url {rpc_url} --deployment {deployment.resolve()}"
    )
    typer.echo(f"\nthen: relaynet relayer run --config {config_path}")


async def _check_backends(cfg: Any) -> list[str]:
    import aiohttp

    from relayer.pricing import resolve_spec
    from rollups.health import probe

    problems: list[str] = []
    async with aiohttp.ClientSession() as session:
        for sid, svc in cfg.services.items():
            try:
                spec = resolve_spec(svc.chain)
            except RelaynetError as exc:
                problems.append(f"{sid}: {exc.message}")
                continue
            health = await probe(spec, dict(svc.backends), session, headers=svc.header_values())
            if health.ok:
                typer.echo(f"{sid}: backend ok — chain {health.chain_id}, height {health.height}")
            else:
                problems.append(f"{sid}: backend check failed — {health.status}: {health.reason}")
    return problems


# --- status ------------------------------------------------------------------------------------


@app.command("status")
def status(
    config: Annotated[Path, typer.Option("--config", "-c", help="relayer config (TOML)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    chain: Annotated[bool, typer.Option(help="also read stake and balance from the chain")] = (
        True
    ),
) -> None:
    """Sessions served, relays per service, claims and proofs, rewards, gas, stake, balance."""
    from relayer.config import load_config
    from relayer.status import collect_status, render_status

    try:
        cfg = load_config(config)
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    report = collect_status(cfg, with_chain=chain, progress=None if as_json else typer.echo)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(render_status(report))
