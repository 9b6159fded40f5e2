"""An interactive explorer for notebooks: a slider over one scenario value that reruns the
scenario and redraws its mean latency against theory.

    simq.explore("models/mm1.yaml", "producers.app.rate", 0.1, 0.95)

Each position of the slider is one run (summary records, ``replications`` of them for a
confidence interval); the points already run stay on the plot, so moving the slider
builds the load curve a class would otherwise compute with a sweep. The theory curve is
:func:`simq.predict` at every position of the slider, drawn where a model applies.

The figure is made by :meth:`Explorer.figure`, which needs no widget library: a script
or a test calls it directly. :func:`explore` wraps it in an ipywidgets slider (the
``notebooks`` extra) when that is installed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simq.errors import ScenarioError
from simq.model.predict import predict
from simq.run import run
from simq.scenario import Scenario, load

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Explorer", "explore"]


@dataclass
class Explorer:
    """The runs behind one slider: ``path`` of ``scenario`` from ``low`` to ``high``."""

    scenario: Scenario
    path: str
    low: float
    high: float
    steps: int = 20
    replications: int = 3
    #: Each value run so far: (mean latency, half-width of its 95% interval).
    points: dict[float, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ScenarioError("explore", "needs finite low < high",
                                (self.low, self.high))
        if self.steps < 1:
            raise ScenarioError("explore", "steps must be an integer >= 1", self.steps)
        self.at(self.low)  # the path must exist and take a number: refused here, not later

    @property
    def values(self) -> np.ndarray:
        """The slider's positions."""
        return np.linspace(self.low, self.high, self.steps + 1)

    def at(self, value: float) -> Scenario:
        """The scenario with ``path`` set to ``value`` (summary records: flat memory)."""
        return self.scenario.with_overrides({self.path: float(value),
                                             "run.records": "summary",
                                             "run.replications": self.replications})

    def measure(self, value: float) -> tuple[float, float]:
        """Run the scenario at ``value`` (once; later calls reuse the result)."""
        value = float(value)
        if value not in self.points:
            s = run(self.at(value)).summary
            ci = s.get("ci95", {}).get("latency", {})
            self.points[value] = (float(s["latency"]["mean"]),
                                  float(ci.get("mean", math.nan)) if isinstance(ci, Mapping)
                                  else math.nan)
        return self.points[value]

    @functools.cached_property
    def theory(self) -> tuple[np.ndarray, np.ndarray, str]:
        """Theory's mean latency at every position (NaN where no model applies, or where
        the queue is unstable) and the model's name: the same for every redraw, so
        computed once."""
        names: list[str] = []
        ys = []
        for v in self.values:
            p = predict(self.at(v))
            ys.append(p.latency_mean if p.applies else math.nan)
            if p.applies and p.model not in names:
                names.append(p.model)
        return self.values, np.asarray(ys, dtype=float), " / ".join(names)

    def figure(self, value: float) -> Figure:
        """Run ``value`` if it has not been, and draw every point so far against theory."""
        import matplotlib.pyplot as plt

        self.measure(value)
        fig, ax = plt.subplots(figsize=(7, 3.8))
        xs, ys, model = self.theory
        if np.isfinite(ys).any():
            ax.plot(xs, ys, "--", color="k", lw=1, label=f"{model} theory")
        done = sorted(self.points)
        means = np.array([self.points[v][0] for v in done])
        cis = np.array([self.points[v][1] for v in done])
        ax.errorbar(done, means, yerr=np.where(np.isfinite(cis), cis, 0), fmt="o",
                    color="tab:blue", ms=4, capsize=3,
                    label=f"simulated ({self.replications} replications, 95% CI)")
        mean, _ = self.points[float(value)]
        ax.plot([value], [mean], "o", color="tab:red", ms=8, zorder=3,
                label=f"{self.path} = {value:g}: {mean:.3g} s")
        ax.set_xlim(self.low - 0.02 * (self.high - self.low),
                    self.high + 0.02 * (self.high - self.low))
        ax.set_xlabel(self.path)
        ax.set_ylabel("mean latency (s)")
        ax.set_title(f"{self.scenario.name}: latency as {self.path} changes")
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        return fig


def explore(scenario: Scenario | str | Mapping[str, Any], path: str, low: float, high: float,
            *, steps: int = 20, replications: int = 3, value: float | None = None) -> Any:
    """A slider over ``path`` from ``low`` to ``high`` that reruns the scenario and redraws
    its mean latency against theory (an ipywidgets box; needs ``pip install
    'simq[notebooks]'``). ``value``: where the slider starts (default: the middle)."""
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        raise ScenarioError("explore", "needs ipywidgets (pip install 'simq[notebooks]'); "
                            "Explorer(...).figure(value) draws the same plot without it",
                            "ipywidgets") from None
    import matplotlib.pyplot as plt

    ex = Explorer(load(scenario), path, float(low), float(high), steps, replications)
    start = ex.values[len(ex.values) // 2] if value is None else float(value)
    slider = widgets.FloatSlider(value=start, min=ex.low, max=ex.high,
                                 step=(ex.high - ex.low) / ex.steps, description=path,
                                 continuous_update=False, readout_format=".3g",
                                 style={"description_width": "initial"},
                                 layout=widgets.Layout(width="600px"))
    out = widgets.Output()

    def draw(v: float) -> None:
        with out:
            out.clear_output(wait=True)
            fig = ex.figure(v)
            display(fig)  # type: ignore[no-untyped-call]
            plt.close(fig)

    slider.observe(lambda change: draw(change["new"]), names="value")
    draw(start)
    return widgets.VBox([slider, out])
