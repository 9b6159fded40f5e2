"""Parameter sweeps: a grid of scenario overrides x replications, over an executor.

The unit of work is one (point, replication). Each gets its own random stream named by
``(seed, point, replication)`` (or ``(seed, replication)`` with common random numbers), so
the numbers do not depend on the executor, the number of workers or the order of
completion. Each finished unit is written atomically to ``points/`` in the sweep folder as
soon as it returns, so the parent holds no results in memory and a rerun skips what is done.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from simq import theory
from simq.analysis.replications import combine, flatten
from simq.dists import Exponential
from simq.errors import ScenarioError
from simq.files import OutputExistsError, prepare_dir, write_atomic
from simq.model.network import flows
from simq.run import resolve, run_replication
from simq.scenario import Scenario

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: sweep workers only return dicts (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = [
    "EXECUTORS",
    "SweepResult",
    "aggregate",
    "grid_points",
    "nominal_columns",
    "param_columns",
    "parse_values",
    "read_sweep",
    "sweep",
]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^(log:)?({_NUMBER}):({_NUMBER}):(\d+)$")


def _as_number(text: str) -> int | float:
    x = float(text)
    return int(x) if re.fullmatch(r"[-+]?\d+", text) else x


def parse_values(path: str, text: str) -> list[Any]:
    """Grid values from text: ``0.1,0.5,0.9``, a range ``0.1:0.95:12`` (start, stop, count,
    both ends included) or a log range ``log:1:1000:4`` (geometric). Each value is read as
    YAML, like ``--set``. Integer ends give integers when every value is a whole number."""
    from simq.scenario import parse_override

    text = text.strip()
    m = _RANGE.match(text)
    if m:
        log, a, b, n = m.group(1), _as_number(m.group(2)), _as_number(m.group(3)), int(m.group(4))
        if n < 1:
            raise ScenarioError(path, "a range needs a count >= 1 (start:stop:count)", text)
        if log and (a <= 0 or b <= 0):
            raise ScenarioError(path, "a log range needs start and stop > 0", text)
        xs = np.geomspace(a, b, n) if log else np.linspace(a, b, n)
        whole = np.abs(xs - np.round(xs)) < 1e-9 * np.maximum(1.0, np.abs(xs))
        if isinstance(a, int) and isinstance(b, int) and whole.all():
            return [int(round(x)) for x in xs]
        # 12 significant digits: 0.3, not linspace's 0.30000000000000004, in tables and files.
        return [float(f"{x:.12g}") for x in xs]
    if not text:
        raise ScenarioError(path, "give values, e.g. 0.1,0.5,0.9 or 0.1:0.9:9", text)
    return [parse_override(f"{path}={item}")[1] for item in text.split(",")]


def _values(path: str, spec: Any) -> list[Any]:
    if isinstance(spec, str):
        return parse_values(path, spec)
    if isinstance(spec, Iterable):
        values = [v.item() if isinstance(v, np.generic) else v for v in spec]
        if not values:
            raise ScenarioError(path, "a grid path needs at least one value", spec)
        return values
    return [spec]


def grid_points(grid: Mapping[str, Any], *, zip_paths: bool = False) -> list[dict[str, Any]]:
    """The points of a grid: the full factorial of its paths, or paired with ``zip_paths``.

    The first path varies slowest, so a point's index follows the order the grid is written.
    """
    if not grid:
        raise ScenarioError("grid", "a sweep needs at least one PATH=VALUES", dict(grid))
    paths = list(grid)
    columns = [_values(p, grid[p]) for p in paths]
    if zip_paths:
        lengths = {p: len(c) for p, c in zip(paths, columns, strict=True)}
        if len(set(lengths.values())) > 1:
            raise ScenarioError("--zip", "zipped paths need the same number of values",
                                lengths)
        combos: Iterable[tuple[Any, ...]] = zip(*columns, strict=True)
    else:
        combos = itertools.product(*columns)
    return [dict(zip(paths, combo, strict=True)) for combo in combos]


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
    m = _station(sc)
    if m is not None:
        out.update({
            "theory.latency_mean": m.sojourn_mean + f.transmission_time,
            "theory.wait_mean": m.wait_mean,
            "theory.length_mean": m.length_mean,
            "theory.throughput": m.throughput,
            "theory.utilization": m.utilization,
        })
    return out


def _station(sc: Scenario) -> theory.QueueMetrics | None:
    if (len(sc.producers) != 1 or len(sc.queues) != 1 or len(sc.consumers) != 1
            or getattr(sc, "topics", None)):
        return None
    p = next(iter(sc.producers.values()))
    q = next(iter(sc.queues.values()))
    c = next(iter(sc.consumers.values()))
    # Only the plain open station the formulas describe: anything that reshapes arrivals
    # or service (closed loops, batching, schedules, backlogs, priorities...) is left out.
    plain = (
        p.mode == "async" and p.stop is None and p.start == 0 and p.arrivals is None
        and p.encode is None and p.batch_size is None
        and q.overflow != "block" and q.discipline == "fifo" and q.backlog is None
        and c.to is None and c.schedule is None and c.autoscale is None
        and c.decode is None and c.batch == 1
        and all(lk.loss == 0 for lk in sc.links.values())
    )
    arrival, service = p.interarrival, c.service
    if not plain or arrival is None:
        return None
    if arrival.mean <= 0 or service.mean <= 0:
        return None
    lam, mean, k = 1.0 / arrival.mean, service.mean, c.count
    poisson = isinstance(arrival, Exponential)
    if poisson and isinstance(service, Exponential):
        return theory.mmck(lam, 1.0 / mean, k, k + q.capacity if math.isfinite(q.capacity)
                           else math.inf)
    if not math.isfinite(q.capacity):
        if poisson and k == 1:
            return theory.mg1(lam, mean, service.scv)
        return theory.ggc_allen_cunneen(lam, arrival.scv, mean, service.scv, k)
    return None


# Executors ---------------------------------------------------------------------------

Task = tuple[dict[str, Any], str | None, str, int, int, int, bool]


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


class Executor(Protocol):
    """Runs tasks and yields their results as they finish, in any order."""

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """One task after the other in this process: for debugging and tiny sweeps."""

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        for t in tasks:
            yield fn(t)

    def close(self) -> None:
        pass


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent alone stops the sweep, cleanly,
    # instead of every worker printing its own traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessExecutor:
    """A local pool of worker processes (all cores by default)."""

    def __init__(self, workers: int | None = None) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers or os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_ignore_sigint)

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, Future, wait

        # A bounded window of submitted tasks keeps the parent's memory flat however
        # long the sweep is.
        todo = iter(tasks)
        pending: set[Future[dict[str, Any]]] = set()
        for t in itertools.islice(todo, 4 * self.workers):
            pending.add(self.pool.submit(fn, t))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(self.pool.submit(fn, nxt))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """dask.distributed: a LocalCluster when no address is given, else that scheduler."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ScenarioError("--executor", "dask needs the extra: pip install "
                                "'simq[dask]'", "dask") from None
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                        threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        self.window = 4 * max(1, len(self.client.scheduler_info().get("workers", {})) or 1)

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        from dask.distributed import as_completed

        todo = iter(tasks)
        # pure=False: two tasks never share a key; every task is its own run.
        first = [self.client.submit(fn, t, pure=False)
                 for t in itertools.islice(todo, self.window)]
        queue = as_completed(first)
        for fut in queue:
            result = fut.result()
            fut.release()
            yield result
            nxt = next(todo, None)
            if nxt is not None:
                queue.add(self.client.submit(fn, nxt, pure=False))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


