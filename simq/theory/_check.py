"""Argument checks shared by the theory functions.

Every failure is a ``ValueError`` naming the argument, the rule and the value, in the same
shape as :class:`simq.ScenarioError`: ``mu: must be > 0, got -1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np


def fail(name: str, rule: str, value: object) -> ValueError:
    return ValueError(f"{name}: {rule}, got {value!r}")


def number(name: str, x: object) -> float:
    # bool is an Integral; True as a rate is always a mistake
    if isinstance(x, bool) or not isinstance(x, Real):
        raise fail(name, "must be a number", x)
    v = float(x)
    if math.isnan(v):
        raise fail(name, "must be a number", x)
    return v


def positive(name: str, x: object) -> float:
    v = number(name, x)
    if not (0.0 < v < math.inf):
        raise fail(name, "must be > 0 and finite", x)
    return v


def nonnegative(name: str, x: object) -> float:
    v = number(name, x)
    if not (0.0 <= v < math.inf):
        raise fail(name, "must be >= 0 and finite", x)
    return v


def probability(name: str, x: object) -> float:
    v = number(name, x)
    if not 0.0 <= v <= 1.0:
        raise fail(name, "must be in [0, 1]", x)
    return v


def integer(name: str, x: object, low: int = 1) -> int:
    # integral floats (3.0 from YAML or numpy) are accepted; 2.5 servers is not
    if isinstance(x, bool):
        raise fail(name, f"must be an integer >= {low}", x)
    if isinstance(x, Integral):
        v = int(x)
    elif isinstance(x, Real) and float(x).is_integer():
        v = int(float(x))
    else:
        raise fail(name, f"must be an integer >= {low}", x)
    if v < low:
        raise fail(name, f"must be an integer >= {low}", x)
    return v


def sequence(name: str, x: object, n: int | None = None) -> list[object]:
    """A non-string sequence, optionally of length n; a scalar is broadcast when n is given."""
    if isinstance(x, Real) and not isinstance(x, bool) and n is not None:
        return [x] * n
    if isinstance(x, str | bytes) or not isinstance(x, Sequence | np.ndarray):
        raise fail(name, "must be a sequence", x)
    items = list(x)
    if n is not None and len(items) != n:
        raise fail(name, f"must have length {n}", x)
    if not items:
        raise fail(name, "must not be empty", x)
    return items
