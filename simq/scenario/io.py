"""Reading scenarios and reporting what is wrong with them.

YAML (a safe loader that reads ``1e8`` as a number and refuses a key given twice) and TOML
text become plain mappings; ``rate:`` shorthands are expanded; dotted-path overrides
(``--set producers.app.rate=0.9``) are applied to the raw mapping; pydantic's report of a
broken rule becomes one :class:`~simq.errors.ScenarioError` naming the path, the rule and
the value, with a suggestion for a misspelt key.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from simq.dists import exponential_rate
from simq.errors import ScenarioError
from simq.scenario.components import MODES
from simq.scenario.model import Model
from simq.scenario.workload import prepare as _prepare_peak

__all__ = ["did_you_mean", "expand_shorthands", "parse_override", "read_file", "read_text",
           "set_path", "validation_error"]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e8` and `1.25e8` as text; users mean numbers. A key given twice
    is refused: plain YAML keeps the last one and silently drops the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key of base: overriding is the point
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


_SECTIONS = ("producers", "queues", "consumers", "links", "topics")
_REPLACES = {"rate": ("interarrival", "service", "arrivals"), "interarrival": ("rate", "arrivals"),
             "service": ("rate",), "arrivals": ("rate", "interarrival"),
             "until": (), "messages": ()}


def expand_shorthands(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Replace `rate:` by the exponential distribution it stands for (on a copy)."""
    data = copy.deepcopy(dict(raw))
    for section, long_form in (("producers", "interarrival"), ("consumers", "service")):
        comps = data.get(section)
        if not isinstance(comps, Mapping):
            continue
        for name, spec in comps.items():
            if not isinstance(spec, dict) or "rate" not in spec:
                continue
            path = f"{section}.{name}.rate"
            if long_form in spec:
                raise ScenarioError(path, f"give `rate` or `{long_form}`, not both")
            rate = spec.pop("rate")
            if (isinstance(rate, bool) or not isinstance(rate, int | float)
                    or not math.isfinite(rate) or rate <= 0):
                raise ScenarioError(path, "must be a number > 0 (messages per second)", rate)
            spec[long_form] = exponential_rate(float(rate))
    return _prepare_peak(data)


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ScenarioError(path, "an override path is dotted keys, e.g. producers.app.rate")
    top = parts[0]
    if top in _SECTIONS:
        # Link names contain no dots, but component names could: join back greedily.
        if len(parts) < 3:
            raise ScenarioError(path, f"name a key inside a component, e.g. {top}.NAME.KEY")
        section = raw.get(top) or {}
        name, key = ".".join(parts[1:-1]), parts[-1]
        inner: list[str] = []
        # A key nested inside a component (producers.app.arrivals.spike.peak): the
        # longest prefix naming a component wins, the rest leads into its mappings.
        for cut in range(len(parts) - 1, 1, -1):
            if ".".join(parts[1:cut]) in section:
                name, inner = ".".join(parts[1:cut]), parts[cut:-1]
                break
        if name not in section:
            have = ", ".join(sorted(section)) or "none"
            raise ScenarioError(path, f"no {top[:-1]} named {name!r} (have: {have})"
                                + did_you_mean(name, section))
        target = section[name]
        if target is None:
            target = section[name] = {}
        if inner:
            for step in inner:
                nxt = target.get(step) if isinstance(target, dict) else None
                if nxt is None:
                    nxt = target[step] = {}
                if not isinstance(nxt, dict):
                    raise ScenarioError(path, f"{step!r} is not a mapping of keys", nxt)
                target = nxt
            target[key] = value
            return
        for other in _REPLACES.get(key, ()):
            target.pop(other, None)
        target[key] = value
        return
    if top == "run":
        if len(parts) != 2:
            raise ScenarioError(path, "run settings are one level deep, e.g. run.until")
        raw.setdefault("run", {})
        raw["run"][parts[1]] = value
        return
    if len(parts) == 1 and top in {"name", "description"}:
        raw[top] = value
        return
    raise ScenarioError(
        path, "overrides start with run, producers, queues, consumers, links, topics, name or "
        "description" + did_you_mean(top, ("run", *_SECTIONS, "name", "description"))
    )


def parse_override(text: str) -> tuple[str, Any]:
    """Split a command-line ``PATH=VALUE``; the value is read as YAML (numbers, .inf, text)."""
    path, sep, value = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ScenarioError("--set", "expected PATH=VALUE, e.g. producers.app.rate=0.9", text)
    try:
        parsed = _yaml(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def read_text(text: str, source: str) -> Any:
    """The mapping a YAML text holds (the ``source`` names it in errors)."""
    try:
        raw = _yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        problem = getattr(err, "problem", None) or str(err)
        raise ScenarioError(source, f"not valid YAML at {where}: {problem}") from None
    if raw is None:
        raise ScenarioError(source, "the scenario is empty")
    return raw


def read_file(path: Path) -> Any:
    """The mapping a YAML (or, by its suffix, TOML) file holds."""
    if not path.is_file():
        raise ScenarioError(str(path), "no such scenario file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(str(path), f"not valid TOML: {err}") from None
    return read_text(text, str(path))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'rate'?"`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


# Keys the loader expands before the schema sees them: valid, though not schema fields.
_SHORTHAND_KEYS: dict[str, tuple[str, ...]] = {"AsyncProducer": ("rate",),
                                                "WindowProducer": ("rate",),
                                                "ConsumerSpec": ("rate",)}


def _keys_at(loc: Sequence[str]) -> set[str]:
    """The keys the schema allows in the mapping at ``loc`` (e.g. producers.app)."""
    models: list[type[BaseModel]] = [Model]
    steps = list(loc)
    i = 0
    while i < len(steps):
        step, named, inner = steps[i], False, []
        if step.isdigit():  # an item of a list: the same models hold inside
            i += 1
            continue
        for m in models:
            for name, field in m.model_fields.items():
                if (field.alias or name) == step:
                    # A section (a mapping of names to components) consumes the name too.
                    named |= get_origin(field.annotation) is dict
                    inner += _models_in(field.annotation)
        if not inner:
            return set()
        models, i = inner, i + (2 if named else 1)
    keys = {f.alias or n for m in models for n, f in m.model_fields.items()}
    for m in models:
        keys.update(_SHORTHAND_KEYS.get(m.__name__, ()))
    return keys


def validation_error(err: ValidationError) -> ScenarioError:
    """Turn pydantic's report into one message naming path, rule and value."""
    e = err.errors(include_url=False)[0]
    loc = [str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-union"))]
    loc = [p for p in loc if p not in {"float", "int", "str", "none", "constrained-float"}]
    if len(loc) >= 3 and loc[0] == "producers" and loc[2] in MODES:
        del loc[2]  # the mode that chose the producer's kind: not a key the user wrote
    if loc and loc[-1] == "source" and e["type"] != "extra_forbidden":
        loc[-1] = "from"
    path = ".".join(loc)
    kind = e["type"]
    value = e.get("input", ...)
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "top level"
        hint = did_you_mean(loc[-1], _keys_at(loc[:-1])) if loc else ""
        return ScenarioError(path, f"unknown key (not allowed in {parent}){hint}")
    if kind == "producer_mode":
        mode = value.get("mode") if isinstance(value, Mapping) else value
        return ScenarioError(f"{path}.mode", f"must be {', '.join(MODES)}", mode)
    if kind == "missing":
        return ScenarioError(path, "required key is missing")
    if isinstance(value, Mapping) or kind.startswith("value_error"):
        value = ...
    if ", got " in msg:
        value = ...
    return ScenarioError(path, msg[0].lower() + msg[1:], value)
