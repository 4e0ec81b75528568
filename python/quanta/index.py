"""Flat indexes (faiss ``IndexFlatL2`` / ``IndexFlatIP``) and :class:`IndexIDMap`."""

from __future__ import annotations

from typing import Any

from . import _core
from ._validation import positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError

__all__ = ["IndexFlat", "IndexFlatIP", "IndexFlatL2", "IndexIDMap"]


def check_metric(metric: str) -> str:
    """``metric`` if it is ``"l2"`` or ``"ip"``, else an :class:`InvalidArgumentError`."""
    if metric not in ("l2", "ip"):
        raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
    return metric


class IndexFlat(Index):
    """Exact search over the raw vectors (faiss ``IndexFlatL2`` / ``IndexFlatIP``); ids are
    insertion positions (``remove_ids`` renumbers, as faiss), ties go to the lower id."""

    _kind = "IndexFlat"

    def __init__(self, d: int, metric: str = "l2") -> None:
        self._index = _core.IndexFlat(positive_int(d, "d"), check_metric(metric))


def IndexFlatL2(d: int) -> IndexFlat:
    """``IndexFlat(d, "l2")``."""
    return IndexFlat(d, "l2")


def IndexFlatIP(d: int) -> IndexFlat:
    """``IndexFlat(d, "ip")``."""
    return IndexFlat(d, "ip")


class IndexIDMap(Index):
    """Explicit int64 ids over an index that numbers vectors by position (faiss
    ``IndexIDMap2``): ``add_with_ids``, ``remove_ids`` and ``reconstruct`` by id; search
    filters (``ids_allowed=``/``ids_denied=``) are given in these ids.

    Wraps a copy of ``index``, which must be empty (train it first if it needs training)."""

    _kind = "IndexIDMap"

    def __init__(self, index: Index) -> None:
        if not isinstance(index, Index):
            raise DTypeError(f"index must be a quanta Index, got {type(index).__name__}")
        self._index = _core.IndexIDMap(index._index)

    @property
    def index(self) -> Index:
        """A copy of the wrapped index."""
        return Index._from_core(self._index.index)

    @property
    def id_map(self) -> Any:
        """int64 ids of the stored vectors, in insertion order (a copy)."""
        return self._index.id_map

    def add(self, x: Any, *, verbose: bool = False) -> None:
        """Not available: an id map needs ids (:meth:`add_with_ids`)."""
        raise InvalidArgumentError("IndexIDMap needs ids: use add_with_ids(x, ids)")

    def _repr_fields(self) -> str:
        return f"index={type(self.index).__name__}"
