"""Write a run's folder and the text and HTML a person reads. Never runs a simulation."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

import simq
from simq import plots
from simq.peak import has_peak_features
from simq.run import RunResult

__all__ = ["OutputExistsError", "format_summary", "prepare_dir", "report", "write_atomic"]

MARKER = ".simq"
_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputExistsError(FileExistsError):
    """The output folder holds files simq did not write."""


def prepare_dir(path: str | Path, kind: str, *, force: bool = False) -> Path:
    """Create ``path``, refusing a non-empty folder that simq did not write (unless force)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise OutputExistsError(
            f"{out}: folder is not empty and was not written by simq; "
            "choose another --out or pass --force to write into it"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / MARKER, json.dumps({"kind": kind, "simq": simq.__version__}) + "\n")
    return out


def write_atomic(path: Path, data: str | bytes | Callable[[Path], None]) -> None:
    """Write through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        if callable(data):
            data(tmp_path)
        elif isinstance(data, bytes):
            tmp_path.write_bytes(data)
        else:
            tmp_path.write_text(data, encoding="utf-8")
        tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; files are for sharing
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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

def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def _pm(value: Any, ci: Any) -> str:
    text = _num(value)
    if isinstance(ci, float) and math.isfinite(ci) and ci > 0:
        text += f" ± {_num(ci, 2)}"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _section_rows(s: Mapping[str, Any], section: str, fields: list[str]) -> list[list[str]]:
    ci = s.get("ci95", {}).get(section, {})
    return [[name] + [_pm(vals.get(f), ci.get(name, {}).get(f)) for f in fields]
            for name, vals in s.get(section, {}).items()]


def format_summary(s: Mapping[str, Any]) -> str:
    """The run summary as a plain-text block (what `simq run` prints)."""
    ci = s.get("ci95", {})
    m = s["messages"]
    reps = s["replications"]
    out = [
        f"simq run: {s['scenario']}  (seed {s['seed']}, {reps} replication"
        f"{'s' if reps != 1 else ''}, window {_num(s['window'][0])} to {_num(s['window'][1])} s"
        + (", ± = 95% CI" if reps > 1 else "") + ")",
        "",
        "messages    " + "  ".join(f"{k.replace('_', ' ')} {_num(v)}" for k, v in m.items()),
        f"throughput  {_pm(s['throughput'], ci.get('throughput'))} msg/s   "
        f"(offered {_pm(s['offered_rate'], ci.get('offered_rate'))} msg/s)",
        "latency     " + "  ".join(
            f"{k} {_pm(v, ci.get('latency', {}).get(k))}" for k, v in s["latency"].items()
        ) + "  (s)",
    ]
    qf = ["wait_mean", "wait_p95", "length_mean", "length_max", "dropped", "growth_rate"]
    if s.get("queues"):
        out += ["", _table(["queue", *qf], _section_rows(s, "queues", qf))]
    cf = ["utilization", "throughput", "service_mean"]
    if s.get("consumers"):
        out += ["", _table(["consumer", *cf], _section_rows(s, "consumers", cf))]
    if s.get("peak_load"):
        pf = ["peak_length", "peak_time", "drain_time"]
        out += ["", _table(["queue", *pf], _section_rows(s, "queues", pf))]
        wf = ["worker_seconds"]
        out += ["", _table(["consumer", *wf], _section_rows(s, "consumers", wf))]
    lf = ["delay_mean", "utilization", "lost"]
    if s.get("links"):
        out += ["", _table(["link", *lf], _section_rows(s, "links", lf))]
    out += ["", "The document's formulas, as written, against the simulation:"]
    rows = []
    for q, f in s.get("formulas", {}).items():
        rows.append([q, f["text_formula"], _num(f["predicted"]), _num(f["measured"]),
                     _num(f.get("theory")) if not isinstance(f.get("theory"), Mapping)
                     else _num(f["theory"].get("value")),
                     "yes" if f["holds"] else "no"])
    out.append(_table(["quantity", "formula", "predicted", "measured", "theory", "holds"], rows))
    for w in s.get("warnings", []):
        out.append(f"warning: {w}")
    return "\n".join(out)


# HTML ---------------------------------------------------------------------------------

def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.8em;overflow-x:auto}
.no{color:#b00020;font-weight:600}.yes{color:#08700e;font-weight:600}
img{max-width:100%}.warn{background:#fff4e0;border-left:4px solid #f0a020;padding:.5em 1em}
"""


