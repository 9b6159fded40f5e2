"""Speed and memory of simq against a hand-written SimPy model, Ciw and a numpy reference.

    python benchmarks/run.py                  # 200,000 messages per model, 3 repeats
    python benchmarks/run.py --quick          # 5,000 messages, 1 repeat (a smoke run)
    python benchmarks/run.py --scaling        # how simq's run time grows (messages, ...)
    python benchmarks/run.py --stream-check 10000000   # flat memory in streaming mode
    python benchmarks/run.py --memory 1000000 # bytes per waiting and per recorded message

Every model runs through every tool twice over: in this one process (times are medians
of repeated runs with no tracing; peak memory from a separate pass under ``tracemalloc``,
which counts exactly what each call allocates and can be reset between calls), and as a
whole process (each tool in a fresh Python: wall time including its imports, and the
child's maximum RSS, what the operating system had to give it). The process's own maximum
RSS (``resource.getrusage``) cannot be reset between calls, so the streaming check and
the memory rows also run in children of their own.

The numpy reference is what the models' numbers are, computed without a simulator: the
Lindley recursion W[n+1] = max(0, W[n] + S[n] - A[n+1]) in its cumulative (vectorised)
form for a single server, station after station for the tandem; for M/M/4 the
Kiefer-Wolfowitz recursion (the next free server from a heap), a short Python loop.

Results go to results/benchmarks/*.csv (see benchmarks/README.md for how to read them).
"""

from __future__ import annotations

import argparse
import csv
import gc
import heapq
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import simq  # noqa: E402

# The three models: arrival rate, and per station (servers, service rate). rho = 0.8 at
# the busiest station of each; the tandem is models/tandem.yaml.
MODELS: dict[str, tuple[float, list[tuple[int, float]]]] = {
    "mm1": (0.8, [(1, 1.0)]),
    "mm4": (3.2, [(4, 1.0)]),
    "tandem3": (0.8, [(1, 2.0), (1, 1.0), (1, 1.6)]),
}
BLOCK = 4096  # variates drawn per numpy call, in every tool that lets us choose


# simq ----------------------------------------------------------------------------------
def simq_scenario(model: str, n: int, records: str = "full", seed: int = 1,
                  engine: str = "auto") -> simq.Scenario:
    lam, stations = MODELS[model]
    queues = {f"q{i}": {} for i in range(len(stations))}
    consumers: dict[str, Any] = {}
    for i, (c, mu) in enumerate(stations):
        consumers[f"s{i}"] = {"from": f"q{i}", "count": c, "rate": mu}
        if i + 1 < len(stations):
            consumers[f"s{i}"]["to"] = f"q{i + 1}"
    return simq.Scenario({
        "name": f"bench-{model}",
        "run": {"messages": n, "seed": seed, "records": records, "engine": engine},
        "producers": {"app": {"to": "q0", "rate": lam}},
        "queues": queues,
        "consumers": consumers,
    })


def run_simq(model: str, n: int, seed: int = 1) -> Any:
    """simq end to end: build, simulate, per-message records, the summary (the engine
    ``run.engine: auto`` picks: the fast one, for these FIFO models)."""
    res = simq.run(simq_scenario(model, n, "full", seed))
    assert res.summary["messages"]["delivered"] == n
    assert res.summary["engine"]["name"] == "fast"
    return res


def run_simq_simpy(model: str, n: int, seed: int = 1) -> Any:
    """The same on the SimPy engine (what every other scenario runs on)."""
    res = simq.run(simq_scenario(model, n, "full", seed, engine="simpy"))
    assert res.summary["messages"]["delivered"] == n
    return res


def run_simq_stream(model: str, n: int, seed: int = 1) -> Any:
    res = simq.run(simq_scenario(model, n, "summary", seed))
    assert res.summary["messages"]["delivered"] == n
    return res


