"""A sweep's folder: its spec, one file per finished (point, replication), the tables built
from them (tidy: a row per run; aggregated: a row per point, with CIs) as parquet and CSV,
and reading a sweep back without running anything.

Each point file is written atomically as soon as its run returns, so an interrupted sweep
keeps what it finished and a rerun of the same sweep (same scenario, grid, seed,
replications) skips it; a different sweep in the folder is refused unless forced.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simq.analysis.replications import combine
from simq.errors import ScenarioError
from simq.files import (
    OutputExistsError,
    acquire,
    clean_stale,
    prepare_dir,
    reading,
    real_subdir,
    release,
    write_atomic,
)
from simq.scenario import Scenario

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: sweep workers only return dicts (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = ["POINTS", "SPEC", "SweepResult", "aggregate", "finish", "open_folder",
           "param_columns", "point_file", "point_scenarios", "read_sweep", "write_point"]

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

    def _repr_html_(self) -> str:
        """What a notebook shows: the aggregated table, one row per point."""
        from simq.sweep.table import html

        return html(self)

    def __repr__(self) -> str:
        errors = int(self.tidy["error"].notna().sum()) if len(self.tidy) else 0
        return (f"SweepResult({self.spec['scenario']['name']!r}, points={len(self.aggregated)}, "
                f"replications={self.spec['replications']}, errors={errors}, "
                f"folder={str(self.folder)!r})")


def point_file(folder: Path, point: int, rep: int) -> Path:
    """Where the result of one (point, replication) is kept."""
    return folder / POINTS / f"p{point:06d}-r{rep:04d}.json"


def same_sweep(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = ("scenario", "grid", "zip", "points", "seed", "replications",
            "common_random_numbers")
    return all(old.get(k) == new.get(k) for k in keys)


def open_folder(folder: Path, spec: Mapping[str, Any], scenario_yaml: str, *,
                force: bool) -> Path:
    """Make ``folder`` the home of the sweep ``spec``: keep the point files of the same
    sweep, discard those of a different one only with ``force``, write the spec."""
    # Held until the tables are written (finish), or until this process ends: a second
    # sweep into the folder meanwhile is refused.
    _hold(folder, acquire(prepare_dir(folder, "sweep", force=force)))
    clean_stale(folder)
    old_path = folder / SPEC
    if old_path.is_file():
        try:
            with reading(old_path):
                old = json.loads(old_path.read_text(encoding="utf-8"))
        except ScenarioError as err:
            if not force:
                raise OutputExistsError(f"{err}; pass --force to discard it") from None
            old = {}
        if not same_sweep(old, spec):
            if not force:
                raise OutputExistsError(
                    f"{folder}: holds a different sweep (scenario, grid, seed or "
                    "replications changed); choose another --out or pass --force to discard it"
                )
            shutil.rmtree(folder / POINTS, ignore_errors=True)
    write_atomic(old_path, json.dumps(spec, indent=1) + "\n")
    write_atomic(folder / "scenario.yaml", scenario_yaml)
    points = real_subdir(folder, POINTS)  # a link named points/ is not followed
    for leftover in points.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)  # a temporary file of a killed sweep
    return folder


_HELD: dict[Path, tuple[int, int] | None] = {}


def _hold(folder: Path, key: tuple[int, int] | None) -> None:
    if key is not None:
        _HELD[folder.absolute()] = key


def write_point(folder: Path, result: Mapping[str, Any]) -> None:
    """Keep one finished (point, replication), atomically."""
    write_atomic(point_file(folder, result["point"], result["replication"]),
                 json.dumps(result) + "\n")


def _load_points(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for f in sorted((folder / POINTS).glob("p*.json")):
        with reading(f):
            row = json.loads(f.read_text(encoding="utf-8"))
            row["point"], row["replication"], row["summary"]  # noqa: B018 - fields it needs
        rows.append(row)
    return rows


def point_scenarios(spec: Mapping[str, Any]) -> tuple[Scenario, list[Scenario]]:
    """A sweep's base scenario (from its ``sweep.json``) and each point's scenario as it
    ran: the base with the point's grid values set, as :func:`simq.sweep.sweep` built it."""
    base_dir = Path(spec["base_dir"]) if spec.get("base_dir") else None
    base = Scenario(spec["scenario"], base_dir=base_dir, source=spec.get("source", "<dict>"))
    return base, [base.with_overrides(p) for p in spec["points"]]


def _tables(folder: Path, spec: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    # The paper columns of each point come from the package, which imports this module
    # first: read them at call time.
    from simq.sweep import nominal_columns

    points = spec["points"]
    nominal = [nominal_columns(s) for s in point_scenarios(spec)[1]]
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


def finish(folder: Path) -> SweepResult:
    """Build the tables from the point files, write them as parquet and CSV, return them."""
    spec = _read_spec(folder / SPEC)
    tidy, agg = _tables(folder, spec)
    for name, frame in (("tidy", tidy), ("aggregated", agg)):
        write_atomic(folder / f"{name}.parquet", partial(_to_parquet, frame))
        write_atomic(folder / f"{name}.csv", partial(_to_csv, frame))
    release(_HELD.pop(folder.absolute(), None))
    return SweepResult(folder, tidy, agg, spec)


def _read_spec(path: Path) -> dict[str, Any]:
    with reading(path):
        spec = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
        spec["scenario"], spec["points"], spec["grid"], spec["replications"]  # noqa: B018
    return spec


def read_sweep(folder: str | Path) -> SweepResult:
    """A finished (or partly finished) sweep read back from its folder; runs nothing."""
    folder = Path(folder)
    spec_path = folder / SPEC
    if not spec_path.is_file():
        raise ScenarioError(str(folder), f"not a sweep folder (no {SPEC})")
    spec = _read_spec(spec_path)
    if (folder / "tidy.parquet").is_file():
        with reading(folder / "tidy.parquet"):
            tidy = pd.read_parquet(folder / "tidy.parquet")
        with reading(folder / "aggregated.parquet"):
            agg = pd.read_parquet(folder / "aggregated.parquet")
        return SweepResult(folder, tidy, agg, spec)
    with reading(folder / POINTS):
        tidy, agg = _tables(folder, spec)
    return SweepResult(folder, tidy, agg, spec)
