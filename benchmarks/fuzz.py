"""Count what simq does with generated hostile input: every outcome must be a run, a
clean refusal (``ScenarioError`` / exit 2 with one ``simq: error:`` line) or, for a
validation that fails, exit 1; never a traceback, another exception or a hang.

    python benchmarks/fuzz.py                 # 1,050 inputs, seed 1 (a few minutes)
    python benchmarks/fuzz.py --count 200 --seed 7

Three kinds of input, drawn from one seeded generator so a count can be reproduced:

- ``api``: a bundled model with one to three values replaced by hostile ones (wrong types,
  bools, huge, tiny, negative, infinite and NaN numbers, broken distributions, paths,
  alias bombs, deep nesting), loaded and run through the Python API;
- ``file``: a scenario file made hostile as bytes (truncated, bytes flipped, other
  encodings, a byte-order mark, an alias bomb, nesting thousands deep, a huge comment,
  TOML), loaded and run from disk;
- ``cli``: a command line (``run``, ``sweep``, ``report``, ``validate``, ``models`` or a
  typo) with hostile options and values, given to ``simq.cli.main`` in this process.

Every accepted run is bounded by ``--max-events`` (2×10⁶ events, a few seconds) so the count
stays fast; a run the estimate refuses for that is a clean refusal like any other. Each
input gets ``--timeout`` seconds (an alarm): past it the input counts as a hang.
The table is printed; the exit status is 1 when any input was a bug (traceback, another
exception, a hang), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

import simq
from simq.cli import main
from simq.errors import ScenarioError

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.yaml"))
LIMIT = "2e6"  # events: what an accepted run may cost (--max-events)


class Hang(BaseException):
    """The input ran past its time (a BaseException: nothing in simq may catch it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


# Values -------------------------------------------------------------------------------

def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + f"\nvalue: *a{levels - 1}\n"


def _nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"k": v}
    return v


HOSTILE: list[Any] = [
    True, False, None, "", " ", "true", 0, -1, 1, 0.5, 1e-300, -1e-300, 1e308, -1e308,
    10**400, 2**53 + 1, 2**63, float("inf"), float("-inf"), float("nan"), ".inf", "nan",
    "abc", "<b>x</b>", "../../etc/passwd", "/dev/zero", "x" * 300, [], [1, 2], {}, {"a": 1},
    "exponential(rate=0)", "exponential(rate=-1)", "exponential(rate=1e400)",
    "constant(0)", "constant(-1)", "uniform(low=2, high=1)", "uniform(low=0, high=0)",
    "lognormal(mean=1, cv=1e200)", "gamma(shape=1e-300, scale=1)", "zipf(s=1e400)",
    "empirical('/etc/passwd')", "empirical('/dev/urandom')", "empirical(values=[0, 0])",
    "empirical(values=[])", "pareto(shape=0.5, scale=1)", "weibull(shape=0, scale=1)",
    "exponential(rate=1", "exponential(rat=1)", "auto", "summary", "full", "drop-oldest",
    "priority", "sync", "window", "at-least-once", "range", "cooperative", "0:1:1000000000",
    _nested(40),
]
# Values a user could mean: most inputs that carry only these should run.
PLAUSIBLE: list[Any] = [0.3, 0.5, 1, 2, 3, 4, 10, 100, 0.01, "exponential(rate=2)",
                        "constant(0.3)", "lognormal(mean=0.5, cv=2)", "uniform(low=0.1, high=1)",
                        "gamma(shape=2, scale=0.2)", "erlang(k=3, rate=6)", ".inf"]
# Keys worth setting anywhere (each section has some of them).
KEYS = ["count", "rate", "capacity", "batch", "prefetch", "priority", "ttl", "window",
        "clients", "timeout", "max_attempts", "visibility_timeout", "overflow", "mode",
        "start", "stop", "size", "service", "interarrival", "to", "from", "partitions",
        "key", "backlog", "crashes", "outages", "autoscale", "until", "warmup", "messages",
        "replications", "seed", "records", "latency", "bandwidth", "loss", "replicas",
        "retention", "session_timeout", "rebalance_time", "dedup", "max_events",
        "max_memory", "timeseries_points"]


