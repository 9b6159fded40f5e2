"""Files a scenario refers to (``empirical('file')``, an arrival trace): where they are
found, where they may be, and how they are read.

A relative name is found next to the scenario file. A scenario file read from disk may
name only files inside its own folder (after resolving ``..`` and symbolic links): a
scenario someone sent you cannot read ``/etc/passwd`` or ``~/.ssh`` into a run and its
error messages. ``simq.load(..., allow_paths=True)`` (``--allow-paths``) lifts the rule;
a scenario built in Python, and a value given as an override (``--set``), are the caller's
own and keep any path. Every file is a regular file of bounded size, and no error ever
quotes what a file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simq.errors import ScenarioError

__all__ = ["DATA_BYTES", "Folder", "read_bounded"]

#: The largest data file (an empirical sample, a trace): a few million numbers.
DATA_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Folder:
    """Where a scenario's data files are found (``base``: the scenario file's folder, None
    for the working folder) and whether they must stay inside it (``contain``)."""

    base: Path | None = None
    contain: bool = False

    def path(self, name: str, key: str) -> Path:
        """The file ``name`` (as written at ``key``) resolved, or a ScenarioError naming the
        key, the path and the rule when it lies outside the scenario's folder."""
        path = Path(name).expanduser()
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        path = path.absolute()
        if self.contain and self.base is not None:
            root = self.base.resolve()
            real = path.resolve()
            if not real.is_relative_to(root):
                raise ScenarioError(
                    key, f"data files must lie inside the scenario's folder {str(root)!r} "
                    "(after resolving '..' and links); load with allow_paths=True "
                    "(--allow-paths) or give the path with --set", str(path))
        return path

    def read(self, name: str, key: str, what: str) -> tuple[Path, bytes]:
        """The path and bytes of a data file: inside the folder (see :meth:`path`), a
        regular file of at most :data:`DATA_BYTES`."""
        path = self.path(name, key)
        try:
            return path, read_bounded(path, what, DATA_BYTES)
        except ScenarioError as err:  # said at the scenario's key, naming the file
            raise ScenarioError(key, err.rule, str(path)) from None


def read_bounded(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, every refusal a
    :class:`ScenarioError` naming the file (never its content)."""
    try:
        if not path.exists():
            raise ScenarioError(str(path), f"no such {what}")
        if not path.is_file():
            raise ScenarioError(str(path), f"a {what} must be a regular file (this is not)")
        size = path.stat().st_size
        if size > limit:
            raise ScenarioError(str(path), f"is {size:,} bytes; a {what} may be at most "
                                f"{limit:,}")
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise ScenarioError(str(path), f"cannot read the {what}: {err.strerror or err}") from None
    if len(data) > limit:
        raise ScenarioError(str(path), f"a {what} may be at most {limit:,} bytes")
    return data
