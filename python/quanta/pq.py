"""Product quantization: the :class:`ProductQuantizer` codec and the :class:`IndexPQ` index.

Code layout: one byte per sub-quantizer (``code_size == M`` for every ``nbits`` in 1..8; for
nbits < 8 the high bits of each byte are zero). faiss packs nbits < 8 codes bit-contiguously;
for ``nbits=8`` both layouts are identical, so codes and codebooks move freely between the two.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index
from .exceptions import DTypeError, InvalidArgumentError, ShapeError
from .index import check_metric

__all__ = ["IndexPQ", "ProductQuantizer"]


def _check_m(d: int, m: int) -> None:
    if d % m:
        valid = [v for v in range(1, d + 1) if d % v == 0]
        raise InvalidArgumentError(
            f"d={d} is not divisible by M={m}: M must divide d; valid M for d={d}: {valid}"
        )


def _as_codes(codes: Any, code_size: int, name: str = "codes") -> npt.NDArray[np.uint8]:
    a = codes if isinstance(codes, np.ndarray) else np.asarray(codes)
    if a.dtype != np.uint8:
        raise DTypeError(f"{name} must be uint8, got dtype {a.dtype}")
    if a.ndim == 1 and a.shape[0] == code_size:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != code_size:
        raise ShapeError(f"{name} must have shape (n, {code_size}), got {a.shape}")
    return np.ascontiguousarray(a)


def _check_mode(mode: str) -> str:
    if mode not in ("adc", "sdc"):
        raise InvalidArgumentError(f"mode must be 'adc' or 'sdc', got {mode!r}")
    return mode


def _check_bool(v: Any, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise DTypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _train(
    core: Any,
    x: Any,
    d: int,
    niter: int,
    seed: int,
    init: str,
    max_points_per_centroid: int,
    verbose: bool,
    label: str,
) -> None:
    """Shared ``train`` of the PQ codec and the PQ indexes: validate, run, re-emit warnings (at
    the caller's caller, the user's line). The codec's core ``train`` returns (objectives,
    warnings), an index's (an ``Index`` override) the warnings."""
    xs = as_float_matrix(x, "x", d)
    if init not in ("random", "kmeans++"):
        raise InvalidArgumentError(f"init must be 'random' or 'kmeans++', got {init!r}")
    out = core.train(
        xs,
        niter=positive_int(niter, "niter"),
        seed=as_int(seed, "seed", 0, 2**64 - 1),
        init=init,
        max_points_per_centroid=positive_int(max_points_per_centroid, "max_points_per_centroid"),
        progress=make_progress(verbose, label),
    )
    warns = out[1] if isinstance(out, tuple) else out
    for w in warns:
        warnings.warn(w, stacklevel=3)


