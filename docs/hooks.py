"""mkdocs hook: a link from a page to a file of the repository outside docs/ (the README,
results/, benchmarks/, models/) works when the Markdown is read in the repository but has
no page on the site; on the site it becomes the file's path in the repository, as text.
A link to a file that does not exist is left alone, so that the strict build still fails
on it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(((?:\.\./)+[^)#\s]*)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    here = (docs / page.file.src_path).parent

    def outside(m: re.Match[str]) -> str:
        target = (here / m.group(2)).resolve()
        if target.is_relative_to(docs) or not target.exists() \
                or not target.is_relative_to(root):
            return m.group(0)
        if target.suffix == ".ipynb" and target.parent == root / "notebooks":
            # A notebook has its page: docs/notebooks is the repository's notebooks/.
            page_rel = Path(*[".."] * len(here.relative_to(docs).parts), "notebooks",
                            target.name)
            return f"[{m.group(1)}]({page_rel.as_posix()}{m.group(3) or ''})"
        rel = target.relative_to(root).as_posix() + ("/" if target.is_dir() else "")
        return f"{m.group(1)} (`{rel}` in the repository)"

    return _LINK.sub(outside, markdown)