# A careful hand-written SimPy model ----------------------------------------------------
def _variates(rng: np.random.Generator, mean: float) -> Callable[[], float]:
    """Exponential variates drawn BLOCK at a time, handed out one by one from C."""
    return itertools.chain.from_iterable(
        iter(lambda: rng.exponential(mean, BLOCK).tolist(), None)).__next__


def run_simpy(model: str, n: int, seed: int = 1) -> dict[str, list[float]]:
    """One generator process, a simpy.Store per station, one process per server.

    Records each message's wait at every station and its end-to-end latency, the least
    a user needs for the same statistics.
    """
    import simpy  # here: a child process timing another tool does not import it

    lam, stations = MODELS[model]
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    stores = [simpy.Store(env) for _ in stations]
    waits: list[list[float]] = [[] for _ in stations]
    latency: list[float] = []

    def source() -> Any:
        gap = _variates(rng, 1 / lam)
        put = stores[0].put
        for i in range(n):
            yield env.timeout(gap())
            now = env.now
            put([i, now, now])  # id, sent, arrived at this station

    def server(k: int, service: Callable[[], float]) -> Any:
        get = stores[k].get
        nxt = stores[k + 1].put if k + 1 < len(stores) else None
        wait, done = waits[k].append, latency.append
        while True:
            msg = yield get()
            wait(env.now - msg[2])
            yield env.timeout(service())
            if nxt is None:
                done(env.now - msg[1])
            else:
                msg[2] = env.now
                nxt(msg)

    env.process(source())
    for k, (c, mu) in enumerate(stations):
        for _ in range(c):
            env.process(server(k, _variates(rng, 1 / mu)))
    env.run()
    assert len(latency) == n
    return {"latency": latency, "waits": [x for w in waits for x in w]}


# Ciw -----------------------------------------------------------------------------------
def run_ciw(model: str, n: int, seed: int = 1) -> list[Any]:
    """Ciw's standard API, run until n customers have finished; all records collected."""
    import ciw

    lam, stations = MODELS[model]
    k = len(stations)
    routing = [[1.0 if j == i + 1 else 0.0 for j in range(k)] for i in range(k)]
    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(lam)] + [None] * (k - 1),
        service_distributions=[ciw.dists.Exponential(mu) for _, mu in stations],
        number_of_servers=[c for c, _ in stations],
        routing=routing,
    )
    ciw.seed(seed)
    q = ciw.Simulation(net)
    q.simulate_until_max_customers(n, method="Finish")
    return q.get_all_records()


# The numpy reference -------------------------------------------------------------------
def lindley(arrivals: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Waits in a FIFO single-server queue: W[n+1] = max(0, W[n] + S[n] - A[n+1]) in
    closed form. With X[k] = S[k-1] - (a[k] - a[k-1]) and C its cumulative sum (C[0] = 0),
    W[n] = C[n] - min(0, min over k <= n of C[k]): one cumsum and one running minimum."""
    x = np.empty(len(arrivals))
    x[0] = 0.0
    x[1:] = service[:-1] - np.diff(arrivals)
    c = np.cumsum(x)
    return np.asarray(c - np.minimum.accumulate(np.minimum(c, 0.0)))


def kiefer_wolfowitz(arrivals: np.ndarray, service: np.ndarray, servers: int) -> np.ndarray:
    """Waits in a FIFO queue with ``servers`` servers: each customer takes the server
    free first (a heap of the times they are free)."""
    free = [0.0] * servers
    waits = np.empty(len(arrivals))
    for i, (a, s) in enumerate(zip(arrivals.tolist(), service.tolist(), strict=True)):
        start = max(a, free[0])
        waits[i] = start - a
        heapq.heapreplace(free, start + s)
    return waits


def run_lindley(model: str, n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Each message's wait at every station and its end-to-end latency, from the
    recursions over numpy variates: the least any tool can do for the same numbers."""
    lam, stations = MODELS[model]
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    t = arrivals
    waits = []
    for k, (c, mu) in enumerate(stations):
        service = rng.exponential(1 / mu, n)
        if c > 1 and k + 1 < len(stations):
            # Not a gap to fill: with several servers messages leave out of arrival order,
            # so no recursion in arrival order gives the next station's input.
            raise ValueError(f"{model}: the numpy reference takes several servers only at "
                             "the last station (they reorder messages)")
        w = lindley(t, service) if c == 1 else kiefer_wolfowitz(t, service, c)
        waits.append(w)
        t = t + w + service  # departures, in arrival order at a single server
    return {"latency": t - arrivals, "waits": np.concatenate(waits)}


TOOLS: dict[str, Callable[[str, int], Any]] = {
    "simq": run_simq,
    "simq-simpy": run_simq_simpy,
    "simq-stream": run_simq_stream,
    "simpy": run_simpy,
    "ciw": run_ciw,
    "numpy": run_lindley,
}


# Measuring -----------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    del result
    return seconds


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak / 2**20


def machine() -> str:
    import simpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"simpy {simpy.__version__}")


