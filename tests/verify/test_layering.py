"""``verify/`` imports only ``protocol/``, ``session/`` and the standard library (DESIGN §4:
it could ship on its own)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED = {"protocol", "session", "verify", "__future__"}
PACKAGE = Path(__file__).resolve().parents[2] / "verify"


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_verify_imports_only_protocol_session_and_the_standard_library() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert files
    for path in files:
        outside = imported_roots(path) - ALLOWED - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {sorted(outside)}"
