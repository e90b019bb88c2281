"""One short line for a config file or key file the CLI could not use.

A pydantic ``ValidationError`` (raised directly or as the cause of a ``ConfigError``) becomes
``FILE: unknown key `a.b` — delete it or check its spelling; `c` is missing — add it``: each
problem with the key it concerns and the fix, no input dump, no library URL. A missing file
names its absolute path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from protocol.errors import RelaynetError

__all__ = ["explain"]


def _one(error: Any) -> str:
    key = ".".join(str(part) for part in error.get("loc", ())) or "the file"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown key `{key}` — delete it or check its spelling"
    if kind == "missing":
        return f"`{key}` is missing — add it"
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"`{key}`: {message}" if key != "the file" else message


def explain(path: Path, exc: BaseException) -> str:
    """The message for ``exc``, raised while loading the file at ``path``."""
    cause = exc if isinstance(exc, ValidationError) else exc.__cause__
    if isinstance(cause, ValidationError):
        problems = "; ".join(_one(e) for e in cause.errors(include_url=False))
        return f"{path}: {problems}"
    if isinstance(cause, OSError):
        exc = cause
    if isinstance(exc, OSError):
        name = Path(exc.filename) if exc.filename else path
        where = "" if name == path else f" (named in {path}; relative paths start at its folder)"
        return f"cannot read {name.absolute()}: {exc.strerror or exc}{where}"
    if isinstance(exc, RelaynetError):
        return exc.message
    return f"{path}: {exc}"
