"""The gateway's request path stays readable as steps (issue 13), checked from the source.

- no function on the request path is longer than :data:`MAX_LINES` (``def`` to its last line,
  docstring and decorators' body included), nested functions counted on their own too;
- no EVM method name (``eth_blockNumber``, ``eth_subscribe`` …) appears in ``gateway/`` — in
  code, strings, docstrings or comments: chain rules live behind ``rollups/`` handler hooks.

Like ``tests/test_import_graph.py`` this parses the files (``ast`` for functions, ``tokenize``
for names, strings and comments); nothing is imported or run.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from rollups.evm.methods import EVM_METHODS

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"
MAX_LINES = 60

#: The HTTP request path: admission, routing, the attempt loop, the upstream call, answers.
REQUEST_PATH = (
    "gateway/server.py",
    "gateway/fastpath.py",
    "gateway/router.py",
    "gateway/quorum.py",
    "gateway/failsafe/attempts.py",
    "gateway/failsafe/retry.py",
    "gateway/failsafe/hedge.py",
    "gateway/failsafe/breaker.py",
    "gateway/jsonrpc.py",
    "gateway/batch.py",
    "gateway/cache.py",
    "gateway/limiter.py",
    "gateway/errors.py",
    "gateway/state.py",
    "gateway/selection.py",
    "gateway/sessions.py",
    "gateway/relay_client.py",
    "gateway/ws.py",
    "gateway/streams.py",
)

_EVM_NAME = re.compile(r"\b(" + "|".join(sorted(map(re.escape, EVM_METHODS))) + r")\b")


def long_functions(path: Path, limit: int = MAX_LINES) -> list[str]:
    """``name (lines)`` of each function in ``path`` over ``limit`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{node.name} ({lines})")
    return found


def evm_names(path: Path) -> list[str]:
    """``line: name`` of each EVM method name in a name, string or comment of ``path``."""
    found = []
    source = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            for match in _EVM_NAME.finditer(tok.string):
                found.append(f"{tok.start[0]}: {match.group(1)}")
    return found


def test_request_path_functions_are_short() -> None:
    offenders = {rel: found for rel in REQUEST_PATH if (found := long_functions(ROOT / rel))}
    assert not offenders, f"functions over {MAX_LINES} lines on the request path: {offenders}"


def test_no_evm_method_name_in_the_gateway() -> None:
    offenders = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if found := evm_names(path):
            offenders[rel] = found
    assert not offenders, f"EVM method names in gateway/ (belong in rollups/): {offenders}"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The checks bite: a long function and an EVM name in a comment are both found."""
    sample = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    sample.write_text(f"def f() -> None:\n{body}\n# eth_blockNumber floors\n", encoding="utf-8")
    assert long_functions(sample) == [f"f ({MAX_LINES + 1})"]
    assert evm_names(sample) == [f"{MAX_LINES + 2}: eth_blockNumber"]
    assert not long_functions(sample, limit=MAX_LINES + 1)
