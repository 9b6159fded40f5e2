"""Which queueing model applies to a scenario, and what it predicts.

``predict(scenario)`` splits the scenario into its independent parts
(:mod:`~simq.model.predict.parts`), then tries the matchers of :data:`MATCHERS` in order
on each; the first that recognises a part returns a :class:`Prediction` (exact,
approximate, or none with the reason). A scenario feature that no matcher declares it
handles (a key set away from its default that :func:`features` does not know) gives
"none: ..." instead of a wrong number, so new semantics can land before their theory: a
later matcher declares ``handles`` for its own keys.

The modules depend one way: :mod:`~simq.model.predict.base` (Prediction, Matcher,
features) under the matchers of :mod:`~simq.model.predict.patterns` (one station: sync
clients, priorities, encode/decode) and :mod:`~simq.model.predict.stations` (networks of
stations, read off the traffic model :mod:`simq.model.network`), under this module, which
lists them. None of them imports the engine or the run layer.
"""

from __future__ import annotations

from simq.model.predict import patterns, stations
from simq.model.predict.base import (
    Kind,
    LinkPrediction,
    Matcher,
    Prediction,
    features,
    unhandled,
)
from simq.model.predict.parts import combine, parts
from simq.scenario import Scenario

__all__ = ["Kind", "LinkPrediction", "MATCHERS", "Matcher", "Prediction", "features",
           "predict", "register"]

# The matchers, tried in this order: the patterns first (each answers only its own
# pattern, and handles the features of it), then the networks of plain stations.
_CLASSES = ("producers.*.service", "producers.*.decode", "consumers.*.service_by")
MATCHERS: tuple[Matcher, ...] = (
    Matcher("closed-loop", patterns.closed_loop, handles=(
        "producers.*.mode", "producers.*.clients", "producers.*.think", "producers.*.encode",
        "producers.*.reply", "consumers.*.decode", *_CLASSES)),
    # A FIFO station (the only kind it matches) ignores the producers' priorities.
    Matcher("open-station", patterns.open_station, handles=(
        "producers.*.encode", "consumers.*.decode", "producers.*.priority", *_CLASSES)),
    Matcher("priority", patterns.priority, handles=(
        "producers.*.priority", "queues.*.discipline", *_CLASSES)),
    Matcher("routing", stations.routed),
    Matcher("no-consumers", stations.no_consumers),
    Matcher("finite-buffer-in-network", stations.finite_buffer_in_network),
    Matcher("jackson", stations.jackson),
    Matcher("feed-forward", stations.feed_forward),
)


def register(matcher: Matcher, *, before: str | None = None) -> None:
    """Add a matcher to :data:`MATCHERS`, at the end or before the one named ``before``."""
    global MATCHERS
    names = [m.name for m in MATCHERS]
    at = names.index(before) if before in names else len(MATCHERS)
    MATCHERS = (*MATCHERS[:at], matcher, *MATCHERS[at:])


# Features known to have no steady-state model, with the reason users see.
_WHY = {
    "producers.*.arrivals": "time-varying or modulated arrivals (producers.*.arrivals): no "
                            "closed form here",
    "queues.*.backlog": "a backlog at time 0 (queues.*.backlog): a transient, not a steady "
                        "state",
    "consumers.*.schedule": "a changing worker count (consumers.*.schedule): no steady state",
    "consumers.*.autoscale": "an autoscaled worker count (consumers.*.autoscale): no closed "
                             "form",
}


def predict(scenario: Scenario) -> Prediction:
    """The analytic model that applies to ``scenario`` and its predictions.

    Never raises for a valid scenario: an unrecognised feature or an unsupported
    combination gives ``Prediction.none(reason)``.
    """
    pieces = parts(scenario)
    if len(pieces) > 1:
        return combine([(", ".join(sorted(part.producers)) or "(no producers)", predict(part))
                        for part in pieces])
    found = features(scenario)
    first_unknown: list[str] = []
    for m in MATCHERS:
        left = unhandled(found, m.handles)
        if left:
            first_unknown = first_unknown or left
            continue
        try:
            res = m.fn(scenario)
        except Exception as err:  # a matcher must never take a run down with it
            return Prediction.none(f"{m.name}: {type(err).__name__}: {err}")
        if res is not None:
            return res
    if first_unknown:
        known = [_WHY[f] for f in first_unknown if f in _WHY]
        return Prediction.none(
            "; ".join(known) if known else
            "uses " + ", ".join(first_unknown) + ", which no analytic model here covers"
        )
    return Prediction.none("no analytic model recognises this scenario")
