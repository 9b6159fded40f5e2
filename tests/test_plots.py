"""Each plot renders a run's and a sweep's results and draws the series it promises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import simq  # noqa: E402
from simq import plots  # noqa: E402
from simq.sweep import SweepResult, sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 1500, "run.warmup": 150})
    return sweep(sc, {"producers.app.rate": [0.3, 0.6, 0.9, 1.2]}, replications=2,
                 executor="serial", out=tmp_path_factory.mktemp("s"), quiet=True)


@pytest.fixture(scope="module")
def grid2(tmp_path_factory: pytest.TempPathFactory) -> SweepResult:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 800, "run.warmup": 80})
    return sweep(sc, {"producers.app.rate": [0.5, 1.5], "consumers.worker.count": [1, 2, 3]},
                 replications=1, executor="serial", out=tmp_path_factory.mktemp("g"),
                 quiet=True)


@pytest.fixture(scope="module")
def ran() -> simq.RunResult:
    sc = simq.load(ROOT / "models" / "network.yaml")
    sc = sc.with_overrides({"run.until": min(sc.run.until or 2000, 2000), "run.warmup": 100})
    return simq.run(sc, replications=2)


@pytest.fixture(autouse=True)
def _close() -> Iterator[None]:
    yield
    plt.close("all")


def labels(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_latency_vs_load(swept: SweepResult) -> None:
    fig = plots.latency_vs_load(swept)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("load")
    names = labels(fig)
    assert names == ["theory", "document: processing + transmission",
                     "simulated (mean, 95% CI)"]
    # One theory value per point; the unstable 1.2 point is inf, which matplotlib leaves out.
    theory_line = ax.get_lines()[0]
    assert len(theory_line.get_xdata()) == 4
    assert len(ax.containers) == 1 and len(ax.containers[0].lines[0].get_xdata()) == 4


def test_latency_vs_load_accepts_a_tidy_table_an_ax_and_a_curve(swept: SweepResult) -> None:
    fig, ax = plt.subplots()
    x = [0.1, 0.5, 0.9]
    out = plots.latency_vs_load(swept.tidy, ax=ax, theory=(x, [1 / (1 - r) for r in x]))
    assert out is fig and list(ax.get_lines()[0].get_xdata()) == x


def test_throughput_vs_offered_saturates(swept: SweepResult) -> None:
    fig = plots.throughput_vs_offered(swept)
    ax = fig.axes[0]
    curve = ax.get_lines()[0]
    assert list(curve.get_ydata()) == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert "capacity 1" in labels(fig)


def test_queue_length_with_growth_line(ran: simq.RunResult) -> None:
    ts = ran.timeseries
    q = next(iter(ran.scenario.queues))
    fig = plots.queue_length(ts, window=ran.summary["window"], growth={q: 0.5})
    assert any(t.startswith(f"{q}: growth 0.5") for t in labels(fig))


def test_latency_cdf_and_histogram(ran: simq.RunResult) -> None:
    msgs = ran.messages
    fig = plots.latency_cdf(msgs, window=ran.summary["window"])
    ax = fig.axes[0]
    y = ax.get_lines()[0].get_ydata()
    assert y[-1] == pytest.approx(1.0) and (pd.Series(y).diff().dropna() >= 0).all()
    assert [t.get_text().split()[0] for t in ax.texts] == ["p50", "p95", "p99"]
    assert plots.latency_histogram(msgs).axes[0].patches


def test_hop_breakdown_stacks_every_hop(ran: simq.RunResult, swept: SweepResult) -> None:
    fig = plots.hop_breakdown(ran.summary)
    sc = ran.scenario
    parts = len(sc.queues) + len(sc.consumers) + len(sc.links)
    assert len(fig.axes[0].patches) == parts  # one bar, one segment per hop part
    fig = plots.hop_breakdown(swept, x="producers.app.rate")
    assert len(fig.axes[0].patches) == 2 * 4  # wait + service, four points


def test_utilization_bars_and_lines(ran: simq.RunResult, swept: SweepResult) -> None:
    fig = plots.utilization(ran.summary)
    assert len(fig.axes[0].patches) == len(ran.scenario.consumers)
    fig = plots.utilization(swept, x="producers.app.rate")
    assert labels(fig) == ["worker"]


def test_heatmap(grid2: SweepResult) -> None:
    fig = plots.heatmap(grid2, x="producers.app.rate", y="consumers.worker.count")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (3, 2)
    assert len(fig.axes) == 2  # the colour bar
    assert ax.get_xlabel() == "producers.app.rate"
