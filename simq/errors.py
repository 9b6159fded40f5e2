"""Errors a user can act on."""

from __future__ import annotations


class ScenarioError(ValueError):
    """A scenario, an override or an option broke a rule.

    The message always names the path, the rule and the value, e.g.
    ``consumers.worker.count: must be an integer >= 1, got 0``.
    """

    def __init__(self, path: str, rule: str, value: object = ...) -> None:
        self.path = path
        self.rule = rule
        self.value = value
        text = f"{path}: {rule}" if path else rule
        if value is not ...:
            text += f", got {value!r}"
        super().__init__(text)
