"""Which queueing model applies to a scenario, and what it predicts.

``predict(scenario)`` tries a list of small matchers in order; the first that recognises
the scenario returns a :class:`Prediction` (exact, approximate, or none with the reason).
A scenario feature that no matcher declares it handles (a key set away from its default
that this module does not know) gives "none: ..." instead of a wrong number, so new
semantics can land before their theory: a later matcher declares ``handles`` for its own
keys and is added with :func:`register`.

This module reads a scenario's specs and the pure arithmetic of :mod:`simq.model.network`; it never
imports the engine or the run layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from simq.dists import Constant, Distribution, Exponential
from simq.theory import networks, queues
from simq.theory.metrics import QueueMetrics

__all__ = ["LinkPrediction", "Matcher", "Prediction", "MATCHERS", "predict", "register"]

Kind = Literal["exact", "approximate", "none"]


@dataclass(frozen=True)
class LinkPrediction:
    """A link: its serialization station (when the bandwidth is finite) plus propagation."""

    arrival_rate: float
    delay_mean: float  # waiting for the wire + serialization + propagation
    utilization: float
    loss: float
    serialization: QueueMetrics | None = None


@dataclass(frozen=True)
class Prediction:
    """What theory says about a scenario, per queue and end to end.

    ``kind`` is "exact" when every number is an exact steady-state result, "approximate"
    when at least one is an approximation, "none" when no model applies (``reason`` says
    why, and the numbers are empty/NaN).
    """

    model: str
    kind: Kind
    reason: str
    queues: Mapping[str, QueueMetrics] = field(default_factory=dict)
    links: Mapping[str, LinkPrediction] = field(default_factory=dict)
    latency_mean: float = math.nan  # end to end, of delivered messages
    throughput: float = math.nan  # delivered per second
    offered: float = math.nan  # produced per second

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def applies(self) -> bool:
        return self.kind != "none"

    def __str__(self) -> str:
        if self.kind == "none":
            return f"none: {self.reason}"
        return f"{self.model} ({self.kind}): {self.reason}"

    @classmethod
    def none(cls, reason: str) -> Prediction:
        return cls(model="none", kind="none", reason=reason)


@dataclass(frozen=True)
class Matcher:
    """A recogniser: ``fn(scenario)`` gives a Prediction, or None when it does not apply.

    ``handles`` lists the feature paths (as reported by :func:`features`, with ``*`` for a
    component name) the matcher understands beyond the base schema.
    """

    name: str
    fn: Callable[[Any], Prediction | None]
    handles: tuple[str, ...] = ()


MATCHERS: list[Matcher] = []


def register(matcher: Matcher, *, before: str | None = None) -> None:
    """Add a matcher, at the end or before the one named ``before``."""
    names = [m.name for m in MATCHERS]
    at = names.index(before) if before in names else len(MATCHERS)
    MATCHERS.insert(at, matcher)


# --- features the base matchers know -----------------------------------------------------

# Keys of each section the base matchers understand; anything else set away from its
# default is an unknown feature.
_KNOWN: dict[str, set[str]] = {
    "run": {"until", "messages", "warmup", "seed", "replications", "timeseries_points",
            "records"},
    "producers": {"to", "interarrival", "size", "start", "stop"},
    "queues": {"capacity", "overflow"},
    "consumers": {"source", "count", "service", "to"},
    "links": {"latency", "bandwidth", "loss"},
}
_SECTIONS = ("producers", "queues", "consumers", "links")


def _default_of(model_cls: Any, name: str) -> Any:
    info = model_cls.model_fields[name]
    if info.default_factory is not None:
        return info.default_factory()
    return info.default


def features(sc: Any) -> list[str]:
    """Paths of scenario features outside the base schema, e.g. ``consumers.*.mode``.

    A key counts only when it is set away from its default, and a whole new top-level
    section only when it is non-empty.
    """
    found: list[str] = []
    spec_model = getattr(sc, "_model", None)
    if spec_model is not None and hasattr(type(spec_model), "model_fields"):
        for top in type(spec_model).model_fields:
            if top in {"name", "description", *_KNOWN}:
                continue
            if getattr(spec_model, top, None):
                found.append(top)
    run_spec = getattr(sc, "run", None)
    if run_spec is not None and hasattr(type(run_spec), "model_fields"):
        for key in type(run_spec).model_fields:
            if key not in _KNOWN["run"] and getattr(run_spec, key) != _default_of(
                type(run_spec), key
            ):
                found.append(f"run.{key}")
    for section in _SECTIONS:
        for spec in getattr(sc, section, {}).values():
            cls = type(spec)
            for key in getattr(cls, "model_fields", {}):
                if key in _KNOWN[section]:
                    continue
                try:
                    default = _default_of(cls, key)
                except Exception:  # a required new key: always a feature
                    default = object()
                if getattr(spec, key) != default:
                    path = f"{section}.*.{key}"
                    if path not in found:
                        found.append(path)
    return found


def _unhandled(found: Iterable[str], handles: Iterable[str]) -> list[str]:
    h = set(handles)
    return [f for f in found if f not in h]


# --- the picture of a scenario -----------------------------------------------------------


@dataclass
class _Station:
    name: str
    servers: int
    service: Distribution | None  # None when its groups differ
    capacity: float
    overflow: str
    groups: list[str]
    lam: float = 0.0  # arrival rate (after losses upstream)
    ca2: float = 1.0  # interarrival SCV (rate-weighted over the merged streams)
    poisson: bool = True


def _is_exponential(d: Distribution) -> bool:
    return isinstance(d, Exponential)


def _rate(d: Distribution) -> float:
    return 1.0 / d.mean if d.mean > 0 else math.inf


def _group_service(sc: Any, groups: list[str]) -> Distribution | None:
    services = [sc.consumers[g].service for g in groups]
    first = services[0]
    return first if all(str(s) == str(first) for s in services) else None


def _stations(sc: Any) -> dict[str, _Station]:
    out = {}
    for q, spec in sc.queues.items():
        groups = [g for g, c in sc.consumers.items() if c.source == q]
        out[q] = _Station(
            name=q,
            servers=sum(sc.consumers[g].count for g in groups),
            service=_group_service(sc, groups) if groups else None,
            capacity=spec.capacity,
            overflow=spec.overflow,
            groups=groups,
        )
    return out


def _order(sc: Any) -> list[str]:
    """Queues in an order where every upstream queue comes first (no cycles: validated)."""
    upstream: dict[str, set[str]] = {q: set() for q in sc.queues}
    for c in sc.consumers.values():
        if c.to is not None:
            upstream[c.to].add(c.source)
    done: list[str] = []
    while len(done) < len(upstream):
        for q in upstream:
            if q not in done and upstream[q] <= set(done):
                done.append(q)
    return done


def _link(sc: Any, src: str, dst: str, lam: float, ca2: float, size: Distribution
          ) -> tuple[LinkPrediction | None, float, float, bool]:
    """The link src->dst at arrival rate ``lam``: (prediction, rate out, ca2 out, exact).

    Loss is a coin flipped before the wire (thinning keeps a Poisson stream Poisson);
    finite bandwidth is a FIFO server of size/bandwidth per message; propagation is a pure
    delay, which keeps a Poisson stream Poisson (an infinite-server station).
    """
    spec = sc.links.get(f"{src}->{dst}")
    if spec is None:
        return None, lam, ca2, True
    p = spec.loss
    lam_in = lam * (1.0 - p)
    ca2_in = 1.0 - (1.0 - p) * (1.0 - ca2)  # thinning: c² -> p + (1 - p) c²
    exact = True
    ser = None
    if math.isinf(spec.bandwidth):
        delay = spec.latency.mean
        ca2_out = ca2_in
        # A random delay reorders messages: Poisson in, Poisson out (M/G/inf); otherwise
        # the stream's shape is kept only when the delay is constant.
        if ca2_in != 1.0 and not isinstance(spec.latency, Constant):
            exact = False
        util = 0.0
    else:
        mean = size.mean / spec.bandwidth
        if ca2_in == 1.0:
            ser = (queues.md1(lam_in, 1.0 / mean) if isinstance(size, Constant)
                   else queues.mg1(lam_in, mean, size.scv))
        else:
            ser = queues.gg1_kingman(lam_in, ca2_in, mean, size.scv)
            exact = False
        delay = ser.sojourn_mean + spec.latency.mean
        rho = min(1.0, lam_in * mean)
        # The linking equation for a departure stream (Whitt's QNA).
        ca2_out = rho**2 * size.scv + (1.0 - rho**2) * ca2_in
        util = rho
        lam_in = min(lam_in, 1.0 / mean)
    return (LinkPrediction(lam * (1.0 - p), delay, util, p, ser), lam_in, ca2_out, exact)


def _solve_station(st: _Station) -> tuple[QueueMetrics | None, bool, str]:
    """(metrics, exact, reason-if-none) for one station given its arrivals."""
    if not st.groups:
        return None, False, f"queue {st.name!r} has no consumers"
    if st.service is None:
        return None, False, (f"queue {st.name!r} is drained by consumer groups with different "
                             "service times: heterogeneous servers have no closed form here")
    c, s, lam = st.servers, st.service, st.lam
    mu = _rate(s)
    finite = math.isfinite(st.capacity)
    if finite and st.overflow == "block":
        return None, False, (f"queue {st.name!r} blocks its senders when full: an open-loop "
                             "producer held back has no closed form here")
    if finite and st.capacity == 0:
        if not st.poisson:
            return None, False, f"queue {st.name!r}: G/G/c/c loss with non-Poisson arrivals"
        # Erlang B does not depend on the service distribution beyond its mean.
        return queues.mmcc(lam, mu, c), True, ""
    if finite:
        if not (st.poisson and _is_exponential(s)):
            return None, False, (f"queue {st.name!r}: a finite buffer with general service or "
                                 "arrivals (G/G/c/K): no closed form")
        m = queues.mmck(lam, mu, c, c + int(st.capacity))
        if st.overflow == "drop-oldest":
            # The number present evolves as in M/M/c/K, so blocking and Lq are the same;
            # the waits of served messages are not (the oldest leave early).
            m = dataclasses.replace(m, wait_mean=math.nan, sojourn_mean=math.nan,
                                    note=m.note + "; drop-oldest: waits not predicted")
        return m, True, ""
    if st.poisson and _is_exponential(s):
        return queues.mmc(lam, mu, c), True, ""
    if st.poisson and c == 1:
        if isinstance(s, Constant):
            return queues.md1(lam, mu), True, ""
        return queues.mg1(lam, s.mean, s.scv), True, ""
    if c == 1:
        return queues.gg1_kingman(lam, st.ca2, s.mean, s.scv), False, ""
    return queues.ggc_allen_cunneen(lam, st.ca2, s.mean, s.scv, c), False, ""


def _departure_scv(m: QueueMetrics, st: _Station) -> float:
    """SCV of a station's departures (exact 1 for M/M/c by Burke; QNA otherwise)."""
    if st.service is None:
        return 1.0
    if st.poisson and _is_exponential(st.service) and math.isinf(st.capacity):
        return 1.0
    rho = min(1.0, m.utilization)
    c = max(1, st.servers)
    return 1.0 + (1.0 - rho**2) * (st.ca2 - 1.0) + rho**2 * (st.service.scv - 1.0) / math.sqrt(c)