def _paths(tree: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            p = f"{prefix}{k}"
            out.append(p)
            out += _paths(v, p + ".")
    return out


def _get(raw: dict[str, Any], path: str) -> Any:
    node: Any = raw
    for p in path.split("."):
        node = node[p]
    return node


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    *parents, key = path.split(".")
    node: Any = raw
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[key] = value


def _mutated(rng: random.Random) -> tuple[Path, dict[str, Any]]:
    path = rng.choice(MODELS)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    run = raw.setdefault("run", {})
    if isinstance(run.get("until"), int | float):  # short runs: the count stays fast
        run["until"] = min(run["until"], 3000)
        if isinstance(run.get("warmup"), int | float):
            run["warmup"] = min(run["warmup"], 300)
    known = [p for p in _paths(raw) if not isinstance(_get(raw, p), dict)]
    if rng.random() < 0.4:  # a user's plausible edit: a number or a distribution changed
        numbers = [p for p in known if isinstance(_get(raw, p), int | float)
                   and not isinstance(_get(raw, p), bool) and not p.startswith("run.")]
        dists = [p for p in known if isinstance(_get(raw, p), str) and "(" in _get(raw, p)]
        for _ in range(rng.randint(1, 3)):
            if numbers and (rng.random() < 0.6 or not dists):
                where = rng.choice(numbers)
                old = _get(raw, where)
                new = old * rng.choice([0.5, 0.8, 1.25, 2])
                _set(raw, where, round(new) if isinstance(old, int) else new)
            elif dists:
                _set(raw, rng.choice(dists), rng.choice(PLAUSIBLE[9:15]))
        return path, raw
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.7 and known:
            where = rng.choice(known)
        else:
            sections = [s for s in raw if isinstance(raw[s], dict)] or ["run"]
            section = rng.choice(sections)
            names = [n for n in raw.get(section, {}) if isinstance(raw[section][n], dict)]
            where = (f"{section}.{rng.choice(names)}.{rng.choice(KEYS)}" if names
                     else f"{section}.{rng.choice(KEYS)}")
        _set(raw, where, copy.deepcopy(rng.choice(HOSTILE + PLAUSIBLE)))
    return path, raw


def _hostile_bytes(rng: random.Random) -> bytes:
    path = rng.choice(MODELS)
    data = path.read_bytes()
    kind = rng.randrange(10)
    if kind == 0:
        return data[: rng.randrange(len(data))]
    if kind == 1:
        b = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:
        return data.decode("utf-8").encode("utf-16")
    if kind == 3:
        return b"\xef\xbb\xbf" + data
    if kind == 4:
        return data + b"\n# caf\xe9 latin-1\n"
    if kind == 5:
        return (_bomb(rng.randint(3, 12)) + "\n").encode() + data
    if kind == 6:
        depth = rng.choice([100, 2000, 20000])
        return ("x: " + "[" * depth + "]" * depth + "\n").encode() + data
    if kind == 7:
        return data + b"#" + b"c" * rng.choice([10**5, 10**6, 3 * 10**7]) + b"\n"
    if kind == 8:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
    return b"!!binary " + data[:50] + b"\nname: !!python/object:os.system x\n"


def _cli_argv(rng: random.Random, tmp: Path, i: int) -> list[str]:
    model = str(rng.choice(MODELS))
    good = str(tmp / f"out{i}")
    out = good if rng.random() < 0.6 else rng.choice(
        ["", "/proc/x", str(Path(model) / "sub"), "x" * 300, str(tmp / f"out{i}" / "..")])
    values = ["-1", "0", "1", "2", "1e308", "nan", "inf", "abc", "", "10**9", "true"]
    paths = ["producers.app.rate", "run.until", "queues.broker.capacity",
             "consumers.worker.count", "producers.app.rat", "nosuch.key", "run"]
    sets = ([] if rng.random() < 0.5
            else ["--set", f"{rng.choice(paths)}={rng.choice(values)}"])
    command = rng.choice(["run", "run", "run", "sweep", "report", "validate", "models", "rnu",
                          "schema"])
    argv = [command]
    if command == "run":
        argv += [model, "--out", out, "--max-events", LIMIT, *sets]
        argv += rng.choice([[], ["--stream"], ["--seed", rng.choice(values)],
                            ["--replications", rng.choice(values)], ["--force"],
                            ["--max-memory", rng.choice(["1K", "lots", "2G", "inf"])]])
    elif command == "sweep":
        grid = rng.choice(["producers.app.rate=0.2:0.4:2", "producers.app.rate=0:1:1000000000",
                           "nosuch=1", "producers.app.rate=abc", "=", "run.until=10,20"])
        argv += [model, "--grid", grid, "--out", out, "--max-events", LIMIT, "--quiet",
                 "--executor", rng.choice(["serial", "serial", "threads", "nope"]),
                 "--workers", rng.choice(["1", "0", "-1", "abc"])]
    elif command == "report":
        argv += [rng.choice([out, str(tmp), model, "/nonexistent"])]
    elif command == "validate":
        argv += ["--only", rng.choice(["no such case", "M/M/1 rho=0.3"]), "--jobs",
                 rng.choice(["1", "0", "-3"]), "--out", out, "--quiet"]
    elif command == "models":
        argv += rng.choice([[], ["list"], ["copy", "mm1", out], ["copy", "nosuch", out]])
    return argv


# Running one input ----------------------------------------------------------------------

def _api(raw: Any, origin: Path | None, base: Path) -> str:
    try:
        if isinstance(raw, bytes):
            f = base / "scenario.yaml"
            f.write_bytes(raw)
            sc = simq.load(f)
        else:  # data files a model names are found beside it, contained as from a file
            sc = simq.Scenario(raw, base_dir=origin, source="<fuzz>", contain_paths=True)
    except ScenarioError as err:
        return "refused at load" if len(str(err)) < 2000 else "bug: error too long"
    try:
        simq.run(sc, max_events=float(LIMIT))
    except ScenarioError as err:
        return "refused before run" if len(str(err)) < 2000 else "bug: error too long"
    return "ran"


def _cli(argv: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    text = err.getvalue()
    if "Traceback" in text:
        return "bug: traceback printed"
    if code == 2:
        ok = any(line.startswith(("simq: error:", "usage:", "simq: "))
                 for line in text.splitlines())
        return "exit 2" if ok else "bug: exit 2 without a message"
    return {0: "exit 0", 1: "exit 1 (a failed check)"}.get(code, f"bug: exit {code}")


def measure(count: int, seed: int, timeout: float) -> tuple[Counter[tuple[str, str]], list[str]]:
    rng = random.Random(seed)
    tally: Counter[tuple[str, str]] = Counter()
    bugs: list[str] = []
    kinds = ["api"] * 6 + ["file"] * 3 + ["cli"] * 2
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for i in range(count):
            kind = kinds[i % len(kinds)]
            base = tmp / f"case{i}"
            base.mkdir()
            origin: Path | None = None
            if kind == "api":
                model, raw = _mutated(rng)
                what: Any = raw
                origin = model.parent
                shown = f"{model.name}: {str(raw)[:300]}"
            elif kind == "file":
                what = _hostile_bytes(rng)
                shown = f"bytes {what[:120]!r}"
            else:
                what = _cli_argv(rng, tmp, i)
                shown = " ".join(what)[:300]
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outcome = _cli(what) if kind == "cli" else _api(what, origin, base)
            except Hang:
                outcome = "bug: hung"
            except SystemExit as e:  # argparse on bad options: exit 2 is a clean refusal
                outcome = "exit 2" if e.code == 2 else f"bug: exit {e.code}"
            except BaseException as e:  # noqa: BLE001 - the point is to catch anything
                outcome = f"bug: {type(e).__name__}"
                shown += "\n" + traceback.format_exc(limit=-4)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if outcome.startswith("bug"):
                bugs.append(f"{outcome}: {shown}")
            tally[(kind, outcome)] += 1
    return tally, bugs


def main_() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1050)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per input")
    args = p.parse_args()
    started = time.perf_counter()
    tally, bugs = measure(args.count, args.seed, args.timeout)
    seconds = time.perf_counter() - started
    print(f"{args.count:,} generated inputs (seed {args.seed}) in {seconds:.0f} s\n")
    print(f"{'kind':<6} {'outcome':<28} {'count':>6}")
    for (kind, outcome), n in sorted(tally.items()):
        print(f"{kind:<6} {outcome:<28} {n:>6}")
    total: Counter[str] = Counter()
    for (_, outcome), n in tally.items():
        total["bug" if outcome.startswith("bug") else outcome] += n
    print("\ntotal: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    for b in bugs[:20]:
        print("\n" + b, file=sys.stderr)
    return 1 if total["bug"] else 0


if __name__ == "__main__":
    sys.exit(main_())
