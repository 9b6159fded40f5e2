"""Write a run's folder and the text and HTML a person reads. Never runs a simulation.

One cohesive thing: the run report and the sweep report share the page, the tables and
the files they write."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from simq import plots, terminal
from simq._version import version
from simq.analysis.compare import format_estimate as _estimate
from simq.analysis.compare import format_number as _num
from simq.analysis.compare import format_pm as _pm
from simq.analysis.compare import has_interval
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
from simq.sweep.table import grid_headers

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

def _table(header: list[str], rows: list[list[str]], verdicts: tuple[str, ...] = ()
           ) -> RenderableType:

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

    return terminal.plain(*summary_view(s))


# HTML and Markdown ----------------------------------------------------------------------
#
# Both pages are built from the same rows: a page is a list of Sections (a heading, a few
# sentences, Tables of text cells) and Figures; report.html renders them through the
# templates in simq/templates/, report.md writes them as Markdown.

def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


@dataclass(frozen=True)
class _Column:
    """A table's column: its name, its unit (shown under the name) and its alignment."""

    name: str
    unit: str = ""
    numeric: bool = True
    mark: bool = False  # cells styled by their value ("yes" green, "no" red)

    @property
    def align(self) -> str:
        return "n" if self.numeric else "t"

    @property
    def title(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name


@dataclass(frozen=True)
class _Table:
    """Rows of text cells under named columns; numbers already formatted."""

    columns: list[_Column]
    rows: list[list[str]]
    caption: str = ""

    def body(self) -> list[list[tuple[str, str]]]:
        """Each cell with its class: right-aligned under a numeric column, left otherwise."""
        out = []
        for row in self.rows:
            cells = []
            for c, text in zip(self.columns, row, strict=True):
                cls = c.align + (f" {text}" if c.mark and text in {"yes", "no"} else "")
                cells.append((text, cls))
            out.append(cells)
        return out

    def markdown(self) -> str:
        return _md_table([c.title for c in self.columns], self.rows)


def _tabulate(columns: list[tuple[str, str]], rows: list[list[str]], *, caption: str = "",
           mark: tuple[str, ...] = ()) -> _Table:
    """A Table whose columns are numeric when every cell with a value is a number (the
    first column names the rows, and is words)."""
    cols = []
    for i, (name, unit) in enumerate(columns):
        cells = [r[i] for r in rows if r[i] not in {"", "-"}]
        numeric = i > 0 and all(map(terminal.is_number, cells))  # all "-": numbers missing
        cols.append(_Column(name, unit, numeric, mark=name in mark))
    return _Table(cols, rows, caption)


@dataclass(frozen=True)
class _Section:
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)

    def markdown(self) -> list[str]:
        out = [f"## {_md(self.title)}", *map(_md, self.notes)]
        for t in self.tables:
            if t.caption:
                out.append(f"### {_md(t.caption)}")
            out.append(t.markdown())
        return out


# Headings of the figures, by file name (docs/output.md lists them).
FIGURE_TITLES = {
    "topology": "Topology",
    "queue_length": "Queue length over time",
    "latency_histogram": "Latency distribution",
    "latency_cdf": "Latency, cumulative distribution",
    "peak_timeline": "Peak load over time",
    "latency_bands": "Latency percentiles over time",
    "latency_per_hop": "Latency per hop",
    "utilization": "Utilization per consumer group",
    "latency_vs_load": "Latency against load",
    "throughput_vs_offered": "Throughput against offered rate",
    "latency_heatmap": "Mean latency over the grid",
    "throughput_heatmap": "Throughput over the grid",
}


@dataclass(frozen=True)
class _Figure:
    name: str
    png: bytes

    @property
    def title(self) -> str:
        return FIGURE_TITLES.get(self.name, self.name.replace("_", " ").capitalize())

    @property
    def data(self) -> str:
        return base64.b64encode(self.png).decode()

    def markdown(self, ext: str = "png") -> str:
        return f"## {_md(self.title)}\n\n![{_md(self.title)}](figures/{self.name}.{ext})"


