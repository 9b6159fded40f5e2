"""Queueing theory as plain functions over numbers; knows nothing of SimPy or scenarios.

Rates are per second and times in seconds. Bad arguments raise ``ValueError`` naming the
argument, the rule and the value; an unstable system is a result (``stable=False``).
"""

from __future__ import annotations

from . import document, metrics, networks, queues
from .document import *  # noqa: F403  (each submodule's __all__ lists its public names)
from .metrics import *  # noqa: F403
from .networks import *  # noqa: F403
from .queues import *  # noqa: F403

__all__ = [*document.__all__, *metrics.__all__, *networks.__all__, *queues.__all__]
