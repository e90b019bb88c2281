"""``relaynet devnet``: the whole local network in one command (``make devnet``).

``up`` starts it (foreground; Ctrl-C stops every process it started; ``--detach`` returns),
``down`` stops it from any shell, ``status`` shows sessions, relays, claims, proofs and rewards
per relayer (``--wait`` draws a progress line until a claim has settled). The orchestration
lives in :mod:`relaynet.devnet`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from protocol.errors import RelaynetError

app = typer.Typer(no_args_is_help=True, help="A whole local network in one command.")

__all__ = ["app"]

StateFileOpt = Annotated[
    Path,
    typer.Option(
        "--state-file", help="the devnet's state file; its folder holds keys, configs, logs"
    ),
]
_DEFAULT = Path(".devnet/state.json")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command("up")
def up(
    state_file: StateFileOpt = _DEFAULT,
    detach: Annotated[
        bool, typer.Option("--detach", help="return once up; stop later with `devnet down`")
    ] = False,
    gateway_port: Annotated[int, typer.Option(help="the gateway's port (0: a free one)")] = 0,
) -> None:
    """Start settlement chain, backends, contracts, three relayers and a gateway; print URLs."""
    from relaynet.devnet.banner import render_banner
    from relaynet.devnet.up import run_devnet

    try:
        code = run_devnet(
            state_file,
            detach=detach,
            gateway_port=gateway_port,
            echo=lambda line: typer.echo(line),
            banner=lambda d: render_banner(d.state, state_file, time.monotonic() - d.started),
        )
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    raise typer.Exit(code=code)


@app.command("down")
def down(state_file: StateFileOpt = _DEFAULT) -> None:
    """Stop every process the devnet started (its pid files; any shell)."""
    from relaynet.devnet.down import stop_devnet

    stopped = stop_devnet(state_file)
    if stopped:
        typer.echo("stopped " + ", ".join(f"{r.name} ({r.pid})" for r in stopped))
    else:
        typer.echo("no devnet process was running")


@app.command("fund")
def fund(
    address: Annotated[
        str | None, typer.Argument(help="account to fund (or give --keystore)")
    ] = None,
    keystore: Annotated[
        Path | None,
        typer.Option(help="a keystore to fund; created (new account) when it does not exist"),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="passphrase of --keystore (first line)")
    ] = None,
    tokens: Annotated[str, typer.Option(help="tokens to send, e.g. 5000rly")] = "5000rly",
    gas: Annotated[
        str, typer.Option(help="gas money on the settlement chain, e.g. 100eth or 5000gwei")
    ] = "100eth",
    state_file: StateFileOpt = _DEFAULT,
) -> None:
    """Give an account tokens and gas money on a running devnet (the devnet's faucet)."""
    import asyncio

    from protocol.encoding import address_from_hex
    from protocol.keys import AccountKey
    from relayer.keyfiles import read_account_key, resolve_passphrase, write_account_key
    from relaynet.commands.staking_common import (
        GAS_UNITS,
        checksum,
        format_amount,
        format_gas,
        parse_amount,
    )
    from relaynet.devnet.fund import fund_account
    from relaynet.devnet.state import DevnetState, Layout

    try:
        state = DevnetState.read(state_file)
        if keystore is not None:
            passphrase = resolve_passphrase(file=passphrase_file, prompt="Keystore passphrase: ")
            if keystore.exists():
                who = read_account_key(keystore, passphrase).address
            else:
                key = AccountKey.generate()
                write_account_key(keystore, key, passphrase)
                typer.echo(f"new account {checksum(key.address)} in {keystore}")
                who = key.address
        elif address is not None:
            who = address_from_hex(address)
        else:
            raise _fail("give an ADDRESS or --keystore")
        balance, wei = asyncio.run(
            fund_account(
                state,
                Layout(state_file.absolute()),
                who,
                tokens=parse_amount(tokens, "--tokens"),
                wei=parse_amount(gas, "--gas", GAS_UNITS),
            )
        )
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"{checksum(who)}: {format_amount(balance)}; gas {format_gas(wei)}")


@app.command("status")
def status(
    state_file: StateFileOpt = _DEFAULT,
    wait: Annotated[
        bool, typer.Option("--wait", help="wait until a claim has settled and a balance grew")
    ] = False,
    timeout: Annotated[float, typer.Option(help="how long --wait waits, seconds")] = 180.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Sessions, relays, claims, proofs and rewards so far, per staked supplier."""
    from relaynet.devnet.state import DevnetState, Layout
    from relaynet.devnet.status import collect, render, wait_for_settlement

    try:
        state = DevnetState.read(state_file)
        layout = Layout(state_file.absolute())
        report = (
            wait_for_settlement(state, layout, timeout=timeout) if wait else collect(state, layout)
        )
    except RelaynetError as exc:
        raise _fail(exc.message) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        typer.echo(render(report), nl=False)
