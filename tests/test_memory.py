"""Memory per message and the memory guard.

A long waiting line keeps plain messages as numbers (engine.line); a run whose memory
grows past ``run.max_memory`` stops with a user error (record.guard). Sizes are asserted
only where they are exact C buffers (the line's blocks), the same on every Python."""

from __future__ import annotations

import random
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import override

import simq
from simq.cli import main
from simq.engine import Simulation
from simq.engine.core import Message, Request
from simq.engine.line import NEAR, Line
from simq.errors import MemoryLimitError, ScenarioError
from simq.record.streaming import run_full, run_streaming
from simq.run import seed_for
from simq.scenario.types import format_size, read_size

FIELDS = Message.__slots__


def _same(a: Message, b: Message) -> bool:
    def eq(x: Any, y: Any) -> bool:
        return bool(x == y or (x != x and y != y))  # NaN: unset `left`

    return type(a) is type(b) and all(eq(getattr(a, f), getattr(b, f)) for f in FIELDS)


def _message(rng: random.Random, i: int) -> Message:
    m = Message(i, rng.random() * 100, rng.choice([1000.0, rng.random()]), rng.randrange(-1, 3))
    m.arrived = m.sent + rng.random()
    m.queue = 2
    if rng.random() < 0.9:
        m.stream, m.seq, m.key = 0, i, rng.choice([-1, 4])
    if rng.random() < 0.05:
        m.deadline = m.sent + 30.0
    if rng.random() < 0.02:
        m.visit = 1  # a later visit: waits as itself
    if rng.random() < 0.02:
        m.left = m.arrived  # dispatched by a prefetch buffer: waits as itself
    return m


class _Sender:
    reply_latency = float
    resends = False

    def acked(self, msg: Request) -> None: ...

    def gone(self, msg: Request) -> None: ...


def test_a_line_gives_back_what_a_deque_would() -> None:
    rng = random.Random(7)
    line, ref = Line(), deque[Message]()
    sender = _Sender()
    for i in range(12 * NEAR):
        if rng.random() < 0.56:  # grows: most messages go far behind the near ones
            m = (Request(i, 1.0, 2.0, sender, 0) if rng.random() < 0.02
                 else _message(rng, i))
            line.append(m)
            ref.append(m)
        elif ref:
            got, want = line.popleft(), ref.popleft()
            assert _same(got, want)
            if isinstance(want, Request):
                assert got is want  # a request waits as itself: its sender is in it
        assert len(line) == len(ref) and bool(line) == bool(ref)
        if i % 997 == 0 and ref:
            assert _same(line[0], ref[0])
            assert all(_same(a, b) for a, b in zip(line, ref, strict=True))
    while ref:
        assert _same(line.popleft(), ref.popleft())
    assert not line
    with pytest.raises(IndexError):
        line.popleft()


def test_a_waiting_plain_message_costs_at_most_100_bytes() -> None:
    n = 50 * NEAR
    msgs = [Message(i, float(i), 1000.0, 0) for i in range(n)]
    for m in msgs:
        m.queue, m.stream, m.seq, m.key = 0, 0, m.id, -1
    line = Line()
    tracemalloc.start()
    try:
        for m in msgs:
            line.append(m)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(line) == n
    assert held / n <= 100  # 80 bytes of numbers, blocks allocated whole
    # As objects (a deque of them, their ints and floats) the same messages cost more
    # than twice that, which is what the line is for.
    assert Message.__basicsize__ + 8 > 100


def _overloaded(records: str, **more: Any) -> dict[str, Any]:
    sc = {
        "name": "overloaded",
        "run": {"until": 20_000, "seed": 3, "warmup": 0, "records": records},
        "producers": {"app": {"to": "q", "rate": 2.0}},
        "queues": {"q": {}},
        "consumers": {"w": {"from": "q", "count": 1, "rate": 1.0}},
    }
    return override(sc, more)


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.parametrize("changes", [
    {},
    {"queues.q.discipline": "priority", "producers.app.rate": 1.0, "producers.app.priority": 1,
     "producers.low": {"to": "q", "rate": 1.0, "priority": 0}},
    {"producers.app.ttl": 2500.0},
    {"queues.q.ttl": 2000.0, "queues.q.expiry": "anywhere"},
    {"queues.q.capacity": 3 * NEAR, "queues.q.overflow": "drop-oldest"},
], ids=["fifo", "priority", "ttl", "expiry-anywhere", "drop-oldest"])
def test_a_long_line_serves_in_order_and_conserves(changes: dict[str, Any]) -> None:
    """Thousands of messages wait (most of them as numbers): each comes out once, at
    its own arrival, first in first out within its priority."""
    res = simq.run(_overloaded("full", **changes))
    v = res.visits
    s = res.summary["messages"]
    assert res.summary["queues"]["q"]["length_max"] > 2 * NEAR
    served = v[v["end"].notna()]
    assert served["id"].is_unique
    msgs = res.messages.set_index("id")
    # The arrival a visit carries is its message's own (sent: no link in between).
    assert np.allclose(served["arrived"], msgs.loc[served["id"], "sent"])
    if "queues.q.discipline" not in changes:
        order = served.sort_values("start", kind="stable")
        assert order["arrived"].is_monotonic_increasing
    assert s["produced"] == (s["delivered"] + s["dropped"] + s["expired"] + s["in_flight"])
    if "queues.q.discipline" in changes:  # within a priority, still first in first out
        for _, one in served.join(msgs["producer"], on="id").groupby("producer"):
            assert one.sort_values("start", kind="stable")["arrived"].is_monotonic_increasing


