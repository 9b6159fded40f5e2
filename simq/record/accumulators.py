"""One set of accumulators for a replication's results, fed chunks of the Recorder's logs.

Both record modes use them. ``run.records: summary`` folds each chunk of log rows into
them while the run goes and drops the rows; full records fold the whole log once at the
end, keep it, and replace what needs every row (exact quantiles, the longest line, peak
and drain, the 201-point growth fit, exact time series; :mod:`simq.record.summary`). Chunk
boundaries never change a result: a chunk holds whole rows, and every statistic is a sum
over rows or over messages. The window rules and the rule for when a row may be folded
live in :mod:`simq.record.window`; the checks a fold makes in :mod:`simq.record.checks`.

A message-level statistic (the latency breakdown, per-producer waits, duplicates) joins a
message's rows across logs. Its rows are summed into a slot while the message is in
flight; when it finishes, the slot is added to the totals of its class (counted in the
window or not, and its producer), which is remembered for every message in one byte, so
a row logged after the message finished (a redelivered copy) still lands where full
records put it.

This module is one thing, :class:`Accumulators`: one fold per log (visits, batches, hops,
stages, events, finished) into per-queue, per-group and per-link totals and the per-message
slots, and the summary read from them. Its size is that of the logs it reads; the parts
that are not about one fold (window rules, streaming sketches, fault spells, checks) are
modules of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simq.engine.recorder import (
    ACKED,
    ATTEMPT,
    BACK,
    CRASH,
    CRASH_LOST,
    CUT,
    DEAD_LETTER,
    DEAD_LETTERED,
    DEDUPLICATED,
    DELIVERED,
    DISCARDED,
    DROPPED,
    DUPLICATE,
    EVENTS,
    EXPIRED,
    FAILED,
    GAVE_UP,
    HEALED,
    LOST,
    OUTAGE,
    REFUSED,
    REPEAT,
    REQUEUED,
    RETRIED,
    STAGES,
    TIMED_OUT,
    overlap,
)
from simq.record.checks import TOL, ConservationError, InvariantError, known, no_negative
from simq.record.cluster import cluster_summary
from simq.record.ordering import OrderTally
from simq.record.sketches import LogHistogram, StreamedMser
from simq.record.spells import Spells
from simq.record.window import Window
from simq.scenario import Scenario

__all__ = ["BREAKDOWN", "Accumulators"]

# The steps of a message's latency, in the order it meets them; `other` is what is left
# (a sender or worker held up by backpressure).
BREAKDOWN = ("encode", "batch", "link", "retransmit", "persist", "replicate", "wait", "buffer",
             "service", "decode", "reply", "other")


# Accumulators ---------------------------------------------------------------------------

# Per-message slots: the raw sums the breakdown is made of (wait, the visit's service,
# the link, then one per stage code).
_RAW = ("wait", "vservice", "link", *STAGES.values())
_COL = {k: i for i, k in enumerate(_RAW)}
_FAULT_KINDS = (OUTAGE, BACK, CUT, HEALED)
_FATES = DEDUPLICATED + 1  # the outcome codes, 0 to the last


def _present_parts(raw: Mapping[int, np.ndarray]) -> dict[str, np.ndarray]:
    """The breakdown parts (but `other`) that have rows, from raw per-message sums."""
    out = {}
    for k in BREAKDOWN[:-1]:
        if k == "service":
            if _COL["vservice"] in raw:
                service = raw[_COL["vservice"]].copy()
                for sub in ("decode", "fetch", "buffer"):
                    if _COL[sub] in raw:
                        service -= raw[_COL[sub]]
                out[k] = service
        elif _COL[k] in raw:
            out[k] = raw[_COL[k]]
    return out


# Rows an order tally takes at a time (see _tally).
_PIECE = 1 << 16


def _tally(tally: OrderTally, stream: np.ndarray, seq: np.ndarray, inside: np.ndarray
           ) -> None:
    """Deliveries in the order they happened, into ``tally`` a piece at a time: a tally
    carries each stream's highest place from one call to the next, so pieces give the
    same integers as one call, and its working arrays (several per row) stay the size
    of a piece, not of a full-records run's every delivery."""
    # Streams and places are kept narrow; a tally packs a stream and a place into one
    # 64-bit number, so each piece is widened as it goes in.
    for i in range(0, len(stream), _PIECE):
        tally.add(stream[i: i + _PIECE].astype(np.int64), seq[i: i + _PIECE].astype(np.int64),
                  inside[i: i + _PIECE])


def _as_slice(rel: np.ndarray) -> slice | np.ndarray:
    """``rel`` as a slice when it is one run of consecutive places in order (indexing
    with it then gives views), else itself."""
    if len(rel) and int(rel[-1]) - int(rel[0]) == len(rel) - 1 and (
            len(rel) == 1 or bool((rel[1:] == rel[:-1] + 1).all())):
        return slice(int(rel[0]), int(rel[-1]) + 1)
    return rel


def _breakdown(raw: np.ndarray) -> np.ndarray:
    """Columns of BREAKDOWN[:-1] from raw slot sums (rows: messages or classes)."""
    # A visit runs from leaving the line to the end of service: take out the decode and,
    # with prefetch, the trip to the consumer (`fetch`, also in `link`) and its buffer.
    service = raw[:, _COL["vservice"]] - raw[:, _COL["decode"]] - raw[:, _COL["fetch"]] \
        - raw[:, _COL["buffer"]]
    cols = [service if k == "service" else raw[:, _COL[k]] for k in BREAKDOWN[:-1]]
    return np.stack(cols, axis=1)


