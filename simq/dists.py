"""Random variates and their moments.

A distribution is a small frozen dataclass that knows its mean, variance and squared
coefficient of variation (what ``simq.theory`` needs) and draws blocks of variates from a
``numpy.random.Generator`` it is handed (there is no global RNG).

Scenario files write distributions as text, e.g. ``exponential(rate=0.8)``. ``parse`` reads
that text with ``ast`` and a whitelist, never ``eval``; ``str(d)`` gives back a canonical text
that ``parse`` turns into an equal object.

The module is one thing, the distribution family and its text form: each distribution
declares its fields' checks (``checks``) and its accepted keyword sets (``forms``) on the
class, and the one reader of the text builds any of them from those declarations.
"""

from __future__ import annotations

import ast
import csv
import itertools
import math
import numbers
import pathlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from simq.datafiles import Folder
from simq.errors import ScenarioError

__all__ = [
    "BLOCK",
    "Constant",
    "Distribution",
    "Empirical",
    "Erlang",
    "Exponential",
    "Gamma",
    "Hyperexponential",
    "Lognormal",
    "Pareto",
    "Uniform",
    "Weibull",
    "exponential_rate",
    "parse",
    "stream",
]

# How far the probabilities of a hyperexponential may stray from summing to 1.
PROBABILITY_TOLERANCE = 1e-9

_SYNTAX = "not a distribution (allowed: name(key=number, ...))"


# --- checks shared by the constructors ---------------------------------------------------
# They raise ScenarioError with an empty path; parse() re-raises with the scenario path.


def _number(key: str, value: object) -> float:
    """``value`` as a finite float, or a ScenarioError naming ``key``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ScenarioError("", f"{key} must be a number", value)
    try:
        number = float(value)
    except OverflowError:  # an int literal too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ScenarioError("", f"{key} must be finite", value)
    return number


def _positive(key: str, value: object) -> float:
    number = _number(key, value)
    if number <= 0:
        raise ScenarioError("", f"{key} must be > 0", value)
    return number


def _nonnegative(key: str, value: object) -> float:
    number = _number(key, value)
    if number < 0:
        raise ScenarioError("", f"{key} must be >= 0", value)
    return number


def _numbers(key: str, values: object, check: Callable[[str, object], float]) -> tuple[float, ...]:
    """A non-empty list of numbers, each passed through ``check``."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise ScenarioError("", f"{key} must be a list of numbers", values)
    if len(values) == 0:
        raise ScenarioError("", f"{key} must not be empty", list(values))
    return tuple(check(f"{key}[{i}]", v) for i, v in enumerate(values))


def _nonnegatives(key: str, values: object) -> tuple[float, ...]:
    return _numbers(key, values, _nonnegative)


def _positives(key: str, values: object) -> tuple[float, ...]:
    return _numbers(key, values, _positive)


def _phases(key: str, value: object) -> int:
    """Erlang's k: an integer >= 1 (an integral float such as 2.0 is accepted)."""
    number = _number(key, value)
    if not number.is_integer() or number < 1:
        raise ScenarioError("", f"{key} must be an integer >= 1", value)
    return int(number)


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalise their own fields once, in __post_init__.
    object.__setattr__(obj, name, value)


def _exp(x: float) -> float:
    """``math.exp`` that saturates to inf instead of raising."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _gamma_fn(x: float) -> float:
    """``math.gamma`` that saturates to inf instead of raising."""
    try:
        return math.gamma(x)
    except OverflowError:
        return math.inf


def _text(value: object) -> str:
    """One parameter in canonical text form (floats via repr, so they round-trip exactly)."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return repr(value)


# --- the distributions -------------------------------------------------------------------


