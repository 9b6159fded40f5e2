"""Reports are rebuilt from a folder's files, self-contained, and render in a browser."""

from __future__ import annotations

import html
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


@pytest.fixture(scope="module")
def sweep2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sc = simq.load(ROOT / "models" / "mmc.yaml").with_overrides(
        {"run.until": 600, "run.warmup": 60})
    res = sweep(sc, {"consumers.workers.count": [1, 2], "producers.app.rate": [0.5, 0.9]},
                replications=2, executor="serial", out=tmp_path_factory.mktemp("s") / "sw2",
                quiet=True)
    return build_report(res.folder)


def _run_of(name: str, until: float, tmp_path_factory: pytest.TempPathFactory,
            **run: float) -> Path:
    sc = simq.load(ROOT / "models" / f"{name}.yaml").with_overrides(
        {"run.until": until, **{f"run.{k}": v for k, v in run.items()}})
    return report(simq.run(sc, replications=2), tmp_path_factory.mktemp("r") / name)


@pytest.fixture(scope="module")
def mm1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_of("mm1", 1000, tmp_path_factory, warmup=100)


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_of("cluster_failover", 400, tmp_path_factory)


@pytest.fixture(scope="module")
def peak_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_of("spike", 600, tmp_path_factory)


def _self_contained(text: str) -> None:
    srcs = re.findall(r"src='([^']*)'", text) + re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in text and "https://" not in text


def test_run_report_has_formulas_figures_and_scenario(run_dir: Path) -> None:
    text = html.unescape((run_dir / "report.html").read_text())
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
    assert "Results per point" in text
    assert (sweep_dir / "figures" / "latency_vs_load.png").is_file()
    md = (sweep_dir / "report.md").read_text()
    assert "| point | rate (/s) |" in md and "](figures/latency_vs_load.png)" in md


def _headers(text: str) -> list[str]:
    return [re.sub(r"<[^>]+>", " ", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", text)]


def test_sweep_tables_have_readable_headers_with_units(sweep_dir: Path) -> None:
    text = (sweep_dir / "report.html").read_text()
    headers = _headers(text)
    assert not [h for h in headers if "." in h.replace("scenario path", "")], headers
    for h in ("rate  /s", "throughput  msg/s", "mean latency  s", "theory mean  s"):
        assert h.replace("  ", " ") in [" ".join(x.split()) for x in headers], headers
    # A value and its interval share a cell, to the same decimal place.
    cells = re.findall(r"<td class=\"n\">([^<]*±[^<]*)</td>", text)
    assert cells and all(re.fullmatch(r"-?[\d.,]+ ± [\d.,]+", c) for c in cells), cells


def test_sweep_report_shows_what_each_point_ran(sweep_dir: Path) -> None:
    text = (sweep_dir / "report.html").read_text()
    details = re.findall(r"<details><summary>(.*?)</summary>\s*<pre>(.*?)</pre>", text, re.S)
    assert [d[0] for d in details] == ["Point 1: rate = 0.4", "Point 2: rate = 0.8"]
    for (_, yaml_text), rate in zip(details, (0.4, 0.8), strict=True):
        assert f"rate: {rate}" in yaml_text and "name: mm1" in yaml_text
    assert text.index("Base scenario") > text.index("<details>")
    assert "rate: 0.8" in text[text.index("Base scenario"):]  # the base, before the grid


def test_sweep_report_of_a_2d_grid(sweep2_dir: Path) -> None:
    text = (sweep2_dir / "report.html").read_text()
    _self_contained(text)
    assert "Mean latency over the grid" in text and "Full factorial" not in text
    assert "Every combination of the values is a point" in text
    assert len(re.findall(r"<details>", text)) == 4
    assert "count" in _headers(text) and "rate  /s".replace("  ", " ") in [
        " ".join(h.split()) for h in _headers(text)]


def test_a_sweep_over_words_has_its_tables_and_no_axis(tmp_path: Path) -> None:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 300, "run.warmup": 30})
    res = sweep(sc, {"queues.broker.overflow": ["drop-new", "block"]}, replications=1,
                executor="serial", out=tmp_path / "sw", quiet=True)
    text = (build_report(res.folder) / "report.html").read_text()
    assert '<td class="t">drop-new</td>' in text and "Point 2: overflow = block" in text
    assert "<img" not in text


