"""Matchers for open networks of stations, read off the traffic model
(:func:`simq.model.network.network`): a queue nobody serves, a finite buffer inside a
network, open Jackson networks (with or without probabilistic routing) and the
station-by-station decomposition of any other feed-forward network.

One cohesive thing over 400 lines: the decomposition and the two product-form cases it is
checked against share the station, link and end-to-end arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from simq.dists import Constant, Distribution, Exponential
from simq.model.network import Network, Station, network
from simq.model.predict.base import Kind, LinkPrediction, Prediction
from simq.scenario import Scenario
from simq.theory import networks, queues
from simq.theory.metrics import QueueMetrics

__all__ = ["feed_forward", "finite_buffer_in_network", "jackson", "no_consumers", "routed"]


def _is_exponential(d: Distribution) -> bool:
    return isinstance(d, Exponential)


def _rate(d: Distribution) -> float:
    return 1.0 / d.mean if d.mean > 0 else math.inf


def _order(sc: Scenario) -> list[str]:
    """Queues in an order where every upstream queue comes first (no cycles: validated)."""
    upstream: dict[str, set[str]] = {q: set() for q in sc.queues}
    for c in sc.consumers.values():
        if c.to is not None:
            assert isinstance(c.to, str)  # a routing table is the routed matcher's
            upstream[c.to].add(c.source)
    done: list[str] = []
    while len(done) < len(upstream):
        for q in upstream:
            if q not in done and upstream[q] <= set(done):
                done.append(q)
    return done


def _link(sc: Scenario, src: str, dst: str, lam: float, ca2: float, size: Distribution
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


@dataclasses.dataclass(frozen=True)
class _Inflow:
    """What reaches a station: its rate, the interarrival SCV, whether it is Poisson."""

    lam: float
    ca2: float
    poisson: bool


def _solve_station(st: Station, into: _Inflow) -> tuple[QueueMetrics | None, bool, str]:
    """(metrics, exact, reason-if-none) for one station given its arrivals."""
    if not st.groups:
        return None, False, f"queue {st.name!r} has no consumers"
    if st.service is None:
        return None, False, (f"queue {st.name!r} is drained by consumer groups with different "
                             "service times: heterogeneous servers have no closed form here")
    c, s, lam = st.servers, st.service, into.lam
    mu = _rate(s)
    finite = math.isfinite(st.buffer)
    if finite and st.overflow == "block":
        return None, False, (f"queue {st.name!r} blocks its senders when full: an open-loop "
                             "producer held back has no closed form here")
    if finite and st.buffer == 0:
        if not into.poisson:
            return None, False, f"queue {st.name!r}: G/G/c/c loss with non-Poisson arrivals"
        # Erlang B does not depend on the service distribution beyond its mean.
        return queues.mmcc(lam, mu, c), True, ""
    if finite:
        if not (into.poisson and _is_exponential(s)):
            return None, False, (f"queue {st.name!r}: a finite buffer with general service or "
                                 "arrivals (G/G/c/K): no closed form")
        m = queues.mmck(lam, mu, c, c + int(st.buffer))
        if st.overflow == "drop-oldest":
            # The number present evolves as in M/M/c/K, so blocking and Lq are the same;
            # the waits of served messages are not (the oldest leave early).
            m = dataclasses.replace(m, wait_mean=math.nan, sojourn_mean=math.nan,
                                    note=m.note + "; drop-oldest: waits not predicted")
        return m, True, ""
    if into.poisson and _is_exponential(s):
        return queues.mmc(lam, mu, c), True, ""
    if into.poisson and c == 1:
        if isinstance(s, Constant):
            return queues.md1(lam, mu), True, ""
        return queues.mg1(lam, s.mean, s.scv), True, ""
    if c == 1:
        return queues.gg1_kingman(lam, into.ca2, s.mean, s.scv), False, ""
    return queues.ggc_allen_cunneen(lam, into.ca2, s.mean, s.scv, c), False, ""


def _departure_scv(m: QueueMetrics, st: Station, into: _Inflow) -> float:
    """SCV of a station's departures (exact 1 for M/M/c by Burke; QNA otherwise)."""
    if st.service is None:
        return 1.0
    if into.poisson and _is_exponential(st.service) and math.isinf(st.buffer):
        return 1.0
    rho = min(1.0, m.utilization)
    c = max(1, st.servers)
    return (1.0 + (1.0 - rho**2) * (into.ca2 - 1.0)
            + rho**2 * (st.service.scv - 1.0) / math.sqrt(c))


