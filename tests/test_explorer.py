"""simq.explore: the slider's runs and its plot against theory."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import assert_agrees

import simq
from simq.errors import ScenarioError
from simq.explorer import Explorer

matplotlib.use("Agg")
MM1 = Path(__file__).resolve().parents[1] / "models" / "mm1.yaml"
SHORT = {"run.until": 4000.0, "run.warmup": 400.0}


def _explorer(**kw: object) -> Explorer:
    sc = simq.load(MM1).with_overrides(SHORT)
    return Explorer(sc, "producers.app.rate", 0.2, 0.8, **kw)  # type: ignore[arg-type]


def test_the_theory_curve_is_mm1_at_every_position() -> None:
    ex = _explorer(steps=6, replications=2)
    fig = ex.figure(0.5)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "M/M/1 theory"]
    xs, ys = line.get_data()
    assert np.allclose(xs, np.linspace(0.2, 0.8, 7))
    assert np.allclose(ys, 1.0 / (1.0 - np.asarray(xs)))  # W = 1/(mu - lambda), mu = 1


def test_each_position_runs_once_and_stays_on_the_plot(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = _explorer(steps=3, replications=2)
    ex.figure(0.4)
    calls = []
    real = ex.measure.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Explorer, "measure", lambda self, v: calls.append(v) or real(self, v))
    fig = ex.figure(0.6)
    ex.figure(0.4)
    assert sorted(ex.points) == [0.4, 0.6]
    assert calls == [0.6, 0.4] and len(ex.points) == 2  # 0.4 was not run again
    (points,) = [c for c in fig.axes[0].containers]  # the error bars of the points so far
    assert len(points.lines[0].get_xdata()) == 2


def test_the_measured_latency_is_the_run_at_that_value() -> None:
    ex = _explorer(steps=3, replications=5)
    mean, ci = ex.measure(0.5)
    res = simq.run(ex.at(0.5))
    assert (mean, ci) == (res.summary["latency"]["mean"], res.summary["ci95"]["latency"]["mean"])
    assert_agrees(res, "latency.mean", 1.0 / (1.0 - 0.5), kind="approximate",
                  reason="short runs: the warm-up bias of 4,000 s runs")


@pytest.mark.parametrize(("path", "low", "high", "word"), [
    ("producers.app.rat", 0.1, 0.9, "producers.app.rat"),
    ("producers.app.rate", 0.9, 0.1, "low < high"),
    ("producers.app.rate", 0.1, float("inf"), "low < high"),
])
def test_bad_input_is_refused_when_built(path: str, low: float, high: float, word: str) -> None:
    sc = simq.load(MM1)
    with pytest.raises(ScenarioError, match=word.replace(".", r"\.")):
        Explorer(sc, path, low, high)


def test_explore_is_a_slider_that_reruns() -> None:
    widgets = pytest.importorskip("ipywidgets")
    box = simq.explore(simq.load(MM1).with_overrides(SHORT), "producers.app.rate", 0.2, 0.8,
                       steps=3, replications=2)
    slider, out = box.children
    assert isinstance(slider, widgets.FloatSlider) and isinstance(out, widgets.Output)
    assert slider.value == pytest.approx(0.6) and (slider.min, slider.max) == (0.2, 0.8)