def _render(template: str, **context: Any) -> str:
    # jinja2 is imported here, not with simq: `import simq` and `simq --version` stay light.
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("simq", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(template).render(**context)


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


# The run page's tables ----------------------------------------------------------------

def _formula_rows(s: Mapping[str, Any]) -> list[list[str]]:
    return [[label, formula, _num(f["predicted"]), _num(f["measured"]), _num(f.get("theory")),
             "yes" if f["holds"] else "no", f.get("note", "")]
            for label, formula, f in _formulas(s)]


def _formula_intro(s: Mapping[str, Any]) -> str:
    texts = dict.fromkeys(f["text_formula"] for f in s.get("formulas", {}).values())
    return ("The text's formulas, as written: " + "; ".join(texts) + ". Each row reads one "
            "of them in one unit, beside what was measured and what queueing theory gives.")


_FORMULA_COLUMNS = [("quantity", ""), ("formula", ""), ("predicted", ""), ("measured", ""),
                    ("theory", ""), ("holds", ""), ("why", "")]

_COMPARE_COLUMNS = [("quantity", ""), ("measured", ""), ("± 95% CI", ""),
                    ("document formula", ""), ("theory", ""), ("error", ""), ("verdict", "")]


def _comparison_rows(table: pd.DataFrame) -> list[list[str]]:
    rows = []
    for r in table.to_dict("records"):
        err = float(r["error"])
        verdict = str(r["verdict"])
        rows.append([str(r["quantity"]), *_estimate(float(r["measured"]),
                                                          float(r["ci95"])),
                     _num(float(r["formula"])), _num(float(r["theory"])),
                     "-" if not math.isfinite(err) else f"{100 * err:+.1f}%",
                     "none" if verdict.startswith("none: ") else verdict])
    return rows


# Each summary field a per-component table shows: its header and its unit.
_FIELDS = {
    "mode": ("mode", ""), "priority": ("priority", ""),
    "offered_rate": ("offered", "msg/s"), "throughput": ("throughput", "msg/s"),
    "wait_mean": ("mean wait", "s"), "wait_p95": ("p95 wait", "s"),
    "latency_mean": ("mean latency", "s"), "latency_p95": ("p95 latency", "s"),
    "length_mean": ("mean length", "messages"), "length_max": ("max length", "messages"),
    "dropped": ("dropped", "messages"), "growth_rate": ("growth", "msg/s"),
    "utilization": ("utilization", "busy fraction"), "service_mean": ("mean service", "s"),
    "worker_seconds": ("worker time", "s"),
    "peak_length": ("peak length", "messages"), "peak_time": ("peak at", "s"),
    "drain_time": ("drained after", "s"),
    "appends": ("appends", "records"), "copies": ("copies", "records"),
    "write_rate": ("writes", "records/s"), "leads": ("leader of", "partitions"),
    "outages": ("outages", ""), "down_time": ("down", "s"),
    "delay_mean": ("mean delay", "s"), "lost": ("lost", "messages"),
    "retransmitted": ("retransmitted", "messages"),
}

_HEADLINE = [("throughput", "throughput", "msg/s"), ("offered_rate", "offered rate", "msg/s")]
_CLUSTER = {"failovers": ("failovers", ""), "unavailable_time": ("unavailable", "s"),
            "lost_at_failover": ("lost at failover", "messages")}


def _component_table(s: Mapping[str, Any], section: str, kind: str, fields: list[str],
                     caption: str) -> _Table:
    ci = s.get("ci95", {}).get(section, {})
    rows = []
    for name, vals in s.get(section, {}).items():
        cis = ci.get(name, {}) if isinstance(ci, Mapping) else {}
        rows.append([str(name)] + [
            str(vals.get(f)) if isinstance(vals.get(f), str) else _pm(vals.get(f), cis.get(f))
            for f in fields])
    return _tabulate([(kind, ""), *(_FIELDS[f] for f in fields)], rows, caption=caption)


def _pair_table(first: str, pairs: list[tuple[str, str, Any, Any]], caption: str) -> _Table:
    """A table of single quantities: name (with its unit), value, 95% half-width."""
    rows = []
    for name, unit, value, half in pairs:
        v, h = _estimate(value, half)
        rows.append([f"{name} ({unit})" if unit else name, v,
                     h if has_interval(half) else "-"])
    return _tabulate([(first, ""), ("value", ""), ("± 95% CI", "")], rows, caption=caption)


def _summary_sections(s: Mapping[str, Any]) -> list[_Section]:
    """summary.json as tables: what `simq run` prints, one table per kind of component."""
    ci = s.get("ci95", {})
    lat_ci = ci.get("latency", {})
    pairs = [(label, unit, s[key], ci.get(key)) for key, label, unit in _HEADLINE]
    pairs += [(f"{k} latency" if k != "mean" else "mean latency", "s", v, lat_ci.get(k))
              for k, v in s["latency"].items()]
    tables = [_pair_table("quantity", pairs, "Throughput and latency")]
    msg_ci = ci.get("messages", {})
    tables.append(_pair_table("messages", [(k.replace("_", " "), "", v, msg_ci.get(k))
                                           for k, v in s["messages"].items()],
                              "Messages, by outcome"))
    b = s.get("breakdown", {})
    # Plain queueing (wait + service) needs no breakdown; a network or codec step does.
    if any(isinstance(b.get(k), float) and b[k] > 0 for k in ("encode", "link", "persist",
                                                               "replicate", "decode",
                                                               "reply")):
        b_ci = ci.get("breakdown", {})
        tables.append(_pair_table("stage", [(k, "s", v, b_ci.get(k)) for k, v in b.items()
                                            if v != 0],  # a step this run never takes
                                  "Where a delivered message's time goes (mean)"))
    prods = s.get("producers", {})
    if len(prods) > 1 or any(p.get("mode") != "async" for p in prods.values()):
        tables.append(_component_table(
            s, "producers", "producer", ["mode", "priority", "offered_rate", "throughput",
                                         "wait_mean", "latency_mean", "latency_p95"],
            "Producers"))
    if s.get("queues"):
        tables.append(_component_table(
            s, "queues", "queue", ["wait_mean", "wait_p95", "length_mean", "length_max",
                                   "dropped", "growth_rate"], "Queues"))
    if s.get("consumers"):
        cf = ["utilization", "throughput", "service_mean"]
        if s.get("peak_load"):
            cf.append("worker_seconds")
        tables.append(_component_table(s, "consumers", "consumer group", cf, "Consumers"))
    if s.get("peak_load"):
        tables.append(_component_table(s, "queues", "queue",
                                       ["peak_length", "peak_time", "drain_time"],
                                       "Queues at the peak"))
    if s.get("brokers"):
        tables.append(_component_table(
            s, "brokers", "broker", ["appends", "copies", "write_rate", "utilization", "leads",
                                     "outages", "down_time"], "Brokers"))
        c_ci = ci.get("cluster", {})
        tables.append(_pair_table("cluster", [(*_CLUSTER.get(k, (k.replace("_", " "), "")),
                                               v, c_ci.get(k))
                                              for k, v in s.get("cluster", {}).items()],
                                  "Cluster"))
    if s.get("links"):
        tables.append(_component_table(s, "links", "link", ["delay_mean", "utilization",
                                                            "lost", "retransmitted"], "Links"))
    reps = s["replications"]
    note = ("Means over the measured window; ± is the 95% confidence interval over "
            f"{reps} replications." if reps > 1 else
            "Means over the measured window of one replication (no confidence interval: "
            "run more than one replication for one).")
    return [_Section("Summary", [note], tables)]


def _write_report(folder: Path, html_text: str, md_blocks: list[str],
                  figures: list[_Figure]) -> None:
    fig_dir = real_subdir(folder, "figures")  # a link named figures is not followed
    for f in figures:
        write_atomic(fig_dir / f"{f.name}.png", f.png)
    write_atomic(folder / "report.html", html_text)
    write_atomic(folder / "report.md", "\n\n".join(md_blocks) + "\n")


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
        _summary_sections(s)
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


def _run_figures(folder: Path, s: Mapping[str, Any],
                 sc: Scenario | None) -> tuple[_Figure | None, list[_Figure]]:
    """The topology (None without a readable scenario) and the other figures, in order."""
    window = s["window"]
    figures: list[_Figure] = []
    topology = None
    overlay = None
    if sc is not None:
        # The diagram and the theory lines come from the scenario on paper.
        # Graphviz's drawing when dot is installed, simq's own otherwise (plots.topology).
        write_atomic(real_subdir(folder, "figures") / "topology.svg",
                     plots.topology_image(sc, "svg"))
        topology = _Figure("topology", plots.topology_image(sc, "png"))
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
            figures.append(_Figure("queue_length", _png(plots.queue_length(
                ts, window=window, growth=growth, theory=overlay))))
    if (folder / "messages.parquet").is_file():
        with reading(folder / "messages.parquet"):
            msgs = pd.read_parquet(folder / "messages.parquet")
            figures.append(_Figure("latency_histogram", _png(plots.latency_histogram(
                msgs, window=window, theory=overlay))))
            figures.append(_Figure("latency_cdf", _png(plots.latency_cdf(
                msgs, window=window, theory=overlay))))
    if (folder / "timeline.csv").is_file():
        with reading(folder / "timeline.csv"):
            figures.append(_Figure("peak_timeline", _png(plots.peak_timeline(
                pd.read_csv(folder / "timeline.csv")))))
    if (folder / "latency_windows.csv").is_file():
        with reading(folder / "latency_windows.csv"):
            figures.append(_Figure("latency_bands", _png(plots.latency_bands(
                pd.read_csv(folder / "latency_windows.csv")))))
    per_rep = {k: v for k, v in s.items() if k not in {"formulas", "ci95", "window",
                                                         "warnings", "seed", "replications",
                                                         "theory", "warmup"}}
    with reading(folder / "summary.json"):
        figures.append(_Figure("latency_per_hop", _png(plots.hop_breakdown(per_rep))))
        if s.get("consumers"):
            figures.append(_Figure("utilization", _png(plots.utilization(per_rep,
                                                                         theory=overlay))))
    return topology, figures


def _run_report(folder: Path, scenario: Scenario | None = None) -> Path:
    s = _read_summary(folder / "summary.json")
    scenario_text, description = "", ""
    if (folder / "scenario.yaml").is_file():
        with reading(folder / "scenario.yaml"):
            scenario_text = (folder / "scenario.yaml").read_text(encoding="utf-8")
            raw = yaml.safe_load(scenario_text) if scenario_text else {}
            description = str((raw or {}).get("description", "")) \
                if isinstance(raw, dict | None) else ""
    sc = scenario if scenario is not None else _scenario_of(folder, scenario_text)
    topology, figures = _run_figures(folder, s, sc)
    window = s["window"]
    title = f"simq report: {s['scenario']}"
    meta = (f"seed {s['seed']}, {s['replications']} replication(s), measured window "
            f"{_num(window[0])} to {_num(window[1])} s, simq {version()}")
    warns = [str(w) for w in s.get("warnings", [])]
    results = [_Section("The document's formulas", [_formula_intro(s)],
                        [_tabulate(_FORMULA_COLUMNS, _formula_rows(s), mark=("holds",))])]
    if (folder / "comparison.csv").is_file():
        t = s.get("theory") or {}
        about = (f"{t.get('model', 'none')} ({t.get('kind', 'none')}): {t.get('reason', '')}"
                 if t.get("kind") != "none" else f"none: {t.get('reason', '')}")
        with reading(folder / "comparison.csv"):
            rows = _comparison_rows(pd.read_csv(folder / "comparison.csv"))
        results.append(_Section("Measured against queueing theory", [about],
                                [_tabulate(_COMPARE_COLUMNS, rows)]))
    summary = _summary_sections(s)
    page = _render("run.html", title=title, description=description, meta=meta,
                   warnings=warns, topology=topology, results=results, figures=figures,
                   summary=summary, scenario_text=scenario_text)
    md = [f"# {_md(title)}", _md(description), _md(meta),
          *[f"> warning: {_md(w)}" for w in warns]]
    md += [topology.markdown("svg")] if topology is not None else []
    for sec in results:
        md += sec.markdown()
    md += [f.markdown() for f in figures]
    for sec in summary:
        md += sec.markdown()
    md += ["## Scenario", _fenced("yaml", scenario_text)]
    _write_report(folder, page, [b for b in md if b], figures)
    if topology is not None:
        write_atomic(real_subdir(folder, "figures") / "topology.png", topology.png)
    return folder


# The sweep page ------------------------------------------------------------------------

def _points_curve(t: pd.DataFrame, x: str, scenarios: list[Scenario]) -> plots.TheoryCurve | None:
    """Theory's column through the points, named by the model that gives each value."""
    from simq.model.predict import predict

    t = t.sort_values(x)
    names: list[str] = []
    for r in t.to_dict("records"):
        y = r.get("theory.latency_mean", math.nan)
        if not (isinstance(y, float) and math.isfinite(y)):
            continue
        p = predict(scenarios[int(r["point"])])
        if not (p.applies and math.isclose(p.latency_mean, y, rel_tol=1e-6)):
            return None  # a value predict does not give: no name to put on it
        if p.model not in names:
            names.append(p.model)
    if not names:
        return None
    return plots.TheoryCurve(t[x].to_numpy(dtype=float),
                             t["theory.latency_mean"].to_numpy(dtype=float),
                             f"{' / '.join(names)} theory")


def _sweep_figures(res: Any, base: Scenario | None,
                   scenarios: list[Scenario]) -> list[_Figure]:
    t = res.aggregated
    paths = res.paths
    figs: list[_Figure] = []
    numeric = [p for p in paths if p in t and pd.api.types.is_numeric_dtype(t[p])]
    if t.empty or paths[:2] != numeric[:2]:
        return figs  # words swept (an overflow policy): the tables show them, no axis can
    # Axes named as the tables name the paths: "rate (/s)", not producers.app.rate.
    axis = {p: f"{name} ({unit})" if unit else name
            for p, (name, unit) in zip(paths, _grid_columns(paths), strict=True)}
    if len(paths) >= 2 and not res.spec.get("zip"):
        x, y = paths[0], paths[1]
        for value, name in (("latency.mean", "mean latency (s)"),
                            ("throughput", "throughput (msg/s)")):
            figs.append(_Figure(f"{value.split('.')[0]}_heatmap", _png(plots.heatmap(
                t, x=x, y=y, value=value, names={**axis, value: name}))))
        return figs
    x = paths[0]
    load_varies = t["nominal.load"].nunique() > 1 and t["nominal.load"].notna().all()
    along = "nominal.load" if load_varies else x
    # Theory drawn smooth along the one swept path; through the points otherwise (a zipped
    # grid, a count, a value theory cannot take in between).
    curve = None
    if base is not None and len(paths) == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curve = plots.theory_curve(base, x, res.spec["grid"][x], x=along)
    if curve is None and scenarios and "theory.latency_mean" in t:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curve = _points_curve(t, along, scenarios)
    figs.append(_Figure("latency_vs_load", _png(plots.latency_vs_load(
        t, x=along, theory=curve if curve is not None else "theory.latency_mean",
        xlabel=axis.get(along)))))
    if t["nominal.offered_rate"].nunique() > 1:
        figs.append(_Figure("throughput_vs_offered", _png(plots.throughput_vs_offered(t))))
    figs.append(_Figure("latency_per_hop", _png(plots.hop_breakdown(t, x=x, xlabel=axis[x]))))
    figs.append(_Figure("utilization", _png(plots.utilization(t, x=x, xlabel=axis[x]))))
    return figs


# The unit of a swept value, by the last part of its path, where it is plain.
_PATH_UNITS = {"rate": "/s", "until": "s", "warmup": "s", "capacity": "messages",
               "timeout": "s"}

_POINT_DETAILS = 200  # scenarios shown in full; a larger grid lists the rest in the tables


def _grid_columns(paths: list[str]) -> list[tuple[str, str]]:
    return [(h, _PATH_UNITS.get(p.rsplit(".", 1)[-1], ""))
            for p, h in zip(paths, grid_headers(paths), strict=True)]


def _sweep_sections(res: Any) -> tuple[_Section, list[_Section]]:
    """The grid (what ran) and the per-point tables."""
    spec, t = res.spec, res.aggregated
    paths = [p for p in res.paths if p in t.columns] if len(t) else list(res.paths)
    gcols = _grid_columns(list(res.paths))
    grid_rows = [[h, p, ", ".join(_num(v) for v in vals)]
                 for (h, _), (p, vals) in zip(gcols, spec["grid"].items(), strict=True)]
    how = ("The paths are zipped: point i takes the i-th value of each." if spec.get("zip")
           else "Every combination of the values is a point (full factorial)."
           if len(spec["grid"]) > 1 else "Each value is a point.")
    grid = _Section("What ran", [how], [_tabulate([("parameter", ""), ("scenario path", ""),
                                                ("values", "")], grid_rows)])
    main_cols = [("point", ""), *_grid_columns(paths), ("load ρ", ""),
                 ("throughput", "msg/s"), ("mean latency", "s"), ("theory mean", "s"),
                 ("p95 latency", "s"), ("replications", "done")]
    paper_cols = [("point", ""), *_grid_columns(paths), ("offered", "msg/s"),
                  ("capacity", "msg/s"), ("document latency", "s"),
                  ("theory throughput", "msg/s"), ("theory utilization", ""),
                  ("theory mean wait", "s")]
    main, paper = [], []
    for r in t.to_dict("records"):
        point = [_num(int(r["point"]) + 1), *(_num(r[p]) for p in paths)]
        runs = _num(int(r["replications"]))
        if int(r["errors"]):
            runs += f" ({_num(int(r['errors']))} failed)"
        main.append([*point, _num(r.get("nominal.load")),
                     _pm(r.get("throughput"), r.get("throughput.ci95")),
                     _pm(r.get("latency.mean"), r.get("latency.mean.ci95")),
                     _num(r.get("theory.latency_mean")),
                     _pm(r.get("latency.p95"), r.get("latency.p95.ci95")), runs])
        paper.append([*point, _num(r.get("nominal.offered_rate")),
                      _num(r.get("nominal.capacity")), _num(r.get("formula.latency")),
                      _num(r.get("theory.throughput")), _num(r.get("theory.utilization")),
                      _num(r.get("theory.wait_mean"))])
    sections = [
        _Section("Results per point",
                 ["Measured: the mean over the replications ± its 95% confidence interval. "
                  "Theory: the single-station model's mean latency, where one applies."],
                 [_tabulate(main_cols, main)]),
        _Section("Each point on paper",
                 ["What each point's scenario predicts before it runs: the offered and the "
                  "processing rate, the document's latency (processing + transmission) and "
                  "theory's numbers."], [_tabulate(paper_cols, paper)]),
    ]
    errors = res.tidy[res.tidy["error"].notna()] if len(res.tidy) else res.tidy
    err_rows = [[_num(int(e["point"]) + 1), _num(int(e["replication"])), str(e["error"])]
                for _, e in errors.iterrows()]
    if err_rows:
        sections.append(_Section("Failed runs", [], [_tabulate(
            [("point", ""), ("replication", ""), ("error", "")], err_rows)]))
    return grid, sections


def _sweep_report(folder: Path) -> Path:
    from simq.sweep import read_sweep

    res = read_sweep(folder)
    with reading(folder / "sweep.json"):
        return _sweep_page(folder, res)


def _sweep_page(folder: Path, res: Any) -> Path:
    from simq.sweep import point_scenarios

    spec = res.spec
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unstable point warns; the sweep did
            base, scenarios = point_scenarios(spec)
    except ScenarioError:  # a data file it names is no longer beside it
        base, scenarios = None, []
    total = len(spec["points"]) * spec["replications"]
    meta = (f"{len(spec['points'])} points × {spec['replications']} replications "
            f"({len(res.tidy)} of {total} done), seed {spec['seed']}"
            + (", common random numbers" if spec.get("common_random_numbers") else "")
            + f", simq {spec.get('simq', version())}")
    headers = grid_headers(list(res.paths))
    points = []
    for i, p in enumerate(spec["points"][:_POINT_DETAILS]):
        label = f"Point {i + 1}: " + ", ".join(
            f"{h} = {_num(p[path])}" for h, path in zip(headers, res.paths, strict=True)
            if path in p)
        text = (scenarios[i].to_yaml() if scenarios else
                yaml.safe_dump(p, sort_keys=False, allow_unicode=True))
        points.append({"label": label, "text": text})
    left = len(spec["points"]) - len(points)
    points_left = (f"The other {_num(left)} points are in the tables above; each is the base "
                   "scenario with its grid values set." if left > 0 else "")
    scenario_text = (base.to_yaml() if base is not None else
                     yaml.safe_dump(spec["scenario"], sort_keys=False, allow_unicode=True))
    title = f"simq sweep: {spec['scenario'].get('name', 'scenario')}"
    grid, results = _sweep_sections(res)
    figures = _sweep_figures(res, base, scenarios)
    page = _render("sweep.html", title=title, meta=meta, grid=grid, figures=figures,
                   results=results, points=points, points_left=points_left,
                   scenario_text=scenario_text)
    md = [f"# {_md(title)}", _md(meta), *grid.markdown(), *[f.markdown() for f in figures]]
    for sec in results:
        md += sec.markdown()
    md += ["Every column of every point: [aggregated.csv](aggregated.csv); one row per run: "
           "[tidy.csv](tidy.csv).", "## Base scenario", _fenced("yaml", scenario_text)]
    _write_report(folder, page, md, figures)
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