def _decompose(sc: Scenario) -> Prediction:
    """Solve a feed-forward scenario station by station (exact where each piece is).

    The stations and the producers' rates come from the traffic model; what flows on from
    a station is what it serves (a finite buffer's losses and an overload's cap included),
    with the SCV of its departures, which the traffic equations alone do not give.
    """
    net = network(sc)
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
        assert ia is not None  # an open producer (the closed ones are the patterns')
        lam = net.rates[pname]
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
        s = net.stations[q]
        ins = streams[q]
        lam = sum(r for r, _, _ in ins)
        poisson = all(pz for _, _, pz in ins)
        ca2 = sum(r * c2 for r, c2, _ in ins) / lam if lam > 0 and not poisson else 1.0
        if lam == 0:
            continue
        into = _Inflow(lam, ca2, poisson)
        m, ok, why = _solve_station(s, into)
        if m is None:
            return Prediction.none(why)
        if not ok:
            exact = False
            why_approx = ("its arrivals are not Poisson" if not poisson
                          else "several servers with general service")
            reasons.append(f"{q}: {why_approx}, solved as {m.model}")
        solved[q] = m
        out_rate = m.throughput
        # Burke: departures of a stable M/M/c are Poisson; of a loss system, not.
        dep_poisson = (poisson and s.service is not None and _is_exponential(s.service)
                       and math.isinf(s.buffer) and m.stable)
        dep_ca2 = _departure_scv(m, s, into)
        for g in s.group_names:
            c = sc.consumers[g]
            if c.to is None:
                continue
            assert isinstance(c.to, str)
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
    latency, delivered = _end_to_end(sc, net, solved, link_pred)
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


def _end_to_end(sc: Scenario, net: Network, solved: Mapping[str, QueueMetrics],
                links: Mapping[str, LinkPrediction]) -> tuple[float, float]:
    """Mean latency of delivered messages (rate-weighted over paths) and delivered/s."""
    total_w = total_lat = 0.0

    def walk(q: str, rate: float, acc: float) -> None:
        nonlocal total_w, total_lat
        m = solved.get(q)
        if m is None:
            return
        keep = m.throughput / m.arrival_rate if m.arrival_rate > 0 else 0.0
        here = acc + m.sojourn_mean
        s = net.stations[q]
        for g in s.group_names:
            c = sc.consumers[g]
            share = c.count / s.servers
            if c.to is None:
                total_w += rate * keep * share
                total_lat += rate * keep * share * here
            else:
                assert isinstance(c.to, str)
                lp = links.get(f"{g}->{c.to}")
                walk(c.to, rate * keep * share * (1 - (lp.loss if lp else 0.0)),
                     here + (lp.delay_mean if lp else 0.0))

    for pname, p in sc.producers.items():
        lp = links.get(f"{pname}->{p.to}")
        walk(p.to, net.rates[pname] * (1 - (lp.loss if lp else 0.0)),
             lp.delay_mean if lp else 0.0)
    delivered = sum(
        m.throughput * sc.consumers[g].count / net.stations[q].servers
        for q, m in solved.items() for g in net.stations[q].group_names
        if sc.consumers[g].to is None
    )
    lat = total_lat / total_w if total_w > 0 else math.nan
    return lat, delivered