class Distribution(ABC):
    """A non-negative random variable: moments, block sampling and a canonical text form."""

    #: Name used in the text form, e.g. ``"exponential"``.
    family: ClassVar[str]
    #: The accepted sets of keywords; exactly one must be given.
    forms: ClassVar[tuple[tuple[str, ...], ...]]
    #: Keywords that may also be given positionally, in order.
    positional: ClassVar[tuple[str, ...]] = ()
    #: Each field's check, in order: it refuses a bad value (a ScenarioError naming the
    #: field) and returns the value normalised (a float, a tuple).
    checks: ClassVar[tuple[tuple[str, Callable[[str, Any], Any]], ...]] = ()

    def __post_init__(self) -> None:
        for name, check in self.checks:
            _set(self, name, check(name, getattr(self, name)))

    @property
    @abstractmethod
    def mean(self) -> float:
        """Expected value (``math.inf`` when infinite)."""

    @property
    @abstractmethod
    def variance(self) -> float:
        """Variance (``math.inf`` when infinite)."""

    @property
    def always_zero(self) -> bool:
        """Whether every draw is 0: a non-negative variable with mean 0 is 0 almost surely
        (``constant(0)``, ``uniform(0, 0)``, an empirical sample of zeros)."""
        return self.mean == 0

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, variance / mean**2 (0 for a constant)."""
        variance = self.variance
        if variance == 0:
            return 0.0
        mean = self.mean
        if math.isinf(variance) or math.isinf(mean):
            return math.inf
        return variance / mean / mean  # not mean**2, which can overflow

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """A float64 array of ``n`` independent draws (all >= 0) taken from ``rng``."""

    @classmethod
    @abstractmethod
    def from_keywords(cls, kw: Mapping[str, object], files: Folder) -> Distribution:
        """Build from the keywords of exactly one of ``cls.forms`` (used by parse);
        ``files`` says where a data file is found."""

    def __str__(self) -> str:
        args = ", ".join(
            f"{f.name}={_text(getattr(self, f.name))}"
            for f in fields(self)  # type: ignore[arg-type]
        )
        return f"{self.family}({args})"


@dataclass(frozen=True)
class Constant(Distribution):
    """Always ``value``."""

    value: float

    family: ClassVar[str] = "constant"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("value",),)
    positional: ClassVar[tuple[str, ...]] = ("value",)

    checks = (("value", _nonnegative),)

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Constant:
        return cls(value=kw["value"])

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.float64)


@dataclass(frozen=True)
class Exponential(Distribution):
    """Exponential with the given ``rate`` (mean 1/rate)."""

    rate: float

    family: ClassVar[str] = "exponential"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("rate",), ("mean",))

    checks = (("rate", _positive),)

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Exponential:
        if "mean" in kw:
            return cls(rate=1.0 / _positive("mean", kw["mean"]))
        return cls(rate=kw["rate"])

    @property
    def mean(self) -> float:
        return 1.0 / self.rate

    @property
    def variance(self) -> float:
        return 1.0 / self.rate**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_exponential(n) / self.rate


@dataclass(frozen=True)
class Uniform(Distribution):
    """Uniform on [low, high], 0 <= low <= high."""

    low: float
    high: float

    family: ClassVar[str] = "uniform"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("low", "high"),)

    checks = (("low", _nonnegative), ("high", _number))

    def __post_init__(self) -> None:
        low, high = self.low, self.high  # as given, for the message
        super().__post_init__()
        if self.high < self.low:
            raise ScenarioError("", f"high must be >= low ({low!r})", high)

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Uniform:
        return cls(low=kw["low"], high=kw["high"])

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


@dataclass(frozen=True)
class Erlang(Distribution):
    """Sum of ``k`` exponential phases, each with rate ``rate`` (mean k/rate)."""

    k: int
    rate: float

    family: ClassVar[str] = "erlang"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("k", "mean"), ("k", "rate"))

    checks = (("k", _phases), ("rate", _positive))

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Erlang:
        k = _phases("k", kw["k"])
        if "mean" in kw:
            return cls(k=k, rate=k / _positive("mean", kw["mean"]))
        return cls(k=k, rate=kw["rate"])

    @property
    def mean(self) -> float:
        return self.k / self.rate

    @property
    def variance(self) -> float:
        return self.k / self.rate**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.k, 1.0 / self.rate, n)


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma with ``shape`` and ``scale`` (mean shape*scale)."""

    shape: float
    scale: float

    family: ClassVar[str] = "gamma"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("shape", "scale"), ("mean", "cv"))

    checks = (("shape", _positive), ("scale", _positive))

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Gamma:
        if "mean" in kw:
            mean, cv = _positive("mean", kw["mean"]), _positive("cv", kw["cv"])
            return cls(shape=1.0 / cv**2, scale=mean * cv**2)
        return cls(shape=kw["shape"], scale=kw["scale"])

    @property
    def mean(self) -> float:
        return self.shape * self.scale

    @property
    def variance(self) -> float:
        return self.shape * self.scale**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.gamma(self.shape, self.scale, n)


