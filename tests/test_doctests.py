"""The examples in the docstrings of ``protocol/`` and ``session/`` are run and must hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import protocol
import session

MODULES = sorted(
    info.name
    for package in (protocol, session)
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
)


def test_both_packages_have_modules_with_examples() -> None:
    with_examples = [m for m in MODULES if doctest.DocTestFinder().find(importlib.import_module(m))]
    assert any(m.startswith("protocol.") for m in with_examples)
    assert any(m.startswith("session.") for m in with_examples)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
