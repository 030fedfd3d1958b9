"""Write a benchmark's figures into the README, between that benchmark's own markers.

Each benchmark owns one block::

    <!-- bench:NAME:start -->
    ...table...
    <!-- bench:NAME:end -->

:func:`write_table` replaces only the text between the two markers, so the rest of the
README (which people edit by hand) is never touched. When the README or the markers are
missing, the block is added under a ``## Benchmarks`` heading (created at the end of the
file if there is none yet). The file is read once and written once, through a temporary
file and :func:`os.replace`, so a crash never leaves half a README.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

__all__ = ["README", "HEADING", "markers", "write_table"]

#: The repository's README (this file lives in ``<repo>/benchmarks/``).
README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Benchmarks"


def markers(marker: str) -> tuple[str, str]:
    """The start and end comments that delimit benchmark ``marker``'s block."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", marker):
        raise ValueError(f"benchmark marker {marker!r} must be letters, digits, '_', '.' or '-'")
    return f"<!-- bench:{marker}:start -->", f"<!-- bench:{marker}:end -->"


def write_table(marker: str, markdown: str, readme: Path = README) -> Path:
    """Put ``markdown`` between benchmark ``marker``'s markers in ``readme``; return its path.

    Raises:
        ValueError: the markers are present but malformed (duplicated, or the end comes
            before the start); the README is left as it was, for a person to fix.
    """
    start, end = markers(marker)
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    block = f"{start}\n{markdown.strip()}\n{end}"
    counts = (text.count(start), text.count(end))
    if counts == (1, 1) and text.index(start) < text.index(end):
        head, rest = text.split(start, 1)
        new_text = head + block + rest.split(end, 1)[1]
    elif counts == (0, 0):
        new_text = _insert_under_heading(text, block)
    else:
        raise ValueError(f"{readme}: expected one {start!r} followed by one {end!r}, found {counts[0]} start and "
                         f"{counts[1]} end marker(s); fix or remove them by hand, then run the benchmark again")
    if new_text != text:
        tmp = readme.with_name(f".{readme.name}.{os.getpid()}.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, readme)
    return readme


def _insert_under_heading(text: str, block: str) -> str:
    """Append ``block`` to the end of the Benchmarks section, creating the section if needed."""
    heading = re.search(rf"^{re.escape(HEADING)}[ \t]*$", text, flags=re.MULTILINE)
    if heading is None:
        prefix = text.rstrip("\n") + "\n\n" if text.strip() else ""
        return f"{prefix}{HEADING}\n\n{block}\n"
    # The section ends at the next heading of the same or a higher level (or at the end).
    following = re.search(r"^#{1,2} ", text[heading.end():], flags=re.MULTILINE)
    cut = heading.end() + following.start() if following else len(text)
    section, tail = text[:cut].rstrip("\n"), text[cut:]
    return f"{section}\n\n{block}\n" + (f"\n{tail}" if tail else "")


def cpu_name() -> str:
    """The CPU's model name for a benchmark's machine line ("unknown CPU" if none is found)."""
    cpu = platform.processor()
    if not cpu and Path("/proc/cpuinfo").exists():
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else ""
    return cpu or "unknown CPU"