@dataclass(frozen=True)
class Lognormal(Distribution):
    """exp(N(mu, sigma**2)); ``mu`` and ``sigma`` belong to the underlying normal."""

    mu: float
    sigma: float

    family: ClassVar[str] = "lognormal"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("mean", "cv"), ("mu", "sigma"))

    checks = (("mu", _number), ("sigma", _positive))

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Lognormal:
        if "mean" in kw:
            mean, cv = _positive("mean", kw["mean"]), _positive("cv", kw["cv"])
            sigma2 = math.log1p(cv**2)
            return cls(mu=math.log(mean) - sigma2 / 2, sigma=math.sqrt(sigma2))
        return cls(mu=kw["mu"], sigma=kw["sigma"])

    @property
    def mean(self) -> float:
        return _exp(self.mu + self.sigma**2 / 2)

    @property
    def variance(self) -> float:
        return math.expm1(self.sigma**2) * _exp(2 * self.mu + self.sigma**2)

    @property
    def scv(self) -> float:
        return math.expm1(self.sigma**2)  # exact, free of the rounding in variance/mean**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)


@dataclass(frozen=True)
class Hyperexponential(Distribution):
    """With probability ``p[i]``, an exponential with rate ``rates[i]``."""

    p: tuple[float, ...]
    rates: tuple[float, ...]

    family: ClassVar[str] = "hyperexponential"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("p", "rates"), ("mean", "cv"))

    checks = (("p", _nonnegatives), ("rates", _positives))

    def __post_init__(self) -> None:
        super().__post_init__()
        p, rates = self.p, self.rates
        if len(p) != len(rates):
            raise ScenarioError(
                "", f"p and rates must have the same length ({len(rates)})", list(p)
            )
        if abs(math.fsum(p) - 1.0) > PROBABILITY_TOLERANCE:
            raise ScenarioError("", f"p must sum to 1 (within {PROBABILITY_TOLERANCE:g})", list(p))

    @classmethod
    def from_keywords(
        cls, kw: Mapping[str, Any], files: Folder
    ) -> Hyperexponential:
        if "mean" not in kw:
            return cls(p=kw["p"], rates=kw["rates"])
        mean, cv = _positive("mean", kw["mean"]), _number("cv", kw["cv"])
        if cv < 1:
            raise ScenarioError("", "cv must be >= 1 for a hyperexponential", kw["cv"])
        # Two phases with balanced means (p1/r1 = p2/r2 = mean/2), the usual H2 fit.
        c2 = cv**2
        p1 = (1 + math.sqrt((c2 - 1) / (c2 + 1))) / 2
        p2 = 1 - p1
        return cls(p=(p1, p2), rates=(2 * p1 / mean, 2 * p2 / mean))

    @property
    def mean(self) -> float:
        return math.fsum(p / r for p, r in zip(self.p, self.rates, strict=True))

    @property
    def variance(self) -> float:
        second = math.fsum(2 * p / r**2 for p, r in zip(self.p, self.rates, strict=True))
        return second - self.mean**2

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.p)

    @cached_property
    def _scales(self) -> np.ndarray:
        return 1.0 / np.asarray(self.rates)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # searchsorted rather than rng.choice: p need only sum to 1 within our tolerance,
        # and the clip keeps a u just above a rounded-down total in the last phase.
        phase = np.searchsorted(self._cumulative, rng.random(n), side="right")
        np.minimum(phase, len(self.p) - 1, out=phase)
        return np.asarray(rng.standard_exponential(n) * self._scales[phase])


@dataclass(frozen=True)
class Pareto(Distribution):
    """Classic Pareto: P(X > x) = (xm/x)**alpha for x >= xm."""

    alpha: float
    xm: float

    family: ClassVar[str] = "pareto"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("alpha", "xm"), ("alpha", "mean"))

    checks = (("alpha", _positive), ("xm", _positive))

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Pareto:
        if "mean" not in kw:
            return cls(alpha=kw["alpha"], xm=kw["xm"])
        alpha = _number("alpha", kw["alpha"])
        if alpha <= 1:
            raise ScenarioError("", "alpha must be > 1 when mean= is given", kw["alpha"])
        return cls(alpha=alpha, xm=_positive("mean", kw["mean"]) * (alpha - 1) / alpha)

    @property
    def mean(self) -> float:
        if self.alpha <= 1:
            return math.inf
        return self.alpha * self.xm / (self.alpha - 1)

    @property
    def variance(self) -> float:
        a = self.alpha
        if a <= 2:
            return math.inf
        return self.xm**2 * a / ((a - 1) ** 2 * (a - 2))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        # numpy's pareto is the Lomax (shifted) form; shift and scale it to the classic one.
        return self.xm * (1.0 + rng.pareto(self.alpha, n))


