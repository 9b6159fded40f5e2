"""Output folders and atomic writes, shared by runs, sweeps and reports.

Four promises, each kept here once:

- a file is never half-written: it is written to a temporary file and renamed into place;
- a run's folder is never a mix of two runs: :func:`staged_dir` builds the new run in a
  temporary sibling folder and swaps it into place only when it is complete;
- two processes never write into one folder at once: :func:`locked` holds an advisory
  lock (``flock``) on the folder, which the system releases when its holder dies;
- simq never writes through a link it finds in a folder, and cleans up only the
  temporary names it makes itself (``.NAME.simq-XXXXXXXX.tmp``).

Every operating-system error on an output folder becomes an :class:`OutputError` that
names the path and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from simq.errors import SHOWN

__all__ = ["MARKER", "OutputBusyError", "OutputError", "OutputExistsError", "acquire",
           "check_dir",
           "clean_stale", "locked", "prepare_dir", "reading", "real_subdir", "release",
           "staged_dir", "write_atomic"]

MARKER = ".simq"
_UMASK = os.umask(0)
os.umask(_UMASK)
# What simq's temporary files and folders are called, and nothing else is: a killed
# process leaves these behind, and the next one into the folder removes them.
_TMP_INFIX = ".simq-"
_STALE = re.compile(r"^\..+\.simq-[a-z0-9_]{8}\.tmp$")


class OutputError(OSError):
    """An output folder cannot be used; the message names the path and the reason."""


class OutputExistsError(OutputError, FileExistsError):
    """The output folder holds files simq did not write."""


class OutputBusyError(OutputError):
    """Another simq process is writing into the output folder."""


def output_error(path: str | Path, err: OSError) -> OutputError:
    """An operating-system error on ``path`` as one line naming the path and the reason."""
    if isinstance(err, OutputError):
        return err
    reason = err.strerror or str(err)
    where = err.filename if err.filename not in (None, str(path)) else None
    return OutputError(f"{_cut(path)}: cannot write the output folder: {reason}"
                       + (f" ({_cut(where)})" if where is not None else ""))


def _cut(path: object) -> str:
    # A path can be thousands of characters long (that may be the very error).
    text = os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path)
    return text if len(text) <= SHOWN else f"{text[:SHOWN - 1]}… ({len(text):,} characters)"


@contextlib.contextmanager
def _as_output_errors(path: str | Path) -> Iterator[None]:
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from None


def _checked(path: str | Path) -> Path:
    if str(path) == "":
        raise OutputError("output folder: an empty path names no folder, got ''")
    return Path(path)


def check_dir(path: str | Path, *, force: bool = False) -> Path:
    """Refuse ``path`` as an output folder if it is a file, or a non-empty folder that simq
    did not write (unless ``force``); write nothing."""
    out = _checked(path)
    with _as_output_errors(out):
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a folder")
        if (out.is_dir() and not force and not (out / MARKER).is_file()
                and any(not _STALE.match(p.name) for p in out.iterdir())):
            raise OutputExistsError(
                f"{out}: folder is not empty and was not written by simq; "
                "choose another --out or pass --force to write into it"
            )
    return out


def _marker(kind: str, meta: Mapping[str, Any] | None) -> str:
    from simq._version import version

    return json.dumps({"kind": kind, "simq": version(), **(meta or {})}) + "\n"


def prepare_dir(path: str | Path, kind: str, *, force: bool = False,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Create ``path``, refusing a non-empty folder that simq did not write (unless force).

    ``meta`` adds fields to the folder's marker (what was written, for later checks).
    """
    out = check_dir(path, force=force)
    with _as_output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / MARKER, _marker(kind, meta))
    return out


def real_subdir(folder: Path, name: str) -> Path:
    """``folder/name`` as a real folder: a link found there is removed, never followed."""
    sub = folder / name
    with _as_output_errors(sub):
        if sub.is_symlink() or (sub.exists() and not sub.is_dir()):
            sub.unlink()
        sub.mkdir(exist_ok=True)
    return sub


def write_atomic(path: Path, data: str | bytes | Callable[[Path], None]) -> None:
    """Write through a temporary file and a rename: never a half-written file.

    The rename replaces a link at ``path`` rather than writing through it; the folder
    must exist (a missing one is created, a link in its place is refused).
    """
    with _as_output_errors(path):
        if path.parent.is_symlink():
            raise OutputError(f"{path.parent}: is a link; simq does not write through it")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP_INFIX}", suffix=".tmp",
                                   dir=path.parent)
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(folder: Path) -> None:
    """Remove what a killed simq left in ``folder`` (and its sub-folders) and beside it:
    only the temporary names simq makes. Call it holding the folder's lock."""
    with _as_output_errors(folder):
        parent = folder.parent
        if parent.is_dir():
            prefix = f".{folder.name}{_TMP_INFIX}"
            for p in parent.iterdir():
                if p.name.startswith(prefix) and _STALE.match(p.name):
                    _remove(p)
        if not folder.is_dir():
            return
        for root, dirs, files in os.walk(folder):  # does not follow links
            for name in [*files, *dirs]:
                if _STALE.match(name):
                    _remove(Path(root) / name)


# Locks --------------------------------------------------------------------------------

