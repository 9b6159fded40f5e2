"""The JSON Schema of a scenario file, for editors (completion, inline errors): what
``simq schema`` prints. It is pydantic's schema of :class:`~simq.scenario.model.Model`
with what the loader accepts before validation added: the ``rate`` shorthand of
producers and consumers, an arrival process instead of ``interarrival``, and numbers
written as text (YAML 1.1 reads ``1.25e8`` as a string). An infinite default is written
``".inf"``, as a user writes it: JSON has no infinity, and an editor refuses a schema
holding one. The schema describes the shape; the loader's rules
(docs/reference/scenario.md) still decide."""

from __future__ import annotations

import math
from typing import Any

from simq.scenario.io import _REPLACES, _SHORTHAND_KEYS
from simq.scenario.model import Model

__all__ = ["json_schema"]

_NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_RATE = {"type": "number", "exclusiveMinimum": 0,
         "description": "shorthand: exponential with this rate (messages per second)"}


def _numbers(node: Any) -> Any:
    """Every ``number`` also accepts a number written as text; infinity is ``".inf"``."""
    if isinstance(node, dict):
        out = {k: _numbers(v) for k, v in node.items()}
        if out.get("type") == "number":
            kept = {k: v for k, v in out.items() if k not in ("type", "title", "description",
                                                               "default")}
            extra = {k: out[k] for k in ("title", "description", "default") if k in out}
            return {"anyOf": [{"type": "number", **kept},
                              {"type": "string", "pattern": _NUMBER_TEXT}], **extra}
        return out
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return ".inf" if node > 0 else "-.inf" if node < 0 else "nan"
    return node


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file."""
    schema: dict[str, Any] = _numbers(Model.model_json_schema(mode="validation"))
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
