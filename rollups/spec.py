"""Chain specs: the validated description of one service (TOML, checked by pydantic).

A spec names the service, its RPC type (which handler serves it), the chain identity, prices
in compute units, finality, backend roles and method-policy overrides. Example::

    service_id = "op-mainnet"          # [a-z0-9_-]{1,32}, the on-chain service id
    name = "OP Mainnet"
    rpc_type = "op-stack"              # a type from rollups.registry.rpc_types()
    chain_id = 10                      # EVM types; CometBFT / Celestia use network = "…"
    finality_depth = 1800              # blocks below the head that are final
    block_time = 2.0                   # seconds (informational)

    [compute_units]                    # 1 <= default <= max; every price in [1, max]
    default = 1
    max = 100
    [compute_units.methods]            # exact names, or "prefix*" patterns (longest wins)
    eth_getLogs = 10
    "debug_*" = 20

    [backends.op-node]                 # roles besides the default "rpc"
    description = "OP stack rollup node"
    methods = ["optimism_*"]

    [methods]
    allow_writes = true                # the relayer's operator config may still turn writes off
    [methods.overrides]                # class: read|write|stateful|subscription|long_poll|denied
    "txpool_*" = { class = "denied" }
    eth_chainId = { cacheable = true }

    [cache]
    head_ttl = 1.0                     # seconds for latest / unfinalized answers (0 = never)
    [answers]                          # what a gateway accepts from suppliers
    max_bytes = 16777216               # one answer's cap (traces and logs: large_max_bytes)
    allowed_lag = 10.0                 # seconds a height may lead the suppliers' lower median
    [timeouts]
    default = 10.0
    write = 30.0
    long_poll = 60.0
    [metadata]
    website = "https://optimism.io"

This module is the model alone: it knows no handler. Read a spec with
:func:`rollups.loading.parse_spec` / :func:`rollups.loading.load_spec`, which also check it
against its RPC type's handler; everything refused comes back as one
:class:`~rollups.errors.SpecError` listing each problem as
``<file>: <field>: <what is wrong> — <what to do>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rollups.methods import DEFAULT_ROLE, MethodClass

__all__ = [
    "SERVICE_ID_PATTERN",
    "AnswerSettings",
    "ArbitrumSettings",
    "BackendRole",
    "CacheSettings",
    "ChainSpec",
    "ComputeUnits",
    "MethodOverride",
    "MethodSettings",
    "Timeouts",
    "match_method",
]

SERVICE_ID_PATTERN = r"^[a-z0-9_-]{1,32}$"
_METHOD_PATTERN = re.compile(r"^[A-Za-z0-9_.]+\*?$")
_ROLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

_STRICT = ConfigDict(frozen=True, extra="forbid")


def _check_method_name(name: str, where: str) -> None:
    if not _METHOD_PATTERN.match(name):
        raise ValueError(
            f"{where}: {name!r} is not a method name or a 'prefix*' pattern "
            "(letters, digits, '_' and '.', optionally ending in '*')"
        )


def match_method(patterns: Mapping[str, Any], method: str) -> str | None:
    """The key of ``patterns`` that applies to ``method``: the exact name, else the longest
    ``prefix*`` pattern whose prefix starts ``method``; ``None`` when none applies.

    >>> match_method({"debug_*": 20, "debug_trace*": 40}, "debug_traceCall")
    'debug_trace*'
    """
    if method in patterns:
        return method
    best: str | None = None
    for key in patterns:
        if key.endswith("*") and method.startswith(key[:-1]):
            if best is None or len(key) > len(best):
                best = key
    return best


class ComputeUnits(BaseModel):
    """Prices in compute units: ``default`` for every method, ``methods`` per method/pattern."""

    model_config = _STRICT

    default: int = 1
    max: int = 100
    methods: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ComputeUnits:
        if self.default < 1:
            raise ValueError(
                f"default = {self.default}: compute units must be at least 1 — set default >= 1"
            )
        if self.max < 1:
            raise ValueError(f"max = {self.max}: compute units must be at least 1 — set max >= 1")
        if self.max < self.default:
            raise ValueError(
                f"max = {self.max} is below default = {self.default} — raise max or lower default"
            )
        for name, value in self.methods.items():
            _check_method_name(name, "methods")
            if value < 1:
                raise ValueError(
                    f"methods.{name} = {value}: compute units must be at least 1 — "
                    "use 1 or more (deny a method under [methods.overrides] instead)"
                )
            if value > self.max:
                raise ValueError(
                    f"methods.{name} = {value} exceeds max = {self.max} — raise max or lower it"
                )
        return self

    def price(self, method: str) -> int:
        key = match_method(self.methods, method)
        return self.default if key is None else self.methods[key]


class BackendRole(BaseModel):
    """A backend role besides ``rpc`` and the methods it serves (names or patterns)."""

    model_config = _STRICT

    description: str = ""
    methods: tuple[str, ...] = ()

    @field_validator("methods")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            _check_method_name(name, "methods")
        return value


_CLASS_NAMES = ", ".join(c.value for c in MethodClass)


class MethodOverride(BaseModel):
    """A spec's override of one method (or pattern): its class and/or cacheability."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    method_class: MethodClass | None = Field(default=None, alias="class")
    cacheable: bool | None = None

    @field_validator("method_class", mode="before")
    @classmethod
    def _known_class(cls, value: Any) -> Any:
        if value is None or isinstance(value, MethodClass):
            return value
        if isinstance(value, str) and value in MethodClass._value2member_map_:
            return value
        raise ValueError(f"unknown method class {value!r} — use one of {_CLASS_NAMES}")

    @model_validator(mode="after")
    def _not_empty(self) -> MethodOverride:
        if self.method_class is None and self.cacheable is None:
            raise ValueError("an override must set `class` and/or `cacheable`")
        return self


