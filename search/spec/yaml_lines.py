"""YAML parsing that remembers the line of every key, for error messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["LineIndex", "parse_yaml"]


class LineIndex:
    """Maps a key path (``("space", "lr", "low")``) to its 1-based line in the file."""

    def __init__(self, lines: dict[tuple[str, ...], int] | None = None,
                 duplicates: Sequence[tuple[tuple[str, ...], int, int]] = ()) -> None:
        self._lines = lines or {}
        #: Keys written twice in one mapping: (key path, first line, later line). YAML keeps the later value.
        self.duplicates = list(duplicates)

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
    duplicates: list[tuple[tuple[str, ...], int, int]] = []
    _walk(node, (), lines, duplicates)
    return yaml.safe_load(text), LineIndex(lines, duplicates)


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int],
          duplicates: list[tuple[tuple[str, ...], int, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if child[-1] in first and key_node.tag != "tag:yaml.org,2002:merge":  # `<<:` merges, it is no key
                duplicates.append((child, first[child[-1]], line))
            first.setdefault(child[-1], line)
            lines[child] = line
            _walk(value_node, child, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines, duplicates)
