"""Independent parts of a scenario (no message passes between them): splitting it into
scenarios of their own, and combining the parts' predictions into one."""

from __future__ import annotations

import math
from typing import Any

from simq.errors import ScenarioError
from simq.model.predict.base import Kind, Prediction
from simq.scenario import Scenario

__all__ = ["combine", "parts", "split"]

_SECTIONS = ("producers", "queues", "consumers", "links")


def split(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenario's independent parts (no message passes between them), each as a raw
    scenario mapping; one part when everything is connected."""
    if raw.get("topics"):
        return [raw]
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def join(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for section in _SECTIONS:
        for name in raw.get(section) or {}:
            find(f"{section}:{name}")
    for name, p in (raw.get("producers") or {}).items():
        join(f"producers:{name}", f"queues:{p['to']}")
    for name, c in (raw.get("consumers") or {}).items():
        join(f"consumers:{name}", f"queues:{c['from']}")
        to = c.get("to")
        targets = [to] if isinstance(to, str) else list(to or {})
        for t in targets:
            if t in (raw.get("queues") or {}):
                join(f"consumers:{name}", f"queues:{t}")
    for key in raw.get("links") or {}:
        a, _, b = key.partition("->")
        for section in ("producers", "queues", "consumers"):
            if a in (raw.get(section) or {}):
                join(f"links:{key}", f"{section}:{a}")
            if b in (raw.get(section) or {}):
                join(f"links:{key}", f"{section}:{b}")
    for name, q in (raw.get("queues") or {}).items():
        dlq = (q or {}).get("dead_letter")
        if isinstance(dlq, str):
            join(f"queues:{name}", f"queues:{dlq}")
    roots: dict[str, list[str]] = {}
    for key in list(parent):
        roots.setdefault(find(key), []).append(key)
    if len(roots) < 2:
        return [raw]
    parts = []
    for members in roots.values():
        part = {k: v for k, v in raw.items() if k not in _SECTIONS}
        for section in _SECTIONS:
            names = {m.partition(":")[2] for m in members if m.startswith(section + ":")}
            part[section] = {n: v for n, v in (raw.get(section) or {}).items() if n in names}
        parts.append(part)
    return parts


def combine(preds: list[tuple[str, Prediction]]) -> Prediction:
    """One prediction for independent parts: sums of rates, delivered-weighted latency."""
    for label, p in preds:
        if p.kind == "none":
            return Prediction.none(f"part {label}: {p.reason}")
    thr = sum(p.throughput for _, p in preds)
    latency = (sum(p.throughput * p.latency_mean for _, p in preds) / thr if thr > 0
               else math.nan)
    kind: Kind = "exact" if all(p.kind == "exact" for _, p in preds) else "approximate"
    return Prediction(
        model=" + ".join(dict.fromkeys(p.model for _, p in preds)), kind=kind,
        reason="independent parts: " + "; ".join(f"{label}: {p.reason}" for label, p in preds),
        queues={q: m for _, p in preds for q, m in p.queues.items()},
        links={k: v for _, p in preds for k, v in p.links.items()},
        latency_mean=latency, throughput=thr, offered=sum(p.offered for _, p in preds),
    )


def parts(scenario: Scenario) -> list[Scenario]:
    """The independent parts of ``scenario``, each validated as a scenario of its own (from
    the same folder and source); the scenario itself when it is one part, or when a part
    is not a valid scenario alone."""
    raws = split(scenario.to_dict())
    if len(raws) < 2:
        return [scenario]
    try:
        return [Scenario(raw, base_dir=scenario.base_dir, source=scenario.source)
                for raw in raws]
    except ScenarioError:
        return [scenario]
