"""The verifier's docstring examples hold, and the README's algorithm names real selectors."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import verify.chain
import verify.exchange
from protocol.keys import keccak256
from verify.verifier import CHECKS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("module", [verify.chain, verify.exchange])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_the_readme_selectors_are_the_views_the_verifier_calls() -> None:
    text = README.read_text()
    pairs = re.findall(r"`([0-9a-f]{8}) ([A-Za-z_]+\([a-z0-9,]*\))`", text)
    assert len(pairs) >= 18
    for selector, signature in pairs:
        assert keccak256(signature.encode())[:4].hex() == selector, signature
        assert f'"{signature}"' in Path(verify.chain.__file__).read_text() or signature.endswith(
            "()"
        ), signature


def test_the_readme_names_every_check() -> None:
    section = README.read_text().split("### Verify an answer")[1].split("### Journey 2")[0]
    for check in CHECKS:  # each step is headed by the name a failure reports
        assert f"**{check}:**" in section, check
