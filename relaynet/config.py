"""One loader for both servers' config files: the only place that reads them and the environment.

The models stay with their servers (:class:`gateway.config.GatewayConfig`,
:class:`relayer.config.RelayerConfig`); this module loads a file into one in a fixed sequence:

1. **read** the file and decode it as TOML;
2. refuse **removed** options (``qos.prefetch_blocks`` → "was removed: delete the line");
3. **expand** ``${VAR}`` and ``${VAR:-default}`` in the *parsed* string values — never in the raw
   text (a comment may mention an unset ``${X}``; a secret may hold a quote) and never
   recursively (a value taken from the environment is not expanded again); ``$${X}`` is a
   literal ``${X}``;
4. apply **environment overrides**: ``RELAYNET_GATEWAY__REDIS__URL=…`` sets ``redis.url``
   (``RELAYNET_RELAYER__…`` for the relayer); environment over file over default. A value
   starting with ``[`` or ``{`` is read as a TOML array or inline table;
5. refuse **placeholders** left from an example (``"…"``, ``"<your key>"``, ``changeme``);
6. resolve **paths** (every ``Path`` field of the model) against the config file's folder, and
   refuse input files that do not exist, naming the resolved absolute path;
7. **validate** with the model (strict: unknown keys refused).

Every mistake is one :class:`ConfigProblem` with one line: the file, the key and the fix — no
traceback, no library dump, no URL.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from protocol.errors import ErrorCode, RelaynetError

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from relayer.config import RelayerConfig

__all__ = [
    "ConfigKind",
    "ConfigProblem",
    "gateway_kind",
    "load_gateway",
    "load_relayer",
    "parse_gateway",
    "parse_relayer",
    "relayer_kind",
]

M = TypeVar("M", bound=BaseModel)
Data = dict[str, Any]


class ConfigProblem(RelaynetError):
    """A config file the servers cannot use; the message names the file, the key and the fix."""

    code = ErrorCode.MALFORMED_INPUT


@dataclass(frozen=True)
class ConfigKind(Generic[M]):
    """One server's config: its model, its environment prefix, and its special keys."""

    name: str
    model: type[M]
    env_prefix: str
    #: dotted keys (``*`` for any name of a table of tables) of files that must exist
    inputs: tuple[str, ...] = ()
    #: dotted key → what replaced it (refused with "was removed: delete the line")
    removed: Mapping[str, str] = field(default_factory=dict)
    #: defaults that depend on other keys, filled in (when loading a file) before paths resolve
    defaults: Callable[[Data], None] | None = None


# The models are imported when a config of their kind is loaded: a relayer (and the CLI of
# another role) does not pay for importing the gateway, nor the other way round.
_GATEWAY_INPUTS = (
    "gateway.private_key_file",
    "gateway.tls_cert",
    "gateway.tls_key",
    "relay.ca_file",
    "settlement.deployment",
    "services.*.spec",
)
_RELAYER_INPUTS = (
    "keys.supplier_keystore",
    "keys.receipt_key",
    "keys.passphrase_file",
    "chain.deployment",
    "server.tls_cert",
    "server.tls_key",
)


@functools.cache
def gateway_kind() -> ConfigKind[GatewayConfig]:
    from gateway.config import REMOVED_KEYS, GatewayConfig, file_defaults

    return ConfigKind(
        "gateway", GatewayConfig, "RELAYNET_GATEWAY__", _GATEWAY_INPUTS, REMOVED_KEYS, file_defaults
    )


@functools.cache
def relayer_kind() -> ConfigKind[RelayerConfig]:
    from relayer.config import RelayerConfig

    return ConfigKind("relayer", RelayerConfig, "RELAYNET_RELAYER__", _RELAYER_INPUTS)


_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(
    r"…|^\.\.\.$|<[A-Za-z][^<>]*>|^(change[-_ ]?me|replace[-_ ]?me|todo|tbd|x{3,}|your[-_ ].*)$",
    re.IGNORECASE,
)
_MAX_SHOWN = 3  # problems listed in one message


# -- the public entry points ---------------------------------------------------------------------


def load_gateway(
    path: str | Path, *, env: Mapping[str, str] | None = None, check_files: bool = True
) -> GatewayConfig:
    """Read and validate a gateway config (``env``: the process environment when None)."""
    return _load(gateway_kind(), path, env, check_files)


