"""RaBitQ (Gao & Long, SIGMOD 2024; extended multi-bit RaBitQ, SIGMOD 2025): training-free
codes of randomly rotated vectors with per-vector correction factors, an unbiased distance
estimator and an error bound (faiss ``IndexRaBitQ``). See ``docs/rabitq.md``.

:class:`RaBitQ` is the codec (encode / decode / estimate with bounds); :class:`IndexRaBitQ`
stores codes and searches them in two stages: a fast scan of the sign bits with in-register
uint8 tables, then exact rescoring (every bit plane) of the vectors whose lower bound can still
enter the top-k.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError, ShapeError
from .index import check_metric
from .ivf import _IndexIVF

__all__ = ["IndexIVFRaBitQ", "IndexRaBitQ", "RaBitQ", "failure_probability"]

_F32 = npt.NDArray[np.float32]


def _seed(seed: Any) -> int:
    return as_int(seed, "seed", 0, 2**63 - 1)


def _epsilon(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise DTypeError(f"epsilon must be a number, got {type(v).__name__}")
    f = float(v)
    if not (0.0 <= f <= 100.0):
        raise InvalidArgumentError(f"epsilon must be in [0, 100], got {f}")
    return f


def failure_probability(epsilon: float) -> float:
    """Probability that an estimate leaves its ``epsilon`` error bound, ``2 (1 - Phi(eps))``
    (Gaussian approximation of the estimator's error): 5.7 % at 1.9, 0.27 % at 3."""
    import math

    return float(math.erfc(_epsilon(epsilon) / math.sqrt(2.0)))


def _codes(codes: Any, code_size: int) -> npt.NDArray[np.uint8]:
    a = codes if isinstance(codes, np.ndarray) else np.asarray(codes)
    if a.dtype != np.uint8:
        raise DTypeError(f"codes must be uint8, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] != code_size:
        raise ShapeError(f"codes must have shape (n, {code_size}), got {a.shape}")
    return np.ascontiguousarray(a)


class RaBitQ:
    """RaBitQ codec: a seeded random rotation, a centroid (the training mean) and ``nbits``
    (1..8) bits per dimension plus 3 (1 bit) or 5 (more bits) float32 correction factors per
    vector. ``code_size = nbits * ceil(ceil(d/4)/2) + 4 * factors`` bytes.
    """

    def __init__(self, d: int, nbits: int = 1, metric: str = "l2", seed: int = 1234) -> None:
        self._c = _core.RaBitQ(
            positive_int(d, "d"), as_int(nbits, "nbits", 1, 8), check_metric(metric), _seed(seed)
        )

    @property
    def d(self) -> int:
        return int(self._c.d)

    @property
    def nbits(self) -> int:
        return int(self._c.nbits)

    @property
    def metric(self) -> str:
        return str(self._c.metric)

    @property
    def code_size(self) -> int:
        """Bytes per code (bit planes + correction factors)."""
        return int(self._c.code_size)

    @property
    def is_trained(self) -> bool:
        return bool(self._c.is_trained)

    @property
    def centroid(self) -> _F32:
        return np.asarray(self._c.centroid, dtype=np.float32)

    @property
    def rotation(self) -> _F32:
        """The ``d x d`` rotation matrix (rows orthonormal)."""
        out: _F32 = self._c.rotation
        return out

    def train(self, x: Any) -> None:
        """Set the centroid to the mean of ``x`` (n x d)."""
        self._c.train(as_float_matrix(x, "x", self.d))

    def encode(self, x: Any) -> npt.NDArray[np.uint8]:
        """Codes ``(n, code_size)`` uint8 of ``x``."""
        out: npt.NDArray[np.uint8] = self._c.encode(as_float_matrix(x, "x", self.d))
        return out

    def decode(self, codes: Any) -> _F32:
        """Approximate vectors ``(n, d)`` of ``codes``."""
        out: _F32 = self._c.decode(_codes(codes, self.code_size))
        return out

    def estimate(self, queries: Any, codes: Any, *, epsilon: float = 1.9) -> tuple[_F32, _F32]:
        """``(est, bound)``, both ``(nq, n)``: estimated distances (L2: squared; ``"ip"``:
        similarities) and their error bounds; the true value lies in ``est +- bound`` with
        probability ``1 - failure_probability(epsilon)``."""
        q = as_float_matrix(queries, "queries", self.d, allow_1d=True)
        est, bound = self._c.estimate(q, _codes(codes, self.code_size), epsilon=_epsilon(epsilon))
        return est, bound

    def __repr__(self) -> str:
        return f"RaBitQ(d={self.d}, nbits={self.nbits}, metric={self.metric!r})"


class IndexRaBitQ(Index):
    """Exhaustive search over RaBitQ codes (faiss ``IndexRaBitQ``; ``RaBitQfs`` is the same
    index here, it always scans with fast-scan kernels). Ids are positions (``remove_ids``
    renumbers). ``train`` sets the centroid (the mean); no other training.

    Distances are the RaBitQ estimates (L2: squared; ``"ip"``: similarities), found in one of
    two ways:

    - ``k_factor = 0`` (the default at 1 bit): a fast scan of the sign plane whose lower bounds
      prune; the rest is rescored exactly. At 1 bit the result is exactly the estimator (the
      quantized-table error is a hard bound); with more bits a true top-k vector is skipped
      only when an estimate leaves its ``epsilon`` bound (:func:`failure_probability`).
    - ``k_factor >= 1`` (the default with more bits): the top ``scan_planes`` bit planes are
      fast-scanned, the best ``k * k_factor`` by that partial estimate are rescored with every
      plane. ``search(..., k_factor=...)`` overrides it per call.

    :meth:`search_with_bounds` also returns each distance's error bound, for a re-ranker (or
    wrap the index in ``IndexRefineFlat``).
    """

    _kind = "IndexRaBitQ"

    def __init__(self, d: int, nbits: int = 1, metric: str = "l2", seed: int = 1234) -> None:
        self._index = _core.IndexRaBitQ(
            positive_int(d, "d"), as_int(nbits, "nbits", 1, 8), check_metric(metric), _seed(seed)
        )

    @property
    def nbits(self) -> int:
        """Bits per dimension."""
        return int(self._index.nbits)

    @property
    def code_size(self) -> int:
        """Bytes per vector: bit planes + correction factors."""
        return int(self._index.code_size)

    @property
    def epsilon(self) -> float:
        """Number of standard deviations of the pruning bound (default 1.9); saved."""
        return float(self._index.epsilon)

    @epsilon.setter
    def epsilon(self, value: float) -> None:
        self._index.epsilon = _epsilon(value)

    @property
    def k_factor(self) -> int:
        """Shortlist size per result (0: the bound-pruned search); saved."""
        return int(self._index.k_factor)

    @k_factor.setter
    def k_factor(self, value: int) -> None:
        self._index.k_factor = as_int(value, "k_factor", 0, 1 << 20)

    @property
    def scan_planes(self) -> int:
        """Bit planes the shortlist scan reads, most significant first (1..nbits); saved."""
        return int(self._index.scan_planes)

    @scan_planes.setter
    def scan_planes(self, value: int) -> None:
        self._index.scan_planes = as_int(value, "scan_planes", 1, self.nbits)

    @property
    def codec(self) -> RaBitQ:
        """A copy of the codec."""
        c = RaBitQ.__new__(RaBitQ)
        c._c = self._index.codec
        return c

    def search_with_bounds(self, queries: Any, k: int) -> tuple[_F32, npt.NDArray[np.int64], _F32]:
        """``(D, I, bounds)``: :meth:`search` plus the error bound of every distance."""
        q = as_float_matrix(queries, "queries", self.d, allow_1d=True)
        d, i, b = self._index.search_with_bounds(q, positive_int(k, "k"))
        return d, i, b

    def _repr_fields(self) -> str:
        return f"nbits={self.nbits}, k_factor={self.k_factor}, scan_planes={self.scan_planes}"


class IndexIVFRaBitQ(_IndexIVF):
    """Inverted file over RaBitQ codes (faiss ``IndexIVFRaBitQ``; factory
    ``IVF{nlist},RaBitQ[{nbits}]``), ``nbits`` 1..8 bits per dimension.

    Each vector is coded around its list's centroid, not one global mean: the estimator's
    error scales with ``|x - c| * |q - c|``, smaller for the list's own centroid. The codec
    needs no training (``train`` trains the coarse quantizer only). Distances are the RaBitQ
    estimates; with ``nbits > 1`` the sign plane's estimate and its error bound
    (:attr:`epsilon` standard deviations) skip the vectors that cannot enter the top-k before
    their lower planes are read.
    """

    _kind = "IndexIVFRaBitQ"

    def __init__(
        self, d: int, nlist: int, nbits: int = 1, metric: str = "l2", seed: int = 1234
    ) -> None:
        self._index = _core.IndexIVFRaBitQ(
            positive_int(d, "d"),
            positive_int(nlist, "nlist"),
            as_int(nbits, "nbits", 1, 8),
            check_metric(metric),
            _seed(seed),
        )

    @classmethod
    def from_centroids(
        cls, centroids: Any, nbits: int = 1, metric: str = "l2", seed: int = 1234
    ) -> IndexIVFRaBitQ:
        """Trained, empty index around given coarse centroids ``(nlist, d)``."""
        c = as_float_matrix(centroids, "centroids")
        core = _core.IndexIVFRaBitQ.from_centroids(
            c, as_int(nbits, "nbits", 1, 8), check_metric(metric), _seed(seed)
        )
        return cls._wrap(core)

    def train(
        self, x: Any, niter: int | None = None, seed: int | None = None, *, verbose: bool = False
    ) -> None:
        """k-means of ``x`` into ``nlist`` coarse centroids (faiss IVF defaults: ``niter=10``,
        ``seed=1234``, 256 points per centroid)."""
        self._train(x, niter, seed, verbose)

    @property
    def nbits(self) -> int:
        """Bits per dimension."""
        return int(self._index.nbits)

    @property
    def code_size(self) -> int:
        """Bytes per vector: bit planes + correction factors."""
        return int(self._index.code_size)

    @property
    def epsilon(self) -> float:
        """Standard deviations of the multi-bit pruning bound (default 1.9); saved."""
        return float(self._index.epsilon)

    @epsilon.setter
    def epsilon(self, value: float) -> None:
        self._index.epsilon = _epsilon(value)

    def _repr_fields(self) -> str:
        return f"{super()._repr_fields()}, nbits={self.nbits}"