def _decompose(sc: Any) -> Prediction:
    """Solve a feed-forward scenario station by station (exact where each piece is)."""
    st = _stations(sc)
    exact = True
    reasons: list[str] = []
    link_pred: dict[str, LinkPrediction] = {}
    # Incoming streams per queue: (rate, ca2, poisson).
    streams: dict[str, list[tuple[float, float, bool]]] = {q: [] for q in sc.queues}
    offered = 0.0
    size_of: dict[str, Distribution] = {}
    for pname, p in sc.producers.items():
        if p.stop is not None:
            return Prediction.none(f"producer {pname!r} stops at {p.stop:g} s: the arrivals "
                                   "are not stationary")
        ia = p.pace
        lam = _rate(ia)
        offered += lam
        size_of[pname] = p.size
        lp, lam_out, ca2_out, ok = _link(sc, pname, p.to, lam, ia.scv, p.size)
        exact &= ok
        if lp is not None:
            link_pred[f"{pname}->{p.to}"] = lp
        poisson = _is_exponential(ia) and (lp is None or lp.serialization is None)
        streams[p.to].append((lam_out, ca2_out, poisson))
    sizes = list(size_of.values())
    size = sizes[0] if sizes else Constant(1000.0)
    solved: dict[str, QueueMetrics] = {}
    for q in _order(sc):
        s = st[q]
        ins = streams[q]
        s.lam = sum(r for r, _, _ in ins)
        s.poisson = all(pz for _, _, pz in ins)
        s.ca2 = sum(r * c2 for r, c2, _ in ins) / s.lam if s.lam > 0 else 1.0
        if s.poisson:
            s.ca2 = 1.0
        if s.lam == 0:
            continue
        m, ok, why = _solve_station(s)
        if m is None:
            return Prediction.none(why)
        if not ok:
            exact = False
            why_approx = ("its arrivals are not Poisson" if not s.poisson
                          else "several servers with general service")
            reasons.append(f"{q}: {why_approx}, solved as {m.model}")
        solved[q] = m
        out_rate = m.throughput
        # Burke: departures of a stable M/M/c are Poisson; of a loss system, not.
        dep_poisson = (s.poisson and s.service is not None and _is_exponential(s.service)
                       and math.isinf(s.capacity) and m.stable)
        dep_ca2 = _departure_scv(m, s)
        for g in s.groups:
            c = sc.consumers[g]
            if c.to is None:
                continue
            share = c.count / s.servers if s.servers else 0.0
            if len(s.groups) > 1:
                exact = False
                reasons.append(f"{q}: split over competing groups taken as fixed shares")
            lp, lam_out, ca2_out, ok = _link(sc, g, c.to, out_rate * share, dep_ca2, size)
            exact &= ok
            if lp is not None:
                link_pred[f"{g}->{c.to}"] = lp
            pz = dep_poisson and (lp is None or lp.serialization is None)
            streams[c.to].append((lam_out, ca2_out, pz))
    latency, delivered = _end_to_end(sc, solved, link_pred, st)
    kind: Kind = "exact" if exact else "approximate"
    return Prediction(
        model=_model_name(sc, solved, link_pred),
        kind=kind,
        reason="; ".join(dict.fromkeys(reasons)) or _why_exact(sc, solved, link_pred),
        queues=solved,
        links=link_pred,
        latency_mean=latency,
        throughput=delivered,
        offered=offered,
    )


