"""``simq validate``: canonical cases run through simq and checked against known answers.

Every check is judged by simq's one agreement rule, :func:`simq.analysis.stats.agreement`
(docs/theory.md, "When is agreement agreement?"): with R replications, mean m, standard
deviation s and theory θ, the check passes when

    |m − θ| <= t(1 − α/(2N), R − 1) · s / √R  +  a · |θ|

with α = 0.05 and N the number of checks in the suite (Bonferroni: if simq were exactly
right, the whole suite fails by chance at most 5% of the time), and ``a`` the allowance
for model bias: ``EXACT`` (1%) for exact results, ``APPROX`` (20%) for the Kingman and
Allen–Cunneen approximations. Referee checks (simq against Ciw) use the combined
interval sqrt(h_simq² + h_ciw²) in place of the half-width and the 1% allowance.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simq.analysis.compare import format_pm
from simq.analysis.stats import ALPHA, APPROX, EXACT, agreement, check_level, t_halfwidth
from simq.files import MARKER, OutputExistsError
from simq.validate.cases import Case, cases
from simq.validate.referee import RefereeCase, available, referee_cases

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["ALPHA", "COLUMNS", "ENGINES", "Suite", "case_names", "check_output", "format_table",
           "fresh_folder", "run_suite", "table_view", "write_outputs"]

# The group of the checks that set the fast engine's replications of a case beside the
# SimPy engine's, run from seeds this far from the case's.
ENGINES = "fast vs SimPy engine"
ENGINE_SEED = 1000

COLUMNS = ["case", "group", "quantity", "measured", "ci95", "theory", "theory_ci95", "model",
           "error", "tolerance", "pass"]


@dataclass
class Suite:
    """The table and how it was made."""

    table: pd.DataFrame
    thorough: bool
    checks: int
    level: float  # per-check confidence level after Bonferroni
    cpu_seconds: float
    wall_seconds: float
    skipped: list[str]
    only: str | None = None  # a partial suite: only the cases whose name holds this text

    @property
    def passed(self) -> bool:
        return bool(self.table["pass"].all())


def _values(reps: Sequence[Any], measure: Callable[[Any], float]) -> np.ndarray:
    return np.array([measure(r) for r in reps], dtype=float)


def _half95(x: np.ndarray) -> float:
    return t_halfwidth(x, 0.95) if np.all(np.isfinite(x)) else math.nan


def _run_case(case: Case, scale_reps: int, max_events: float | None = None) -> dict[str, Any]:
    from simq.run import run

    started = time.process_time()
    res = run(case.scenario, replications=case.replications * scale_reps,
              max_events=max_events)
    rows = []
    for chk in case.checks:
        rows.append({"case": case.name, "group": case.group, "quantity": chk.quantity,
                     "values": _values(res.replications, chk.measure), "theory": chk.theory,
                     "theory_values": None, "model": chk.model, "allowance": chk.allowance})
    if res.summary["engine"]["name"] == "fast":
        # The same case on the SimPy engine, from other seeds: two independent samples of
        # every checked quantity, judged like a referee (tests/test_fast.py checks that on
        # the same seed the two engines give the same records).
        other = run(case.scenario, replications=case.replications * scale_reps,
                    max_events=max_events,
                    overrides={"run.engine": "simpy", "run.seed": res.seed + ENGINE_SEED})
        for chk in case.checks:
            rows.append({"case": case.name, "group": ENGINES, "quantity": chk.quantity,
                         "values": _values(res.replications, chk.measure),
                         "theory": math.nan,
                         "theory_values": _values(other.replications, chk.measure),
                         "model": "SimPy engine", "allowance": EXACT})
    return {"rows": rows, "cpu": time.process_time() - started}


def _run_referee(case: RefereeCase, scale_reps: int,
                 max_events: float | None = None) -> dict[str, Any]:
    from simq.run import run

    started = time.process_time()
    reps = case.replications * scale_reps
    res = run(case.scenario, replications=reps, max_events=max_events)
    until = float(case.scenario["run"]["until"])
    warmup = float(case.scenario["run"]["warmup"])
    seed = int(case.scenario["run"]["seed"])
    ciw = [case.ciw_run(seed * 1000 + r, until, warmup) for r in range(reps)]
    rows = []
    for q, measure in case.measures.items():
        rows.append({"case": case.name, "group": "referee (Ciw)", "quantity": q,
                     "values": _values(res.replications, measure), "theory": math.nan,
                     "theory_values": np.array([c[q] for c in ciw]), "model": case.model,
                     "allowance": EXACT})
    return {"rows": rows, "cpu": time.process_time() - started}


def _run_index(kind: str, index: int, scale: float, scale_reps: int,
               max_events: float | None = None) -> dict[str, Any]:
    # Cases hold closures, which do not pickle: a worker rebuilds the list and picks one.
    if kind == "case":
        return _run_case(cases(scale)[index], scale_reps, max_events)
    return _run_referee(referee_cases(scale / 2)[index], scale_reps, max_events)


def _judge(row: dict[str, Any], checks: int) -> dict[str, Any]:
    x = row["values"]
    ref = row["theory_values"]
    ok = agreement(x, row["theory"], checks=checks, allowance=row["allowance"],
                   reference=ref)
    m, theory = ok.measured, ok.theory
    err = (m - theory) / abs(theory) if theory else math.nan
    return {"case": row["case"], "group": row["group"], "quantity": row["quantity"],
            "measured": m, "ci95": _half95(x), "theory": theory,
            "theory_ci95": math.nan if ref is None else _half95(ref),
            "model": row["model"], "error": err, "tolerance": ok.margin, "pass": ok.ok}


def case_names(thorough: bool = False) -> list[str]:
    """Names of every case the suite would run (referee cases included)."""
    scale = 4.0 if thorough else 1.0
    return [c.name for c in cases(scale)] + [r.name for r in referee_cases(scale / 2)]


def run_suite(*, thorough: bool = False, jobs: int | None = None,
              only: str | None = None,
              progress: Callable[[int, int, str | None], None] | None = None,
              max_events: float | None = None) -> Suite:
    """Run the built-in cases (and, if Ciw is installed, the referee cases); each run is
    refused above ``max_events`` (default: its ``run.max_events``).

    ``progress(done, total, name)`` is called with ``(0, total, None)`` before the first
    case and with the number of cases done and the last one's name after each."""
    scale, scale_reps = (4.0, 2) if thorough else (1.0, 1)
    wall = time.perf_counter()
    todo: list[tuple[str, int, Any]] = [("case", i, c) for i, c in enumerate(cases(scale))]
    skipped: list[str] = []
    refs = referee_cases(scale / 2)
    if available():
        # Short referee runs are part of the tests; the suite runs them when thorough.
        if thorough:
            todo += [("referee", i, r) for i, r in enumerate(refs)]
        else:
            skipped += [f"{r.name} (run with --thorough)" for r in refs]
    else:
        skipped += [f"{r.name} (Ciw is not installed: pip install -e '.[dev]')" for r in refs]
    if only:
        todo = [t for t in todo if only.lower() in t[2].name.lower()]
        skipped = [x for x in skipped if only.lower() in x.lower()]
    jobs = jobs or min(2, os.cpu_count() or 1)
    results: list[dict[str, Any]] = []
    if progress:
        progress(0, len(todo), None)
    if jobs == 1:
        for kind, i, c in todo:
            results.append(_run_index(kind, i, scale, scale_reps, max_events))
            if progress:
                progress(len(results), len(todo), c.name)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_index, k, i, scale, scale_reps, max_events)
                       for k, i, _ in todo]
            for (_, _, c), fut in zip(todo, futures, strict=True):
                results.append(fut.result())
                if progress:
                    progress(len(results), len(todo), c.name)
    rows = [r for res in results for r in res["rows"]]
    n = max(1, len(rows))
    level = check_level(1 - ALPHA, n)
    table = pd.DataFrame([_judge(r, n) for r in rows], columns=COLUMNS)
    return Suite(table, thorough, n, level, sum(r["cpu"] for r in results),
                 time.perf_counter() - wall, skipped, only or None)


