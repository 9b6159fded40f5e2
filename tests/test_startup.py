"""Start-up stays light: `import simq`, `simq --version` and `simq --help` import none of the
heavy libraries. Imports are counted (in a fresh interpreter), not timed, so the test does
not depend on the machine; docs/performance.md has the measured times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "matplotlib", "scipy", "pyarrow", "numpy", "pydantic", "simpy", "rich",
         "jinja2")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _imported_by_cli(*args: str) -> set[str]:
    # The console script users run (python -m simq.cli where it is not installed);
    # -X importtime lists every module the process imports, on stderr.
    script = Path(sys.executable).with_name("simq")
    entry = [str(script)] if script.is_file() else ["-m", "simq.cli"]
    proc = subprocess.run([sys.executable, "-X", "importtime", *entry, *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_simq_imports_no_heavy_library() -> None:
    modules = _modules_after("import simq")
    assert not _heavy(modules)
    assert "simq.run" not in modules


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["run", "--help"]])
def test_cli_start_up_imports_no_heavy_library(args: list[str]) -> None:
    modules = _imported_by_cli(*args)
    assert "simq" in modules
    assert not _heavy(modules)


def test_names_load_on_first_use() -> None:
    modules = _modules_after("import simq\nsimq.compare\nsimq.theory.mmc")
    assert "pandas" in modules and "simq.analysis" in modules


def test_functions_keep_their_names_when_their_modules_are_imported() -> None:
    # Importing simq.run (the module) binds simq.run; the function must stay there.
    code = ("import simq, simq.run, simq.sweep\n"
            "from simq.run import RunResult\n"
            "assert callable(simq.run) and simq.run.__module__ == 'simq.run'\n"
            "assert callable(simq.sweep) and simq.sweep.__module__ == 'simq.sweep'\n"
            "assert simq.RunResult is RunResult\n"
            "assert set(simq.__all__) <= set(dir(simq))\n"
            "for name in simq.__all__: getattr(simq, name)\n")
    _modules_after(code)


def test_a_replaced_function_is_seen_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    import simq

    original = simq.run
    monkeypatch.setattr(simq, "run", lambda *a, **k: "fake")
    assert simq.run() == "fake"
    monkeypatch.undo()
    assert simq.run is original
