"""Sweeps: grid syntax, seeding, executors giving identical tables, resume, failures."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simq
from simq import theory
from simq.analysis.stats import mean_ci
from simq.cli import main
from simq.files import OutputExistsError
from simq.sweep import grid_points, parse_values, read_sweep, sweep

ROOT = Path(__file__).resolve().parent.parent
MM1 = ROOT / "models" / "mm1.yaml"


def small() -> simq.Scenario:
    return simq.load(MM1).with_overrides({"run.until": 1500, "run.warmup": 150})


GRID = {"producers.app.rate": [0.3, 0.6, 0.9]}


# Grid syntax ---------------------------------------------------------------------------

def test_values_list_range_and_log_range() -> None:
    assert parse_values("p", "0.1,0.5,0.9") == [0.1, 0.5, 0.9]
    assert parse_values("p", "0.1:0.9:5") == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert parse_values("p", "1:4:4") == [1, 2, 3, 4]
    assert all(isinstance(v, int) for v in parse_values("p", "1:4:4"))
    assert parse_values("p", "log:1:1000:4") == [1, 10, 100, 1000]
    assert parse_values("p", "log:0.01:1:3") == [0.01, 0.1, 1.0]
    assert parse_values("p", ".inf,5") == [float("inf"), 5]


@pytest.mark.parametrize("text", ["", "0.1:0.9:0", "log:0:10:3"])
def test_bad_values_name_the_path(text: str) -> None:
    with pytest.raises(simq.ScenarioError, match="producers.app.rate"):
        parse_values("producers.app.rate", text)


def test_factorial_and_zip() -> None:
    pts = grid_points({"a.b.c": [1, 2], "d.e.f": [3, 4, 5]})
    assert len(pts) == 6
    assert pts[0] == {"a.b.c": 1, "d.e.f": 3} and pts[1] == {"a.b.c": 1, "d.e.f": 4}
    assert grid_points({"a.b.c": [1, 2], "d.e.f": [3, 4]}, zip_paths=True) == [
        {"a.b.c": 1, "d.e.f": 3}, {"a.b.c": 2, "d.e.f": 4}]
    with pytest.raises(simq.ScenarioError, match="same number"):
        grid_points({"a.b.c": [1, 2], "d.e.f": [3]}, zip_paths=True)


def test_a_bad_point_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(simq.ScenarioError, match="consumers.worker.count"):
        sweep(small(), {"consumers.worker.count": [1, 0]}, executor="serial",
              out=tmp_path / "s", quiet=True)
    assert not (tmp_path / "s" / "points").exists() or not any(
        (tmp_path / "s" / "points").iterdir())


# Tables and seeding --------------------------------------------------------------------

def test_tables_have_a_row_per_run_and_per_point(tmp_path: Path) -> None:
    res = sweep(small(), GRID, replications=3, executor="serial", out=tmp_path / "s",
                quiet=True)
    assert len(res.tidy) == 9 and len(res.aggregated) == 3
    assert {"latency.mean", "throughput", "queues.broker.length_mean",
            "consumers.worker.utilization", "theory.latency_mean"} <= set(res.tidy.columns)
    # The aggregated row is the mean and t half-width of its replications.
    g = res.tidy[res.tidy["point"] == 1]["latency.mean"]
    m, h = mean_ci(g.to_numpy())
    row = res.aggregated.iloc[1]
    assert row["latency.mean"] == pytest.approx(m) and row["latency.mean.ci95"] == pytest.approx(h)
    # Theory column: M/M/1 sojourn time 1 / (mu - lambda) at each point.
    for _, r in res.aggregated.iterrows():
        lam = r["producers.app.rate"]
        assert r["theory.latency_mean"] == pytest.approx(theory.mm1(lam, 1.0).sojourn_mean)
        assert r["nominal.load"] == pytest.approx(lam)
    for name in ("tidy.parquet", "tidy.csv", "aggregated.parquet", "aggregated.csv",
                 "sweep.json", "scenario.yaml"):
        assert (tmp_path / "s" / name).is_file()
    spec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert spec["seed"] == 1 and spec["replications"] == 3 and spec["simq"] == simq.__version__
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s" / "tidy.parquet"), res.tidy)


def test_points_get_distinct_streams_unless_common_random_numbers(tmp_path: Path) -> None:
    same = {"producers.app.rate": [0.5, 0.5]}
    plain = sweep(small(), same, replications=1, executor="serial", out=tmp_path / "a",
                  quiet=True).tidy
    assert plain["latency.mean"].iloc[0] != plain["latency.mean"].iloc[1]
    crn = sweep(small(), same, replications=2, executor="serial", out=tmp_path / "b",
                quiet=True, common_random_numbers=True).tidy
    a, b = crn[crn["point"] == 0], crn[crn["point"] == 1]
    np.testing.assert_array_equal(a["latency.mean"], b["latency.mean"])
    # With common random numbers, replication r is simq.run's replication r.
    ref = simq.run(small().with_overrides({"producers.app.rate": 0.5}), replications=2)
    assert a["latency.mean"].mean() == pytest.approx(ref.summary["latency"]["mean"])


def test_serial_and_processes_give_identical_tables(tmp_path: Path) -> None:
    kw = dict(replications=2, out=None, quiet=True)
    serial = sweep(small(), GRID, executor="serial", **{**kw, "out": tmp_path / "s"})
    procs = sweep(small(), GRID, executor="processes", workers=2,
                  **{**kw, "out": tmp_path / "p"})
    cols = [c for c in serial.tidy.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(serial.tidy[cols], procs.tidy[cols])
    pd.testing.assert_frame_equal(serial.aggregated, procs.aggregated)


def test_dask_local_cluster_gives_the_same_table(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    serial = sweep(small(), GRID, replications=1, executor="serial", out=tmp_path / "s",
                   quiet=True)
    dask = sweep(small(), GRID, replications=1, executor="dask", workers=2,
                 out=tmp_path / "d", quiet=True)
    cols = [c for c in serial.tidy.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(serial.tidy[cols], dask.tidy[cols])


# Failures, resume, folders ---------------------------------------------------------------

def test_a_failing_run_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sw = importlib.import_module("simq.sweep")

    real = sw.run_replication

    def flaky(sc, seed, index, *, point=None):  # type: ignore[no-untyped-def]
        if point == 1:
            raise RuntimeError("disk on fire")
        return real(sc, seed, index, point=point)

    monkeypatch.setattr(sw, "run_replication", flaky)
    res = sweep(small(), GRID, replications=2, executor="serial", out=tmp_path / "s",
                quiet=True)
    bad = res.tidy[res.tidy["point"] == 1]
    assert bad["error"].str.contains("RuntimeError: disk on fire").all()
    assert res.tidy[res.tidy["point"] != 1]["error"].isna().all()
    agg = res.aggregated.set_index("point")
    assert agg.loc[1, "errors"] == 2 and np.isnan(agg.loc[1, "latency.mean"])
    assert agg.loc[2, "errors"] == 0 and agg.loc[2, "latency.mean"] > 0


def test_rerun_skips_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sw = importlib.import_module("simq.sweep")

    first = sweep(small(), GRID, replications=2, executor="serial", out=tmp_path / "s",
                  quiet=True)
    (tmp_path / "s" / "points" / "p000001-r0001.json").unlink()
    calls: list[tuple[int | None, int]] = []
    real = sw.run_replication

    def counting(sc, seed, index, *, point=None):  # type: ignore[no-untyped-def]
        calls.append((point, index))
        return real(sc, seed, index, point=point)

    monkeypatch.setattr(sw, "run_replication", counting)
    again = sweep(small(), GRID, replications=2, executor="serial", out=tmp_path / "s",
                  quiet=True)
    assert calls == [(1, 1)]
    cols = [c for c in first.tidy.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(first.tidy[cols], again.tidy[cols])


def test_a_different_sweep_in_the_same_folder_needs_force(tmp_path: Path) -> None:
    sweep(small(), GRID, replications=1, executor="serial", out=tmp_path / "s", quiet=True)
    other = {"producers.app.rate": [0.2, 0.4]}
    with pytest.raises(OutputExistsError, match="different sweep"):
        sweep(small(), other, replications=1, executor="serial", out=tmp_path / "s",
              quiet=True)
    res = sweep(small(), other, replications=1, executor="serial", out=tmp_path / "s",
                quiet=True, force=True)
    assert sorted(res.tidy["producers.app.rate"]) == [0.2, 0.4]


def test_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(OutputExistsError):
        sweep(small(), GRID, executor="serial", out=tmp_path, quiet=True)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def _cli_sweep(out: Path, *extra: str, executor: str = "serial") -> list[str]:
    workers = [] if executor == "serial" else ["--workers", "2"]
    return [sys.executable, "-m", "simq.cli", "sweep", str(MM1),
            "--grid", "producers.app.rate=0.2:0.9:8", "--replications", "3",
            "--set", "run.until=3000", "--set", "run.warmup=300",
            "--executor", executor, *workers, "--quiet", "--out", str(out), *extra]


@pytest.mark.parametrize(("sig", "executor"), [
    (signal.SIGKILL, "serial"),
    pytest.param(signal.SIGINT, "serial", marks=pytest.mark.slow),
    pytest.param(signal.SIGKILL, "processes", marks=pytest.mark.slow),
    pytest.param(signal.SIGKILL, "dask", marks=pytest.mark.slow),
])
def test_an_interrupted_sweep_resumes_to_the_same_table(tmp_path: Path, sig: int,
                                                        executor: str) -> None:
    """Stopped part-way on any executor, a sweep run again computes only what is missing
    and ends with the table of one uninterrupted sweep."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "cut"
    proc = subprocess.Popen(_cli_sweep(out, executor=executor), env=env,
                            stderr=subprocess.PIPE)
    points = out / "points"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if points.is_dir() and len(list(points.glob("p*.json"))) >= 4:
            break
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    done = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in points.glob("p*.json")}
    assert 4 <= len(done) < 24, "the sweep should have been stopped part-way"
    for f in points.glob("p*.json"):
        json.loads(f.read_text())  # every file left behind is complete
    assert not (out / "tidy.parquet").exists()
    subprocess.run(_cli_sweep(out, executor=executor), env=env, check=True)
    for f in points.glob("p*.json"):  # nothing that had finished was run again
        if f.name in done:
            assert (f.stat().st_ino, f.stat().st_mtime_ns) == done[f.name]
    assert not list(points.glob(".*.tmp"))
    whole = sweep(MM1, {"producers.app.rate": "0.2:0.9:8"}, replications=3,
                  executor="serial", out=tmp_path / "whole", quiet=True,
                  overrides={"run.until": 3000, "run.warmup": 300})
    a, b = read_sweep(out).tidy, whole.tidy
    cols = [c for c in a.columns if c != "wall_seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_cli_sweep_writes_tables_and_report(tmp_path: Path) -> None:
    out = tmp_path / "s"
    code = main(["sweep", str(MM1), "--grid", "producers.app.rate=0.4,0.8",
                 "--grid", "consumers.worker.count=1,2", "--replications", "1",
                 "--set", "run.until=1000", "--set", "run.warmup=100",
                 "--executor", "serial", "--quiet", "--out", str(out)])
    assert code == 0
    agg = pd.read_csv(out / "aggregated.csv")
    assert len(agg) == 4 and set(agg["consumers.worker.count"]) == {1, 2}
    assert (out / "report.html").is_file() and (out / "figures" / "latency_heatmap.png").is_file()


def test_default_sweep_folder_is_under_runs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = simq.sweep(MM1, {"producers.app.rate": [0.5]}, replications=1, executor="serial",
                     overrides={"run.until": 500, "run.warmup": 50}, quiet=True)
    assert res.folder.resolve() == (tmp_path / "runs" / "mm1-sweep").resolve()
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("grid", ["producers.app.rate", "producers.nobody.rate=1,2",
                                  "producers.app.rate=0.1:0.9:0"])
def test_cli_bad_grid_exits_2(tmp_path: Path, grid: str, capsys: pytest.CaptureFixture[str]
                              ) -> None:
    code = main(["sweep", str(MM1), "--grid", grid, "--executor", "serial", "--quiet",
                 "--out", str(tmp_path / "s")])
    assert code == 2
    assert "simq: error:" in capsys.readouterr().err


def test_a_swept_key_echoed_by_the_summary_keeps_the_swept_value(tmp_path: Path) -> None:
    # producers.NAME.priority is both a scenario key and a summary field.
    res = sweep(small(), {"producers.app.priority": [0, 3]}, replications=1,
                executor="serial", out=tmp_path / "s", quiet=True)
    assert list(res.tidy["producers.app.priority"]) == [0, 3]
    assert list(res.aggregated["producers.app.priority"]) == [0, 3]
    from simq.sweep import param_columns

    assert param_columns(res.tidy) == ["producers.app.priority"]


def test_theory_columns_only_where_a_formula_fits() -> None:
    from simq.sweep import nominal_columns

    md1 = nominal_columns(simq.load(ROOT / "models" / "md1.yaml"))
    lam = md1["nominal.offered_rate"]
    assert md1["theory.latency_mean"] == pytest.approx(theory.md1(lam, 1.0).sojourn_mean)
    assert md1["formula.latency"] == pytest.approx(1.0)
    # A closed-loop (sync) producer is not an open M/x/c station: no theory column.
    sync = nominal_columns(simq.load(ROOT / "models" / "sync_vs_async.yaml"))
    assert np.isnan(sync["theory.latency_mean"])