def _rows(suite: Suite) -> list[list[str]]:
    out = []
    for r in suite.table.to_dict("records"):
        err = "-" if not math.isfinite(r["error"]) else f"{100 * r['error']:+.2f}%"
        out.append([r["case"], r["quantity"], format_pm(r["measured"], r["ci95"]),
                    format_pm(r["theory"], r["theory_ci95"]), r["model"], err,
                    "pass" if bool(r["pass"]) else "FAIL"])
    return out


HEADER = ["case", "quantity", "measured ± 95% CI", "theory", "model", "error", "pass"]


def footer(suite: Suite) -> list[str]:
    fails = int((~suite.table["pass"]).sum())
    cases_n = suite.table["case"].nunique()
    return [
        f"{len(suite.table)} checks in {cases_n} cases: "
        f"{len(suite.table) - fails} pass, {fails} fail"
        f" ({'thorough' if suite.thorough else 'default'} suite, "
        f"{suite.cpu_seconds:.0f} s CPU, {suite.wall_seconds:.0f} s wall).",
        f"Pass rule (simq's agreement rule, docs/theory.md \"When is agreement agreement?\"): "
        f"|measured − theory| ≤ the {100 * suite.level:.3f}% Student-t half-width "
        f"over the replications (Bonferroni: 5% over {suite.checks} checks) + an allowance of "
        f"{100 * EXACT:g}% of theory for exact results, {100 * APPROX:g}% for Kingman and "
        "Allen–Cunneen. "
        "For Ciw referee rows the theory column is Ciw's mean ± 95% CI and the interval "
        "combines both simulators' half-widths.",
        *[f"Skipped: {s}" for s in suite.skipped],
    ]


