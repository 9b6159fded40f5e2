"""Shared fixtures, scenario builders and the statistical assertion every test uses.

Builders return plain mappings (a fresh copy each call) that a test may change before
``simq.load`` or ``simq.run``: :func:`scenario` for any layout, :func:`one_queue` for a
producer, a queue and a consumer group, :func:`mm1` for the Markovian case of it,
:func:`tandem` for stations in series, :func:`with_link` to put a link on a route and
:func:`override` to change anything by dotted path. Tests import them
(``from conftest import mm1``).

:func:`assert_agrees` is simq's agreement rule (:func:`simq.analysis.stats.agrees`) applied
to a number of a run's summary, at the test suite's Bonferroni level.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simq
from simq.analysis.stats import Agreement, agreement, agrees

MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "run": {"until": 100.0, "seed": 1},
    "producers": {"app": {"to": "broker", "rate": 1.0}},
    "queues": {"broker": {}},
    "consumers": {"worker": {"from": "broker", "rate": 2.0}},
}

# The default suite makes about fifty checks against theory; the agreement rule judges
# them together at 95% (Bonferroni), so each one is a 99.9% interval: a correct simq fails
# one by chance in about one run of the suite in twenty, and the fixed seeds make that run
# reproducible rather than flaky.
CHECKS = 50


@pytest.fixture
def raw() -> dict[str, Any]:
    """A fresh copy of a small valid scenario mapping."""
    return copy.deepcopy(MINIMAL)


# --- scenario builders -------------------------------------------------------------------


def override(sc: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``sc`` with each dotted path in ``changes`` set (``None`` deletes).

    Names that hold a dot themselves cannot be reached this way (a link name has none:
    ``links.app->q.loss`` works).
    """
    out = copy.deepcopy(dict(sc))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return out


def scenario(*, producers: Mapping[str, Any], consumers: Mapping[str, Any],
             queues: Mapping[str, Any] | None = None, until: float = 20000,
             warmup: float | str | None = None, seed: int | None = 1, name: str = "station",
             **sections: Any) -> dict[str, Any]:
    """A scenario from its sections; the warm-up defaults to a tenth of the run, and
    ``seed=None`` leaves the seed out (the schema's default). Other keyword arguments
    (``links``, ``topics``, ...) are added as sections."""
    run: dict[str, Any] = {"until": until, "warmup": until / 10 if warmup is None else warmup}
    if seed is not None:
        run["seed"] = seed
    sc: dict[str, Any] = {"name": name, "run": run, "producers": dict(producers),
                          "queues": dict(queues or {}), "consumers": dict(consumers)}
    sc.update(sections)
    return copy.deepcopy(sc)


def one_queue(rate: float | None = 0.5, service: str | None = "exponential(rate=1)", *,
              count: int = 1, producer: Mapping[str, Any] | None = None,
              queue: Mapping[str, Any] | None = None,
              consumer: Mapping[str, Any] | None = None,
              overrides: Mapping[str, Any] | None = None, **run: Any) -> dict[str, Any]:
    """Producer ``app`` at Poisson ``rate`` into queue ``q``, served by ``count`` workers
    ``w`` with ``service``. ``producer``, ``queue`` and ``consumer`` add keys to those
    components (``rate=None`` or ``service=None`` leaves that key out, for a producer or
    consumer described otherwise); ``run`` holds :func:`scenario`'s keywords (``until``,
    ``warmup``, ``seed``, ``name``, ``links``, ...), ``overrides`` dotted-path changes."""
    app: dict[str, Any] = {"to": "q"}
    if rate is not None:
        app["rate"] = rate
    app.update(producer or {})
    w: dict[str, Any] = {"from": "q"}
    if count != 1:
        w["count"] = count
    if service is not None:
        w["service"] = service
    w.update(consumer or {})
    sc = scenario(producers={"app": app}, queues={"q": dict(queue or {})},
                  consumers={"w": w}, **run)
    return override(sc, overrides or {})


def mm1(rho: float = 0.5, mu: float = 1.0, **kw: Any) -> dict[str, Any]:
    """An M/M/1 (or M/M/c with ``count``) at load ``rho`` per worker, service rate ``mu``:
    :func:`one_queue` with Poisson arrivals at rho·mu·count."""
    count = int(kw.get("count", 1))
    return one_queue(rho * mu * count, f"exponential(rate={mu:g})", **kw)


def tandem(rate: float, service_rates: Sequence[float], *, names: str = "abc",
           **run: Any) -> dict[str, Any]:
    """Poisson arrivals at ``rate`` into exponential stations in series: queue ``names[i]``
    served by group ``g<name>`` at ``service_rates[i]``, each feeding the next."""
    qs = names[: len(service_rates)]
    consumers: dict[str, Any] = {}
    for i, (q, mu) in enumerate(zip(qs, service_rates, strict=True)):
        consumers[f"g{q}"] = {"from": q, "rate": mu}
        if i + 1 < len(qs):
            consumers[f"g{q}"]["to"] = qs[i + 1]
    run.setdefault("name", "tandem")
    return scenario(producers={"app": {"to": qs[0], "rate": rate}},
                    queues={q: {} for q in qs}, consumers=consumers, **run)


def with_link(sc: Mapping[str, Any], route: str, **link: Any) -> dict[str, Any]:
    """A copy of ``sc`` with a link on ``route`` (``"app->q"``) described by ``link``."""
    out = copy.deepcopy(dict(sc))
    out.setdefault("links", {})[route] = link
    return out


# --- the agreement rule, applied to a run ------------------------------------------------


def at(tree: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (component names without dots)."""
    node: Any = tree
    for key in path.split("."):
        node = node[key]
    return node


def assert_agrees(res: simq.RunResult, path: str, theory: float, *, kind: str = "exact",
                  allowance: float | None = None, reason: str = "",
                  precision: float | None = None, scale: float = 1.0,
                  per_rep: Callable[[dict[str, Any]], float] | None = None) -> Agreement:
    """Assert the agreement rule for the number at ``path`` of ``res.summary`` (its mean
    and its 95% half-width over the replications), at the suite's Bonferroni level.

    ``scale`` divides the number and its half-width first (a count per second of the
    window, a fraction of messages produced). ``per_rep`` computes a derived number from
    each replication's summary instead. ``precision`` also bounds the half-width relative
    to theory, so that a check cannot pass by being vague. A looser check passes
    ``kind="approximate"`` or an ``allowance`` with its ``reason``; it does not invent
    another formula.
    """
    n = len(res.replications)
    assert n >= 2, f"{path}: a confidence interval needs replications, got {n}"
    if per_rep is None:
        got = agrees(float(at(res.summary, path)) / scale,
                     float(at(res.summary["ci95"], path)) / scale, theory, replications=n,
                     checks=CHECKS, kind=kind, allowance=allowance,  # type: ignore[arg-type]
                     reason=reason)
    else:
        values = np.array([per_rep(r.summary) for r in res.replications])
        got = agreement(values, theory, checks=CHECKS, kind=kind,  # type: ignore[arg-type]
                        allowance=allowance, reason=reason)
    assert got, f"{path}: {got}"
    if precision is not None:
        assert got.halfwidth <= precision * max(abs(theory), 1e-9), (
            f"{path}: {got} (interval too wide)")
    return got


# Another process holding an output folder ---------------------------------------------------

_HOLD = """
import sys, time
from simq.files import locked
with locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def held_by_another_process(folder: Path) -> Iterator[None]:
    """While the block runs, another process holds ``folder`` (simq.files.locked); then it
    dies without letting go, as a killed run would."""
    root = str(Path(__file__).resolve().parents[1])
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)],
                              stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