def _end_to_end(sc: Any, solved: Mapping[str, QueueMetrics],
                links: Mapping[str, LinkPrediction], st: Mapping[str, _Station]
                ) -> tuple[float, float]:
    """Mean latency of delivered messages (rate-weighted over paths) and delivered/s."""
    total_w = total_lat = 0.0

    def walk(q: str, rate: float, acc: float) -> None:
        nonlocal total_w, total_lat
        m = solved.get(q)
        if m is None:
            return
        keep = m.throughput / m.arrival_rate if m.arrival_rate > 0 else 0.0
        here = acc + m.sojourn_mean
        s = st[q]
        for g in s.groups:
            c = sc.consumers[g]
            share = c.count / s.servers
            if c.to is None:
                total_w += rate * keep * share
                total_lat += rate * keep * share * here
            else:
                lp = links.get(f"{g}->{c.to}")
                walk(c.to, rate * keep * share * (1 - (lp.loss if lp else 0.0)),
                     here + (lp.delay_mean if lp else 0.0))

    for pname, p in sc.producers.items():
        lp = links.get(f"{pname}->{p.to}")
        walk(p.to, _rate(p.pace) * (1 - (lp.loss if lp else 0.0)),
             lp.delay_mean if lp else 0.0)
    delivered = sum(
        m.throughput * sc.consumers[g].count / st[q].servers
        for q, m in solved.items() for g in st[q].groups if sc.consumers[g].to is None
    )
    lat = total_lat / total_w if total_w > 0 else math.nan
    return lat, delivered