def table_view(suite: Suite) -> RenderableType:
    """The suite as a rich renderable: the table (pass/FAIL coloured), then the footer."""
    from rich.console import Group

    from simq import terminal

    return Group(terminal.table(HEADER, _rows(suite), verdicts=("pass",)), terminal.line(""),
                 *[terminal.line(x) for x in footer(suite)])


def format_table(suite: Suite) -> str:
    """The suite as plain text (what ``simq validate`` prints, without colour)."""
    from simq import terminal

    return terminal.plain(table_view(suite))


def markdown(suite: Suite) -> str:
    """The suite as a Markdown table with the pass rule underneath."""
    esc = [[c.replace("|", "\\|") for c in r] for r in _rows(suite)]
    lines = ["# simq validation", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    lines += ["", *[f"{x}  " for x in footer(suite)]]
    return "\n".join(lines) + "\n"


def fresh_folder(parent: str | Path = "runs") -> Path:
    """A new, empty ``parent/validation-<date>-<time>[-N]/`` (created, never reused)."""
    base = Path(parent) / time.strftime("validation-%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder
    raise OutputExistsError(f"{base}: a thousand folders of that name already exist")


def _holds_full_suite(folder: Path) -> bool:
    if not (folder / "validation.csv").is_file():
        return False
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = {}
    # Tables written before partial runs were recorded (the committed one) are full.
    return not (isinstance(marker, dict) and marker.get("partial"))


def check_output(out: str | Path, *, partial: bool, force: bool = False) -> None:
    """Refuse to write a validation where it would replace something it should not.

    A non-empty folder is written into only with ``force``: a validation table is usually a
    result someone keeps (the committed one in results/validation/ above all). A partial
    suite never replaces a full suite's table, even with ``force``: the folder would then
    pair a few checks with a figure and report describing all of them.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder}: exists and is not a folder")
    if partial and folder.is_dir() and _holds_full_suite(folder):
        raise OutputExistsError(
            f"{folder}: holds a full validation; a partial run (--only) does not replace "
            "it, even with --force: choose another --out or leave --out out")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise OutputExistsError(
            f"{folder}: folder is not empty; choose another --out, leave --out out "
            "(a fresh folder under runs/), or pass --force to replace its validation")


# What a validation writes; anything else in its folder (a figure, a report written
# beside the committed table) is kept when a new validation replaces these.
VALIDATION_FILES = frozenset({"validation.csv", "validation.md"})


def write_outputs(suite: Suite, out: str | Path, *, force: bool = False) -> Path:
    """Write validation.csv and validation.md into ``out`` (see ``check_output``).

    Both are written into a temporary folder beside ``out`` and moved in together when
    complete (:func:`simq.files.staged_dir`): a killed validation never leaves a table
    beside the other file of an earlier one, and another simq process writing into ``out``
    is refused."""
    from simq.files import staged_dir
    from simq.report import write_atomic

    check_output(out, partial=suite.only is not None, force=force)
    with staged_dir(out, "validate", VALIDATION_FILES, force=True,
                    meta={"partial": suite.only is not None, "only": suite.only}) as folder:
        csv = suite.table.to_csv(index=False, float_format="%.6g")
        write_atomic(folder / "validation.csv", csv)
        write_atomic(folder / "validation.md", markdown(suite))
    return Path(out)
