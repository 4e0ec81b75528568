"""Inverted-file indexes (IVFADC, Jégou et al. 2011; faiss ``IndexIVFFlat`` / ``IndexIVFPQ``).

A coarse quantizer (k-means, ``nlist`` centroids) assigns every vector to one inverted list;
``search(q, k, nprobe=...)`` ranks the entries of the ``nprobe`` lists nearest to the query
(default: the index's ``nprobe``, 1 as in faiss, saved with it), ``range_search`` returns those
within the radius. The rest (ids, filters applied inside the scan, ``remove_ids``, files with
copy-on-write ``mmap`` per list, pickling) is the :class:`~quanta.Index` protocol. Metric
``"ip"`` probes and ranks by inner product; centroids are trained by L2 k-means either way.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError
from .index import check_metric
from .pq import ProductQuantizer, _check_m
from .sq import check_qtype

__all__ = [
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexIVFScalarQuantizer",
    "InvertedListsStats",
]

_P = TypeVar("_P", bound="IndexIVFPQ")


def _opt(v: Any, name: str, lo: int = 1, hi: int = 2**31 - 1) -> int | None:
    """``v`` as an int in ``lo..=hi``, or ``None`` (keep the index's default)."""
    return None if v is None else as_int(v, name, lo, hi)


class InvertedListsStats:
    """Read-only view of an IVF index's lists: :attr:`sizes`, :attr:`imbalance_factor`,
    :meth:`list_ids` (and :meth:`list_codes` for the IVFPQ indexes)."""

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
        """Codes ``(size, code_size)`` of list ``list_no`` (every IVF index but IVFFlat)."""
        if not hasattr(self._core, "list_codes"):
            raise InvalidArgumentError("list_codes is not available for IndexIVFFlat")
        out: npt.NDArray[np.uint8] = self._core.list_codes(as_int(list_no, "list_no", 0, 2**62))
        return out

    def __repr__(self) -> str:
        return (
            f"InvertedListsStats(nlist={self.nlist}, ntotal={int(self.sizes.sum())}, "
            f"imbalance_factor={self.imbalance_factor:.3f})"
        )


class _IndexIVF(Index):
    """What the IVF indexes share: lists, centroids, the default ``nprobe``, training."""

    @property
    def nlist(self) -> int:
        """Number of inverted lists."""
        return int(self._index.nlist)

    @property
    def nprobe(self) -> int:
        """Lists probed per query when ``search`` gets no ``nprobe`` (default 1; saved with the
        index in files and pickles)."""
        return int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._index.nprobe = positive_int(value, "nprobe")

    @property
    def centroids(self) -> npt.NDArray[np.float32]:
        """Coarse centroids ``(nlist, d)`` (a copy; 0 rows before training)."""
        out: npt.NDArray[np.float32] = self._index.centroids
        return out

    @property
    def invlists(self) -> InvertedListsStats:
        """List sizes, imbalance factor and per-list contents."""
        return InvertedListsStats(self._index)

    def _train(self, x: Any, niter: Any, seed: Any, verbose: bool, **kw: Any) -> None:
        xs = as_float_matrix(x, "x", self.d)
        niter, seed = _opt(niter, "niter"), _opt(seed, "seed", 0, 2**64 - 1)
        prog = self._progress(verbose, "training")
        for w in self._index.train(xs, niter=niter, seed=seed, progress=prog, **kw):
            warnings.warn(w, stacklevel=3)

    def _repr_fields(self) -> str:
        return f"nlist={self.nlist}, nprobe={self.nprobe}"


class IndexIVFFlat(_IndexIVF):
    """Inverted file over the raw vectors (faiss ``IndexIVFFlat``): exact distances inside the
    probed lists."""

    _kind = "IndexIVFFlat"

    def __init__(self, d: int, nlist: int, metric: str = "l2") -> None:
        d, nlist = positive_int(d, "d"), positive_int(nlist, "nlist")
        self._index = _core.IndexIVFFlat(d, nlist, check_metric(metric))

    @classmethod
    def from_centroids(cls, centroids: Any, metric: str = "l2") -> IndexIVFFlat:
        """Trained, empty index around given coarse centroids ``(nlist, d)``."""
        c = as_float_matrix(centroids, "centroids")
        return cls._wrap(_core.IndexIVFFlat.from_centroids(c, check_metric(metric)))

    def train(
        self, x: Any, niter: int | None = None, seed: int | None = None, *, verbose: bool = False
    ) -> None:
        """k-means of ``x`` into ``nlist`` coarse centroids (faiss IVF defaults: ``niter=10``,
        ``seed=1234``, 256 points per centroid)."""
        self._train(x, niter, seed, verbose)


class IndexIVFPQ(_IndexIVF):
    """Inverted file with PQ-encoded residuals (faiss ``IndexIVFPQ``, IVFADC): ``M``
    sub-quantizers of ``2**nbits`` centroids trained on the residuals ``x - centroid``
    (``by_residual=True``, the default) or on ``x``; one byte per sub-code."""

    _kind = "IndexIVFPQ"
    _core_cls: ClassVar[Any] = _core.IndexIVFPQ

    def __init__(
        self,
        d: int,
        nlist: int,
        M: int,
        nbits: int = 8,
        metric: str = "l2",
        by_residual: bool = True,
    ) -> None:
        d, M, nlist = positive_int(d, "d"), positive_int(M, "M"), positive_int(nlist, "nlist")
        _check_m(d, M)
        nb, m = as_int(nbits, "nbits", 1, 8), check_metric(metric)
        self._index = _core.IndexIVFPQ(d, nlist, M, nb, m, bool(by_residual))

    @classmethod
    def from_parts(
        cls: type[_P],
        centroids: Any,
        pq: ProductQuantizer,
        metric: str = "l2",
        by_residual: bool = True,
    ) -> _P:
        """Trained, empty index from coarse centroids ``(nlist, d)`` and a trained
        :class:`~quanta.ProductQuantizer` (e.g. both copied from a faiss index)."""
        if not isinstance(pq, ProductQuantizer):
            raise DTypeError(f"pq must be a quanta.ProductQuantizer, got {type(pq).__name__}")
        c = as_float_matrix(centroids, "centroids", pq.d)
        return cls._wrap(
            cls._core_cls.from_parts(c, pq._pq, check_metric(metric), bool(by_residual))
        )

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
        niter: int | None = None,
        seed: int | None = None,
        *,
        pq_niter: int | None = None,
        pq_seed: int | None = None,
        max_points_per_centroid: int | None = None,
        verbose: bool = False,
    ) -> None:
        """Coarse k-means (``niter=10``, ``seed=1234``), then PQ k-means on the residuals
        (``pq_niter=25``, ``pq_seed=1234``, subsampled to ``max_points_per_centroid * ksub``,
        default 256); keywords left out keep these defaults."""
        mp = _opt(max_points_per_centroid, "max_points_per_centroid")
        pq_niter, pq_seed = _opt(pq_niter, "pq_niter"), _opt(pq_seed, "pq_seed", 0, 2**64 - 1)
        kw = {"pq_niter": pq_niter, "pq_seed": pq_seed, "max_points_per_centroid": mp}
        self._train(x, niter, seed, verbose, **kw)

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, M={self.M}, nbits={self.nbits}"


