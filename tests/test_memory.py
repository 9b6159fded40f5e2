"""Memory per message and the memory guard.

A long waiting line keeps plain messages as numbers (engine.line); a run whose memory
grows past ``SIMQ_MAX_MEMORY`` stops with a user error (record.guard). Sizes are asserted
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
from simq.engine.core import Message, Request
from simq.engine.line import NEAR, Line
from simq.errors import MemoryLimitError, ScenarioError
from simq.record.guard import LIMIT_VARIABLE, memory_limit

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


def test_memory_limit_reads_sizes() -> None:
    assert memory_limit({LIMIT_VARIABLE: "2G"}) == 2 * 2**30
    assert memory_limit({LIMIT_VARIABLE: "500M"}) == 500 * 2**20
    assert memory_limit({LIMIT_VARIABLE: "1.5GB"}) == 1.5 * 2**30
    assert memory_limit({LIMIT_VARIABLE: "123456"}) == 123456
    assert memory_limit({LIMIT_VARIABLE: "off"}) == float("inf")
    assert memory_limit({LIMIT_VARIABLE: "0"}) == float("inf")
    assert 0 < memory_limit({}) < float("inf")
    with pytest.raises(ScenarioError, match=f"{LIMIT_VARIABLE}.*got '12 parsecs'"):
        memory_limit({LIMIT_VARIABLE: "12 parsecs"})


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
@pytest.mark.parametrize("records", ["full", "summary"])
def test_a_run_past_the_limit_stops_with_a_user_error(
        records: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_VARIABLE, "1M")  # below what any Python process holds
    with pytest.raises(MemoryLimitError) as err:
        simq.run(_overloaded(records))
    text = str(err.value)
    assert text.startswith("run: memory grew")
    assert "messages waiting" in text and "more consumers for queue 'q'" in text
    assert LIMIT_VARIABLE in text
    assert ("run.records: summary" in text) == (records == "full")
    assert isinstance(err.value, ScenarioError)  # a user error: the CLI exits 2


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_the_cli_exits_2_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "overloaded.yaml"
    import yaml

    path.write_text(yaml.safe_dump(_overloaded("summary")))
    monkeypatch.setenv(LIMIT_VARIABLE, "1M")
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert any(line.startswith("simq: error: run: memory grew") for line in err.splitlines())
    assert "Traceback" not in err


@pytest.mark.filterwarnings("ignore::simq.UnstableWarning")
def test_the_guard_leaves_a_run_under_the_limit_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_VARIABLE, "off")
    res = simq.run(_overloaded("summary"))
    assert res.summary["messages"]["in_flight"] > 2 * NEAR
