"""Binary codes: encoders (sign, LSH, ITQ), bit packing and exhaustive Hamming search.

Conventions (faiss-compatible, ALGORITHMS.md §3):

* **Bit rule**: a component becomes bit 1 iff it is ``> 0``; zero (and ``-0.0``) gives 0. So
  ``np.sign``/``torch.sign`` outputs (which use 0 for 0) and ±1 arrays pack as expected.
* **Packing**: byte ``i`` holds dimensions ``8i .. 8i+7``, least significant bit first
  (``np.packbits(..., bitorder="little")``); a width that is not a multiple of 8 is padded with
  zero bits, which does not change Hamming distances.
* **Unpacking** to floats gives ``2·bit − 1 ∈ {−1, +1}`` (faiss ``binary_to_real``).
* Codes are ``uint8`` arrays ``(n, ceil(nbits / 8))``; passing anything else is a
  :class:`~quanta.DTypeError` (no silent cast).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import as_codes, as_float_matrix, as_int, positive_int, to_numpy
from .binary_base import IndexBinary
from .exceptions import DTypeError, InvalidArgumentError, ShapeError

__all__ = ["ITQ", "LSH", "IndexBinaryFlat", "SignEncoder", "pack_bits", "unpack_bits"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def _nbits(nbits: Any) -> int:
    n = positive_int(nbits, "nbits")
    if n % 8 != 0:
        raise InvalidArgumentError(f"nbits must be a multiple of 8, got {n}")
    return n


# ---------------------------------------------------------------------------------------------
# packing


def pack_bits(x: Any) -> U8:
    """Pack bits along the last axis: ``(..., d)`` → ``(..., ceil(d / 8))`` uint8.

    ``x`` may be a numpy array, a torch tensor (CPU or GPU; torch is never imported by quanta),
    anything with ``__array__``/``__dlpack__``, or nested lists, holding bools, ``{0, 1}`` or
    ``±1`` (any real numbers: bit = ``x > 0``). NaN is rejected.
    """
    a = to_numpy(x, "x")
    if a.dtype.kind not in "biuf":
        raise DTypeError(f"x must hold bools or real numbers, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ShapeError("x must have at least one dimension (the bits), got a scalar")
    if a.shape[-1] == 0:
        raise ShapeError(f"x has no bits to pack (shape {a.shape})")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise InvalidArgumentError("x contains NaN: a bit must be > 0 (1) or not (0)")
    bits = a if a.dtype == np.bool_ else a > 0
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack_bits(codes: Any, nbits: int | None = None, *, signed: bool = True) -> npt.NDArray[Any]:
    """Inverse of :func:`pack_bits` along the last axis.

    Returns ``(..., nbits)`` (default ``8 · code_size``): float32 ``±1`` when ``signed`` (faiss
    ``binary_to_real``), else uint8 ``0/1``. ``codes`` must be uint8.
    """
    a = to_numpy(codes, "codes")
    if a.dtype != np.uint8:
        raise DTypeError(f"codes must be uint8 packed codes, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ShapeError("codes must have at least one dimension, got a scalar")
    width = 8 * a.shape[-1]
    n = width if nbits is None else as_int(nbits, "nbits", 1, max(width, 1))
    if width == 0:
        raise ShapeError(f"codes has no bytes to unpack (shape {a.shape})")
    bits = np.unpackbits(a, axis=-1, count=n, bitorder="little")
    if signed:
        return bits.astype(np.float32) * 2.0 - 1.0
    return bits


# ---------------------------------------------------------------------------------------------
# encoders


class SignEncoder:
    """Sign binarization: bit ``j`` = ``x_j > 0`` (zero → 0), packed to ``ceil(d / 8)`` bytes.

    ``decode`` maps bits back to ``±1`` (so a zero input decodes to ``−1``).
    """

    def __init__(self, d: int) -> None:
        self.d = positive_int(d, "d")

    @property
    def nbits(self) -> int:
        return self.d

    @property
    def code_size(self) -> int:
        return (self.d + 7) // 8

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, x: Any) -> SignEncoder:
        """No-op (nothing to learn); checks ``x``."""
        as_float_matrix(x, "x", self.d)
        return self

    def encode(self, x: Any) -> U8:
        """``(n, d)`` floats → ``(n, code_size)`` uint8."""
        return _core.sign_encode(as_float_matrix(x, "x", self.d))

    def decode(self, codes: Any) -> F32:
        """``(n, code_size)`` uint8 → ``(n, d)`` float32 ``±1``."""
        return _core.unpack_pm1(as_codes(codes, "codes", self.code_size, allow_empty=True), self.d)

    def __repr__(self) -> str:
        return f"SignEncoder(d={self.d})"


class LSH:
    """Random-projection LSH (SimHash): ``bit_j = <x − μ, w_j> − t_j > 0``.

    * ``projection``: ``"orthogonal"`` (orthonormalized Gaussian directions, faiss ``IndexLSH``'s
      random rotation, needs ``nbits <= d``), ``"gaussian"`` (i.i.d. N(0, 1)), or ``"auto"``
      (orthogonal when ``nbits <= d``).
    * ``center=True`` subtracts the training mean μ (sign codes of uncentred data are strongly
      correlated); ``train_thresholds=True`` learns ``t_j`` = per-bit median of the training
      projections (faiss ``train_thresholds``). With both off no training is needed.
    * ``seed`` fixes the directions (same seed → same codes).
    """

    def __init__(
        self,
        d: int,
        nbits: int,
        seed: int = 1234,
        *,
        projection: str = "auto",
        center: bool = True,
        train_thresholds: bool = False,
    ) -> None:
        d = positive_int(d, "d")
        nbits = positive_int(nbits, "nbits", 1 << 20)
        if projection not in ("auto", "orthogonal", "gaussian"):
            raise InvalidArgumentError(
                f"projection must be 'auto', 'orthogonal' or 'gaussian', got {projection!r}"
            )
        seed = as_int(seed, "seed", 0, 2**64 - 1)
        self._lsh = _core.LSH(
            d,
            nbits,
            seed=seed,
            projection=projection,
            center=bool(center),
            train_thresholds=bool(train_thresholds),
        )
        self.seed = seed

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self._lsh.d)

    @property
    def nbits(self) -> int:
        """Bits per code."""
        return int(self._lsh.nbits)

    @property
    def projection(self) -> str:
        """Projection kind used."""
        return str(self._lsh.projection)

    @property
    def is_trained(self) -> bool:
        """Whether encode may be called."""
        return bool(self._lsh.is_trained)

    @property
    def code_size(self) -> int:
        return (int(self.nbits) + 7) // 8

    @property
    def directions(self) -> F32:
        """``(nbits, d)`` projection directions."""
        return self._lsh.directions()

    @property
    def mean(self) -> F32:
        return self._lsh.mean()

    @property
    def thresholds(self) -> F32:
        return self._lsh.thresholds()

    def train(self, x: Any) -> LSH:
        """Learn the mean / thresholds from ``x`` ``(n, d)``."""
        self._lsh.train(as_float_matrix(x, "x", self.d))
        return self

    def encode(self, x: Any) -> U8:
        """``(n, d)`` floats → ``(n, code_size)`` uint8."""
        return self._lsh.encode(as_float_matrix(x, "x", self.d, allow_empty=True))

    def __repr__(self) -> str:
        return f"LSH(d={self.d}, nbits={self.nbits}, projection={self.projection!r})"


class ITQ:
    """Iterative Quantization (Gong & Lazebnik 2011): PCA to ``nbits`` dimensions, then a learned
    rotation ``R`` minimizing the quantization loss ``‖sgn(VR) − VR‖²``, ``niter`` alternations.

    After :meth:`train`: ``losses`` (niter + 1 values, non-increasing), ``eigenvalues``, ``mean``,
    ``projection`` ``(nbits, d)`` (= ``(P R)ᵀ``). ``niter=0`` gives sign of a random rotation
    of the PCA projection. Requires ``nbits <= d``.
    """

    def __init__(self, d: int, nbits: int, niter: int = 50, seed: int = 123) -> None:
        d = positive_int(d, "d")
        nbits = positive_int(nbits, "nbits")
        if nbits > d:
            raise InvalidArgumentError(
                f"nbits must be <= d (ITQ keeps nbits principal components), got nbits={nbits} "
                f"> d={d}"
            )
        niter = as_int(niter, "niter", 0, 1_000_000)
        self.seed = as_int(seed, "seed", 0, 2**64 - 1)
        self._itq = _core.ITQ(d, nbits, niter=niter, seed=self.seed)

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self._itq.d)

    @property
    def nbits(self) -> int:
        """Bits per code."""
        return int(self._itq.nbits)

    @property
    def niter(self) -> int:
        """Iterations."""
        return int(self._itq.niter)

    @property
    def is_trained(self) -> bool:
        """Whether encode may be called."""
        return bool(self._itq.is_trained)

    @property
    def code_size(self) -> int:
        return (int(self.nbits) + 7) // 8

    @property
    def losses(self) -> npt.NDArray[np.float64]:
        return self._itq.losses()

    @property
    def eigenvalues(self) -> npt.NDArray[np.float64]:
        return self._itq.eigenvalues()

    @property
    def mean(self) -> F32:
        return self._itq.mean()

    @property
    def projection(self) -> F32:
        return self._itq.projection()

    def train(self, x: Any, *, verbose: bool = False) -> ITQ:
        """Learn mean, PCA and rotation from ``x`` ``(n, d)``."""
        xs = as_float_matrix(x, "x", self.d)
        progress = make_progress(verbose, f"ITQ nbits={self.nbits}")
        for w in self._itq.train(xs, progress=progress):
            warnings.warn(w, RuntimeWarning, stacklevel=2)
        return self

    def encode(self, x: Any) -> U8:
        """``(n, d)`` floats → ``(n, code_size)`` uint8."""
        return self._itq.encode(as_float_matrix(x, "x", self.d, allow_empty=True))

    def __repr__(self) -> str:
        return f"ITQ(d={self.d}, nbits={self.nbits}, niter={self.niter})"


# ---------------------------------------------------------------------------------------------
# index


class IndexBinaryFlat(IndexBinary):
    """Exhaustive Hamming search over packed codes (faiss ``IndexBinaryFlat``).

    ``search(q, k)`` returns ``(D, I)``: ``D`` int32 ``(nq, k)`` Hamming distances (ascending),
    ``I`` int64 ids; ties go to the lower id; rows are padded with ``(2**31 − 1, −1)`` when
    ``k > ntotal`` (as faiss). ``range_search(q, radius)`` returns every code at distance
    **strictly below** ``radius`` (faiss semantics) as ``(lims, D, I)``. Filters
    (``ids_allowed=`` / ``ids_denied=``) apply inside the scan.

    Differences from faiss: ids are explicit and stable — ``add`` numbers from the largest id so
    far + 1, ``add_with_ids`` takes any ids ``>= 0``, and ``remove_ids`` keeps the other ids
    (faiss renumbers them); range results are sorted by (distance, id).
    """

    _kind = "IndexBinaryFlat"

    def __init__(self, nbits: int) -> None:
        self._index = _core.IndexBinaryFlat(_nbits(nbits))

    def reconstruct_n(self, i0: int = 0, n: int | None = None) -> U8:
        """Stored codes ``i0 .. i0+n`` (storage order) as a copy."""
        i0 = as_int(i0, "i0", 0, self.ntotal)
        n = self.ntotal - i0 if n is None else as_int(n, "n", 0, self.ntotal - i0)
        out: U8 = self._index.codes()[i0 : i0 + n].copy()
        return out

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """Stored ids in storage order (a copy)."""
        out: npt.NDArray[np.int64] = self._index.ids()
        return out
