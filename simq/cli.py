"""The `simq` command: parse, call the API, print, exit codes.

Exit codes: 0 success, 1 a check failed (e.g. `simq validate`), 2 bad input (a scenario,
an override, an option or an output folder), 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import simq
from simq.errors import ScenarioError

__all__ = ["RUNS", "main"]

# Where a run, a sweep or a validation writes unless told otherwise. Not results/: that
# folder holds the curated outputs of experiments/, which git tracks and the tests check;
# a user's own runs must never land among them (nor collide with a curated folder of the
# same name, such as results/durability/), and git ignores runs/.
RUNS = Path("runs")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse names the choices but not the likely one: `simq rnu` means `simq run`.
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            import difflib

            # Python 3.11 quotes each choice, later versions do not.
            choices = [c.strip().strip("'") for c in bad.group(2).split(",")]
            close = difflib.get_close_matches(bad.group(1), choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _overrides(items: Sequence[str] | None) -> dict[str, object]:
    from simq.scenario import parse_override

    out: dict[str, object] = {}
    for item in items or []:
        path, value = parse_override(item)
        out[path] = value
    return out


def _out(args: argparse.Namespace, default: Path) -> Path:
    if args.out is None:
        return default
    if not args.out.strip():
        raise ScenarioError("--out", "must name a folder", args.out)
    return Path(args.out)


def _max_events(args: argparse.Namespace) -> float | None:
    limit: float | None = args.max_events
    if limit is not None and not limit > 0:  # nan and negatives alike
        raise ScenarioError("--max-events", "must be a number of events > 0 (inf: no limit)",
                            limit)
    return limit


def _max_memory(args: argparse.Namespace) -> dict[str, float]:
    """``--max-memory`` as an override of ``run.max_memory`` (none when not given)."""
    if args.max_memory is None:
        return {}
    from simq.scenario.types import read_size

    try:
        return {"run.max_memory": read_size(args.max_memory)}
    except ValueError as e:
        raise ScenarioError("--max-memory", str(e).split(", got")[0],
                            args.max_memory) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from simq.files import check_dir, locked
    from simq.run import preflight, resolve

    limit = _max_events(args)
    sc = simq.load(args.scenario, allow_paths=args.allow_paths)
    sc = sc.with_overrides({**_overrides(args.set), **_max_memory(args)})
    if args.stream:
        sc = sc.with_overrides({"run.records": "summary"})
    sc = resolve(sc, seed=args.seed)
    if args.replications is not None:
        sc = sc.with_overrides({"run.replications": args.replications})
    # Refuse a folder that cannot be written or is foreign first (it costs nothing)...
    out = _out(args, RUNS / sc.name)
    check_dir(out, force=args.force)
    # ... then say what the run will cost and what will go wrong, before it starts (and
    # refuse it when too big, before any folder is made).
    estimate, notes = preflight(sc, max_events=limit)
    if not args.quiet:
        print(f"simq: {estimate.describe()}", file=sys.stderr)
    for note in notes:
        print(f"simq: warning: {note}", file=sys.stderr)
    # The folder stays held until this run has replaced it: another run into it is refused.
    with locked(out):
        return _run_into(args, sc, out, limit)


def _run_into(args: argparse.Namespace, sc: simq.Scenario, out: Path,
              limit: float | None) -> int:
    from simq import terminal
    from simq.report import report, summary_view

    with warnings.catch_warnings(), _run_bar(sc, args.quiet) as progress:
        warnings.simplefilter("ignore", simq.UnstableWarning)  # printed above, and after
        res = simq.run(sc, max_events=limit, progress=progress)
    terminal.show(*summary_view(res.summary))
    from simq.analysis.compare import format_compare

    t = res.summary["theory"]
    print(f"\nMeasured against theory: {t['model']} ({t['kind']})"
          if t["kind"] != "none" else f"\nTheory: none: {t['reason']}")
    terminal.show(terminal.verbatim(format_compare(simq.compare(res))))
    wrote_messages = res.has_messages and not args.no_messages
    folder = report(res, out, messages=wrote_messages, force=True)
    print(f"\nwrote {folder}/: summary.json, "
          + ("messages.parquet, " if wrote_messages else "")
          + "timeseries.csv, comparison.csv, report.html, report.md, figures/")
    return 0


def _shows_progress(quiet: bool) -> bool:
    """A progress bar only for a person watching: never with --quiet, in a pipe or a log."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def _run_bar(sc: simq.Scenario, quiet: bool) -> Iterator[Callable[[float], None] | None]:
    """A bar on stderr over each replication's simulated seconds (or messages sent), named
    "replication r/R"; None (no progress hook at all) when no one is watching."""
    if not _shows_progress(quiet):
        yield None
        return
    from tqdm import tqdm

    spec = sc.run
    n = spec.replications
    span = float(spec.until if spec.until is not None else spec.messages or 1)
    bar = tqdm(total=span, unit=" sim s" if spec.until is not None else " msg",
               unit_scale=True, desc=f"replication 1/{n}", file=sys.stderr, leave=False,
               dynamic_ncols=True)
    rep = [0]

    def progress(done: float) -> None:
        x = done * n  # replication r covers [r/n, (r + 1)/n] of the run
        r = min(int(x), n - 1)
        if r != rep[0]:
            rep[0] = r
            bar.reset(total=span)
            bar.set_description(f"replication {r + 1}/{n}")
        bar.update(min(max((x - r) * span, 0.0), span) - bar.n)

    try:
        yield progress
    finally:
        bar.close()


