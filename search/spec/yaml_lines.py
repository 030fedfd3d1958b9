"""YAML parsing that remembers the line of every key, for error messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["LineIndex", "parse_yaml"]


class LineIndex:
    """Maps a key path (``("space", "lr", "low")``) to its 1-based line in the file."""

    def __init__(self, lines: dict[tuple[str, ...], int] | None = None) -> None:
        self._lines = lines or {}

    def line_of(self, path: Sequence[str]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        key = tuple(str(p) for p in path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)


def parse_yaml(text: str) -> tuple[Any, LineIndex]:
    """Load YAML safely and index each mapping key's and list item's line."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return None, LineIndex()
    lines: dict[tuple[str, ...], int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines)
    return yaml.safe_load(text), LineIndex(lines)


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines)
