"""The binary sibling of :class:`~quanta.Index`: :class:`IndexBinary`, the base class of every
index over packed binary codes (Hamming distance).

Same protocol as :class:`~quanta.Index` with ``uint8`` codes ``(n, code_size)`` for vectors and
``int32`` distances: ``add``, ``add_with_ids``, ``search(q, k, *, params=None, **shortcuts)``,
``range_search``, ``remove_ids``, ``reconstruct``, ``reset``, saving, pickling and ``repr``.
Filters (``ids_allowed=`` / ``ids_denied=``: int64 ids or a bool mask indexed by id) are
applied inside the scan; the other :class:`~quanta.SearchParameters` fields do not apply.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import _to_numpy, as_codes, as_ids, as_int, positive_int
from .base import SearchParameters, _filter, _ids_or_mask
from .exceptions import ShapeError

__all__ = ["BinaryRangeSearchResult", "BinarySearchResult", "IndexBinary"]

BinarySearchResult = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]
"""``(D, I)``: int32 ``(nq, k)`` Hamming distances and int64 ``(nq, k)`` ids, padded with
``(2**31 - 1, -1)``."""

BinaryRangeSearchResult = tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]
"""``(lims, D, I)`` as faiss: the hits of query ``i`` are ``D[lims[i]:lims[i+1]]``."""

_B = TypeVar("_B", bound="IndexBinary")


class IndexBinary:
    """Base class of every binary index (faiss ``IndexBinary``)."""

    _index: Any
    _kind: ClassVar[str] = ""
    """Kind tag of the core index this class wraps (its file kind)."""
    _classes: ClassVar[dict[str, type[IndexBinary]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls._kind:
            IndexBinary._classes[cls._kind] = cls

    @classmethod
    def _wrap(cls: type[_B], core: Any) -> _B:
        obj = cls.__new__(cls)
        obj._index = core
        return obj

    @staticmethod
    def _from_core(core: Any) -> IndexBinary:
        """The Python object of any core binary index, as the class registered for its kind."""
        return IndexBinary._classes.get(core.kind, IndexBinary)._wrap(core)

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

    @property
    def ntotal(self) -> int:
        """Number of stored codes."""
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def __len__(self) -> int:
        return self.ntotal

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

    def remove_ids(self, ids: Any) -> int:
        """Remove the codes whose id is in ``ids`` (int64, or a bool mask indexed by id);
        returns how many were removed."""
        idv, mask = _ids_or_mask(np.atleast_1d(_to_numpy(ids, "ids")), "ids")
        return int(self._index.remove_ids(ids=idv, mask=mask))

    def reconstruct(self, id: int) -> npt.NDArray[np.uint8]:
        """The stored code with id ``id``, ``(code_size,)`` uint8."""
        out: npt.NDArray[np.uint8] = self._index.reconstruct(as_int(id, "id", -(2**63), 2**63 - 1))
        return out

    def reset(self) -> None:
        """Remove every code."""
        self._index.reset()

    def serialize(self) -> bytes:
        """The index file in memory (the checksummed quanta format)."""
        return bytes(self._index.serialize())

    def _write_index(self, path: str) -> None:
        self._index.write(path)

    def __getstate__(self) -> dict[str, Any]:
        return {"quanta_index": self.serialize()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._index = _core.deserialize_index(state["quanta_index"])

    def __copy__(self: _B) -> _B:
        return type(self)._wrap(self._index.__copy__())

    def __deepcopy__(self: _B, memo: dict[int, Any]) -> _B:
        return type(self)._wrap(self._index.__copy__())

    def _repr_fields(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self._repr_fields()
        extra = f", {extra}" if extra else ""
        return f"{type(self).__name__}(nbits={self.nbits}{extra}, ntotal={self.ntotal})"