def child(argv: list[str]) -> dict[str, Any]:
    """Run ``run.py --child ...`` in a fresh Python: its report (with its peak RSS in MB,
    read by the child as it ends) and the wall time from start to exit, imports included."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", *argv],
                          stdout=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - started
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, "wall": wall}


def ratio(x: float, y: float | None) -> float | str:
    return round(x / y, 3) if y else ""


def compare(n: int, repeats: int, tools: list[str]) -> list[dict[str, Any]]:
    rows = []
    for t in tools:  # every lazily imported module in before the first timed run
        TOOLS[t]("mm1", 100)
    for model in MODELS:
        times: dict[str, list[float]] = {t: [] for t in tools}
        walls: dict[str, list[float]] = {t: [] for t in tools}
        rss: dict[str, list[float]] = {t: [] for t in tools}
        for r in range(repeats):  # interleaved, so a noisy moment hits every tool alike
            for t in tools:
                times[t].append(timed(lambda t=t, m=model: TOOLS[t](m, n)))
                whole = child(["tool", f"{t}:{model}", str(n)])
                walls[t].append(whole["wall"])
                rss[t].append(whole["max_rss_mb"])
                print(f"  {model:8s} {t:12s} repeat {r + 1}: {times[t][-1]:.2f} s in process, "
                      f"{walls[t][-1]:.2f} s whole", file=sys.stderr)
        peaks = {t: traced_peak_mb(lambda t=t, m=model: TOOLS[t](m, n)) for t in tools}
        med = {t: statistics.median(v) for t, v in times.items()}
        wall = {t: statistics.median(v) for t, v in walls.items()}
        top = {t: max(v) for t, v in rss.items()}
        for t in tools:
            rows.append({
                "model": model, "tool": t, "messages": n, "repeats": repeats,
                "seconds": round(med[t], 4),
                "best_seconds": round(min(times[t]), 4),
                "msgs_per_s": round(n / med[t]),
                "peak_mb": round(peaks[t], 2),
                "time_vs_simpy": ratio(med[t], med.get("simpy")),
                "time_vs_ciw": ratio(med[t], med.get("ciw")),
                "time_vs_numpy": ratio(med[t], med.get("numpy")),
                "mem_vs_ciw": ratio(peaks[t], peaks.get("ciw")),
                "process_seconds": round(wall[t], 3),
                "process_rss_mb": round(top[t], 1),
                "process_vs_simpy": ratio(wall[t], wall.get("simpy")),
                "process_vs_ciw": ratio(wall[t], wall.get("ciw")),
                "process_vs_numpy": ratio(wall[t], wall.get("numpy")),
                "rss_vs_ciw": ratio(top[t], top.get("ciw")),
            })
    return rows


# Memory per message ------------------------------------------------------------------
def peak_mb() -> float:
    """This process's highest resident memory so far, in MB: VmHWM (Linux), which belongs
    to the program now running; ``ru_maxrss`` would also count what the parent held when
    it started this child."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    """This process's resident memory now (Linux), else its peak, in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def overloaded(records: str, **run: Any) -> simq.Scenario:
    """lambda = 2 mu: the queue grows by one message a second."""
    return simq.Scenario({
        "name": "bench-overload",
        "run": {"seed": 1, "warmup": 0, "records": records, **run},
        "producers": {"app": {"to": "q", "rate": 2.0}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 1, "rate": 1.0}},
    })


