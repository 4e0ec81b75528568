"""Inverted-file indexes (IVFADC, Jégou et al. 2011; faiss ``IndexIVFFlat`` / ``IndexIVFPQ``).

A coarse quantizer (k-means with ``nlist`` centroids) assigns every vector to one inverted
list. ``search(q, k, nprobe)`` visits the ``nprobe`` lists whose centroids are nearest to the
query and ranks their entries: by exact distances (:class:`IndexIVFFlat`) or by ADC distances
of the PQ-encoded residuals ``x - centroid`` (:class:`IndexIVFPQ`, L2 tables built from the
faiss "precomputed table" decomposition).

Ids: ``add`` numbers vectors ``ntotal, ntotal + 1, ...`` (as faiss; after ``remove_ids`` these
may repeat ids still present, so use ``add_with_ids`` with int64 ids when removing).
``remove_ids`` returns how many entries were removed; absent ids are ignored.

Filtered search: ``search(..., ids_allowed=...)`` or ``ids_denied=...`` with an int64 array
of ids or a bool mask indexed by id (``mask[i]`` is id ``i``; ids past the mask are not in it).
The filter is applied inside the scan, before a candidate reaches the top-k, so a query gets
``min(k, number of allowed entries in its probed lists)`` results; the rest is ``-1`` padding.
The filter does not change which lists are probed.

Metric ``"ip"``: lists are probed by largest inner product with the centroids and entries
ranked by inner product (``D`` descending). The coarse centroids are trained by L2 k-means
in both cases (faiss assigns by inner product while clustering for an IP quantizer).

Files: ``quanta.write_index`` / ``read_index``. With ``mmap=True`` every inverted list is a
view of the mapped file; adding to or removing from a list copies that list into memory
(copy-on-write per list, the file is never modified); untouched lists stay mapped.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import _to_numpy, as_float_matrix, as_ids, as_int, positive_int
from .exceptions import DTypeError, InvalidArgumentError
from .io import register_index_kind
from .pq import ProductQuantizer, _check_m

__all__ = ["IndexIVFFlat", "IndexIVFPQ", "IndexIVFPQFastScan", "InvertedListsStats"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def _check_metric(metric: str) -> str:
    if metric not in ("l2", "ip"):
        raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
    return metric


def _filter(ids_allowed: Any, ids_denied: Any) -> tuple[Any, Any, bool]:
    """(ids, mask, deny) for the core from the user's allow/deny argument."""
    if ids_allowed is not None and ids_denied is not None:
        raise InvalidArgumentError("give ids_allowed or ids_denied, not both")
    deny = ids_denied is not None
    f = ids_denied if deny else ids_allowed
    if f is None:
        return None, None, False
    name = "ids_denied" if deny else "ids_allowed"
    a = _to_numpy(f, name)
    if a.dtype == np.bool_:
        if a.ndim != 1:
            raise DTypeError(f"{name} as a mask must be 1-D bool, got shape {a.shape}")
        return None, np.ascontiguousarray(a), deny
    if a.dtype != np.int64:
        raise DTypeError(
            f"{name} must be an int64 array of ids or a bool mask indexed by id, "
            f"got dtype {a.dtype}"
        )
    return as_ids(a, name), None, deny


class InvertedListsStats:
    """Read-only view of an IVF index's lists: :attr:`sizes`, :attr:`imbalance_factor`,
    :meth:`list_ids` (and :meth:`list_codes` for :class:`IndexIVFPQ`)."""

    def __init__(self, core: Any) -> None:
        self._core = core

    @property
    def nlist(self) -> int:
        """Number of lists."""
        return int(self._core.nlist)

    @property
    def sizes(self) -> npt.NDArray[np.int64]:
        """Entries per list, int64 ``(nlist,)``."""
        out: npt.NDArray[np.int64] = self._core.list_sizes()
        return out

    @property
    def imbalance_factor(self) -> float:
        """``nlist * sum(size**2) / sum(size)**2`` (faiss; 1.0 = perfectly balanced)."""
        return float(self._core.imbalance_factor())

    def list_ids(self, list_no: int) -> npt.NDArray[np.int64]:
        """Ids of list ``list_no`` in storage order (a copy)."""
        out: npt.NDArray[np.int64] = self._core.list_ids(as_int(list_no, "list_no", 0, 2**62))
        return out

    def list_codes(self, list_no: int) -> npt.NDArray[np.uint8]:
        """PQ codes ``(size, code_size)`` of list ``list_no`` (IndexIVFPQ only)."""
        if not hasattr(self._core, "list_codes"):
            raise InvalidArgumentError("list_codes is available for IndexIVFPQ only")
        out: npt.NDArray[np.uint8] = self._core.list_codes(as_int(list_no, "list_no", 0, 2**62))
        return out

    def __repr__(self) -> str:
        return (
            f"InvertedListsStats(nlist={self.nlist}, ntotal={int(self.sizes.sum())}, "
            f"imbalance_factor={self.imbalance_factor:.3f})"
        )


