"""The vectors generator and checker: KAT reproduced, fresh files self-consistent and edgy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from relaynet import vectors


def test_known_answers_all_reproduced(kat: dict[str, Any]) -> None:
    assert vectors.check(kat) == []


def test_checker_catches_a_wrong_answer(kat: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(kat))
    broken["claims"][0]["out"]["r"] += 1
    broken["relays"][0]["relay_key"] = "0x" + "00" * 32
    t = broken["tries"][2]
    other = next(x["key"] for x in t["leaves"] if x["key"] != t["challenges"][0]["leaf_key"])
    t["challenges"][0]["leaf_key"] = other
    failures = vectors.check(broken)
    assert any(f.startswith("claims[0]") for f in failures)
    assert any(f.startswith("relays[0]") for f in failures)
    assert any(f.startswith("tries[2]") for f in failures)


@pytest.mark.parametrize("draw", range(3))
def test_fresh_vectors_check(draw: int, seed: int) -> None:
    data = vectors.generate(seed)
    assert vectors.check(data) == [], f"seed {seed}"


def test_fresh_vectors_cover_the_edge_cases() -> None:
    data = vectors.generate(7)
    tries = data["tries"]
    assert tries[0]["leaves"] == [] and tries[0]["root"] == "0x" + "00" * 48
    assert len(tries[1]["leaves"]) == 1 and tries[1]["challenges"][0]["siblings"] == []
    keys = [x["key"] for x in tries[3]["leaves"]]
    assert len(keys) != len(set(keys)), "duplicate keys"
    assert any(c.get("valid") is False for c in tries[4]["challenges"])
    relays = data["relays"]
    assert any(r["index"] > 0 and r["response_status"] == 101 for r in relays)
    assert any("request" in r for r in relays)
    assert any(r.get("difficulty_bits", 0) > 0 for r in relays)
    assert sum(1 for r in relays if r.get("valid") is False) == 2
    assert any(s["C"] == 0 and s["slots"] == [] for s in data["sessions"])
    assert any(h["lengths"] and h["lengths"][-1]["length"] == 0 for h in data["histories"])
    claims = data["claims"]
    assert any(
        c["out"]["claimed"] == c["out"]["budget"] < c["out"]["tokens"] for c in claims if "out" in c
    )
    assert any(c["out"]["paid"] < c["out"]["claimed"] for c in claims if "out" in c)
    assert any(c["out"]["slash"] == c["supplier_stake"] for c in claims if "out" in c)
    assert claims[-1]["valid"] is False


@pytest.mark.slow
def test_cli_writes_and_checks(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    exe = [sys.executable, "-m", "relaynet"]
    done = subprocess.run(
        [*exe, "dev", "vectors", "--seed", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert set(data) == set(vectors.SECTIONS)
    assert data == vectors.generate(5)
    ok = subprocess.run(
        [*exe, "dev", "check-vectors", str(out)], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    data["windows"][0]["out"]["start"] += 1
    out.write_text(json.dumps(data))
    bad = subprocess.run(
        [*exe, "dev", "check-vectors", str(out)], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "windows[0]" in bad.stderr
