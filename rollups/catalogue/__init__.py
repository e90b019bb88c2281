"""The chain catalogue shipped with relaynet: one TOML chain spec per service.

Ethereum mainnet (``eth``), Sepolia (``eth-sepolia``), OP Mainnet (``op-mainnet``), Base
(``base``), Arbitrum One (``arb-one``), Arbitrum Nova (``arb-nova``) and a devnet EVM spec on
chain id 31337 (``devnet``). :func:`catalogue` loads and validates them all (cached);
:func:`load_catalogue` does the same for any directory of ``*.toml`` specs and refuses two
files naming the same service id.
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from rollups.errors import SpecError
from rollups.loading import parse_spec
from rollups.spec import ChainSpec

__all__ = ["catalogue", "catalogue_spec", "load_catalogue"]


def load_catalogue(directory: str | Path | Traversable) -> dict[str, ChainSpec]:
    """Every ``*.toml`` spec of ``directory`` by service id (sorted by file name)."""
    root: Traversable = Path(directory) if isinstance(directory, str | Path) else directory
    specs: dict[str, ChainSpec] = {}
    origins: dict[str, str] = {}
    problems: list[str] = []
    files = sorted((f for f in root.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    for file in files:
        try:
            spec = parse_spec(file.read_text(encoding="utf-8"), origin=file.name)
        except SpecError as exc:
            problems.append(exc.message)
            continue
        if spec.service_id in specs:
            problems.append(
                f"{file.name}: duplicate service id {spec.service_id!r} "
                f"(also in {origins[spec.service_id]}) — give each service its own id"
            )
            continue
        specs[spec.service_id] = spec
        origins[spec.service_id] = file.name
    if problems:
        raise SpecError("catalogue refused:\n" + "\n".join(problems))
    return specs


@functools.cache
def catalogue() -> dict[str, ChainSpec]:
    """The shipped catalogue, by service id (loaded once; treat it as read-only)."""
    return load_catalogue(resources.files(__name__))


def catalogue_spec(service_id: str) -> ChainSpec:
    """One shipped spec; ``SpecError`` naming the known ids when absent."""
    specs = catalogue()
    try:
        return specs[service_id]
    except KeyError:
        raise SpecError(
            f"no chain spec {service_id!r} in the catalogue; known: {', '.join(sorted(specs))}"
        ) from None
