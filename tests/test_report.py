"""Reports are rebuilt from a folder's files, self-contained, and render in a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import simq
from simq.cli import main
from simq.report import build_report, report
from simq.sweep import sweep

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sc = simq.load(ROOT / "models" / "overload.yaml").with_overrides({"run.until": 2000})
    with pytest.warns(simq.UnstableWarning):
        res = simq.run(sc, replications=2)
    return report(res, tmp_path_factory.mktemp("r") / "run")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 1000, "run.warmup": 100})
    res = sweep(sc, {"producers.app.rate": [0.4, 0.8]}, replications=2, executor="serial",
                out=tmp_path_factory.mktemp("s") / "sw", quiet=True)
    return build_report(res.folder)


def _self_contained(text: str) -> None:
    srcs = re.findall(r"src='([^']*)'", text) + re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in text and "https://" not in text


def test_run_report_has_formulas_figures_and_scenario(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    _self_contained(text)
    for needle in ("The document's formulas", "queue length = generation rate",
                   "seed 1", "Scenario", "name: overload"):
        assert needle in text
    md = (run_dir / "report.md").read_text()
    pngs = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert "figures/queue_length.png" in pngs
    assert all((run_dir / p).is_file() for p in pngs)


def test_sweep_report_has_the_table_and_curves(sweep_dir: Path) -> None:
    text = (sweep_dir / "report.html").read_text()
    _self_contained(text)
    assert "Results per point" in text and "theory.latency_mean" in text
    assert (sweep_dir / "figures" / "latency_vs_load.png").is_file()
    md = (sweep_dir / "report.md").read_text()
    assert "| producers.app.rate |" in md


def test_simq_report_regenerates_without_rerunning(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "figures")
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.html").is_file() and (copy / "figures" / "latency_cdf.png").is_file()


def test_simq_report_on_a_folder_without_results_exits_2(tmp_path: Path) -> None:
    assert main(["report", str(tmp_path)]) == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.parametrize("which", ["run_dir", "sweep_dir"])
def test_report_renders_in_headless_chromium(which: str, request: pytest.FixtureRequest,
                                             tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed")
    folder: Path = request.getfixturevalue(which)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1000,1400",
                    (folder / "report.html").resolve().as_uri()],
                   check=True, timeout=120, capture_output=True)
    from matplotlib.image import imread

    img = imread(shot)
    # A rendered page is not blank: the figures and text put many distinct colours on it.
    assert img.shape[0] > 100 and len({tuple(p) for p in img.reshape(-1, img.shape[-1])[::97]}) > 20


def test_formula_table_rows_carry_their_units(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    for label in ("throughput (msg/s)", "throughput / offered", "latency (s)",
                  "queue growth rate (msg/s)", "mean waiting (messages)"):
        assert label in text


def test_a_folder_with_the_old_three_formula_rows_still_renders(run_dir: Path,
                                                               tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy)
    s = json.loads((copy / "summary.json").read_text())
    keep = {"text_formula", "predicted", "measured", "theory", "holds", "note", "queue"}
    s["formulas"] = {k: {f: v for f, v in s["formulas"][k].items() if f in keep}
                     for k in ("throughput", "latency", "queue_length")}
    (copy / "summary.json").write_text(json.dumps(s))
    assert main(["report", str(copy)]) == 0
    assert "queue length = generation rate" in (copy / "report.html").read_text()


def test_run_report_shows_the_topology_first(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text()
    assert "<h2>topology</h2>" in text
    assert text.index("<h2>topology</h2>") < text.index("The document's formulas")
    assert text.index("<h2>topology</h2>") < text.index("<h2>queue length</h2>")
    svg = run_dir / "figures" / "topology.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert (run_dir / "figures" / "topology.png").is_file()
    md = (run_dir / "report.md").read_text()
    assert md.index("](figures/topology.svg)") < md.index("## The document's formulas")


def test_a_report_whose_scenario_cannot_be_read_back_has_no_diagram(run_dir: Path,
                                                                    tmp_path: Path) -> None:
    copy = tmp_path / "nodiagram"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "figures")
    # As when a data file the scenario names is not beside the folder's scenario.yaml.
    (copy / "scenario.yaml").write_text("name: overload\nqueues: {q: {}}\n")
    build_report(copy)
    assert (copy / "figures" / "latency_cdf.png").is_file()
    assert not (copy / "figures" / "topology.svg").exists()
    assert "<h2>topology</h2>" not in (copy / "report.html").read_text()