def memory_child(kind: str, n: int) -> dict[str, Any]:
    """In a fresh process: the resident memory one run adds, per message.

    ``waiting``: summary records, an overloaded queue run until about n messages wait;
    the memory still held at the end (the run's objects alive) over the messages waiting.
    ``recorded`` / ``recorded-overload``: full records, n messages (M/M/1 at rho 0.8, or
    lambda = 2 mu), the peak RSS the run added over n."""
    from simq.engine import Simulation
    from simq.record.streaming import run_streaming
    from simq.run import seed_for

    warnings.simplefilter("ignore")
    simq.run(simq_scenario("mm1", 1000))  # every lazily imported module in, first
    gc.collect()
    before = resident_mb()
    alive: list[Any] = []
    started = time.perf_counter()
    if kind == "waiting":
        sim = Simulation(overloaded("summary", until=float(n)), seed_for(1, 0))
        run_streaming(sim)
        count = len(sim.queues["q"].items)
    else:
        sc = (simq_scenario("mm1", n) if kind == "recorded"
              else overloaded("full", messages=n))
        alive.append(simq.run(sc))  # alive while the held memory is read
        count = n
    seconds = time.perf_counter() - started
    held = resident_mb()
    peak = peak_mb()
    return {"kind": kind, "messages": count, "seconds": round(seconds, 1),
            "rss_before_mb": round(before, 1), "rss_held_mb": round(held, 1),
            "rss_peak_mb": round(peak, 1),
            "held_bytes_per_message": round((held - before) * 2**20 / count),
            "peak_bytes_per_message": round((peak - before) * 2**20 / count)}


def memory(n: int) -> list[dict[str, Any]]:
    rows = []
    for kind in ("waiting", "recorded", "recorded-overload"):
        print(f"  memory {kind} ({n:,})", file=sys.stderr)
        got = child(["memory", kind, str(n)])
        got.pop("wall")
        rows.append(got)
    return rows


