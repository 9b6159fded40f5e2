"""Message keys: a producer's key distribution, and the partition a key goes to.

A key is text. A producer draws its messages' keys from ``keys: uniform(n=…)`` or
``keys: zipf(n=…, s=…)`` (the keys ``"0"`` … ``"n-1"``), or replays them from the ``key``
column of its trace file. A partitioned topic sends a message with a key to partition
``murmur2(key) mod partitions`` — Kafka's default partitioner, so a key lands where it
would in Kafka — and a message without one by the topic's own ``key`` distribution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = ["KeyDist", "KeySpec", "key_shares", "murmur2", "partition_of", "trace_shares"]

_SPEC = re.compile(r"^\s*(uniform|zipf)\s*\((.*)\)\s*$")
_ARG = re.compile(r"^\s*(n|s)\s*=\s*([^,=\s]+)\s*$")


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``),
    as an unsigned int: stable across runs and machines, unlike Python's salted hash."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    n = len(data)
    h = (0x9747B28C ^ n) & mask
    for i in range(0, n - n % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = n - n % 4
    rest = n % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def partition_of(key: str, partitions: int) -> int:
    """The partition of a keyed message: Kafka's ``toPositive(murmur2(utf-8 bytes)) % n``."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class KeySpec:
    """A producer's key distribution over the keys ``"0"`` … ``"n-1"``: ``uniform`` or
    ``zipf`` (key k with probability proportional to 1 / (k + 1)^s)."""

    kind: str
    n: int
    s: float = 0.0

    def probabilities(self) -> list[float]:
        if self.kind == "uniform":
            return [1.0 / self.n] * self.n
        weights = [1.0 / (k + 1) ** self.s for k in range(self.n)]
        total = sum(weights)
        return [w / total for w in weights]

    def names(self) -> list[str]:
        return [str(k) for k in range(self.n)]

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform(n={self.n})"
        return f"zipf(n={self.n}, s={self.s:g})"


@lru_cache(maxsize=64)
def key_shares(spec: KeySpec, partitions: int) -> tuple[float, ...]:
    """The share of messages each partition gets under a key distribution."""
    out = [0.0] * partitions
    for name, p in zip(spec.names(), spec.probabilities(), strict=True):
        out[partition_of(name, partitions)] += p
    return tuple(out)


@lru_cache(maxsize=64)
def trace_shares(keys: tuple[str, ...], partitions: int, unkeyed: tuple[float, ...]
                 ) -> tuple[float, ...]:
    """The share of a trace's messages each partition gets (a row without a key by
    ``unkeyed``)."""
    out = [0.0] * partitions
    for text in keys:
        if text:
            out[partition_of(text, partitions)] += 1.0
        else:
            for i, u in enumerate(unkeyed):
                out[i] += u
    return tuple(x / len(keys) for x in out)


def _parse(v: Any) -> Any:
    if v is None or isinstance(v, KeySpec):
        return v
    rule = "uniform(n=…) or zipf(n=…, s=…) with n an integer >= 1 and s > 0"
    m = _SPEC.match(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(f"must be {rule}, got {v!r}")
    args: dict[str, str] = {}
    for part in m.group(2).split(","):
        a = _ARG.match(part)
        if a is None or a.group(1) in args:
            raise ValueError(f"must be {rule}, got {v!r}")
        args[a.group(1)] = a.group(2)
    kind = m.group(1)
    want = {"n"} if kind == "uniform" else {"n", "s"}
    if set(args) != want:
        raise ValueError(f"{kind} keys take {' and '.join(sorted(want))}, got {v!r}")
    try:
        n = float(args["n"])
        s = float(args.get("s", "0"))
    except ValueError:
        raise ValueError(f"must be {rule}, got {v!r}") from None
    if n != int(n) or n < 1 or n > 1_000_000:
        raise ValueError(f"n (the number of keys) must be an integer in [1, 1e6], got {v!r}")
    if kind == "zipf" and not s > 0:
        raise ValueError(f"zipf needs s > 0, got {v!r}")
    return KeySpec(kind, int(n), s)


#: A producer's ``keys``: text such as ``zipf(n=1000, s=1.1)``, read into a :class:`KeySpec`.
KeyDist = Annotated[KeySpec, BeforeValidator(_parse), WithJsonSchema({
    "type": "string", "description": "uniform(n=...) or zipf(n=..., s=...)"})]
