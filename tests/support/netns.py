"""Hosts of our own in Linux network namespaces, for the multi-host tests (root only).

Every host is a namespace ``rnmh-<name>`` with one interface ``eth0`` at ``10.213.7.<n>/24``;
the other end of its veth pair sits in a bridge ``rnmh-br`` of the root namespace, which holds
``10.213.7.1/24`` so the test process reaches every host. 10.213.7.0/24 is the project's own
test range: nothing here sends traffic to any other address. Typical use::

    with Lab(tmp_path) as lab:                   # waits for the lock, removes stale rnmh-* first
        chain = lab.host("chain", 2)             # 10.213.7.2
        proc = chain.popen(["anvil", ...], log=tmp_path / "chain.log")
        chain.link(up=False)                     # cut the host's link; link(up=True) restores
        chain.kill_all()                         # the host "dies": every process in it, SIGKILL
    # on exit (also on failure): every process stopped, namespaces and links removed
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PREFIX", "SUBNET", "Host", "Lab", "cleanup_stale", "usable"]

PREFIX = "rnmh"
SUBNET = "10.213.7"  # 10.213.7.0/24: our own test hosts
BRIDGE = f"{PREFIX}-br"
#: held for a lab's lifetime: two runs on one machine (two worktrees) take turns, and the stale
#: clean-up at the start only ever meets what a dead run left
LOCK = Path("/run/lock/relaynet-multihost.lock")


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, check=check, timeout=30)


def usable() -> str | None:
    """Why namespaces cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    try:
        probe = _ip("netns", "list", check=False)
    except FileNotFoundError:
        return "no `ip` command (iproute2)"
    return None if probe.returncode == 0 else probe.stderr.strip()


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _netns_pids(name: str) -> list[int]:
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def cleanup_stale() -> None:
    """Remove what an earlier run left behind: the processes inside our namespaces (by the pids
    the kernel lists for each ``rnmh-*`` namespace), the namespaces and our bridge."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-"):
            _kill_pids(_netns_pids(name))
            _ip("netns", "del", name, check=False)
    # our root-side veth ends and the bridge (a namespace's removal takes its veth pair with it
    # only asynchronously)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(": ")
        link = parts[1].split("@")[0] if len(parts) > 1 else ""
        if link.startswith(PREFIX):
            _ip("link", "del", link, check=False)


@dataclass
class Host:
    """One namespace with one address."""

    lab: Lab
    name: str
    octet: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.octet}"

    def popen(
        self, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``ip netns exec <ns> argv`` (ip execs the command: the pid is the program's)."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env if env is not None else os.environ),
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        """Run a short command in the host (``ip netns exec``); its stdout; raises on failure."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns, *argv],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {self.ns}: {done.stderr.strip()}")
        return done.stdout

    def link(self, *, up: bool) -> None:
        _ip("-n", self.ns, "link", "set", "eth0", "up" if up else "down")

    def kill_all(self) -> None:
        """The host dies: SIGKILL to every process we started in it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        self.procs.clear()


class Lab:
    """A bridge and the hosts on it; see the module's docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hosts: dict[str, Host] = {}
        self._lock: int | None = None

    def __enter__(self) -> Lab:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        cleanup_stale()
        try:
            _ip("link", "add", BRIDGE, "type", "bridge")
            _ip("addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
            _ip("link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise
        return self

    def host(self, name: str, octet: int) -> Host:
        if not 2 <= octet <= 254 or any(h.octet == octet for h in self.hosts.values()):
            raise ValueError(f"bad or used host number {octet}")
        host = Host(self, name, octet)
        self.hosts[name] = host
        outer, inner = f"{PREFIX}{octet}", f"{PREFIX}{octet}p"
        _ip("netns", "add", host.ns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.ns)
        _ip("link", "set", outer, "master", BRIDGE)
        _ip("link", "set", outer, "up")
        _ip("-n", host.ns, "link", "set", inner, "name", "eth0")
        _ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            for proc in host.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in host.procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            host.procs.clear()
        self.hosts.clear()
        try:
            cleanup_stale()  # namespaces, veth ends and the bridge
        finally:
            if self._lock is not None:
                os.close(self._lock)  # releases the lock
                self._lock = None

    def __exit__(self, *exc: object) -> None:
        self.close()
