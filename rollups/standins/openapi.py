"""CometBFT's OpenAPI file read for the stand-in: route parameters and example answers.

:func:`routes` gives, for each route of the file, its query parameters (name, type, required)
in the file's order; :func:`check_params` validates a call's params against them (the
stand-in's "Invalid params" answers); :func:`example_result` builds the ``result`` of a route's
200 answer from the schema's own ``example`` values (``$ref``, ``allOf``, arrays followed), the
shape the stand-in then fills with its chain's heights, hashes and network.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import Any

import yaml

from rollups.standins.fixtures import load_text

__all__ = ["Param", "ParamError", "RouteSpec", "check_params", "example_result", "routes"]

_OPENAPI = "cometbft-openapi.yaml"
_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
_INT = re.compile(r"^-?\d+$")


class ParamError(ValueError):
    """A parameter the OpenAPI file does not accept (message says which and why)."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # integer | string | boolean | array
    required: bool


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    params: tuple[Param, ...]
    schema: str | None  # components/schemas name of the 200 answer
    tag: str


@functools.cache
def _document() -> dict[str, Any]:
    data = yaml.safe_load(load_text(_OPENAPI))
    if not isinstance(data, dict):
        raise RuntimeError("the CometBFT OpenAPI fixture is not a mapping")
    return data


@functools.cache
def routes() -> dict[str, RouteSpec]:
    """Every route of the OpenAPI file by name."""
    out: dict[str, RouteSpec] = {}
    for path, item in _document()["paths"].items():
        get = item.get("get", {})
        params = tuple(
            Param(
                p["name"], str(p.get("schema", {}).get("type", "string")), bool(p.get("required"))
            )
            for p in get.get("parameters", [])
            if p.get("in") == "query"
        )
        ref = (
            get.get("responses", {})
            .get("200", {})
            .get("content", {})
            .get("application/json", {})
            .get("schema", {})
            .get("$ref")
        )
        schema = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None
        tags = get.get("tags") or ["Info"]
        out[path.strip("/")] = RouteSpec(path.strip("/"), params, schema, str(tags[0]))
    return out


def _check_value(route: str, param: Param, value: Any, uri: bool) -> Any:
    where = f"{route}: parameter {param.name!r}"
    if param.type == "integer":
        if isinstance(value, bool):
            raise ParamError(f"{where} must be an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            text = value.strip('"') if uri else value
            if _INT.match(text):
                return int(text)
        raise ParamError(f"{where} must be an integer, got {value!r}")
    if param.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        raise ParamError(f"{where} must be true or false, got {value!r}")
    if param.type == "string":
        if not isinstance(value, str):
            raise ParamError(f"{where} must be a string, got {value!r}")
        if uri:
            if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
                return value[1:-1]
            if _HEX.match(value):
                return value
            raise ParamError(
                f'{where}: URI string arguments are quoted ("abc") or 0x-prefixed hex, '
                f"got {value!r}"
            )
        return value
    if param.type == "array":
        if isinstance(value, list) or (uri and isinstance(value, str)):
            return value
        raise ParamError(f"{where} must be an array, got {value!r}")
    return value


def check_params(route: str, params: Any, *, uri: bool = False) -> dict[str, Any]:
    """Validate a call's params (object, positional array, or URI query dict) against the
    OpenAPI file; returns them by name, decoded. ``ParamError`` says what is wrong."""
    spec = routes().get(route)
    if spec is None:
        raise ParamError(f"{route}: not a route of the OpenAPI file")
    names = [p.name for p in spec.params]
    by_name: dict[str, Any]
    if params is None:
        by_name = {}
    elif isinstance(params, dict):
        by_name = dict(params)
    elif isinstance(params, list):
        if len(params) > len(names):
            raise ParamError(f"{route}: takes at most {len(names)} params, got {len(params)}")
        by_name = dict(zip(names, params, strict=False))
    else:
        raise ParamError(f"{route}: params must be an object or an array")
    unknown = sorted(set(by_name) - set(names))
    if unknown:
        raise ParamError(
            f"{route}: unknown parameter {unknown[0]!r} (accepted: {', '.join(names) or 'none'})"
        )
    out: dict[str, Any] = {}
    for param in spec.params:
        if param.name not in by_name or by_name[param.name] in (None, ""):
            if param.required:
                raise ParamError(f"{route}: missing required parameter {param.name!r}")
            continue
        out[param.name] = _check_value(route, param, by_name[param.name], uri)
    return out


def _example(schema: Any, depth: int = 0) -> Any:
    if depth > 40 or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _example(_document()["components"]["schemas"].get(name), depth + 1)
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _example(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if kind == "array":
        item = _example(schema.get("items"), depth + 1)
        return [] if item is None else [item]
    if kind == "object" or "properties" in schema:
        return {
            name: _example(sub, depth + 1) for name, sub in schema.get("properties", {}).items()
        }
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


def example_result(route: str) -> Any:
    """The example ``result`` of a route's 200 answer (a fresh copy)."""
    spec = routes().get(route)
    if spec is None or spec.schema is None:
        return {}
    answer = _example({"$ref": f"#/components/schemas/{spec.schema}"})
    if isinstance(answer, dict) and "result" in answer:
        return answer["result"]
    return answer
