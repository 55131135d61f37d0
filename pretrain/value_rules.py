"""Value rules: small predicates with the words that say what they allow, checked for a whole config at
once so one error lists every bad value. Used by the pretraining config (``pretrain.config``), the
classification config and detectron2's override check (``transfer.det.configs``).

    RULES = {"epochs": (int_from(1), "an integer >= 1"), "lr": (optional(number(0, low_open=True)), ...)}
    for key, value, allowed in broken_rules(values, RULES): ...

``type_rule(hint)`` derives a rule from a dataclass field's annotation (``int``, ``float``, ``str``,
``bool``, ``dict``, ``tuple[float, float]``, ``X | None``), so every field of a typed config is checked
even where no value rule narrows it further.
"""
from __future__ import annotations

import math
import types
import typing
from typing import Any, Callable, Iterator, Mapping

Check = Callable[[Any], bool]
Rule = tuple[Check, str]  # (predicate, what is allowed: "an integer >= 1")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def int_from(low: int) -> Check:
    """An integer (not a bool) >= ``low``."""
    return lambda v: _is_int(v) and v >= low


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Check:
    """A finite int or float in [low, high]; ``low_open`` / ``high_open`` exclude the ends."""
    def check(v: Any) -> bool:
        return _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    return check


def one_of(*choices: Any) -> Check:
    return lambda v: any(v == c and type(v) is type(c) for c in choices)


def optional(check: Check) -> Check:
    """None, or what ``check`` allows."""
    return lambda v: v is None or check(v)


def broken_rules(values: Mapping[str, Any], rules: Mapping[str, Rule]) -> Iterator[tuple[str, Any, str]]:
    """(key, value, what is allowed) for every key of ``rules`` present in ``values`` whose value fails."""
    for key, (ok, allowed) in rules.items():
        if key in values and not ok(values[key]):
            yield key, values[key], allowed


# ------------------------------------------------------------------------------------ from type hints
_SIMPLE: dict[type, Rule] = {
    bool: (lambda v: isinstance(v, bool), "True or False"),
    int: (_is_int, "an integer"),
    float: (_is_number, "a number"),
    str: (lambda v: isinstance(v, str), "a string"),
    dict: (lambda v: isinstance(v, dict), "a dict"),
}


def _tuple_rule(args: tuple) -> Rule:
    """``tuple[float, float]``: a tuple or list (JSON gives lists) of that many items of those types."""
    inner = [type_rule(a) for a in args]
    what = ", ".join(w for _, w in inner)
    return (lambda v: isinstance(v, (tuple, list)) and len(v) == len(inner)
            and all(ok(x) for (ok, _), x in zip(inner, v))), f"a pair/tuple of ({what})"


def type_rule(hint: Any) -> Rule:
    """The rule a field annotation implies (resolved hints: ``typing.get_type_hints``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [type_rule(a) for a in args if a is not type(None)]
        allow_none = type(None) in args
        what = " or ".join(w for _, w in parts) + (" or None" if allow_none else "")
        return (lambda v: (allow_none and v is None) or any(ok(v) for ok, _ in parts)), what
    if origin is tuple:
        return _tuple_rule(args)
    base = origin or hint
    if base in _SIMPLE:
        return _SIMPLE[base]
    raise TypeError(f"no value rule for the annotation {hint!r}: add an explicit rule for this field")
