"""Indexes with faiss-like names: ``add``, ``search``, ``reconstruct``, ``ntotal``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int
from .exceptions import InvalidArgumentError
from .io import register_index_kind

__all__ = ["IndexFlat", "IndexFlatIP", "IndexFlatL2"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


class IndexFlat:
    """Exact search over the raw vectors (faiss ``IndexFlatL2`` / ``IndexFlatIP``).

    ``search(q, k)`` returns ``(D, I)``: ``D`` float32 ``(nq, k)`` squared L2 distances
    (ascending) or inner products (descending), ``I`` int64 ``(nq, k)`` ids; ties go to the lower
    id; rows are padded with ``-1`` (and ``inf``/``-inf``) when ``k > ntotal``.
    """

    def __init__(self, d: int, metric: str = "l2") -> None:
        d = positive_int(d, "d")
        if metric not in ("l2", "ip"):
            raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
        self._index = _core.IndexFlat(d, metric)

    @property
    def d(self) -> int:
        return self._index.d

    @property
    def metric(self) -> str:
        return self._index.metric

    @property
    def ntotal(self) -> int:
        return self._index.ntotal

    @property
    def is_trained(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._index.ntotal

    def train(self, x: Any) -> None:
        """No-op (a flat index needs no training); validates ``x`` like faiss would use it."""
        as_float_matrix(x, "x", self.d)

    def add(self, x: Any) -> None:
        """Append ``x`` ``(n, d)``; ids continue from ``ntotal``."""
        self._index.add(as_float_matrix(x, "x", self.d))

    def search(self, q: Any, k: int) -> SearchResult:
        """k nearest stored vectors of each query (a 1-D query is one query)."""
        k = positive_int(k, "k")
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        return self._index.search(qs, k)

    def reconstruct(self, i: int) -> npt.NDArray[np.float32]:
        """The stored vector with id ``i``."""
        return self._index.reconstruct(as_int(i, "i", 0, max(self.ntotal - 1, 0)))

    def reconstruct_n(self, i0: int = 0, n: int | None = None) -> npt.NDArray[np.float32]:
        """Stored vectors ``i0 .. i0+n`` as an ``(n, d)`` copy."""
        i0 = as_int(i0, "i0", 0, self.ntotal)
        n = self.ntotal - i0 if n is None else as_int(n, "n", 0, self.ntotal - i0)
        return self._index.reconstruct_n(i0, n)

    def reset(self) -> None:
        """Remove every vector."""
        self._index.reset()

    @property
    def is_mapped(self) -> bool:
        """Whether the vectors are still in a memory-mapped file (``read_index(..., mmap=True)``
        until the first ``add``/``reset``)."""
        return self._index.is_mapped

    def _write_index(self, path: str) -> None:
        self._index.write(path)

    @classmethod
    def _read_index(cls, path: str, mmap: bool) -> IndexFlat:
        self = cls.__new__(cls)
        self._index = _core.IndexFlat.read(path, mmap)
        return self

    def __repr__(self) -> str:
        return f"IndexFlat(d={self.d}, metric={self.metric!r}, ntotal={self.ntotal})"


def IndexFlatL2(d: int) -> IndexFlat:
    """``IndexFlat(d, "l2")``."""
    return IndexFlat(d, "l2")


def IndexFlatIP(d: int) -> IndexFlat:
    """``IndexFlat(d, "ip")``."""
    return IndexFlat(d, "ip")


register_index_kind("IndexFlat", IndexFlat._read_index)
