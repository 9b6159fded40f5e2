"""The README's promise to a newcomer: on a fresh clone, its two commands, run in order,
both succeed, and the first prints what the README shows.

Command 1 (``simq run models/mm1.yaml``) writes the user's own run; command 2
(``python -m pytest``) must not then fail because of it. This test runs command 1 for real
in a clone and then the tests that look at the checkout's files, in that clone. ``.ci/run``
runs both commands exactly as the README writes them, in the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND_1 = "pip install -e . && simq run models/mm1.yaml"
COMMAND_2 = 'pip install -e ".[dev]" && python -m pytest'


def _git(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def _clone(dest: Path) -> Path:
    """A fresh repository holding what a commit of this checkout would hold.

    Copying the tracked and not-ignored files (rather than cloning HEAD) lets the test
    check the working tree it runs in, uncommitted edits included.
    """
    names = _git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for name in filter(None, names.split(b"\0")):
        src = ROOT / os.fsdecode(name)
        if src.is_file():  # a file deleted but not yet staged is still listed
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    _git("init", "-q", cwd=dest)
    _git("add", "-A", cwd=dest)
    return dest


def _simq() -> list[str]:
    # The console script of the environment running the tests: the installed package.
    script = Path(sys.executable).with_name("simq")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "simq.cli"]


def test_readme_shows_the_two_commands_and_a_venv_step() -> None:
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert COMMAND_1 in blocks and COMMAND_2 in blocks
    assert blocks.index(COMMAND_1) < blocks.index(COMMAND_2)
    assert "python3 -m venv .venv" in README


def test_ci_runs_the_two_readme_commands_in_the_checkout() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines()]
    assert COMMAND_1 in lines and COMMAND_2 in lines
    assert lines.index(COMMAND_1) < lines.index(COMMAND_2)
    assert lines.index("python3 -m venv .venv") < lines.index(COMMAND_1)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_readme_commands_in_sequence_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "clone")
    before = _git("status", "--porcelain", cwd=clone)

    # Command 1, with the package already installed.
    run = subprocess.run([*_simq(), "run", "models/mm1.yaml"], cwd=clone,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (clone / "runs" / "mm1" / "summary.json").is_file()
    # The README shows what command 1 prints (up to the list of files written).
    shown = re.search(r"```text\n\$ simq run models/mm1.yaml\n(.*?)\n```", README, re.S)
    assert shown, "README has no sample output of simq run models/mm1.yaml"
    assert run.stdout[:run.stdout.index("\nwrote ")].rstrip() == shown.group(1).rstrip(), \
        "README's sample output differs from what simq run models/mm1.yaml prints"
    # The user's run is invisible to git and left the curated results alone.
    assert _git("status", "--porcelain", cwd=clone) == before

    # Command 2, reduced to the tests that read the checkout's own files.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "tests/test_experiments.py::test_committed_results_are_small"],
        cwd=clone, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
