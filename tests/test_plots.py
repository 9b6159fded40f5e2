"""Each plot renders a run's and a sweep's results and draws the series it promises."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.lines

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


def test_theory_curve_is_smooth_along_the_swept_path_and_named_by_its_model(
        swept: SweepResult) -> None:
    base = simq.load(ROOT / "models" / "mm1.yaml")
    curve = plots.theory_curve(base, "producers.app.rate", [0.3, 0.6, 0.9], steps=50)
    assert curve is not None and curve.label == "M/M/1 theory" and len(curve.x) == 50
    # M/M/1 with mu = 1: load = lambda, mean latency 1 / (1 - rho), at every sample.
    assert curve.x[0] == pytest.approx(0.3) and curve.x[-1] == pytest.approx(0.9)
    assert curve.y == pytest.approx(1 / (1 - curve.x))
    fig = plots.latency_vs_load(swept, theory=curve)
    assert labels(fig)[0] == "M/M/1 theory" and len(fig.axes[0].get_lines()[0].get_xdata()) == 50


def test_theory_curve_is_none_where_the_path_takes_only_some_values() -> None:
    mmc = simq.load(ROOT / "models" / "mmc.yaml")
    assert plots.theory_curve(mmc, "consumers.workers.count", [1, 3]) is None  # integers
    assert plots.theory_curve(mmc, "producers.app.rate", [0.5]) is None  # one point


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


def test_queue_length_draws_every_replication(ran: simq.RunResult) -> None:
    ts = ran.timeseries
    q = next(iter(ran.scenario.queues))
    ax = plots.queue_length(ts).axes[0]
    steps = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(steps) == ts["replication"].nunique() == 2
    first, other = steps
    assert first.get_color() == other.get_color() and other.get_alpha() < 1
    drawn = np.asarray(other.get_ydata(), dtype=float)
    want = ts[ts["replication"] == 1][f"queue.{q}.length"].to_numpy(dtype=float)
    np.testing.assert_array_equal(drawn[: len(want)], want)
    assert any("(+1 replication, faint)" in t for t in labels(ax.figure))


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


def test_heatmap_and_sweep_axes_take_readable_names(grid2: SweepResult,
                                                     swept: SweepResult) -> None:
    fig = plots.heatmap(grid2, x="producers.app.rate", y="consumers.worker.count",
                        names={"producers.app.rate": "rate (/s)",
                               "latency.mean": "mean latency (s)"})
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("rate (/s)", "consumers.worker.count")
    assert ax.get_title() == "Mean latency (s) over rate (/s) × consumers.worker.count"
    assert fig.axes[1].get_ylabel() == "mean latency (s)"
    for draw in (plots.hop_breakdown, plots.utilization):
        fig = draw(swept, x="producers.app.rate", xlabel="rate (/s)")
        assert fig.axes[0].get_xlabel() == "rate (/s)"


# Topology ------------------------------------------------------------------------------

MODELS = sorted((ROOT / "models").glob("*.yaml"))


def _boxes(fig: Figure) -> list[str]:
    """The first line of every text on the diagram: a box's name (links say "link")."""
    return [t.get_text().split("\n")[0] for t in fig.axes[0].texts]


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_topology_draws_every_model_with_one_box_per_component(path: Path) -> None:
    sc = simq.load(path)
    fig = plots.topology(sc, layout="matplotlib")
    names = _boxes(fig)
    for part in (sc.producers, sc.model.queues, sc.topics, sc.consumers):
        for name in part:
            assert names.count(name) == 1, f"{path.stem}: {name} drawn {names.count(name)} times"
    assert names.count("link") == len(sc.links)


def _text_of(fig: Figure, name: str) -> str:
    return next(t.get_text() for t in fig.axes[0].texts
                if t.get_text().split("\n")[0] == name)


def test_topology_writes_rates_capacities_and_latencies() -> None:
    fig = plots.topology(simq.load(ROOT / "models" / "mm1.yaml"), layout="matplotlib")
    assert "0.8 msg/s" in _text_of(fig, "app")
    assert "capacity ∞" in _text_of(fig, "broker") and "\nρ 0.8" in _text_of(fig, "broker")
    assert "1 × 1 msg/s" in _text_of(fig, "worker")
    fig = plots.topology(simq.load(ROOT / "models" / "rpc.yaml"), layout="matplotlib")
    assert "sync, 20 clients" in _text_of(fig, "web")
    assert "capacity 8 (block)" in _text_of(fig, "api-q")
    assert "2–8 × 100 msg/s" in _text_of(fig, "api")  # autoscaled, mean service 0.01 s
    assert "latency 1 ms" in _text_of(fig, "link") and "125 MB/s" in _text_of(fig, "link")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["messages", "replies to a waiting sender"]