def _grid(items: Sequence[str]) -> dict[str, object]:
    from simq.sweep import parse_values

    grid: dict[str, object] = {}
    for item in items:
        path, sep, values = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ScenarioError("--grid", "expected PATH=VALUES, e.g. producers.app.rate="
                                "0.1:0.9:9", item)
        grid[path] = parse_values(path, values)
    return grid


def _cmd_sweep(args: argparse.Namespace) -> int:
    from simq.files import check_dir, locked
    from simq.report import build_report
    from simq.sweep import sweep
    from simq.sweep.executors import check_workers

    limit = _max_events(args)
    sc = simq.load(args.scenario, allow_paths=args.allow_paths)
    sc = sc.with_overrides({**_overrides(args.set), **_max_memory(args)})
    grid = _grid(args.grid)
    check_workers(args.workers, "--workers")
    out = _out(args, RUNS / f"{sc.name}-sweep")
    check_dir(out, force=args.force)
    with locked(out):
        res = sweep(sc, grid, replications=args.replications, seed=args.seed,
                    executor=args.executor, scheduler=args.scheduler, workers=args.workers,
                    out=out, zip_paths=args.zip, common_random_numbers=args.crn,
                    quiet=not _shows_progress(args.quiet), force=args.force,
                    max_events=limit)
        build_report(res.folder)
    errors = int(res.aggregated["errors"].sum()) if len(res.aggregated) else 0
    if not args.quiet:
        from simq import terminal
        from simq.sweep.table import table_view

        terminal.show(table_view(res))
        print(f"\nwrote {res.folder}/: tidy.parquet, tidy.csv, aggregated.parquet, "
              f"aggregated.csv, report.html, report.md, figures/"
              + (f"  ({errors} runs failed; see report)" if errors else ""))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from simq.report import build_report

    folder = build_report(args.folder)
    print(f"wrote {folder}/report.html, {folder}/report.md, {folder}/figures/")
    return 0


