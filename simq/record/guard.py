"""The memory guard: a run whose memory keeps growing (an overloaded queue, full records
of a very long run) stops with :class:`~simq.errors.MemoryLimitError` before the machine
runs out, instead of ending in a ``MemoryError`` traceback or the system killing it.

The driver (record.streaming) checks the process's resident memory each time it folds or
compacts the logs, which it does every ``CHUNK`` rows: memory that only grows is noticed
within one chunk.
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Mapping

from simq.engine import Simulation
from simq.errors import MemoryLimitError, ScenarioError

__all__ = ["LIMIT_VARIABLE", "MemoryGuard", "memory_limit", "resident"]

LIMIT_VARIABLE = "SIMQ_MAX_MEMORY"
SHARE = 0.75  # of the machine's (or the container's) memory, when the variable is not set
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


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


def memory_limit(environ: Mapping[str, str] | None = None) -> float:
    """The resident memory a run may reach, in bytes (inf: no limit).

    ``SIMQ_MAX_MEMORY`` gives it as a size (``2G``, ``500M``, ``1500000000``; ``0`` or
    ``off``: no limit); unset, it is three quarters of the machine's memory."""
    env = os.environ if environ is None else environ
    text = env.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return SHARE * _machine_bytes()
    if text.lower() in ("0", "off", "none"):
        return float("inf")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if m is None or float(m.group(1)) <= 0:
        raise ScenarioError(LIMIT_VARIABLE, "must be a size such as 2G, 500M or a number "
                            "of bytes (0 or off: no limit)", text)
    return float(m.group(1)) * _UNITS[m.group(2).upper()]


def resident() -> float:
    """This process's resident memory now, in bytes (its peak where /proc is absent)."""
    try:
        with open("/proc/self/statm") as f:
            return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return float(peak if os.uname().sysname == "Darwin" else peak * 1024)


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


class MemoryGuard:
    """Stops ``sim`` with :class:`MemoryLimitError` once resident memory passes
    ``limit`` bytes (default :func:`memory_limit`)."""

    def __init__(self, sim: Simulation, limit: float | None = None) -> None:
        self.sim = sim
        self.limit = memory_limit() if limit is None else limit
        self.start = resident()

    def check(self) -> None:
        now = resident()
        if now <= self.limit:
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
        raise MemoryLimitError(
            "run",
            f"memory grew from {_size(self.start)} to {_size(now)} by t = "
            f"{float(sim.env.now):g} s, past the limit of {_size(self.limit)} "
            f"({LIMIT_VARIABLE}){where}: the run was stopped before the machine ran out. "
            f"Try {', '.join(hints[:-1])} or {hints[-1]}; or raise {LIMIT_VARIABLE} "
            "(e.g. 8G; 0: no limit)")
