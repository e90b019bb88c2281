"""Reading chain specs: TOML → :class:`~rollups.spec.ChainSpec` → checked by its handler.

The spec model (:mod:`rollups.spec`) validates fields and knows no handler; this module adds
the check a spec needs against its RPC type — the type is registered, and the handler accepts
the spec (:meth:`~rollups.handler.RpcHandler.check_spec`) — so a spec that loads is one its
handler serves. Keeping the check here keeps ``rollups/`` free of import cycles: the handlers
import the spec model, and only this module imports the registry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollups.errors import SpecError
from rollups.registry import handler_for, rpc_types
from rollups.spec import ChainSpec

__all__ = ["load_spec", "parse_spec", "spec_problems"]


def spec_problems(spec: ChainSpec) -> tuple[str, ...]:
    """What the spec's RPC type says is wrong with it (``"<field>: … — <what to do>"``)."""
    known = rpc_types()
    if spec.rpc_type not in known:
        return (
            f"rpc_type: unknown RPC type {spec.rpc_type!r} — use one of {', '.join(sorted(known))}",
        )
    problems = handler_for(spec.rpc_type).check_spec(spec)
    return (f"(top level): {'; '.join(problems)}",) if problems else ()


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    # Field validators report under the field; model validators with an empty location.
    where = _location(tuple(p for p in loc if not str(p).startswith("function-")))
    kind = error.get("type")
    if kind == "missing":
        return f"{where}: missing field — add `{loc[-1]}`"
    if kind == "extra_forbidden":
        return f"{where}: unknown field — remove it or check its spelling"
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        message = f"{message} (got {error.get('input')!r})"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "service_id":
        message = f"{error.get('input')!r} is not a service id — use 1-32 of [a-z0-9_-]"
    return f"{where}: {message}"


def parse_spec(source: str | bytes | Mapping[str, Any], *, origin: str = "<spec>") -> ChainSpec:
    """A spec from TOML text or an already-decoded mapping; ``SpecError`` saying what to fix."""
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    if isinstance(source, str):
        try:
            data: Mapping[str, Any] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{origin}: not valid TOML: {exc}") from exc
    else:
        data = source
    try:
        spec = ChainSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors()]
        raise SpecError(f"{origin}: chain spec refused:\n  " + "\n  ".join(problems)) from exc
    problems = list(spec_problems(spec))
    if problems:
        raise SpecError(f"{origin}: chain spec refused:\n  " + "\n  ".join(problems))
    return spec


def load_spec(path: str | Path) -> ChainSpec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read chain spec: {exc.strerror or exc}") from exc
    return parse_spec(text, origin=str(path))
