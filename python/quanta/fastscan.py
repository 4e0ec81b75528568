"""4-bit PQ fast scan (faiss ``IndexPQFastScan``) and exact re-ranking (``IndexRefineFlat``).

:class:`IndexPQFastScan` stores 4-bit PQ codes in blocks of 32 vectors laid out so that one
byte shuffle (``vpshufb``) performs 32 table lookups from a per-query distance table quantized
to uint8. The scan ranks by these approximate distances; ``k_factor > 1`` re-scores the best
``k * k_factor`` with the float ADC tables (the distances :class:`~quanta.IndexPQ` returns).

:class:`IndexRefineFlat` wraps any index and re-ranks its ``k * k_factor`` best candidates with
exact distances to the raw vectors it keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError, NotTrainedError, ShapeError
from .pq import ProductQuantizer, _check_m, _train

__all__ = ["IndexPQFastScan", "IndexRefineFlat"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]

DEFAULT_K_FACTOR = 4
"""Default re-ranking factor (ALGORITHMS.md §2.9 recommendation; faiss does not re-rank)."""


def _check_metric(metric: str) -> str:
    if metric not in ("l2", "ip"):
        raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
    return metric


def _k_factor(v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise DTypeError(f"k_factor must be an int, got {type(v).__name__}")
    if v < 1:
        raise InvalidArgumentError(f"k_factor must be >= 1, got {v}")
    return int(v)


class IndexPQFastScan(Index):
    """Exhaustive search over 4-bit PQ codes with SIMD shuffle lookups (faiss
    ``IndexPQFastScan``); ids are positions (``remove_ids`` renumbers, as faiss).

    ``M`` sub-quantizers of 16 centroids each (``nbits`` must be 4; odd ``M`` is padded with a
    dummy sub-quantizer internally). ``code_size == ceil(M / 2)`` bytes, as in faiss; storage
    rounds the database up to a multiple of 32 vectors.

    ``search(q, k)`` ranks by distances computed from uint8-quantized tables (per query: scale
    ``a = 255 / max span``, offset = sum of row minima, round half up), so returned distances are
    approximate within ``M / (2a)`` with ``k_factor == 1`` (the default, faiss's behaviour).
    With ``k_factor > 1`` (a search parameter, or the saved default :attr:`k_factor`) the best
    ``k * k_factor`` candidates are re-scored with the float ADC tables and the best ``k``
    returned with those distances. Results like faiss: ``D`` float32 ``(nq, k)``, ``I`` int64,
    ``-1`` padding.
    """

    _kind = "IndexPQFastScan"

    def __init__(self, d: int, M: int, nbits: int = 4, metric: str = "l2") -> None:
        d = positive_int(d, "d")
        M = positive_int(M, "M")
        _check_m(d, M)
        nbits = as_int(nbits, "nbits", 1, 8)
        if nbits != 4:
            raise InvalidArgumentError(
                f"fast scan needs nbits=4 (16 centroids per sub-quantizer), got nbits={nbits}"
            )
        self._index = _core.IndexPQFastScan(d, M, nbits, _check_metric(metric))

    @classmethod
    def from_pq(cls, pq: ProductQuantizer, metric: str = "l2") -> IndexPQFastScan:
        """Empty index using (a copy of) an existing 4-bit quantizer, e.g. faiss centroids via
        ``ProductQuantizer.from_centroids(faiss.vector_to_array(idx.pq.centroids)
        .reshape(M, 16, d // M))``."""
        if not isinstance(pq, ProductQuantizer):
            raise DTypeError(f"pq must be a quanta.ProductQuantizer, got {type(pq).__name__}")
        return cls._wrap(_core.IndexPQFastScan.from_pq(pq._pq, _check_metric(metric)))

    @property
    def code_size(self) -> int:
        """Bytes per vector code, ``ceil(M / 2)``."""
        return int(self._index.code_size)

    @property
    def pq(self) -> ProductQuantizer:
        """A copy of the index's quantizer."""
        return ProductQuantizer._wrap(self._index.pq)

    @property
    def M(self) -> int:
        """Number of sub-quantizers."""
        return int(self._index.M)

    @property
    def nbits(self) -> int:
        """Bits per sub-code (always 4)."""
        return int(self._index.nbits)

    @property
    def k_factor(self) -> int:
        """Re-ranking factor of searches that pass none (default 1: no re-ranking); saved with
        the index by :func:`quanta.write_index` and pickling."""
        return int(self._index.k_factor)

    @k_factor.setter
    def k_factor(self, value: int) -> None:
        self._index.k_factor = _k_factor(value)

    def train(
        self,
        x: Any,
        niter: int = 25,
        seed: int = 1234,
        *,
        init: str = "random",
        max_points_per_centroid: int = 256,
        verbose: bool = False,
    ) -> None:
        """Train the quantizer on ``x`` (see :meth:`ProductQuantizer.train`)."""
        _train(
            self._index,
            x,
            self.d,
            niter,
            seed,
            init,
            max_points_per_centroid,
            verbose,
            "IndexPQFastScan training",
        )

    def add_codes(self, codes: Any) -> None:
        """Append unpacked codes ``(n, M)`` uint8 (one 4-bit sub-code per byte, the
        :meth:`ProductQuantizer.encode` layout)."""
        a = codes if isinstance(codes, np.ndarray) else np.asarray(codes)
        if a.dtype != np.uint8:
            raise DTypeError(f"codes must be uint8, got dtype {a.dtype}")
        if a.ndim != 2 or a.shape[1] != self.M:
            raise ShapeError(f"codes must have shape (n, {self.M}), got {a.shape}")
        self._index.add_codes(np.ascontiguousarray(a))

    @property
    def codes(self) -> npt.NDArray[np.uint8]:
        """Stored codes unpacked to ``(ntotal, M)`` (a copy)."""
        out: npt.NDArray[np.uint8] = self._index.codes()
        return out

    def _repr_fields(self) -> str:
        return f"M={self.M}, nbits=4, k_factor={self.k_factor}"


class IndexRefineFlat:
    """Re-rank another index's candidates with exact distances (faiss ``IndexRefineFlat``).

    ``add`` stores the raw vectors (float32) next to the base index; ``search(q, k)`` asks the
    base index for ``k * k_factor`` candidates and returns the ``k`` best by exact squared L2
    (or inner product, following the base index's ``metric``), ties to the lower id. A base
    :class:`IndexPQFastScan` is searched without its own re-ranking.
    """

    def __init__(self, base_index: Any, k_factor: int = DEFAULT_K_FACTOR) -> None:
        for attr in ("d", "ntotal", "add", "search"):
            if not hasattr(base_index, attr):
                raise DTypeError(
                    f"base_index must be a quanta index (missing {attr!r}), "
                    f"got {type(base_index).__name__}"
                )
        if int(base_index.ntotal) != 0:
            raise InvalidArgumentError(
                "base_index must be empty: IndexRefineFlat needs the raw vectors of every "
                f"stored id, got an index with ntotal={base_index.ntotal}"
            )
        metric = getattr(base_index, "metric", None)
        if not isinstance(metric, str):
            raise DTypeError(
                "base_index must have a metric ('l2' or 'ip') to re-rank by, "
                f"got {type(base_index).__name__} without one"
            )
        if metric not in ("l2", "ip"):
            raise InvalidArgumentError(
                f"base_index metric must be 'l2' or 'ip' to re-rank by, got {metric!r}"
            )
        self.base_index = base_index
        self._metric = metric
        self._k_factor = _k_factor(k_factor)
        self._xb = np.zeros((0, int(base_index.d)), dtype=np.float32)

    @property
    def d(self) -> int:
        """Dimension."""
        return int(self.base_index.d)

    @property
    def metric(self) -> str:
        """The base index's metric ('l2' or 'ip')."""
        return self._metric

    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return int(self._xb.shape[0])

    @property
    def is_trained(self) -> bool:
        """Whether the base index is trained."""
        return bool(getattr(self.base_index, "is_trained", True))

    @property
    def k_factor(self) -> int:
        """Candidates per result asked from the base index."""
        return self._k_factor

    @k_factor.setter
    def k_factor(self, value: Any) -> None:
        self._k_factor = _k_factor(value)

    def __len__(self) -> int:
        return self.ntotal

    def train(self, x: Any, **kwargs: Any) -> None:
        """Train the base index."""
        self.base_index.train(as_float_matrix(x, "x", self.d), **kwargs)

    def add(self, x: Any) -> None:
        """Append ``x`` to the base index and keep the raw vectors."""
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        if not self.is_trained:
            raise NotTrainedError("IndexRefineFlat: the base index is not trained")
        self.base_index.add(xs)
        self._xb = np.concatenate([self._xb, xs]) if self.ntotal else xs.copy()

    def reconstruct(self, i: int) -> npt.NDArray[np.float32]:
        """The stored raw vector of id ``i``."""
        if self.ntotal == 0:
            as_int(i, "i", 0, 2**63 - 1)  # type check first: a bad type is a DTypeError
            raise InvalidArgumentError(f"i={i} is out of range: the index is empty (ntotal=0)")
        row: npt.NDArray[np.float32] = self._xb[as_int(i, "i", 0, self.ntotal - 1)]
        return row.copy()

    def reset(self) -> None:
        """Remove every vector (the base index keeps its training)."""
        self.base_index.reset()
        self._xb = np.zeros((0, self.d), dtype=np.float32)

    def search(self, q: Any, k: int, k_factor: int | None = None) -> SearchResult:
        """k nearest stored vectors by exact distance among the base index's
        ``k * k_factor`` best candidates."""
        k = positive_int(k, "k")
        kf = self._k_factor if k_factor is None else _k_factor(k_factor)
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        kk = k * kf
        ip = self.metric == "ip"
        if self.ntotal == 0:  # nothing stored: all padding, like faiss
            nq = qs.shape[0]
            pad = np.full((nq, k), -np.inf if ip else np.inf, dtype=np.float32)
            return pad, np.full((nq, k), -1, dtype=np.int64)
        if isinstance(self.base_index, IndexPQFastScan):
            _, cand = self.base_index.search(qs, kk, k_factor=1)
        else:
            _, cand = self.base_index.search(qs, kk)
        valid = cand >= 0
        key = np.empty(cand.shape, dtype=np.float32)
        # exact distances of the candidates, a slab of queries at a time (bounded memory)
        step = max(1, (1 << 22) // max(1, kk * self.d))
        for a in range(0, qs.shape[0], step):
            c, v, q = cand[a : a + step], valid[a : a + step], qs[a : a + step]
            vecs = self._xb[np.where(v, c, 0)]  # (slab, kk, d)
            if ip:
                kq = -np.einsum("qkd,qd->qk", vecs, q)
            else:
                diff = vecs - q[:, None, :]
                kq = np.einsum("qkd,qkd->qk", diff, diff)
            key[a : a + step] = np.where(v, kq, np.inf)
        ids = np.where(valid, cand, np.iinfo(np.int64).max)
        order = np.lexsort((ids, key), axis=-1)[:, :k]  # (distance, id) ascending
        out_key = np.take_along_axis(key, order, 1)
        out_ids = np.where(
            np.take_along_axis(valid, order, 1), np.take_along_axis(cand, order, 1), -1
        ).astype(np.int64)
        dist = (-out_key if ip else out_key).astype(np.float32)
        return np.ascontiguousarray(dist), np.ascontiguousarray(out_ids)

    def __repr__(self) -> str:
        return (
            f"IndexRefineFlat(base_index={self.base_index!r}, k_factor={self.k_factor}, "
            f"ntotal={self.ntotal})"
        )
