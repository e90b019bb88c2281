"""What a server's process imports before it serves, and that the run's children keep bytecode.

The suite starts our servers and CLI as subprocesses some hundreds of times, so their start-up
is most of its time: a relayer does not import the gateway's server (``gateway.app``, which
every ``gateway.*`` module pulls in through the package), nor a gateway the relayer's
(``relaynet.config`` imports a config model only when a config of that kind is loaded), and
where ``PYTHONDONTWRITEBYTECODE`` is set the run unsets it for the processes it starts
(tests/conftest.py), so they do not recompile the project each time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts Python subprocesses

REPO = Path(__file__).resolve().parents[2]

# ``relaynet <role> run`` on a config file that does not exist: the command's imports and the
# config loader run, then it exits with its one-line error; the modules loaded are printed.
RUN = """
import runpy, sys
sys.argv = ["relaynet", {role!r}, "run", "--config", "/nonexistent/{role}.toml"]
try:
    runpy.run_module("relaynet", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(code, sorted(set(sys.modules) & {{"gateway.app", "relayer.app"}}))
"""


@pytest.mark.parametrize(("role", "other"), [("relayer", "gateway"), ("gateway", "relayer")])
def test_a_server_does_not_import_the_other_role(role: str, other: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN.format(role=role)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    code, loaded = out.stdout.strip().split(" ", 1)
    assert "cannot read /nonexistent" in out.stderr  # the config loader ran
    assert code == "1"
    assert f"'{other}.app'" not in loaded, f"relaynet {role} run imported {other}.app"


def test_processes_the_run_starts_write_bytecode() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_a_gateway_module_does_not_load_the_gateway_server() -> None:
    """`relaynet gateway keys …` and `gateway stake` import gateway modules, not the server:
    the package re-exports its names on first use (gateway/__init__.py)."""
    code = (
        "import sys, gateway.keys, gateway.config, gateway; "
        "print('gateway.app' in sys.modules, gateway.GatewayConfig.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.stdout.split() == ["False", "gateway.config"], out.stderr
