"""The scenario: what a user describes, validated and complete (docs/reference/scenario.md)."""

from simq.scenario.spec import (
    EXIT,
    ConsumerSpec,
    Model,
    ProducerSpec,
    Scenario,
    load,
    loads,
    parse_override,
)

__all__ = ["EXIT", "ConsumerSpec", "Model", "ProducerSpec", "Scenario", "load", "loads",
           "parse_override"]
