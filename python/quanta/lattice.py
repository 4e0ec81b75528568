"""Lattice quantizers (Spreading Vectors): spherical Zn codes, the E8 lattice, E8 shell codes,
and :class:`IndexLattice`, which stores lattice codes and searches them asymmetrically.

Codes are ``uint8`` arrays ``(n, code_size)`` holding each code as a little-endian integer (the
layout of faiss ``ZnSphereCodec`` codes written in ``code_size`` bytes). Decoded vectors have
unit norm. Inputs follow the numpy policy of :mod:`quanta._validation`: vectors are converted to
C-contiguous float32, codes must already be ``uint8`` (E8 lattice coordinates ``int32``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int, to_numpy
from .base import Index
from .exceptions import DTypeError, ShapeError
from .index import check_metric

__all__ = ["E8Lattice", "E8ShellCodec", "IndexLattice", "ZnSphereCodec", "codes_to_int"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def _as_codes(x: Any, name: str, code_size: int, dtype: type = np.uint8) -> Any:
    """Codes: exact dtype (no silent cast), 2-D ``(n, code_size)``; a 1-D array is one code."""
    a = to_numpy(x, name)
    if a.dtype != dtype:
        raise DTypeError(f"{name} must be {np.dtype(dtype).name}, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D array (n, {code_size}), got shape {a.shape}")
    if a.shape[1] != code_size:
        raise ShapeError(f"{name} has {a.shape[1]} columns, expected code_size={code_size}")
    return np.ascontiguousarray(a)


def codes_to_int(codes: Any) -> list[int]:
    """Python ints of ``(n, code_size)`` little-endian uint8 codes (any width up to 128 bits)."""
    a = np.asarray(codes, dtype=np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in a.reshape(a.shape[0], -1)]


class ZnSphereCodec:
    """Points of Z^d with squared norm ``r2``, scaled to the unit sphere (faiss ``ZnSphereCodec``).

    ``nv`` (number of points), ``code_size`` (bytes) and the codes themselves equal faiss's;
    ``nbits = ceil(log2 nv)``. ``encode`` finds the nearest point on the sphere (maximum inner
    product; the input need not be normalized), ``decode`` returns unit vectors and ``quantize``
    does both at once. Counts beyond 2^64 are supported up to 128-bit codes.
    """

    def __init__(self, d: int, r2: int) -> None:
        self._codec = _core.ZnSphereCodec(positive_int(d, "d", 128), positive_int(r2, "r2"))

    @property
    def d(self) -> int:
        return self._codec.d

    @property
    def r2(self) -> int:
        return self._codec.r2

    @property
    def nv(self) -> int:
        return self._codec.nv

    @property
    def code_size(self) -> int:
        return self._codec.code_size

    @property
    def nbits(self) -> int:
        return self._codec.nbits

    @property
    def natom(self) -> int:
        return self._codec.natom

    def atoms(self) -> npt.NDArray[np.int64]:
        """The atoms ``(natom, d)``: non-increasing, in lexicographically decreasing order."""
        return self._codec.atoms()

    def encode(self, x: Any) -> U8:
        """Codes ``(n, code_size)`` uint8 of the nearest points to the rows of ``x``."""
        return self._codec.encode(as_float_matrix(x, "x", self.d))

    def decode(self, codes: Any) -> F32:
        """Unit vectors ``(n, d)`` of ``codes``; a code ``>= nv`` is an error."""
        return self._codec.decode(_as_codes(codes, "codes", self.code_size))

    def quantize(self, x: Any) -> F32:
        """``decode(encode(x))`` without materializing the codes."""
        return self._codec.quantize(as_float_matrix(x, "x", self.d))

    def __repr__(self) -> str:
        return f"ZnSphereCodec(d={self.d}, r2={self.r2}, nv={self.nv}, code_size={self.code_size})"


class E8Lattice:
    """The E8 lattice scaled by ``scale`` (Conway & Sloane nearest-point decoding).

    Works on ``(n, d)`` arrays with ``d % 8 == 0``, block by block. ``nearest`` returns the
    nearest lattice points (float32), ``encode`` their exact doubled coordinates ``2·y/scale``
    (int32: all even or all odd, sum divisible by 4), ``decode`` maps those back.
    """

    def __init__(self, scale: float = 1.0) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
            raise DTypeError(f"scale must be a number, got {type(scale).__name__}")
        self._lat = _core.E8Lattice(float(scale))

    @property
    def scale(self) -> float:
        return self._lat.scale

    @staticmethod
    def _x(x: Any) -> F32:
        a = as_float_matrix(x, "x", allow_1d=True)
        if a.shape[1] % 8:
            raise ShapeError(
                f"x has d={a.shape[1]} columns, not a multiple of 8 (E8 works on 8-dim blocks)"
            )
        return a

    def nearest(self, x: Any) -> F32:
        """Nearest points of ``scale·E8`` to every 8-dim block of ``x``."""
        return self._lat.nearest(self._x(x))

    def encode(self, x: Any) -> npt.NDArray[np.int32]:
        """Doubled integer coordinates of the nearest points."""
        return self._lat.encode(self._x(x))

    def decode(self, codes: Any) -> F32:
        """Points ``scale · codes / 2``; every block must be an E8 point."""
        a = to_numpy(codes, "codes")
        if a.dtype != np.int32:
            raise DTypeError(f"codes must be int32, got dtype {a.dtype}")
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.ndim != 2 or a.shape[1] % 8:
            raise ShapeError(f"codes must be (n, d) with d a multiple of 8, got shape {a.shape}")
        return self._lat.decode(np.ascontiguousarray(a))

    def __repr__(self) -> str:
        return f"E8Lattice(scale={self.scale})"


class E8ShellCodec:
    """Spherical E8 codes: every 8-dim block goes to the nearest normalized point of the E8
    shells ``‖y‖² = 2m`` for ``m`` in ``shells`` (240, 2160, 6720, 17520 points for m = 1..4).

    ``shells`` is one shell index or a sequence of them (their union is the block codebook, each
    shell sorted lexicographically, shells in increasing order). A ``d``-dim vector is coded as
    ``d/8`` blocks (``d % 8 != 0`` is an error); the code is the block indices in mixed radix
    (block 0 least significant), ``nv = K^(d/8)``. Decoded vectors are the normalized block
    points scaled by ``1/sqrt(d/8)``, so they have unit norm, and encode maximizes the inner
    product with them.
    """

    def __init__(self, shells: int | Sequence[int] = 1, d: int = 8) -> None:
        if isinstance(shells, (int, np.integer)) and not isinstance(shells, bool):
            sh = [int(shells)]
        elif isinstance(shells, Sequence) and not isinstance(shells, str):
            sh = [as_int(m, "shells", 1, 8) for m in shells]
        else:
            raise DTypeError(f"shells must be an int or a sequence of ints, got {shells!r}")
        d = positive_int(d, "d", 1 << 16)
        if d % 8:
            raise ShapeError(f"d={d} is not a multiple of 8 (E8 works on 8-dim blocks)")
        for m in sh:
            as_int(m, "shells", 1, 8)
        self._codec = _core.E8ShellCodec(sh, d)

    @property
    def d(self) -> int:
        return self._codec.d

    @property
    def shells(self) -> list[int]:
        return self._codec.shells

    @property
    def nv(self) -> int:
        return self._codec.nv

    @property
    def code_size(self) -> int:
        return self._codec.code_size

    @property
    def nbits(self) -> int:
        return self._codec.nbits

    @property
    def points_per_block(self) -> int:
        return self._codec.points_per_block

    def points(self) -> npt.NDArray[np.int32]:
        """Block codebook ``(K, 8)`` in doubled coordinates ``2y`` (index = block code)."""
        return self._codec.points()

    def encode(self, x: Any) -> U8:
        """Codes ``(n, code_size)`` uint8 of the rows of ``x``."""
        return self._codec.encode(as_float_matrix(x, "x", self.d))

    def decode(self, codes: Any) -> F32:
        """Unit vectors ``(n, d)`` of ``codes``."""
        return self._codec.decode(_as_codes(codes, "codes", self.code_size))

    def quantize(self, x: Any) -> F32:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def __repr__(self) -> str:
        return f"E8ShellCodec(shells={self.shells}, d={self.d}, nbits={self.nbits})"


class IndexLattice(Index):
    """Lattice codes with asymmetric search (float query vs decoded code); ids are positions
    (``remove_ids`` renumbers, as faiss ``IndexFlat``).

    ``codec`` is a :class:`ZnSphereCodec` or :class:`E8ShellCodec`. ``search`` returns squared
    L2 distances to the decoded unit vectors (``metric="l2"``, the default) or inner products
    (descending, ``metric="ip"``); codes are decoded tile by tile during the scan. Save and load
    with :func:`quanta.write_index` / :func:`quanta.read_index` (``mmap=True`` keeps the codes
    in the mapped file until the index is modified); :meth:`codes` and :meth:`add_codes` give
    the raw storage. ``train`` is a no-op (lattices have nothing to learn) that checks ``x``.
    """

    _kind = "IndexLattice"

    def __init__(self, codec: ZnSphereCodec | E8ShellCodec, metric: str = "l2") -> None:
        if not isinstance(codec, (ZnSphereCodec, E8ShellCodec)):
            raise DTypeError(
                f"codec must be a ZnSphereCodec or an E8ShellCodec, got {type(codec).__name__}"
            )
        self._index = _core.IndexLattice(codec._codec, check_metric(metric))

    @property
    def codec(self) -> ZnSphereCodec | E8ShellCodec:
        """The codec (a copy)."""
        core_codec = self._index.codec
        codec: ZnSphereCodec | E8ShellCodec
        if isinstance(core_codec, _core.ZnSphereCodec):
            codec = ZnSphereCodec.__new__(ZnSphereCodec)
        else:
            codec = E8ShellCodec.__new__(E8ShellCodec)
        codec._codec = core_codec
        return codec

    @property
    def code_size(self) -> int:
        """Bytes per stored code."""
        return int(self._index.code_size)

    @property
    def nv(self) -> int:
        """Number of distinct codes of the codec."""
        return int(self._index.nv)

    @property
    def nbits(self) -> int:
        """Bits per code, ``ceil(log2 nv)``."""
        return int(self._index.nbits)

    def add_codes(self, codes: Any) -> None:
        """Append already-encoded codes ``(n, code_size)`` uint8."""
        self._index.add_codes(_as_codes(codes, "codes", self.code_size))

    def codes(self) -> U8:
        """Copy of the stored codes ``(ntotal, code_size)``."""
        out: U8 = self._index.codes()
        return out

    def __repr__(self) -> str:
        return f"IndexLattice({self.codec!r}, metric={self.metric!r}, ntotal={self.ntotal})"
