"""The benchmark script runs end to end (a smoke test: its table, not its speed)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_quick_mode_writes_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--messages", "1000",
         "--memory", "5000", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert "time_vs_simpy" in done.stdout and "msgs_per_s" in done.stdout
    rows = list(csv.DictReader((tmp_path / "benchmarks-quick.csv").open()))
    assert {(r["model"], r["tool"]) for r in rows} == {
        (m, t) for m in ("mm1", "mm4", "tandem3")
        for t in ("simq", "simq-simpy", "simq-stream", "simpy", "ciw", "numpy")
    }
    for r in rows:
        assert float(r["msgs_per_s"]) > 0 and float(r["peak_mb"]) > 0
        assert float(r["process_seconds"]) > 0 and float(r["process_rss_mb"]) > 0
        assert r["messages"] == "1000"
    memory = list(csv.DictReader((tmp_path / "memory-quick.csv").open()))
    assert [r["kind"] for r in memory] == ["waiting", "recorded", "recorded-overload"]
    assert all(int(r["messages"]) > 0 for r in memory)


def test_the_numpy_reference_agrees_with_a_direct_recursion() -> None:
    """The vectorised Lindley form gives the waits of the plain recursion."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run  # type: ignore[import-not-found]

    rng = np.random.default_rng(5)
    arrivals = np.cumsum(rng.exponential(1.0, 2000))
    service = rng.exponential(0.9, 2000)
    w = [0.0]
    for k in range(1, 2000):
        w.append(max(0.0, w[-1] + service[k - 1] - (arrivals[k] - arrivals[k - 1])))
    np.testing.assert_allclose(run.lindley(arrivals, service), w, atol=1e-9)
    # One server of the heap form is the same queue.
    np.testing.assert_allclose(run.kiefer_wolfowitz(arrivals, service, 1), w, atol=1e-9)


@pytest.mark.slow
def test_the_fuzz_count_finds_no_bug(tmp_path: Path) -> None:
    """A short count of generated hostile input (benchmarks/fuzz.py): every input runs or
    is refused cleanly; the script exits 1 on a traceback, another exception or a hang."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--count", "120", "--seed", "5",
         "--timeout", "60"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "120 generated inputs" in done.stdout and "bug" not in done.stdout
