"""Write a run's folder and the text and HTML a person reads. Never runs a simulation.

One cohesive thing: the run report and the sweep report share the page, the tables and
the files they write."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from simq import plots
from simq._version import version
from simq.analysis.compare import format_estimate as _estimate
from simq.analysis.compare import format_number as _num
from simq.errors import ScenarioError
from simq.files import (
    OutputExistsError,
    locked,
    prepare_dir,
    reading,
    real_subdir,
    staged_dir,
    write_atomic,
)
from simq.record.measures import has_peak_features
from simq.run import RunResult
from simq.scenario import Scenario

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["RUN_FILES", "OutputExistsError", "build_report", "format_summary", "prepare_dir",
           "report", "summary_view", "write_atomic"]

# Every entry a run's folder can hold: a new run replaces a folder holding only these in
# one step; one holding anything else (written into with --force) keeps it.
RUN_FILES = frozenset({"summary.json", "scenario.yaml", "messages.parquet", "timeseries.csv",
                       "comparison.csv", "timeline.csv", "latency_windows.csv",
                       "report.html", "report.md", "figures"})


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if hasattr(x, "item"):
        return _jsonable(x.item())
    return x


def summary_json(summary: Mapping[str, Any]) -> str:
    """The summary as JSON: NaN becomes null, infinities the strings "inf"/"-inf"."""
    return json.dumps(_jsonable(summary), indent=2, ensure_ascii=False) + "\n"


# Text ---------------------------------------------------------------------------------

def _pm(value: Any, ci: Any) -> str:
    """A value with its 95% half-width, both as :func:`format_estimate` rounds them (the
    value alone where there is no interval)."""
    shown, half = _estimate(value, ci)
    if isinstance(ci, float | int) and math.isfinite(ci) and ci > 0:
        return f"{shown} ± {half}"
    return shown


def _table(header: list[str], rows: list[list[str]], verdicts: tuple[str, ...] = ()
           ) -> RenderableType:
    from simq import terminal

    return terminal.table(header, rows, verdicts=verdicts)


def _section_rows(s: Mapping[str, Any], section: str, fields: list[str]) -> list[list[str]]:
    ci = s.get("ci95", {}).get(section, {})
    return [[name] + [_pm(vals.get(f), ci.get(name, {}).get(f)) for f in fields]
            for name, vals in s.get(section, {}).items()]


def _formulas(s: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Each formula row as (quantity with its unit, formula, row).

    Folders written before the rows carried units (one ``queue_length`` row holding a
    growth rate) still render, under their key and the text's formula.
    """
    out = []
    for key, f in s.get("formulas", {}).items():
        quantity, unit = f.get("quantity", key), f.get("unit")
        label = f"{quantity} ({unit})" if unit and unit != "ratio" else quantity
        out.append((label, f.get("formula", f["text_formula"]), f))
    return out


