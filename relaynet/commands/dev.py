"""``relaynet dev``: developer tools — fresh protocol test vectors and their checker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from relaynet import vectors

app = typer.Typer(no_args_is_help=True)


@app.command("vectors")
def vectors_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON file.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")] = 0,
) -> None:
    """Write fresh random protocol vectors (the format of tests/vectors/protocol-kat.json)."""
    data = vectors.generate(seed)
    out.write_text(json.dumps(data, indent=1) + "\n")
    counts = ", ".join(f"{len(data[s])} {s}" for s in vectors.SECTIONS)
    typer.echo(f"wrote {out}: {counts}")


@app.command("check-vectors")
def check_cmd(
    path: Annotated[Path, typer.Argument(help="A vectors JSON file to recompute.")],
) -> None:
    """Recompute every answer of a vectors file with the project's code; exit 1 on a mismatch."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        typer.echo(f"cannot read {path}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    failures = vectors.check(data)
    for line in failures:
        typer.echo(line, err=True)
    total = sum(len(data.get(s, [])) for s in vectors.SECTIONS)
    typer.echo(f"{total - len(failures)} agreed, {len(failures)} disagreements")
    raise typer.Exit(code=1 if failures else 0)
