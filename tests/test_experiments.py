"""The experiments: each runs in its --quick mode and leaves its CSV, PNG and report; the
committed results/ are listed in results/README.md and small."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                     if not p.stem.startswith("_"))


def _module(name: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"experiments.{name}")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quick_run_writes_tables_figures_and_report(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _module(name, monkeypatch)
    out = tmp_path / name
    assert mod.run(["--quick", "--executor", "serial", "--out", str(out)]) == 0
    csvs, pngs = sorted(out.glob("*.csv")), sorted(out.glob("*.png"))
    assert csvs and pngs
    for csv in csvs:
        assert len(pd.read_csv(csv)) > 0, csv.name
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert report.startswith("# ")
    for f in csvs + pngs:
        assert f.name in report, f"report.md does not mention {f.name}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_committed_results_match_the_script(name: str) -> None:
    folder = ROOT / "results" / name
    assert (folder / "report.md").is_file(), f"run python experiments/{name}.py"
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "--quick" not in report, "the committed results come from a full run"
    for f in re.findall(r"`([\w.-]+\.(?:csv|png))`", report):
        assert (folder / f).is_file(), f"{name}: {f} is listed but missing"
    listing = (ROOT / "results" / "README.md").read_text(encoding="utf-8")
    assert f"{name}/" in listing, f"results/README.md does not list {name}"


def _committed(folder: Path) -> list[Path]:
    """The files of ``folder`` that a commit holds: git's tracked and not-ignored files.

    What a user writes locally (ignored by .gitignore) is not part of the repository, so
    it never counts; outside a git checkout (a source archive) every file counts.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--",
             str(folder)], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [p for p in folder.rglob("*") if p.is_file()]
    return [ROOT / os.fsdecode(name) for name in listed.split(b"\0") if name]


def test_committed_results_are_small() -> None:
    files = [p for p in _committed(ROOT / "results") if p.is_file()]
    assert files, "results/ holds no committed file"
    total = sum(p.stat().st_size for p in files)
    assert total < 5_000_000, f"results/ holds {total / 1e6:.1f} MB"


def test_composed_reads_each_model_and_its_breakdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _module("composed", monkeypatch)
    out = tmp_path / "composed"
    assert mod.run(["--quick", "--executor", "serial", "--out", str(out)]) == 0
    results = pd.read_csv(out / "composed.csv")
    parts = pd.read_csv(out / "breakdown.csv")
    assert list(results["model"]) == list(mod.MODELS) == list(parts["model"])
    # The steps add up to the mean latency, model by model (to the CSV's 6 digits).
    steps = parts.drop(columns="model").fillna(0).sum(axis=1)
    assert steps.to_numpy() == pytest.approx(results["latency_mean"].to_numpy(), rel=1e-4)
    outcomes = results[list(mod.OUTCOMES)].sum(axis=1)
    assert outcomes.to_numpy() == pytest.approx(results["produced"].to_numpy())
