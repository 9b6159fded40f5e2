"""Wall time of one sweep on each executor, and the parent's memory as points finish.

100 points x 5 replications of M/M/1 (load 0.1 to 0.95), 20,000 messages each, run with
the serial, processes and dask executors; the tables must be identical. `--quick` runs
10 points x 2 replications x 5,000 messages.

    python benchmarks/sweep.py [--quick] [--executors serial,processes,dask] [--workers N]

`--load-curve` times instead the teaching load curve, 20 points x 10 replications x
100,000 messages of M/M/1 (load 0.05 to 0.95), on the fast engine and on the SimPy engine
(`run.engine`), with the processes executor, and checks that both give the same table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import simq  # noqa: E402
from simq.sweep import sweep  # noqa: E402


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Sampler(threading.Thread):
    """Samples the parent's resident memory while the sweep runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.samples.append(rss_mb())


def curve(what: str, points: int, reps: int, messages: int,
          low: float) -> tuple[simq.Scenario, dict[str, str]]:
    """M/M/1 stopping after ``messages``, and its arrival rate from ``low`` to 0.95."""
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"run.until": None, "run.messages": messages, "run.warmup": 0})
    print(f"{what}: {points} points x {reps} replications x {messages:,} messages, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    return sc, {"producers.app.rate": f"{low}:0.95:{points}"}


def load_curve(quick: bool, workers: int | None) -> None:
    """The load curve on each engine: wall time, and the same numbers from both."""
    points, reps, messages = (5, 2, 5_000) if quick else (20, 10, 100_000)
    sc, grid = curve("load curve", points, reps, messages, 0.05)
    tables: dict[str, pd.DataFrame] = {}
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("fast", "simpy"):
            started = time.perf_counter()
            res = sweep(sc.with_overrides({"run.engine": engine}), grid, replications=reps,
                        executor="processes", workers=workers, out=Path(tmp) / engine,
                        quiet=True)
            times[engine] = time.perf_counter() - started
            tables[engine] = res.aggregated.drop(columns=[c for c in res.aggregated.columns
                                                          if "wall" in c])
            print(f"{engine:6s} {times[engine]:7.1f} s wall")
    pd.testing.assert_frame_equal(tables["fast"], tables["simpy"])
    print(f"fast engine {times['simpy'] / times['fast']:.1f}x faster; the aggregated "
          "tables are identical")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--executors", default="serial,processes,dask")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--load-curve", action="store_true",
                    help="time the 20 x 10 x 100,000 load curve on both engines instead")
    args = ap.parse_args()
    if args.load_curve:
        load_curve(args.quick, args.workers)
        return
    points, reps, messages = (10, 2, 5_000) if args.quick else (100, 5, 20_000)
    sc, grid = curve("sweep", points, reps, messages, 0.1)
    tables: dict[str, pd.DataFrame] = {}
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ex in args.executors.split(","):
            sampler = Sampler()
            sampler.start()
            cpu0 = cpu_seconds()
            started = time.perf_counter()
            res = sweep(sc, grid, replications=reps, executor=ex, workers=args.workers,
                        out=Path(tmp) / ex, quiet=True)
            times[ex] = time.perf_counter() - started
            cpu = cpu_seconds() - cpu0
            sampler.stop.set()
            sampler.join()
            tables[ex] = res.tidy.drop(columns=["wall_seconds"])
            s = sampler.samples or [rss_mb()]
            n = max(1, len(s) // 4)
            first, last = sum(s[:n]) / n, sum(s[-n:]) / n
            print(f"{ex:10s} {times[ex]:7.1f} s wall, {cpu:7.1f} s CPU   "
                  f"parent RSS first quarter {first:6.0f} MB, "
                  f"last quarter {last:6.0f} MB, peak {max(s):6.0f} MB")
    base = next(iter(tables))
    for t in tables.values():
        pd.testing.assert_frame_equal(tables[base], t)
    if "serial" in times:
        for ex, t in times.items():
            if ex != "serial":
                print(f"speed-up of {ex} over serial: {times['serial'] / t:.2f}x")
    print("tables identical across executors:", ", ".join(tables))
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the cores)")


if __name__ == "__main__":
    main()
