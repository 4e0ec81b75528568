"""Metadata filters of the vector stores, as predicates over a document's metadata dict.

The dict syntax is that of LangChain's FAISS store (and MongoDB's), so filters written for it
keep working:

* ``{"key": value}`` equality; ``{"key": [a, b]}`` membership (the value is one of the list);
* ``{"key": {"$eq" | "$ne" | "$neq" | "$gt" | "$gte" | "$lt" | "$lte" | "$in" | "$nin": v}}``;
* ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}``, ``{"$not": f}``; several keys in one dict
  must all hold.

A missing key never matches (not even ``$ne``/``$nin``), so a filter cannot select documents by
the absence of a field by accident. A comparison between values of incomparable types is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import InvalidArgumentError

__all__ = ["Predicate", "metadata_filter"]

Predicate = Callable[[Mapping[str, Any]], bool]

_MISSING = object()

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "$eq": operator.eq,
    "$ne": operator.ne,
    "$neq": operator.ne,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$in": lambda a, b: a in b,
    "$nin": lambda a, b: a not in b,
}


def metadata_filter(spec: Any) -> Predicate:
    """The predicate of ``spec``: a callable ``metadata -> bool`` (returned as is) or a dict
    in the syntax above (checked now: an unknown operator is an
    :class:`~quanta.InvalidArgumentError`, not a filter that silently matches nothing)."""
    if callable(spec):
        fn: Predicate = spec
        return fn
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(
            f"filter must be a dict or a callable, got {type(spec).__name__}"
        )
    return _compile(spec)


def _compile(spec: Mapping[str, Any]) -> Predicate:
    parts: list[Predicate] = []
    for key, cond in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, (list, tuple)) or not cond:
                raise InvalidArgumentError(f"{key} takes a non-empty list of filters")
            subs = [metadata_filter(c) for c in cond]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(metadata_filter(cond)))
        elif key.startswith("$"):
            raise InvalidArgumentError(f"unknown filter operator {key!r}")
        else:
            parts.append(_field(key, cond))
    return _all(parts)


def _negate(sub: Predicate) -> Predicate:
    return lambda m: not sub(m)


def _all(parts: list[Predicate]) -> Predicate:
    return lambda m: all(p(m) for p in parts)


def _any(parts: list[Predicate]) -> Predicate:
    return lambda m: any(p(m) for p in parts)


def _field(key: str, cond: Any) -> Predicate:
    if isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
        tests = []
        for op, value in cond.items():
            if op not in _COMPARE:
                raise InvalidArgumentError(
                    f"unknown filter operator {op!r} for {key!r}; known: {sorted(_COMPARE)}"
                )
            if op in ("$in", "$nin") and not isinstance(value, (list, tuple, set, frozenset)):
                raise InvalidArgumentError(f"{op} for {key!r} takes a list, got {value!r}")
            tests.append((_COMPARE[op], value))
        return lambda m: _check(m.get(key, _MISSING), tests)
    if isinstance(cond, (list, tuple)):
        return lambda m: _check(m.get(key, _MISSING), [(_COMPARE["$in"], cond)])
    return lambda m: _check(m.get(key, _MISSING), [(operator.eq, cond)])


def _check(value: Any, tests: list[tuple[Callable[[Any, Any], Any], Any]]) -> bool:
    if value is _MISSING:
        return False
    try:
        return all(bool(fn(value, v)) for fn, v in tests)
    except TypeError:
        return False
