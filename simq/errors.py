"""Errors a user can act on."""

from __future__ import annotations

# An error quotes what it refused, never more than this much of it: a value can be a
# 400-digit number, an expanded YAML alias bomb or a line of a file that must not be echoed.
SHOWN = 200


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`SHOWN` characters with the full length said."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr (Python's digit limit)
        return f"<a number of more than {SHOWN} digits>"
    if len(text) <= SHOWN:
        return text
    return f"{text[: SHOWN - 1]}… ({len(text):,} characters)"


class ScenarioError(ValueError):
    """A scenario, an override or an option broke a rule.

    The message always names the path, the rule and the value, e.g.
    ``consumers.worker.count: must be an integer >= 1, got 0``.
    """

    def __init__(self, path: str, rule: str, value: object = ...,
                 also: tuple[str, ...] = ()) -> None:
        # The parts are the exception's args, so that it can be rebuilt from them
        # (pickling across processes, SimPy re-raising an error from inside a run).
        super().__init__(path, rule, value, also)
        self.path = path
        self.rule = rule
        self.value = value
        #: The other errors found in the same pass (each a whole message): a scenario with
        #: three mistakes says so at once instead of one per try.
        self.also = tuple(also)

    def __str__(self) -> str:
        text = f"{self.path}: {self.rule}" if self.path else self.rule
        if self.value is not ...:
            text += f", got {shown(self.value)}"
        if self.also:
            more = "; ".join(self.also[:ALSO_SHOWN])
            rest = len(self.also) - ALSO_SHOWN
            text += (f" (and {len(self.also)} more: {more}"
                     + (f"; {rest} other{'s' if rest > 1 else ''}" if rest > 0 else "") + ")")
        return text


ALSO_SHOWN = 3  # the other errors of one pass quoted in a message


class MemoryLimitError(ScenarioError):
    """A run's memory grew past ``run.max_memory`` (or the process past three quarters of
    the machine's memory) and it was stopped before the machine ran out.

    A user error like any other (the CLI exits 2): the message names how far memory grew,
    what was waiting then and what to change (``run.records: summary``, a shorter run,
    more consumers).
    """
