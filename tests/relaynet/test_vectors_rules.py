"""The ``params`` and ``delegations`` sections of generated vectors: both verdicts appear, and
``check`` catches a flipped one (the KAT's ``params`` are checked against Vyper in
tests/ledger/test_contracts_rules.py)."""

from __future__ import annotations

import copy
from typing import Any

from relaynet import vectors


def test_params_and_delegations_cover_both_verdicts_and_flips_are_caught(
    kat: dict[str, Any],
) -> None:
    data = vectors.generate(11)
    assert {c["valid"] for c in data["params"]} == {True, False}
    answers = {q["signer_ok"] for c in data["delegations"] for q in c["queries"]}
    assert answers == {True, False}
    assert any(op["op"] == "unstake" for c in data["delegations"] for op in c["ops"])
    assert vectors.check({"params": kat["params"]}) == []
    flipped = copy.deepcopy(data)
    flipped["params"][0]["valid"] = not flipped["params"][0]["valid"]
    q = flipped["delegations"][0]["queries"][0]
    q["signer_ok"] = not q["signer_ok"]
    failures = vectors.check({k: flipped[k] for k in ("params", "delegations")})
    assert any(f.startswith("params[0]") for f in failures)
    assert any(f.startswith("delegations[0]") for f in failures)
