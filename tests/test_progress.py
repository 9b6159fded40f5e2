"""Progress while a run goes, the sweep's table at the end, and results shown in notebooks."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import simq
from simq.analysis.compare import format_estimate, format_number
from simq.cli import main
from simq.sweep import SweepResult, format_table
from simq.sweep.table import WIDTH, grid_headers

ROOT = Path(__file__).resolve().parent.parent
MM1 = str(ROOT / "models" / "mm1.yaml")
SHORT = {"run.until": 800, "run.warmup": 50}


def _same(a: simq.RunResult, b: simq.RunResult) -> None:
    # Through JSON: NaN compares equal to NaN there, and every float is written exactly.
    assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)


@pytest.mark.parametrize("overrides", [
    {**SHORT, "run.engine": "simpy"},
    {"run.until": None, "run.messages": 600, "run.warmup": 50, "run.engine": "simpy"},
    {**SHORT, "run.records": "summary"},
    {**SHORT, "run.records": "summary", "run.warmup": "auto"},  # two passes per replication
], ids=["until", "messages", "streaming", "streaming-auto-warmup"])
def test_progress_changes_no_number_and_goes_forward_to_one(overrides: dict[str, Any]) -> None:
    seen: list[float] = []
    with_bar = simq.run(MM1, seed=3, replications=2, overrides=overrides,
                        progress=seen.append)
    without = simq.run(MM1, seed=3, replications=2, overrides=overrides)
    _same(with_bar, without)
    assert len(seen) > 20  # called as the run goes, not only at the end
    assert seen[-1] == 1.0 and seen.count(1.0) == 1
    assert all(0.0 <= a <= b for a, b in zip(seen, seen[1:], strict=False))
    # Both replications report: the first half of the fractions, then the second.
    assert any(0.1 < x < 0.5 for x in seen) and any(0.5 < x < 0.9 for x in seen)


def test_the_fast_engine_reports_progress_per_replication_and_ends_at_one() -> None:
    seen: list[float] = []
    with_bar = simq.run(MM1, seed=3, replications=2, overrides=SHORT, progress=seen.append)
    assert with_bar.summary["engine"]["name"] == "fast"
    _same(with_bar, simq.run(MM1, seed=3, replications=2, overrides=SHORT))
    assert seen[-1] == 1.0 and seen.count(1.0) == 1
    assert all(0.0 <= a <= b for a, b in zip(seen, seen[1:], strict=False))
    assert any(0.0 < x < 0.5 for x in seen) and any(0.5 < x < 1.0 for x in seen)


class _Terminal(io.StringIO):
    """stderr as a terminal: where the bar is shown."""

    def isatty(self) -> bool:
        return True


def _cli(monkeypatch: pytest.MonkeyPatch, argv: list[str], tty: bool) -> tuple[int, str, str]:
    err = _Terminal() if tty else io.StringIO()
    out = io.StringIO()
    with monkeypatch.context() as m:
        m.setattr("sys.stderr", err)
        m.setattr("sys.stdout", out)
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _run_argv(out: Path, *extra: str) -> list[str]:
    return ["run", MM1, "--out", str(out), "--replications", "2", "--set", "run.until=800",
            "--set", "run.warmup=50", "--no-messages", *extra]


def _numbers(text: str) -> str:
    return text.split("\nwrote ")[0]  # everything before the folder's path


def test_simq_run_shows_a_bar_on_a_terminal_only(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, shown, err = _cli(monkeypatch, _run_argv(tmp_path / "a"), tty=True)
    assert code == 0
    assert "replication 1/2" in err and "replication 2/2" in err and "sim s" in err
    # Not a terminal (a pipe, a CI log): no bar, the same numbers.
    code, piped, err = _cli(monkeypatch, _run_argv(tmp_path / "b"), tty=False)
    assert code == 0 and "replication" not in err and "\r" not in err
    assert "simq: about" in err  # the estimate is still said
    assert _numbers(shown) == _numbers(piped)
    # --quiet on a terminal: no bar, no estimate, the same numbers on stdout.
    code, quiet, err = _cli(monkeypatch, _run_argv(tmp_path / "c", "--quiet"), tty=True)
    assert code == 0 and err == ""
    assert _numbers(quiet) == _numbers(shown)


def test_simq_validate_shows_a_bar_over_cases_not_lines(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    argv = ["validate", "--only", "M/M/1 rho=0.3", "--jobs", "1"]
    code, out, err = _cli(monkeypatch, [*argv, "--out", str(tmp_path / "a")], tty=True)
    assert code == 0
    assert "validate" in err and "case" in err and "done:" not in err
    assert "M/M/1 rho=0.3" in out and "Pass rule" in out  # the table stays
    code, _, err = _cli(monkeypatch, [*argv, "--out", str(tmp_path / "b"), "--quiet"],
                        tty=True)
    assert code == 0 and err == ""


def test_run_suite_reports_cases_done_out_of_total() -> None:
    from simq.validate import run_suite

    calls: list[tuple[int, int, str | None]] = []
    run_suite(jobs=1, only="M/M/1 rho=0.3", progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 1, None)
    assert calls[1:] == [(1, 1, "M/M/1 rho=0.3")]


# The sweep's table ------------------------------------------------------------------

def _sweep(grid: dict[str, list[Any]], rows: list[dict[str, Any]]) -> SweepResult:
    """A sweep result made by hand: the table's rules without running anything."""
    agg = pd.DataFrame(rows)
    spec = {"scenario": {"name": "made"}, "grid": grid, "replications": 3, "seed": 1}
    return SweepResult(Path("runs/made-sweep"), pd.DataFrame(), agg, spec)


