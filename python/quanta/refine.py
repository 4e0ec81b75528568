"""Exact re-ranking of another index's candidates: :class:`IndexRefineFlat`."""

from __future__ import annotations

from typing import Any

from . import _core
from ._validation import positive_int
from .base import Index
from .exceptions import DTypeError

__all__ = ["IndexRefineFlat"]


class IndexRefineFlat(Index):
    """Re-rank another index's candidates with exact distances (faiss ``IndexRefineFlat``).

    ``add`` stores the raw vectors (float32) next to the base index; ``search(q, k)`` asks the
    base index for ``k * k_factor`` candidates (``k_factor`` default 1, saved with the index;
    ``k_factor=`` overrides it per call) and returns the ``k`` best by exact squared L2 (or inner
    product, following the base index's ``metric``), ties to the lower id. The base index gets
    the call's other search parameters and filters, and ``k_factor=1`` (no re-ranking of its
    own); its ids must be positions (any index but an id map).

    Holds a copy of ``base_index``, which must be empty (train it before or through this index).
    """

    _kind = "IndexRefineFlat"

    def __init__(self, base_index: Index, k_factor: int = 1) -> None:
        if not isinstance(base_index, Index):
            raise DTypeError(
                "base_index must be a quanta Index with a metric ('l2' or 'ip'), got "
                f"{type(base_index).__name__}"
            )
        self._index = _core.IndexRefineFlat(base_index._index, positive_int(k_factor, "k_factor"))

    @property
    def base_index(self) -> Index:
        """A copy of the base index."""
        return Index._from_core(self._index.base_index)

    @property
    def k_factor(self) -> int:
        """Candidates per result asked from the base index (saved with the index)."""
        return int(self._index.k_factor)

    @k_factor.setter
    def k_factor(self, value: Any) -> None:
        self._index.k_factor = positive_int(value, "k_factor")

    def _repr_fields(self) -> str:
        return f"base_index={type(self.base_index).__name__}, k_factor={self.k_factor}"
