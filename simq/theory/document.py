"""The source document's three formulas, as written and as a queueing theorist reads them.

The source (in Chinese) states: throughput = processing rate / generation rate; latency =
processing time + transmission time; queue length = generation rate − processing rate.
Each ``*_as_written`` function computes the text literally; each ``*_reading`` function is
the quantity the text is trying to describe. ``proc_rate`` is the processing capacity of the
whole consumer group (c·μ), ``gen_rate`` the offered rate λ, both in messages per second.
"""

from __future__ import annotations

from . import _check

__all__ = [
    "FORMULAS",
    "latency_as_written",
    "latency_reading",
    "queue_growth_reading",
    "queue_length_as_written",
    "throughput_as_written",
    "throughput_reading",
]

FORMULAS: dict[str, dict[str, str]] = {
    "throughput": {
        "text": "吞吐量 Throughput = 消息处理速率 / 消息生成速率",
        "english": "Throughput = message processing rate / message generation rate",
        "reading": (
            "As written it is a dimensionless ratio, not messages per second. In steady state "
            "the delivered rate is min(λ, c·μ): every message is delivered below saturation, "
            "and the consumers' capacity c·μ is delivered above it."
        ),
    },
    "latency": {
        "text": "延迟 Latency = 处理时间 + 传输时间",
        "english": "Latency = processing time + transmission time",
        "reading": (
            "True only when nothing queues. The measured latency adds the waiting time Wq, "
            "which grows without bound as ρ → 1 (M/M/1: Wq = ρ/(μ − λ))."
        ),
    },
    "queue_length": {
        "text": "队列长度 Queue Length = 消息生成速率 - 消息处理速率",
        "english": "Queue Length = message generation rate - message processing rate",
        "reading": (
            "A rate, not a length: max(0, λ − c·μ) is the growth rate of the queue in "
            "messages per second, right in overload. Below saturation it predicts zero or a "
            "negative length, yet the queue is non-empty on average (M/M/1: Lq = ρ²/(1 − ρ))."
        ),
    },
}


def throughput_as_written(gen_rate: float, proc_rate: float) -> float:
    """The text's throughput: processing rate / generation rate (a ratio, unitless)."""
    gen = _check.positive("gen_rate", gen_rate)
    proc = _check.nonnegative("proc_rate", proc_rate)
    return proc / gen


def throughput_reading(gen_rate: float, proc_rate: float) -> float:
    """Delivered messages per second in steady state: min(generation, processing rate)."""
    gen = _check.nonnegative("gen_rate", gen_rate)
    proc = _check.nonnegative("proc_rate", proc_rate)
    return min(gen, proc)


def latency_as_written(processing: float, transmission: float) -> float:
    """The text's latency: processing time + transmission time (seconds)."""
    return _check.nonnegative("processing", processing) + _check.nonnegative(
        "transmission", transmission
    )


def latency_reading(processing: float, transmission: float, waiting: float) -> float:
    """End-to-end latency with queueing: processing + transmission + waiting time (Wq).

    The gap to :func:`latency_as_written` is exactly the waiting time; it may be
    ``math.inf`` for an unstable queue.
    """
    wait = _check.number("waiting", waiting)
    if wait < 0.0:
        raise _check.fail("waiting", "must be >= 0", waiting)
    return latency_as_written(processing, transmission) + wait


def queue_length_as_written(gen_rate: float, proc_rate: float) -> float:
    """The text's queue length: generation rate − processing rate (may be negative)."""
    return _check.nonnegative("gen_rate", gen_rate) - _check.nonnegative("proc_rate", proc_rate)


def queue_growth_reading(gen_rate: float, proc_rate: float) -> float:
    """What the text's queue length really is: the growth rate max(0, λ − cμ), messages/s."""
    return max(0.0, queue_length_as_written(gen_rate, proc_rate))