class _Grow:
    """A per-message array over every id ever created, grown in blocks."""

    def __init__(self, dtype: Any, fill: int) -> None:
        self.a = np.full(1024, fill, dtype=dtype)
        self.fill = fill

    def ensure(self, n: int) -> None:
        if n > len(self.a):
            more = np.full(max(n, 2 * len(self.a)) - len(self.a), self.fill, dtype=self.a.dtype)
            self.a = np.concatenate([self.a, more])


class _Column:
    """One per-message column over the messages from the accumulators' ``base`` on.

    The values sit in a buffer that grows in place by doubling (so appending a chunk
    costs its own size, not the whole column's, and the peak is one column's spare room,
    not a second copy of every column); the dead prefix of messages forgotten is only
    moved out when it is at least as long as what is left (then the move never overlaps
    itself). A column may cover fewer messages than are in flight: the rest read as
    ``fill`` (a part no row has touched yet, a message with no send order). An integer
    column starts narrow and widens to 64 bits the first time a value needs it.
    """

    __slots__ = ("buf", "start", "n", "fill")

    def __init__(self, dtype: Any, fill: float) -> None:
        self.buf: np.ndarray = np.empty(0, dtype=dtype)
        self.start = 0  # where the message `base` sits in the buffer
        self.n = 0  # messages covered: base .. base + n - 1
        self.fill = fill

    def view(self) -> np.ndarray:
        return self.buf[self.start: self.start + self.n]

    def reach(self, n: int) -> np.ndarray:
        """The column over at least the first ``n`` messages (new ones ``fill``)."""
        if n > self.n:
            if self.start + n > len(self.buf):
                live = self.view()
                if self.start >= self.n and n <= len(self.buf):
                    self.buf[: self.n] = live  # the dead prefix is large: move down
                else:
                    grown = np.empty(max(n, 2 * len(self.buf)), dtype=self.buf.dtype)
                    grown[: self.n] = live
                    self.buf = grown
                self.start = 0
            self.buf[self.start + self.n: self.start + n] = self.fill
            self.n = n
        return self.view()

    def put(self, rel: np.ndarray, x: np.ndarray) -> None:
        """Set the values of messages ``rel`` (places from base)."""
        if not len(rel):
            return
        if self.buf.dtype.kind == "i" and self.buf.dtype.itemsize < 8 and len(x):
            info = np.iinfo(self.buf.dtype)
            if int(x.min()) < info.min or int(x.max()) > info.max:
                self.buf = self.buf.astype(np.int64)
        self.reach(int(rel.max()) + 1)[rel] = x

    def take(self, rel: np.ndarray | slice) -> np.ndarray:
        """The values of messages ``rel`` (``fill`` past the part covered); a slice
        gives a view where it can."""
        v = self.view()
        if isinstance(rel, slice):
            if rel.stop <= self.n:
                view: np.ndarray = v[rel]
                return view
            rel = np.arange(rel.start, rel.stop)
        if not len(rel) or int(rel.max()) < self.n:
            got: np.ndarray = v[rel]
            return got
        out = np.full(len(rel), self.fill, dtype=self.buf.dtype)
        inside = rel < self.n
        out[inside] = v[rel[inside]]
        return out

    def head(self, k: int) -> np.ndarray:
        """The values of the first ``k`` messages."""
        return self.reach(k)[:k] if k > self.n else self.view()[:k]

    def drop(self, cut: int) -> None:
        """Forget the first ``cut`` messages (base moves on by ``cut``)."""
        k = min(cut, self.n)
        self.start += k
        self.n -= k
        if not self.n:  # nothing left in flight (or the run is over): free the buffer
            self.buf, self.start = self.buf[:0].copy(), 0


@dataclass
class _Queue:
    wait: LogHistogram = field(default_factory=LogHistogram)
    area: float = 0.0
    entered: int = 0
    evicted: int = 0
    dropped: int = 0
    expired: int = 0


class _Mean:
    """A sum and a count of values in the window: their mean at the end."""

    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def add(self, x: np.ndarray, inside: np.ndarray) -> None:
        self.total += float(x[inside].sum())
        self.n += int(inside.sum())

    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan


@dataclass
class _Group:
    busy: float = 0.0
    ended: int = 0
    service: _Mean = field(default_factory=_Mean)


@dataclass
class _Link:
    delay: _Mean = field(default_factory=_Mean)
    tx_area: float = 0.0
    lost: int = 0
    retransmitted: int = 0


