"""The scenarios that come with simq (the ``models/`` folder of the repository): shipped
inside the package as ``simq._models``, so an installed simq has them without a checkout.
``simq models`` lists them, ``simq run mm1`` runs one by name, ``simq models copy mm1 .``
writes one out to edit; from Python, :func:`names` and ``simq.load("mm1")``."""

from __future__ import annotations

import difflib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from simq.errors import ScenarioError, shown

__all__ = ["describe", "folder", "is_name", "missing", "names", "path", "text"]


def folder() -> Traversable:
    """Where the bundled scenarios are: the installed package's ``simq._models``, or, in
    a source checkout (an editable install maps only ``simq/``), its ``models/``."""
    try:
        return resources.files("simq._models")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "models"


def names() -> list[str]:
    """The bundled scenarios' names (file names without ``.yaml``), sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in folder().iterdir()
                  if p.name.endswith(".yaml"))


def is_name(source: str) -> bool:
    """Whether ``source`` names a bundled scenario rather than a file: no such file, no
    folder in it, and a bundled scenario of that name (``mm1`` or ``mm1.yaml``)."""
    if Path(source).exists() or "/" in source or "\\" in source:
        return False
    return source.removesuffix(".yaml") in names()


def _unknown(name: str) -> str:
    """What to say about a scenario name that does not come with simq: the names it is
    close to, or else every name there is."""
    have = names()
    close = difflib.get_close_matches(name.removesuffix(".yaml"), have, n=3)
    if close:
        return f"did you mean {', '.join(close)}? (`simq models` lists all {len(have)})"
    return f"the scenarios that come with simq are {', '.join(have)} (`simq models` " \
           "describes them)"


def missing(source: str) -> ScenarioError | None:
    """The error for a scenario ``source`` that is neither a file nor a bundled scenario
    but could be meant as a name (no folder in it); else None (a path is read, and its
    reader says it is missing)."""
    if Path(source).exists() or "/" in source or "\\" in source or is_name(source):
        return None
    return ScenarioError(source, "no such scenario file, and no scenario of that name "
                         f"comes with simq; {_unknown(source)}")


def _file(name: str) -> Traversable:
    if name.removesuffix(".yaml") not in names():
        raise ScenarioError("scenario", f"no bundled scenario named {shown(name)}; "
                            f"{_unknown(name)}")
    return folder().joinpath(f"{name.removesuffix('.yaml')}.yaml")


def text(name: str) -> str:
    """The bundled scenario file ``name`` as written (with its comments)."""
    return _file(name).read_text(encoding="utf-8")


def path(name: str) -> Path | None:
    """The bundled scenario's file on disk (None when the package is not on disk)."""
    f = _file(name)
    return f if isinstance(f, Path) else None


def describe() -> list[tuple[str, str]]:
    """(name, description) of every bundled scenario."""
    out = []
    for name in names():
        raw = yaml.safe_load(text(name)) or {}
        out.append((name, str(raw.get("description", "")) if isinstance(raw, dict) else ""))
    return out
