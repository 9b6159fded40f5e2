"""The scenario: what a user describes, validated and complete (docs/reference/scenario.md).

Layered inside: :mod:`~simq.scenario.types` (validated value types), the specs
(:mod:`~simq.scenario.workload`, :mod:`~simq.scenario.reliability`,
:mod:`~simq.scenario.components`), :mod:`~simq.scenario.model` (the whole file),
:mod:`~simq.scenario.checks` (rules across components), :mod:`~simq.scenario.io` (reading,
overrides, error messages) and :mod:`~simq.scenario.scenario` (the :class:`Scenario`).
"""

from simq.scenario.components import EXIT, ConsumerSpec, ProducerSpec
from simq.scenario.io import parse_override
from simq.scenario.model import Model
from simq.scenario.scenario import Scenario, load, loads

__all__ = ["EXIT", "ConsumerSpec", "Model", "ProducerSpec", "Scenario", "load", "loads",
           "parse_override"]
