"""Write a benchmark's figures into ``docs/benchmarks.md``, between that benchmark's own markers.

Each benchmark owns one block of the page::

    <!-- bench:NAME:start -->
    ...table...
    <!-- bench:NAME:end -->

:func:`write_table` replaces only the text between the two markers, so the rest of the page
(the readings people write by hand around each table) is never touched. When the page or the
markers are missing, the block is added at the end of the page (a new page starts with a
``# Benchmarks`` title). The file is read once and written once, through a temporary file and
:func:`os.replace`, so a crash never leaves half a page.

The scripts write their links (``![curves](docs/search_efficiency.svg)``) from the repository
root, as a reader of the repository names files; :func:`write_table` rewrites them relative to
the page, so they work where the page lies.

(The module keeps its old name, and the scripts their ``--write-readme`` options, from when the
tables lived in the README.)
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

__all__ = ["REPO", "BENCHMARKS_PAGE", "TITLE", "markers", "write_table", "cpu_name"]

#: The repository root (this file lives in ``<repo>/benchmarks/``).
REPO = Path(__file__).resolve().parent.parent
#: The docs page that holds every benchmark's table.
BENCHMARKS_PAGE = REPO / "docs" / "benchmarks.md"
#: The first line of a page this module has to create.
TITLE = "# Benchmarks"

# A Markdown link or image target: ``](target)`` or ``](target "title")``.
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?P<rest>[^)]*)\)")


def markers(marker: str) -> tuple[str, str]:
    """The start and end comments that delimit benchmark ``marker``'s block."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", marker):
        raise ValueError(f"benchmark marker {marker!r} must be letters, digits, '_', '.' or '-'")
    return f"<!-- bench:{marker}:start -->", f"<!-- bench:{marker}:end -->"


def write_table(marker: str, markdown: str, page: Path = BENCHMARKS_PAGE) -> Path:
    """Put ``markdown`` between benchmark ``marker``'s markers in ``page``; return its path.

    Links in ``markdown`` name files from the repository root; they are rewritten relative
    to ``page``.

    Raises:
        ValueError: the markers are present but malformed (duplicated, or the end comes
            before the start); the page is left as it was, for a person to fix.
    """
    start, end = markers(marker)
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    block = f"{start}\n{_relink(markdown.strip(), page)}\n{end}"
    counts = (text.count(start), text.count(end))
    if counts == (1, 1) and text.index(start) < text.index(end):
        head, rest = text.split(start, 1)
        new_text = head + block + rest.split(end, 1)[1]
    elif counts == (0, 0):
        new_text = _append(text, block)
    else:
        raise ValueError(f"{page}: expected one {start!r} followed by one {end!r}, found {counts[0]} start and "
                         f"{counts[1]} end marker(s); fix or remove them by hand, then run the benchmark again")
    if new_text != text:
        page.parent.mkdir(parents=True, exist_ok=True)
        tmp = page.with_name(f".{page.name}.{os.getpid()}.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, page)
    return page


def _append(text: str, block: str) -> str:
    """``block`` at the end of the page; a page that does not exist yet gets its title first."""
    prefix = text.rstrip("\n") if text.strip() else TITLE
    return f"{prefix}\n\n{block}\n"


def _relink(markdown: str, page: Path) -> str:
    """Rewrite relative link targets written from the repository root so they resolve from ``page``."""
    base = page.resolve().parent

    def relative(match: re.Match[str]) -> str:
        target = match["target"]
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match[0]  # a URL, an anchor or an absolute path: left as written
        moved = Path(os.path.relpath(REPO / target, base)).as_posix()
        return f"]({moved}{match['rest']})"

    return _LINK.sub(relative, markdown)


def cpu_name() -> str:
    """The CPU's model name for a benchmark's machine line ("unknown CPU" if none is found)."""
    cpu = platform.processor()
    if not cpu and Path("/proc/cpuinfo").exists():
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else ""
    return cpu or "unknown CPU"