@contextmanager
def _cases_bar(quiet: bool) -> Iterator[Callable[[int, int, str | None], None] | None]:
    """A bar on stderr over the validation cases, naming the last one done."""
    if not _shows_progress(quiet):
        yield None
        return
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int, name: str | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="case", desc="validate", file=sys.stderr,
                       leave=False, dynamic_ncols=True)
        if name is not None:
            bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def _cmd_draw(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.strip():
        raise ScenarioError("--out", "must name a file", args.out)
    sc = simq.load(args.scenario, allow_paths=args.allow_paths)
    target = Path(args.out) if args.out is not None else Path(f"{sc.name}-topology.svg")
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in {"svg", "png"}:
        raise ScenarioError("--out", "must end in .svg or .png", str(target))
    if (target.exists() or target.is_symlink()) and not args.force:
        raise ScenarioError("draw", f"{target} exists; --force replaces it")
    from simq import plots
    from simq.files import write_atomic

    if args.layout == "graphviz" and not plots.has_graphviz():
        raise ScenarioError("--layout", "graphviz needs Graphviz's dot on the PATH (e.g. "
                            "apt install graphviz); auto falls back to matplotlib",
                            "graphviz")
    write_atomic(target, plots.topology_image(sc, fmt, layout=args.layout))
    print(f"wrote {target}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from simq.files import locked
    from simq.validate import case_names, check_output

    limit = _max_events(args)
    if args.jobs is not None and args.jobs < 1:
        raise ScenarioError("--jobs", "must be an integer >= 1", args.jobs)
    if args.only and not any(args.only.lower() in n.lower() for n in case_names()):
        raise ScenarioError("--only", "matches no validation case", args.only)
    # Refuse a folder up front, before minutes of simulation, and hold it until written.
    if args.out is None:
        return _validate_into(args, None, limit)
    _out(args, RUNS)
    check_output(args.out, partial=bool(args.only), force=args.force)
    with locked(args.out):
        return _validate_into(args, args.out, limit)


def _validate_into(args: argparse.Namespace, out: str | None, limit: float | None) -> int:
    from simq import terminal
    from simq.validate import fresh_folder, run_suite, table_view, write_outputs

    with warnings.catch_warnings(), _cases_bar(args.quiet) as progress:
        warnings.simplefilter("ignore", simq.UnstableWarning)  # overload cases are meant
        suite = run_suite(thorough=args.thorough, jobs=args.jobs, only=args.only,
                          max_events=limit, progress=progress)
    terminal.show(table_view(suite))
    # A fresh folder for each run by default: a validation is kept, never replaced.
    folder = write_outputs(suite, out if out is not None else fresh_folder(RUNS),
                           force=args.force)
    print(f"\nwrote {folder}/: validation.csv, validation.md")
    return 0 if suite.passed else 1


MODELS_ACTIONS = ("list", "copy")


def _models_action(action: str) -> None:
    """Refuse an action of `simq models` other than list and copy, saying what was likely
    meant: a scenario's name (`simq models mm1`) is one to run or to copy."""
    if action in MODELS_ACTIONS:
        return
    import difflib

    from simq.errors import shown
    from simq.scenario import bundled

    rule = f"{shown(action)} is not an action: the actions are list and copy"
    if bundled.is_name(action):
        name = action.removesuffix(".yaml")
        rule += f"; did you mean `simq run {name}` or `simq models copy {name} DIR`?"
    elif action.lower().endswith((".yaml", ".yml", ".toml")):
        rule += f"; did you mean `simq run {action}`?"
    else:
        close = difflib.get_close_matches(action, MODELS_ACTIONS, n=1, cutoff=0.5)
        if close:
            rule += f"; did you mean `simq models {close[0]}`?"
    raise ScenarioError("models", rule)


def _cmd_models(args: argparse.Namespace) -> int:
    from simq.scenario import bundled

    _models_action(args.action)
    if args.action == "list":
        if args.name is not None or args.dir is not None:
            raise ScenarioError("models", "`simq models` takes no names; "
                                "`simq models copy NAME [DIR]` writes one out")
        from simq import terminal

        terminal.show(terminal.table(["scenario", "what it teaches"],
                                     [list(r) for r in bundled.describe()]),
                      terminal.line("run one with `simq run NAME`; write one out to edit "
                                    "with `simq models copy NAME [DIR]`"))
        return 0
    if args.name is None:
        raise ScenarioError("models copy", "name the scenario to copy, e.g. "
                            "`simq models copy mm1 .`")
    from simq.files import write_atomic

    text = bundled.text(args.name)
    folder = Path(args.dir if args.dir is not None else ".")
    target = folder / f"{args.name.removesuffix('.yaml')}.yaml"
    if (target.exists() or target.is_symlink()) and not args.force:
        raise ScenarioError("models copy", f"{target} exists; --force replaces it")
    write_atomic(target, text)
    print(f"wrote {target}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from simq.scenario.schema import json_schema

    print(json.dumps(json_schema(), indent=2, allow_nan=False))
    return 0


def _limits(p: argparse.ArgumentParser, paths: bool = True) -> None:
    p.add_argument("--max-events", type=float, metavar="N",
                   help="refuse a run estimated above N events (overrides run.max_events; "
                   "inf: no limit)")
    if paths:  # the commands that run a user's scenario
        p.add_argument("--max-memory", metavar="SIZE",
                       help="refuse a run estimated above SIZE (2G, 500M, bytes; inf: no "
                       "limit) and stop one that grows past it (overrides run.max_memory)")
        p.add_argument("--allow-paths", action="store_true",
                       help="let the scenario read data files outside its own folder")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="simq", description="Discrete-event simulation of message queues.")
    p.add_argument("--version", action="version", version=f"simq {simq.__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario, print the summary, write a report")
    r.add_argument("scenario", help="scenario file (YAML or TOML), or the name of one that "
                   "comes with simq (`simq models`)")
    r.add_argument("--out", help="output folder (default runs/<name>/)")
    r.add_argument("--seed", type=int, help="root seed (overrides run.seed)")
    r.add_argument("--replications", type=int, help="independent replications")
    r.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a scenario value, e.g. --set consumers.worker.count=3")
    r.add_argument("--no-messages", action="store_true",
                   help="do not write messages.parquet")
    r.add_argument("--stream", action="store_true",
                   help="keep only running statistics (run.records: summary): flat memory "
                        "for long runs, no messages.parquet")
    r.add_argument("--force", action="store_true",
                   help="write into a non-empty folder that simq did not write")
    r.add_argument("--quiet", action="store_true",
                   help="no progress bar and no cost estimate on stderr")
    _limits(r)
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="run the built-in suite against queueing theory")
    v.add_argument("--thorough", action="store_true",
                   help="longer runs and more replications, plus the Ciw referee cases")
    v.add_argument("--out", help="output folder (default: a new "
                   "runs/validation-<date>-<time>/)")
    v.add_argument("--jobs", type=int, help="worker processes (default: up to 2)")
    v.add_argument("--only", metavar="TEXT", help="run only the cases whose name contains TEXT")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.add_argument("--force", action="store_true",
                   help="replace the validation in a non-empty --out folder (a partial "
                   "run never replaces a full one)")
    _limits(v, paths=False)
    v.set_defaults(func=_cmd_validate)

    w = sub.add_parser("sweep", help="run a grid of values x replications, write tables "
                       "and a report")
    w.add_argument("scenario", help="scenario file (YAML or TOML), or the name of one that "
                   "comes with simq (`simq models`)")
    w.add_argument("--grid", action="append", required=True, metavar="PATH=VALUES",
                   help="values of a scenario path: 0.1,0.5,0.9 or a range 0.1:0.95:12 "
                   "(start:stop:count) or log:1:1000:4; repeat for a full factorial")
    w.add_argument("--zip", action="store_true",
                   help="pair the grid paths' values instead of crossing them")
    w.add_argument("--replications", type=int, help="replications per point")
    w.add_argument("--seed", type=int, help="root seed (overrides run.seed)")
    w.add_argument("--crn", action="store_true",
                   help="common random numbers: replication r uses the same streams at "
                   "every point")
    w.add_argument("--executor", choices=["serial", "processes", "dask"],
                   default="processes", help="where runs execute (default: processes)")
    w.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler, e.g. tcp://HOST:8786 (default: a LocalCluster)")
    w.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    w.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a scenario value at every point")
    w.add_argument("--out", help="sweep folder (default runs/<name>-sweep/)")
    w.add_argument("--quiet", action="store_true", help="no progress bar, no output")
    w.add_argument("--force", action="store_true",
                   help="write into a foreign folder, or discard a different sweep there")
    _limits(w)
    w.set_defaults(func=_cmd_sweep)

    rp = sub.add_parser("report", help="(re)write report.html and report.md for a run or "
                        "sweep folder")
    rp.add_argument("folder", help="a folder written by simq run or simq sweep")
    rp.set_defaults(func=_cmd_report)

    d = sub.add_parser("draw", help="draw a scenario's topology (producers, links, queues, "
                       "topics, consumer groups) with its rates and capacities")
    d.add_argument("scenario", help="scenario file (YAML or TOML), or the name of one that "
                   "comes with simq (`simq models`)")
    d.add_argument("--out", metavar="FILE", help="the file to write, .svg or .png "
                   "(default <name>-topology.svg in the working folder)")
    d.add_argument("--force", action="store_true", help="replace an existing file")
    d.add_argument("--layout", choices=["auto", "graphviz", "matplotlib"], default="auto",
                   help="who lays the diagram out: Graphviz's dot when installed (auto, "
                   "the default), or simq's own layout in matplotlib")
    d.add_argument("--allow-paths", action="store_true",
                   help="let the scenario read data files outside its own folder")
    d.set_defaults(func=_cmd_draw)

    m = sub.add_parser("models", help="list the scenarios that come with simq, or copy one "
                       "out to edit")
    # Not argparse's choices: a scenario's name here (`simq models mm1`) gets a message
    # saying what was likely meant.
    m.add_argument("action", nargs="?", default="list", metavar="{list,copy}",
                   help="list (the default) or copy")
    m.add_argument("name", nargs="?", help="with copy: the scenario (e.g. mm1)")
    m.add_argument("dir", nargs="?", help="with copy: the folder to write it to (default .)")
    m.add_argument("--force", action="store_true", help="with copy: replace the file")
    m.set_defaults(func=_cmd_models)

    sc = sub.add_parser("schema", help="print the JSON Schema of a scenario file (for "
                        "editor completion)")
    sc.set_defaults(func=_cmd_schema)
    return p


def _interrupt(signum: int, frame: object) -> None:
    # Ctrl-C and SIGTERM (a `kill`, a job scheduler, a container stopping) end a command
    # the same way: worker processes are stopped at once, not waited for (a pool would
    # otherwise finish every task it holds first), then the command unwinds through its
    # clean-up to the one-line message. What was finished is on disk already.
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `simq` console script."""
    import signal
    import threading

    # Called from Python (tests, a notebook), the caller's own handlers are put back
    # after. An ignored SIGINT (a background job) stays ignored.
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupt)
    try:
        # Imported here, not at the top, so that --version and --help stay instant:
        # every heavy import happens inside the command that needs it.
        from simq.files import OutputError

        parser = _build_parser()
        args = parser.parse_args(argv)
        try:
            return int(args.func(args))
        except (ScenarioError, OutputError) as err:
            print(f"simq: error: {err}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `simq schema | head`: the reader has gone; so do we
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except OSError as err:  # a file of the user's that cannot be read or written
            where = f"{err.filename}: " if err.filename else ""
            print(f"simq: error: {where}{err.strerror or err}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print("simq: interrupted", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def entry() -> None:
    """The console script: :func:`main`, then the process ends with its status. After an
    interrupt it ends at once (flushing what it printed): a signal that came in the middle
    of an import leaves half-imported modules whose clean-up at exit could fail and turn
    the exit status into a death by signal."""
    code = main()
    if code == 130:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
