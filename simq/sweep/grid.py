"""A sweep's grid: values read from text (lists, ranges, log ranges) and the points of a
grid of scenario paths, as a full factorial or zipped."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from simq.errors import ScenarioError

__all__ = ["MAX_POINTS", "grid_points", "grid_values", "parse_values", "path_values"]

#: The most points a grid may have: each is a scenario validated before anything runs
#: (about a millisecond each) and a task; beyond, a range would fill memory before it ran.
MAX_POINTS = 100_000

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
        if n > MAX_POINTS:
            raise ScenarioError(path, f"a range has at most {MAX_POINTS:,} values "
                                "(start:stop:count)", text)
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


def path_values(path: str, spec: Any) -> list[Any]:
    """The values of one grid path: text as :func:`parse_values` reads it, an iterable as
    plain Python values, anything else as the one value."""
    if isinstance(spec, str):
        return parse_values(path, spec)
    if isinstance(spec, Iterable):
        values = [v.item() if isinstance(v, np.generic) else v for v in spec]
        if not values:
            raise ScenarioError(path, "a grid path needs at least one value", spec)
        return values
    return [spec]


def grid_values(grid: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every path of a grid with its list of values, in the order the grid is written."""
    return {p: path_values(p, grid[p]) for p in grid}

def grid_points(grid: Mapping[str, Any], *, zip_paths: bool = False) -> list[dict[str, Any]]:
    """The points of a grid: the full factorial of its paths, or paired with ``zip_paths``.

    The first path varies slowest, so a point's index follows the order the grid is written.
    """
    if not grid:
        raise ScenarioError("grid", "a sweep needs at least one PATH=VALUES", dict(grid))
    paths = list(grid)
    columns = [path_values(p, grid[p]) for p in paths]
    size = len(columns[0]) if zip_paths else math.prod(len(c) for c in columns)
    if size > MAX_POINTS:
        raise ScenarioError("grid", f"has {size:,} points; a sweep has at most "
                            f"{MAX_POINTS:,}", {p: len(c) for p, c in zip(paths, columns,
                                                                         strict=True)})
    if zip_paths:
        lengths = {p: len(c) for p, c in zip(paths, columns, strict=True)}
        if len(set(lengths.values())) > 1:
            raise ScenarioError("--zip", "zipped paths need the same number of values",
                                lengths)
        combos: Iterable[tuple[Any, ...]] = zip(*columns, strict=True)
    else:
        combos = itertools.product(*columns)
    return [dict(zip(paths, combo, strict=True)) for combo in combos]
