"""simq: discrete-event simulation of message queues, set against the formulas and theory."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from simq.analysis import compare
from simq.errors import ScenarioError
from simq.run import RecordsUnavailableError, RunResult, UnstableWarning, run
from simq.scenario import Scenario, load, loads
from simq.sweep import SweepResult, read_sweep, sweep

try:
    __version__ = version("simq")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "RecordsUnavailableError",
    "RunResult",
    "Scenario",
    "SweepResult",
    "ScenarioError",
    "UnstableWarning",
    "__version__",
    "compare",
    "load",
    "loads",
    "read_sweep",
    "run",
    "sweep",
]


def __getattr__(name: str) -> Any:
    # simq.plots pulls in matplotlib: imported on first use, not by every worker process.
    if name == "plots":
        return import_module("simq.plots")
    raise AttributeError(f"module 'simq' has no attribute {name!r}")
