"""Compile the Vyper contracts and write their ABI and bytecode beside the sources.

``python -m ledger.build`` (``make contracts``) writes ``ledger/contracts/build/<Name>.json`` for
every contract of :data:`ledger.artifacts.ALL_CONTRACTS`; :func:`compile_all` returns the same
data without writing, for the test that checks the committed artifacts are current. Needs the
``vyper`` package (a dev dependency); nothing imports this module at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.artifacts import ALL_CONTRACTS, BUILD_DIR, CONTRACTS_DIR

# EIP-170: the most code a contract may have.
CODE_SIZE_LIMIT = 24_576

__all__ = [
    "CODE_SIZE_LIMIT",
    "artifact_json",
    "compile_all",
    "compile_contract",
    "main",
    "write_all",
]


def compile_contract(name: str, contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """Compile ``<contracts_dir>/<name>.vy`` into its artifact:
    ``{"contract", "abi", "bytecode", "bytecode_runtime"}``."""
    from vyper.cli.vyper_compile import compile_files

    source = contracts_dir / f"{name}.vy"
    out = compile_files(
        [str(source)], ("abi", "bytecode", "bytecode_runtime"), paths=[str(contracts_dir)]
    )
    (result,) = out.values()
    return {
        "contract": name,
        "abi": result["abi"],
        "bytecode": result["bytecode"],
        "bytecode_runtime": result["bytecode_runtime"],
    }


def compile_all(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """Every contract compiled, by name."""
    return {name: compile_contract(name, contracts_dir) for name in ALL_CONTRACTS}


def artifact_json(artifact: dict[str, Any]) -> str:
    """The committed file's exact text for one compiled contract."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_all(build_dir: Path = BUILD_DIR) -> list[Path]:
    """Compile everything and write the artifacts; returns the files written."""
    build_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in compile_all().items():
        path = build_dir / f"{name}.json"
        path.write_text(artifact_json(artifact))
        size = (len(artifact["bytecode_runtime"]) - 2) // 2
        print(f"{name:12s} {size:6d} bytes of code (limit {CODE_SIZE_LIMIT}) -> {path}")
        written.append(path)
    return written


def main() -> None:
    write_all()


if __name__ == "__main__":
    main()
