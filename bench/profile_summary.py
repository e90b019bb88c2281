"""Where a server's CPU goes, by area, from the speedscope files of ``bench_suite --profile``.

    python -m bench.profile_summary DIR/gateway-relayer-anvil/gateway.speedscope.json …

Counts the samples of the event-loop thread that are not waiting in ``epoll`` and gives each
to the innermost frame that names an area (aiohttp server or client, transport/, GC, crypto,
the relay logic, …). py-spy samples wall time: a thread inside ``write(2)`` to loopback on a
shared, pinned CPU is often descheduled while its peer runs, so the kernel share is an upper
bound, not CPU.
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Callable

__all__ = ["AREAS", "summarise"]

Pred = Callable[[str, str], bool]


def _in(*parts: str) -> Pred:
    return lambda name, file: any(p in file for p in parts)


AREAS: list[tuple[str, Pred]] = [
    ("kernel write/read/connect (wall time)", lambda n, f: n in ("write", "read", "connect")),
    ("GC", lambda n, f: n in ("gc_collect_main", "collect", "collect_generations")),
    ("ed25519", lambda n, f: "ed25519" in f or "crypto_sign" in n or "ed25519" in n),
    ("secp256k1", lambda n, f: "secp256k1" in f or "coincurve" in f or n == "recover_signer"),
    ("keccak / sha256", lambda n, f: "keccak" in n.lower() or "sha256" in n.lower()),
    ("relay log", _in("relaylog.py", "recorder.py")),
    (
        "aiohttp client",  # aiohttp's own files only (not gateway/relay_client.py)
        _in("aiohttp/client", "aiohttp/connector.py"),
    ),
    # aiohttp's files by their directory: bare names (payload.py, helpers.py, streams.py)
    # would also match the project's own modules (protocol/payload.py)
    ("aiohttp server", lambda n, f: "/aiohttp/" in f or "multidict" in f),
    (
        "transport/ (fast front, http1, httptools)",
        _in("fastserve.py", "http1.py", "fastpath.py", "parser.c", "llhttp"),
    ),
    ("metrics", _in("prometheus_client", "metrics.py")),
    (
        "asyncio / uvloop",
        _in(
            "tasks.py",
            "futures.py",
            "timeouts.py",
            "events.py",
            "_asynciomodule",
            "loop.c",
            "locks.py",
        ),
    ),
    (
        "relay logic",
        _in(
            "gateway/",
            "protocol/",
            "router.py",
            "verify.py",
            "relay_client.py",
            "server.py",
            "jsonrpc.py",
            "rollups",
            "relay.py",
            "sessions.py",
            "selection.py",
            "cache.py",
            "limiter.py",
            "windows.py",
            "budget.py",
            "keys.py",
            "backend.py",
            "pricing.py",
        ),
    ),
    ("settlement follower", _in("web3", "follower.py")),
]


def summarise(path: str) -> tuple[float, list[tuple[str, float]]]:
    """(busy seconds of the loop thread, [(area, share)] largest first)."""
    with open(path) as fh:
        data = json.load(fh)
    frames = data["shared"]["frames"]
    total = 0.0
    by: collections.Counter[str] = collections.Counter()
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=False):
            names = [frames[i]["name"] for i in stack]
            if not any("Loop__run" in n or n == "run_forever" for n in names):
                continue  # another thread
            if names and names[-1] in ("epoll_pwait", "epoll_wait"):
                continue  # idle
            total += weight
            area = "other (interpreter, libc)"
            if any(
                "RegistryFollower" in n or "follower.py" in frames[i].get("file", "")
                for n, i in zip(names, stack, strict=True)
            ):
                by["settlement follower"] += weight  # with its callees (http1, json, …)
                continue
            for i in reversed(stack):
                frame = frames[i]
                hit = next(
                    (a for a, pred in AREAS if pred(frame["name"], frame.get("file", ""))), None
                )
                if hit is not None:
                    area = hit
                    break
            by[area] += weight
    return total, [(a, w / total if total else 0.0) for a, w in by.most_common()]


def main(argv: list[str]) -> None:
    for path in argv:
        busy, shares = summarise(path)
        print(f"{path}: loop thread busy {busy:.2f} s of samples")
        for area, share in shares:
            print(f"  {share:6.1%}  {area}")


if __name__ == "__main__":
    main(sys.argv[1:])
