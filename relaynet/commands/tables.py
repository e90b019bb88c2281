"""Tables for every command that prints rows: a title and a header, drawn by ``rich``.

On a terminal the table fits the window; piped or captured, it is drawn wide (no folded
cells), so scripts and tests see whole values.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_checks", "print_table", "render_table"]

_PIPED_WIDTH = 240


def print_table(title: str, *args: Any, **kwargs: Any) -> None:
    """Print :func:`render_table`'s text: ``rows`` under a ``title`` line and a header."""
    sys.stdout.write(render_table(title, *args, **kwargs))
    sys.stdout.flush()


def render_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Sequence[str] = (),
    caption: str | None = None,
) -> str:
    """``rows`` under a ``title`` line and a header of ``columns`` (``right``: the columns
    aligned right, numbers), ``caption`` under the table; fitted to the terminal when stdout
    is one."""
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else _PIPED_WIDTH
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, highlight=False, color_system=None)
    table = Table(
        title=Text(title),
        title_justify="left",
        caption=None if caption is None else Text(caption),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=not tty)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    console.print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def print_checks(title: str, checks: Iterable[Any]) -> bool:
    """A ✓/✗ list (``checks``: objects with ``ok``, ``what``, ``detail``); True when all pass."""
    console = Console(
        highlight=False, width=None if sys.stdout.isatty() else _PIPED_WIDTH, soft_wrap=True
    )
    console.print(Text(title, style="bold"))
    ok = True
    for check in checks:
        ok = ok and check.ok
        mark = Text("✓ ", style="green") if check.ok else Text("✗ ", style="red")
        console.print(mark + Text(f"{check.what}: ", style="bold") + Text(check.detail))
    return ok
