"""SimPy components and the model builder. Knows nothing of pandas, plots or files."""

from simq.engine.core import Message, Streams
from simq.engine.simulation import Outcome, Simulation

__all__ = ["Message", "Outcome", "Simulation", "Streams"]
