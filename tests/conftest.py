"""Fixtures shared by every test: real anvil and redis-server processes on free ports, seeds.

A missing anvil or Redis fails the run; it never skips.

The ``slow`` marker (``make unit-fast`` runs ``-m "not slow"``) is applied automatically:

- to every test that uses a process fixture (:data:`PROCESS_FIXTURES`);
- by hand (``pytestmark = pytest.mark.slow``) to modules that start processes themselves.

A test that is not marked slow and still starts a process fails with a message saying so
(:func:`pytest_runtest_protocol` guards ``subprocess.Popen``), so the fast lane cannot quietly
grow a process-spawning test.

Chains: ``ledger_net`` is one deployed network for the whole session, rolled back with
``evm_snapshot``/``evm_revert`` after each test (block numbers and timestamps go back too).
Tests that must own their chain — reorgs, chain ids, automine off, block timing — take
``anvil`` (a fresh anvil for the test) or ``anvil_factory``.

Bytecode: a run starts our servers and CLI as Python subprocesses some hundreds of times. Where
``PYTHONDONTWRITEBYTECODE`` is set (CI images, the shared dev machine) every one of them, and
this process, would compile the project's modules from source again (~0.3 s of CPU a process,
~4 s for collection); so the run writes bytecode as Python does by default, into the
git-ignored ``__pycache__`` folders, for itself and its children.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # before the project's imports (docstring)
sys.dont_write_bytecode = False

from ledger.anvil import AnvilProcess  # noqa: E402
from ledger.bootstrap import ServiceSpec, bootstrap_network  # noqa: E402
from tests.support.chain import LedgerNet  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

TESTS = Path(__file__).resolve().parent

#: Fixtures that start processes: a test using any of them (directly or through other
#: fixtures) is ``slow``.
PROCESS_FIXTURES = frozenset({"anvil", "anvil_factory", "ledger_net", "redis_server"})

SEED_ENV = "RELAYNET_SEED"


# -- seeds ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--relaynet-seed",
        type=int,
        default=None,
        help=f"the run's base random seed (default: ${SEED_ENV}, else drawn and printed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("--relaynet-seed")
    if seed is None and os.environ.get(SEED_ENV):
        seed = int(os.environ[SEED_ENV])
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    config.stash[_SEED] = seed
    _install_popen_guard()


_SEED = pytest.StashKey[int]()


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[_SEED]
    return f"relaynet seed: {seed} (reproduce with --relaynet-seed {seed} or {SEED_ENV}={seed})"


@pytest.fixture(scope="session")
def relaynet_seed(pytestconfig: pytest.Config) -> int:
    """The run's base seed (``--relaynet-seed`` / ``$RELAYNET_SEED``, else drawn)."""
    return pytestconfig.stash[_SEED]


@pytest.fixture
def seed(request: pytest.FixtureRequest, relaynet_seed: int) -> int:
    """A seed for this test: derived from the run's seed and the test id, printed (shown with
    a failure) so the run can be reproduced with ``--relaynet-seed``."""
    digest = hashlib.sha256(f"{relaynet_seed}:{request.node.nodeid}".encode()).digest()
    value = int.from_bytes(digest[:4], "big")
    print(f"seed {value} (--relaynet-seed {relaynet_seed})")
    return value


# -- the slow marker ------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.slow)


_guard: dict[str, str | None] = {"fast_test": None}


def _install_popen_guard() -> None:
    """Make ``subprocess.Popen`` (which asyncio's subprocesses use too) refuse to start a
    process while a test that is not marked slow runs."""
    if getattr(subprocess.Popen, "_relaynet_guarded", False):
        return
    real_init = subprocess.Popen.__init__

    def guarded_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        test = _guard["fast_test"]
        if test is not None:
            raise pytest.fail.Exception(
                f"{test} starts a process ({args[0] if args else kwargs.get('args')!r}) but is"
                " not marked slow: use a process fixture or mark the module"
                " `pytestmark = pytest.mark.slow`"
            )
        real_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = guarded_init  # type: ignore[method-assign]
    subprocess.Popen._relaynet_guarded = True  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    fast = item.get_closest_marker("slow") is None
    _guard["fast_test"] = item.nodeid if fast else None
    try:
        yield
    finally:
        _guard["fast_test"] = None


# -- data -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kat() -> dict[str, Any]:
    """The known-answer vectors of DESIGN §3, copied from shared/vectors."""
    with open(TESTS / "vectors" / "protocol-kat.json") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return TESTS / "fixtures"


# -- chains -----------------------------------------------------------------------------------


@pytest.fixture
def anvil() -> Iterator[AnvilProcess]:
    """A private chain: a fresh anvil (automine) that this test owns — for reorgs, chain-id
    changes, automine off, block timing."""
    with AnvilProcess() as node:
        yield node


@pytest.fixture
def anvil_factory() -> Iterator[Callable[..., AnvilProcess]]:
    """Start more private anvils (e.g. other chain ids); all are stopped after the test."""
    started: list[AnvilProcess] = []

    def make(**kwargs: Any) -> AnvilProcess:
        node = AnvilProcess(**kwargs).start()
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture(scope="session")
def _ledger_net_session() -> Iterator[LedgerNet]:
    with AnvilProcess() as node:
        net = asyncio.run(bootstrap_network(node.url, services=[ServiceSpec("eth")]))
        yield LedgerNet(node, net, node.block_number())


@pytest.fixture
def ledger_net(_ledger_net_session: LedgerNet) -> Iterator[LedgerNet]:
    """The session's deployed network, as it was after deployment: each test's changes
    (transactions, mined blocks) are undone with ``evm_revert`` after it. Automine stays on;
    a test that needs its own chain takes ``anvil`` instead."""
    node = _ledger_net_session.anvil
    snap = node.rpc("evm_snapshot")  # single use: evm_revert consumes it
    yield _ledger_net_session
    assert node.rpc("evm_revert", [snap]) is True


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()
