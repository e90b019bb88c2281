"""The relayer as its interfaces say: the handlers know the stages only by their Protocols,
the concrete stages satisfy them, and the request path reads in short functions."""

from __future__ import annotations

import ast
from pathlib import Path

from relayer import interfaces
from tests.test_import_graph import ROOT, imports_of, module_files

#: The modules a relay passes through, from the socket to the log.
REQUEST_PATH = (
    "relayer/server.py",
    "relayer/websocket.py",
    "relayer/interfaces.py",
    "relayer/verify.py",
    "relayer/pricing.py",
    "relayer/budget.py",
    "relayer/backend.py",
    "relayer/recorder.py",
    "relayer/relaylog.py",
    "transport/http1.py",
)
#: "No function over ~60 lines on the request path" (issue 13).
MAX_LINES = 60
#: The concrete stages, built only by the composition root.
CONCRETE = {"relayer.verify", "relayer.recorder", "relayer.backend", "relayer.relaylog"}


def test_handlers_import_the_stages_only_through_interfaces() -> None:
    modules = module_files(["relayer"])
    for handler in ("relayer.server", "relayer.websocket"):
        found = imports_of(handler, modules[handler], modules)
        assert "relayer.interfaces" in found
        assert not found & CONCRETE, f"{handler} imports {sorted(found & CONCRETE)}"


def test_the_concrete_stages_are_what_the_protocols_describe() -> None:
    """Every method a Protocol declares exists on its implementation with the same
    parameters (mypy checks the types; this catches a Protocol that drifted into fiction)."""
    import inspect

    from relayer.backend import AiohttpTransport, Http1Transport, MockTransport
    from relayer.pricing import SpecPricing
    from relayer.recorder import Recorder
    from relayer.verify import Verifier

    pairs = [
        (interfaces.RelayVerifier, Verifier),
        (interfaces.RelayRecorder, Recorder),
        (interfaces.PricingPolicy, SpecPricing),
        (interfaces.BackendTransport, Http1Transport),
        (interfaces.BackendTransport, AiohttpTransport),
        (interfaces.BackendTransport, MockTransport),
    ]
    for protocol, impl in pairs:
        for name, member in vars(protocol).items():
            if name.startswith("_") or not callable(member):
                continue
            assert hasattr(impl, name), f"{impl.__name__} lacks {protocol.__name__}.{name}"
            wanted = list(inspect.signature(member).parameters)
            got = list(inspect.signature(getattr(impl, name)).parameters)
            assert got == wanted, f"{impl.__name__}.{name}{got} vs {protocol.__name__}{wanted}"


def test_no_long_function_on_the_request_path() -> None:
    long = []
    for rel in REQUEST_PATH:
        tree = ast.parse(Path(ROOT / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{rel}::{node.name} ({lines} lines)")
    assert not long, long


def test_no_hand_built_leaf_layout_in_the_relayer() -> None:
    """Leaf offsets come from ``protocol.relay`` (``encode_leaf``, ``leaf_compute_units``,
    ``LEAF_SIZE``): no numeric slice of a leaf and no literal 326 in ``relayer/``."""
    found = []
    for path in sorted((ROOT / "relayer").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == 326:
                found.append(f"{path.name}:{node.lineno} 326")
            if isinstance(node, ast.Subscript) and "leaf" in ast.unparse(node.value).lower():
                if any(isinstance(n, ast.Constant) for n in ast.walk(node.slice)):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "slice":
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not found, found