EXECUTORS = ("serial", "processes", "dask")


def _executor(name: str | Executor, scheduler: str | None, workers: int | None) -> Executor:
    if not isinstance(name, str):
        return name
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise ScenarioError("--executor", f"one of {', '.join(EXECUTORS)}", name)


# The sweep ---------------------------------------------------------------------------

SPEC = "sweep.json"
POINTS = "points"


@dataclass
class SweepResult:
    """A sweep's tables: one row per point x replication, and one per point."""

    folder: Path
    tidy: pd.DataFrame
    aggregated: pd.DataFrame
    spec: dict[str, Any]

    @property
    def paths(self) -> list[str]:
        """The swept scenario paths (the parameter columns)."""
        return list(self.spec["grid"])

    def __repr__(self) -> str:
        errors = int(self.tidy["error"].notna().sum()) if len(self.tidy) else 0
        return (f"SweepResult({self.spec['scenario']['name']!r}, points={len(self.aggregated)}, "
                f"replications={self.spec['replications']}, errors={errors}, "
                f"folder={str(self.folder)!r})")


def _point_file(folder: Path, point: int, rep: int) -> Path:
    return folder / POINTS / f"p{point:06d}-r{rep:04d}.json"


def _same_sweep(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = ("scenario", "grid", "zip", "points", "seed", "replications",
            "common_random_numbers")
    return all(old.get(k) == new.get(k) for k in keys)


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
) -> SweepResult:
    """Run every grid point ``replications`` times and write the tables to ``out``.

    ``grid`` maps dotted scenario paths to values: a list, a range text ``"0.1:0.95:12"``,
    a log range ``"log:1:1000:4"`` or ``"0.1,0.5"``; ``overrides`` apply to every point.
    Several paths make a full factorial,
    or pairs with ``zip_paths``. ``executor`` is ``"processes"`` (local pool), ``"dask"``
    (``scheduler`` address, else a LocalCluster) or ``"serial"``. The folder (default
    ``runs/<name>-sweep/``) keeps each finished point x replication, so rerunning the
    same sweep skips what is done; ``force`` discards a different sweep found there.
    """
    sc = resolve(scenario, overrides=overrides, seed=seed)
    reps = sc.run.replications if replications is None else replications
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ScenarioError("replications", "must be an integer >= 1", reps)
    points = grid_points(grid, zip_paths=zip_paths)
    # Every point is validated before anything runs: a bad value is a usage error.
    scenarios = [sc.with_overrides(p) for p in points]
    # runs/, like the CLI: results/ holds only curated outputs (docs/output.md).
    folder = Path(out) if out is not None else Path("runs") / f"{sc.name}-sweep"
    from simq import __version__

    # Plain JSON with NaN/Infinity tokens: Python reads every float back exactly.
    spec = json.loads(json.dumps({
        "scenario": sc.to_dict(),
        "resolved": sc.resolved(),  # every default filled in, for the reader
        "source": sc.source,
        "base_dir": str(sc.base_dir) if sc.base_dir is not None else None,
        "grid": {p: _values(p, grid[p]) for p in grid},
        "zip": zip_paths,
        "points": points,
        "seed": sc.run.seed,
        "replications": reps,
        "common_random_numbers": common_random_numbers,
        "simq": __version__,
    }))
    folder = prepare_dir(folder, "sweep", force=force)
    old_path = folder / SPEC
    if old_path.is_file():
        old = json.loads(old_path.read_text(encoding="utf-8"))
        if not _same_sweep(old, spec):
            if not force:
                raise OutputExistsError(
                    f"{folder}: holds a different sweep (scenario, grid, seed or "
                    "replications changed); choose another --out or pass --force to discard it"
                )
            shutil.rmtree(folder / POINTS, ignore_errors=True)
    write_atomic(old_path, json.dumps(spec, indent=1) + "\n")
    for name, text in (("scenario.yaml", sc.to_yaml()),):
        write_atomic(folder / name, text)
    (folder / POINTS).mkdir(exist_ok=True)
    for leftover in (folder / POINTS).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)  # a temporary file of a killed sweep

    base_dir = spec["base_dir"]
    tasks: list[Task] = [
        (s.to_dict(), base_dir, s.source, sc.run.seed, i, r, common_random_numbers)
        for i, s in enumerate(scenarios) for r in range(reps)
        if not _point_file(folder, i, r).is_file()
    ]
    total = len(points) * reps
    _drive(folder, tasks, total, _executor(executor, scheduler, workers), quiet)
    return _finish(folder)


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
            write_atomic(_point_file(folder, res["point"], res["replication"]),
                         json.dumps(res) + "\n")
            failed += res["error"] is not None
            bar.update(1)
            if failed:
                bar.set_postfix(errors=failed)
    finally:
        bar.close()
        ex.close()


