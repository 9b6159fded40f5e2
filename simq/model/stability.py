"""Warnings a run gives before it starts: queues the traffic model says cannot keep up."""

from __future__ import annotations

import math

from simq.model.network import flows
from simq.scenario import Scenario

__all__ = ["stability_warnings"]


def stability_warnings(sc: Scenario) -> list[str]:
    """One sentence per queue offered more than its consumers serve, saying what follows
    (it grows, drops, holds its senders back, expires the excess) and where to look."""
    out = []
    for q in flows(sc).queues.values():
        # Closed loops scaled to fit exactly saturate a queue without growing it.
        fits = q.closed and q.effective_arrival <= q.capacity * (1 + 1e-9)
        room = sc.queues[q.name].capacity
        if math.isfinite(room) and q.capacity > 0:
            # A bounded queue cannot grow: past capacity the excess is turned away or
            # held back (at exactly capacity it is stable, with some drops).
            if q.effective_arrival > q.capacity and not fits:
                policy = sc.queues[q.name].overflow
                if policy == "block":
                    fate, see = "holds back its senders", "producers.NAME.blocked_fraction"
                else:
                    fate, see = "drops messages", f"queues.{q.name}.drop_fraction"
                out.append(
                    f"queue {q.name!r} is offered {q.effective_arrival:.4g} msg/s but its "
                    f"consumers serve {q.capacity:.4g} msg/s: it fills up and {fate} "
                    f"(about {q.growth:.4g} msg/s; see {see})"
                )
        elif q.capacity > 0 and q.effective_arrival >= q.capacity and not fits and (
                sc.queues[q.name].ttl is not None
                or any(p.ttl is not None for p in sc.producers.values())):
            # Expiry sheds the excess (docs/reliability.md): the line stays bounded.
            out.append(
                f"queue {q.name!r} is offered {q.effective_arrival:.4g} msg/s but its "
                f"consumers serve {q.capacity:.4g} msg/s: about {q.growth:.4g} msg/s "
                f"expire (ttl; see messages.expired)")
        elif q.capacity > 0 and q.effective_arrival >= q.capacity and not fits and any(
                p.credits is not None and p.to == q.name for p in sc.producers.values()):
            out.append(
                f"queue {q.name!r} is offered {q.effective_arrival:.4g} msg/s but its "
                f"consumers serve {q.capacity:.4g} msg/s: credits hold its senders back "
                f"(see producers.NAME.blocked_fraction)")
        elif q.capacity > 0 and q.effective_arrival >= q.capacity and not fits:
            out.append(
                f"queue {q.name!r} is offered {q.effective_arrival:.4g} msg/s but its "
                f"consumers serve {q.capacity:.4g} msg/s: it grows by about "
                f"{q.growth:.4g} msg/s (see queues.{q.name}.growth_rate)"
            )
        elif q.capacity == 0 and q.effective_arrival > 0:
            out.append(f"queue {q.name!r} has no consumers: every message stays in it")
    return out