class Accumulators:
    """Everything the summary is made of, for one replication, fed chunk by chunk."""

    def __init__(self, sc: Scenario, window: Window, *, check: bool = True,
                 percentiles: bool = True, mser: StreamedMser | None = None) -> None:
        """``mser``: also feed the latency series in send order to this accumulator."""
        self.sc = sc
        self.w = window
        self.check = check
        self.check_waits = check
        nq, ng, nl, npr = len(sc.queues), len(sc.consumers), len(sc.links), len(sc.producers)
        self.np = npr
        self.produced = 0
        self.finished = 0
        self.outcomes = np.zeros(_FATES, dtype=np.int64)
        def hist() -> LogHistogram:
            return LogHistogram(percentiles)

        self.latency = hist()
        # Per producer (the last row: a queue's starting backlog, producer -1).
        self.offered = np.zeros(npr + 1, dtype=np.int64)
        self.delivered_in = np.zeros(npr + 1, dtype=np.int64)
        self.counted = np.zeros(npr + 1, dtype=np.int64)
        self.parts = np.zeros((npr + 1, len(_RAW)))
        self.latency_by = [hist() for _ in range(npr + 1)]
        # Each consumer group of a partitioned topic: its views of the partitions (queue
        # indices) and the latency of the messages it delivered.
        names = list(sc.queues)
        self.topic_groups = {gi: [names.index(q) for q, _ in sc.intake(g)]
                             for gi, (g, c) in enumerate(sc.consumers.items())
                             if c.source in sc.topics}
        self.latency_group = {gi: hist() for gi in self.topic_groups}
        self.blocked = np.zeros(npr + 1)
        self.queues = [_Queue(hist()) for _ in range(nq)]
        self.groups = [_Group() for _ in range(ng)]
        self.links = [_Link() for _ in range(nl)]
        self._last_tx: list[tuple[float, float] | None] = [None] * nl
        self.logged = [c.logs_services for c in sc.consumers.values()]
        width = max(nq, ng, nl, npr, 1)
        self.events_total = np.zeros(len(EVENTS), dtype=np.int64)
        self.events_in = np.zeros((len(EVENTS), width), dtype=np.int64)
        self.copies = 0
        self.rebalances: list[Mapping[str, np.ndarray]] = []  # a few rows: kept whole
        self.cluster: list[Mapping[str, np.ndarray]] = []  # a few rows per broker event
        self.timed = np.array([p.timeout is not None for p in sc.producers.values()] + [False])
        self.spells = Spells()
        self._faulty = (any(sc.may_go_down(q) for q in sc.queues)
                        or any(lk.partitions is not None for lk in sc.links.values())
                        or any(c.crashes is not None for c in sc.consumers.values()))
        self.mser = mser
        # Messages from id `base` on that may still be in flight (_Column): send time,
        # producer row (one byte for up to 126 producers), still open. An overloaded
        # queue keeps most messages in flight, so each column is as narrow as its range
        # allows (times stay float64: their exact values are the results), and only the
        # columns the scenario needs exist.
        self.base = 0
        small = np.int8 if npr < 127 else np.int16 if npr < 32767 else np.int64
        self._sent = _Column(np.float64, 0.0)
        self._prod = _Column(small, 0)
        self._open = _Column(np.bool_, False)
        # The root of a retried send's copy (-1: an original): read only for producers
        # with a send timeout. The latency once delivered: only for the MSER series.
        self._parent = _Column(np.int64, -1) if self._hits_needed() else None
        self._lat = _Column(np.float64, math.nan) if mser is not None else None
        # Each live message's ordering stream and place in it (-1: none; record.ordering).
        self._stream = _Column(np.int32, -1)
        self._seq = _Column(np.int32, -1)
        self.order_queues = [OrderTally() for _ in range(nq)]
        self.order_run = OrderTally()
        # Raw part sums per live message, one column per part that has rows at all, and
        # covering only the messages up to the last one with a row: in an overloaded
        # queue those still waiting have none, and cost nothing here.
        self._raw: dict[int, _Column] = {}
        # Every message's class once finished: -1 not counted in the window, else the
        # producer row it was counted in (-2: not finished yet). One byte per message.
        self._class = _Grow(np.int8 if npr < 126 else np.int16, -2)
        # Deliveries per root message (a retried send's copies share their root), for
        # producers with a send timeout: 0, 1 or 2 (= more than one); and the deliveries
        # beyond the first of each root (duplicates delivered).
        self._hits = _Grow(np.int8, 0) if self._hits_needed() else None
        self.extra = 0

    def _hits_needed(self) -> bool:
        """Whether some producer has a send timeout (its deliveries are counted per root
        message, which needs each copy's parent)."""
        return bool(self.timed.any())

    # Folding ---------------------------------------------------------------------------
    def fold(self, logs: Mapping[str, Mapping[str, np.ndarray]], workers: Mapping[str, np.ndarray],
             *, final: bool = False) -> None:
        """Fold rows of the logs (each decided: see :data:`LAST`); ``workers`` is the whole
        worker-count log so far, of which the rows before the horizon are folded.

        ``final``: the last fold, with the window's ``t1`` and ``t_end`` known.
        """
        w = self.w
        self._final = final
        c = logs.get("created")
        if c is not None and len(c["sent"]):
            self._created(c)
        cp = logs.get("copies")
        if cp is not None and len(cp["id"]):
            self.copies += len(cp["id"])
            if self._parent is not None:
                self._parent.put(cp["id"] - self.base, cp["parent"])
        od = logs.get("order")
        if od is not None and len(od["id"]):
            self._stream.put(od["id"] - self.base, od["stream"])
            self._seq.put(od["id"] - self.base, od["seq"])
        for name in ("visits", "hops", "stages"):
            x = logs.get(name)
            if x is not None and len(x["id"]):
                getattr(self, "_" + name)(x)
        b = logs.get("batches")
        if b is not None and len(b["group"]):
            self._batches(b)
        r = logs.get("retransmits")
        if r is not None and len(r["t"]):
            resent = w.at(r["t"])
            for li, lk in enumerate(self.links):
                lk.retransmitted += int((resent & (r["link"] == li)).sum())
        bl = logs.get("blocked")
        if bl is not None and len(bl["producer"]):
            held = w.covered(bl["start"], bl["end"])
            self.blocked += np.bincount(bl["producer"], weights=held, minlength=self.np + 1)[
                : self.np + 1]
        rb = logs.get("rebalances")
        if rb is not None and len(rb["group"]):
            self.rebalances.append(rb)
        cl = logs.get("cluster")
        if cl is not None and len(cl["kind"]):
            self.cluster.append(cl)
        marks: list[tuple[float, int, str, int]] = []
        e = logs.get("events")
        if e is not None and len(e["t"]):
            self._events(e, marks)
        marks += self._worker_marks(workers, math.inf if final else self._horizon)
        f = logs.get("finished")
        done = np.empty(0)
        if f is not None and len(f["id"]):
            self._finished(f)
            done = f["t"]
        if self._faulty:
            self.spells.fold(c["sent"] if c is not None else np.empty(0), done, marks,
                             w.t_end if final else None)
        self._forget(final)

    _horizon = -math.inf  # set by the driver before each mid-run fold
    _final = False
    _faulty = False

    def set_horizon(self, h: float) -> None:
        self._horizon = h

    def _created(self, c: Mapping[str, np.ndarray]) -> None:
        sent, prod = c["sent"], c["producer"]
        n = len(sent)
        self.produced += n
        row = np.where(prod < 0, self.np, prod)
        self.offered += np.bincount(row[self.w.sent_in(sent, prod)], minlength=self.np + 1)
        # The new messages are the last ones: ids base + live .. base + live + n - 1.
        live = self.produced - n - self.base
        self._sent.reach(live + n)[live:] = sent
        self._prod.reach(live + n)[live:] = row
        self._open.reach(live + n)[live:] = True
        self._class.ensure(self.produced)
        if self._hits is not None:
            self._hits.ensure(self.produced)

    def _add_parts(self, ids: np.ndarray, col: int, x: np.ndarray) -> None:
        """Add per-row amounts to their messages' slots (or, for a message that already
        finished, to the totals of its class)."""
        if len(ids) == 0:
            return
        rel = ids - self.base
        known(ids, self.produced)
        is_open = self._open.view()
        if rel.min() >= 0 and is_open[rel].all():  # the usual case: all in flight
            live = np.ones(len(rel), dtype=bool)
        else:
            live = rel >= 0
            live[live] = is_open[rel[live]]
        if live.all():  # no copies of the rows
            sums = np.bincount(rel, weights=x)  # up to the last one named
        elif live.any():
            sums = np.bincount(rel[live], weights=x[live])
        else:
            sums = None
        if sums is not None:
            self._raw.setdefault(col, _Column(np.float64, 0.0)).reach(len(sums))[
                : len(sums)] += sums
        if not live.all():  # rows logged after their message finished
            cls = self._class.a[ids[~live]].astype(np.int64)
            mine = cls >= 0
            self.parts[:, col] += np.bincount(cls[mine], weights=x[~live][mine],
                                              minlength=self.np + 1)

    def _visits(self, v: Mapping[str, np.ndarray]) -> None:
        w = self.w
        ids, queue, arrived, left, end, group = (v["id"], v["queue"], v["arrived"], v["left"],
                                                 v["end"], v["group"])
        taken = ~np.isnan(left)
        served = ~np.isnan(end - left)
        # The order tallies first: their working arrays are gone before the columns
        # below are made (a full-records fold has every visit at once).
        self._order_visits(ids, queue, end, group, served)
        left_f = np.where(taken, left, w.t_end)
        wait = left_f - arrived
        service = end - left
        every = bool(served.all())  # the rows themselves, no copies
        if taken.all():  # the usual case: no message still waiting or evicted unserved
            wait_t, ids_t = wait, ids
        else:
            wait_t, ids_t = wait[taken], ids[taken]
        if self.check_waits:
            no_negative("wait", wait_t, ids_t)
        if self.check:
            no_negative("service", service if every else service[served],
                        ids if every else ids[served])
        # Work on a copy whose fate was decided elsewhere (record.REPEAT) is in the
        # queue's length and the group's busy time, not on the message's path.
        path = group > REPEAT
        if path.all():
            self._add_parts(ids_t, _COL["wait"], wait_t)
            del wait_t, ids_t
            self._add_parts(ids if every else ids[served], _COL["vservice"],
                            service if every else service[served])
        else:
            self._add_parts(ids[taken & path], _COL["wait"], wait[taken & path])
            self._add_parts(ids[served & path], _COL["vservice"], service[served & path])
        entered = w.entered(arrived)
        waited = overlap(arrived, left_f, w.t0, w.t1)
        one_queue = len(self.queues) == 1
        for qi, acc in enumerate(self.queues):
            at = queue == qi
            if not one_queue and not at.any():
                continue
            acc.wait.add(wait[at & entered & (group >= 0) & taken])
            acc.area += float(waited[at].sum())
            acc.entered += int((at & entered).sum())
            acc.evicted += int((at & (group == -1) & taken & (left_f >= w.t0)
                                & (left_f <= w.t1)).sum())
        busy = w.covered(left, end)
        started = w.started_in(left) & served
        ended = w.at(end)
        for gi, g in enumerate(self.groups):
            at = group == gi
            if not at.any():
                continue
            g.ended += int((at & ended).sum())
            if not self.logged[gi]:  # their visits are their services
                g.busy += float(busy[at].sum())
                g.service.add(service, at & started)

    def _batches(self, b: Mapping[str, np.ndarray]) -> None:
        # Batching, prefetching and visibility-timeout groups log each service (a visit of
        # theirs also spans the batch or the trip to the consumer, or ends when the broker
        # took the message back); a batch is one service for its messages.
        w = self.w
        busy = w.covered(b["start"], b["end"])
        started = w.started_in(b["start"]) & ~np.isnan(b["end"])
        for gi, g in enumerate(self.groups):
            if not self.logged[gi]:
                continue
            at = b["group"] == gi
            g.busy += float(busy[at].sum())
            g.service.add(b["end"] - b["start"], at & started)

    def _hops(self, h: Mapping[str, np.ndarray]) -> None:
        w = self.w
        delay = h["out"] - h["entered"]
        if self.check:
            no_negative("link delay", delay, h["id"])
        self._add_parts(h["id"], _COL["link"], delay)
        inw = w.started_in(h["entered"])
        batched = any(p.batch_size is not None for p in self.sc.producers.values())
        for li, lk in enumerate(self.links):
            at = h["link"] == li
            if not at.any():
                continue
            tx_start, tx_end = h["tx_start"][at], h["tx_end"][at]
            if batched:
                # A producer batch is one transmission logged once per message, all at
                # once: a serializing link sends one thing at a time, so equal intervals
                # are the same batch (the last one may continue a previous chunk's).
                pairs = np.unique(np.stack([tx_start, tx_end]), axis=1)
                tx_start, tx_end = pairs[0], pairs[1]
                prev = self._last_tx[li]
                if prev is not None:
                    same = (tx_start == prev[0]) & (tx_end == prev[1])
                    tx_start, tx_end = tx_start[~same], tx_end[~same]
                if len(tx_end):
                    k = int(np.argmax(tx_end))
                    self._last_tx[li] = (float(tx_start[k]), float(tx_end[k]))
            lk.tx_area += float(overlap(tx_start, tx_end, w.t0, w.t1).sum())
            lk.delay.add(delay, at & inw)

    def _stages(self, st: Mapping[str, np.ndarray]) -> None:
        ids, code = st["id"], st["stage"]
        length = st["end"] - st["start"]
        if self.check:
            done = ~np.isnan(length)
            no_negative("stage time", length[done], ids[done])
        for k, name in STAGES.items():
            at = (code == k) & ~np.isnan(length)
            if at.any():
                self._add_parts(ids[at], _COL[name], length[at])

    def _events(self, e: Mapping[str, np.ndarray], marks: list[tuple[float, int, str, int]]
                ) -> None:
        kind, where, t = e["kind"], e["where"], e["t"]
        self.events_total += np.bincount(kind, minlength=len(EVENTS))[: len(EVENTS)]
        inw = self.w.at(t) & (where >= 0)
        np.add.at(self.events_in, (kind[inw], where[inw]), 1)
        for code, step, name in ((OUTAGE, 1, "queue"), (BACK, -1, "queue"),
                                 (CUT, 1, "link"), (HEALED, -1, "link")):
            at = kind == code
            marks += [(float(x), step, name, int(y)) for x, y in zip(t[at], where[at],
                                                                      strict=True)]

    def _worker_marks(self, workers: Mapping[str, np.ndarray], before: float
                      ) -> list[tuple[float, int, str, int]]:
        """Spells with every worker of a crashing group down, from the worker log."""
        out: list[tuple[float, int, str, int]] = []
        if not workers or not self._crashing:
            return out
        t, g, n = workers["t"], workers["group"], workers["online"]
        k = self.spells.workers_seen
        while k < len(t) and t[k] < before:
            gi = int(g[k])
            if gi in self._crashing:
                up = bool(n[k] > 0)
                was = self.spells.group_up.get(gi, True)
                if was and not up:
                    out.append((float(t[k]), 1, "group", gi))
                elif up and not was:
                    out.append((float(t[k]), -1, "group", gi))
                self.spells.group_up[gi] = up
            k += 1
        self.spells.workers_seen = k
        return out

    @property
    def _crashing(self) -> set[int]:
        return {i for i, c in enumerate(self.sc.consumers.values()) if c.crashes is not None}

    def _ordered(self, ids: np.ndarray, t: np.ndarray, at: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``at`` of messages with a send order, sorted by time (then id, so ties
        fall the same way in every record mode): row index, stream, place, in window."""
        # Each step copies the rows only when it drops some (a full-records fold has
        # every message at once, so each copy costs as much as a column).
        rows = np.flatnonzero(at)
        rel = ids[rows] - self.base
        if len(rel) and rel.min() < 0:  # rows of messages forgotten already
            rows, rel = rows[rel >= 0], rel[rel >= 0]
        stream = self._stream.take(rel)
        has = stream >= 0
        if not has.all():
            rows, rel, stream = rows[has], rel[has], stream[has]
        del has
        tt = t[rows]
        # Already in time order with no ties (one server's ends, say): the sort by time
        # then id would leave them as they are.
        if len(tt) > 1 and not bool((tt[1:] > tt[:-1]).all()):
            by = np.lexsort((ids[rows], tt))
            rows, rel, stream, tt = rows[by], rel[by], stream[by], tt[by]
            del by
        seq = self._seq.take(rel)
        del rel
        return rows, stream, seq, self.w.at(tt)

    def _order_visits(self, ids: np.ndarray, queue: np.ndarray, end: np.ndarray,
                      group: np.ndarray, served: np.ndarray) -> None:
        """Per queue: every processing a consumer finished (a redelivery again), in the
        order they finished; work on a copy whose fate was decided elsewhere is not one."""
        rows, stream, seq, inside = self._ordered(ids, end, served & (group >= 0))
        if not len(rows):
            return
        if len(self.order_queues) == 1:  # every row is of the one queue: no copies
            _tally(self.order_queues[0], stream, seq, inside)
            return
        q = queue[rows]
        for qi, tally in enumerate(self.order_queues):
            at = q == qi
            if at.any():
                _tally(tally, stream[at], seq[at], inside[at])

    def _finished(self, f: Mapping[str, np.ndarray]) -> None:
        w = self.w
        ids, t, code, where = f["id"], f["t"], f["outcome"], f["where"]
        known(ids, self.produced)
        rel = ids - self.base
        # The slots are read through a slice (views, no copies) when the rows name one
        # run of consecutive messages in order, as full records' one fold does.
        at = _as_slice(rel)
        sent, prod = self._sent.view()[at], self._prod.view()[at]
        latency = t - sent
        if self.check:
            no_negative("latency", latency, ids)
        self._open.view()[at] = False
        self.finished += len(ids)
        self.outcomes += np.bincount(code, minlength=_FATES)[:_FATES]
        delivered = code == DELIVERED
        _tally(self.order_run, *self._ordered(ids, t, delivered)[1:])
        if self._lat is not None:
            self._lat.put(rel[delivered], latency[delivered])
        done_in = w.at(t)
        self.delivered_in += np.bincount(prod[delivered & done_in], minlength=self.np + 1)
        counted = delivered & w.sent_in(sent, np.where(prod == self.np, -1, prod))
        del sent
        self.latency.add(latency[counted])
        if not self._final:  # a row of a later fold may still name this message
            self._class.a[ids] = np.where(counted, prod, -1)
        self.counted += np.bincount(prod[counted], minlength=self.np + 1)
        raw = {col: x.take(at) for col, x in self._raw.items()}
        for col, x in raw.items():
            self.parts[:, col] += np.bincount(prod[counted], weights=x[counted],
                                              minlength=self.np + 1)
        rows = np.flatnonzero(np.bincount(prod[counted], minlength=self.np + 1)).tolist()
        for p in rows:
            self.latency_by[p].add(latency[counted] if len(rows) == 1
                                   else latency[counted & (prod == p)])
        for gi, h in self.latency_group.items():
            h.add(latency[counted & (where == gi)])
        if self.check_waits and delivered.any():
            every = bool(delivered.all())  # then no copies of the delivered rows
            lat_d = latency if every else latency[delivered]
            total = np.zeros(len(lat_d))
            floor = -TOL * (1 + np.abs(lat_d))
            for name, x in _present_parts(raw if every else
                                          {c: x[delivered] for c, x in raw.items()}).items():
                bad = x < floor
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InvariantError(f"negative breakdown part {name!r} of message "
                                         f"{int(ids[delivered][i])}: {float(x[i])!r}")
                total += x
            del floor
            other = np.subtract(lat_d, total, out=total)  # in place: the same numbers
            bound = np.abs(lat_d)
            np.maximum(bound, 1e-9, out=bound)
            bound *= -TOL
            bound -= 1e-12
            low = other < bound
            if low.any():
                i = int(np.flatnonzero(low)[0])
                raise InvariantError(
                    f"the breakdown of message {int(ids[delivered][i])} exceeds its latency "
                    f"{float(lat_d[i])!r} by {float(-other[i])!r}")
        # Only the messages not delivered can have been dropped, expired or lost.
        undelivered = np.flatnonzero(~delivered & done_in)
        code_o, where_o = code[undelivered], where[undelivered]
        for qi, acc in enumerate(self.queues):
            acc.dropped += int(((code_o == DROPPED) & (where_o == qi)).sum())
            acc.expired += int(((code_o == EXPIRED) & (where_o == qi)).sum())
        for li, lk in enumerate(self.links):
            lk.lost += int(((code_o == LOST) & (where_o == li)).sum())
        if self._hits is not None:
            hit = delivered & self.timed[prod]
            if hit.any():
                assert self._parent is not None  # kept whenever _hits is
                parent = self._parent.take(rel[hit])
                root = np.where(parent >= 0, parent, ids[hit])
                at, counts = np.unique(root, return_counts=True)
                before = self._hits.a[at]
                self.extra += int((counts - (before == 0)).sum())
                self._hits.a[at] = np.minimum(before + counts, 2)

    def _forget(self, final: bool) -> None:
        """Drop the slots of the oldest messages once all of them have an outcome."""
        is_open = self._open.view()
        first = int(np.argmax(is_open)) if len(is_open) else 0  # the first still open
        cut = len(is_open) if final or not len(is_open) or not is_open[first] else first
        if not cut:
            return
        if self.mser is not None and self._lat is not None:
            lat, sent = self._lat.head(cut), self._sent.view()[:cut]
            ok = ~np.isnan(lat) & (sent < self.w.t1)
            self.mser.add(lat[ok], sent[ok])
        self.base += cut
        for column in (self._sent, self._prod, self._open, self._parent, self._lat,
                       self._stream, self._seq, *self._raw.values()):
            if column is not None:
                column.drop(cut)

    # Reading ---------------------------------------------------------------------------
    def count(self, code: int, where: int | None = None) -> int:
        """Events of a kind in the window (at one component), or in the whole run."""
        if where is None:
            return int(self.events_total[code])
        return int(self.events_in[code, where]) if where < self.events_in.shape[1] else 0

    def resent_twice(self) -> int:
        """Messages of producers with a send timeout that more than one send delivered."""
        return 0 if self._hits is None else int((self._hits.a >= 2).sum())

    def summary(self, out: Any, worker_seconds: Callable[[int, int], float],
                fault_spells: Callable[[str], list[tuple[float, float, float]] | None]
                ) -> dict[str, Any]:
        """The numbers of the output contract from the accumulators (docs/output.md).

        Percentiles come from the histograms; ``length_max``, peak, drain and growth
        rate are left NaN for the caller, which knows them better (full records exactly,
        summary mode from the queues' own peaks and the sampled levels).
        ``worker_seconds(group, count)`` integrates the worker log over the window;
        ``fault_spells(queue)`` gives (start, end, recovery) of each spell that stopped
        the queue, or None when no faults are modelled for it.
        """
        sc, w = self.sc, self.w
        t0, t1, span = w.t0, w.t1, w.span
        o = self.outcomes
        counts = {
            "produced": self.produced,
            "delivered": int(o[DELIVERED]),
            "dropped": int(o[DROPPED]),
            "lost": int(o[LOST]),
            "expired": int(o[EXPIRED]),
            "dead_lettered": int(o[DEAD_LETTERED]),
            "deduplicated": int(o[DEDUPLICATED]),
            "duplicates": self.count(DUPLICATE) + self.resent_twice(),
            "in_flight": int(out.in_flight),
        }
        accounted = sum(v for k, v in counts.items() if k not in {"produced", "duplicates"})
        if accounted != counts["produced"]:
            raise ConservationError(
                f"produced {counts['produced']} != accounted {accounted}: {counts}")
        if self.produced - self.finished != counts["in_flight"]:
            raise ConservationError(
                f"{self.produced - self.finished} messages unfinished in the log, "
                f"{counts['in_flight']} found inside")
        # Fan-out copies are messages of their own (in `produced`); say how many there were
        # (only where a fan-out topic exists, so plain summaries keep their shape).
        if any(t.subscribers is not None or len(sc.views(n)) > 1
               for n, t in sc.topics.items()):
            counts["copies"] = self.copies
        # Not outcomes (a message may have several): requeues, and dedup's discarded copies.
        counts["redelivered"] = self.count(REQUEUED)
        counts["discarded"] = self.count(DISCARDED)
        if self.timed[:-1].any():
            counts["retries"] = self.count(RETRIED)
        lat = self.latency
        broker, consumer = self.count(REFUSED), self.count(DISCARDED)
        summary: dict[str, Any] = {
            "messages": counts,
            # Copies of one message (its redeliveries, its producer's resends): how many
            # reached the application again, and how many were recognised and dropped.
            "duplicates": {
                "delivered": self.count(DUPLICATE) + self.extra,
                "discarded": broker + consumer,
                "broker": broker,
                "consumer": consumer,
            },
            "throughput": float(self.delivered_in.sum() / span),
            "offered_rate": float(self.offered.sum() / span),
            "latency": {"mean": lat.mean, "p50": lat.quantile(0.5), "p95": lat.quantile(0.95),
                        "p99": lat.quantile(0.99), "max": lat.max if lat.n else math.nan},
            "queues": {},
            "consumers": {},
            "links": {},
        }
        n = self.counted.sum()
        whole = _breakdown(self.parts.sum(axis=0, keepdims=True))[0]
        if n:
            means = (whole / n).tolist()
            means.append(lat.mean - float(whole.sum() / n))
        else:
            means = [math.nan] * len(BREAKDOWN)
        summary["breakdown"] = dict(zip(BREAKDOWN, means, strict=True))
        # Delivery order against send order, per key (record.ordering).
        summary["ordering"] = self.order_run.summary()
        summary["producers"] = {}
        for pi, (name, prod) in enumerate(sc.producers.items()):
            k = int(self.counted[pi])
            held = float(self.blocked[pi])
            summary["producers"][name] = {
                "mode": prod.mode,
                "priority": prod.priority,
                "wait_mean": float(self.parts[pi, _COL["wait"]] / k) if k else math.nan,
                "offered_rate": float(self.offered[pi] / span),
                "throughput": float(self.delivered_in[pi] / span),
                "latency_mean": self.latency_by[pi].mean,
                "latency_p95": self.latency_by[pi].quantile(0.95),
                # Backpressure: seconds this producer (summed over its sync clients) was
                # held up.
                "blocked_time": held,
                "blocked_fraction": held / span,
            }
            if prod.timeout is not None:
                # Goodput: messages whose ack reached the sender in time, per second.
                summary["producers"][name].update({
                    "goodput": self.count(ACKED, pi) / span,
                    "timed_out": self.count(TIMED_OUT, pi),
                    "retries": self.count(RETRIED, pi),
                    "gave_up": self.count(GAVE_UP, pi),
                })
            if prod.idempotent:
                summary["producers"][name]["refused"] = self.count(REFUSED, pi)
        for qi, (name, acc) in enumerate(zip(sc.queues, self.queues, strict=True)):
            # Offered = entered the line + turned away at the door (drop-new); an evicted
            # message (drop-oldest) had entered, so it is not counted twice.
            offered = acc.entered + (acc.dropped - acc.evicted)
            summary["queues"][name] = {
                "wait_mean": acc.wait.mean,
                "wait_p95": acc.wait.quantile(0.95),
                "length_mean": float(acc.area / span),
                "length_max": math.nan,
                "arrivals": offered,
                "dropped": acc.dropped,
                "drop_fraction": acc.dropped / offered if offered else 0.0,
                "growth_rate": math.nan,
                "peak_length": math.nan,
                "peak_time": math.nan,
                "drain_time": math.nan,
                # Whole-window counts (docs/reliability.md): taken out by ttl, moved to the
                # dead-letter queue (or dead-lettered without one), given back to the line.
                "expired": acc.expired,
                "dead_lettered": self.count(DEAD_LETTER, qi),
                "redelivered": self.count(REQUEUED, qi),
                "ordering": self.order_queues[qi].summary(),
            }
            spells = fault_spells(name)
            if spells is not None:
                inside = [(a, b, r) for a, b, r in spells if t0 <= a <= t1]
                rec_times = [r for _, _, r in inside]
                summary["queues"][name].update({
                    "faults": len(inside),
                    "down_time": float(sum(min(b, t1) - a for a, b, _ in inside)),
                    "recovery_mean": float(np.mean(rec_times)) if rec_times else math.nan,
                    "recovery_max": float(np.max(rec_times)) if rec_times else math.nan,
                })
        for gi, ((name, spec), g) in enumerate(zip(sc.consumers.items(), self.groups,
                                                    strict=True)):
            # The worker count may change (schedule, autoscale): divide by worker-seconds.
            ws = worker_seconds(gi, spec.count)
            summary["consumers"][name] = {
                "utilization": float(g.busy / ws) if ws > 0 else math.nan,
                "throughput": float(g.ended / span),
                "service_mean": g.service.mean(),
                "worker_seconds": ws,
            }
            if spec.reliable:
                summary["consumers"][name].update({
                    "attempts": self.count(ATTEMPT, gi),
                    "failures": self.count(FAILED, gi),
                    "duplicates": self.count(DUPLICATE, gi),
                    "discarded": self.count(DISCARDED, gi),
                    "crashes": self.count(CRASH, gi),
                    "lost": self.count(CRASH_LOST, gi),
                })
            if spec.rebalance is not None:
                summary["consumers"][name].update(self.rebalance_totals(gi))
        for gi, qis in self.topic_groups.items():
            summary["consumers"][list(sc.consumers)[gi]].update(
                self._group_of_topic(gi, qis, summary["queues"]))
        if sc.brokers is not None:
            summary.update(cluster_summary(self.cluster, sc, w, summary["queues"]))
        for name, lk in zip(sc.links, self.links, strict=True):
            summary["links"][name] = {
                "delay_mean": lk.delay.mean(),
                "utilization": float(lk.tx_area / span),
                "lost": lk.lost,
                "retransmitted": lk.retransmitted,
            }
        return summary

    def _group_of_topic(self, gi: int, qis: list[int],
                        queues: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """A consumer group's own view of a partitioned topic (docs/output.md): its lag
        per partition and in all, its wait, and the latency of what it delivered."""
        names = list(self.sc.queues)
        mine = [queues[names[qi]] for qi in qis]
        waits = [self.queues[qi].wait for qi in qis]
        n = sum(h.n for h in waits)
        lat = self.latency_group[gi]
        return {
            "lag": {str(p): q["length_mean"] for p, q in enumerate(mine)},
            "lag_mean": float(sum(q["length_mean"] for q in mine)),
            "wait_mean": float(sum(h.total for h in waits) / n) if n else math.nan,
            "latency_mean": lat.mean,
            "latency_p95": lat.quantile(0.95),
            "expired": int(sum(q["expired"] for q in mine)),
            "dropped": int(sum(q["dropped"] for q in mine)),
        }

    def rebalance_totals(self, gi: int) -> dict[str, float]:
        """Group ``gi``'s rebalances (docs/rebalancing.md): how many started in the window,
        the partitions they moved, their seconds inside the window, and the
        partition-seconds without a consumer they caused (paused partitions while one
        went on, and a crashed member's partitions until its session timed out)."""
        w = self.w
        rows = self.rebalances

        def col(c: str) -> np.ndarray:
            return np.concatenate([r[c] for r in rows]) if rows else np.empty(0)
        at = col("group") == gi
        start, cause, end = col("start")[at], col("cause")[at], col("end")[at]
        took = w.covered(start, end)
        started = w.started_in(start)
        return {
            "rebalances": int(started.sum()),
            "partitions_moved": int(col("moved")[at][started].sum()),
            "rebalance_time": float(took.sum()),
            "rebalance_pause": float((col("paused")[at] * took).sum()
                                     + (col("stranded")[at] * w.covered(cause, start)).sum()),
        }

    def queue_spells(self, queue: str) -> list[tuple[float, float, float]] | None:
        """Spells in which ``queue`` could not take in or give out messages: its outages,
        its inbound links cut, every worker of a group reading it down (None: no faults
        modelled), each with its recovery."""
        sc = self.sc
        names = list(sc.queues)
        links = [i for i, k in enumerate(sc.links)
                 if k.partition("->")[2] == queue and sc.links[k].partitions is not None]
        groups = [i for i, c in enumerate(sc.consumers.values())
                  if c.source == queue and c.crashes is not None]
        down = sc.may_go_down(queue)
        if not down and not links and not groups:
            return None
        out = self.spells.of(("queue", names.index(queue))) if down else []
        for li in links:
            out += self.spells.of(("link", li))
        for gi in groups:
            out += self.spells.of(("group", gi))
        return sorted(out)