def _report_html(res: RunResult, figures: dict[str, bytes]) -> str:
    s = res.summary
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>simq report: {html.escape(s['scenario'])}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>simq report: {html.escape(s['scenario'])}</h1>",
        f"<p>{html.escape(res.scenario.description)}</p>",
        f"<p>seed {s['seed']}, {s['replications']} replication(s), measured window "
        f"{_num(s['window'][0])} to {_num(s['window'][1])} s, simq {simq.__version__}</p>",
    ]
    for w in s.get("warnings", []):
        parts.append(f"<p class='warn'>{html.escape(w)}</p>")
    parts.append("<h2>The document's formulas</h2>")
    rows = []
    for q, f in s["formulas"].items():
        rows.append([q, f["text_formula"], _num(f["predicted"]), _num(f["measured"]),
                     "yes" if f["holds"] else "no", f.get("note", "")])
    table = _html_table(["quantity", "formula as written", "predicted", "measured", "holds",
                         "why"], rows)
    table = table.replace("<td>yes</td>", "<td class='yes'>yes</td>").replace(
        "<td>no</td>", "<td class='no'>no</td>")
    parts.append(table)
    parts.append("<h2>Summary</h2><pre>" + html.escape(format_summary(s)) + "</pre>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2>"
                     f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
    parts.append("<h2>Scenario</h2><pre>" + html.escape(res.scenario.to_yaml()) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _window_width(t_end: float) -> float:
    """A round window width giving about 50 windows (1 min for a 1-hour run)."""
    raw = max(t_end, 1e-9) / 50
    step = 10 ** math.floor(math.log10(raw))
    return float(min((m * step for m in (1, 2, 5, 6, 10) if m * step >= raw),
                     default=10 * step))


def report(res: RunResult, out: str | Path, *, messages: bool = True,
           force: bool = False) -> Path:
    """Write summary.json, scenario.yaml, messages.parquet, timeseries.csv, report.html
    and figures/*.png for a run into ``out``; return the folder."""
    folder = prepare_dir(out, "run", force=force)
    write_atomic(folder / "summary.json", summary_json(res.summary))
    write_atomic(folder / "scenario.yaml", res.scenario.to_yaml())
    ts = res.timeseries
    write_atomic(folder / "timeseries.csv", lambda p: ts.to_csv(p, index=False))
    # A streaming run (run.records: summary) has no per-message log to write or plot.
    msgs = res.messages if res.has_messages else None
    if messages and msgs is not None:
        write_atomic(folder / "messages.parquet", lambda p: msgs.to_parquet(p, index=False))
    else:
        (folder / "messages.parquet").unlink(missing_ok=True)
    window = res.summary["window"]
    figures = {"queue_length": _png(plots.queue_length(ts, window=window))}
    if msgs is not None:
        figures["latency_histogram"] = _png(plots.latency_histogram(msgs, window=window))
    if msgs is not None and has_peak_features(res.scenario):
        t_end = max(r.t_end for r in res.replications)
        figures["peak_timeline"] = _png(plots.peak_timeline(res.timeline()))
        figures["latency_bands"] = _png(plots.latency_bands(
            res.latency_windows(_window_width(t_end))))
    for name, png in figures.items():
        write_atomic(folder / "figures" / f"{name}.png", png)
    write_atomic(folder / "report.html", _report_html(res, figures))
    return folder
