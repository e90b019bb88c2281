"""``relaynet verify``: check a gateway's answer against the settlement chain.

``--url URL --data BODY`` POSTs BODY to the gateway and verifies the answer; ``--exchange FILE``
verifies a saved one (``{"request", "response", "headers"}``, bodies as strings), or a saved
WebSocket relay stream (``{"request", "frames", "headers"}``, each frame base64, verified at
its own index). The chain is
read with plain ``eth_call``s (:mod:`verify`); the deployment file gives the settlement address
and the default RPC URL. Prints one line per answer object — what was proven, or the check that
failed — and exits 1 unless every relayed answer verified.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from protocol.errors import RelaynetError
from relaynet.commands.staking_common import (
    DEFAULT_DEPLOYMENT,
    CliError,
    load_deployment,
    parse_address,
)
from verify import (
    ChainReader,
    Exchange,
    Report,
    UrllibTransport,
    VerifyError,
    verify_exchange,
)

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


@app.command()
def verify(
    url: Annotated[str | None, typer.Option("--url", help="Gateway URL to POST --data to.")] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="The request body (JSON-RPC call or batch).")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header", "-H", help="Extra request header 'Name: value' (e.g. Authorization)."
        ),
    ] = None,
    exchange: Annotated[
        Path | None,
        typer.Option(
            "--exchange",
            help="A saved exchange: {request, response, headers}, or a WebSocket relay "
            "stream {request, frames, headers}.",
        ),
    ] = None,
    save: Annotated[
        Path | None, typer.Option("--save", help="With --url: also save the exchange here.")
    ] = None,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            envvar="RELAYNET_RPC_URL",
            help="Settlement chain JSON-RPC URL (default: the deployment's).",
        ),
    ] = None,
    deployment: Annotated[
        Path,
        typer.Option(
            "--deployment",
            envvar="RELAYNET_DEPLOYMENT",
            help="Deployment JSON, or a devnet state file (.devnet/state.json).",
        ),
    ] = DEFAULT_DEPLOYMENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify a relayed answer: request signature and delegation, compute units, receipt
    under the supplier's key at the session, and the supplier's slot in that session."""
    try:
        ex = _exchange(url, data, header or [], exchange)
        if save is not None:
            _save(save, ex)
        dep = load_deployment(deployment)
        settlement = parse_address(dep.settlement, f"{deployment}: settlement")
        chain = ChainReader(UrllibTransport(rpc_url or dep.rpc_url), settlement)
        report = verify_exchange(ex, chain)
    except (CliError, VerifyError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except RelaynetError as exc:
        typer.echo(f"error: {exc.code.value}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    _print(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _exchange(
    url: str | None, data: str | None, headers: list[str], saved: Path | None
) -> Exchange:
    if saved is not None:
        if url is not None or data is not None:
            raise CliError("--exchange verifies a saved answer: leave out --url and --data")
        try:
            doc = json.loads(saved.read_text())
        except FileNotFoundError:
            raise CliError(f"--exchange {saved}: no such file") from None
        except OSError as exc:
            raise CliError(f"--exchange {saved}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CliError(
                f"--exchange {saved} is not JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        return Exchange.from_json(doc)
    if url is None or data is None:
        raise CliError("give --url URL --data BODY, or --exchange FILE")
    return _call(url, data.encode(), headers)


def _call(url: str, body: bytes, extra: list[str]) -> Exchange:
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url {url!r}: give an http:// or https:// URL")
    headers = {"Content-Type": "application/json"}
    for h in extra:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {h!r}: write it as 'Name: value'")
        headers[name.strip()] = value.strip()
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the user's URL
            return Exchange(body, resp.read(), dict(resp.headers.items()))
    except urllib.error.HTTPError as exc:
        got = exc.read()
        raise CliError(
            f"{url} answered HTTP {exc.code}: {got[:200].decode('utf-8', 'replace')}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None


def _save(path: Path, ex: Exchange) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(ex.to_json(), f, indent=2)
    except OSError as exc:
        raise CliError(f"--save {path}: {exc.strerror}") from None


def _print(report: Report, as_json: bool) -> None:
    if not as_json:
        for line in report.lines():
            typer.echo(line)
        return
    doc: dict[str, Any] = {"ok": report.ok, "answers": []}
    for obj in report.objects:
        if not obj.legs:
            doc["answers"].append({"position": obj.position, "source": obj.source})
    sources = {obj.position: obj.source for obj in report.objects}
    for r in report.results:
        source = "frame" if sources.get(r.position) == "frame" else "relay"
        entry: dict[str, Any] = {"position": r.position, "leg": r.leg_index, "source": source}
        if r.proven is not None:
            p = r.proven
            entry.update(
                ok=True,
                service=p.service,
                app="0x" + p.app.hex(),
                signer="0x" + p.signer.hex(),
                supplier="0x" + p.supplier.hex(),
                session=p.session,
                chain_id=p.chain_id,
                slots=list(p.slots),
                compute_units=p.compute_units,
                backend_status=p.backend_status,
                claim_open=p.claim_open,
                claim_close=p.claim_close,
            )
        else:
            assert r.failure is not None
            entry.update(
                ok=False, check=r.failure.check, code=r.failure.code.value, reason=r.failure.reason
            )
        doc["answers"].append(entry)
    typer.echo(json.dumps(doc, indent=2, sort_keys=True))
