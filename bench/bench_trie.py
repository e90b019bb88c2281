"""Claim tries (DESIGN §6 "claims"): build time, peak memory and proof time of ``SumTrie``.

Each size runs in its own child process so that its peak resident memory is its own: the
child reports ``ru_maxrss`` at start (interpreter + imports: the baseline) and after building
and proving; the parent also reads ``RUSAGE_CHILDREN``. Leaves are generated on the fly
(random keys and value hashes, weights 1–100, refs like a log offset), as a relayer streams
them from its session log; the generator's own cost is measured separately and included in
the build time. Bar: 1,000,000 leaves built in <= 10 s with <= 300 MB peak.

Both build paths are measured: ``accelerated`` (the C extension ``protocol._trie_accel``, what
``SumTrie.build`` uses when it is built) and ``pure`` (the Python reference, forced in the child
with ``accelerate=False``). The bar is judged on the path ``SumTrie.build`` uses by default.

    python -m bench trie                 # 100k and 1M leaves, both paths
    python -m bench.bench_trie --sizes 10000 200000 --proofs 500 --paths accelerated
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["main"]

BAR_LEAVES = 1_000_000
BAR_SECONDS = 10.0
BAR_MB = 300.0
PATHS = ("accelerated", "pure")


def _leaves(n: int, seed: int) -> Iterator[tuple[bytes, bytes, int, int]]:
    randbytes = random.Random(seed).randbytes
    for i in range(n):
        blob = randbytes(64)
        yield blob[:32], blob[32:], blob[0] % 100 + 1, 326 * i


def _max_rss_mb(who: int) -> float:
    """Peak resident set size in MB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def _child(n: int, proofs: int, accelerate: bool) -> dict[str, float]:
    from protocol.trie import SumTrie, accelerated, verify_proof

    baseline = _max_rss_mb(resource.RUSAGE_SELF)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in _leaves(n, seed=1):
        pass
    generate = time.perf_counter() - started
    generate_cpu = time.process_time() - cpu

    started, cpu = time.perf_counter(), time.process_time()
    trie = SumTrie.build(_leaves(n, seed=2), accelerate=accelerate)
    build = time.perf_counter() - started
    build_cpu = time.process_time() - cpu
    peak_build = _max_rss_mb(resource.RUSAGE_SELF)

    rng = random.Random(3)
    total = trie.root.sum
    challenges = [rng.randrange(total) for _ in range(proofs)]
    started = time.perf_counter()
    opened = [trie.prove(r) for r in challenges]
    prove = (time.perf_counter() - started) / max(proofs, 1)
    started = time.perf_counter()
    for r, proof in zip(challenges, opened, strict=True):
        verify_proof(trie.root, r, proof.key, proof.value_hash, proof.weight, proof.siblings)
    verify = (time.perf_counter() - started) / max(proofs, 1)
    depth = sum(len(p.siblings) for p in opened) / max(proofs, 1)
    return {
        "leaves": len(trie),
        "generate_s": generate,
        "generate_cpu_s": generate_cpu,
        "build_s": build,
        "build_cpu_s": build_cpu,
        "baseline_mb": baseline,
        "peak_build_mb": peak_build,
        "peak_mb": _max_rss_mb(resource.RUSAGE_SELF),
        "prove_us": prove * 1e6,
        "verify_us": verify * 1e6,
        "depth": depth,
        "accelerated": float(accelerated(accelerate)),
    }


def _run_child(n: int, proofs: int, path: str) -> dict[str, float]:
    pure = ["--pure"] if path == "pure" else []
    child = [sys.executable, "-m", "bench.bench_trie", "--child", str(n), "--proofs", str(proofs)]
    out = subprocess.run(
        [*child, *pure],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["children_max_mb"] = _max_rss_mb(resource.RUSAGE_CHILDREN)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_trie", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--proofs", type=int, default=1000)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--pure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child is not None:
        print(json.dumps(_child(args.child, args.proofs, not args.pure)), flush=True)
        return

    idle = _run_child(1, 1, "accelerated")  # the interpreter + imports alone
    default = "accelerated" if idle["accelerated"] else "pure"
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"interpreter baseline (child, after imports): {idle['baseline_mb']:.1f} MB RSS")
    print(f"SumTrie.build uses the {default} path{_sha_note()}")
    header = (
        f"{'path':>11} {'leaves':>10} {'build s':>8} {'cpu s':>7} {'(gen s)':>8} {'trie cpu':>8} "
        f"{'peak MB':>8} {'trie MB':>8} {'prove us':>9} {'verify us':>9} {'depth':>6}  bar"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for path in args.paths:
            if path == "accelerated" and not idle["accelerated"]:
                print(f"{path:>11} {n:>10} {'(not built)':>8}", flush=True)
                continue
            row = _run_child(n, args.proofs, path)
            trie_mb = row["peak_mb"] - row["baseline_mb"]
            bar = ""
            if n >= BAR_LEAVES and path == default:
                ok = row["build_s"] <= BAR_SECONDS and row["peak_mb"] <= BAR_MB
                bar = f"{'PASS' if ok else 'FAIL'} (<= {BAR_SECONDS:.0f} s, <= {BAR_MB:.0f} MB)"
            print(
                f"{path:>11} {int(row['leaves']):>10} {row['build_s']:>8.2f} "
                f"{row['build_cpu_s']:>7.2f} {row['generate_s']:>8.2f} "
                f"{row['build_cpu_s'] - row['generate_cpu_s']:>8.2f} "
                f"{row['peak_mb']:>8.1f} {trie_mb:>8.1f} {row['prove_us']:>9.1f} "
                f"{row['verify_us']:>9.1f} {row['depth']:>6.1f}  {bar}",
                flush=True,
            )
    print(
        "build s (wall) and cpu s include generating the leaves on the fly ((gen s) alone); "
        "trie cpu = cpu s - the generator's own cpu time; "
        "peak MB is the child's whole RSS, trie MB = peak - baseline. On a shared machine "
        "wall time exceeds cpu time by the load of others (load average shown)."
    )


def _sha_note() -> str:
    try:
        from protocol import _trie_accel
    except ImportError:
        return " (the C accelerator is not built)"
    return f" (accelerator sha256: {_trie_accel.SHA256_IMPL})"


if __name__ == "__main__":
    main(sys.argv[1:])
