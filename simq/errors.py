"""Errors a user can act on."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario, an override or an option broke a rule.

    The message always names the path, the rule and the value, e.g.
    ``consumers.worker.count: must be an integer >= 1, got 0``.
    """

    def __init__(self, path: str, rule: str, value: object = ...) -> None:
        # The three parts are the exception's args, so that it can be rebuilt from them
        # (pickling across processes, SimPy re-raising an error from inside a run).
        super().__init__(path, rule, value)
        self.path = path
        self.rule = rule
        self.value = value

    def __str__(self) -> str:
        text = f"{self.path}: {self.rule}" if self.path else self.rule
        if self.value is not ...:
            text += f", got {self.value!r}"
        return text
