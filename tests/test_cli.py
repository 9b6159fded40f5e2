"""`simq run`: the files it writes, the names in summary.json, and how it refuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simq.cli import main

ROOT = Path(__file__).resolve().parent.parent
MM1 = str(ROOT / "models" / "mm1.yaml")
SHORT = ["--set", "run.until=400", "--set", "run.warmup=40"]

# The output contract of DESIGN.md, field by field.
CONTRACT_TOP = {"scenario", "seed", "replications", "window", "messages", "throughput",
                "offered_rate", "latency", "queues", "consumers", "links", "formulas"}
CONTRACT_MESSAGES = {"produced", "delivered", "dropped", "expired", "dead_lettered",
                     "duplicates", "in_flight"}
CONTRACT_LATENCY = {"mean", "p50", "p95", "p99", "max"}
CONTRACT_QUEUE = {"wait_mean", "wait_p95", "length_mean", "length_max", "dropped",
                  "growth_rate"}
CONTRACT_CONSUMER = {"utilization", "throughput", "service_mean"}
CONTRACT_LINK = {"delay_mean", "utilization", "lost"}
CONTRACT_FORMULA = {"text_formula", "predicted", "measured", "theory", "holds"}
# Each formula row is in one unit (docs/output.md): throughput as a rate and as a ratio,
# queue length as a growth rate and as a mean number waiting.
FORMULA_ROWS = {"throughput", "throughput_ratio", "latency", "queue_growth", "queue_length"}
FORMULA_FIELDS = CONTRACT_FORMULA | {"quantity", "unit", "formula", "note"}
# Fields beyond DESIGN.md's list, documented in docs/output.md: `lost` (link losses) is a
# term of the conservation law, a queue's `arrivals` and `drop_fraction` give its blocking
# probability, `warnings` carries the stability notes, `peak_length`, `peak_time` and
# `drain_time` describe a backlog's peak and how long it took to drain (docs/peak.md; the
# top-level `peak_load` flag appears only for peak-load scenarios). A field missing,
# renamed or added without being listed here and documented is a change of the contract.
# Messaging patterns (docs/patterns.md) add `breakdown` (latency split by stage, adding up
# to the mean latency), `producers` (per-producer rates and latency) and a link's
# `retransmitted` count. Idempotent producers (docs/reliability.md) add the outcome
# `deduplicated` (a term of conservation) and the `duplicates` section.
EXTRA_TOP = {"warnings", "breakdown", "producers", "theory", "warmup", "duplicates", "ordering",
             "engine"}
EXTRA_LINK = {"retransmitted"}
EXTRA_MESSAGES = {"lost", "redelivered", "discarded", "deduplicated"}
EXTRA_QUEUE = {"arrivals", "drop_fraction", "peak_length", "peak_time", "drain_time",
               "expired", "dead_lettered", "redelivered", "ordering"}
EXTRA_CONSUMER = {"worker_seconds"}  # online workers integrated over the window


def _run(*args: str) -> int:
    return main(["run", *args])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of a scenario with a link, written once, read by several tests."""
    out = tmp_path_factory.mktemp("cli") / "net"
    assert _run(str(ROOT / "models" / "network.yaml"), "--out", str(out),
                "--replications", "3", "--set", "run.until=300", "--set",
                "run.warmup=20") == 0
    return out