class ProductQuantizer:
    """Product quantizer (faiss ``ProductQuantizer``): ``M`` sub-quantizers of ``2**nbits``
    centroids over ``dsub = d / M`` dimensions each.

    ``train(x)`` runs one k-means per sub-space (in parallel; one ``seed`` for all, as faiss:
    the same seed gives the same initial rows as faiss's k-means) and records,
    for bias correction, the mean squared error of the training points of each centroid
    (:attr:`bias`). ``encode`` gives uint8 codes ``(n, M)``; ``decode`` the reconstructions.
    """

    def __init__(self, d: int, M: int, nbits: int = 8) -> None:
        d = positive_int(d, "d")
        M = positive_int(M, "M")
        _check_m(d, M)
        nbits = as_int(nbits, "nbits", 1, 8)
        self._pq = _core.ProductQuantizer(d, M, nbits)

    @classmethod
    def from_centroids(cls, centroids: Any) -> ProductQuantizer:
        """Quantizer with codebooks ``(M, ksub, dsub)`` learned elsewhere (faiss, torch).

        ``ksub`` must be a power of two in 2..256. :attr:`bias` starts at zero; set it (or
        call :meth:`fit_bias`) to use bias correction.
        """
        a = centroids
        if type(a).__module__.startswith("torch"):
            a = a.detach().cpu().numpy()
        a = np.asarray(a)
        if a.dtype.kind not in "fiu":
            raise DTypeError(f"centroids must hold numbers, got dtype {a.dtype}")
        if a.ndim != 3:
            raise ShapeError(f"centroids must have shape (M, ksub, dsub), got {a.shape}")
        obj = cls.__new__(cls)
        obj._pq = _core.ProductQuantizer.from_centroids(np.ascontiguousarray(a, dtype=np.float32))
        return obj

    @classmethod
    def _wrap(cls, core: _core.ProductQuantizer) -> ProductQuantizer:
        obj = cls.__new__(cls)
        obj._pq = core
        return obj

    @property
    def d(self) -> int:
        """Input dimension."""
        return self._pq.d

    @property
    def M(self) -> int:
        """Number of sub-quantizers."""
        return self._pq.M

    @property
    def nbits(self) -> int:
        """Bits per sub-code."""
        return self._pq.nbits

    @property
    def ksub(self) -> int:
        """Centroids per sub-quantizer (2**nbits)."""
        return self._pq.ksub

    @property
    def dsub(self) -> int:
        """Dimensions per sub-vector."""
        return self._pq.dsub

    @property
    def code_size(self) -> int:
        """Bytes per code (= M)."""
        return self._pq.code_size

    @property
    def is_trained(self) -> bool:
        """Whether codebooks are set."""
        return self._pq.is_trained

    @property
    def centroids(self) -> npt.NDArray[np.float32]:
        """Codebooks ``(M, ksub, dsub)`` float32 (a copy)."""
        return self._pq.centroids

    @property
    def bias(self) -> npt.NDArray[np.float32]:
        """Mean squared quantization error per centroid ``(M, ksub)``, used by bias correction."""
        return self._pq.bias

    @bias.setter
    def bias(self, value: Any) -> None:
        self._pq.bias = as_float_matrix(value, "bias", self.ksub)

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
        """Learn the codebooks from ``x`` ``(n, d)``, n >= ksub (faiss defaults: 25 iterations,
        subsampling to ``256 * ksub`` points per sub-space)."""
        _train(
            self._pq,
            x,
            self.d,
            niter,
            seed,
            init,
            max_points_per_centroid,
            verbose,
            f"PQ{self.M}x{self.nbits} training",
        )

    def encode(self, x: Any) -> npt.NDArray[np.uint8]:
        """Codes ``(n, M)`` uint8 of the rows of ``x`` (nearest centroid, lowest index on ties)."""
        return self._pq.encode(as_float_matrix(x, "x", self.d, allow_empty=True))

    def decode(self, codes: Any) -> npt.NDArray[np.float32]:
        """Reconstructions ``(n, d)`` float32 of uint8 codes ``(n, M)``."""
        return self._pq.decode(_as_codes(codes, self.code_size))

    def compute_distance_tables(self, q: Any, metric: str = "l2") -> npt.NDArray[np.float32]:
        """ADC tables ``(nq, M, ksub)``: ``||q_m - c_mj||^2`` (``"l2"``) or ``<q_m, c_mj>``
        (``"ip"``). The ADC distance of a code is the sum over m of ``T[m, code[m]]``."""
        if metric not in ("l2", "ip"):
            raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        return self._pq.compute_distance_tables(qs, metric)

    def sdc_tables(self) -> npt.NDArray[np.float32]:
        """Symmetric tables ``(M, ksub, ksub)``: squared distances between centroids."""
        return self._pq.sdc_tables()

    def quantization_mse(self, x: Any) -> float:
        """Mean over rows of ``||x - decode(encode(x))||^2``."""
        return self._pq.quantization_mse(as_float_matrix(x, "x", self.d))

    def fit_bias(self, x: Any) -> None:
        """Recompute :attr:`bias` from ``x`` (e.g. after :meth:`from_centroids`)."""
        xs = as_float_matrix(x, "x", self.d)
        codes = self.encode(xs)
        err = (xs - self.decode(codes)).reshape(len(xs), self.M, self.dsub)
        err2 = (err.astype(np.float64) ** 2).sum(axis=2)
        bias = np.zeros((self.M, self.ksub), dtype=np.float64)
        count = np.zeros((self.M, self.ksub), dtype=np.int64)
        for m in range(self.M):
            np.add.at(bias[m], codes[:, m], err2[:, m])
            np.add.at(count[m], codes[:, m], 1)
        self.bias = np.where(count > 0, bias / np.maximum(count, 1), 0.0).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"ProductQuantizer(d={self.d}, M={self.M}, nbits={self.nbits}, "
            f"trained={self.is_trained})"
        )


