"""Write the results table as CSV, Parquet, JSON, Markdown or HTML, atomically.

Every format is rendered to bytes in memory first, then written to a temporary file in
the target's folder and renamed over the target: a failure at any point leaves a file
that was already there untouched, and never a partial one in its place.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from search.results.folder import ResultsError
from search.spec.errors import did_you_mean
from trainables import files

__all__ = ["FORMATS", "format_for", "render_table", "write_table", "write_output", "to_markdown"]

#: File suffix -> format name.
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".md": "md",
            ".markdown": "md", ".html": "html", ".htm": "html"}


def format_for(path: str | Path | None, fmt: str | None) -> str:
    """The format to write: ``fmt`` when given, else from the file's suffix, else CSV.

    Raises:
        ResultsError: an unknown format name or suffix.
    """
    if fmt is not None:
        name = fmt.lower().lstrip(".")
        if name not in FORMATS:
            raise ResultsError(f"unknown format {fmt!r}{did_you_mean(name, FORMATS)}; choices: {', '.join(FORMATS)}")
        return name
    if path is None:
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ResultsError(f"cannot tell the format of {str(path)!r} from its suffix {suffix or '(none)'!r}; "
                           f"use --format with one of: {', '.join(FORMATS)}")
    return SUFFIXES[suffix]


def _python(value: Any) -> Any:
    """A JSON-ready scalar: numpy scalars unwrapped, NaN / NA / inf as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{col: _python(val) for col, val in zip(df.columns, row)} for row in df.itertuples(index=False)]


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def _json(df: pd.DataFrame) -> bytes:
    # Exact floats (repr), unlike DataFrame.to_json's 15 digits: parameters round-trip.
    return (json.dumps(_records(df), indent=2, allow_nan=False) + "\n").encode()


def _cell(value: Any) -> str:
    value = _python(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (floats to 4 significant digits)."""
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def _md(df: pd.DataFrame) -> bytes:
    return to_markdown(df).encode()


def _html(df: pd.DataFrame) -> bytes:
    title = html.escape(str(df.attrs.get("experiment", "results")))
    table = df.to_html(index=False, na_rep="", border=0, classes="results")
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n"
            "<style>body{font-family:sans-serif}table.results{border-collapse:collapse;font-size:13px}"
            "table.results td,table.results th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
            "</style></head>\n<body>\n" + table + "\n</body></html>\n")
    return page.encode()


def _parquet(df: pd.DataFrame) -> bytes:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ResultsError("the parquet format needs pyarrow: pip install pyarrow") from None
    frame = df.copy()
    frame.attrs = {k: (str(v) if isinstance(v, Path) else v) for k, v in df.attrs.items()}
    for col in frame.columns[frame.dtypes == object]:
        kinds = {type(v) for v in frame[col].dropna()}
        if len(kinds) > 1:  # e.g. a categorical parameter with choices [32, "auto"]: one type per column
            frame[col] = frame[col].map(lambda v: None if pd.isna(v) else str(v))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


FORMATS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "csv": _csv, "parquet": _parquet, "json": _json, "md": _md, "html": _html,
}


def render_table(df: pd.DataFrame, fmt: str) -> bytes:
    """The table in one format, as bytes."""
    return FORMATS[format_for(None, fmt)](df)


def write_output(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`trainables.files.atomic_write`).

    Raises:
        ResultsError: the folder does not exist, or ``path`` is a folder.
        OSError: the write or the rename failed (the target is then unchanged).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ResultsError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ResultsError(f"cannot write {path}: it is a folder; give a file name")
    return files.atomic_write(path, data)


def write_table(df: pd.DataFrame, path: Path, fmt: str | None = None) -> Path:
    """Render ``df`` (format from ``fmt`` or the suffix) and write it atomically to ``path``."""
    return write_output(path, render_table(df, format_for(path, fmt)))
