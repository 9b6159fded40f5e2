"""One replication's records as pandas tables: a row per message (per-hop timestamps,
outcome, attempts) and a row per queue visit. ``RunResult.messages`` and
``RunResult.visits`` concatenate them over replications; pandas is imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simq.engine.recorder import ATTEMPT, OUTCOMES, REPEAT, REQUEUED, Records
from simq.record.summary import breakdown_columns
from simq.scenario import Scenario

if TYPE_CHECKING:
    import pandas as pd
else:  # built on first use: a streaming run never needs pandas (simq/_lazy.py)
    from simq._lazy import LazyModule

    pd = LazyModule("pandas")

__all__ = ["messages_frame", "visits_frame"]


def _names(sc: Scenario, section: str) -> list[str]:
    return list(getattr(sc, section))


def _key_column(rec: Records) -> pd.Categorical:
    codes = rec.keys()
    return pd.Categorical.from_codes(codes, pd.Index(rec.key_names, dtype=object))


def messages_frame(sc: Scenario, rec: Records, replication: int) -> pd.DataFrame:
    """One row per message of replication ``replication``: ids, per-hop timestamps, outcome."""
    n = len(rec.sent)
    producers = _names(sc, "producers")
    frame = pd.DataFrame({
        "replication": np.full(n, replication, dtype=np.int64),
        "id": np.arange(n, dtype=np.int64),
        "producer": pd.Categorical.from_codes(rec.producer, pd.Index(producers)) if n else
        pd.Categorical([], categories=producers),
        "size": rec.size,
        "sent": rec.sent,
        "done": rec.done,
        "outcome": pd.Categorical([OUTCOMES[int(c)] for c in rec.outcome],
                                  categories=list(OUTCOMES.values())),
        "latency": rec.done - rec.sent,
        "parent": rec.parent,  # -1, or the message a fan-out copy was made from
        # The message's key (docs/patterns.md, keys and ordering); missing: no key.
        "key": _key_column(rec),
        # Reliability (docs/reliability.md): times a consumer started on it, times given back.
        "attempts": rec.per_message(ATTEMPT),
        "redeliveries": rec.per_message(REQUEUED),
    })
    for col, values in breakdown_columns(rec).items():
        frame[col] = values
    v = rec.visits
    for qi, q in enumerate(sc.queues):
        at = v["queue"] == qi
        ids = v["id"][at]
        # The first visit of each message to this queue, in per-hop columns.
        first = np.unique(ids, return_index=True)[1]
        for col, src in (("arrived", "arrived"), ("start", "left"), ("end", "end")):
            full = np.full(n, np.nan)
            full[ids[first]] = v[src][at][first]
            frame[f"{q}.{col}"] = full
    h = rec.hops
    for li, name in enumerate(sc.links):
        at = h["link"] == li
        ids = h["id"][at]
        first = np.unique(ids, return_index=True)[1]
        for col, src in (("in", "entered"), ("out", "out")):
            full = np.full(n, np.nan)
            full[ids[first]] = h[src][at][first]
            frame[f"{name}.{col}"] = full
    return frame


def visits_frame(sc: Scenario, rec: Records, replication: int) -> pd.DataFrame:
    """One row per message per queue visit (the long form of the per-hop timestamps)."""
    v = rec.visits
    queues = _names(sc, "queues")
    groups = ["(none)", *_names(sc, "consumers")]
    # A duplicate processing (record.REPEAT) is the group's work all the same.
    repeat = v["group"] <= REPEAT
    group = np.where(repeat, REPEAT - v["group"], v["group"])
    return pd.DataFrame({
        "replication": np.full(len(v["id"]), replication, dtype=np.int64),
        "id": v["id"],
        "queue": pd.Categorical.from_codes(v["queue"], pd.Index(queues)),
        "consumer": pd.Categorical.from_codes(np.maximum(group, -1) + 1, pd.Index(groups)),
        "repeat": repeat,
        "arrived": v["arrived"],
        "start": v["left"],
        "end": v["end"],
        "wait": v["left"] - v["arrived"],
        "service": v["end"] - v["left"],
    })
