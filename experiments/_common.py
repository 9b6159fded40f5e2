"""What every experiment shares: its command line, a sweep into a scratch folder, and the
three files it leaves in ``results/<experiment>/`` (CSV tables, PNG figures, report.md).

An experiment is deterministic: fixed seeds, and ``simq.sweep`` gives the same numbers on
any executor. ``--quick`` runs a small version of the same sweep (a smoke test, not a
result); the committed results come from the full run.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import simq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@dataclass
class Options:
    out: Path
    quick: bool
    executor: str
    workers: int | None


def options(name: str, argv: Sequence[str] | None = None, doc: str | None = None) -> Options:
    """Parse ``[--out DIR] [--quick] [--executor E] [--workers N]``."""
    p = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=doc)
    p.add_argument("--out", type=Path, default=ROOT / "results" / name,
                   help=f"folder to write (default results/{name}/)")
    p.add_argument("--quick", action="store_true",
                   help="a small, fast version of the sweep (for smoke tests)")
    p.add_argument("--executor", default="processes", choices=["serial", "processes", "dask"])
    p.add_argument("--workers", type=int, default=None)
    a = p.parse_args(argv)
    return Options(a.out, a.quick, a.executor, a.workers)


def sweep(opts: Options, scenario: Any, grid: Mapping[str, Any], *, replications: int,
          overrides: Mapping[str, Any] | None = None, zip_paths: bool = False,
          seed: int = 1) -> pd.DataFrame:
    """The aggregated table of a sweep run in a scratch folder (the per-point files of a
    sweep are not results worth keeping; the table is)."""
    return sweep_tables(opts, scenario, grid, replications=replications,
                        overrides=overrides, zip_paths=zip_paths, seed=seed)[0]


def sweep_tables(opts: Options, scenario: Any, grid: Mapping[str, Any], *, replications: int,
                 overrides: Mapping[str, Any] | None = None, zip_paths: bool = False,
                 seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The aggregated and the tidy (one row per replication) tables of a sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        res = simq.sweep(scenario, grid, replications=replications, seed=seed,
                         overrides=overrides, executor=opts.executor, workers=opts.workers,
                         out=Path(tmp) / "sweep", zip_paths=zip_paths, quiet=True)
        errors = res.tidy["error"].dropna()
        if len(errors):
            raise RuntimeError(f"{len(errors)} sweep runs failed: {errors.iloc[0]}")
        return res.aggregated.copy(), res.tidy.copy()


def fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.{digits}g}"
    return str(x)


def md_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table of a small frame."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """The files of one experiment, written together by :meth:`write`."""

    title: str
    question: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text.strip())

    def write(self, opts: Options, command: str) -> Path:
        out = opts.out
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in self.tables.items():
            frame.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
        for name, fig in self.figures.items():
            fig.savefig(out / f"{name}.png", dpi=90, bbox_inches="tight")
        files = ", ".join([f"`{n}.csv`" for n in self.tables]
                          + [f"`{n}.png`" for n in self.figures])
        head = [f"# {self.title}", "", f"**Question.** {self.question}", "",
                f"Regenerate: `{command}`" + (" (this is a `--quick` run: a smoke test, "
                                               "not a result)" if opts.quick else ""),
                "", f"Files: {files}.", ""]
        body = "\n\n".join(self.sections)
        figs = "\n\n".join(f"![{n}]({n}.png)" for n in self.figures)
        text = "\n".join(head) + "\n" + body + "\n\n" + figs + "\n"
        (out / "report.md").write_text(text, encoding="utf-8")
        return out


def main_guard(fn: Any) -> None:
    """Run ``fn(argv)`` and exit with its status; a scenario error exits 2, as the CLI does."""
    try:
        sys.exit(fn(sys.argv[1:]))
    except simq.ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