def load_relayer(
    path: str | Path, *, env: Mapping[str, str] | None = None, check_files: bool = True
) -> RelayerConfig:
    """Read and validate a relayer config (``env``: the process environment when None)."""
    return _load(relayer_kind(), path, env, check_files)


def parse_gateway(
    source: str | Mapping[str, Any],
    *,
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
    origin: str = "<gateway config>",
) -> GatewayConfig:
    """A gateway config from TOML text or a decoded mapping; relative paths against ``base``."""
    return _parse(gateway_kind(), source, base, env, origin, check_files=False)


def parse_relayer(
    source: str | Mapping[str, Any],
    *,
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
    origin: str = "<relayer config>",
) -> RelayerConfig:
    """A relayer config from TOML text or a decoded mapping; relative paths against ``base``."""
    return _parse(relayer_kind(), source, base, env, origin, check_files=False)


# -- the sequence --------------------------------------------------------------------------------


def _load(
    kind: ConfigKind[M], path: str | Path, env: Mapping[str, str] | None, check_files: bool
) -> M:
    file = Path(path).absolute()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigProblem(
            f"cannot read {file}: {exc.strerror or exc} — check the --config path"
        ) from None
    except UnicodeDecodeError:
        raise ConfigProblem(f"{file}: not a text file — give the {kind.name} TOML file") from None
    config = _parse(kind, text, file.resolve().parent, env, str(file), check_files)
    _within_grace(config, str(file))
    return config


def _within_grace(config: Any, origin: str) -> None:
    """The confirmation depth against the grace period G of the deployment the config names
    (when its file can be read; servers check again at start): d > G is refused at load."""
    for table in ("settlement", "chain"):
        section = getattr(config, table, None)
        depth = getattr(section, "confirmations", None)
        if section is None or not depth:
            continue
        from ledger.deploy import Deployment
        from ledger.follower import check_confirmations

        try:
            deployment = Deployment.from_json(Path(section.deployment).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # reported where the deployment is used
        try:
            check_confirmations(depth, deployment.shape, f"{table}.confirmations")
        except ValueError as exc:
            raise ConfigProblem(f"{origin}: {exc}") from None


def _parse(
    kind: ConfigKind[M],
    source: str | Mapping[str, Any],
    base: Path | None,
    env: Mapping[str, str] | None,
    origin: str,
    check_files: bool,
) -> M:
    environ: Mapping[str, str] = os.environ if env is None else env
    if isinstance(source, str):
        try:
            data: Data = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigProblem(f"{origin}: not valid TOML: {exc} — fix that line") from None
    else:
        data = _copy(source)
    origins: dict[str, str] = {}  # dotted key -> the environment variable that set it
    problems = _removed(kind, data)
    problems += _expand_all(data, environ)
    problems += _overrides(kind, data, environ, origins)
    problems += _placeholders(data, origins)
    if not problems and base is not None:
        if kind.defaults is not None:
            kind.defaults(data)
        _resolve_paths(kind.model, data, base)
        if check_files:
            problems += _missing_files(kind, data, base, origins)
    if not problems:
        try:
            return kind.model.model_validate(data)
        except ValidationError as exc:
            problems = [_describe(kind.model, e, origins) for e in exc.errors(include_url=False)]
    shown = "; ".join(problems[:_MAX_SHOWN])
    more = f" (and {len(problems) - _MAX_SHOWN} more)" if len(problems) > _MAX_SHOWN else ""
    raise ConfigProblem(f"{origin}: {shown}{more}")


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any, Any, Any]]:
    """(dotted key, container, index in it, value) of every leaf."""
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        where = f"{key}.{k}" if key else str(k)
        if isinstance(v, dict | list):
            yield from _walk(v, where)
        else:
            yield where, value, k, v


# 2. removed options


def _removed(kind: ConfigKind[Any], data: Data) -> list[str]:
    problems = []
    for dotted, why in kind.removed.items():
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            problems.append(f"`{dotted}` was removed: delete the line ({why})")
    return problems


# 3. ${VAR} and ${VAR:-default}


