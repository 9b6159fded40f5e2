"""simq: discrete-event simulation of message queues, set against the formulas and theory."""

from importlib.metadata import PackageNotFoundError, version

from simq.errors import ScenarioError
from simq.run import RecordsUnavailableError, RunResult, UnstableWarning, run
from simq.scenario import Scenario, load, loads

try:
    __version__ = version("simq")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "RecordsUnavailableError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "UnstableWarning",
    "__version__",
    "load",
    "loads",
    "run",
]
