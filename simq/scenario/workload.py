"""Scenario keys for load that changes over time and capacity that follows it.

A producer's ``arrivals:`` (instead of ``rate``/``interarrival``), a queue's ``backlog:``
and a consumer group's ``schedule:`` or ``autoscale:``. Every key is documented in
``docs/peak.md``. The pure functions here (piecewise rates, stationary MMPP) are shared by
the engine's samplers and by the nominal rates in ``flows``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from simq.datafiles import Folder
from simq.dists import Distribution, exponential_rate
from simq.errors import ScenarioError, shown
from simq.scenario.types import (
    STRICT,
    Count,
    Dist,
    NonNegative,
    Positive,
    Rate,
    Whole,
    default_dist,
    exactly_one,
)

__all__ = ["ArrivalsSpec", "AutoscaleSpec", "BacklogSpec", "Trace", "mmpp_stationary", "prepare"]


KINDS = ("schedule", "spike", "diurnal", "mmpp", "onoff", "trace")


class SpikeSpec(BaseModel):
    """``base`` msg/s, ``peak`` msg/s during [start, start + duration), then ``base`` again."""

    model_config = STRICT
    base: Rate
    peak: Rate
    start: NonNegative
    duration: Positive


class DiurnalSpec(BaseModel):
    """rate(t) = mean + amplitude * sin(2 pi t / period + phase)."""

    model_config = STRICT
    mean: Positive
    amplitude: NonNegative
    period: Positive
    phase: Annotated[float, Field(allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _nonneg(self) -> DiurnalSpec:
        if self.amplitude > self.mean:
            raise ValueError(
                f"amplitude must be <= mean ({self.mean:g}) so the rate stays >= 0, "
                f"got {self.amplitude:g}")
        return self


class MMPPSpec(BaseModel):
    """Markov-modulated Poisson: rate ``rates[i]`` in state i, which it leaves at rate
    ``switch[i]`` for one of the other states chosen uniformly."""

    model_config = STRICT
    rates: Annotated[list[Rate], Field(min_length=2)]
    switch: Annotated[list[Positive], Field(min_length=2)]

    @model_validator(mode="after")
    def _same_length(self) -> MMPPSpec:
        if len(self.rates) != len(self.switch):
            raise ValueError(f"switch must have one rate per state ({len(self.rates)}), "
                             f"got {len(self.switch)}")
        if max(self.rates) <= 0:
            raise ValueError("at least one state must have a rate > 0")
        return self


class OnOffSpec(BaseModel):
    """Poisson at ``rate`` during ON periods (mean ``on`` s), silent during OFF (mean ``off``)."""

    model_config = STRICT
    rate: Positive
    on: Positive
    off: Positive


class Trace(tuple[float, ...]):
    """A trace's send times, in order, with the message keys of its ``key`` column
    (``None``: no such column; ``""`` in it: that message has no key)."""

    keys: tuple[str, ...] | None

    def __new__(cls, times: tuple[float, ...], keys: tuple[str, ...] | None = None) -> Trace:
        out = super().__new__(cls, times)
        out.keys = keys
        return out


def _read_trace(value: Any, files: Folder) -> Trace:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the name of a CSV file of send times, got {shown(value)}")
    try:
        path, data = files.read(value, "", "trace file")
        text = data.decode("utf-8-sig")
    except ScenarioError as err:
        raise ValueError(f"{err.rule}: {shown(err.value)}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"trace file {path.name!r} is not UTF-8 text (byte {err.start})"
                         ) from None
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    column = 0
    key_column: int | None = None
    if rows:
        try:
            float(rows[0][0])
        except ValueError:
            header = [c.strip().lower() for c in rows[0]]
            named = [i for i, h in enumerate(header) if h in {"time", "sent", "t", "timestamp"}]
            column = named[0] if named else 0
            key_column = header.index("key") if "key" in header else None
            rows = rows[1:]
    times: list[float] = []
    keys: list[str] = []
    for line, r in enumerate(rows, start=1):
        try:
            t = float(r[column])
        except (ValueError, IndexError):
            raise ValueError(f"{path.name} row {line}: the time column is not a number of "
                             "seconds") from None
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"{path.name} row {line}: send times must be finite and >= 0")
        if times and t < times[-1]:
            raise ValueError(f"{path.name} row {line}: send times must not decrease")
        times.append(t)
        if key_column is not None:
            # A short row or an empty cell: this message has no key.
            keys.append(r[key_column].strip() if key_column < len(r) else "")
    if not times:
        raise ValueError(f"{path.name}: the trace has no send times")
    return Trace(tuple(times), tuple(keys) if key_column is not None else None)


class ArrivalsSpec(BaseModel):
    """Exactly one time-varying arrival process for a producer."""

    model_config = STRICT
    schedule: list[tuple[NonNegative, Rate]] | None = None
    repeat: Positive | None = None
    spike: SpikeSpec | None = None
    diurnal: DiurnalSpec | None = None
    mmpp: MMPPSpec | None = None
    onoff: OnOffSpec | None = None
    trace: Annotated[Trace | None, WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "a CSV file of send times (and optional size, key columns), next to "
                       "the scenario file"})] = None
    process: Literal["poisson", "deterministic"] = "poisson"

    @field_validator("trace", mode="before")
    @classmethod
    def _trace(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or isinstance(v, Trace):
            return v
        context = info.context or {}
        return _read_trace(v, Folder(context.get("base_dir"), bool(context.get("contain"))))

    @field_validator("schedule", mode="after")
    @classmethod
    def _schedule(cls, v: list[tuple[float, float]] | None) -> Any:
        if v is None:
            return None
        if not v:
            raise ValueError("a schedule needs at least one [time, rate] pair")
        if v[0][0] != 0:
            raise ValueError(f"the first time must be 0 (the rate from the start), got {v[0][0]:g}")
        for (a, _), (b, _) in zip(v, v[1:], strict=False):
            if b <= a:
                raise ValueError(f"times must increase, got {b:g} after {a:g}")
        if max(r for _, r in v) <= 0:
            raise ValueError("at least one rate must be > 0")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> ArrivalsSpec:
        kind = exactly_one(self, KINDS)
        if self.repeat is not None:
            if kind != "schedule":
                raise ValueError("repeat applies to a schedule only")
            last = self.schedule[-1][0]  # type: ignore[index]
            if self.repeat <= last:
                raise ValueError(f"repeat (the period) must be > the last time ({last:g}), "
                                 f"got {self.repeat:g}")
        if self.process == "deterministic" and kind not in {"schedule", "spike"}:
            raise ValueError("process: deterministic applies to schedule and spike only")
        if kind == "spike" and max(self.spike.base, self.spike.peak) <= 0:  # type: ignore[union-attr]
            raise ValueError("spike: base or peak must be > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    def pieces(self) -> tuple[list[tuple[float, float]], float | None]:
        """A schedule or spike as piecewise-constant (time, rate) and its repeat period."""
        if self.schedule is not None:
            return list(self.schedule), self.repeat
        s = self.spike
        assert s is not None
        if s.start == 0:
            return [(0.0, s.peak), (s.duration, s.base)], None
        return [(0.0, s.base), (s.start, s.peak), (s.start + s.duration, s.base)], None

    def mean_rate(self, horizon: float | None = None) -> float:
        """The mean arrival rate over [0, horizon] (the long-run rate when horizon is None)."""
        kind = self.kind
        if kind in {"schedule", "spike"}:
            pieces, period = self.pieces()
            if horizon is None or not math.isfinite(horizon):
                if period is None:
                    return pieces[-1][1]
                horizon = period
            return cumulative(pieces, period, horizon) / horizon
        if kind == "diurnal":
            d = self.diurnal
            assert d is not None
            if horizon is None or not math.isfinite(horizon):
                return d.mean
            w = 2 * math.pi / d.period
            integral = d.mean * horizon - d.amplitude / w * (
                math.cos(w * horizon + d.phase) - math.cos(d.phase))
            return integral / horizon
        if kind == "trace":
            t = np.asarray(self.trace)
            end = float(t[-1]) if horizon is None or not math.isfinite(horizon) else horizon
            n = int((t <= end).sum())
            return n / end if end > 0 else math.inf
        rates, switch = self.mmpp_params()
        return float(np.dot(mmpp_stationary(switch), rates))

    def mmpp_params(self) -> tuple[list[float], list[float]]:
        if self.onoff is not None:
            o = self.onoff
            return [o.rate, 0.0], [1.0 / o.on, 1.0 / o.off]
        assert self.mmpp is not None
        return list(self.mmpp.rates), list(self.mmpp.switch)


def cumulative(pieces: list[tuple[float, float]], period: float | None, t: float) -> float:
    """The integral of a piecewise-constant rate from 0 to t."""
    total = 0.0
    if period is not None and t >= period:
        cycles = math.floor(t / period)
        total += cycles * cumulative(pieces, None, period)
        t -= cycles * period
    ends = [p[0] for p in pieces[1:]] + [period if period is not None else math.inf]
    for (start, rate), end in zip(pieces, ends, strict=True):
        if t <= start:
            break
        total += rate * (min(t, end) - start)
    return total


def mmpp_stationary(switch: list[float]) -> np.ndarray:
    """Stationary state probabilities of the modulating chain (uniform jumps)."""
    n = len(switch)
    q = mmpp_generator(switch)
    a = np.vstack([q.T, np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    return np.asarray(np.linalg.lstsq(a, b, rcond=None)[0])


def mmpp_generator(switch: list[float]) -> np.ndarray:
    """The generator of the modulating chain: leave i at switch[i], to a uniform other state."""
    n = len(switch)
    q = np.zeros((n, n))
    for i, r in enumerate(switch):
        q[i, :] = r / (n - 1)
        q[i, i] = -r
    return q


class BacklogSpec(BaseModel):
    """Messages already waiting when the run starts, with their ages."""

    model_config = STRICT
    count: Whole
    age: Dist = default_dist("constant(0)")
    size: Dist = default_dist("constant(1000)")


class AutoscaleSpec(BaseModel):
    """Add or remove workers from the backlog (or lag) every ``interval`` seconds."""

    model_config = STRICT
    min: Whole = 1
    max: Count
    metric: Literal["backlog", "lag"] = "backlog"
    target_backlog_per_worker: Positive | None = None
    target_lag: Positive | None = None
    interval: Positive = 10.0
    scale_up_delay: NonNegative = 0.0
    cooldown: NonNegative = 60.0

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.min > self.max:
            raise ValueError(f"min must be <= max ({self.max}), got {self.min}")
        if self.metric == "backlog" and self.target_backlog_per_worker is None:
            raise ValueError("metric backlog needs target_backlog_per_worker (messages)")
        if self.metric == "lag" and self.target_lag is None:
            raise ValueError("metric lag needs target_lag (seconds)")
        return self


def check_consumer(path: str, count: int, schedule: Any, autoscale: Any) -> None:
    """Rules across keys of one consumer group (raises ScenarioError)."""
    if schedule is not None and autoscale is not None:
        raise ScenarioError(path, "give `schedule` or `autoscale`, not both")
    if schedule is not None:
        if not schedule:
            raise ScenarioError(f"{path}.schedule", "needs at least one [time, count] pair")
        prev = -math.inf
        for t, _ in schedule:
            if t <= prev:
                raise ScenarioError(f"{path}.schedule", "times must increase", t)
            prev = t
    if autoscale is not None and not autoscale.min <= count <= autoscale.max:
        raise ScenarioError(
            f"{path}.count",
            f"the starting count must lie in [autoscale.min, autoscale.max] = "
            f"[{autoscale.min}, {autoscale.max}]", count)


def prepare(data: dict[str, Any]) -> dict[str, Any]:
    """Give a producer with ``arrivals`` a placeholder ``interarrival`` (replaced by the
    mean rate after validation); refuse ``arrivals`` next to ``rate``/``interarrival``."""
    comps = data.get("producers")
    if not isinstance(comps, Mapping):
        return data
    for name, spec in comps.items():
        if isinstance(spec, dict) and "arrivals" in spec:
            if "interarrival" in spec:
                raise ScenarioError(f"producers.{name}.arrivals",
                                    "give `arrivals` or `rate`/`interarrival`, not both")
            spec["interarrival"] = "constant(1)"
    return data


def mean_interarrival(spec: ArrivalsSpec, horizon: float | None, path: str) -> Distribution:
    """The exponential at the mean rate: what the nominal rates and theory read."""
    rate = spec.mean_rate(horizon)
    if not rate > 0 or not math.isfinite(rate):
        raise ScenarioError(path, "the mean arrival rate over the run must be > 0 and finite",
                            rate)
    return exponential_rate(rate, path=path)


def nominal_count(count: int, schedule: list[tuple[float, int]] | None,
                  autoscale: AutoscaleSpec | None, horizon: float | None) -> float:
    """Workers of a group on paper: ``count``; for a schedule its time average over
    [0, horizon] (the last count when there is no horizon); for autoscaling ``max``, the
    capacity the policy can reach."""
    if autoscale is not None:
        return float(autoscale.max)
    if not schedule:
        return float(count)
    if horizon is None or not math.isfinite(horizon):
        return float(schedule[-1][1])
    pieces = [(0.0, float(count)), *[(float(t), float(n)) for t, n in schedule]]
    total, prev_t, prev_n = 0.0, 0.0, float(count)
    for t, n in pieces[1:]:
        if t >= horizon:
            break
        total += prev_n * (t - prev_t)
        prev_t, prev_n = t, n
    total += prev_n * (horizon - prev_t)
    return total / horizon
