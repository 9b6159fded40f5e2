"""The JSON Schema of a scenario file, for editors (completion, inline errors): what
``simq schema`` prints. It is pydantic's schema of :class:`~simq.scenario.model.Model`
(each value type says what text it takes: a distribution, a size such as ``2G``,
``.inf``) with the loader's ``rate`` shorthand added. A number is a number, never text, as
the loader reads it (``1.25e8`` is a number in simq's YAML and in YAML 1.2). An infinite
default is written ``".inf"``, as a user writes it: JSON has no infinity, and an editor
refuses a schema holding one. The schema describes the shape; the loader's rules
(docs/reference/scenario.md) still decide."""

from __future__ import annotations

import math
from typing import Any

from simq.scenario.io import _REPLACES, _SHORTHAND_KEYS
from simq.scenario.model import Model

__all__ = ["json_schema"]

_RATE = {"type": "number", "exclusiveMinimum": 0,
         "description": "shorthand: exponential with this rate (messages per second)"}


def _json(node: Any) -> Any:
    """``node`` with every infinite number (a default) written ``".inf"``."""
    if isinstance(node, dict):
        return {k: _json(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return ".inf" if node > 0 else "-.inf" if node < 0 else "nan"
    return node


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema: dict[str, Any] = _json(Model.model_json_schema(mode="validation"))
    # The loader's shorthands (the same table its "unknown key" check reads): `rate` is a
    # number, never text, and stands for the fields it replaces, which are then optional.
    for name, keys in _SHORTHAND_KEYS.items():
        spec = schema["$defs"][name]
        for key in keys:
            spec["properties"][key] = dict(_RATE)
            spec["required"] = [r for r in spec.get("required", []) if r not in _REPLACES[key]]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simq scenario"
    return schema