@dataclass(frozen=True)
class Weibull(Distribution):
    """Weibull with ``shape`` k and ``scale`` lambda."""

    shape: float
    scale: float

    family: ClassVar[str] = "weibull"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("shape", "scale"), ("shape", "mean"))

    checks = (("shape", _positive), ("scale", _positive))

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Weibull:
        if "mean" not in kw:
            return cls(shape=kw["shape"], scale=kw["scale"])
        shape = _positive("shape", kw["shape"])
        mean = _positive("mean", kw["mean"])
        g1 = _gamma_fn(1 + 1 / shape)
        if not math.isfinite(g1):
            raise ScenarioError("", "shape is too small to fit a mean", kw["shape"])
        return cls(shape=shape, scale=mean / g1)

    @property
    def mean(self) -> float:
        return self.scale * _gamma_fn(1 + 1 / self.shape)

    @property
    def variance(self) -> float:
        g1, g2 = _gamma_fn(1 + 1 / self.shape), _gamma_fn(1 + 2 / self.shape)
        if math.isinf(g2):
            return math.inf
        return self.scale**2 * (g2 - g1**2)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, n)


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resamples ``values`` uniformly with replacement.

    ``file`` only records where the values came from (it is printed by ``str`` so that
    the text stays short); equality and hashing look at the values alone.
    """

    values: tuple[float, ...]
    file: str | None = field(default=None, compare=False)

    family: ClassVar[str] = "empirical"
    forms: ClassVar[tuple[tuple[str, ...], ...]] = (("file",), ("values",))
    positional: ClassVar[tuple[str, ...]] = ("file",)

    checks = (("values", _nonnegatives),)

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], files: Folder) -> Empirical:
        if "values" in kw:
            return cls(values=kw["values"])
        file = kw["file"]
        if not isinstance(file, str):
            raise ScenarioError("", "file must be a string", file)
        # Absolute, so that str(d) still names the same file from another folder.
        path, data = files.read(file, "", "empirical file")
        return cls(values=_read_values(path, data), file=str(path))

    @cached_property
    def _array(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)

    @cached_property
    def mean(self) -> float:
        return float(np.mean(self._array))

    @cached_property
    def variance(self) -> float:
        return float(np.var(self._array))  # population variance: the values are the law

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._array[rng.integers(0, len(self._array), n)]

    def __str__(self) -> str:
        if self.file is not None:
            return f"empirical(file={self.file!r})"
        return f"empirical(values={_text(self.values)})"


def _read_values(path: pathlib.Path, data: bytes) -> tuple[float, ...]:
    """Numbers from the first column of a text/CSV file (one header line allowed). An
    error names the file and the line, never what the line holds: the file may be one a
    scenario should not have shown (docs/scenario.md, data files)."""
    name = str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError("", f"empirical file {name!r} is not UTF-8 text (byte "
                            f"{exc.start})") from None
    values: list[float] = []
    seen_content = False
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    for lineno, row in enumerate(csv.reader(lines), start=1):
        cell = row[0].strip() if row else ""
        if not cell:
            continue
        try:
            number = float(cell)
        except ValueError:
            if not seen_content:  # a header line
                seen_content = True
                continue
            raise ScenarioError(
                "", f"empirical file {name!r} line {lineno}: the first column is not a number"
            ) from None
        seen_content = True
        if not math.isfinite(number) or number < 0:
            raise ScenarioError(
                "", f"empirical file {name!r} line {lineno}: values must be finite and >= 0")
        values.append(number)
    if not values:
        raise ScenarioError("", "empirical file holds no values", name)
    return tuple(values)


# --- parsing -----------------------------------------------------------------------------

_FAMILIES: dict[str, type[Distribution]] = {
    cls.family: cls
    for cls in (
        Constant,
        Empirical,
        Erlang,
        Exponential,
        Gamma,
        Hyperexponential,
        Lognormal,
        Pareto,
        Uniform,
        Weibull,
    )
}


class _NotALiteral(Exception):
    """An argument is not a number, a list of numbers or a string."""


def _literal(node: ast.expr) -> object:
    """The value of a whitelisted literal node; anything else raises _NotALiteral."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str) or (
            isinstance(value, int | float) and not isinstance(value, bool)
        ):
            return value
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = node.operand
        if isinstance(operand, ast.Constant) and (
            isinstance(operand.value, int | float) and not isinstance(operand.value, bool)
        ):
            return -operand.value
    elif isinstance(node, ast.List | ast.Tuple):
        items = [_literal(item) for item in node.elts]
        if all(not isinstance(item, str | list) for item in items):
            return items
    raise _NotALiteral