def test_run_writes_every_output_file(written: Path) -> None:
    for name in ("summary.json", "messages.parquet", "timeseries.csv", "report.html"):
        assert (written / name).is_file() and (written / name).stat().st_size > 0, name
    pngs = list((written / "figures").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "<html" in (written / "report.html").read_text(encoding="utf-8")
    # No temporary file is left behind by the atomic writes.
    assert not [p for p in written.rglob("*.tmp")]


def test_summary_json_has_exactly_the_contract_fields(written: Path) -> None:
    s = json.loads((written / "summary.json").read_text(encoding="utf-8"))
    assert set(s) == CONTRACT_TOP | EXTRA_TOP | {"ci95"}
    assert s["scenario"] == "network" and s["replications"] == 3 and isinstance(s["seed"], int)
    assert len(s["window"]) == 2 and s["window"][0] < s["window"][1]
    assert set(s["messages"]) == CONTRACT_MESSAGES | EXTRA_MESSAGES
    assert set(s["latency"]) == CONTRACT_LATENCY
    assert set(s["queues"]) == {"broker"}
    assert set(s["queues"]["broker"]) == CONTRACT_QUEUE | EXTRA_QUEUE
    assert set(s["consumers"]) == {"worker"}
    assert set(s["consumers"]["worker"]) == CONTRACT_CONSUMER | EXTRA_CONSUMER
    assert set(s["links"]) == {"app->broker"}
    assert set(s["links"]["app->broker"]) == CONTRACT_LINK | EXTRA_LINK
    assert set(s["formulas"]) == FORMULA_ROWS
    for row in s["formulas"].values():
        assert set(row) >= FORMULA_FIELDS
    # ci95: the same shape as the numbers, half-widths.
    numeric = {"messages", "throughput", "offered_rate", "latency", "queues", "consumers",
               "links", "breakdown", "producers", "duplicates", "ordering"}
    assert set(s["ci95"]) == numeric
    assert set(s["ci95"]["queues"]["broker"]) == set(s["queues"]["broker"])
    assert set(s["ci95"]["links"]["app->broker"]) == CONTRACT_LINK | EXTRA_LINK
    assert s["ci95"]["latency"]["mean"] > 0


def test_messages_and_timeseries_files_read_back(written: Path) -> None:
    s = json.loads((written / "summary.json").read_text(encoding="utf-8"))
    msgs = pd.read_parquet(written / "messages.parquet")
    assert len(msgs) == round(s["messages"]["produced"] * 3)
    assert {"replication", "id", "sent", "done", "outcome", "latency"} <= set(msgs.columns)
    ts = pd.read_csv(written / "timeseries.csv")
    assert {"time", "in_flight", "queue.broker.length"} <= set(ts.columns)
    assert (ts["queue.broker.length"] >= 0).all()


def test_refuses_a_foreign_folder_and_writes_nothing(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    assert _run(MM1, "--out", str(out), *SHORT) == 2
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "precious"
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err and "Traceback" not in err


def test_force_writes_into_a_foreign_folder(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious", encoding="utf-8")
    assert _run(MM1, "--out", str(out), "--force", *SHORT) == 0
    assert (out / "summary.json").is_file()
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "precious"
    printed = capsys.readouterr().out
    assert "simq run: mm1" in printed and "The document's formulas" in printed
    assert str(out) in printed


def test_an_out_path_that_is_a_file_is_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("mine", encoding="utf-8")
    assert _run(MM1, "--out", str(f), *SHORT) == 2
    assert f.read_text(encoding="utf-8") == "mine"
    assert "not a folder" in capsys.readouterr().err


def test_rerun_into_its_own_folder_and_no_messages(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(MM1, "--out", str(out), *SHORT) == 0
    assert (out / "messages.parquet").is_file()
    assert _run(MM1, "--out", str(out), "--no-messages", *SHORT) == 0
    assert not (out / "messages.parquet").exists()
    assert (out / "summary.json").is_file() and (out / "timeseries.csv").is_file()


def test_default_folder_is_runs_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(MM1, *SHORT) == 0
    assert (tmp_path / "runs" / "mm1" / "summary.json").is_file()
    assert not (tmp_path / "results").exists()


def test_seed_and_replications(tmp_path: Path) -> None:
    def summary(name: str, *args: str) -> dict[str, object]:
        assert _run(MM1, "--out", str(tmp_path / name), *SHORT, *args) == 0
        return json.loads((tmp_path / name / "summary.json").read_text(encoding="utf-8"))

    a = summary("a", "--seed", "5", "--replications", "2")
    b = summary("b", "--seed", "5", "--replications", "2")
    c = summary("c", "--seed", "6", "--replications", "2")
    assert a["seed"] == 5 and a["replications"] == 2 and "ci95" in a
    assert a == b
    assert a["latency"] != c["latency"]
    one = summary("one", "--replications", "1")
    assert one["replications"] == 1 and "ci95" not in one and one["seed"] == 1
    # Without the options, the file's own run.seed and run.replications hold.
    default = summary("default")
    assert default["replications"] == 5 and "ci95" in default and default["seed"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "producers.nope.rate=2"], "producers.nope.rate"),
        (["--set", "bogus.key=1"], "bogus.key"),
        (["--set", "consumers.worker.count=0"], "consumers.worker.count"),
        (["--set", "queues.broker.capacity=-1"], "-1"),
        (["--set", "run.until"], "--set"),
        (["--seed", "-1"], "seed"),
        (["--replications", "0"], "run.replications"),
    ],
)
def test_bad_options_exit_2_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        args: list[str], needle: str) -> None:
    assert _run(MM1, "--out", str(tmp_path / "o"), *SHORT, *args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("simq: error:") and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_missing_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_code_in_a_distribution_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    evil = '__import__("os").system("touch PWNED")'
    f = tmp_path / "evil.yaml"
    f.write_text(
        "run: {until: 10}\n"
        f"producers: {{app: {{to: broker, interarrival: '{evil}'}}}}\n"
        "queues: {broker: {}}\n"
        "consumers: {worker: {from: broker, rate: 1}}\n",
        encoding="utf-8",
    )
    assert _run(str(f), "--out", str(tmp_path / "o")) == 2
    assert "producers.app.interarrival" in capsys.readouterr().err
    assert _run(MM1, "--out", str(tmp_path / "o"), "--set",
                f"consumers.worker.service={evil}") == 2
    assert "consumers.worker.service" in capsys.readouterr().err
    assert not list(tmp_path.rglob("PWNED"))
    assert not (tmp_path / "o").exists()


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    exe = shutil.which("simq")
    cmd = [exe] if exe else [sys.executable, "-m", "simq.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {until: 10}\nproducers: {app: {to: nowhere, rate: 1}}\n"
                   "queues: {broker: {}}\n", encoding="utf-8")
    proc = subprocess.run([*cmd, "run", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "producers.app.to" in proc.stderr and "'nowhere'" in proc.stderr
    proc = subprocess.run([*cmd, "run", "--no-such-option"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("typed", "meant"), [("rnu", "run"), ("valdate", "validate"),
                                              ("sweeep", "sweep")])
def test_a_mistyped_command_gets_a_suggestion(typed: str, meant: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([typed])
    assert stop.value.code == 2
    assert f"did you mean {meant!r}?" in capsys.readouterr().err


def test_no_suggestion_when_nothing_is_close(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["zzz"])
    assert "did you mean" not in capsys.readouterr().err


# The suggestion is the whole path to write, with the mistyped part put right.
@pytest.mark.parametrize(("path", "meant"), [
    ("producers.app.rat", "producers.app.rate"),
    ("consumers.worker.cont", "consumers.worker.count"),
    ("queues.broker.capacty", "queues.broker.capacity"), ("run.unitl", "run.until"),
    ("producers.ap.rate", "producers.app.rate"),
    ("queus.broker.capacity", "queues.broker.capacity"),
])
def test_a_mistyped_set_path_gets_a_suggestion(path: str, meant: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(MM1, "--out", str(tmp_path / "x"), "--set", f"{path}=1") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"simq: error: {path}: ") and f"did you mean {meant!r}?" in err


@pytest.mark.parametrize(("argv", "meant"), [
    (["models", "mm1"], "did you mean `simq run mm1` or `simq models copy mm1 DIR`?"),
    (["models", "mm1.yaml"], "did you mean `simq run mm1` or `simq models copy mm1 DIR`?"),
    (["models", "cpy", "mm1"], "did you mean `simq models copy`?"),
    (["models", "mine/bursty.yaml"], "did you mean `simq run mine/bursty.yaml`?"),
    (["models", "zzz"], None),
])
def test_models_with_a_name_but_no_action_says_what_was_meant(
        argv: list[str], meant: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith(f"simq: error: models: {argv[1]!r} is not an action: the actions "
                          "are list and copy") and "Traceback" not in err
    assert captured.out == ""
    if meant is None:
        assert "did you mean" not in err
    else:
        assert err.rstrip().endswith(meant)


def test_the_summary_is_plain_text_in_a_pipe(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # capsys is no terminal: no escape codes, lines no wider than 100 columns, and the
    # values with a CI rounded to the CI's second significant digit.
    assert _run(MM1, "--out", str(tmp_path / "o"), "--replications", "3", *SHORT) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    summary = out[:out.index("\nMeasured against theory")]
    assert all(len(line) <= 100 and line == line.rstrip() for line in summary.splitlines())
    from simq.analysis.compare import format_estimate

    s = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    value, half = format_estimate(s["throughput"], s["ci95"]["throughput"])
    assert f"throughput  {value} ± {half} msg/s" in summary