def _load_points(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for f in sorted((folder / POINTS).glob("p*.json")):
        rows.append(json.loads(f.read_text(encoding="utf-8")))
    return rows


def _tables(folder: Path, spec: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    points = spec["points"]
    base_dir = Path(spec["base_dir"]) if spec.get("base_dir") else None
    base = Scenario(spec["scenario"], base_dir=base_dir, source=spec.get("source", "<dict>"))
    nominal = [nominal_columns(base.with_overrides(p)) for p in points]
    rows = []
    for res in _load_points(folder):
        i = res["point"]
        # A summary field may echo a swept key (producers.NAME.priority): the value set
        # by the sweep is the one kept. Parameters sit between "replication" and "error".
        measured = {k: v for k, v in res["summary"].items() if k not in points[i]}
        rows.append({"point": i, "replication": res["replication"], **points[i],
                     "error": res["error"], "wall_seconds": res["wall_seconds"],
                     **measured, **nominal[i]})
    tidy = pd.DataFrame(rows)
    if len(tidy):
        tidy = tidy.sort_values(["point", "replication"], ignore_index=True)
    return tidy, aggregate(tidy, list(spec["grid"]))


def param_columns(tidy: pd.DataFrame) -> list[str]:
    """The swept paths of a tidy table: its columns between ``replication`` and ``error``."""
    cols = list(tidy.columns)
    if "replication" not in cols or "error" not in cols:
        raise KeyError("not a tidy sweep table (needs the columns replication and error)")
    return cols[cols.index("replication") + 1:cols.index("error")]


def aggregate(tidy: pd.DataFrame, paths: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per point: each measured column's mean over replications and its ``.ci95``
    half-width; the parameter, nominal and theory columns as they are."""
    if paths is None:
        paths = param_columns(tidy)
    if tidy.empty:
        return pd.DataFrame(columns=["point", *paths, "replications", "errors"])
    fixed = {"point", "replication", "error", "wall_seconds", *paths}
    per_point = [c for c in tidy.columns
                 if c.startswith(("nominal.", "formula.", "theory."))]
    measured = [c for c in tidy.columns if c not in fixed and c not in per_point]
    rows = []
    for point, g in tidy.groupby("point", sort=True):
        ok = g[g["error"].isna()]
        row: dict[str, Any] = {"point": point, **{p: g[p].iloc[0] for p in paths},
                               "replications": len(ok), "errors": len(g) - len(ok)}
        if len(ok):
            means, cis = combine([{c: ok[c].iloc[j] for c in measured} for j in range(len(ok))])
        else:
            means = {c: math.nan for c in measured}
            cis = dict(means)
        for c in measured:
            row[c] = means[c]
            row[f"{c}.ci95"] = cis[c]
        for c in per_point:
            row[c] = g[c].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def _finish(folder: Path) -> SweepResult:
    spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    tidy, agg = _tables(folder, spec)
    for name, frame in (("tidy", tidy), ("aggregated", agg)):
        write_atomic(folder / f"{name}.parquet", partial(_to_parquet, frame))
        write_atomic(folder / f"{name}.csv", partial(_to_csv, frame))
    return SweepResult(folder, tidy, agg, spec)


def read_sweep(folder: str | Path) -> SweepResult:
    """A finished (or partly finished) sweep read back from its folder; runs nothing."""
    folder = Path(folder)
    spec_path = folder / SPEC
    if not spec_path.is_file():
        raise ScenarioError(str(folder), f"not a sweep folder (no {SPEC})")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    if (folder / "tidy.parquet").is_file():
        tidy = pd.read_parquet(folder / "tidy.parquet")
        agg = pd.read_parquet(folder / "aggregated.parquet")
        return SweepResult(folder, tidy, agg, spec)
    tidy, agg = _tables(folder, spec)
    return SweepResult(folder, tidy, agg, spec)
