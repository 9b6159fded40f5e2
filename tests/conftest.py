"""Shared fixtures: the smallest valid scenario, as a mapping each test may change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "run": {"until": 100.0, "seed": 1},
    "producers": {"app": {"to": "broker", "rate": 1.0}},
    "queues": {"broker": {}},
    "consumers": {"worker": {"from": "broker", "rate": 2.0}},
}


@pytest.fixture
def raw() -> dict[str, Any]:
    """A fresh copy of a small valid scenario mapping."""
    return copy.deepcopy(MINIMAL)
