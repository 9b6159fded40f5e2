"""Across replications: a summary tree flattened to dotted keys, and the mean and CI
half-width of every numeric leaf. ``simq.run`` combines nested summaries with it, a sweep
its flat rows; pure Python over dicts (and :func:`simq.analysis.stats.mean_ci`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simq.analysis.stats import mean_ci

__all__ = ["combine", "flatten", "is_number"]


def is_number(x: Any) -> bool:
    """A real number (Python or numpy), not a boolean."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (per-replication) summary as one level of dotted keys.

    ``{"latency": {"mean": 4.8}}`` becomes ``{"latency.mean": 4.8}``; text and lists are
    left out, booleans become 0/1. This is the row a sweep table stores per replication.
    """
    out: dict[str, float] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, bool) or is_number(v):
            out[key] = float(v)
    return out


def combine(trees: list[Any]) -> tuple[Any, Any]:
    """Mean and CI half-width of every numeric leaf across replications.

    Works on nested summaries (``run``) and on flat rows (``sweep``) alike.
    """
    first = trees[0]
    if isinstance(first, Mapping):
        means, cis = {}, {}
        for k in first:
            means[k], cis[k] = combine([t[k] for t in trees])
        return means, cis
    if is_number(first):
        if len(trees) == 1:
            return first, math.nan
        m, h = mean_ci([float(t) for t in trees])
        return m, h
    return first, None

