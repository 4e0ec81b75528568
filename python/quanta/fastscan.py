"""4-bit PQ fast scan (faiss ``IndexPQFastScan``).

:class:`IndexPQFastScan` stores 4-bit PQ codes in blocks of 32 vectors laid out so that one
byte shuffle (``vpshufb``) performs 32 table lookups from a per-query distance table quantized
to uint8. The scan ranks by these approximate distances; ``k_factor > 1`` re-scores the best
``k * k_factor`` with the float ADC tables (the distances :class:`~quanta.IndexPQ` returns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError, ShapeError
from .index import check_metric
from .pq import ProductQuantizer, _check_m, _train

__all__ = ["IndexPQFastScan"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


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
        self._index = _core.IndexPQFastScan(d, M, nbits, check_metric(metric))

    @classmethod
    def from_pq(cls, pq: ProductQuantizer, metric: str = "l2") -> IndexPQFastScan:
        """Empty index using (a copy of) an existing 4-bit quantizer, e.g. faiss centroids via
        ``ProductQuantizer.from_centroids(faiss.vector_to_array(idx.pq.centroids)
        .reshape(M, 16, d // M))``."""
        if not isinstance(pq, ProductQuantizer):
            raise DTypeError(f"pq must be a quanta.ProductQuantizer, got {type(pq).__name__}")
        return cls._wrap(_core.IndexPQFastScan.from_pq(pq._pq, check_metric(metric)))

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
