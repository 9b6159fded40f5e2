"""What the terminal shows: tables and lines drawn with rich, as plain text or in colour.

Every table simq prints (the run summary, the sweep table, the validation, the list of
models) is built here from text cells, so that they look alike and fit the terminal: on a
terminal rich folds the columns to its width and colours the verdicts; anywhere else (a
pipe, a log, report.md, the README's samples, the tests) the same tables are plain text,
:data:`WIDTH` columns wide, without a single escape code.

rich is imported inside the functions: ``import simq`` and ``simq --version`` never load it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

__all__ = ["VERDICTS", "WIDTH", "console", "is_number", "line", "pairs", "plain", "show",
           "table", "verbatim"]

WIDTH = 100  # the width of plain text: what a terminal shows without wrapping

# The colour of each verdict, wherever a table has a verdict column (shown only on a
# terminal): a formula holds yes/no, a measure agrees with theory (within CI) or not
# (outside CI), a validation check passes or FAILs.
VERDICTS = {"yes": "green", "no": "red", "within CI": "green", "outside CI": "bold red",
            "pass": "green", "FAIL": "bold red"}


def is_number(cell: str) -> bool:
    """Whether a cell reads as a number (``1,234``, ``-0.5%``, ``0.80 ± 0.01``, ``inf``,
    ``-``): such columns line up on the right, words on the left."""
    for part in cell.split(" ± "):
        part = part.strip().replace(",", "").rstrip("%").lstrip("+")
        if part in {"-", "inf", "-inf"}:
            continue
        try:
            float(part)
        except ValueError:
            return False
    return True


def _text(cell: str, style: str = "") -> Text:
    from rich.text import Text

    return Text(cell, style=style)  # never markup: a name may hold brackets


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
          verdicts: Iterable[str] = ()) -> Table:
    """A table of text cells: numbers to the right, words to the left; the cells of the
    columns named in ``verdicts`` coloured by :data:`VERDICTS`."""
    from rich.table import Table

    coloured = set(verdicts)
    t = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold",
              show_edge=False)
    for i, name in enumerate(header):
        cells = [r[i] for r in rows]
        numeric = bool(cells) and all(is_number(c) for c in cells)
        t.add_column(name, justify="right" if numeric else "left",
                     overflow="fold", no_wrap=numeric)
    for r in rows:
        t.add_row(*(_text(c, VERDICTS.get(c, "") if h in coloured else "")
                    for h, c in zip(header, r, strict=True)))
    return t


def line(text: str, style: str = "") -> Text:
    """One line of text (folded at the width, never read as markup)."""
    return _text(text, style)


def verbatim(text: str) -> Text:
    """Text laid out already (a table another layer aligned), printed as it is: never
    folded, a verdict ending a line coloured by :data:`VERDICTS`."""
    import re

    from rich.text import Text

    out = Text(text, no_wrap=True, overflow="ignore")
    for word, style in VERDICTS.items():
        out.highlight_regex(rf"(?m)(?<=  ){re.escape(word)}$", style)
    return out


def pairs(rows: Sequence[tuple[str, Sequence[str]]]) -> Table:
    """Labelled lines of ``name value`` items (``messages  produced 4,012  delivered ...``):
    the items flow into aligned columns and wrap between items, never inside one."""
    from rich.columns import Columns
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for label, items in rows:
        grid.add_row(label, Columns([_text(x) for x in items], padding=(0, 2)))
    return grid


def console(file: IO[str] | None = None) -> Console:
    """A console on ``file`` (stdout by default): the terminal's width and colour on a
    terminal, plain :data:`WIDTH`-column text anywhere else."""
    from rich.console import Console

    out = file if file is not None else sys.stdout
    tty = out.isatty()
    return Console(file=out, width=None if tty else WIDTH,
                   color_system="auto" if tty else None, force_terminal=tty or None,
                   highlight=False, markup=False, emoji=False, soft_wrap=False)


def plain(*parts: RenderableType, width: int = WIDTH) -> str:
    """The parts as plain text ``width`` columns wide (no escape codes, no trailing
    spaces), one blank line between parts."""
    from rich.console import Console

    buf = io.StringIO()
    out = Console(file=buf, width=width, color_system=None, force_terminal=False,
                  highlight=False, markup=False, emoji=False, soft_wrap=False)
    _print(out, parts)
    return "\n".join(x.rstrip() for x in buf.getvalue().splitlines())


def show(*parts: RenderableType, file: IO[str] | None = None) -> None:
    """Print the parts, one blank line between parts: through :func:`console` on a
    terminal, else exactly as :func:`plain` writes them."""
    dest = file if file is not None else sys.stdout
    if not dest.isatty():
        print(plain(*parts), file=dest)
        return
    _print(console(dest), parts)


def _print(out: Console, parts: Sequence[RenderableType]) -> None:
    from rich.text import Text

    for i, part in enumerate(parts):
        if i:
            out.print()
        # Verbatim text keeps its lines whatever the width: soft wrap neither folds nor crops.
        out.print(part, soft_wrap=isinstance(part, Text) and bool(part.no_wrap))
