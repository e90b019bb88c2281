"""Fault phases of the multi-host run: each runs bounded load (20 reads/s alternating the two
gateways, one POST per read, no retries) through a fault and records counts and timings."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.multihost.net import GATEWAYS, Net, http_ok, run_load, session_suppliers, wait_for


@dataclass
class Phase:
    fault: str
    seconds: float
    reads: int
    failed: int
    p50_ms: float
    max_ms: float
    recovered_s: float  # from lifting the fault to the part being ready again


def phase(
    net: Net,
    fault: str,
    cause: Callable[[], None],
    lift: Callable[[], None],
    seconds: float,
    recovered: Callable[[], bool] | None = None,
    first: int = 0,
) -> tuple[Phase, list[str]]:
    urls = [net.gateway_url(g) for g in GATEWAYS]
    cause()
    try:
        load = run_load(urls, seconds=seconds, first=first)
    finally:
        lift()
    started = time.monotonic()
    if recovered is not None:
        wait_for(f"recovery after {fault}", recovered, timeout=120)
    lat = sorted(load.latencies) or [0.0]
    result = Phase(
        fault,
        seconds,
        load.ok + len(load.failed),
        len(load.failed),
        round(statistics.median(lat) * 1000, 1),
        round(lat[-1] * 1000, 1),
        round(time.monotonic() - started, 1),
    )
    report(net, result)
    return result, load.failed


def report(net: Net, result: Phase) -> None:
    line = json.dumps(asdict(result))
    print(line)
    target = Path(os.environ.get("MULTIHOST_REPORT", str(net.tmp / "phases.jsonl")))
    with open(target, "a") as fh:
        fh.write(line + "\n")


def healthy_others(net: Net, victim: str, first: int | None = None) -> int:
    """Assert that each of the app's sessions from ``first`` (default: the head's) to the
    head's holds ``victim`` and at least one other relayer — the claim "zero failed reads while
    another supplier of the session is healthy" needs one. Returns the head's session; call it
    before a phase and again after it with ``first`` = what it returned."""
    found = session_suppliers(net, first)
    for n, held in found.items():
        assert victim in held, (n, held)
        assert [name for name in held if name != victim], f"session {n}: no other supplier {held}"
    return max(found)


def ready(net: Net, name: str, port: int) -> Callable[[], bool]:
    url = f"http://{net.hosts[name].address}:{port}/readyz"
    return lambda: http_ok(url)
