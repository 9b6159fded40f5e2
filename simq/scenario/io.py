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

from simq.datafiles import read_bounded as _read_bounded
from simq.dists import exponential_rate
from simq.errors import ScenarioError
from simq.scenario.components import MODES
from simq.scenario.model import Model
from simq.scenario.types import INT_LIMIT
from simq.scenario.workload import prepare as _prepare_peak

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "decode", "did_you_mean",
           "expand_shorthands", "parse_override", "read_bounded", "read_file", "read_text",
           "set_path", "validation_error"]


# What a scenario may be, checked before anything is built from it (docs/reference/scenario.md,
# "Limits"): a scenario is a few kilobytes; these bounds leave room for long inline lists
# and refuse what would exhaust memory or the stack instead.
MAX_BYTES = 4 * 2**20  # a scenario file or text
MAX_DEPTH = 64  # mappings and lists inside each other
MAX_NODES = 200_000  # values once every alias is expanded (a "billion laughs" is 10**9)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e8` and `1.25e8` as text; users mean numbers. A key given twice
    is refused: plain YAML keeps the last one and silently drops the first. Nesting is
    bounded while composing (before any recursion can run deep), and so is the size of the
    document with its aliases expanded, so that an alias bomb is refused, not built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node)
        return node

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


def _expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` holds once its aliases are expanded (each shared node counted
    every time it is referred to), refused above :data:`MAX_NODES`; computed once per node."""
    size: dict[int, int] = {}

    def of(node: yaml.Node) -> int:
        key = id(node)
        if key not in size:
            size[key] = 0  # a recursive alias: counted once, refused by the constructor
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            total = 1 + sum(of(c) for c in children)
            if total > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"holds more than {MAX_NODES:,} values once its aliases "
                    "are expanded (an alias bomb?)", node.start_mark)
            size[key] = total
        return size[key]

    return of(root)


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
                    or (isinstance(rate, int) and abs(rate) > INT_LIMIT)
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
                                + did_you_mean(name, section, before=[top],
                                               after=parts[len(name.split(".")) + 1:]))
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
    if top == "brokers":  # one mapping (docs/cluster.md): brokers.KEY, brokers.outages.B.at
        if len(parts) < 2:
            raise ScenarioError(path, "name a key of the cluster, e.g. brokers.detection")
        node = raw.get("brokers")
        if not isinstance(node, dict):
            node = raw["brokers"] = {}
        for step in parts[1:-1]:
            nxt = node.get(step)
            if nxt is None:
                nxt = node[step] = {}
            if not isinstance(nxt, dict):
                raise ScenarioError(path, f"{step!r} is not a mapping of keys", nxt)
            node = nxt
        node[parts[-1]] = value
        return
    if len(parts) == 1 and top in {"name", "description"}:
        raw[top] = value
        return
    raise ScenarioError(
        path, "overrides start with run, producers, queues, consumers, links, topics, "
        "brokers, name or description"
        + did_you_mean(top, ("run", *_SECTIONS, "brokers", "name", "description"),
                       after=parts[1:])
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
    if len(text) > MAX_BYTES:
        raise ScenarioError(source, f"is {len(text):,} characters; a scenario may be at most "
                            f"{MAX_BYTES:,} (put long data in a trace or empirical file)")
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
    """The mapping a YAML (or, by its suffix, TOML) file holds: a regular file of at most
    :data:`MAX_BYTES`, in UTF-8."""
    text = decode(read_bounded(path, "scenario file"), str(path))
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(str(path), f"not valid TOML: {err}") from None
        except RecursionError:
            raise ScenarioError(str(path), "not valid TOML: nested too deep") from None
        _check_depth(raw, str(path))
        return raw
    return read_text(text, str(path))


def read_bounded(path: Path, what: str, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see
    :func:`simq.datafiles.read_bounded`)."""
    return _read_bounded(path, what, limit)


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark allowed), or an error naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        hint = (" (it looks like UTF-16: save it as UTF-8)"
                if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "")
        raise ScenarioError(source, f"is not UTF-8 text: byte {err.start} is "
                            f"{data[err.start]:#04x}{hint}") from None


def _check_depth(raw: Any, source: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ScenarioError(source, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(raw, dict):
        for v in raw.values():
            _check_depth(v, source, depth + 1)
    elif isinstance(raw, list):
        for v in raw:
            _check_depth(v, source, depth + 1)


def did_you_mean(word: str, choices: Iterable[str], *, before: Sequence[str] = (),
                 after: Sequence[str] = ()) -> str:
    """``"; did you mean 'producers.app.rate'?"`` when one of ``choices`` is close to
    ``word``, else ``""``. The suggestion is the whole dotted path a user would write: the
    keys ``before`` the mistyped one, the close choice, then the keys ``after`` it."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean {'.'.join([*before, close[0], *after])!r}?" if close else ""


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


# pydantic's wording for a value of the wrong type, in the words of the rest of simq.
_TYPE_RULES = {
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "string_type": "must be text",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
}


def _rule(kind: str, msg: str) -> str:
    """The rule of one pydantic error, worded like simq's own."""
    if kind in _TYPE_RULES:
        return _TYPE_RULES[kind]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith("Input should be "):  # literal_error and the like: "'a' or 'b'"
        msg = "must be " + msg[len("Input should be "):]
    return msg[0].lower() + msg[1:] if msg else msg


def _one(e: Mapping[str, Any]) -> ScenarioError:
    """One pydantic error as a message naming path, rule and value."""
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
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "top level"
        hint = did_you_mean(loc[-1], _keys_at(loc[:-1]), before=loc[:-1]) if loc else ""
        return ScenarioError(path, f"unknown key (not allowed in {parent}){hint}")
    if kind == "producer_mode":
        mode = value.get("mode") if isinstance(value, Mapping) else value
        return ScenarioError(f"{path}.mode", f"must be {', '.join(MODES)}", mode)
    if kind == "missing":
        return ScenarioError(path, "required key is missing")
    if (isinstance(value, Mapping) and kind not in _TYPE_RULES) \
            or kind.startswith("value_error"):
        value = ...
    if ", got " in msg:
        value = ...
    return ScenarioError(path, _rule(kind, msg), value)


def validation_error(err: ValidationError) -> ScenarioError:
    """Turn pydantic's report into one error naming path, rule and value, carrying every
    other mistake it found in the same pass (one per path) in ``also``."""
    found: dict[str, ScenarioError] = {}
    for e in err.errors(include_url=False):
        one = _one(e)
        found.setdefault(one.path, one)
    first, *rest = found.values()
    if not rest:
        return first
    return ScenarioError(first.path, first.rule, first.value, tuple(str(r) for r in rest))