def _needs(cls: type[Distribution]) -> str:
    """How to call ``cls``, e.g. 'exponential needs rate= or mean= (not both)'."""
    forms = cls.forms
    if all(len(form) == 1 for form in forms):
        keys = " or ".join(f"{form[0]}=" for form in forms)
        return f"{cls.family} needs {keys}" + (" (not both)" if len(forms) > 1 else "")
    alternatives = ", or ".join(" and ".join(f"{k}=" for k in form) for form in forms)
    return f"{cls.family} needs {alternatives}"


def _call(text: str) -> tuple[type[Distribution], dict[str, object]]:
    """Check the syntax of ``text`` and bind its arguments to one of the family's forms."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise ScenarioError("", _SYNTAX, text) from None
    node = tree.body
    try:
        value = _literal(node)
    except _NotALiteral:
        pass
    else:
        if isinstance(value, int | float):  # a bare number means a constant
            return Constant, {"value": value}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ScenarioError("", _SYNTAX, text)
    name = node.func.id
    if name.startswith("_"):  # __import__ and friends: never a typo of a distribution name
        raise ScenarioError("", _SYNTAX, text)
    cls = _FAMILIES.get(name)
    if cls is None:
        raise ScenarioError("", f"unknown distribution {name!r}; known: {', '.join(_FAMILIES)}")
    if len(node.args) > len(cls.positional):
        raise ScenarioError("", _needs(cls), text)
    try:
        kw: dict[str, object] = {
            key: _literal(arg) for key, arg in zip(cls.positional, node.args, strict=False)
        }
        for keyword in node.keywords:
            if keyword.arg is None:  # **mapping
                raise _NotALiteral
            if keyword.arg in kw:
                raise ScenarioError("", f"{name} has {keyword.arg}= twice", text)
            kw[keyword.arg] = _literal(keyword.value)
    except _NotALiteral:
        raise ScenarioError("", _SYNTAX, text) from None
    allowed = sorted({key for form in cls.forms for key in form})
    for key in kw:
        if key not in allowed:
            raise ScenarioError(
                "", f"{name} has no parameter {key!r}; allowed: {', '.join(allowed)}", text
            )
    if not any(set(form) == set(kw) for form in cls.forms):
        raise ScenarioError("", _needs(cls), text)
    return cls, kw


def parse(
    text: str | int | float | Distribution,
    *,
    path: str = "",
    base_dir: pathlib.Path | None = None,
    contain: bool = False,
) -> Distribution:
    """Read a distribution from its text form (or a bare number, meaning a constant).

    ``path`` is the scenario key being read; it prefixes every error. Relative
    ``empirical`` files resolve against ``base_dir`` when given, else the working folder;
    with ``contain`` they must lie inside ``base_dir`` (:class:`simq.datafiles.Folder`).
    """
    if isinstance(text, Distribution):
        return text
    try:
        if isinstance(text, str):
            cls, kw = _call(text.strip())
            return cls.from_keywords(kw, Folder(base_dir, contain))
        if isinstance(text, numbers.Real) and not isinstance(text, bool | np.bool_):
            return Constant(value=text)
        raise ScenarioError("", _SYNTAX, text)
    except ScenarioError as exc:
        raise ScenarioError(path, exc.rule, exc.value) from None
    except (OverflowError, ZeroDivisionError):
        # Parameters each within their own rule whose moments leave the range of a float
        # (lognormal cv=1e200, gamma shape=1e-300): no variate could be drawn from them.
        raise ScenarioError(path, "its parameters put its moments beyond the range of a "
                            "float; use values nearer 1", text) from None


def exponential_rate(rate: float, *, path: str = "") -> Distribution:
    """Exponential with the given rate: the scenario shorthand ``rate: 0.8``."""
    try:
        return Exponential(rate=rate)
    except ScenarioError as exc:
        raise ScenarioError(path, exc.rule, exc.value) from None


# Variates drawn per numpy call by every sampler of a run: the engines draw the same
# blocks from the same streams, which is what makes their numbers the same.
BLOCK = 4096


def stream(dist: Distribution, rng: np.random.Generator,
           block: int = BLOCK) -> Callable[[], float]:
    """A function returning the next variate of ``dist`` as a float.

    Variates are drawn from ``rng`` ``block`` at a time, so the simulator's hot path pays
    one C-level ``next`` per call. A constant never touches ``rng``.
    """
    if isinstance(dist, Constant):
        value = dist.value
        return lambda: value
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    sample = dist.sample

    def draw() -> list[float]:
        return sample(rng, block).tolist()  # type: ignore[no-any-return]

    # chain.from_iterable over iter(callable, sentinel) stays in C between blocks: about
    # 25% faster per call than a generator doing `yield from`. A list never equals None.
    return itertools.chain.from_iterable(iter(draw, None)).__next__
