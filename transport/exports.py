"""Lazy re-exports for the server packages' ``__init__`` (the gateway's and the relayer's).

A package that re-exports its composition root would load the whole server on any import of
one of its modules (a CLI command reading a key file, a config model). Each name is imported
from its home module on first use instead."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``homes`` maps each exported name to the
    module that defines it."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return __getattr__