def test_sizes_read_with_binary_units_and_print_back() -> None:
    assert read_size("2G") == 2 * 2**30
    assert read_size("500M") == 500 * 2**20
    assert read_size("1.5GB") == 1.5 * 2**30
    assert read_size("64KiB") == 64 * 2**10
    assert read_size("123456") == read_size(123456) == 123456
    assert read_size("inf") == read_size(float("inf")) == float("inf")
    for bad in ("12 parsecs", 0, -1, "0", True, "-2G", float("nan")):
        with pytest.raises(ValueError, match="must be a size > 0"):
            read_size(bad)
    assert format_size(2 * 2**30) == "2 GiB" and format_size(read_size("500M")) == "500 MiB"
    sc = simq.Scenario(_overloaded("summary", **{"run.max_memory": "1.5G"}))
    assert sc.run.max_memory == 1.5 * 2**30
    with pytest.raises(ScenarioError, match=r"run\.max_memory: must be a size > 0"):
        simq.Scenario(_overloaded("summary", **{"run.max_memory": "lots"}))


# Long enough that what waits at the end holds several MiB in either record mode.
GROWING = 30_000.0


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The guard reads memory the tracer counts instead of the process's resident memory:
    a worker that ran other tests first reuses freed memory without growing, so resident
    memory would not show what this run added (in a fresh process it does)."""
    tracemalloc.start()
    monkeypatch.setattr("simq.record.guard.resident",
                        lambda: float(tracemalloc.get_traced_memory()[0]))
    yield
    tracemalloc.stop()


def _driven(records: str, limit: str) -> None:
    """Run the overloaded model under ``run.max_memory: limit`` past the estimate (which
    would refuse it first): what the guard does when the estimate was too low."""
    sc = simq.Scenario(_overloaded(records, **{"run.until": GROWING, "run.max_memory": limit}))
    sim = Simulation(sc, seed_for(sc.run.seed, 0))
    (run_full if records == "full" else run_streaming)(sim)


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.parametrize("records", ["full", "summary"])
@pytest.mark.usefixtures("traced")
def test_a_run_past_the_limit_stops_with_a_user_error(records: str) -> None:
    with pytest.raises(MemoryLimitError) as err:
        _driven(records, "1M")
    text = str(err.value)
    assert text.startswith("run: the run's memory grew by"), text
    assert "past run.max_memory (1 MiB)" in text and "--max-memory" in text
    assert "messages waiting" in text and "more consumers for queue 'q'" in text
    assert ("run.records: summary" in text) == (records == "full")
    assert isinstance(err.value, ScenarioError)  # a user error: the CLI exits 2


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_the_machine_ceiling_holds_whatever_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("simq.record.guard.machine_limit", lambda: 1.0)
    with pytest.raises(MemoryLimitError, match="of this machine's memory"):
        _driven("summary", "inf")


def test_the_estimate_refuses_first_with_the_same_limit() -> None:
    with pytest.raises(ScenarioError, match=r"run\.max_memory: this run would hold .* the "
                       r"limit is 1 MiB"):
        simq.run(_overloaded("full", **{"run.until": GROWING, "run.max_memory": "1M"}))


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.usefixtures("traced")
def test_the_cli_exits_2_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "overloaded.yaml"
    import yaml

    path.write_text(yaml.safe_dump(_overloaded("summary", **{"run.until": GROWING})))
    # An estimate that misses the growth: the guard, not the estimate, stops the run.
    real = simq.run.__globals__["check"]
    monkeypatch.setitem(simq.run.__globals__, "check", lambda sc, **kw: real(
        sc.with_overrides({"run.max_memory": "inf"}), **kw))
    code = main(["run", str(path), "--max-memory", "1M", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert any(line.startswith("simq: error: run: the run's memory grew")
               for line in err.splitlines()), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "a stopped run leaves no folder behind"
    assert main(["run", str(path), "--max-memory", "lots", "--out", str(tmp_path / "o")]) == 2
    assert "--max-memory: must be a size" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_the_guard_leaves_a_run_under_the_limit_alone() -> None:
    res = simq.run(_overloaded("summary"))
    assert res.summary["messages"]["in_flight"] > 2 * NEAR
