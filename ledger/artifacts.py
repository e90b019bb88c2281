"""Compiled settlement contracts, loaded at run time (no compiler needed).

``ledger/contracts/build/<Name>.json`` holds ``{"contract", "abi", "bytecode"}`` for every
contract; ``make contracts`` (``python -m ledger.build``) writes them from the Vyper sources and a
test recompiles and compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "ALL_CONTRACTS",
    "BUILD_DIR",
    "CONTRACTS_DIR",
    "CONTRACT_NAMES",
    "Artifact",
    "load_artifact",
]

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"

# The deployable contracts, in deploy order (see ledger.deploy).
CONTRACT_NAMES: tuple[str, ...] = (
    "Token",
    "Sessions",
    "Services",
    "Suppliers",
    "Apps",
    "Settlement",
)
# Everything compiled: the deployable contracts plus the test-only math harness.
ALL_CONTRACTS: tuple[str, ...] = (*CONTRACT_NAMES, "MathHarness")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: its ABI and creation bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


@cache
def load_artifact(name: str) -> Artifact:
    """The committed artifact of contract ``name`` (one of :data:`ALL_CONTRACTS`)."""
    if name not in ALL_CONTRACTS:
        raise KeyError(f"unknown contract {name!r}")
    with open(BUILD_DIR / f"{name}.json") as fh:
        data = json.load(fh)
    code = str(data["bytecode"])
    return Artifact(
        name=name,
        abi=list(data["abi"]),
        bytecode=bytes.fromhex(code[2:] if code.startswith("0x") else code),
    )
