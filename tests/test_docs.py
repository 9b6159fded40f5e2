"""The documentation cannot rot: its code runs, and the reference covers the schema and the CLI.

- Every ```python block of the tutorial and the how-to guides runs (the blocks of one page
  in order, in one namespace, in a scratch folder holding a copy of ``models/``), unless
  the line before it is ``<!-- not run: REASON -->``.
- Every key of the scenario schema (the pydantic models of ``simq/scenario/`` and the
  specs they nest) appears in ``docs/reference/scenario.md``, and every key listed there
  exists; every command and option of ``simq`` appears in ``docs/reference/cli.md``.
- Relative links between the Markdown pages point at files that exist.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import typing
import warnings
from pathlib import Path

import matplotlib
import pytest
from pydantic import BaseModel

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import simq  # noqa: E402
from simq.cli import _build_parser, main  # noqa: E402
from simq.scenario import Model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNNABLE = [DOCS / "tutorial.md", *sorted((DOCS / "howto").glob("*.md"))]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
BASH = re.compile(r"(?P<before>[^\n]*)\n```bash\n(?P<code>.*?)\n```", re.S)
SECTION_KEY = {"producers": "NAME", "queues": "NAME", "consumers": "NAME", "topics": "NAME",
               "links": "A->B", "outages": "NAME"}
# Keys that are not fields: shorthands the loader expands before validation.
SHORTHANDS = {"producers.NAME.rate", "consumers.NAME.rate"}


def python_blocks(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [m.group("code") for m in BLOCK.finditer(text)
            if not m.group("before").strip().startswith("<!-- not run")]


def simq_commands(page: Path) -> list[list[str]]:
    """The `simq ...` command lines of a page's ```bash blocks (continuations joined)."""
    out = []
    for m in BASH.finditer(page.read_text(encoding="utf-8")):
        if m.group("before").strip().startswith("<!-- not run"):
            continue
        for line in m.group("code").replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("simq "):
                out.append(shlex.split(line)[1:])
    return out


def test_every_guide_has_runnable_code() -> None:
    names = {p.stem for p in RUNNABLE}
    assert {"tutorial", "write-a-scenario", "sweep-a-parameter", "compare-with-theory",
            "dask-cluster", "notebooks"} <= names
    for page in RUNNABLE:
        assert python_blocks(page), f"{page.name} has no python block"


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_code_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, typing.Any] = {"__name__": "__main__"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", simq.UnstableWarning)
            for i, code in enumerate(python_blocks(page)):
                try:
                    exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
                except Exception as err:  # report which block failed
                    raise AssertionError(f"{page.name} block {i} failed: {err!r}\n{code}") from err
    finally:
        plt.close("all")


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.stem for p in RUNNABLE])
def test_command_lines_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    for args in simq_commands(page):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", simq.UnstableWarning)
            assert main(args) == 0, f"{page.name}: simq {' '.join(args)}"
    capsys.readouterr()


def _models(annotation: typing.Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def schema_keys(model: type[BaseModel] = Model, prefix: str = "") -> set[str]:
    """Every dotted key a scenario may contain, with NAME / A->B for component names."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        nested = _models(field.annotation)
        bare = [a for a in typing.get_args(field.annotation) if a is not type(None)]
        mapping = typing.get_origin(field.annotation) is dict or (
            len(bare) == 1 and typing.get_origin(bare[0]) is dict)  # an optional mapping
        if mapping and nested:
            keys.add(path)
            for m in nested:  # producers: one model per mode
                keys |= schema_keys(m, f"{path}.{SECTION_KEY[key]}.")
            continue
        keys.add(path)
        if nested:
            keys |= schema_keys(nested[0], f"{path}.")
    return keys


def test_schema_walk_finds_nested_keys() -> None:
    keys = schema_keys()
    assert "consumers.NAME.from" in keys
    assert "producers.NAME.arrivals.spike.peak" in keys
    assert "links.A->B.bandwidth" in keys


def test_every_scenario_key_is_in_the_reference() -> None:
    text = (DOCS / "reference" / "scenario.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", text, re.M))
    expected = schema_keys() | SHORTHANDS
    assert not expected - listed, f"missing from docs/reference/scenario.md: " \
                                  f"{sorted(expected - listed)}"
    assert not listed - expected, f"not scenario keys: {sorted(listed - expected)}"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_cli_option_is_in_the_reference() -> None:
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `simq (\w+)`\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    for name, sub in _commands().items():
        assert name in sections, f"docs/reference/cli.md has no section for simq {name}"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            # An option by its first flag, a positional by its upper-case name.
            label = action.option_strings[0] if action.option_strings else action.dest.upper()
            assert f"`{label}" in sections[name], f"simq {name}: {label} is not documented"


def test_relative_links_resolve() -> None:
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md"]
    if (ROOT / "results" / "README.md").is_file():
        pages.append(ROOT / "results" / "README.md")
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} -> {target}"


def test_readme_links_the_documentation() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for part in ("tutorial.md", "howto/", "reference/", "background.md"):
        assert part in index
