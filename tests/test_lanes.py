"""The fast lane (``make unit-fast``, ``-m "not slow"``) holds no test that starts a process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROCESS_FIXTURES


def test_a_test_not_marked_slow_cannot_start_a_process() -> None:
    with pytest.raises(pytest.fail.Exception, match="not marked slow"):
        subprocess.Popen([sys.executable, "-c", "pass"])


def test_tests_using_process_fixtures_are_marked_slow(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    using = [i for i in items if set(getattr(i, "fixturenames", ())) & PROCESS_FIXTURES]
    assert all(i.get_closest_marker("slow") for i in using)
    assert request.node.get_closest_marker("slow") is None