def _row(**values: float) -> dict[str, Any]:
    row: dict[str, Any] = {"point": 0, "replications": 3, "errors": 0,
                           "throughput": 0.123456, "throughput.ci95": 0.0123456,
                           "latency.mean": 12.3456789, "latency.mean.ci95": 1.23456,
                           "latency.p99": 1234.5678, "latency.p99.ci95": 98.7654,
                           "theory.throughput": math.nan, "theory.latency_mean": math.nan}
    row.update(values)
    return row


def test_the_sweep_table_has_readable_headers_rounded_numbers_and_fits() -> None:
    grid = {"producers.app.rate": [0.1, 0.2], "consumers.worker.count": [1, 2]}
    res = _sweep(grid, [_row(**{"producers.app.rate": 0.1, "consumers.worker.count": 1}),
                        _row(**{"producers.app.rate": 0.2, "consumers.worker.count": 2})])
    text = format_table(res)
    lines = text.splitlines()
    assert len(lines) == 3
    assert all(len(line) <= WIDTH for line in lines)
    header = lines[0].split()
    assert "rate" in header and "count" in header and "producers.app.rate" not in text
    assert "throughput/s" in header and "theory" not in header  # no point has theory
    # Each value to the decimal place of its half-width's second significant digit.
    cells = lines[1].split()
    assert cells[2:4] == ["0.123", "0.012"] and cells[4:6] == ["12.3", "1.2"]
    assert cells[6:8] == ["1,235", "99"]


def test_the_sweep_table_shows_theory_and_failures_where_there_are_some() -> None:
    grid = {"producers.app.rate": [0.5, 0.9]}
    res = _sweep(grid, [_row(**{"producers.app.rate": 0.5, "theory.latency_mean": 2.0}),
                        _row(**{"producers.app.rate": 0.9, "errors": 2,
                                "throughput": math.nan})])
    lines = format_table(res).splitlines()
    assert lines[0].split().count("theory") == 1 and "failed" in lines[0]
    assert lines[2].split()[1] == "-" and lines[2].split()[-1] == "2"


def test_grid_headers_say_which_component_when_two_paths_end_alike() -> None:
    assert grid_headers(["producers.a.rate", "producers.b.rate", "run.until"]) == [
        "rate (a)", "rate (b)", "until"]


def test_simq_sweep_prints_its_numbers_unless_quiet(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["sweep", MM1, "--grid", "producers.app.rate=0.3,0.6", "--replications", "2",
            "--set", "run.until=600", "--set", "run.warmup=50", "--executor", "serial"]
    code, out, _ = _cli(monkeypatch, [*argv, "--out", str(tmp_path / "a")], tty=False)
    assert code == 0
    agg = pd.read_csv(tmp_path / "a" / "aggregated.csv")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["rate", "throughput/s"] and "theory" in lines[0]
    for line, (_, point) in zip(lines[1:3], agg.iterrows(), strict=True):
        for col in ("throughput", "latency.p99"):
            value, half = format_estimate(point[col], point[f"{col}.ci95"])
            assert f" {value}  " in line and f" {half} " in f"{line} "
    assert all(len(line) <= WIDTH for line in lines[:3])
    assert lines[3] == "" and lines[4].startswith("wrote ")
    code, out, _ = _cli(monkeypatch, [*argv, "--out", str(tmp_path / "b"), "--quiet"],
                        tty=False)
    assert code == 0 and out == ""


# Notebooks ---------------------------------------------------------------------------

class _Checked(HTMLParser):
    """Parses an HTML fragment, checking every element is closed in order; keeps the text."""

    VOID = {"br", "hr", "img", "meta"}

    def __init__(self, text: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed: {self.open}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def result() -> simq.RunResult:
    return simq.run(MM1, seed=2, replications=2, overrides=SHORT)


def test_a_run_shows_its_numbers_in_a_notebook(result: simq.RunResult) -> None:
    page = _Checked(result._repr_html_())
    text = "\n".join(page.text)
    s = result.summary
    assert "mm1" in text and "seed 2" in text and "2 replications" in text
    for x in (s["throughput"], s["latency"]["mean"], s["latency"]["p50"], s["latency"]["p99"],
              s["consumers"]["worker"]["utilization"], s["ci95"]["throughput"]):
        assert format_number(x) in page.text
    # The comparison with the formulas and theory, one table row per quantity.
    table = simq.compare(result)
    assert page.tags.count("table") == 2
    assert all(q in page.text for q in table["quantity"])
    assert "within CI" in text or "outside CI" in text


def test_a_hostile_name_is_escaped(result: simq.RunResult) -> None:
    hostile = "<script>alert(1)</script>&"
    bad = dataclasses.replace(result, summary={**result.summary, "scenario": hostile,
                                               "warnings": [hostile]})
    fragment = bad._repr_html_()
    assert "<script>" not in fragment and "&lt;script&gt;" in fragment
    page = _Checked(fragment)
    assert "script" not in page.tags
    assert hostile in "".join(page.text)


def test_a_sweep_shows_its_table_in_a_notebook() -> None:
    grid = {"producers.app.rate": [0.5]}
    res = _sweep(grid, [_row(**{"producers.app.rate": 0.5, "theory.throughput": 0.5})])
    res.spec["scenario"]["name"] = "<b>made</b>"
    page = _Checked(res._repr_html_())
    assert page.tags.count("b") == 1 and "<b>made</b>" in "".join(page.text)
    assert "rate" in page.text and "throughput/s" in page.text
    assert "0.123" in page.text and "12.3" in page.text and "0.5" in page.text
