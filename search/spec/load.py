"""YAML in, a validated :class:`~search.spec.models.Spec` out, once.

``load_spec(path)`` reads a YAML file and returns a :class:`Spec` or raises
:class:`~search.spec.errors.SpecError` listing *every* problem with its file, line and
dotted key. Structural rules live on the models (pydantic, unknown keys forbidden);
rules that need context live in :mod:`search.spec.checks`.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from search.spec.checks import semantic_problems
from search.spec.errors import Problem, SpecError, did_you_mean
from search.spec.models import CategoricalParam, FloatParam, IntParam, Spec
from search.spec.yaml_lines import CyclicYamlError, LineIndex, parse_yaml

__all__ = ["load_spec", "parse_spec", "read_spec_structure", "dump_spec"]


def parse_spec(raw: Any, source: str | Path | None = None, lines: LineIndex | None = None) -> Spec:
    """Validate a mapping as a :class:`Spec`; raise :class:`SpecError` with every problem."""
    lines = lines or LineIndex()
    if not isinstance(raw, dict):
        raise SpecError([Problem("", f"a spec must be a mapping of keys, got {type(raw).__name__}", 1)], source)
    problems: list[Problem] = [
        Problem(".".join(key), f"written twice (lines {first} and {again}); YAML would keep only the second "
                f"value silently: remove one", again)
        for key, first, again in lines.duplicates]
    spec: Spec | None = None
    checked: Spec | None = None  # what the context checks read: the spec, or the rest of it without its errors
    try:
        spec = checked = Spec.model_validate(raw)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(err, raw, lines) for err in exc.errors()]
        checked, removed = _valid_rest(raw, exc)
    if spec is None and checked is not None:  # every problem in one go: the rest is checked too, minus echoes
        problems += [p for p in semantic_problems(raw, checked, lines, source)
                     if p.message.startswith("trainable does not accept")  # a name is checked as written
                     or not any(p.path == r or p.path.startswith(r + ".") or r.startswith(p.path + ".") for r in removed)]
    else:
        problems += semantic_problems(raw, spec, lines, source)
    if problems:
        raise SpecError(_dedupe(problems), source)
    assert spec is not None  # no problems means validation passed
    return spec


def _valid_rest(raw: dict[str, Any], exc: ValidationError, tries: int = 3) -> tuple[Spec | None, list[str]]:
    """The spec without the keys pydantic refused (their defaults instead), and the dotted keys removed; None when
    the rest does not validate either (a rule across sections)."""
    import copy

    rest, removed = copy.deepcopy(raw), []
    for _ in range(tries):
        locs = [[str(p) for p in err["loc"]] for err in exc.errors()]
        if not locs or any(not loc for loc in locs):
            return None, removed
        for loc in locs:
            loc = loc[:2] if loc[0] == "space" else loc  # a parameter is one thing: drop it whole
            parent = _lookup(rest, loc[:-1]) if len(loc) > 1 else rest
            if isinstance(parent, dict) and loc[-1] in parent:
                del parent[loc[-1]]
                removed.append(".".join(loc))
            elif isinstance(parent, list) and loc[-1].isdigit() and int(loc[-1]) < len(parent):
                parent[int(loc[-1])] = None
                removed.append(".".join(loc))
            else:
                return None, removed
        try:
            return Spec.model_validate(rest), removed
        except ValidationError as again:
            exc = again
    return None, removed


def dump_spec(spec: Spec) -> str:
    """The spec as YAML, every field written out: the copy an experiment keeps (``load_spec`` reads it back)."""
    import yaml

    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


def read_spec_structure(path: str | Path) -> Spec:
    """A spec file checked for its structure only (the models' rules), not for what needs context.

    For an experiment's own copy (``spec.yaml``), read where the trainable may not import and the
    data file may not exist (a folder copied from elsewhere, a resume before its checks).

    Raises:
        OSError, yaml.YAMLError, pydantic.ValidationError: the file is unreadable or not a spec.
    """
    from search.spec.yaml_lines import SpecLoader

    return Spec.model_validate(yaml.load(Path(path).read_text(), Loader=SpecLoader))  # noqa: S506 - a SafeLoader


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read, parse and validate a YAML spec file.

    ``overrides`` are dotted keys set before validation (``{"search.num_samples": 4}``),
    used by the command line's ``--num-samples`` and friends.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError([Problem("", "file not found" if not path.exists() else "not a file")], path)
    try:
        raw, lines = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem("", f"YAML syntax error{col}: {reason}", line)], path) from None
    except CyclicYamlError as exc:
        raise SpecError([Problem("", str(exc), exc.line)], path) from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_spec(raw, path, lines)


def _set_dotted(raw: Any, dotted: str, value: Any) -> None:
    if not isinstance(raw, dict):
        return
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[last] = value


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _problem_from_pydantic(err: dict[str, Any], raw: dict[str, Any], lines: LineIndex) -> Problem:
    loc = [str(p) for p in err["loc"]]
    # Discriminated unions add the tag ("float") to the location: drop it for users.
    loc = [p for i, p in enumerate(loc) if not (i >= 2 and loc[0] == "space" and i == 2 and p in ("float", "int", "categorical"))]
    kind = err["type"]
    message = _MESSAGES.get(kind, err["msg"].removeprefix("Value error, "))
    if kind == "extra_forbidden":
        siblings = _allowed_keys(loc[:-1], raw)
        message += did_you_mean(loc[-1], siblings) + (f"; allowed: {', '.join(sorted(siblings))}" if siblings else "")
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = "parameter 'type' must be one of float, int, categorical"
        tag = _lookup(raw, loc + ["type"])
        if isinstance(tag, str):
            message += f" (got {tag!r}{did_you_mean(tag, ['float', 'int', 'categorical'])})"
    elif "input" in err and kind not in ("missing",) and not isinstance(err["input"], (dict, list)):
        message += f" (got {err['input']!r})"
    if not loc and (named := re.match(r"([a-z_]+(?:\.[A-Za-z0-9_]+)*): ", message)):
        loc = named.group(1).split(".")  # a rule across sections (Spec's own validator) names its key first
        message = message[named.end():]
    return Problem(".".join(loc), message, lines.line_of(loc))


def _allowed_keys(loc: list[str], raw: dict[str, Any]) -> list[str]:
    """The keys the model at ``loc`` accepts, for "did you mean" on an unknown one."""
    model: Any = Spec
    for i, part in enumerate(loc):
        if model is Spec and part == "space":
            node = _lookup(raw, loc[: i + 2] + ["type"]) if i + 1 < len(loc) else None
            model = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}.get(node)
            if model is None:
                return []
            break
        field = getattr(model, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _lookup(raw: Any, loc: list[str]) -> Any:
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return sorted(out, key=lambda p: (p.line if p.line is not None else 10**9, p.path))
