"""The package works outside the checkout: the wheel holds every package, the bundled
scenarios and their data files; installed alone, `simq run mm1` works from any folder;
`simq models` and `simq schema` describe what comes with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

import simq
from simq.cli import main
from simq.datafiles import Folder
from simq.scenario import bundled
from simq.scenario.io import read_text

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SHORT = ["--set", "run.until=400", "--set", "run.warmup=40", "--set", "run.replications=2"]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_package_list_is_the_tree() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]  # type: ignore[index]
    listed = set(setuptools["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "simq").rglob(
        "__init__.py") if "__pycache__" not in p.parts}
    assert tree - listed == set(), f"packages missing from pyproject.toml: {tree - listed}"
    assert listed - tree == {"simq._models"}, f"not packages: {listed - tree - {'simq._models'}}"
    assert setuptools["package-dir"] == {"simq._models": "models"}


def _data_files(folder: Path = MODELS) -> dict[str, set[str]]:
    """The data files (``empirical(...)``, a trace) of every scenario in ``folder``,
    relative to it: found by loading each one and noting what the loader looks up."""
    seen: list[Path] = []
    real = Folder.path

    def spy(self: Folder, name: str, key: str) -> Path:
        path = real(self, name, key)
        seen.append(path)
        return path

    out: dict[str, set[str]] = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(Folder, "path", spy)
    try:
        for f in sorted(folder.glob("*.yaml")):
            seen.clear()
            simq.load(f)
            out[f.stem] = {p.resolve().relative_to(folder.resolve()).as_posix() for p in seen}
    finally:
        mp.undo()
    return out


def test_the_data_files_of_a_scenario_are_found(tmp_path: Path) -> None:
    (tmp_path / "sizes.csv").write_text("100\n200\n", encoding="utf-8")
    (tmp_path / "sends.csv").write_text("time\n0.5\n1.5\n", encoding="utf-8")
    (tmp_path / "own.yaml").write_text(
        "run: {until: 10}\n"
        "producers: {app: {to: broker, arrivals: {trace: sends.csv}, "
        "size: \"empirical('sizes.csv')\"}}\n"
        "queues: {broker: {}}\nconsumers: {worker: {from: broker, rate: 1}}\n",
        encoding="utf-8")
    assert _data_files(tmp_path) == {"own": {"sizes.csv", "sends.csv"}}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (the build leaves the tree untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("simq", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    # No network: the build uses this environment's setuptools.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(tmp / "dist"),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (built,) = (tmp / "dist").glob("simq-*.whl")
    return built


def test_the_wheel_holds_the_package_the_models_and_their_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"simq"}, tops
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/")]
    assert "simq/py.typed" in names
    templates = {f"simq/templates/{p.name}" for p in (ROOT / "simq" / "templates").glob("*")}
    assert templates and templates - names == set()  # the report's page templates
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "simq").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources - names == set()
    models = {f"simq/_models/{p.name}" for p in MODELS.glob("*.yaml")}
    assert len(models) == len(bundled.names()) > 30
    assert models - names == set()
    for model, files in _data_files().items():
        for f in files:
            assert f"simq/_models/{f}" in names, f"{model}: its data file {f} is not shipped"
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)


def _scripts(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding only the wheel; its dependencies are this environment's
    (a .pth line), so nothing is downloaded and the checkout is nowhere on its path."""
    venv = tmp_path_factory.mktemp("env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = _scripts(venv) / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "_simq_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n",
                                                    encoding="utf-8")
    return venv


def _outside(installed: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(_scripts(installed)), env.get("PATH", "")])
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_the_installed_wheel_runs_a_bundled_model_outside_the_checkout(
        installed: Path, tmp_path: Path) -> None:
    where = _outside(installed, tmp_path, str(_scripts(installed) / "python"), "-c",
                     "import simq; from simq.scenario import bundled; "
                     "print(simq.__file__); print(bundled.path('mm1'))")
    assert where.returncode == 0, where.stderr
    module, model = (Path(line) for line in where.stdout.splitlines())
    for path in (module, model):
        assert path.is_relative_to(installed) and not path.is_relative_to(ROOT), path
    proc = _outside(installed, tmp_path, "simq", "run", "mm1", "--out", "out", *SHORT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "report.html").is_file()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["scenario"] == "mm1"
    listing = _outside(installed, tmp_path, "simq", "models")
    assert listing.returncode == 0 and "mm1" in listing.stdout.split()


def test_simq_load_takes_a_bundled_name() -> None:
    assert simq.load("mm1") == simq.load(MODELS / "mm1.yaml")
    assert simq.load("mm1.yaml").name == "mm1"


