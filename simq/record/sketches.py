"""Statistics of a long series in bounded memory, for streaming records: percentiles
from a log-bucketed histogram (:class:`LogHistogram`), the MSER-5 warm-up from batch
means streamed in send order (:class:`StreamedMser`)."""

from __future__ import annotations

import math

import numpy as np

from simq.analysis.stats import mser

__all__ = ["HISTOGRAM_ERROR", "LogHistogram", "StreamedMser"]


# Buckets [LO·g^k, LO·g^(k+1)) with g = 1 + REL_WIDTH. A quantile is read as the bucket's
# geometric midpoint, at most a factor sqrt(g) from any value in the bucket.
REL_WIDTH = 0.01
HISTOGRAM_ERROR = math.sqrt(1 + REL_WIDTH) - 1  # 0.499%: relative error of a percentile
_LO, _HI = 1e-9, 1e12  # seconds; values outside fall in the end buckets (min/max are exact)
_LOG_G = math.log1p(REL_WIDTH)
_NBUCKETS = math.ceil(math.log(_HI / _LO) / _LOG_G)


class LogHistogram:
    """Non-negative values (times) in logarithmic buckets, with exact count, sum, min, max.

    ``quantile`` matches ``numpy.quantile`` (linear interpolation between order
    statistics) within a relative error of ``HISTOGRAM_ERROR`` for values between 1 ns
    and 1e12 s: each order statistic is replaced by its bucket's midpoint, and the
    interpolation keeps the error of its two ends. Exact zeros (a hand-over) are exact.
    """

    def __init__(self, buckets: bool = True) -> None:
        # Without buckets only count, sum, min and max are kept (full records read
        # percentiles from every value instead).
        self.buckets = buckets
        self.zeros = 0
        self.counts: np.ndarray | None = None  # allocated with the first positive value
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        self.n += len(x)
        self.total += float(x.sum())
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        if not self.buckets:
            return
        pos = x[x > 0]
        self.zeros += len(x) - len(pos)
        if len(pos) == 0:
            return
        k = np.floor(np.log(pos / _LO) / _LOG_G).astype(np.int64)
        np.clip(k, 0, _NBUCKETS - 1, out=k)
        if self.counts is None:
            self.counts = np.zeros(_NBUCKETS, dtype=np.int64)
        self.counts += np.bincount(k, minlength=_NBUCKETS)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def _order_stat(self, j: int, cum: np.ndarray) -> float:
        """The j-th smallest value (0-based), to within the bucket error."""
        if j < self.zeros:
            return 0.0
        k = int(np.searchsorted(cum, j - self.zeros, side="right"))
        mid = _LO * math.exp((k + 0.5) * _LOG_G)
        return min(max(mid, self.min), self.max)

    def quantile(self, q: float) -> float:
        if self.n == 0:
            return math.nan
        h = (self.n - 1) * q
        lo = math.floor(h)
        cum = np.cumsum(self.counts) if self.counts is not None else np.zeros(1, np.int64)
        a = self._order_stat(lo, cum)
        if h == lo:
            return a
        b = self._order_stat(lo + 1, cum)
        return a + (h - lo) * (b - a)


class StreamedMser:
    """MSER-5 over batch means that arrive in send order, in bounded memory.

    The series is cut into batches of 5 consecutive latencies, as :func:`simq.analysis.stats.mser`
    does; only each batch's mean and the send time of its first message are kept. When
    more than ``cap`` batch means are held, neighbours are averaged in pairs (batches of
    10, then 20, ...), so memory stays bounded however long the run. MSER on batch means
    of m > 5 is the same statistic with a coarser cut (White 1997 uses m = 5 as a floor,
    not a requirement); up to ``5 * cap`` delivered messages the result is exactly MSER-5.
    """

    def __init__(self, cap: int = 1 << 16) -> None:
        self.cap = cap
        self.size = 5  # messages per kept batch mean
        self.means: list[float] = []
        self.first: list[float] = []  # send time of each batch's first message
        self.first_sent = math.nan  # of the series' first message
        self._rest_lat = np.empty(0)
        self._rest_sent = np.empty(0)
        self._pm = np.empty(0)  # 5-batch means not yet making up a batch of `size`
        self._pf = np.empty(0)

    def add(self, latency: np.ndarray, sent: np.ndarray) -> None:
        """The next latencies of the series (delivered messages, in send order)."""
        if len(sent) and math.isnan(self.first_sent):
            self.first_sent = float(sent[0])
        lat = np.concatenate([self._rest_lat, latency])
        snt = np.concatenate([self._rest_sent, sent])
        k = len(lat) // 5
        if k:
            self._push(lat[: 5 * k].reshape(k, 5).mean(axis=1), snt[: 5 * k: 5])
        self._rest_lat, self._rest_sent = lat[5 * k:], snt[5 * k:]

    def _push(self, means: np.ndarray, first: np.ndarray) -> None:
        pm, pf = np.concatenate([self._pm, means]), np.concatenate([self._pf, first])
        r = self.size // 5
        k = len(pm) // r
        if k:
            self.means.extend(pm[: k * r].reshape(k, r).mean(axis=1).tolist())
            self.first.extend(pf[: k * r: r].tolist())
        self._pm, self._pf = pm[k * r:], pf[k * r:]
        while len(self.means) > self.cap:
            even = len(self.means) // 2 * 2
            m = np.asarray(self.means[:even]).reshape(-1, 2).mean(axis=1).tolist()
            f = self.first[:even:2]
            if even < len(self.means):
                # An odd last batch waits for its partner: back to pending as r equal
                # 5-batch means (the same weight in the next average).
                self._pm = np.concatenate([np.full(r, self.means[-1]), self._pm])
                self._pf = np.concatenate([np.full(r, self.first[-1]), self._pf])
            self.means, self.first = m, f
            self.size *= 2
            r = self.size // 5

    def warmup(self) -> float:
        """The send time of the first message kept (0 with no message at all), as
        :func:`simq.run.auto_warmup` reads MSER's cut."""
        if math.isnan(self.first_sent):
            return 0.0
        cut = mser(np.asarray(self.means), 1)
        return float(self.first[cut]) if cut > 0 else self.first_sent
