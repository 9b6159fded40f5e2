"""The validated value types every scenario spec is built from.

Each type is an ``Annotated`` alias carrying its own rule, so a rule is written once and
every key of its kind keeps it: a count refuses ``True`` wherever it appears, ``.inf`` is
read the same way in every field that allows it, and a distribution is parsed from text,
a number or a mapping in one place. Messages name the rule and the value; the path is
added from pydantic's location when the error is reported (``simq.scenario.io``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from simq.dists import Distribution, parse
from simq.errors import shown

__all__ = ["INF_WORDS", "INT_LIMIT", "STRICT", "Bandwidth", "Capacity", "Count", "Dist", "Fraction",
           "NonNegative", "Positive", "PositiveOrInf", "Probability", "Rate", "Size", "Whole",
           "default_dist", "finite", "number", "format_size", "read_inf", "read_size"]

# Every spec refuses unknown keys and cannot be changed once built.
STRICT = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

# How a user writes "no bound" in text (YAML's `.inf` arrives as a float already).
INF_WORDS = frozenset({"inf", ".inf", "infinity", "unbounded"})


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The same words in a JSON Schema (`simq schema`), whose patterns have no ignore-case flag.
_INF_TEXT = {"type": "string", "pattern": r"^\s*(" + "|".join(
    _any_case(w) for w in sorted(INF_WORDS)) + r")\s*$"}
_NUMBER_OR_INF = WithJsonSchema({"anyOf": [{"type": "number"}, _INF_TEXT]})


def read_inf(v: Any) -> Any:
    """The one rule for infinity: ``.inf``, ``inf``, ``infinity`` or ``unbounded`` (any
    case) in text mean ``math.inf``; anything else is returned unchanged."""
    if isinstance(v, str) and v.strip().lower() in INF_WORDS:
        return math.inf
    return v


# Integers a scenario may hold: beyond, a float cannot represent them and a count could
# never be reached; YAML reads 10**400 written out as an exact int.
INT_LIMIT = 2**53


def number(v: Any, rule: str) -> float:
    """``v`` as a float, refusing a bool, a non-number, nan and an integer beyond
    :data:`INT_LIMIT`; ``rule`` says in the message what was expected."""
    # bool is an int in Python; `true` for a number is always a slip in a scenario.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be {rule}, got {shown(v)}")
    if isinstance(v, int) and abs(v) > INT_LIMIT:
        raise ValueError(f"must be {rule} and at most 2**53 in size, got {shown(v)}")
    if math.isnan(v):
        raise ValueError(f"must be {rule}, got {shown(v)}")
    return float(v)


def _counter(low: int) -> Callable[[Any], Any]:
    rule = f"an integer >= {low}"

    def check(v: Any) -> Any:
        if v is None:
            return v
        x = number(v, rule)
        if not math.isfinite(x) or x != int(x) or x < low or x > INT_LIMIT:
            limit = " and at most 2**53" if math.isfinite(x) and x > INT_LIMIT else ""
            raise ValueError(f"must be {rule}{limit}, got {shown(v)}")
        return int(x)

    return check


def finite(rule: str, ok: Callable[[float], bool]) -> Callable[[Any], Any]:
    """A validator of finite numbers for which ``ok`` holds (None passes)."""
    def check(v: Any) -> Any:
        if v is None:
            return v
        x = number(v, rule)
        if not math.isfinite(x) or not ok(x):
            raise ValueError(f"must be {rule}, got {shown(v)}")
        return x

    return check


def _or_inf(rule: str, ok: Callable[[float], bool], whole: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        x = number(read_inf(v), rule)
        if not ok(x) or (whole and math.isfinite(x) and x != int(x)):
            raise ValueError(f"must be {rule}, got {shown(v)}")
        return x

    return check


def exactly_one(spec: Any, keys: Sequence[str]) -> str:
    """The one of ``keys`` that ``spec`` has (not None); raises when none or several are."""
    given = [k for k in keys if getattr(spec, k) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(keys)}; got "
                         f"{', '.join(given) or 'none'}")
    return given[0]


def _dist(value: Any, info: ValidationInfo) -> Distribution:
    context = info.context or {}
    return parse(value, path="", base_dir=context.get("base_dir"),
                 contain=bool(context.get("contain")))


def default_dist(text: str) -> Any:
    """A field default that is the distribution ``text`` (built fresh for each spec)."""
    return Field(default_factory=lambda: parse(text))


#: A distribution: text (``exponential(rate=2)``), a number (a constant) or a Distribution;
#: ``empirical("file.csv")`` is found next to the scenario file.
Dist = Annotated[Distribution, BeforeValidator(_dist), WithJsonSchema({
    "anyOf": [{"type": "number"}, {"type": "string"}],
    "description": "a distribution: exponential(mean=1), constant(0.5), uniform(low=0, "
                   "high=1), lognormal(mean=1, cv=0.5), empirical('file.csv'), ... or a "
                   "number (a constant); docs/reference/scenario.md"})]
#: A positive whole number (workers, attempts, a window): ``True`` and ``2.5`` are refused.
Count = Annotated[int, BeforeValidator(_counter(1))]
#: A whole number >= 0 (a seed, a backlog, replicas).
Whole = Annotated[int, BeforeValidator(_counter(0))]
#: Seconds (or any finite quantity) >= 0.
NonNegative = Annotated[float, BeforeValidator(finite("a number >= 0", lambda x: x >= 0))]
#: Seconds (or any finite quantity) > 0.
Positive = Annotated[float, BeforeValidator(finite("a number > 0", lambda x: x > 0))]
#: Messages per second >= 0 (a rate of 0 is a silent period).
Rate = Annotated[float, BeforeValidator(finite("a rate >= 0 (msg/s)", lambda x: x >= 0))]
#: A probability in [0, 1].
Probability = Annotated[float, BeforeValidator(
    finite("a probability in [0, 1]", lambda x: 0 <= x <= 1))]
#: A probability in [0, 1): a share that cannot be every message (loss, failure).
Fraction = Annotated[float, BeforeValidator(
    finite("a probability in [0, 1)", lambda x: 0 <= x < 1))]
#: A queue's bound: a whole number >= 0, or ``.inf``.
Capacity = Annotated[float, BeforeValidator(
    _or_inf("a whole number >= 0 or .inf", lambda x: x >= 0, whole=True)), _NUMBER_OR_INF]
#: Bytes/second > 0, or ``.inf`` (no serialization delay).
Bandwidth = Annotated[float, BeforeValidator(
    _or_inf("a number of bytes/second > 0 (or .inf)", lambda x: x > 0)), _NUMBER_OR_INF]
#: Seconds > 0, or ``.inf`` (no bound on a wait).
PositiveOrInf = Annotated[float, BeforeValidator(
    _or_inf("a number of seconds > 0 (or .inf)", lambda x: x > 0)), _NUMBER_OR_INF]


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE_RULE = "a size > 0 such as 2G, 500M or a number of bytes (inf: no limit)"


def read_size(v: Any) -> float:
    """Bytes from a size: a number of bytes, text with a binary unit (``2G``, ``500M``,
    ``1.5GB``, ``64KiB``) or a word for infinity; refused unless > 0."""
    v = read_inf(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", v, re.IGNORECASE)
        if m is None:
            raise ValueError(f"must be {_SIZE_RULE}, got {shown(v)}")
        v = float(m.group(1)) * _UNITS[m.group(2).upper()]
    x = number(v, _SIZE_RULE)
    if not x > 0:
        raise ValueError(f"must be {_SIZE_RULE}, got {shown(v)}")
    return x


#: Bytes > 0 given as a number or a size with a unit (``2G``), or ``.inf``.
Size = Annotated[float, BeforeValidator(read_size), WithJsonSchema({
    "anyOf": [{"type": "number", "exclusiveMinimum": 0},
              {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[KkMmGgTt]?([iI]?[bB])?\s*$"},
              _INF_TEXT],
    "description": _SIZE_RULE})]


def format_size(n: float) -> str:
    """Bytes as a user reads them, in the binary units :func:`read_size` takes back."""
    if not math.isfinite(n):
        return "unbounded"
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        size = _UNITS[unit[0]]
        if n >= size:
            return f"{n / size:.3g} {unit}" if n / size < 1000 else f"{n / size:.0f} {unit}"
    return f"{n:.0f} bytes"
