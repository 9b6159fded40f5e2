"""The memory guard: a run whose memory keeps growing (an overloaded queue, full records
of a very long run) stops with :class:`~simq.errors.MemoryLimitError` before the machine
runs out, instead of ending in a ``MemoryError`` traceback or the system killing it.

One limit, ``run.max_memory``, serves both checks of a run's memory: the estimate refuses
a run before it starts when what it would hold is above it (:mod:`simq.model.estimate`),
and this guard stops a run whose memory grows past it all the same (the estimate is a
model; a run can hold more). Whatever the setting, a run is also stopped when the whole
process passes three quarters of the machine's (or the container's) memory: beyond that
the system, not simq, decides how it ends.

The driver (record.streaming) checks the process's resident memory each time it folds or
compacts the logs, which it does every ``CHUNK`` rows: memory that only grows is noticed
within one chunk.
"""

from __future__ import annotations

import os
import resource

from simq.engine import Simulation
from simq.errors import MemoryLimitError
from simq.scenario.types import format_size

__all__ = ["SHARE", "MemoryGuard", "machine_limit", "resident"]

SHARE = 0.75  # of the machine's (or the container's) memory a process may reach


def _machine_bytes() -> float:
    """The memory this process may use: the machine's, or less under a cgroup limit."""
    try:
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        total = float("inf")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():
            total = min(total, float(text))
    except OSError:
        pass
    return total


def machine_limit() -> float:
    """The resident memory a process may reach whatever the scenario says, in bytes."""
    return SHARE * _machine_bytes()


def resident() -> float:
    """This process's resident memory now, in bytes (its peak where /proc is absent)."""
    try:
        with open("/proc/self/statm") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if os.uname().sysname == "Darwin" else peak * 1024)


class MemoryGuard:
    """Stops ``sim`` with :class:`MemoryLimitError` once the memory its run added passes
    ``run.max_memory``, or the process passes :func:`machine_limit`."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.limit = float(sim.scenario.run.max_memory)
        self.ceiling = machine_limit()
        self.start = resident()

    def check(self) -> None:
        now = resident()
        grown = now - self.start
        if grown <= self.limit and now <= self.ceiling:
            return
        sim = self.sim
        waiting = sum(len(q.items) for q in sim.queues.values())
        longest = max(sim.queues, key=lambda n: len(sim.queues[n].items), default="")
        full = sim.scenario.run.records == "full"
        hints = (["run.records: summary (simq run --stream), which keeps no per-message "
                  "records"] if full else [])
        hints += ["a shorter run (run.until or run.messages)",
                  f"more consumers for queue {longest!r}" if waiting else "more consumers"]
        where = f"; {waiting:,} messages waiting ({longest!r} holds the most)" if waiting else ""
        if grown > self.limit:
            past = (f"the run's memory grew by {format_size(grown)} (to {format_size(now)}) by t = "
                    f"{float(sim.env.now):g} s, past run.max_memory ({format_size(self.limit)})")
            more = "; or raise run.max_memory (--max-memory 8G; inf: no limit)"
        else:
            past = (f"memory reached {format_size(now)} by t = {float(sim.env.now):g} s, past "
                    f"{SHARE:.0%} of this machine's memory ({format_size(self.ceiling)})")
            more = "; or run it on a larger machine"
        raise MemoryLimitError(
            "run", f"{past}{where}: the run was stopped before the machine ran out. "
            f"Try {', '.join(hints[:-1])} or {hints[-1]}{more}")