class _IndexIVF:
    _index: Any
    nprobe: int
    _name = "IndexIVF"

    @property
    def d(self) -> int:
        """Dimension."""
        return int(self._index.d)

    @property
    def nlist(self) -> int:
        """Number of inverted lists."""
        return int(self._index.nlist)

    @property
    def metric(self) -> str:
        """'l2' or 'ip'."""
        return str(self._index.metric)

    @property
    def ntotal(self) -> int:
        """Number of stored entries."""
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        """Whether the index is trained."""
        return bool(self._index.is_trained)

    @property
    def is_mapped(self) -> bool:
        """Whether some inverted list is still a view of a memory-mapped file."""
        return bool(self._index.is_mapped)

    @property
    def centroids(self) -> npt.NDArray[np.float32]:
        """Coarse centroids ``(nlist, d)`` (a copy; 0 rows before training)."""
        out: npt.NDArray[np.float32] = self._index.centroids
        return out

    @property
    def invlists(self) -> InvertedListsStats:
        """List sizes, imbalance factor and per-list contents."""
        return InvertedListsStats(self._index)

    def __len__(self) -> int:
        return self.ntotal

    def add(self, x: Any) -> None:
        """Add ``x`` ``(n, d)`` with ids ``ntotal, ntotal + 1, ...``."""
        self._index.add(as_float_matrix(x, "x", self.d, allow_empty=True))

    def add_with_ids(self, x: Any, ids: Any) -> None:
        """Add ``x`` ``(n, d)`` with int64 ``ids`` ``(n,)``."""
        self._index.add_with_ids(as_float_matrix(x, "x", self.d, allow_empty=True), as_ids(ids))

    def remove_ids(self, ids: Any) -> int:
        """Remove every entry whose id is in ``ids`` (int64); returns how many were removed."""
        return int(self._index.remove_ids(as_ids(ids)))

    def reconstruct(self, id: int) -> npt.NDArray[np.float32]:
        """Vector (IVFFlat) or approximate vector (IVFPQ) of the first entry with id ``id``."""
        out: npt.NDArray[np.float32] = self._index.reconstruct(
            as_int(id, "id", -(2**63), 2**63 - 1)
        )
        return out

    def reset(self) -> None:
        """Remove every entry (the quantizers stay trained)."""
        self._index.reset()

    def search(
        self,
        q: Any,
        k: int,
        nprobe: int | None = None,
        *,
        ids_allowed: Any = None,
        ids_denied: Any = None,
        verbose: bool = False,
    ) -> SearchResult:
        """k nearest entries of each query among its ``nprobe`` nearest lists (default
        :attr:`nprobe`; clamped to ``nlist``), optionally filtered (see the module docs)."""
        k = positive_int(k, "k")
        nprobe = positive_int(self.nprobe if nprobe is None else nprobe, "nprobe")
        ids, mask, deny = _filter(ids_allowed, ids_denied)
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        out: SearchResult = self._index.search(
            qs,
            k,
            nprobe,
            filter_ids=ids,
            filter_mask=mask,
            deny=deny,
            progress=make_progress(verbose, f"{self._name} search"),
        )
        return out

    def _write_index(self, path: str) -> None:
        self._index.write(path)


