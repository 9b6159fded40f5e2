"""Time-varying arrival processes, sampled exactly.

Each builder returns a zero-argument ``gap()`` giving the time from *now* to the next send
and the time after which the process sends nothing more (``None``: never ends). The
producer calls ``gap()`` right after each send (or after backpressure released it), so the
process reads the clock itself: a blocked producer resumes the process where the clock
is, and arrivals it would have made while blocked are not made (as for ``interarrival``).

- schedule / spike: inversion of the cumulative rate, piece by piece (exact for a
  piecewise-constant rate; ``deterministic`` puts arrival n at the time the cumulative
  rate reaches n);
- diurnal: thinning (Lewis-Shedler) under the peak rate;
- mmpp / onoff: the modulating chain simulated jump by jump (exact: memoryless);
- trace: the file's send times, in order.

A plain ``rate``/``interarrival`` producer never comes here: it keeps its block sampler.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from simq.dists import parse
from simq.engine.core import Streams
from simq.scenario.workload import ArrivalsSpec, mmpp_stationary

__all__ = ["TraceGap", "build"]

Gap = Callable[[], float]


class Clock(Protocol):
    """What an arrival process reads: the time now (a SimPy environment, or the fast
    engine's producer clock)."""

    @property
    def now(self) -> float: ...

_EXP1 = parse("exponential(rate=1)")


def build(spec: ArrivalsSpec, env: Clock, streams: Streams,
          key: str) -> tuple[Gap, float | None]:
    """The sampler of ``spec`` for the producer whose dotted path is ``key``."""
    kind = spec.kind
    if kind in {"schedule", "spike"}:
        pieces, period = spec.pieces()
        unit = None if spec.process == "poisson" else 1.0
        return _piecewise(env, pieces, period, streams.draw(f"{key}.arrivals", _EXP1), unit)
    if kind == "diurnal":
        d = spec.diurnal
        assert d is not None
        return _diurnal(env, d.mean, d.amplitude, d.period, d.phase,
                        streams.draw(f"{key}.arrivals", _EXP1),
                        streams.uniform(f"{key}.arrivals.thinning")), None
    if kind == "trace":
        assert spec.trace is not None
        return _trace(env, spec.trace)
    rates, switch = spec.mmpp_params()
    return _mmpp(env, rates, switch, streams.draw(f"{key}.arrivals", _EXP1),
                 streams.uniform(f"{key}.arrivals.choice")), None


def _piecewise(env: Clock, pieces: list[tuple[float, float]], period: float | None,
               exp1: Gap, unit: float | None) -> tuple[Gap, float | None]:
    starts = [p[0] for p in pieces]
    rates = [p[1] for p in pieces]
    ends = [*starts[1:], period if period is not None else math.inf]
    end: float | None = None
    if period is None and rates[-1] == 0:
        # Nothing after the last piece starts: the producer stops there.
        end = math.nextafter(starts[-1], math.inf)

    def gap() -> float:
        now = env.now
        need = exp1() if unit is None else unit
        base = 0.0
        t = now
        if period is not None:
            cycles = math.floor(t / period)
            base = cycles * period
            t -= base
        i = bisect.bisect_right(starts, t) - 1
        while True:
            rate = rates[i]
            room = ends[i] - t
            if rate > 0 and need <= rate * room:
                return base + t + need / rate - now
            need -= rate * room
            i += 1
            if i == len(starts):
                if period is None:
                    return max(0.0, end - now) if end is not None else math.inf
                i = 0
                base += period
            t = starts[i]

    return gap, end


def _diurnal(env: Clock, mean: float, amplitude: float, period: float, phase: float,
             exp1: Gap, coin: Gap) -> Gap:
    top = mean + amplitude
    w = 2 * math.pi / period
    sin = math.sin

    def gap() -> float:
        now = env.now
        t = now
        while True:
            t += exp1() / top
            if coin() * top <= mean + amplitude * sin(w * t + phase):
                return t - now

    return gap


def _mmpp(env: Clock, rates: list[float], switch: list[float], exp1: Gap,
          coin: Gap) -> Gap:
    n = len(rates)
    total = [r + s for r, s in zip(rates, switch, strict=True)]
    p_arrival = [r / t for r, t in zip(rates, total, strict=True)]
    # Start in the stationary state distribution, so the process is stationary from t = 0.
    pi = mmpp_stationary(switch)
    u = coin()
    state = min(int(np.searchsorted(np.cumsum(pi), u, side="right")), n - 1)
    clock = [0.0]  # how far the chain has been simulated
    cur = [state]

    def jump(s: int) -> int:
        k = int(coin() * (n - 1))
        return k if k < s else k + 1

    def gap() -> float:
        now = env.now
        t, s = clock[0], cur[0]
        # Blocked by backpressure: the chain went on while the producer waited; it makes
        # no arrivals for that time, but its state moved.
        while t < now:
            step = exp1() / switch[s]
            if t + step >= now:
                t = now  # memoryless: the remaining holding time is a fresh draw
                break
            t += step
            s = jump(s)
        while True:
            t += exp1() / total[s]
            if coin() < p_arrival[s]:
                clock[0], cur[0] = t, s
                return t - now
            s = jump(s)

    return gap


class TraceGap:
    """The gaps of a trace; ``position`` is the row of the send being made (its key's)."""

    def __init__(self, env: Clock, times: tuple[float, ...]) -> None:
        self.env = env
        self.times = times
        self.end = math.nextafter(times[-1], math.inf)
        self.at = 0
        # Send times before the producer starts are skipped: a trace is absolute time.
        self.first = True

    def position(self) -> int:
        return self.at - 1

    def __call__(self) -> float:
        now = self.env.now
        i = self.at
        if self.first:
            self.first = False
            i = bisect.bisect_left(self.times, now)
        if i >= len(self.times):
            self.at = i + 1  # past the last row: a send now has no row
            return max(0.0, self.end - now)
        self.at = i + 1
        return max(0.0, self.times[i] - now)


def _trace(env: Clock, times: tuple[float, ...]) -> tuple[Gap, float]:
    gap = TraceGap(env, times)
    return gap, gap.end
