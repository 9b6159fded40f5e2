"""A sweep's numbers at a glance: one row per point, the grid values, then throughput and
latency (mean, p99) with their 95% CI half-widths and theory where the sweep has it.

What ``simq sweep`` prints at the end and what a notebook shows for a ``SweepResult``;
the full table is ``aggregated.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simq import terminal
from simq.run import html_table

if TYPE_CHECKING:
    from rich.console import RenderableType

    from simq.sweep.store import SweepResult

__all__ = ["WIDTH", "format_table", "grid_headers", "html", "table_cells", "table_view"]

WIDTH = terminal.WIDTH  # what a terminal shows without wrapping

# (aggregated column, header, digits); a ``.ci95`` column follows each measured one.
MEASURED = [("throughput", "throughput/s", 4), ("latency.mean", "latency mean s", 4),
            ("latency.p99", "latency p99 s", 4)]
# The theory column printed after a measured one, when some point has it.
THEORY = {"throughput": "theory.throughput", "latency.mean": "theory.latency_mean"}


def grid_headers(paths: Sequence[str]) -> list[str]:
    """Readable headers of the grid columns: the last part of each path (``rate``), with the
    component (``rate (app)``) where two paths end alike, ``run.until`` as ``until``."""
    last = [p.rsplit(".", 1)[-1] for p in paths]
    out = []
    for p, name in zip(paths, last, strict=True):
        if last.count(name) > 1:
            parts = p.split(".")
            where = parts[1] if len(parts) > 2 else parts[0]
            name = f"{name} ({where})"
        out.append(name)
    return out


def _number(x: Any, digits: int) -> str:
    from simq.analysis.compare import format_number  # pandas: loaded with the table anyway

    if isinstance(x, float) and math.isfinite(x) and not 1e4 <= abs(x) < 1e12:
        return f"{x:.{digits}g}"
    return format_number(x, digits)


def _has(agg: Any, column: str) -> bool:
    return column in agg.columns and bool(agg[column].notna().any())


def table_cells(res: SweepResult) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the table, as text cells: each measured value and its
    half-width as :func:`simq.analysis.compare.format_estimate` rounds them."""
    from simq.analysis.compare import format_estimate

    agg = res.aggregated
    paths = [p for p in res.paths if p in agg.columns]
    header = grid_headers(paths)
    columns: list[tuple[str, int]] = [(p, 4) for p in paths]
    for col, name, digits in MEASURED:
        if col not in agg.columns:
            continue
        header += [name, "±95%"]
        columns += [(col, digits), (f"{col}.ci95", 0)]
        theory = THEORY.get(col)
        if theory is not None and _has(agg, theory):
            header.append("theory")
            columns.append((theory, 4))
    errors = _has(agg, "errors") and bool((agg["errors"] > 0).any())
    if errors:
        header.append("failed")
        columns.append(("errors", 0))
    rows = []
    for rec in agg.to_dict("records"):
        cells = []
        for i, (col, digits) in enumerate(columns):
            x = rec.get(col, math.nan)
            if col == "errors":
                cells.append(str(int(x)))
            elif col.endswith(".ci95"):
                cells[-1], half = format_estimate(rec.get(columns[i - 1][0], math.nan), x)
                cells.append(half)
            else:
                cells.append(_number(x, digits))
        rows.append(cells)
    return header, rows


def table_view(res: SweepResult) -> RenderableType:
    """The table as a rich renderable (numbers to the right)."""
    header, rows = table_cells(res)
    if not rows:
        return terminal.line("no points finished")
    return terminal.table(header, rows)


def format_table(res: SweepResult) -> str:
    """The table as plain text, :data:`WIDTH` columns wide (what ``simq sweep`` prints)."""
    return terminal.plain(table_view(res), width=WIDTH)


def html(res: SweepResult) -> str:
    """The table as an HTML fragment, with the sweep's name and size above it."""
    from html import escape

    header, rows = table_cells(res)
    spec = res.spec
    title = (f"<p><b>sweep {escape(str(spec['scenario'].get('name', '')))}</b>: "
             f"{len(res.aggregated)} points x {escape(str(spec['replications']))} "
             f"replications, seed {escape(str(spec.get('seed')))}; "
             f"<code>{escape(str(res.folder))}</code></p>")
    return f"<div>{title}{html_table(header, rows)}</div>"