def _model_name(sc: Any, solved: Mapping[str, QueueMetrics],
                links: Mapping[str, LinkPrediction]) -> str:
    models = list(dict.fromkeys(m.model for m in solved.values()))
    ser = [lp.serialization.model for lp in links.values() if lp.serialization is not None]
    if len(sc.queues) == 1 and not ser:
        return models[0] if models else "none"
    if len(sc.queues) > 1 and not ser and models and all(
        m.startswith("M/M/") and "/K" not in m and m.count("/") == 2 for m in models
    ):
        return "open Jackson network (M/M/c nodes)"
    parts = []
    if ser:
        parts.append("link " + "+".join(dict.fromkeys(ser)))
    parts.append(("network of " if len(sc.queues) > 1 else "") + "+".join(models))
    return ", ".join(parts)


def _why_exact(sc: Any, solved: Mapping[str, QueueMetrics],
               links: Mapping[str, LinkPrediction]) -> str:
    over = [q for q, m in solved.items() if not m.stable]
    if over:
        return ("overloaded (λ >= cμ at " + ", ".join(over) + "): no steady state; the "
                "queue grows at λ − cμ")
    if len(sc.queues) > 1:
        return ("Poisson arrivals and exponential service at every queue, infinite buffers: "
                "each stage is an independent M/M/c (Jackson)")
    if any(lp.serialization is not None for lp in links.values()):
        return "Poisson arrivals to the first link; its output feeds the queue"
    return "Poisson arrivals, FIFO, a stationary single station"