def test_pages_show_html_in_names_as_text(tmp_path: Path) -> None:
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": 300, "run.warmup": 30,
         "description": "<script>alert(1)</script> & <b>bold</b> <img src=x>"})
    res = sweep(sc, {"producers.app.rate": [0.5, 0.6]}, replications=1, executor="serial",
                out=tmp_path / "sw", quiet=True)
    for page in ((build_report(res.folder) / "report.html").read_text(),
                 (report(simq.run(sc), tmp_path / "run") / "report.html").read_text()):
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


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


# Run in the page once it has loaded, every <details> opened: what overflows, what did not load.
_MEASURE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const body = document.body, style = getComputedStyle(body);
  const right = body.getBoundingClientRect().right - parseFloat(style.paddingRight);
  const out = {
    page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    wide: [...document.querySelectorAll("table, pre, img")]
      .filter(e => e.getBoundingClientRect().right > right + 1 || e.scrollWidth > e.clientWidth + 1)
      .map(e => e.tagName + ": " + e.textContent.slice(0, 60)),
    images: document.images.length,
    broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
  };
  const pre = document.createElement("pre");
  pre.id = "simq-measure";
  pre.textContent = JSON.stringify(out);
  body.appendChild(pre);
});
</script>"""

PAGES = ["run_dir", "mm1_dir", "cluster_dir", "peak_dir", "sweep_dir", "sweep2_dir"]


@pytest.mark.parametrize("which", PAGES)
def test_report_renders_in_headless_chromium(which: str, request: pytest.FixtureRequest,
                                             tmp_path: Path) -> None:
    # `simq validate` writes Markdown and CSV only: these are every HTML page simq writes.
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed")
    folder: Path = request.getfixturevalue(which)
    page = (folder / "report.html").read_text(encoding="utf-8")
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400"]
    dom = subprocess.run([*flags, "--dump-dom", "--virtual-time-budget=5000",
                          measured.resolve().as_uri()],
                         check=True, timeout=120, capture_output=True, text=True).stdout
    found = re.search(r'<pre id="simq-measure">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    m = json.loads(html.unescape(found.group(1)))
    assert m["page"][0] <= m["page"][1], m  # nothing wider than the 980 px page
    assert m["wide"] == [], m["wide"]
    assert m["images"] >= 2 and m["broken"] == [], m
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", (folder / "report.html").resolve().as_uri()],
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


TOPOLOGY = '<h2 id="topology">Topology</h2>'


def test_run_report_shows_the_topology_first(run_dir: Path) -> None:
    text = html.unescape((run_dir / "report.html").read_text())
    assert TOPOLOGY in text
    assert text.index(TOPOLOGY) < text.index("The document's formulas")
    assert text.index(TOPOLOGY) < text.index('<h2 id="queue_length">Queue length over time</h2>')
    svg = run_dir / "figures" / "topology.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert (run_dir / "figures" / "topology.png").is_file()
    md = (run_dir / "report.md").read_text()
    assert md.index("](figures/topology.svg)") < md.index("## The document's formulas")


def test_run_report_headings_are_words_not_file_names(peak_dir: Path) -> None:
    text = (peak_dir / "report.html").read_text()
    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", text)
    for h in ("Latency distribution", "Latency, cumulative distribution",
              "Peak load over time", "Latency per hop", "Summary", "Scenario"):
        assert h in headings, headings
    assert not [h for h in headings if "_" in h or h != h[0].upper() + h[1:]], headings
    md = (peak_dir / "report.md").read_text()
    assert "## Latency distribution\n\n![Latency distribution](figures/latency_histogram.png)" in md


def test_run_summary_is_tables_and_the_scenario_wraps(cluster_dir: Path) -> None:
    text = (cluster_dir / "report.html").read_text()
    assert text.count("<pre>") == 1 and "white-space: pre-wrap" in text  # the scenario only
    summary = text[text.index("<h2>Summary</h2>"):text.index("<h2>Scenario</h2>")]
    for caption in ("Throughput and latency", "Messages, by outcome", "Queues", "Consumers",
                    "Brokers", "Cluster"):
        assert f"<h3>{caption}</h3>" in summary
    assert "mean wait<span class=\"unit\">s</span>" in summary
    # Numbers right-aligned under right-aligned headers, names left under left.
    assert '<th class="t">broker</th>' in summary and '<td class="t">b0</td>' in summary
    assert re.search(r'<td class="n">[\d,]+ ± [\d,]+</td>', summary)
    md = (cluster_dir / "report.md").read_text()
    assert "### Brokers" in md and "| broker | appends (records) |" in md


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
    assert TOPOLOGY not in (copy / "report.html").read_text()