# The folders this process holds locked, by inode, so that a nested lock of the same
# folder (the command line locks, then the report it calls locks again) is not refused.
_HELD: dict[tuple[int, int], int] = {}


def _try_lock(folder: Path) -> tuple[int, int] | None:
    """Lock ``folder``; the key to release, or None when this process holds it already."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no lock
        return None
    for _ in range(10):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key in _HELD:
            os.close(fd)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputBusyError(
                    f"{folder}: another simq process is writing into this folder; wait "
                    "for it to finish or choose another --out") from None
            raise
        # The folder may have been swapped for another between open and lock: the lock
        # must be on what the path names now.
        try:
            now = folder.stat()
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == key:
            _HELD[key] = fd
            return key
        os.close(fd)
    raise OutputBusyError(f"{folder}: keeps being replaced by another process")


def _release(key: tuple[int, int] | None) -> None:
    if key is not None and key in _HELD:
        os.close(_HELD.pop(key))  # closing the last descriptor releases the flock


def acquire(path: str | Path) -> tuple[int, int] | None:
    """Hold the folder ``path`` (created if missing) for this process until
    :func:`release`; refuse it with :class:`OutputBusyError` while another process holds
    it. A holder that dies releases it: the lock is the system's, not a file that could be
    left behind. None when this process holds it already."""
    folder = _checked(path)
    with _as_output_errors(folder):
        if folder.exists() and not folder.is_dir():
            raise OutputExistsError(f"{folder}: exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        return _try_lock(folder)


def release(key: tuple[int, int] | None) -> None:
    """Let go of a folder held by :func:`acquire`."""
    _release(key)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[Path]:
    """Hold ``path`` for the block (see :func:`acquire`). A block that fails (a run
    refused or stopped, an interrupt) leaves no trace: the folders this call created are
    removed again while they are still empty."""
    folder = _checked(path)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    key = acquire(folder)
    try:
        yield Path(path)
    except BaseException:
        for p in made:  # innermost first; a folder something was written into stays
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    finally:
        _release(key)


# Staged folders -----------------------------------------------------------------------

def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM):  # file system cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(a))


def _swap_in(new: Path, out: Path) -> None:
    """Put the complete folder ``new`` at ``out``; what was there is removed."""
    if _exchange(new, out):
        _remove(new)  # now the previous folder
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_INFIX}", suffix=".tmp",
                                dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    os.rename(new, out)
    _remove(old)


def _move_entries(new: Path, out: Path, owned: Collection[str]) -> None:
    """Move each entry of ``new`` into ``out`` (a folder holding files simq did not write,
    written into with force), and remove simq's entries the new run did not write."""
    fresh = {p.name for p in new.iterdir()}
    for name in owned:
        if name not in fresh and name != MARKER:
            p = out / name
            if p.is_symlink() or p.exists():
                _remove(p)
    for p in new.iterdir():
        dest = out / p.name
        if p.is_dir() and (dest.is_symlink() or dest.exists()):
            _remove(dest)  # a link is removed, its target left alone
        os.replace(p, dest)
    new.rmdir()


@contextlib.contextmanager
def staged_dir(path: str | Path, kind: str, owned: Collection[str], *, force: bool = False,
               meta: Mapping[str, Any] | None = None) -> Iterator[Path]:
    """A fresh temporary folder beside ``path`` to write a whole result into; when the
    block ends without an error it takes the place of ``path`` in one step, else it is
    removed.

    ``owned`` names every entry such a result can hold. A folder at ``path`` holding
    anything else (written into with ``force``) keeps those entries: the new ones are
    moved in one by one instead.
    """
    out = check_dir(path, force=force)
    with locked(out) as out:
        with _as_output_errors(out):
            if out.is_symlink():  # the user named a link to a folder: write there
                out = out.resolve()
            clean_stale(out)
            new = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_INFIX}", suffix=".tmp",
                                        dir=out.parent))
        try:
            new.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; folders are for sharing
            key = _try_lock(new)  # after the swap, this is what the path names
            try:
                write_atomic(new / MARKER, _marker(kind, meta))
                yield new
                with _as_output_errors(out):
                    known = {*owned, MARKER}
                    if all(p.name in known or _STALE.match(p.name) for p in out.iterdir()):
                        _swap_in(new, out)
                    else:
                        _move_entries(new, out, owned)
            finally:
                _release(key)
        finally:
            if new.exists():
                _remove(new)


# Reading back --------------------------------------------------------------------------

def _why(err: BaseException) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, KeyError):
        return f"{err.args[0]!r} is missing" if err.args else "a field is missing"
    if isinstance(err, FileNotFoundError):
        return "missing"
    if type(err).__name__ == "EmptyDataError":  # pandas: a CSV file with no data
        return "empty"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return _cut(f"{type(err).__name__}: {text}")


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Read a file of a results folder: whatever is wrong with it (empty, cut short, not
    the format its name says, a field missing) is a ScenarioError naming the file and how
    it is damaged, not a parser's traceback."""
    from simq.errors import ScenarioError

    try:
        yield
    except ScenarioError:
        raise
    except Exception as err:  # noqa: BLE001 - any parser's error means the same: damaged
        raise ScenarioError(_cut(path), f"damaged or unreadable: {_why(err)}") from None