# --- matchers -----------------------------------------------------------------------------


def _no_consumers(sc: Any) -> Prediction | None:
    empty = [q for q in sc.queues if not any(c.source == q for c in sc.consumers.values())]
    fed = {p.to for p in sc.producers.values()} | {
        c.to for c in sc.consumers.values() if c.to is not None
    }
    for q in empty:
        if q in fed:
            return Prediction.none(f"queue {q!r} has no consumers: it only grows")
    return None


def _lossy_internal_block(sc: Any) -> Prediction | None:
    # A finite buffer inside a network couples the stations (losses or blocking change
    # the flows both ways): no product form.
    if len(sc.queues) > 1:
        for q, spec in sc.queues.items():
            if math.isfinite(spec.capacity):
                return Prediction.none(
                    f"queue {q!r} has a finite buffer inside a network: blocking or loss "
                    "couples the stations, no closed form"
                )
    return None


def _jackson(sc: Any) -> Prediction | None:
    """Every queue M/M/c with infinite buffers, Poisson producers, no finite-bandwidth links:
    solved with :func:`simq.theory.jackson` (the decomposition agrees; this cross-checks it)."""
    if len(sc.queues) < 2:
        return None
    if any(not _is_exponential(p.pace) for p in sc.producers.values()):
        return None
    if any(not _is_exponential(c.service) for c in sc.consumers.values()):
        return None
    if any(math.isfinite(spec.bandwidth) for spec in sc.links.values()):
        return None
    if any(math.isfinite(q.capacity) for q in sc.queues.values()):
        return None
    st = _stations(sc)
    if any(s.service is None or len(s.groups) != 1 for s in st.values() if s.groups):
        return None
    names = list(sc.queues)
    idx = {q: i for i, q in enumerate(names)}
    gamma = [0.0] * len(names)
    for pname, p in sc.producers.items():
        spec = sc.links.get(f"{pname}->{p.to}")
        gamma[idx[p.to]] += _rate(p.pace) * (1 - (spec.loss if spec else 0.0))
    if sum(gamma) <= 0:
        return None
    P = [[0.0] * len(names) for _ in names]
    mus, cs = [], []
    for q in names:
        s = st[q]
        if not s.groups:
            return None
        c = sc.consumers[s.groups[0]]
        mus.append(_rate(c.service))
        cs.append(c.count)
        if c.to is not None:
            spec = sc.links.get(f"{s.groups[0]}->{c.to}")
            P[idx[q]][idx[c.to]] = 1.0 - (spec.loss if spec else 0.0)
    net = networks.jackson(gamma, P, mus, cs)
    dec = _decompose(sc)
    if dec.kind == "none":
        return dec
    solved = {q: net.nodes[idx[q]] for q in names}
    return dataclasses.replace(
        dec, model="open Jackson network (M/M/c nodes)", kind="exact", queues=solved,
        reason=_why_exact(sc, solved, dec.links),
    )


