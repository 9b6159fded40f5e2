"""Parameter sweeps: a grid of scenario overrides x replications, over an executor.

The unit of work is one (point, replication). Each gets its own random stream named by
``(seed, point, replication)`` (or ``(seed, replication)`` with common random numbers), so
the numbers do not depend on the executor, the number of workers or the order of
completion. Each finished unit is written atomically to ``points/`` in the sweep folder as
soon as it returns, so the parent holds no results in memory and a rerun skips what is done.

This package holds :func:`sweep` (the driver: one task per unit, run over an executor) and
the paper columns of a point (:func:`nominal_columns`); the grid is read in
:mod:`simq.sweep.grid`, the executors live in :mod:`simq.sweep.executors`, and the folder
and its tables in :mod:`simq.sweep.store`.
"""

from __future__ import annotations

import gc
import json
import math
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simq.analysis.replications import flatten
from simq.errors import ScenarioError
from simq.model.estimate import check_sweep
from simq.model.network import flows
from simq.model.station import station_metrics
from simq.run import resolve, run_replication
from simq.scenario import Scenario
from simq.sweep.executors import EXECUTORS, Executor, Task, select_executor
from simq.sweep.grid import grid_points, grid_values, parse_values
from simq.sweep.store import (
    SweepResult,
    aggregate,
    finish,
    open_folder,
    param_columns,
    point_file,
    point_scenarios,
    read_sweep,
    write_point,
)
from simq.sweep.table import format_table

__all__ = [
    "EXECUTORS",
    "SweepResult",
    "aggregate",
    "format_table",
    "grid_points",
    "nominal_columns",
    "param_columns",
    "parse_values",
    "point_scenarios",
    "read_sweep",
    "sweep",
]

# Nominal and theory columns ---------------------------------------------------------

def nominal_columns(sc: Scenario) -> dict[str, float]:
    """What a point's scenario predicts on paper: load, the document's formulas, theory.

    ``theory.*`` comes from the single-station formula that fits the scenario (M/M/c,
    M/M/c/K, M/G/1, else the G/G/c approximations) when it is one producer, one queue and
    one consumer group; otherwise those columns are NaN.
    """
    f = flows(sc)
    b = f.bottleneck
    out = {
        "nominal.offered_rate": f.generation_rate,
        "nominal.capacity": f.processing_rate,
        "nominal.load": b.load if b is not None else math.nan,
        "formula.throughput_ratio": (f.processing_rate / f.generation_rate
                                     if f.generation_rate > 0 else math.inf),
        "formula.latency": f.processing_time + f.transmission_time,
        "formula.queue_growth": b.growth if b is not None else math.nan,
    }
    keys = ("latency_mean", "wait_mean", "length_mean", "throughput", "utilization")
    out.update({f"theory.{k}": math.nan for k in keys})
    m = station_metrics(sc)
    if m is not None:
        out.update({
            "theory.latency_mean": m.sojourn_mean + f.transmission_time,
            "theory.wait_mean": m.wait_mean,
            "theory.length_mean": m.length_mean,
            "theory.throughput": m.throughput,
            "theory.utilization": m.utilization,
        })
    return out


# The sweep ---------------------------------------------------------------------------

def _work(task: Task) -> dict[str, Any]:
    """Run one (point, replication) in a worker; return a small dict, never the records."""
    raw, base_dir, source, seed, point, rep, crn = task
    started = time.perf_counter()
    try:
        sc = Scenario(raw, base_dir=Path(base_dir) if base_dir else None, source=source)
        r = run_replication(sc, seed, rep, point=None if crn else point)
        summary, error = flatten(r.summary), None
        del r
    except Exception as err:  # noqa: BLE001 - a failing point is a result, the sweep goes on
        summary = {}
        error = "".join(traceback.format_exception_only(type(err), err)).strip()
    # A finished simulation is a web of reference cycles (environment, processes, events)
    # that only the cyclic collector frees; left to its own pace a long-lived worker grows
    # by megabytes per run. Collecting here keeps every worker's memory flat.
    gc.collect()
    return {"point": point, "replication": rep, "summary": summary, "error": error,
            "wall_seconds": time.perf_counter() - started}


def sweep(
    scenario: Scenario | str | Mapping[str, Any],
    grid: Mapping[str, Any],
    *,
    replications: int | None = None,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    executor: str | Executor = "processes",
    scheduler: str | None = None,
    workers: int | None = None,
    out: str | Path | None = None,
    zip_paths: bool = False,
    common_random_numbers: bool = False,
    quiet: bool = False,
    force: bool = False,
    max_events: float | None = None,
) -> SweepResult:
    """Run every grid point ``replications`` times and write the tables to ``out``.

    ``grid`` maps dotted scenario paths to values: a list, a range text ``"0.1:0.95:12"``,
    a log range ``"log:1:1000:4"`` or ``"0.1,0.5"``; ``overrides`` apply to every point.
    Several paths make a full factorial,
    or pairs with ``zip_paths``. ``executor`` is ``"processes"`` (local pool), ``"dask"``
    (``scheduler`` address, else a LocalCluster) or ``"serial"``. The folder (default
    ``runs/<name>-sweep/``) keeps each finished point x replication, so rerunning the
    same sweep skips what is done; ``force`` discards a different sweep found there.
    Before anything runs, every point x replication together is refused above
    ``run.max_events`` (or ``max_events``), each point above ``run.max_memory``.
    """
    sc = resolve(scenario, overrides=overrides, seed=seed)
    reps = sc.run.replications if replications is None else replications
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ScenarioError("replications", "must be an integer >= 1", reps)
    points = grid_points(grid, zip_paths=zip_paths)
    # Every point is validated before anything runs: a bad value is a usage error.
    scenarios = [sc.with_overrides(p) for p in points]
    check_sweep(scenarios, reps, max_events)
    # runs/, like the CLI: results/ holds only curated outputs (docs/output.md).
    folder = Path(out) if out is not None else Path("runs") / f"{sc.name}-sweep"
    from simq._version import version

    # Plain JSON with NaN/Infinity tokens: Python reads every float back exactly.
    spec = json.loads(json.dumps({
        "scenario": sc.to_dict(),
        "resolved": sc.resolved(),  # every default filled in, for the reader
        "source": sc.source,
        "base_dir": str(sc.base_dir) if sc.base_dir is not None else None,
        "grid": grid_values(grid),
        "zip": zip_paths,
        "points": points,
        "seed": sc.run.seed,
        "replications": reps,
        "common_random_numbers": common_random_numbers,
        "simq": version(),
    }))
    folder = open_folder(folder, spec, sc.to_yaml(), force=force)

    base_dir = spec["base_dir"]
    tasks: list[Task] = [
        (s.to_dict(), base_dir, s.source, sc.run.seed, i, r, common_random_numbers)
        for i, s in enumerate(scenarios) for r in range(reps)
        if not point_file(folder, i, r).is_file()
    ]
    total = len(points) * reps
    _drive(folder, tasks, total, select_executor(executor, scheduler, workers), quiet)
    return finish(folder)


def _drive(folder: Path, tasks: list[Task], total: int, ex: Executor, quiet: bool) -> None:
    if quiet:  # tqdm.auto would still probe for notebook widgets and warn about them
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(tasks), unit="run", disable=quiet,
               desc="sweep", dynamic_ncols=True)
    failed = 0
    try:
        for res in ex.map_unordered(_work, tasks):
            write_point(folder, res)
            failed += res["error"] is not None
            bar.update(1)
            if failed:
                bar.set_postfix(errors=failed)
    finally:
        bar.close()
        ex.close()
