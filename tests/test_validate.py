"""simq validate: the table, the files, the exit codes, the pass rule."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import held_by_another_process

from simq.cli import main
from simq.files import OutputExistsError
from simq.validate import cases as cases_module
from simq.validate.cases import cases

validate_pkg = sys.modules["simq.validate"]


def test_the_default_suite_has_the_canonical_cases() -> None:
    names = [c.name for c in cases()]
    assert len(names) >= 25 and len(set(names)) == len(names)
    groups = {c.group for c in cases()}
    assert {"M/M/1", "M/M/c", "M/G/1", "blocking", "loss", "Jackson", "overload",
            "links", "approximate"} <= groups
    for c in (2, 5, 10):
        assert any(n.startswith(f"M/M/{c} ") for n in names)
    # Little's law is checked at every queue of every case that has waiting.
    little = [chk for c in cases() for chk in c.checks if "Little" in chk.quantity]
    assert len(little) >= 20


def test_validate_writes_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    out = tmp_path / "v"
    rc = main(["validate", "--only", "M/M/1 rho=0.3", "--out", str(out), "--jobs", "1",
               "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "M/M/1 rho=0.3" in text and "Pass rule" in text
    table = pd.read_csv(out / "validation.csv")
    assert set(table["case"]) == {"M/M/1 rho=0.3"}
    assert table["pass"].all()
    md = (out / "validation.md").read_text()
    assert md.startswith("# simq validation") and "| case | quantity |" in md
    assert "Bonferroni" in md and "When is agreement agreement?" in md


def test_a_wrong_theory_fails_with_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    def wrong(scale: float = 1.0) -> list[cases_module.Case]:
        c = cases(scale)[0]
        bad = dataclasses.replace(c.checks[0], theory=c.checks[0].theory * 1.5)
        return [dataclasses.replace(c, checks=[bad])]

    monkeypatch.setattr(validate_pkg, "cases", wrong)
    rc = main(["validate", "--only", "rho=0.3", "--out", str(tmp_path / "v"), "--jobs", "1",
               "--quiet"])
    assert rc == 1
    table = pd.read_csv(tmp_path / "v" / "validation.csv")
    theory = table[table["group"] != validate_pkg.ENGINES]
    assert len(theory) == 1 and not theory["pass"].any()
    # The case is a FIFO station: it also runs on the SimPy engine, from other seeds, and
    # the two engines agree whatever theory says.
    engines = table[table["group"] == validate_pkg.ENGINES]
    assert len(engines) == 1 and engines["pass"].all()
    assert engines["quantity"].tolist() == theory["quantity"].tolist()


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--only", "no such case", "--out", str(tmp_path / "a")]) == 2
    assert "--only" in capsys.readouterr().err
    assert main(["validate", "--jobs", "0", "--out", str(tmp_path / "b")]) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["validate", "--only", "rho=0.3", "--out", str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "keep"
    assert not (foreign / "validation.csv").exists()


ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--only", "M/M/1 rho=0.3", "--jobs", "1", "--quiet"]


def test_by_default_each_validation_gets_a_fresh_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", *QUICK]) == 0
    assert main(["validate", *QUICK]) == 0
    folders = sorted((tmp_path / "runs").glob("validation-*"))
    assert len(folders) == 2
    for folder in folders:
        assert (folder / "validation.csv").is_file()
    assert not (tmp_path / "results").exists()


def test_a_written_validation_is_replaced_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "v"
    assert main(["validate", *QUICK, "--out", str(out)]) == 0
    before = (out / "validation.csv").read_bytes()
    assert main(["validate", *QUICK, "--out", str(out)]) == 2
    assert (out / "validation.csv").read_bytes() == before
    assert main(["validate", *QUICK, "--out", str(out), "--force"]) == 0


def test_a_partial_run_never_replaces_the_committed_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    committed = tmp_path / "validation"
    shutil.copytree(ROOT / "results" / "validation", committed)
    files = {p.name: p.read_bytes() for p in committed.iterdir()}
    for force in ([], ["--force"]):
        assert main(["validate", *QUICK, "--out", str(committed), *force]) == 2
        assert "partial run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == files
    # The API refuses too, whatever it is asked.
    suite = validate_pkg.run_suite(jobs=1, only="M/M/1 rho=0.3")
    with pytest.raises(OutputExistsError):
        validate_pkg.write_outputs(suite, committed, force=True)


def test_referee_cases_are_skipped_with_a_message_without_ciw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_pkg, "available", lambda: False)
    suite = validate_pkg.run_suite(thorough=True, jobs=1, only="G/G/2")
    assert suite.table.empty
    assert any("Ciw is not installed" in s for s in suite.skipped)


def test_a_forced_validation_replaces_its_files_and_keeps_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "v"
    assert main(["validate", *QUICK, "--out", str(out)]) == 0
    (out / "figure.png").write_bytes(b"a figure someone made")
    (out / "validation.md").write_text("stale", encoding="utf-8")
    assert main(["validate", *QUICK, "--out", str(out), "--force"]) == 0
    assert (out / "figure.png").read_bytes() == b"a figure someone made"
    assert (out / "validation.md").read_text(encoding="utf-8") != "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"], "no temporary folder is left"


def test_a_folder_another_process_writes_into_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "v"
    with held_by_another_process(out):
        assert main(["validate", *QUICK, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "another simq process" in err and "Traceback" not in err
    assert main(["validate", *QUICK, "--out", str(out)]) == 0  # released when it died