class IndexIVFFlat(_IndexIVF):
    """Inverted file over the raw vectors (faiss ``IndexIVFFlat``): exact distances inside the
    probed lists. ``nprobe`` (default 8, the paper's w) is the default for :meth:`search`."""

    _name = "IndexIVFFlat"

    def __init__(self, d: int, nlist: int, metric: str = "l2") -> None:
        self._index = _core.IndexIVFFlat(
            positive_int(d, "d"), positive_int(nlist, "nlist"), _check_metric(metric)
        )
        self.nprobe = 8

    @classmethod
    def from_centroids(cls, centroids: Any, metric: str = "l2") -> IndexIVFFlat:
        """Trained, empty index around given coarse centroids ``(nlist, d)``."""
        obj = cls.__new__(cls)
        obj._index = _core.IndexIVFFlat.from_centroids(
            as_float_matrix(centroids, "centroids"), _check_metric(metric)
        )
        obj.nprobe = 8
        return obj

    def train(self, x: Any, niter: int = 10, seed: int = 1234, *, verbose: bool = False) -> None:
        """k-means of ``x`` into ``nlist`` coarse centroids (faiss IVF default: 10 iterations,
        256 points per centroid)."""
        warns = self._index.train(
            as_float_matrix(x, "x", self.d),
            niter=positive_int(niter, "niter"),
            seed=as_int(seed, "seed", 0, 2**64 - 1),
            progress=make_progress(verbose, "IndexIVFFlat training"),
        )
        for w in warns:
            warnings.warn(w, stacklevel=2)

    @classmethod
    def _read_index(cls, path: str, mmap: bool) -> IndexIVFFlat:
        obj = cls.__new__(cls)
        obj._index = _core.IndexIVFFlat.read(path, mmap)
        obj.nprobe = 8
        return obj

    def __repr__(self) -> str:
        return (
            f"IndexIVFFlat(d={self.d}, nlist={self.nlist}, metric={self.metric!r}, "
            f"ntotal={self.ntotal})"
        )


class IndexIVFPQ(_IndexIVF):
    """Inverted file with PQ-encoded residuals (faiss ``IndexIVFPQ``, IVFADC).

    ``train`` learns ``nlist`` coarse centroids (k-means, 10 iterations), then the PQ
    (``M`` sub-quantizers of ``2**nbits`` centroids) on the residuals ``x - centroid``
    (``by_residual=True``, the default) or on ``x``. Codes: one byte per sub-quantizer.
    """

    _name = "IndexIVFPQ"
    _core_cls: Any = _core.IndexIVFPQ

    def __init__(
        self,
        d: int,
        nlist: int,
        M: int,
        nbits: int = 8,
        metric: str = "l2",
        by_residual: bool = True,
    ) -> None:
        d = positive_int(d, "d")
        M = positive_int(M, "M")
        _check_m(d, M)
        self._index = _core.IndexIVFPQ(
            d,
            positive_int(nlist, "nlist"),
            M,
            as_int(nbits, "nbits", 1, 8),
            _check_metric(metric),
            bool(by_residual),
        )
        self.nprobe = 8

    @classmethod
    def from_parts(
        cls,
        centroids: Any,
        pq: ProductQuantizer,
        metric: str = "l2",
        by_residual: bool = True,
    ) -> IndexIVFPQ:
        """Trained, empty index from coarse centroids ``(nlist, d)`` and a trained
        :class:`~quanta.ProductQuantizer` (e.g. both copied from a faiss index)."""
        if not isinstance(pq, ProductQuantizer):
            raise DTypeError(f"pq must be a quanta.ProductQuantizer, got {type(pq).__name__}")
        obj = cls.__new__(cls)
        obj._index = cls._core_cls.from_parts(
            as_float_matrix(centroids, "centroids", pq.d),
            pq._pq,
            _check_metric(metric),
            bool(by_residual),
        )
        obj.nprobe = 8
        return obj

    @property
    def M(self) -> int:
        """Sub-quantizers."""
        return int(self._index.M)

    @property
    def nbits(self) -> int:
        """Bits per sub-code."""
        return int(self._index.nbits)

    @property
    def code_size(self) -> int:
        """Bytes per stored code (= M)."""
        return int(self._index.code_size)

    @property
    def by_residual(self) -> bool:
        """Whether residuals to the list centroid are encoded."""
        return bool(self._index.by_residual)

    @property
    def pq(self) -> ProductQuantizer:
        """A copy of the residual quantizer."""
        return ProductQuantizer._wrap(self._index.pq)

    def train(
        self,
        x: Any,
        niter: int = 10,
        seed: int = 1234,
        *,
        pq_niter: int = 25,
        pq_seed: int = 1234,
        max_points_per_centroid: int = 256,
        verbose: bool = False,
    ) -> None:
        """Coarse k-means (``niter``, ``seed``), then PQ k-means on the residuals
        (``pq_niter``, ``pq_seed``, subsampled to ``max_points_per_centroid * ksub``)."""
        warns = self._index.train(
            as_float_matrix(x, "x", self.d),
            niter=positive_int(niter, "niter"),
            seed=as_int(seed, "seed", 0, 2**64 - 1),
            pq_niter=positive_int(pq_niter, "pq_niter"),
            pq_seed=as_int(pq_seed, "pq_seed", 0, 2**64 - 1),
            max_points_per_centroid=positive_int(
                max_points_per_centroid, "max_points_per_centroid"
            ),
            progress=make_progress(verbose, "IndexIVFPQ training"),
        )
        for w in warns:
            warnings.warn(w, stacklevel=2)

    @classmethod
    def _read_index(cls, path: str, mmap: bool) -> IndexIVFPQ:
        obj = cls.__new__(cls)
        obj._index = cls._core_cls.read(path, mmap)
        obj.nprobe = 8
        return obj

    def __repr__(self) -> str:
        return (
            f"IndexIVFPQ(d={self.d}, nlist={self.nlist}, M={self.M}, nbits={self.nbits}, "
            f"metric={self.metric!r}, ntotal={self.ntotal})"
        )