def test_models_lists_every_bundled_model_with_its_description(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    # A description too long for the width continues on indented lines below its name.
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    entries: list[str] = []
    for line in lines:
        if line.startswith(" ") and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line)
    for f in MODELS.glob("*.yaml"):
        description = read_text(f.read_text(encoding="utf-8"), str(f))["description"]
        assert any(e.split()[:1] == [f.stem] and " ".join(e.split()[1:]) ==
                   " ".join(description.split()) for e in entries), \
            f"{f.stem} is not listed with its description"


def test_models_copy_refuses_to_overwrite_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mm1.yaml"
    assert main(["models", "copy", "mm1", str(tmp_path)]) == 0
    assert target.read_text(encoding="utf-8") == (MODELS / "mm1.yaml").read_text("utf-8")
    capsys.readouterr()
    target.write_text("# mine\n", encoding="utf-8")
    assert main(["models", "copy", "mm1", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "--force" in err
    assert target.read_text(encoding="utf-8") == "# mine\n"
    assert main(["models", "copy", "mm1", str(tmp_path), "--force"]) == 0
    assert target.read_text(encoding="utf-8") == (MODELS / "mm1.yaml").read_text("utf-8")


def test_models_copy_of_an_unknown_name_names_the_ones_there_are(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "copy", "mm11", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'mm11'" in err and "did you mean mm1" in err
    assert not list(tmp_path.iterdir())


def test_run_of_an_unknown_name_says_which_names_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "mm11", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simq: error: mm11: ") and "did you mean mm1" in err
    assert main(["run", "zzqqxxjj", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(name in err for name in bundled.names())
    # A path is a path: its reader says the file is missing, not the bundled names.
    assert main(["run", "sub/mm11.yaml", "--out", "o"]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_file_of_that_name_wins_over_the_bundled_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (MODELS / "mm1.yaml").read_text(encoding="utf-8").replace("name: mm1", "name: own")
    (tmp_path / "mm1.yaml").write_text(text, encoding="utf-8")
    assert simq.load("mm1.yaml").name == "own"
    assert simq.load("mm1").name == "mm1"


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", "from simq.cli import main; main(['schema'])"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    def refuse(word: str) -> None:
        raise AssertionError(f"{word} is not JSON: an editor cannot read the schema")

    loaded: dict[str, object] = json.loads(out, parse_constant=refuse)
    return loaded


def test_the_schema_is_a_json_schema_every_bundled_model_meets(
        schema: dict[str, object]) -> None:
    # jsonschema comes with the dev extra (nbformat, for the notebooks, requires it).
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    for f in sorted(MODELS.glob("*.yaml")):
        raw = read_text(f.read_text(encoding="utf-8"), str(f))  # as the loader reads it
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in check.iter_errors(raw)]
        assert not errors, f"{f.name}: {errors[:3]}"


def _mm1_with(path: str, value: object) -> dict[str, Any]:
    """mm1's mapping as the loader reads it, with one value set."""
    raw: dict[str, Any] = read_text((MODELS / "mm1.yaml").read_text(encoding="utf-8"),
                                    "mm1.yaml")
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(("path", "value"), [
    ("run.max_memory", "2G"), ("run.max_memory", "500MiB"), ("run.max_memory", 1e9),
    ("queues.broker.capacity", "inf"), ("queues.broker.capacity", "Unbounded"),
    ("queues.broker.capacity", 10), ("consumers.worker.count", 3),
    ("producers.app.interarrival", "exponential(rate=2)"),
])
def test_the_schema_accepts_what_the_loader_accepts(
        schema: dict[str, object], path: str, value: object) -> None:
    import jsonschema

    raw = _mm1_with(path, value)
    if path == "producers.app.interarrival":
        del raw["producers"]["app"]["rate"]
    simq.load(raw)
    jsonschema.Draft202012Validator(schema).validate(raw)


@pytest.mark.parametrize(("path", "value"), [
    ("producers.app.rat", 1.0),           # an unknown key
    ("producers.app.rate", -1.0),         # the shorthand is a rate > 0
    ("producers.app.rate", "fast"),       # ... and a number
    ("consumers.worker.count", "two"),    # a count
    ("queues.broker.overflow", "spill"),  # one of the policies
    ("run.max_memory", "2X"),             # a size has a binary unit
    ("run.until", "20000"),               # a number is a number, not text
])
def test_the_schema_refuses_what_the_loader_refuses(
        schema: dict[str, object], path: str, value: object) -> None:
    import jsonschema

    raw = _mm1_with(path, value)
    assert not jsonschema.Draft202012Validator(schema).is_valid(raw)
    with pytest.raises(simq.ScenarioError) as err:
        simq.load(raw)
    assert path.rsplit(".", 1)[0] in str(err.value)
