"""The installed version of simq, read from the package metadata when first asked."""

from __future__ import annotations

from functools import cache


@cache
def version() -> str:
    """The version pip installed (``0.0.0`` in a source tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("simq")
    except PackageNotFoundError:
        return "0.0.0"
