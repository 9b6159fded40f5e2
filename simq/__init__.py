"""simq: discrete-event simulation of message queues, set against the formulas and theory."""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.util import find_spec
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simq.analysis.compare import compare
    from simq.errors import MemoryLimitError, ScenarioError
    from simq.explorer import explore
    from simq.run import RecordsUnavailableError, RunResult, UnstableWarning, run
    from simq.scenario import Scenario, load, loads
    from simq.sweep import SweepResult, read_sweep, sweep

    __version__: str

__all__ = [
    "MemoryLimitError",
    "Prediction",
    "RecordsUnavailableError",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "SweepResult",
    "UnstableWarning",
    "__version__",
    "compare",
    "explore",
    "load",
    "loads",
    "predict",
    "read_sweep",
    "run",
    "sweep",
]

# Every public name is imported on first use, so that `import simq` (and with it
# `simq --version`, `simq --help`) costs milliseconds: simq.run alone pulls in numpy,
# scipy, pydantic and SimPy, and a table or a plot pandas and matplotlib (about 100 MB of
# resident memory, which a sweep worker or a streaming run does not need).
_LAZY = {
    "RecordsUnavailableError": "simq.run",
    "RunResult": "simq.run",
    "UnstableWarning": "simq.run",
    "run": "simq.run",
    "ScenarioError": "simq.errors",
    "MemoryLimitError": "simq.errors",
    "Scenario": "simq.scenario",
    "load": "simq.scenario",
    "loads": "simq.scenario",
    "SweepResult": "simq.sweep",
    "read_sweep": "simq.sweep",
    "sweep": "simq.sweep",
    "compare": "simq.analysis.compare",
    "explore": "simq.explorer",
    "predict": "simq.model.predict",
    "Prediction": "simq.model.predict",
}
# Functions named like the module that defines them. Importing a submodule binds it to
# the package attribute of the same name (the import system does `simq.run = <module>`),
# which would hide the function simq.run once anything imported simq.run the module.
_SHADOWED = ("run", "sweep")


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from simq._version import version

        value: Any = version()
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif not name.startswith("_") and find_spec(f"simq.{name}") is not None:
        value = import_module(f"simq.{name}")  # a subpackage: simq.theory, simq.plots, ...
    else:
        raise AttributeError(f"module 'simq' has no attribute {name!r}")
    if name not in _SHADOWED:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """The simq module, whose function attributes survive the import of their modules."""


_REPLACED: dict[str, Any] = {}


def _shadowed(name: str) -> property:
    def get(self: ModuleType) -> Any:
        if name in _REPLACED:
            return _REPLACED[name]
        return getattr(import_module(_LAZY[name]), name)

    def set_(self: ModuleType, value: Any) -> None:
        # The import system binding the submodule: the function keeps the name. Anything
        # else (a test's monkeypatch.setattr(simq, "run", fake)) replaces it.
        if isinstance(value, ModuleType) and value.__name__ == f"simq.{name}":
            return
        _REPLACED[name] = value

    return property(get, set_)


for _name in _SHADOWED:
    setattr(_Package, _name, _shadowed(_name))
sys.modules[__name__].__class__ = _Package