def _expand_all(data: Data, env: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for key, container, index, value in list(_walk(data)):
        if not isinstance(value, str) or "${" not in value:
            continue

        def sub(m: re.Match[str], key: str = key) -> str:
            escaped, name, default = m.group(1), m.group(2), m.group(3)
            if escaped:
                return m.group(0)[1:]
            if env.get(name):
                return env[name]
            if default is not None:
                return default
            if name in env:
                return ""
            problems.append(
                f"`{key}` uses ${{{name}}}, which is not set — export {name}, "
                f"or write ${{{name}:-default}}"
            )
            return m.group(0)

        container[index] = _VAR.sub(sub, value)
    return problems


# 4. environment overrides


def _overrides(
    kind: ConfigKind[Any], data: Data, env: Mapping[str, str], origins: dict[str, str]
) -> list[str]:
    problems: list[str] = []
    for name in sorted(env):
        if not name.startswith(kind.env_prefix):
            continue
        parts = [p.lower() for p in name[len(kind.env_prefix) :].split("__")]
        if not all(parts):
            problems.append(f"{name}: empty key part — write {kind.env_prefix}TABLE__KEY")
            continue
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{name}: `{'.'.join(parts[: i + 1])}` is not a table")
                break
            node = child
        else:
            value = env[name]
            if value[:1] in "[{":
                try:
                    value = tomllib.loads(f"v = {value}")["v"]
                except tomllib.TOMLDecodeError:
                    problems.append(f"{name}: not a TOML array or inline table")
                    continue
            node[parts[-1]] = value
            origins[".".join(parts)] = name
    return problems


# 5. placeholders


def _placeholders(data: Data, origins: Mapping[str, str]) -> list[str]:
    problems = []
    for key, _, _, value in _walk(data):
        if isinstance(value, str) and _PLACEHOLDER.search(value):
            problems.append(
                f"`{key}` = {value!r}{_from(key, origins)} is a placeholder — put the real "
                "value there"
            )
    return problems


def _from(key: str, origins: Mapping[str, str]) -> str:
    return f" (from {origins[key]})" if key in origins else ""


# 6. paths


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    origin = typing.get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and Path in typing.get_args(annotation)


def _resolve_paths(model: type[BaseModel], data: Data, base: Path) -> None:
    for name, info in model.model_fields.items():
        value = data.get(name)
        annotation = info.annotation
        if _is_path(annotation) and isinstance(value, str) and value:
            p = Path(value).expanduser()
            data[name] = str(p if p.is_absolute() else Path(os.path.normpath(base / p)))
            continue
        if not isinstance(value, dict):
            continue
        inner = _model_of(annotation)
        if inner is not None:
            _resolve_paths(inner, value, base)
        elif typing.get_origin(annotation) is dict:
            item = _model_of(typing.get_args(annotation)[1])
            if item is not None:
                for entry in value.values():
                    if isinstance(entry, dict):
                        _resolve_paths(item, entry, base)


def _missing_files(
    kind: ConfigKind[Any], data: Data, base: Path, origins: Mapping[str, str]
) -> list[str]:
    problems = []
    for pattern in kind.inputs:
        for key, value in _lookup(data, pattern.split(".")):
            if isinstance(value, str) and not Path(value).exists():
                problems.append(
                    f"`{key}`{_from(key, origins)}: {value} does not exist — fix the path "
                    "(relative paths start at the config file's folder)"
                )
    return problems


def _lookup(node: Any, parts: list[str], key: str = "") -> Iterator[tuple[str, Any]]:
    if not parts:
        yield key, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    names = list(node) if head == "*" else [head] if head in node else []
    for name in names:
        yield from _lookup(node[name], rest, f"{key}.{name}" if key else name)


# 7. validation errors as one line each


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    skip = False
    for part in loc:
        if current is None:
            return None
        if skip:  # the name inside a table of tables
            skip = False
            continue
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        inner = _model_of(info.annotation)
        if inner is None and typing.get_origin(info.annotation) is dict:
            inner = _model_of(typing.get_args(info.annotation)[1])
            skip = True
        current = inner
    return current


def _describe(model: type[BaseModel], error: Any, origins: Mapping[str, str]) -> str:
    loc = tuple(p for p in error.get("loc", ()) if not str(p).startswith("function-"))
    key = ".".join(str(p) for p in loc)
    kind = error.get("type", "")
    src = _from(key, origins)
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields) if parent else [])
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"unknown key `{key}`{src}{hint} — delete it or check its spelling"
    if kind == "missing":
        return f"`{key}` is missing — add it"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    value = error.get("input")
    if kind.startswith(("greater", "less", "int_", "float_", "bool_")) and not isinstance(
        value, dict | list | SecretStr
    ):
        message = f"{message[:1].lower()}{message[1:]} (got {value!r})"
    return f"`{key}`{src}: {message}" if key else message
