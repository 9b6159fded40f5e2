"""The teaching notebooks: stored clean, importing only the public API, and run top to bottom.

Each notebook is executed in a fresh kernel; any error in any cell (the hidden answer
cells included) fails the test, and so does a cell that runs for more than a minute: the
notebooks are meant to run in a classroom on a small machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import simq

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = [
    "01_first_queue", "02_sync_vs_async", "03_load_and_latency",
    "04_bounded_queues_and_backpressure", "05_reliability", "06_partitions_and_consumer_groups",
    "07_networks", "08_rebalancing_and_failover",
]
PUBLIC_MODULES = {"theory", "plots"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_every_planned_notebook_is_there() -> None:
    assert set(EXPECTED) <= set(_ids(NOTEBOOKS))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_uses_the_public_api_only(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for mod in re.findall(r"^\s*(?:import|from)\s+simq\.(\w+)", source, re.M):
        assert mod in PUBLIC_MODULES, f"{path.name} imports simq.{mod}"
    for names in re.findall(r"^\s*from\s+simq\s+import\s+(.+)$", source, re.M):
        for name in (n.strip() for n in names.split(",")):
            assert name in PUBLIC_MODULES or name in simq.__all__, f"{path.name}: {name}"
    for attr in re.findall(r"\bsimq\.(\w+)", source):
        assert attr in PUBLIC_MODULES or attr in simq.__all__, f"{path.name}: simq.{attr}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_has_exercises_with_answers(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercises" in text
    hidden = [c for c in nb.cells if c.metadata.get("jupyter", {}).get("source_hidden")
              and "answer" in c.source.lower()]
    assert hidden, f"{path.name}: no collapsed answer cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_top_to_bottom(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(path, as_version=4)
    # The kernel must import this checkout's simq, installed or not.
    env_path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), env_path) if p))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