class IndexIVFPQFastScan(IndexIVFPQ):
    """IVFPQ with 4-bit codes whose lists are scanned by the fast-scan (``vpshufb``) kernel
    (faiss ``IndexIVFPQFastScan``).

    Per probed list the float ADC table is quantized to u8 and the list's 32-vector packed
    blocks are scanned. By default (``k_factor=1``, faiss's behaviour) the distances returned
    are the fast-scan approximations; with ``k_factor > 1`` (the index's, saved with it, or
    ``search(..., k_factor=)``) the best ``k * k_factor`` candidates are re-ranked by their
    float ADC distance, the distance :class:`IndexIVFPQ` with ``nbits=4`` returns (measured: no
    recall change on SIFT/Fashion-MNIST/Gaussian, 1.3-1.7x slower). Lists keep a
    byte-per-sub-code copy (files, ``reconstruct``, re-ranking) next to the packed blocks.
    """

    _kind = "IndexIVFPQFastScan"
    _core_cls: ClassVar[Any] = _core.IndexIVFPQFastScan

    def __init__(
        self,
        d: int,
        nlist: int,
        M: int,
        metric: str = "l2",
        by_residual: bool = True,
        k_factor: int = 1,
    ) -> None:
        d, M, nlist = positive_int(d, "d"), positive_int(M, "M"), positive_int(nlist, "nlist")
        _check_m(d, M)
        m = check_metric(metric)
        self._index = _core.IndexIVFPQFastScan(d, nlist, M, m, bool(by_residual))
        self.k_factor = k_factor

    @property
    def k_factor(self) -> int:
        """Candidates per result re-ranked by float ADC when ``search`` gets no ``k_factor``
        (1 = no re-ranking; saved with the index)."""
        return int(self._index.k_factor)

    @k_factor.setter
    def k_factor(self, value: int) -> None:
        self._index.k_factor = positive_int(value, "k_factor")

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, k_factor={self.k_factor}"


