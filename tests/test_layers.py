"""The layers of the design, checked over the import graph of simq's own source.

Each layer imports only the layers below it (docs/architecture.md): a module may import
any module of its own folder and of the folders listed before its own, nothing later.
Imports inside functions count as much as imports at the top (they are dependencies all
the same, only deferred), and so do imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "simq"

# Bottom to top. A name stands for a module or a folder (a package and all below it).
LAYERS: list[tuple[str, ...]] = [
    ("simq._lazy", "simq._version", "simq.errors", "simq.terminal"),
    ("simq.dists", "simq.datafiles", "simq.files"),
    ("simq.theory",),
    ("simq.scenario",),
    ("simq.model",),
    ("simq.engine",),
    ("simq.analysis",),
    ("simq.record",),
    ("simq.run",),
    ("simq.sweep",),
    ("simq.plots",),
    ("simq.report",),
    ("simq.explorer",),
    ("simq.validate",),
    ("simq.cli", "simq"),
]

# What the engine must never import: it is pure simulation, read by the record layer.
ENGINE_NEVER = ("pandas", "matplotlib", "pyarrow", "simq.files")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    return _imports_in(path.read_text(encoding="utf-8"), _module(path),
                       is_package=path.name == "__init__.py")


def _imports_in(text: str, me: str, *, is_package: bool = False) -> set[str]:
    """Every module the source ``text`` of module ``me`` imports (``from simq import x``
    names simq.x when it is a module of its own, the package simq otherwise)."""
    package = me if is_package else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if _exists(sub) else base)
    return found


def _exists(name: str) -> bool:
    if not name.startswith("simq."):
        return False
    rel = Path(*name.split(".")[1:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _layer(name: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the match, layer): the longest wins
    for i, names in enumerate(LAYERS):
        for n in names:
            matches = name == n or name.startswith(n + ".")
            if matches and (best is None or len(n) > best[0]):
                best = (len(n), i)
    return None if best is None else best[1]


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert [str(p) for p in SOURCES if _layer(_module(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module(p))
def test_imports_only_downward(path: Path) -> None:
    me = _module(path)
    mine = _layer(me)
    assert mine is not None
    upward = sorted(
        f"{name} (layer {LAYERS[_layer(name)][0]})"  # type: ignore[index]
        for name in _imports(path)
        if name.split(".")[0] == "simq" and (_layer(name) or 0) > mine
    )
    assert upward == [], f"{me} (layer {LAYERS[mine][0]}) imports upward: {upward}"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "engine").rglob("*.py")), ids=lambda p: _module(p))
def test_engine_imports_no_tables_plots_or_files(path: Path) -> None:
    bad = sorted(n for n in _imports(path) if n.split(".")[0] in ENGINE_NEVER
                 or any(n == e or n.startswith(e + ".") for e in ENGINE_NEVER))
    assert bad == []


def test_no_import_cycle_between_folders() -> None:
    """The folder graph is acyclic (implied by the layers; said here once more so that a
    change to LAYERS cannot hide a cycle)."""
    edges: dict[int, set[int]] = {}
    for path in SOURCES:
        a = _layer(_module(path))
        for name in _imports(path):
            b = _layer(name) if name.startswith("simq") else None
            if a is not None and b is not None and a != b:
                edges.setdefault(a, set()).add(b)
    assert all(b < a for a, bs in edges.items() for b in bs)


def test_the_check_can_fail() -> None:
    """The reader sees an upward import deferred into a function, a relative one and a
    ``from simq import module``, and the layer test would name each."""
    text = ("def _x():\n    from simq.run import run\n"
            "from ..record import summary\nfrom simq import sweep\n")
    found = _imports_in(text, "simq.engine.core")
    assert {"simq.run", "simq.record.summary", "simq.sweep"} <= found
    mine = _layer("simq.engine.core")
    assert mine is not None and all((_layer(n) or 0) > mine for n in
                                    ("simq.run", "simq.record.summary", "simq.sweep"))
