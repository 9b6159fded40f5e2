"""Import heavy libraries on first use, so that `import simq` stays light.

pandas alone is about 100 MB of resident memory; a streaming run of millions of messages
needs none of it, and neither does a worker process of a sweep until it builds a table.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in that imports the real module at the first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._target: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._target is None:
            self._target = importlib.import_module(self.__name__)
        return getattr(self._target, attr)
