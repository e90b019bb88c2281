"""Run every benchmark module: ``python -m bench [name ...]``.

Each ``bench/bench_<topic>.py`` has ``main(argv)`` that prints its own table. With names, only
those topics run (e.g. ``python -m bench trie crypto``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    topics = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )
    wanted = argv or topics
    unknown = [t for t in wanted if t not in topics]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(topics)}")
        return 2
    for topic in wanted:
        print(f"\n== {topic} ==", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.bench_{topic}")
        module.main([])
        print(f"({topic}: {time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
