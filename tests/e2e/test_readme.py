"""The README's journeys run exactly as written, against a devnet started with the launcher.

Every ```sh block under a "### Journey" heading runs, in order, in one ``bash -euo pipefail``
(one shell, as a reader pasting them would: variables and files carry over), from a folder
that looks like a fresh clone (``rollups/`` and ``deploy/`` are the repository folders they
read). A block preceded by ``<!-- readme-test: skip (why) -->`` is left out (it needs a tool
the project does not install). The README's fixed ports are swapped for free ones so
parallel runs cannot clash. Bounded in time; everything started is stopped afterwards
(devnet down, the script's process group, Redis).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts a devnet, relayers, gateways, Redis

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
SKIP = re.compile(r"<!-- readme-test: skip \((.+?)\) -->\s*$")
FIXED_PORTS = ("18181", "19191", "18545", "18546", "19545", "19546", "6379")
SCRIPT_SECONDS = 480


def journey_blocks(text: str) -> list[tuple[str, str]]:
    """(heading, code) of every ``sh`` block under a "### Journey" heading, minus skipped ones."""
    blocks: list[tuple[str, str]] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip() if line.startswith("### Journey") else ""
        elif line.strip() == "```sh" and heading:
            end = lines.index("```", i + 1)
            skipped = i > 0 and SKIP.search(lines[i - 1]) is not None
            if not skipped:
                blocks.append((heading, "\n".join(lines[i + 1 : end])))
            i = end
        i += 1
    return blocks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group(pgid: int) -> list[str]:
    """The command lines of the processes still in process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append((stat.parent / "cmdline").read_text().replace("\0", " ").strip())
        except (OSError, IndexError, ValueError):
            continue
    return found


def _stop_group(pgid: int) -> list[str]:
    """Give what is left in the group 30 s to finish stopping (a gateway drains after SIGTERM),
    then SIGKILL it. Returns what had to be killed."""
    deadline = time.monotonic() + 30
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _group(pgid)
    if left:
        os.killpg(pgid, signal.SIGKILL)
    return left


def test_the_journeys_are_found_and_nothing_is_left_out_silently() -> None:
    blocks = journey_blocks(README.read_text())
    headings = {h.split(" — ")[0] for h, _ in blocks}
    assert headings == {"Journey 1", "Journey 2", "Journey 3", "Journey 4", "Journey 5"}
    skipped = [m.group(1) for m in map(SKIP.search, README.read_text().splitlines()) if m]
    assert skipped == ["needs Foundry's cast"]
    for _, code in blocks:  # no placeholder left to fill in by hand
        for line in code.splitlines():
            assert "…" not in line.split(" # ")[0] and "0xSUPPLIER" not in line, line


def test_readme_journeys_run_as_written(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None or shutil.which("jq") is None:
        pytest.fail("redis-server and jq are part of the set-up (make setup)")
    clone = tmp_path / "relaynet"
    clone.mkdir()
    for folder in ("rollups", "deploy"):  # the repository folders the journeys read
        (clone / folder).symlink_to(REPO / folder)
    ports = {p: str(_free_port()) for p in FIXED_PORTS}
    script = ["set -euo pipefail"]
    for n, (heading, code) in enumerate(journey_blocks(README.read_text())):
        for fixed, free in ports.items():
            code = re.sub(rf"\b{fixed}\b", free, code)
        script += [f"echo '>>> {heading} (block {n}) at' $SECONDS s", code]
    (clone / "journeys.sh").write_text("\n".join(script) + "\n")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"}
    env.pop("RELAYER_PASSPHRASE", None)

    def relaynet(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["relaynet", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    up = relaynet("devnet", "up", "--detach")
    proc: subprocess.Popen[str] | None = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        proc = subprocess.Popen(
            ["bash", "journeys.sh"],
            cwd=clone,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=SCRIPT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"the journeys took over {SCRIPT_SECONDS} s:\n{out[-4000:]}")
        (tmp_path / "transcript.txt").write_text(out)
        if os.environ.get("RELAYNET_README_TRANSCRIPT"):  # for the closing note
            Path(os.environ["RELAYNET_README_TRANSCRIPT"]).write_text(out)
        assert proc.returncode == 0, out[-6000:]
    finally:
        if proc is not None:
            leftovers = _stop_group(proc.pid)  # anything a journey left running
        subprocess.run(
            ["redis-cli", "-p", ports["6379"], "shutdown", "nosave"],
            capture_output=True,
            timeout=30,
        )
        down = relaynet("devnet", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers == [], f"still running after the journeys stopped them: {leftovers}"

    # Journey 1: the URL answers
    assert '"result":"0x' in out.split(">>> Journey 2")[0]
    # Journey 2: every check passed twice (after start, and after the endpoint moved)
    j2 = out.split(">>> Journey 2")[1].split(">>> Journey 3")[0]
    assert j2.count("✓ endpoint eth: ") == 2 and "✗" not in j2
    assert f"http://127.0.0.1:{ports['18181']}/v1/relay -> " in j2
    assert f"http://localhost:{ports['18181']}/v1/relay" in j2
    assert "✓ stake headroom: " in j2 and "✓ backend eth: " in j2
    # Journey 3: registered, and served by Journey 2's supplier without a second stake
    j3 = out.split(">>> Journey 3")[1].split(">>> Journey 4")[0]
    assert "myrollup" in j3 and "service added: transaction 0x" in j3
    assert f"service myrollup  ->  http://127.0.0.1:{ports['18181']}/v1/relay" in j3
    # Journey 4: a relay through the second replica, usage counted, the key revoked
    j4 = out.split(">>> Journey 4")[1].split(">>> Journey 5")[0]
    assert "✓ key store: Redis answers" in j4 and "✗" not in j4
    assert '"result":"0x' in j4 and "total=" in j4 and "revoked " in j4
    # Journey 5: a second deployment on the devnet's chain, its code checked
    assert (clone / "deployment.json").exists()
    # nothing written into the clone by Redis, and the relayer stopped by its pid file
    assert not (clone / "dump.rdb").exists()
    pid = int((clone / "myrelayer" / "relayer.pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
