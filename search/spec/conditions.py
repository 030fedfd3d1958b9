"""A parameter's ``when`` conditions: what they may say, whether they hold, and how the plan reads them.

``when: {parent: condition}``, one entry per parent, all of which must hold. A condition is a value
(``{optimizer: adamw}``: equal to it), a list (``{optimizer: [adamw, sgd]}``: one of them), or a mapping
of operators, all of which must hold (``{n_layers: {ge: 2}}``, ``{lr: {gt: 0.001, le: 0.01}}``), so
Optuna's per-layer examples (``for i in range(n_layers)``) translate directly. Comparisons (lt, le, gt,
ge) need an ``int`` or ``float`` parent; equality and ``in`` suit ``categorical`` and ``int`` parents,
not ``float`` ones (a sampled float is almost never exactly a given value). The parent must be
declared first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from search.spec.errors import did_you_mean

__all__ = ["OPERATORS", "COMPARISONS", "clauses", "holds", "condition_problems", "describe_condition"]

#: Operator name -> (test, how the plan writes it).
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "eq": (operator.eq, "=="), "ne": (operator.ne, "!="), "lt": (operator.lt, "<"), "le": (operator.le, "<="),
    "gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "in": (lambda value, allowed: value in allowed, "in"),
}
#: The operators that order values: only for int and float parents.
COMPARISONS = frozenset({"lt", "le", "gt", "ge"})


def clauses(condition: Any) -> list[tuple[str, Any]]:
    """``[(operator, operand), ...]`` of one parent's condition: a value is ``eq``, a list is ``in``."""
    if isinstance(condition, Mapping):
        return list(condition.items())
    if isinstance(condition, list):
        return [("in", condition)]
    return [("eq", condition)]


def holds(condition: Any, value: Any) -> bool:
    """True when ``value`` (the parent's sampled value) meets every clause of ``condition``."""
    for op, operand in clauses(condition):
        test = OPERATORS[op][0]
        try:
            if not test(value, operand):
                return False
        except TypeError:  # a comparison of unlike types: the condition does not hold
            return False
    return True


def _fits(name: str, parent: Any, value: Any) -> str | None:
    """Why ``value`` cannot be a value of parameter ``parent`` (None when it can)."""
    if parent.type == "categorical":
        return None if value in parent.choices else f"{value!r} is not one of {name!r}'s choices {parent.choices}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number; {name!r} is {'a float' if parent.type == 'float' else 'an int'} parameter"
    if parent.type == "int" and value != int(value):
        return f"{value!r} is not a whole number; {name!r} is an int parameter"
    return None


def condition_problems(parent_name: str, parent: Any, condition: Any) -> list[str]:
    """What is wrong with ``condition`` on parameter ``parent`` (declared, of that name); empty when fine."""
    problems: list[str] = []
    for op, operand in clauses(condition):
        if op not in OPERATORS:
            problems.append(f"unknown operator {op!r}{did_you_mean(str(op), OPERATORS)}; operators: "
                            f"{', '.join(OPERATORS)}")
            continue
        if op not in COMPARISONS and parent.type == "float":
            problems.append(f"conditions must refer to a categorical parameter, an int one, or compare a float one "
                            f"(lt, le, gt, ge): {parent_name!r} is a float, almost never exactly {operand!r}")
            continue
        if op in COMPARISONS and parent.type == "categorical":
            problems.append(f"{op!r} compares numbers, and {parent_name!r} is categorical: use eq, ne or in "
                            "(or a value, or a list of values)")
            continue
        if op == "in" and not isinstance(operand, list):
            problems.append(f"'in' takes a list of values, got {operand!r}")
            continue
        if op != "in" and isinstance(operand, (list, Mapping)):
            problems.append(f"{op!r} takes one value, got {operand!r}")
            continue
        for value in operand if op == "in" else [operand]:
            if (why := _fits(parent_name, parent, value)) is not None:
                problems.append(why)
    if isinstance(condition, Mapping) and not condition:
        problems.append("an empty condition; give a value, a list, or operators such as {ge: 2}")
    return problems


def describe_condition(parent: str, condition: Any) -> str:
    """``n_layers >= 2``, ``optimizer == 'adamw'``, ``optimizer in ['adamw', 'sgd']`` (clauses joined by ``and``)."""
    return " and ".join(f"{parent} {OPERATORS[op][1]} {operand!r}" if op in OPERATORS else f"{parent} {op} {operand!r}"
                        for op, operand in clauses(condition))
