"""YAML parsing that remembers the line of every key, for error messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

__all__ = ["LineIndex", "parse_yaml", "SpecLoader", "CyclicYamlError"]


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does.

    PyYAML follows YAML 1.1, where ``1e-3`` (no dot) and ``1E5`` are strings: ``lr: 1e-3``
    became the text "1e-3" and every trial failed. YAML 1.2's core schema (and every other
    YAML library people use) reads them as floats; so does this loader.
    """


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


class CyclicYamlError(ValueError):
    """An anchor whose value contains its own alias (``a: &x [*x]``): a structure with no end."""

    def __init__(self, line: int | None) -> None:
        super().__init__("an anchor refers to itself (its value contains its own alias *name), which makes a value "
                         "with no end; write the value out instead")
        self.line = line


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
    """Load YAML safely (numbers as YAML 1.2 reads them) and index each mapping key's and list item's line.

    Raises:
        yaml.YAMLError: a syntax error (with its mark).
        CyclicYamlError: an anchor that contains its own alias.
    """
    node = yaml.compose(text, Loader=SpecLoader)
    if node is None:
        return None, LineIndex()
    _refuse_cycles(node, set())
    lines: dict[tuple[str, ...], int] = {(): node.start_mark.line + 1}
    duplicates: list[tuple[tuple[str, ...], int, int]] = []
    _walk(node, (), lines, duplicates)
    return yaml.load(text, Loader=SpecLoader), LineIndex(lines, duplicates)  # noqa: S506 - SpecLoader is a SafeLoader


def _refuse_cycles(node: yaml.Node, open_nodes: set[int]) -> None:
    if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return
    if id(node) in open_nodes:
        raise CyclicYamlError(node.start_mark.line + 1)
    open_nodes.add(id(node))
    children = [v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else node.value
    for child in children:
        _refuse_cycles(child, open_nodes)
    open_nodes.discard(id(node))


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