def _feed_forward(sc: Any) -> Prediction | None:
    return _decompose(sc)


def _routed(sc: Any) -> Prediction | None:
    """Probabilistic routing (``to: {queue: p, ..., exit: p}``), feedback allowed.

    The rates come from the traffic equations λ = γ + Pᵀλ. With Poisson producers,
    exponential service at every station and infinite buffers this is an open Jackson
    network (exact, product form even with feedback); otherwise each station is solved as
    M/G/c at its λ (approximate: feedback breaks the Poisson property of the flows).
    """
    if not any(isinstance(c.to, Mapping) for c in sc.consumers.values()):
        return None
    names = list(sc.queues)
    idx = {q: i for i, q in enumerate(names)}
    st = _stations(sc)
    for q, s in st.items():
        if s.groups and (s.service is None or len(s.groups) != 1):
            return Prediction.none(f"queue {q!r}: several consumer groups with routing: "
                                   "no closed form here")
        if math.isfinite(s.capacity):
            return Prediction.none(f"queue {q!r} has a finite buffer in a routed network: "
                                   "no closed form")
    if any(math.isfinite(spec.bandwidth) for spec in sc.links.values()):
        return Prediction.none("finite-bandwidth links in a routed network: no closed form")
    gamma = [0.0] * len(names)
    offered = 0.0
    for pname, p in sc.producers.items():
        if p.stop is not None:
            return Prediction.none(f"producer {pname!r} stops: the arrivals are not stationary")
        if not _is_exponential(p.pace):
            return Prediction.none("non-Poisson producers in a routed network: no closed form")
        spec = sc.links.get(f"{pname}->{p.to}")
        rate = _rate(p.pace)
        offered += rate
        gamma[idx[p.to]] += rate * (1 - (spec.loss if spec else 0.0))
    P = [[0.0] * len(names) for _ in names]
    mus, cs = [], []
    exact = True
    for q in names:
        s = st[q]
        if not s.groups or s.service is None:
            return Prediction.none(f"queue {q!r} has no consumers: it only grows")
        g = s.groups[0]
        c = sc.consumers[g]
        mus.append(_rate(s.service))
        cs.append(s.servers)
        exact &= _is_exponential(s.service)
        to = c.to if isinstance(c.to, Mapping) else ({} if c.to is None else {c.to: 1.0})
        for dest, share in to.items():
            if dest in idx:
                spec = sc.links.get(f"{g}->{dest}")
                P[idx[q]][idx[dest]] += float(share) * (1 - (spec.loss if spec else 0.0))
    net = networks.jackson(gamma, P, mus, cs)
    solved: dict[str, QueueMetrics] = {}
    for q in names:
        lam = net.arrival_rates[idx[q]]
        s = st[q]
        assert s.service is not None
        if _is_exponential(s.service) or lam == 0:
            solved[q] = net.nodes[idx[q]]
        elif s.servers == 1:
            solved[q] = queues.mg1(lam, s.service.mean, s.service.scv)
        else:
            solved[q] = queues.ggc_allen_cunneen(lam, 1.0, s.service.mean, s.service.scv,
                                                 s.servers)
    external = sum(gamma)
    stable = all(m.stable for m in solved.values())
    # Little's law over the whole network; link delays add their mean per traversal.
    number = sum(m.number_mean for m in solved.values()) if stable else math.inf
    delay = sum(lp_rate * spec.latency.mean for lp_rate, spec in _link_flows(sc, net, idx))
    latency = (number + delay) / external if external > 0 else math.nan
    return Prediction(
        model="open Jackson network with routing" if exact else
        "network with routing (M/G/c per station)",
        kind="exact" if exact else "approximate",
        reason=("traffic equations λ = γ + Pᵀλ; Poisson arrivals and exponential service "
                "everywhere: product form, exact even with feedback") if exact else
        ("traffic equations λ = γ + Pᵀλ; stations with general service solved as M/G/c "
         "at their rate (feedback makes the flows non-Poisson)"),
        queues=solved,
        latency_mean=latency,
        throughput=net.throughput if stable else net.throughput,
        offered=offered,
    )