def summary_view(s: Mapping[str, Any]) -> list[RenderableType]:
    """The run summary as rich renderables, one per block (what `simq run` prints)."""
    from rich.console import Group

    from simq import terminal

    ci = s.get("ci95", {})
    m = s["messages"]
    reps = s["replications"]
    out: list[RenderableType] = [terminal.line(
        f"simq run: {s['scenario']}  (seed {s['seed']}, {reps} replication"
        f"{'s' if reps != 1 else ''}, window {_num(s['window'][0])} to {_num(s['window'][1])} s"
        + (", ± = 95% CI" if reps > 1 else "") + ")")]
    lines: list[tuple[str, list[str]]] = [
        ("messages", [f"{k.replace('_', ' ')} {_num(v)}" for k, v in m.items()]),
        ("throughput", [f"{_pm(s['throughput'], ci.get('throughput'))} msg/s",
                        f"(offered {_pm(s['offered_rate'], ci.get('offered_rate'))} msg/s)"]),
        ("latency", [f"{k} {_pm(v, ci.get('latency', {}).get(k))}"
                     for k, v in s["latency"].items()] + ["(s)"]),
    ]
    b = s.get("breakdown", {})
    # Plain queueing (wait + service) needs no breakdown; a network or codec step does.
    if any(isinstance(b.get(k), float) and b[k] > 0 for k in ("encode", "link", "persist",
                                                               "replicate", "decode",
                                                               "reply")):
        lines.append(("breakdown", [f"{k} {_pm(v, ci.get('breakdown', {}).get(k))}"
                                    for k, v in b.items()]
                      + ["(s, mean per delivered message)"]))
    out.append(terminal.pairs(lines))
    prods = s.get("producers", {})
    if len(prods) > 1 or any(p.get("mode") != "async" for p in prods.values()):
        pf = ["mode", "priority", "offered_rate", "throughput", "wait_mean", "latency_mean",
              "latency_p95"]
        out.append(_table(["producer", *pf], _section_rows(s, "producers", pf)))
    qf = ["wait_mean", "wait_p95", "length_mean", "length_max", "dropped", "growth_rate"]
    if s.get("queues"):
        out.append(_table(["queue", *qf], _section_rows(s, "queues", qf)))
    cf = ["utilization", "throughput", "service_mean"]
    if s.get("consumers"):
        out.append(_table(["consumer", *cf], _section_rows(s, "consumers", cf)))
    if s.get("peak_load"):
        pf = ["peak_length", "peak_time", "drain_time"]
        out.append(_table(["queue", *pf], _section_rows(s, "queues", pf)))
        wf = ["worker_seconds"]
        out.append(_table(["consumer", *wf], _section_rows(s, "consumers", wf)))
    if s.get("brokers"):
        bf = ["appends", "copies", "write_rate", "utilization", "leads", "outages",
              "down_time"]
        out.append(Group(_table(["broker", *bf], _section_rows(s, "brokers", bf)),
                         terminal.pairs([("cluster", [f"{k.replace('_', ' ')} {_num(v)}"
                                                      for k, v in s["cluster"].items()])])))
    lf = ["delay_mean", "utilization", "lost", "retransmitted"]
    if s.get("links"):
        out.append(_table(["link", *lf], _section_rows(s, "links", lf)))
    rows = [[label, formula, _num(f["predicted"]), _num(f["measured"]), _num(f.get("theory")),
             "yes" if f["holds"] else "no"]
            for label, formula, f in _formulas(s)]
    last: list[RenderableType] = [
        terminal.line("The document's formulas against the simulation, each row in one unit:"),
        _table(["quantity", "formula", "predicted", "measured", "theory", "holds"], rows,
               verdicts=("holds",))]
    last += [terminal.line(f"warning: {w}", "yellow") for w in s.get("warnings", [])]
    out.append(Group(*last))
    return out


def format_summary(s: Mapping[str, Any]) -> str:
    """The run summary as plain text (what `simq run` prints, without colour)."""
    from simq import terminal

    return terminal.plain(*summary_view(s))


# HTML ---------------------------------------------------------------------------------

def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _cell(c: str) -> str:
    # Numbers line up on the right; words (formulas, notes, names) read from the left.
    if c in {"", "-"}:
        return f"<td>{html.escape(c)}</td>"
    try:
        float(c.replace(",", "").replace("%", "").replace("+", "").replace("inf", "1"))
        return f"<td>{html.escape(c)}</td>"
    except ValueError:
        return f"<td class='t'>{html.escape(c)}</td>"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th:first-child,td:first-child,td.t{text-align:left}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.8em;overflow-x:auto}
