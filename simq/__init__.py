"""simq: discrete-event simulation of message queues, set against the formulas and theory."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from simq.errors import ScenarioError
from simq.run import RecordsUnavailableError, RunResult, UnstableWarning, run
from simq.scenario import Scenario, load, loads
from simq.sweep import SweepResult, read_sweep, sweep

if TYPE_CHECKING:
    from simq.analysis import compare

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


# Imported on first use: these pull in pandas (and plots matplotlib), which a worker
# process or a streaming run does not need (about 100 MB of resident memory each).
# (A lazy name must differ from its module's: importing simq.sweep binds the module
# to the package attribute `sweep`, which is why sweep itself is imported above.)
_LAZY = {"compare": "simq.analysis", "plots": None}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'simq' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return import_module(f"simq.{name}")
    return getattr(import_module(module), name)
