"""The benchmark script runs end to end (a smoke test: its table, not its speed)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_quick_mode_writes_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--messages", "1000",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert "time_vs_simpy" in done.stdout and "msgs_per_s" in done.stdout
    rows = list(csv.DictReader((tmp_path / "benchmarks-quick.csv").open()))
    assert {(r["model"], r["tool"]) for r in rows} == {
        (m, t) for m in ("mm1", "mm4", "tandem3") for t in ("simq", "simq-stream", "simpy", "ciw")
    }
    for r in rows:
        assert float(r["msgs_per_s"]) > 0 and float(r["peak_mb"]) > 0
        assert r["messages"] == "1000"