.no{color:#b00020;font-weight:600}.yes{color:#08700e;font-weight:600}
img{max-width:100%}.warn{background:#fff4e0;border-left:4px solid #f0a020;padding:.5em 1em}
"""


def _from_json(x: Any) -> Any:
    """summary.json back to numbers: null is NaN, "inf"/"-inf" are infinities."""
    if isinstance(x, Mapping):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    if x is None:
        return math.nan
    if x in ("inf", "-inf"):
        return math.inf if x == "inf" else -math.inf
    return x


def _md(text: str) -> str:
    """Text for Markdown: HTML in a name or a description is shown, never rendered (no
    tag or entity can start without ``<`` or ``&``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _fenced(lang: str, text: str) -> str:
    """A code block whose fence is longer than any run of backticks in ``text``."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{lang}\n{text.rstrip(chr(10))}\n{fence}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(c: str) -> str:
        return _md(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _page(title: str, blocks: list[str]) -> str:
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
        "</head><body>", f"<h1>{html.escape(title)}</h1>", *blocks, "</body></html>",
    ])


def _figure_blocks(figures: dict[str, bytes], *,
                   svg: bool = False) -> tuple[list[str], list[str]]:
    """The figures embedded in HTML (base64) and linked from Markdown (figures/*.png, or
    the *.svg beside it)."""
    h, m = [], []
    for name, png in figures.items():
        data = base64.b64encode(png).decode()
        title = name.replace("_", " ")
        h.append(f"<h2>{html.escape(title)}</h2>"
                 f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        m.append(f"## {_md(title)}\n\n![{_md(title)}](figures/{name}.{'svg' if svg else 'png'})")
    return h, m


def _formula_rows(s: Mapping[str, Any]) -> list[list[str]]:
    return [[label, formula, _num(f["predicted"]), _num(f["measured"]), _num(f.get("theory")),
             "yes" if f["holds"] else "no", f.get("note", "")]
            for label, formula, f in _formulas(s)]


def _formula_intro(s: Mapping[str, Any]) -> str:
    texts = dict.fromkeys(f["text_formula"] for f in s.get("formulas", {}).values())
    return ("The text's formulas, as written: " + "; ".join(texts) + ". Each row reads one "
            "of them in one unit, beside what was measured and what queueing theory gives.")


_FORMULA_HEADER = ["quantity", "formula", "predicted", "measured", "theory", "holds", "why"]


_COMPARE_HEADER = ["quantity", "measured", "± 95% CI", "document formula", "theory",
                   "error", "verdict"]


def _comparison_rows(table: pd.DataFrame) -> list[list[str]]:
    rows = []
    for r in table.to_dict("records"):
        err = float(r["error"])
        verdict = str(r["verdict"])
        rows.append([str(r["quantity"]), _num(float(r["measured"])), _num(float(r["ci95"])),
                     _num(float(r["formula"])), _num(float(r["theory"])),
                     "-" if not math.isfinite(err) else f"{100 * err:+.1f}%",
                     "none" if verdict.startswith("none: ") else verdict])
    return rows


def _write_report(folder: Path, title: str, html_blocks: list[str], md_blocks: list[str],
                  figures: dict[str, bytes]) -> None:
    fig_dir = real_subdir(folder, "figures")  # a link named figures is not followed
    for name, png in figures.items():
        write_atomic(fig_dir / f"{name}.png", png)
    fig_html, fig_md = _figure_blocks(figures)
    write_atomic(folder / "report.html", _page(title, [*html_blocks, *fig_html]))
    write_atomic(folder / "report.md",
                 "\n\n".join([f"# {_md(title)}", *md_blocks, *fig_md]) + "\n")


def _read_summary(path: Path) -> dict[str, Any]:
    with reading(path):
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ScenarioError(str(path), "damaged or unreadable: empty")
        s = json.loads(text)
        if not isinstance(s, dict):
            raise ValueError("not a JSON object")
        s = dict(_from_json(s))
        # Every field the page reads, read once here: a missing or mistyped one is
        # blamed on summary.json, not on whichever file is drawn next.
        format_summary(s)
        _formula_rows(s)
        float(s["window"][0]), float(s["window"][1])
    return s


def _scenario_of(folder: Path, text: str) -> Scenario | None:
    """The run's scenario from its scenario.yaml, None when it cannot be read back (a data
    file it names is not beside it): the report is then drawn without the diagram."""
    from simq.scenario import loads

    if not text.strip():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unstable scenario warns; the run did
            return loads(text, base_dir=folder, source=str(folder / "scenario.yaml"))
    except ScenarioError:
        return None


def _run_report(folder: Path, scenario: Scenario | None = None) -> Path:
    s = _read_summary(folder / "summary.json")
    scenario_text, description = "", ""
    if (folder / "scenario.yaml").is_file():
        with reading(folder / "scenario.yaml"):
            scenario_text = (folder / "scenario.yaml").read_text(encoding="utf-8")
            raw = yaml.safe_load(scenario_text) if scenario_text else {}
            description = str((raw or {}).get("description", "")) \
                if isinstance(raw, dict | None) else ""
    window = s["window"]
    figures: dict[str, bytes] = {}
    sc = scenario if scenario is not None else _scenario_of(folder, scenario_text)
    overlay = None
    if sc is not None:
        # The diagram and the theory lines come from the scenario on paper.
        fig = plots.topology(sc)
        svg = io.BytesIO()
        fig.savefig(svg, format="svg")
        write_atomic(real_subdir(folder, "figures") / "topology.svg", svg.getvalue())
        figures["topology"] = _png(fig)
        if (s.get("theory") or {}).get("kind", "none") != "none":
            overlay = plots.theory_overlay(sc)
    if (folder / "timeseries.csv").is_file():
        with reading(folder / "timeseries.csv"):
            ts = pd.read_csv(folder / "timeseries.csv")
            growth = {}
            forms = s.get("formulas", {})
            qf = forms.get("queue_growth", forms.get("queue_length"))
            if qf and isinstance(qf.get("predicted"), float) and qf["predicted"] > 0:
                growth[qf["queue"]] = qf["predicted"]  # overload: the document's growth rate
            figures["queue_length"] = _png(plots.queue_length(ts, window=window,
                                                              growth=growth,
                                                              theory=overlay))
    if (folder / "messages.parquet").is_file():
        with reading(folder / "messages.parquet"):
            msgs = pd.read_parquet(folder / "messages.parquet")
            figures["latency_histogram"] = _png(plots.latency_histogram(
                msgs, window=window, theory=overlay))
            figures["latency_cdf"] = _png(plots.latency_cdf(msgs, window=window,
                                                            theory=overlay))
    if (folder / "timeline.csv").is_file():
        with reading(folder / "timeline.csv"):
            figures["peak_timeline"] = _png(plots.peak_timeline(
                pd.read_csv(folder / "timeline.csv")))
    if (folder / "latency_windows.csv").is_file():
        with reading(folder / "latency_windows.csv"):
            figures["latency_bands"] = _png(plots.latency_bands(
                pd.read_csv(folder / "latency_windows.csv")))
    per_rep = {k: v for k, v in s.items() if k not in {"formulas", "ci95", "window",
                                                         "warnings", "seed", "replications",
                                                         "theory", "warmup"}}
    with reading(folder / "summary.json"):
        figures["latency_per_hop"] = _png(plots.hop_breakdown(per_rep))
        if s.get("consumers"):
            figures["utilization"] = _png(plots.utilization(per_rep, theory=overlay))
    title = f"simq report: {s['scenario']}"
    meta = (f"seed {s['seed']}, {s['replications']} replication(s), measured window "
            f"{_num(window[0])} to {_num(window[1])} s, simq {version()}")
    table = _html_table(_FORMULA_HEADER, _formula_rows(s))
    table = table.replace("<td class='t'>yes</td>", "<td class='yes'>yes</td>").replace(
        "<td class='t'>no</td>", "<td class='no'>no</td>")
    h = [f"<p>{html.escape(description)}</p>", f"<p>{html.escape(meta)}</p>"]
    h += [f"<p class='warn'>{html.escape(str(w))}</p>" for w in s.get("warnings", [])]
    first = {"topology": figures.pop("topology")} if "topology" in figures else {}
    top_html, top_md = _figure_blocks(first, svg=True)
    h += top_html
    h += ["<h2>The document's formulas</h2>", f"<p>{html.escape(_formula_intro(s))}</p>",
          table]
    m = [_md(description), _md(meta), *[f"> warning: {_md(str(w))}"
                                        for w in s.get("warnings", [])],
         *top_md, "## The document's formulas", _md(_formula_intro(s)),
         _md_table(_FORMULA_HEADER, _formula_rows(s))]
    if (folder / "comparison.csv").is_file():
        t = s.get("theory") or {}
        about = (f"{t.get('model', 'none')} ({t.get('kind', 'none')}): {t.get('reason', '')}"
                 if t.get("kind") != "none" else f"none: {t.get('reason', '')}")
        with reading(folder / "comparison.csv"):
            rows = _comparison_rows(pd.read_csv(folder / "comparison.csv"))
        h += ["<h2>Measured against queueing theory</h2>", f"<p>{html.escape(about)}</p>",
              _html_table(_COMPARE_HEADER, rows)]
        m += ["## Measured against queueing theory", _md(about),
              _md_table(_COMPARE_HEADER, rows)]
    h += ["<h2>Summary</h2><pre>" + html.escape(format_summary(s)) + "</pre>",
          "<h2>Scenario</h2><pre>" + html.escape(scenario_text) + "</pre>"]
    m += ["## Summary", _fenced("text", format_summary(s)),
          "## Scenario", _fenced("yaml", scenario_text)]
    _write_report(folder, title, h, m, figures)
    for name, png in first.items():
        write_atomic(real_subdir(folder, "figures") / f"{name}.png", png)
    return folder


def _sweep_figures(res: Any) -> dict[str, bytes]:
    t = res.aggregated
    paths = res.paths
    figs: dict[str, bytes] = {}
    if t.empty:
        return figs
    if len(paths) >= 2 and not res.spec.get("zip"):
        x, y = paths[0], paths[1]
        figs["latency_heatmap"] = _png(plots.heatmap(t, x=x, y=y, value="latency.mean"))
        figs["throughput_heatmap"] = _png(plots.heatmap(t, x=x, y=y, value="throughput"))
        return figs
    x = paths[0]
    load_varies = t["nominal.load"].nunique() > 1 and t["nominal.load"].notna().all()
    figs["latency_vs_load"] = _png(plots.latency_vs_load(
        t, x="nominal.load" if load_varies else x))
    if t["nominal.offered_rate"].nunique() > 1:
        figs["throughput_vs_offered"] = _png(plots.throughput_vs_offered(t))
    figs["latency_per_hop"] = _png(plots.hop_breakdown(t, x=x))
    figs["utilization"] = _png(plots.utilization(t, x=x))
    return figs


def _sweep_report(folder: Path) -> Path:
    from simq.sweep import read_sweep

    res = read_sweep(folder)
    with reading(folder / "sweep.json"):
        return _sweep_page(folder, res)


def _sweep_page(folder: Path, res: Any) -> Path:
    spec, t = res.spec, res.aggregated
    cols = [("throughput", True), ("latency.mean", True), ("latency.p95", True),
            ("theory.latency_mean", False), ("formula.latency", False)]
    header = [*res.paths, "replications", "errors", "nominal load",
              *[c for c, _ in cols]]
    rows = []
    for _, r in t.iterrows():
        row = [_num(r[p]) for p in res.paths]
        row += [_num(int(r["replications"])), _num(int(r["errors"])),
                _num(r.get("nominal.load"))]
        row += [_pm(r.get(c), r.get(f"{c}.ci95")) if ci else _num(r.get(c)) for c, ci in cols]
        rows.append(row)
    errors = res.tidy[res.tidy["error"].notna()] if len(res.tidy) else res.tidy
    err_rows = [[str(int(e["point"])), str(int(e["replication"])), str(e["error"])]
                for _, e in errors.iterrows()]
    total = len(spec["points"]) * spec["replications"]
    meta = (f"{len(spec['points'])} points × {spec['replications']} replications "
            f"({len(res.tidy)} of {total} done), seed {spec['seed']}"
            + (", common random numbers" if spec.get("common_random_numbers") else "")
            + f", simq {spec.get('simq', version())}; ± = 95% CI over replications")
    grid = "\n".join(f"{p} = {v}" for p, v in spec["grid"].items()) + (
        "\n(zipped)" if spec.get("zip") else "\n(full factorial)")
    scenario_text = yaml.safe_dump(spec["scenario"], sort_keys=False, allow_unicode=True)
    title = f"simq sweep: {spec['scenario'].get('name', 'scenario')}"
    h = [f"<p>{html.escape(meta)}</p>", "<h2>Grid</h2><pre>" + html.escape(grid) + "</pre>",
         "<h2>Results per point</h2>", _html_table(header, rows)]
    m = [_md(meta), "## Grid", _fenced("text", grid), "## Results per point",
         _md_table(header, rows)]
    if err_rows:
        h += ["<h2>Failed runs</h2>", _html_table(["point", "replication", "error"], err_rows)]
        m += ["## Failed runs", _md_table(["point", "replication", "error"], err_rows)]
    h += ["<h2>Scenario</h2><pre>" + html.escape(scenario_text) + "</pre>"]
    m += ["## Scenario", _fenced("yaml", scenario_text)]
    _write_report(folder, title, h, m, _sweep_figures(res))
    return folder


def build_report(folder: str | Path) -> Path:
    """Write report.html (self-contained), report.md and figures/*.png for a run folder or
    a sweep folder, from the files in it; never runs a simulation."""
    folder = Path(folder)
    if (folder / "sweep.json").is_file():
        with locked(folder):
            return _sweep_report(folder)
    if (folder / "summary.json").is_file():
        with locked(folder):
            return _run_report(folder)
    raise ScenarioError(str(folder), "not a run folder (summary.json) or a sweep folder "
                        "(sweep.json)")


def _window_width(t_end: float) -> float:
    """A round window width giving about 50 windows (1 min for a 1-hour run)."""
    raw = max(t_end, 1e-9) / 50
    step = 10 ** math.floor(math.log10(raw))
    return float(min((m * step for m in (1, 2, 5, 6, 10) if m * step >= raw),
                     default=10 * step))


def report(res: RunResult, out: str | Path, *, messages: bool = True,
           force: bool = False) -> Path:
    """Write summary.json, scenario.yaml, messages.parquet, timeseries.csv, then the report
    (report.html, report.md, figures/*.png) for a run into ``out``; return the folder.

    The run is written into a temporary folder beside ``out`` that takes its place only
    when complete: ``out`` never holds a mix of two runs or a half-written one."""
    with staged_dir(out, "run", RUN_FILES, force=force) as folder:
        _write_run(res, folder, messages=messages)
        with locked(folder):
            _run_report(folder, res.scenario)
    return Path(out)


def _write_run(res: RunResult, folder: Path, *, messages: bool) -> None:
    write_atomic(folder / "summary.json", summary_json(res.summary))
    write_atomic(folder / "scenario.yaml", res.scenario.to_yaml())
    ts = res.timeseries
    write_atomic(folder / "timeseries.csv", lambda p: ts.to_csv(p, index=False))
    # A streaming run (run.records: summary) has no per-message log to write or plot.
    if messages and res.has_messages:
        msgs = res.messages
        write_atomic(folder / "messages.parquet", lambda p: msgs.to_parquet(p, index=False))
    # The measured-vs-theory table needs the scenario and the replications: computed
    # here once, kept as a file so the report can be rebuilt from the folder.
    from simq.analysis.compare import compare

    table = compare(res)
    write_atomic(folder / "comparison.csv", lambda p: table.to_csv(p, index=False))
    # Peak-load views need the records: written as small tables so that the report
    # (and `simq report` later) can draw them from the folder alone.
    if res.has_messages and has_peak_features(res.scenario):
        t_end = max(r.t_end for r in res.replications)
        tl = res.timeline()
        lw = res.latency_windows(_window_width(t_end))
        write_atomic(folder / "timeline.csv", lambda p: tl.to_csv(p, index=False))
        write_atomic(folder / "latency_windows.csv", lambda p: lw.to_csv(p, index=False))
