"""The binary sibling of :class:`~quanta.Index`: :class:`IndexBinary`, the base class of every
index over packed binary codes (Hamming distance).

Same protocol as :class:`~quanta.Index` with ``uint8`` codes ``(n, code_size)`` for vectors and
``int32`` distances: ``add``, ``add_with_ids``, ``search(q, k, *, params=None, **shortcuts)``,
``range_search``, ``remove_ids``, ``reconstruct``, ``reset``, saving, pickling and ``repr``.
Filters (``ids_allowed=`` / ``ids_denied=``: int64 ids or a bool mask indexed by id) are
applied inside the scan; the other :class:`~quanta.SearchParameters` fields do not apply.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ._progress import make_progress
from ._validation import as_codes, as_ids, as_int, positive_int
from .base import CoreWrapper, SearchParameters, _filter
from .exceptions import ShapeError

__all__ = ["BinaryRangeSearchResult", "BinarySearchResult", "IndexBinary"]

BinarySearchResult = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]
"""``(D, I)``: int32 ``(nq, k)`` Hamming distances and int64 ``(nq, k)`` ids, padded with
``(2**31 - 1, -1)``."""

BinaryRangeSearchResult = tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]
"""``(lims, D, I)`` as faiss: the hits of query ``i`` are ``D[lims[i]:lims[i+1]]``."""


class IndexBinary(CoreWrapper):
    """Base class of every binary index (faiss ``IndexBinary``)."""

    _classes: ClassVar[dict[str, type[CoreWrapper]]] = {}

    @property
    def nbits(self) -> int:
        """Bits per code."""
        return int(self._index.nbits)

    @property
    def d(self) -> int:
        """Bits per code (faiss names it ``d``)."""
        return self.nbits

    @property
    def code_size(self) -> int:
        """Bytes per code."""
        return int(self._index.code_size)

    def add(self, codes: Any) -> None:
        """Append ``(n, code_size)`` uint8 codes."""
        self._index.add(as_codes(codes, "codes", self.code_size))

    def add_with_ids(self, codes: Any, ids: Any) -> None:
        """Append codes with explicit int64 ids (``>= 0``)."""
        c = as_codes(codes, "codes", self.code_size)
        i = as_ids(ids, "ids")
        if i.shape[0] != c.shape[0]:
            raise ShapeError(f"ids has {i.shape[0]} entries, expected one per code ({c.shape[0]})")
        self._index.add_with_ids(c, i)

    def _kwargs(self, params: SearchParameters | None, shortcuts: dict[str, Any]) -> Any:
        p = (params or SearchParameters())._merged(shortcuts)
        ids, mask, deny = _filter(p.ids_allowed, p.ids_denied)
        return {"filter_ids": ids, "filter_mask": mask, "deny": deny}

    def search(
        self,
        q: Any,
        k: int,
        *,
        params: SearchParameters | None = None,
        verbose: bool = False,
        **shortcuts: Any,
    ) -> BinarySearchResult:
        """k nearest codes of each query (a 1-D query is one query); ``ids_allowed=`` /
        ``ids_denied=`` (or ``params``) filter inside the scan."""
        k = positive_int(k, "k")
        kw = self._kwargs(params, shortcuts)
        qs = as_codes(q, "queries", self.code_size, allow_1d=True, allow_empty=True)
        progress = make_progress(verbose, f"{type(self).__name__} search")
        out: BinarySearchResult = self._index.search(qs, k, progress=progress, **kw)
        return out

    def range_search(
        self, q: Any, radius: int, *, params: SearchParameters | None = None, **shortcuts: Any
    ) -> BinaryRangeSearchResult:
        """Codes at Hamming distance ``< radius``: ``(lims (nq+1,), D, I)``."""
        radius = as_int(radius, "radius", 0, 2**31 - 1)
        kw = self._kwargs(params, shortcuts)
        qs = as_codes(q, "queries", self.code_size, allow_1d=True, allow_empty=True)
        out: BinaryRangeSearchResult = self._index.range_search(qs, radius, **kw)
        return out

    def reconstruct(self, id: int) -> npt.NDArray[np.uint8]:
        """The stored code with id ``id``, ``(code_size,)`` uint8."""
        out: npt.NDArray[np.uint8] = self._index.reconstruct(as_int(id, "id", -(2**63), 2**63 - 1))
        return out

    def _repr_parts(self) -> list[str]:
        return [f"nbits={self.nbits}", *super()._repr_parts()]
