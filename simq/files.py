"""Output folders and atomic writes, shared by runs, sweeps and reports."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "OutputExistsError", "prepare_dir", "write_atomic"]

MARKER = ".simq"
_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputExistsError(FileExistsError):
    """The output folder holds files simq did not write."""


def prepare_dir(path: str | Path, kind: str, *, force: bool = False,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Create ``path``, refusing a non-empty folder that simq did not write (unless force).

    ``meta`` adds fields to the folder's marker (what was written, for later checks).
    """
    from simq._version import version

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise OutputExistsError(
            f"{out}: folder is not empty and was not written by simq; "
            "choose another --out or pass --force to write into it"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / MARKER,
                 json.dumps({"kind": kind, "simq": version(), **(meta or {})}) + "\n")
    return out


def write_atomic(path: Path, data: str | bytes | Callable[[Path], None]) -> None:
    """Write through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        if callable(data):
            data(tmp_path)
        elif isinstance(data, bytes):
            tmp_path.write_bytes(data)
        else:
            tmp_path.write_text(data, encoding="utf-8")
        tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; files are for sharing
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