class IndexPQ(Index):
    """Exhaustive search over PQ codes (faiss ``IndexPQ``); ids are positions
    (``remove_ids`` renumbers, as faiss).

    ``search(q, k, mode="adc")`` ranks by asymmetric distances (query exact), ``mode="sdc"`` by
    symmetric ones (query quantized too). ``bias_correction=True`` adds the mean squared
    quantization error of each code's centroids (L2 only; improves the distance estimates, not
    necessarily the ranking). Both are search parameters (:class:`~quanta.SearchParameters`);
    a search that passes none uses :attr:`mode` / :attr:`bias_correction`, saved with the index
    (defaults ``"adc"``, ``False``). Results like faiss: ``D`` float32 ``(nq, k)`` (squared L2
    ascending, or inner products descending), ``I`` int64, ``-1`` padding.
    """

    _kind = "IndexPQ"

    def __init__(self, d: int, M: int, nbits: int = 8, metric: str = "l2") -> None:
        d = positive_int(d, "d")
        M = positive_int(M, "M")
        _check_m(d, M)
        nbits = as_int(nbits, "nbits", 1, 8)
        self._index = _core.IndexPQ(d, M, nbits, check_metric(metric))

    @classmethod
    def from_pq(cls, pq: ProductQuantizer, metric: str = "l2") -> IndexPQ:
        """Empty index using (a copy of) an existing quantizer, trained or not."""
        if not isinstance(pq, ProductQuantizer):
            raise DTypeError(f"pq must be a quanta.ProductQuantizer, got {type(pq).__name__}")
        return cls._wrap(_core.IndexPQ.from_pq(pq._pq, check_metric(metric)))

    @property
    def code_size(self) -> int:
        """Bytes per stored vector (= M)."""
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
        """Bits per sub-code."""
        return int(self._index.nbits)

    @property
    def mode(self) -> str:
        """Estimator of searches that pass no ``mode``: ``"adc"`` (default) or ``"sdc"``;
        saved with the index."""
        return str(self._index.mode)

    @mode.setter
    def mode(self, value: str) -> None:
        self._index.mode = _check_mode(value)

    @property
    def bias_correction(self) -> bool:
        """Bias correction of searches that pass none (default ``False``; L2 only); saved with
        the index."""
        return bool(self._index.bias_correction)

    @bias_correction.setter
    def bias_correction(self, value: bool) -> None:
        self._index.bias_correction = _check_bool(value, "bias_correction")

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
            "IndexPQ training",
        )

    def add_codes(self, codes: Any) -> None:
        """Append precomputed uint8 codes ``(n, code_size)``."""
        self._index.add_codes(_as_codes(codes, self.code_size))

    @property
    def codes(self) -> npt.NDArray[np.uint8]:
        """Stored codes ``(ntotal, code_size)`` (a copy)."""
        out: npt.NDArray[np.uint8] = self._index.codes()
        return out

    def _repr_fields(self) -> str:
        return f"M={self.M}, nbits={self.nbits}"
