"""Output folders under hostile conditions: paths that cannot be written, damaged results,
links inside a folder, two runs at once, signals and killed processes.

What each test holds simq to is in docs/output.md ("Where output goes" and "A run's
folder is written whole").
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import held_by_another_process

import simq
from simq.cli import main
from simq.errors import ScenarioError
from simq.files import OutputBusyError, locked, staged_dir

ROOT = Path(__file__).resolve().parent.parent
MM1 = str(ROOT / "models" / "mm1.yaml")
SHORT = ["--set", "run.until=400", "--set", "run.warmup=40"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "simq.cli", *args]


def _one_line_error(err: str, *needles: str) -> None:
    """One error line; any other line is a note simq prints before a run (its estimate)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("simq: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert all(line.startswith("simq: ") for line in lines), err
    for needle in needles:
        assert needle in errors[0], (needle, err)


def _stale(where: Path) -> list[Path]:
    return [p for p in where.rglob("*") if ".simq-" in p.name and p.name.endswith(".tmp")]


# Output folders that cannot be written --------------------------------------------------

def _under_a_file(tmp: Path) -> str:
    (tmp / "notes.txt").write_text("mine", encoding="utf-8")
    return str(tmp / "notes.txt" / "sub")


def _read_only(tmp: Path) -> str:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    return str(tmp / "ro" / "run")


def _no_permission(tmp: Path) -> str:
    (tmp / "closed").mkdir()
    (tmp / "closed").chmod(0o000)
    return str(tmp / "closed" / "run")


BAD_OUT = {
    "under-a-file": (_under_a_file, "Not a directory"),
    "proc": (lambda tmp: "/proc/simq-run", ""),
    "too-long": (lambda tmp: str(tmp / ("x" * 300)), "too long"),
    "read-only": (_read_only, "ermission"),
    "no-permission": (_no_permission, "ermission"),
}


@pytest.mark.parametrize("case", list(BAD_OUT))
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_out_that_cannot_be_written_is_one_line_exit_2(
        case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if case in {"read-only", "no-permission"} and IS_ROOT:
        pytest.skip("permissions do not stop root")
    if case == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    make, reason = BAD_OUT[case]
    out = make(tmp_path)
    try:
        if command == "run":
            code = main(["run", MM1, "--out", out, *SHORT])
        else:
            code = main(["sweep", MM1, "--grid", "producers.app.rate=0.5", "--executor",
                         "serial", "--quiet", "--out", out, *SHORT])
    finally:
        for p in tmp_path.iterdir():
            p.chmod(0o755)
    assert code == 2
    _one_line_error(capsys.readouterr().err, out[:150], reason)


@pytest.mark.parametrize("command", [
    ["run", MM1, *SHORT],
    ["sweep", MM1, "--grid", "producers.app.rate=0.5", "--executor", "serial", "--quiet",
     *SHORT],
    ["validate", "--only", "M/M/1", "--quiet"],
])
def test_an_empty_out_is_refused(command: list[str], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--out", ""]) == 2
    _one_line_error(capsys.readouterr().err, "--out", "must name a folder")
    assert list(tmp_path.iterdir()) == []  # nothing written to the default folder


def test_an_empty_out_is_refused_by_the_api() -> None:
    with pytest.raises(OSError, match="empty path"), staged_dir("", "run", {"summary.json"}):
        pass


# A run's folder is written whole ---------------------------------------------------------

def test_a_second_run_leaves_nothing_of_the_first(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    assert (out / "figures" / "latency_histogram.png").is_file()
    assert main(["run", MM1, "--out", str(out), "--no-messages", "--seed", "7", *SHORT]) == 0
    # Without messages there is no latency histogram: one left over would be the first
    # run's, drawn beside the second run's numbers.
    assert not (out / "figures" / "latency_histogram.png").exists()
    assert not (out / "messages.parquet").exists()
    assert json.loads((out / "summary.json").read_text())["seed"] == 7
    assert not _stale(tmp_path)


def test_a_run_that_fails_while_writing_leaves_the_previous_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    from simq.analysis import compare
    from simq.report import report

    monkeypatch.setattr(compare, "compare", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        report(simq.run(simq.load(MM1).with_overrides(
            {"run.until": 400, "run.warmup": 40}), seed=9), out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not _stale(tmp_path)


def test_without_an_atomic_exchange_two_renames_replace_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from simq import files

    monkeypatch.setattr(files, "_exchange", lambda a, b: False)  # as on macOS or Windows
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    assert main(["run", MM1, "--out", str(out), "--seed", "5", *SHORT]) == 0
    assert json.loads((out / "summary.json").read_text())["seed"] == 5
    assert not _stale(tmp_path)


def test_stale_temporary_files_of_a_killed_run_are_removed_and_only_those(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    left = [out / ".summary.json.simq-abcd_123.tmp", out / "figures" / ".x.png.simq-00000000.tmp",
            tmp_path / ".run.simq-zz9zz9zz.tmp" / "summary.json"]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half", encoding="utf-8")
    # Files of the user's that merely look temporary are not simq's to remove.
    theirs = [tmp_path / ".run.tmp", tmp_path / ".other.simq-abcdefgh.tmp",
              tmp_path / "run.simq-abcdefgh.tmp"]
    for p in theirs:
        p.write_text("mine", encoding="utf-8")
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    assert not _stale(out) and not (tmp_path / ".run.simq-zz9zz9zz.tmp").exists()
    assert all(p.read_text(encoding="utf-8") == "mine" for p in theirs)


def test_a_folder_holding_only_a_killed_runs_leftovers_is_not_foreign(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".summary.json.simq-abcdefgh.tmp").write_text("half", encoding="utf-8")
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    assert not _stale(tmp_path)


def test_the_users_files_in_a_forced_folder_survive_every_later_run(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    assert main(["run", MM1, "--out", str(out), "--force", *SHORT]) == 0
    assert main(["run", MM1, "--out", str(out), "--no-messages", *SHORT]) == 0
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "precious"
    assert (out / "summary.json").is_file() and not (out / "messages.parquet").exists()
    assert not _stale(tmp_path)


# Links inside an output folder -----------------------------------------------------------

def _linked_figures(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine", encoding="utf-8")
    shutil.rmtree(out / "figures")
    (out / "figures").symlink_to(elsewhere, target_is_directory=True)
    (tmp_path / "notes.md").write_text("my notes", encoding="utf-8")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(tmp_path / "notes.md")
    return out, elsewhere


@pytest.mark.parametrize("command", ["run", "report"])
def test_simq_never_writes_through_a_link_in_the_folder(command: str, tmp_path: Path) -> None:
    out, elsewhere = _linked_figures(tmp_path)
    args = ["run", MM1, "--out", str(out), *SHORT] if command == "run" else ["report", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert (tmp_path / "notes.md").read_text(encoding="utf-8") == "my notes"
    assert not (out / "figures").is_symlink() and list((out / "figures").glob("*.png"))
    assert not (out / "report.md").is_symlink()


def test_a_sweep_does_not_write_through_a_linked_points_folder(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["sweep", MM1, "--grid", "producers.app.rate=0.5", "--executor", "serial",
            "--quiet", "--out", str(out), *SHORT]
    assert main(args) == 0
    done = len(list((out / "points").glob("p*.json")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "points")
    (out / "points").symlink_to(elsewhere, target_is_directory=True)
    assert main(args) == 0
    assert list(elsewhere.iterdir()) == []
    assert len(list((out / "points").glob("p*.json"))) == done


# One writer at a time --------------------------------------------------------------------

def test_a_folder_held_by_another_process_is_refused_until_it_dies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    with held_by_another_process(out):
        assert main(["run", MM1, "--out", str(out), *SHORT]) == 2
        _one_line_error(capsys.readouterr().err, str(out), "another simq process")
        assert main(["sweep", MM1, "--grid", "producers.app.rate=0.5", "--executor",
                     "serial", "--quiet", "--out", str(out), *SHORT]) == 2
        assert main(["report", str(out)]) == 2  # not a results folder yet: refused anyway
        with pytest.raises(OutputBusyError), locked(out):
            pass
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0


def test_the_lock_is_reentrant_within_one_process(tmp_path: Path) -> None:
    with locked(tmp_path / "a"), locked(tmp_path / "a"):
        pass
    with locked(tmp_path / "a"):  # and released
        pass


# Damaged results folders ---------------------------------------------------------------

@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    return out


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "sweep"
    assert main(["sweep", MM1, "--grid", "producers.app.rate=0.4,0.6", "--executor",
                 "serial", "--quiet", "--out", str(out), *SHORT]) == 0
    return out


DAMAGE = {
    "summary.json": [(b"", "empty"), (b'{"scenario": "mm1", "seed', "not valid JSON"),
                     (b"[1, 2]", "not a JSON object"), (b"{}", "missing"),
                     (b'{"scenario": 1, "seed": 1, "replications": 1, "window": 3}',
                      "damaged"), (b"\xff\xfe\x00", "UTF-8")],
    "timeseries.csv": [(b"", "empty"), (b"\x00\x01garbage\n\xff", "damaged"),
                       (b"a,b\n1,2\n", "missing")],
    "messages.parquet": [(b"PAR1 not really", "damaged"), (b"", "damaged")],
    "comparison.csv": [(b"x\n1\n", "missing")],
    "scenario.yaml": [(b"a: [b\n", "damaged")],
}


@pytest.mark.parametrize(("name", "data", "how"),
                         [(n, d, h) for n, cases in DAMAGE.items() for d, h in cases])
def test_simq_report_names_the_damaged_file(name: str, data: bytes, how: str,
                                            run_folder: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_folder, copy)
    (copy / name).write_bytes(data)
    assert main(["report", str(copy)]) == 2
    _one_line_error(capsys.readouterr().err, str(copy / name), how)


SWEEP_DAMAGE = [("sweep.json", b"{", "not valid JSON"), ("sweep.json", b"{}", "missing"),
                ("tidy.parquet", b"nonsense", "damaged"),
                ("aggregated.parquet", b"", "damaged"),
                ("points/p000000-r0000.json", b'{"point": 0', "not valid JSON")]


@pytest.mark.parametrize(("name", "data", "how"), SWEEP_DAMAGE)
def test_simq_report_names_the_damaged_file_of_a_sweep(name: str, data: bytes, how: str,
                                                       sweep_folder: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sweep_folder, copy)
    if name.startswith("points/"):  # read only when the tables are missing
        (copy / "tidy.parquet").unlink()
    (copy / name).write_bytes(data)
    assert main(["report", str(copy)]) == 2
    _one_line_error(capsys.readouterr().err, str(copy / name), how)


def test_report_md_shows_html_from_the_scenario_as_text(tmp_path: Path) -> None:
    text = Path(MM1).read_text(encoding="utf-8").replace(
        "description: The textbook",
        "description: <script>alert(1)</script> <img src=x onerror=alert(2)> & ``` The")
    scenario = tmp_path / "mm1.yaml"
    scenario.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", str(scenario), "--out", str(out), *SHORT]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    # Outside code blocks (where nothing is rendered) and anywhere in the HTML page.
    prose = re.sub(r"\n(`{3,})[a-z]*\n.*?\n\1\n", "\n", md, flags=re.S)
    for page in (prose, (out / "report.html").read_text(encoding="utf-8")):
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script>alert(1)&lt;/script>" in md
    # The scenario's own ``` does not end the code block that shows it.
    assert "\n````yaml\n" in md


# Workers and schedulers ------------------------------------------------------------------

@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_are_refused_naming_the_option(
        workers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", MM1, "--grid", "producers.app.rate=0.5", "--workers", workers,
                 "--quiet", "--out", str(tmp_path / "s"), *SHORT]) == 2
    _one_line_error(capsys.readouterr().err, "--workers", ">= 1", workers)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_below_one_are_refused_by_the_api(workers: object, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="workers"):
        simq.sweep(MM1, {"producers.app.rate": [0.5]}, workers=workers,  # type: ignore[arg-type]
                   out=tmp_path / "s", quiet=True)


def test_an_unreachable_dask_scheduler_is_one_line_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dask.distributed")
    from simq.sweep import executors

    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    assert main(["sweep", MM1, "--grid", "producers.app.rate=0.5", "--executor", "dask",
                 "--scheduler", "tcp://127.0.0.1:1", "--quiet",
                 "--out", str(tmp_path / "s"), *SHORT]) == 2
    _one_line_error(capsys.readouterr().err, "--scheduler", "tcp://127.0.0.1:1")


# Signals and killed processes ----------------------------------------------------------

# Long enough to be still running when the signal comes on a fast machine (seconds).
LONG = ["--set", "run.until=1000000", "--set", "run.warmup=100", "--set",
        "run.records=summary"]


def _sweep_cmd(out: Path, executor: str) -> list[str]:
    return _cli("sweep", MM1, "--grid", "producers.app.rate=0.3:0.9:6",
                "--replications", "2", "--set", "run.until=4000", "--set", "run.warmup=100",
                "--executor", executor, "--workers", "2", "--quiet", "--out", str(out))


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its SIGTERM handler (the command line has begun:
    before that, Python is still starting and a signal ends it the system's way)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # no /proc: rely on the delay alone
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def _interrupt(cmd: list[str], sig: int, after: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 30
    while not _handles_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err)


def _assert_interrupted(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # The last word is the interruption; a run's estimate may come before it.
    assert done.stderr.strip().splitlines()[-1] == "simq: interrupted", done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("after", [0.0, 0.3, 2.5], ids=["start", "imports", "running"])
def test_a_signal_during_a_run_exits_130_and_keeps_the_previous_run(
        sig: int, after: float, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", MM1, "--out", str(out), *SHORT]) == 0
    before = (out / "summary.json").read_bytes()
    _assert_interrupted(_interrupt(_cli("run", MM1, "--out", str(out), *LONG), sig, after))
    assert (out / "summary.json").read_bytes() == before
    assert not _stale(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "processes"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_sweep_exits_130_and_keeps_finished_points(
        executor: str, sig: int, tmp_path: Path) -> None:
    out = tmp_path / "s"
    proc = subprocess.Popen(_sweep_cmd(out, executor), env=ENV, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("points/p*.json"))) < 2:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    _assert_interrupted(subprocess.CompletedProcess([], proc.returncode, "", err))
    done = list(out.glob("points/p*.json"))
    assert 2 <= len(done) < 12
    for f in done:
        json.loads(f.read_text(encoding="utf-8"))
    subprocess.run(_sweep_cmd(out, executor), env=ENV, check=True)
    assert len(list(out.glob("points/p*.json"))) == 12


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_validate_exits_130(sig: int, tmp_path: Path) -> None:
    _assert_interrupted(_interrupt(_cli("validate", "--quiet", "--out", str(tmp_path / "v")),
                                   sig, 2.5))


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited, whoever is to reap it


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
def test_workers_stop_when_the_sweep_is_killed(tmp_path: Path) -> None:
    proc = subprocess.Popen(_sweep_cmd(tmp_path / "s", "processes"), env=ENV,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.05)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the pool did not start"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} of {len(workers)} workers outlived the sweep"


def _run_of(folder: Path) -> int:
    """The seed of the one complete run in ``folder``; fails on a mix or a partial one."""
    names = {p.name for p in folder.iterdir()}
    assert {"summary.json", "scenario.yaml", "timeseries.csv", "comparison.csv",
            "report.html", "report.md", "figures", ".simq"} <= names, names
    seed = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["seed"]
    assert f"seed: {seed}\n" in (folder / "scenario.yaml").read_text(encoding="utf-8")
    assert f"seed {seed}," in (folder / "report.md").read_text(encoding="utf-8")
    assert f"seed {seed}," in (folder / "report.html").read_text(encoding="utf-8")
    import pandas as pd

    # A summary-mode run keeps no per-message table; a full one must have a readable one.
    summary_mode = "records: summary" in (folder / "scenario.yaml").read_text(encoding="utf-8")
    assert ("messages.parquet" in names) != summary_mode, names
    if "messages.parquet" in names:
        pd.read_parquet(folder / "messages.parquet")
    pd.read_csv(folder / "timeseries.csv")
    assert not _stale(folder)
    return int(seed)


@pytest.mark.slow
def test_kill_9_at_random_moments_never_leaves_a_mixed_or_partial_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--set", "run.until=4000", "--set", "run.warmup=100"]
    subprocess.run(_cli("run", MM1, "--out", str(out), "--seed", "1", *args), env=ENV,
                   check=True, capture_output=True)
    started = time.monotonic()
    subprocess.run(_cli("run", MM1, "--out", str(out), "--seed", "2", *args), env=ENV,
                   check=True, capture_output=True)
    whole = time.monotonic() - started
    rng = random.Random(20)
    seeds = {1, 2}
    for i in range(20):
        proc = subprocess.Popen(_cli("run", MM1, "--out", str(out), "--seed", str(10 + i),
                                     *args), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, whole * 1.1))
        proc.kill()
        proc.wait()
        seeds.add(10 + i)
        assert _run_of(out) in seeds
    subprocess.run(_cli("run", MM1, "--out", str(out), "--seed", "99", *args), env=ENV,
                   check=True, capture_output=True)
    assert _run_of(out) == 99
    assert not _stale(tmp_path), "the next run cleans up what killed runs left"


@pytest.mark.slow
def test_two_runs_at_once_into_one_folder_the_second_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(_cli("run", MM1, "--out", str(out), *LONG), env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not out.is_dir():
        time.sleep(0.01)
    time.sleep(0.2)
    second = subprocess.run(_cli("run", MM1, "--out", str(out), *SHORT), env=ENV,
                            capture_output=True, text=True)
    assert second.returncode == 2, second.stderr
    _one_line_error(second.stderr, str(out), "another simq process")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    _run_of(out)