def _link_flows(sc: Any, net: Any, idx: Mapping[str, int]) -> list[tuple[float, Any]]:
    out = []
    for key, spec in sc.links.items():
        src, _, dst = key.partition("->")
        if src in sc.producers:
            out.append((_rate(sc.producers[src].pace), spec))
        elif src in sc.consumers:
            c = sc.consumers[src]
            to = c.to if isinstance(c.to, Mapping) else {c.to: 1.0}
            out.append((net.arrival_rates[idx[c.source]] * float(to.get(dst, 0.0)), spec))
    return out


register(Matcher("routing", _routed))
register(Matcher("no-consumers", _no_consumers))
register(Matcher("finite-buffer-in-network", _lossy_internal_block))
register(Matcher("jackson", _jackson))
register(Matcher("feed-forward", _feed_forward))


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


def _parts(scenario: Any) -> list[Any]:
    """Independent subsystems of a scenario (no message passes between them), each a
    scenario of its own, so each can be matched to its own model."""
    from simq.model.predict.patterns import split

    to_dict = getattr(scenario, "to_dict", None)
    if to_dict is None:
        return [scenario]
    raws = split(to_dict())
    if len(raws) < 2:
        return [scenario]
    try:
        return [type(scenario)(raw, base_dir=scenario.base_dir, source=scenario.source)
                for raw in raws]
    except Exception:  # a part that is not a valid scenario alone: match the whole
        return [scenario]


def predict(scenario: Any) -> Prediction:
    """The analytic model that applies to ``scenario`` and its predictions.

    Never raises for a valid scenario: an unrecognised feature or an unsupported
    combination gives ``Prediction.none(reason)``.
    """
    parts = _parts(scenario)
    if len(parts) > 1:
        from simq.model.predict.patterns import combine

        return combine([(", ".join(sorted(part.producers)) or "(no producers)", predict(part))
                        for part in parts])
    found = features(scenario)
    first_unknown: list[str] = []
    for m in MATCHERS:
        left = _unhandled(found, m.handles)
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
from simq.model.predict import patterns as _patterns  # noqa: E402,F401  (registers the pattern matchers)