class IndexIVFScalarQuantizer(_IndexIVF):
    """Inverted file over scalar-quantized codes (faiss ``IndexIVFScalarQuantizer``; factory
    ``IVF{nlist},SQ{type}``: ``SQ8``, ``SQ4``, ``SQfp16``, ``SQbf16``, ``SQlm2``..``SQlm4``).

    With ``by_residual`` (faiss's default) every vector is coded as its residual to its list
    centroid and the quantizer is trained on the training set's residuals, which span a much
    smaller range than the vectors: the same bits resolve them finer. ``qtype`` as
    :class:`~quanta.IndexScalarQuantizer`'s (``"8bit"``, ``"4bit"``, ``"fp16"``, ``"bf16"``, the
    rotated Lloyd-Max ``"lm2"``/``"lm3"``/``"lm4"``, whose rotation ``seed`` draws). Distances
    are those to the decoded vectors, computed on the codes: for L2 each probed list folds its
    centroid into the query (``d`` operations per list; a ``d x d`` rotation for the Lloyd-Max
    types), for the inner product the coarse term ``<q, c>`` is added to the residual's.
    """

    _kind = "IndexIVFScalarQuantizer"

    def __init__(
        self,
        d: int,
        nlist: int,
        qtype: str = "8bit",
        metric: str = "l2",
        by_residual: bool = True,
        *,
        seed: int = 1234,
    ) -> None:
        if not isinstance(by_residual, (bool, np.bool_)):
            raise DTypeError(f"by_residual must be a bool, got {type(by_residual).__name__}")
        self._index = _core.IndexIVFScalarQuantizer(
            positive_int(d, "d"),
            positive_int(nlist, "nlist"),
            check_qtype(qtype),
            check_metric(metric),
            bool(by_residual),
            as_int(seed, "seed", 0, 2**64 - 1),
        )

    def train(
        self, x: Any, niter: int | None = None, seed: int | None = None, *, verbose: bool = False
    ) -> None:
        """k-means of ``x`` into ``nlist`` coarse centroids (faiss IVF defaults: ``niter=10``,
        ``seed=1234``, 256 points per centroid), then the scalar quantizer's ranges on the
        residuals (``by_residual``) or on ``x``."""
        self._train(x, niter, seed, verbose)

    @property
    def qtype(self) -> str:
        """Code type (a name of :data:`quanta.sq.QTYPES`)."""
        return str(self._index.qtype)

    @property
    def code_size(self) -> int:
        """Bytes per stored vector."""
        return int(self._index.code_size)

    @property
    def by_residual(self) -> bool:
        """Whether vectors are coded as residuals to their list centroid."""
        return bool(self._index.by_residual)

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, qtype={self.qtype!r}"
