"""Hostile and malformed input: every outcome is a scenario or a ScenarioError naming the
field, never another exception, a hang or a message that echoes a huge value."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simq
from simq.errors import SHOWN, ScenarioError
from simq.scenario.io import MAX_BYTES, MAX_DEPTH, MAX_NODES

ROOT = Path(__file__).resolve().parents[1]
MM1 = yaml.safe_load((ROOT / "models" / "mm1.yaml").read_text(encoding="utf-8"))
HUGE = 10**400

# (override path, value, a word the error must contain)
BAD_VALUES = [
    ("run.warmup", HUGE, "2**53"),
    ("run.until", HUGE, "run.until"),
    ("producers.app.rate", HUGE, "producers.app.rate"),
    ("queues.broker.capacity", HUGE, "2**53"),
    ("consumers.worker.count", 1e308, "2**53"),
    ("consumers.worker.count", HUGE, "2**53"),
    ("producers.app.priority", float("inf"), "integer"),
    ("consumers.worker.service", "lognormal(mean=1, cv=1e200)", "range of a float"),
    ("run.until", True, "number"),
    ("run.seed", True, "integer"),
    ("run.replications", True, "integer"),
    ("consumers.worker.batch", True, "integer"),
    ("name", "<b>x</b>", "names are"),
    ("name", "../x", "never a path"),
    ("name", "x" * 300, "64"),
    ("name", "", "names are"),
    ("name", "a b", "names are"),
]


@pytest.mark.parametrize(("path", "value", "word"), BAD_VALUES,
                         ids=[f"{p}={str(v)[:12]}" for p, v, _ in BAD_VALUES])
def test_bad_values_are_scenario_errors_naming_the_field(path: str, value: Any,
                                                         word: str) -> None:
    with pytest.raises(ScenarioError) as err:
        simq.load(ROOT / "models" / "mm1.yaml").with_overrides({path: value})
    msg = str(err.value)
    assert msg.startswith(path.split(".")[0]) and word in msg, msg
    assert len(msg) < 400, "an error quotes at most a short part of what it refused"


@pytest.mark.parametrize("name", ["a b", "<i>", "../up", "x" * 65, "-x"])
@pytest.mark.parametrize("section", ["producers", "queues", "consumers"])
def test_component_names_are_restricted(section: str, name: str) -> None:
    raw = copy.deepcopy(MM1)
    old = next(iter(raw[section]))
    raw[section][name] = raw[section].pop(old)
    with pytest.raises(ScenarioError, match="names are"):
        simq.Scenario(raw)


def test_zero_service_time_runs_with_unbounded_capacity() -> None:
    """A consumer that serves at once is a defined system (no queueing at all), not a
    division by zero."""
    sc = simq.load(ROOT / "models" / "mm1.yaml").with_overrides(
        {"consumers.worker.service": "constant(0)", "run.until": 300.0, "run.warmup": 0.0})
    res = simq.run(sc)
    assert res.summary["queues"]["broker"]["wait_mean"] == 0.0
    assert res.summary["messages"]["delivered"] > 0


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


BOMB = (b"a: &a [x,x,x,x,x,x,x,x,x,x]\n"
        + b"".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n".encode()
                   for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + b"run: {until: 1}\n")


@pytest.mark.parametrize(("name", "data", "word"), [
    ("utf16.yaml", (ROOT / "models" / "mm1.yaml").read_text().encode("utf-16"), "UTF-16"),
    ("latin1.yaml", "name: x\n# caf\xe9\n".encode("latin-1"), "byte 13"),
    ("deep.yaml", b"a: " + b"[" * 2000 + b"]" * 2000 + b"\n", f"{MAX_DEPTH} levels"),
    ("deep.toml", b"a = " + b"[" * 2000 + b"]" * 2000 + b"\n", "nested too deep"),
    ("bomb.yaml", BOMB, f"{MAX_NODES:,} values"),
    ("big.yaml", b"# x\n" * (MAX_BYTES // 4 + 1), "at most"),
    ("empty.yaml", b"", "empty"),
], ids=lambda x: x if isinstance(x, str) and len(x) < 20 else "")
def test_broken_files_are_refused_naming_the_file(tmp_path: Path, name: str, data: bytes,
                                                  word: str) -> None:
    f = _write(tmp_path, name, data)
    with pytest.raises(ScenarioError) as err:
        simq.load(f)
    msg = str(err.value)
    assert msg.startswith(str(f)) and word in msg, msg
    assert len(msg) < 400


def test_a_folder_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="regular file"):
        simq.load(tmp_path)
    with pytest.raises(ScenarioError, match="no such"):
        simq.load(tmp_path / "missing.yaml")


def test_an_alias_bomb_in_an_override_is_not_expanded() -> None:
    from simq.scenario import parse_override

    _, value = parse_override("name=" + BOMB.decode().replace("\n", " "))
    assert isinstance(value, str)  # read as text, never built as 10**9 values


def test_the_error_value_is_cut() -> None:
    msg = str(ScenarioError("run.until", "must be a number", "x" * 10_000))
    assert len(msg) < SHOWN + 80 and "10,002 characters" in msg


def test_the_cli_exits_2_without_a_traceback(tmp_path: Path) -> None:
    f = _write(tmp_path, "deep.yaml", b"a: " + b"[" * 2000 + b"]" * 2000 + b"\n")
    r = subprocess.run([sys.executable, "-m", "simq.cli", "run", str(f)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "levels deep" in r.stderr


# Fuzzing: values of every kind put at the paths a scenario has, and raw text.
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([HUGE, -HUGE, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["exponential(rate=0)", "constant(-1)", "uniform(low=2, high=1)",
                     "lognormal(mean=1, cv=1e300)", "gamma(shape=1e-300, scale=1)",
                     "zipf(s=1e400)", ".inf", "-.inf", "auto", "exponential(rate=1e400)"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                           max_size=2),
)


def _paths(tree: Any, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        p = f"{prefix}{k}"
        out += _paths(v, p + ".") if isinstance(v, dict) else [p]
    return out


_MM1_PATHS = _paths(MM1)
_KEYS = ["count", "capacity", "batch", "prefetch", "priority", "ttl", "window", "clients",
         "timeout", "max_attempts", "visibility_timeout", "failure", "overflow", "mode",
         "start", "stop", "size", "service", "interarrival", "to", "from"]


# derandomize: the same examples on every machine, so a run is reproducible; other seeds
# are tried by hand (`--hypothesis-seed=N`) when the front door changes.
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_MM1_PATHS + [
    f"{s}.{n}.{k}" for s, n in (("producers", "app"), ("consumers", "worker"),
                                ("queues", "broker")) for k in _KEYS]), _VALUES),
    min_size=1, max_size=3))
def test_fuzzed_values_give_a_scenario_or_a_scenario_error(changes: list[tuple[str, Any]]
                                                           ) -> None:
    raw = copy.deepcopy(MM1)
    for path, value in changes:
        *parents, key = path.split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p), dict | None) else {}
        node[key] = value
    try:
        simq.Scenario(raw)
    except ScenarioError as err:
        assert len(str(err)) < 1000


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=200),
                 st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace"))))
def test_fuzzed_text_gives_a_scenario_or_a_scenario_error(text: str) -> None:
    try:
        simq.loads(text)
    except ScenarioError as err:
        assert len(str(err)) < 1000
