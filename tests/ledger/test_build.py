"""The committed contract artifacts are exactly what the Vyper sources compile to, and every
deployable contract fits the EIP-170 code size limit."""

from __future__ import annotations

import pytest

from ledger.artifacts import ALL_CONTRACTS, BUILD_DIR, CONTRACT_NAMES, load_artifact
from ledger.build import CODE_SIZE_LIMIT, artifact_json, compile_all


@pytest.mark.slow  # compiles every contract with vyper (~30 s)
def test_recompiling_gives_the_committed_artifacts() -> None:
    compiled = compile_all()
    assert set(compiled) == set(ALL_CONTRACTS)
    for name, artifact in compiled.items():
        committed = (BUILD_DIR / f"{name}.json").read_text()
        assert committed == artifact_json(artifact), f"{name}: run `make contracts`"
        size = (len(artifact["bytecode_runtime"]) - 2) // 2
        assert 0 < size <= CODE_SIZE_LIMIT, f"{name}: {size} bytes of code"


def test_artifacts_load_without_a_compiler() -> None:
    for name in CONTRACT_NAMES:
        art = load_artifact(name)
        assert art.bytecode and any(item.get("type") == "constructor" for item in art.abi)
    events = {i["name"] for i in load_artifact("Suppliers").abi if i["type"] == "event"}
    assert {"PositionSet", "LengthSet"} <= events