class MethodSettings(BaseModel):
    """Method policy: whether writes are allowed, and per-method overrides."""

    model_config = _STRICT

    allow_writes: bool = True
    overrides: dict[str, MethodOverride] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _names(cls, value: dict[str, MethodOverride]) -> dict[str, MethodOverride]:
        for name in value:
            _check_method_name(name, "overrides")
        return value


class CacheSettings(BaseModel):
    """``head_ttl``: seconds an answer about the head (latest / unfinalized) may be cached."""

    model_config = _STRICT

    head_ttl: float = Field(default=1.0, ge=0.0)


class AnswerSettings(BaseModel):
    """What a gateway accepts from suppliers for this service (DESIGN §4).

    ``max_bytes``: the cap of one answer; ``large_max_bytes``: the cap of the handler's large
    class (traces and logs); ``allowed_lag``: seconds a reported height may stand above the
    lower median of the suppliers' heights and still enter a client's ``eth_blockNumber``
    floor (divided by ``block_time`` to count blocks).
    """

    model_config = _STRICT

    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    large_max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    allowed_lag: float = Field(default=10.0, ge=0.0)


class Timeouts(BaseModel):
    """Seconds to wait for a backend: ordinary calls, writes, long polls."""

    model_config = _STRICT

    default: float = Field(default=10.0, gt=0.0)
    write: float = Field(default=30.0, gt=0.0)
    long_poll: float = Field(default=60.0, gt=0.0)


class ArbitrumSettings(BaseModel):
    """Arbitrum specifics. ``classic_last_block``: the last pre-Nitro block, the only range
    ``arbtrace_*`` can serve (Arbitrum One: 22207815); ``None``: no classic history (Nova)."""

    model_config = _STRICT

    classic_last_block: int | None = Field(default=None, ge=0)


MetadataValue = str | int | float | bool | list[str]


class ChainSpec(BaseModel):
    """One service's chain spec (frozen; build with :func:`parse_spec` or :func:`load_spec`)."""

    model_config = _STRICT

    service_id: Annotated[str, StringConstraints(pattern=SERVICE_ID_PATTERN)]
    name: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
    rpc_type: str
    chain_id: int | None = Field(default=None, gt=0)
    network: str | None = None
    finality_depth: int = Field(ge=0)
    block_time: float | None = Field(default=None, gt=0.0)
    compute_units: ComputeUnits = Field(default_factory=ComputeUnits)
    backends: dict[str, BackendRole] = Field(default_factory=dict)
    methods: MethodSettings = Field(default_factory=MethodSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    answers: AnswerSettings = Field(default_factory=AnswerSettings)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    arbitrum: ArbitrumSettings | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @field_validator("backends")
    @classmethod
    def _roles(cls, value: dict[str, BackendRole]) -> dict[str, BackendRole]:
        seen: dict[str, str] = {}
        for role, backend in value.items():
            if not _ROLE_PATTERN.match(role):
                raise ValueError(
                    f"role {role!r}: use 1-32 of [a-z0-9_-], starting with a letter or digit"
                )
            if role == DEFAULT_ROLE and backend.methods:
                raise ValueError(
                    f'role "{DEFAULT_ROLE}" serves every method not routed elsewhere — '
                    "remove its `methods` list"
                )
            for method in backend.methods:
                if method in seen:
                    raise ValueError(
                        f"{method!r} is routed to both {seen[method]!r} and {role!r} — "
                        "keep it in one role"
                    )
                seen[method] = role
        return value

    @model_validator(mode="after")
    def _identity(self) -> ChainSpec:
        if self.chain_id is None and self.network is None:
            raise ValueError(
                "missing chain identity — set `chain_id` (EVM) or `network` (CometBFT, Celestia)"
            )
        return self

    @property
    def identity(self) -> str:
        """The chain identity a backend must report: the decimal chain id, else the network."""
        return str(self.chain_id) if self.chain_id is not None else str(self.network)

    def role_for(self, method: str) -> str | None:
        """The role this spec routes ``method`` to, or ``None`` (the handler decides)."""
        routes = {m: role for role, b in self.backends.items() for m in b.methods}
        key = match_method(routes, method)
        return None if key is None else routes[key]

    def override_for(self, method: str) -> MethodOverride | None:
        key = match_method(self.methods.overrides, method)
        return None if key is None else self.methods.overrides[key]