class IndexIVFPQFastScan(IndexIVFPQ):
    """IVFPQ with 4-bit codes whose lists are scanned by the fast-scan (``vpshufb``) kernel
    (faiss ``IndexIVFPQFastScan``).

    Per probed list the float ADC table is quantized to u8 and the list's 32-vector packed
    blocks are scanned. By default (``k_factor=1``, faiss's behaviour) the distances returned are
    the fast-scan approximations; with ``k_factor > 1`` the best ``k * k_factor`` candidates are
    re-ranked by their float ADC distance, which is the distance :class:`IndexIVFPQ` with
    ``nbits=4`` returns (measured: no recall change on SIFT/Fashion-MNIST/Gaussian, 1.3-1.7x
    slower, so it is off by default). Lists keep a
    byte-per-sub-code copy (files, ``reconstruct``, re-ranking) next to the packed blocks, which
    are rebuilt for the lists ``add``/``remove_ids`` touch and on load.
    """

    _name = "IndexIVFPQFastScan"
    _core_cls: Any = _core.IndexIVFPQFastScan

    def __init__(
        self,
        d: int,
        nlist: int,
        M: int,
        metric: str = "l2",
        by_residual: bool = True,
        k_factor: int = 1,
    ) -> None:
        d = positive_int(d, "d")
        M = positive_int(M, "M")
        _check_m(d, M)
        self._index = _core.IndexIVFPQFastScan(
            d, positive_int(nlist, "nlist"), M, _check_metric(metric), bool(by_residual)
        )
        self._index.k_factor = positive_int(k_factor, "k_factor")
        self.nprobe = 8

    @property
    def k_factor(self) -> int:
        """Candidates per result re-ranked by float ADC (1 = no re-ranking)."""
        return int(self._index.k_factor)

    @k_factor.setter
    def k_factor(self, value: int) -> None:
        self._index.k_factor = positive_int(value, "k_factor")

    def __repr__(self) -> str:
        return (
            f"IndexIVFPQFastScan(d={self.d}, nlist={self.nlist}, M={self.M}, "
            f"metric={self.metric!r}, k_factor={self.k_factor}, ntotal={self.ntotal})"
        )


register_index_kind("IndexIVFFlat", IndexIVFFlat._read_index)
register_index_kind("IndexIVFPQ", IndexIVFPQ._read_index)
register_index_kind("IndexIVFPQFastScan", IndexIVFPQFastScan._read_index)