def _model_name(sc: Scenario, solved: Mapping[str, QueueMetrics],
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


def _why_exact(sc: Scenario, solved: Mapping[str, QueueMetrics],
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


def no_consumers(sc: Scenario) -> Prediction | None:
    """None with the reason when a queue that is fed has nobody taking from it."""
    empty = [q for q in sc.queues if not any(c.source == q for c in sc.consumers.values())]
    fed = {p.to for p in sc.producers.values()} | {
        dest for c in sc.consumers.values() for dest, _ in c.routes if dest is not None
    }
    for q in empty:
        if q in fed:
            return Prediction.none(f"queue {q!r} has no consumers: it only grows")
    return None


def finite_buffer_in_network(sc: Scenario) -> Prediction | None:
    """None with the reason for a finite buffer inside a network: losses or blocking
    couple the stations both ways, so there is no product form."""
    if len(sc.queues) > 1:
        for q, spec in sc.queues.items():
            if math.isfinite(spec.capacity):
                return Prediction.none(
                    f"queue {q!r} has a finite buffer inside a network: blocking or loss "
                    "couples the stations, no closed form"
                )
    return None


def _jackson_inputs(net: Network) -> tuple[list[float], list[list[float]], list[float],
                                           list[int]]:
    """External arrivals, routing, service rate and servers per station, for
    :func:`simq.theory.jackson`, all from the traffic model."""
    mus = []
    for q in net.names:
        service = net.stations[q].service
        assert service is not None
        mus.append(_rate(service))
    return ([float(x) for x in net.external], net.arrived.tolist(), mus,
            [net.stations[q].servers for q in net.names])


def jackson(sc: Scenario) -> Prediction | None:
    """Every queue M/M/c with infinite buffers, Poisson producers, no finite-bandwidth links:
    solved with :func:`simq.theory.jackson` (the decomposition agrees; this cross-checks it)."""
    if len(sc.queues) < 2:
        return None
    if any(p.pace is None or not _is_exponential(p.pace)
           for p in sc.producers.values()):
        return None
    if any(not _is_exponential(c.service) for c in sc.consumers.values()):
        return None
    if any(math.isfinite(spec.bandwidth) for spec in sc.links.values()):
        return None
    if any(math.isfinite(q.capacity) for q in sc.queues.values()):
        return None
    net = network(sc)
    if any(not s.groups or s.service is None or len(s.groups) != 1
           for s in net.stations.values()):
        return None
    gamma, P, mus, cs = _jackson_inputs(net)
    if sum(gamma) <= 0:
        return None
    solution = networks.jackson(gamma, P, mus, cs)
    dec = _decompose(sc)
    if dec.kind == "none":
        return dec
    solved = {q: solution.nodes[i] for i, q in enumerate(net.names)}
    return dataclasses.replace(
        dec, model="open Jackson network (M/M/c nodes)", kind="exact", queues=solved,
        reason=_why_exact(sc, solved, dec.links),
    )


def feed_forward(sc: Scenario) -> Prediction | None:
    """Any other feed-forward network, station by station (see :func:`_decompose`)."""
    return _decompose(sc)


def routed(sc: Scenario) -> Prediction | None:
    """Probabilistic routing (``to: {queue: p, ..., exit: p}``), feedback allowed.

    The rates come from the traffic equations λ = γ + Pᵀλ of the traffic model. With
    Poisson producers, exponential service at every station and infinite buffers this is
    an open Jackson network (exact, product form even with feedback); otherwise each
    station is solved as M/G/c at its λ (approximate: feedback breaks the Poisson property
    of the flows).
    """
    if not any(isinstance(c.to, Mapping) for c in sc.consumers.values()):
        return None
    net = network(sc)
    for q, s in net.stations.items():
        if s.groups and (s.service is None or len(s.groups) != 1):
            return Prediction.none(f"queue {q!r}: several consumer groups with routing: "
                                   "no closed form here")
        if math.isfinite(s.buffer):
            return Prediction.none(f"queue {q!r} has a finite buffer in a routed network: "
                                   "no closed form")
    if any(math.isfinite(spec.bandwidth) for spec in sc.links.values()):
        return Prediction.none("finite-bandwidth links in a routed network: no closed form")
    for pname, p in sc.producers.items():
        if p.stop is not None:
            return Prediction.none(f"producer {pname!r} stops: the arrivals are not stationary")
        if p.pace is None or not _is_exponential(p.pace):
            return Prediction.none("non-Poisson producers in a routed network: no closed form")
    for q, s in net.stations.items():
        if not s.groups or s.service is None:
            return Prediction.none(f"queue {q!r} has no consumers: it only grows")
    gamma, P, mus, cs = _jackson_inputs(net)
    solution = networks.jackson(gamma, P, mus, cs)
    solved: dict[str, QueueMetrics] = {}
    exact = True
    for i, q in enumerate(net.names):
        lam = solution.arrival_rates[i]
        s = net.stations[q]
        assert s.service is not None
        exact &= _is_exponential(s.service)
        if _is_exponential(s.service) or lam == 0:
            solved[q] = solution.nodes[i]
        elif s.servers == 1:
            solved[q] = queues.mg1(lam, s.service.mean, s.service.scv)
        else:
            solved[q] = queues.ggc_allen_cunneen(lam, 1.0, s.service.mean, s.service.scv,
                                                 s.servers)
    external = sum(gamma)
    stable = all(m.stable for m in solved.values())
    # Little's law over the whole network; link delays add their mean per traversal.
    number = sum(m.number_mean for m in solved.values()) if stable else math.inf
    delay = sum(rate * latency
                for rate, latency in _link_flows(sc, net, solution.arrival_rates))
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
        # Overloaded stations pass on only what they serve: theory's throughput is that.
        throughput=solution.throughput,
        offered=sum(net.rates.values()),
    )


def _link_flows(sc: Scenario, net: Network, arrivals: tuple[float, ...]
                ) -> list[tuple[float, float]]:
    """(messages/s entering, mean latency) for every link of a routed network."""
    out: list[tuple[float, float]] = []
    for key, spec in sc.links.items():
        src, _, dst = key.partition("->")
        if src in sc.producers:
            out.append((net.rates[src], spec.latency.mean))
        elif src in sc.consumers:
            share = sum(p for dest, p in sc.consumers[src].routes if dest == dst)
            out.append((arrivals[net.index(sc.consumers[src].source)] * share,
                        spec.latency.mean))
    return out
