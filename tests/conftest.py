"""Fixtures shared by every test: real anvil and redis-server processes on free ports.

A missing anvil or Redis fails the run; it never skips.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.anvil import AnvilProcess
from tests.support.redis_server import RedisServer

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def kat() -> dict[str, Any]:
    """The known-answer vectors of DESIGN §3, copied from shared/vectors."""
    with open(TESTS / "vectors" / "protocol-kat.json") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return TESTS / "fixtures"


@pytest.fixture(scope="session")
def anvil_session() -> Iterator[AnvilProcess]:
    """One anvil for the whole run (automine). Tests that need a clean chain use ``anvil``."""
    with AnvilProcess() as node:
        yield node


@pytest.fixture
def anvil() -> Iterator[AnvilProcess]:
    """A fresh anvil (automine) for one test."""
    with AnvilProcess() as node:
        yield node


@pytest.fixture
def anvil_factory() -> Iterator[Callable[..., AnvilProcess]]:
    """Start more anvils (e.g. other chain ids); all are stopped after the test."""
    started: list[AnvilProcess] = []

    def make(**kwargs: Any) -> AnvilProcess:
        node = AnvilProcess(**kwargs).start()
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()