def scaling(n: int, repeats: int) -> list[dict[str, Any]]:
    """simq's run time as one thing grows: messages, workers, queues in series, links."""
    def scenario(kind: str, size: int) -> simq.Scenario:
        msgs, stages, count, links = n, 1, 1, 0
        if kind == "messages":
            msgs = size
        elif kind == "workers":
            count = size
        elif kind == "queues":
            stages = size
        else:
            stages, links = size, size
        queues = {f"q{i}": {} for i in range(stages)}
        consumers: dict[str, Any] = {}
        for i in range(stages):
            consumers[f"s{i}"] = {"from": f"q{i}", "count": count, "rate": 1.0 / count}
            if i + 1 < stages:
                consumers[f"s{i}"]["to"] = f"q{i + 1}"
        link_map = {("app->q0" if i == 0 else f"s{i - 1}->q{i}"): {"latency": "constant(0.01)"}
                    for i in range(links)}
        return simq.Scenario({
            "name": "scaling", "run": {"messages": msgs, "seed": 1},
            "producers": {"app": {"to": "q0", "rate": 0.8}},
            "queues": queues, "consumers": consumers, "links": link_map,
        })

    grid = {"messages": [n // 4, n // 2, n, 2 * n], "workers": [1, 4, 16, 64],
            "queues": [1, 2, 4, 8], "links": [1, 2, 4, 8]}
    rows = []
    for kind, sizes in grid.items():
        for size in sizes:
            sc = scenario(kind, size)
            secs = statistics.median(timed(lambda sc=sc: simq.run(sc)) for _ in range(repeats))
            msgs = sc.run.messages or n
            rows.append({"grows": kind, "size": size, "messages": msgs,
                         "seconds": round(secs, 3),
                         "us_per_message": round(1e6 * secs / msgs, 2)})
            print(f"  {kind:8s} {size:>7} {secs:.2f} s", file=sys.stderr)
    return rows


def stream_check(n: int) -> dict[str, Any]:
    """M/M/1 with n messages in streaming mode: time and the memory the run adds."""
    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux

    before = rss_mb()
    started = time.perf_counter()
    res = run_simq_stream("mm1", n)
    seconds = time.perf_counter() - started
    after = rss_mb()
    s = res.summary
    return {"messages": n, "seconds": round(seconds, 1), "msgs_per_s": round(n / seconds),
            "rss_before_mb": round(before, 1), "rss_peak_mb": round(after, 1),
            "rss_added_mb": round(after - before, 1),
            "latency_mean": round(s["latency"]["mean"], 4),
            "latency_p99": round(s["latency"]["p99"], 4)}


# Output --------------------------------------------------------------------------------
def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]], host: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0], "machine"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "machine": host})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="5,000 messages, 1 repeat (a smoke run)")
    p.add_argument("--messages", type=int, help="messages per model (default 200,000)")
    p.add_argument("--repeats", type=int, help="timed runs per tool (default 3)")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks"),
                   help="folder for the CSV files")
    p.add_argument("--no-ciw", action="store_true", help="leave Ciw out")
    p.add_argument("--tools", help=f"comma-separated subset of {', '.join(TOOLS)}")
    p.add_argument("--scaling", action="store_true",
                   help="also time simq as messages, workers, queues and links grow")
    p.add_argument("--stream-check", type=int, metavar="N",
                   help="only run N M/M/1 messages in streaming mode and report memory")
    p.add_argument("--memory", type=int, metavar="N",
                   help="messages of the memory rows (default 1,000,000; --quick 20,000)")
    p.add_argument("--child", nargs=3, metavar=("WHAT", "NAME", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.child:  # one measurement in this fresh process (see child())
        what, name, size = args.child
        if what == "tool":  # name: tool:model
            tool, model = name.split(":")
            seconds = timed(lambda: TOOLS[tool](model, int(size)))
            print(json.dumps({"seconds": seconds, "max_rss_mb": peak_mb()}))
        else:
            print(json.dumps(memory_child(name, int(size))))
        return 0
    host = machine()
    print(f"machine: {host}")

    if args.stream_check:
        row = stream_check(args.stream_check)
        print(table([row]))
        write_csv(out / "stream_check.csv", [row], host)
        return 0

    n = args.messages or (5_000 if args.quick else 200_000)
    repeats = args.repeats or (1 if args.quick else 3)
    tools = [t for t in TOOLS if not (args.no_ciw and t == "ciw")]
    if args.tools:
        asked = args.tools.split(",")
        unknown = sorted(set(asked) - set(TOOLS))
        if unknown:
            p.error(f"--tools: unknown {', '.join(unknown)} (one of {', '.join(TOOLS)})")
        tools = [t for t in TOOLS if t in asked]
    rows = compare(n, repeats, tools)
    print(f"\n{n:,} messages per model, median of {repeats} run(s); peak memory by "
          "tracemalloc in a separate pass")
    print(table(rows))
    write_csv(out / ("benchmarks-quick.csv" if args.quick else "benchmarks.csv"), rows, host)
    size = args.memory or (20_000 if args.quick else 1_000_000)
    mrows = memory(size)
    print(f"\nmemory per message, each row in a fresh process ({size:,} messages): the "
          "resident memory the run added")
    print(table(mrows))
    write_csv(out / ("memory-quick.csv" if args.quick else "memory.csv"), mrows, host)
    if args.scaling:
        srows = scaling(n // 2, repeats)
        print("\nsimq run time as one thing grows (others fixed: M/M/1-like stations, "
              "rho 0.8, full records)")
        print(table(srows))
        write_csv(out / "scaling.csv", srows, host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