def test_topology_draws_partitions_routes_and_dead_letters() -> None:
    from matplotlib.patches import FancyBboxPatch

    fig = plots.topology(simq.load(ROOT / "models" / "kafka_like.yaml"), layout="matplotlib")
    ax = fig.axes[0]
    assert "12 partitions" in _text_of(fig, "clicks")
    cells = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
    assert len(cells) == 12
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 5  # 4 boxes + link
    assert "dead letters" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig = plots.topology(simq.load(ROOT / "models" / "routing.yaml"), layout="matplotlib")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"70%", "20%", "10%"} <= set(texts)
    assert "10% leave" in _text_of(fig, "validate")


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_topology_boxes_and_labels_do_not_overlap(path: Path) -> None:
    from matplotlib.patches import FancyBboxPatch

    fig = plots.topology(simq.load(path), layout="matplotlib")
    ax = fig.axes[0]
    boxes = [p.get_window_extent() for p in ax.patches if isinstance(p, FancyBboxPatch)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    # Every text inside the figure, every edge label clear of every box.
    whole = fig.bbox
    for t in ax.texts:
        box = t.get_window_extent()
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 + 1, t.get_text()
        if "\n" not in t.get_text() and t.get_text().endswith("%"):
            assert not any(box.overlaps(b) for b in boxes), t.get_text()


GRAPHVIZ = pytest.mark.skipif(not plots.has_graphviz(), reason="Graphviz's dot not installed")


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_topology_dot_has_every_component_and_arrow(path: Path) -> None:
    sc = simq.load(path)
    dot = plots.topology_dot(sc)
    assert dot.startswith("digraph simq {") and dot.rstrip().endswith("}")
    for part in (sc.producers, sc.model.queues, sc.topics, sc.consumers):
        for name in part:
            assert dot.count(f'  "{name}" [label="{name}') == 1, name
    assert dot.count("[label=\"link") == len(sc.links)
    # One arrow per arrow of the matplotlib drawing's graph: every node has one in or out.
    arrows = dot.count(" -> ")
    assert arrows >= len(sc.producers) + len(sc.consumers) - 1


@GRAPHVIZ
def test_graphviz_draws_the_diagram_when_dot_is_installed(tmp_path: Path) -> None:
    svg = plots.topology_image("rpc", "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for name in ("web", "api-q", "api", "db-q", "dbw", "sync, 20 clients"):
        assert f">{html.escape(name).replace('-', '&#45;')}<" in svg
    assert 'stroke-dasharray="1,5"' in svg  # the dotted reply back to the sender
    png = plots.topology_image("rpc", "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    fig = plots.topology("rpc")  # auto: Graphviz's drawing, shown as an image
    assert fig.axes[0].images and not fig.axes[0].texts


def test_without_graphviz_auto_falls_back_and_graphviz_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from simq.cli import main

    monkeypatch.setattr(plots, "has_graphviz", lambda: False)
    fig = plots.topology("mm1")
    assert "worker" in _boxes(fig)  # simq's own layout
    assert b"<svg" in plots.topology_image("mm1", "svg")
    with pytest.raises(RuntimeError, match="apt install graphviz"):
        plots.topology_image("mm1", "svg", layout="graphviz")
    out = tmp_path / "t.svg"
    assert main(["draw", "mm1", "--out", str(out), "--layout", "graphviz"]) == 2
    err = capsys.readouterr().err
    assert "--layout" in err and "Traceback" not in err and not out.exists()
    assert main(["draw", "mm1", "--out", str(out)]) == 0 and out.read_bytes().startswith(b"<?xml")


def test_topology_on_a_given_ax_and_from_a_name() -> None:
    fig, ax = plt.subplots()
    assert plots.topology("tandem", ax=ax) is fig
    assert "enrich" in _boxes(fig)


# Theory overlays -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mm1_run() -> simq.RunResult:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 3000, "run.warmup": 300, "run.replications": 1})
    return simq.run(sc)


def _line(ax: plt.Axes, label: str) -> matplotlib.lines.Line2D:
    return next(ln for ln in ax.get_lines() if ln.get_label() == label)


def test_mm1_latency_cdf_carries_the_exponential_sojourn(mm1_run: simq.RunResult) -> None:
    overlay = plots.theory_overlay(mm1_run.scenario)
    assert overlay is not None and overlay.label == "M/M/1 theory"
    fig = plots.latency_cdf(mm1_run.messages, window=mm1_run.summary["window"],
                            theory=overlay)
    ax = fig.axes[0]
    line = _line(ax, "M/M/1 theory")
    assert line.get_linestyle() == "--"
    assert "M/M/1 theory" in [t.get_text() for t in ax.get_legend().get_texts()]
    t = np.asarray(line.get_xdata(), dtype=float)
    f = np.asarray(line.get_ydata(), dtype=float)
    lam, mu = 0.8, 1.0
    for x in (0.5, 2.0, 5.0, 10.0):  # the curve at a few times, against 1 - exp(-(mu-lam)t)
        assert np.interp(x, t, f) == pytest.approx(1 - np.exp(-(mu - lam) * x), abs=2e-3)
    np.testing.assert_allclose(f, 1 - np.exp(-(mu - lam) * t), atol=1e-9)


def test_mm1_histogram_queue_and_utilization_overlays(mm1_run: simq.RunResult) -> None:
    overlay = plots.theory_overlay(mm1_run.scenario)
    window = mm1_run.summary["window"]
    fig = plots.latency_histogram(mm1_run.messages, window=window, theory=overlay)
    ax = fig.axes[0]
    stairs = next(p for p in ax.patches if p.get_label() == "M/M/1 theory")
    values, edges = stairs.get_data()[:2]
    m = mm1_run.messages
    n = int(((m["outcome"] == "delivered") & (m["sent"] >= window[0])
             & (m["sent"] < window[1])).sum())
    # The density as counts per bin: n (F(b) - F(a)) with F(t) = 1 - exp(-(mu - lam) t).
    np.testing.assert_allclose(values, n * np.diff(1 - np.exp(-0.2 * edges)), rtol=1e-3,
                               atol=1e-6 * n)
    fig = plots.queue_length(mm1_run.timeseries, window=window, theory=overlay)
    lq = _line(fig.axes[0], "broker: M/M/1 theory Lq 3.2")
    assert list(lq.get_ydata()) == pytest.approx([0.8**2 / 0.2] * 2)
    assert lq.get_linestyle() == "--"
    fig = plots.utilization(mm1_run.summary, theory=overlay)
    rho = _line(fig.axes[0], "M/M/1 theory ρ")
    assert list(rho.get_ydata()) == pytest.approx([0.8, 0.8])


def test_no_overlay_without_a_model_and_no_cdf_without_a_distribution(
        ran: simq.RunResult) -> None:
    assert plots.theory_overlay(ROOT / "models" / "rpc.yaml") is None  # kind none
    mmc = plots.theory_overlay(ROOT / "models" / "mmc.yaml")
    assert mmc is not None and mmc.latency is None  # M/M/c: means only here
    assert mmc.waiting["broker"][1] == pytest.approx(2.3857, abs=1e-4)
    for theory in (None, mmc):
        ax = plots.latency_cdf(ran.messages, theory=theory).axes[0]
        assert [ln.get_label() for ln in ax.get_lines() if "theory" in ln.get_label()] == []


# simq draw -----------------------------------------------------------------------------

def test_simq_draw_writes_refuses_to_overwrite_and_rejects_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from simq.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["draw", str(ROOT / "models" / "tandem.yaml")]) == 0
    svg = tmp_path / "tandem-topology.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    before = svg.read_bytes()
    capsys.readouterr()
    assert main(["draw", "tandem"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tandem-topology.svg" in err and "--force" in err
    assert svg.read_bytes() == before
    assert main(["draw", "rpc", "--out", str(svg), "--force"]) == 0
    assert svg.read_bytes() != before
    assert main(["draw", "mm1", "--out", "d/mm1.png"]) == 0
    assert (tmp_path / "d" / "mm1.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["draw", "mm1", "--out", "mm1.pdf"]) == 2
    (tmp_path / "bad.yaml").write_text("name: bad\nqueues: {q: {}}\n")
    capsys.readouterr()
    assert main(["draw", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("simq: error:")
