"""quanta: vector compression and similarity search with a Rust core.

Importing quanta never imports torch; the learned quantizers live in ``quanta.nn``.
"""

from __future__ import annotations

import os as _os
from typing import Any as _Any

from . import _core, datasets, io, metrics
from ._validation import as_int
from .base import Index, SearchParameters
from .binary import ITQ, LSH, IndexBinaryFlat, SignEncoder, pack_bits, unpack_bits
from .binary_base import IndexBinary
from .clustering import KMeans
from .exceptions import (
    DTypeError,
    FingerprintMismatchError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    QuantaError,
    ShapeError,
    ShardLostError,
    SimdUnavailableError,
)
from .factory import index_factory
from .fastscan import IndexPQFastScan
from .index import IndexFlat, IndexFlatIP, IndexFlatL2, IndexIDMap
from .io import deserialize_index, read_index, serialize_index, write_index
from .ivf import IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFScalarQuantizer
from .lattice import E8Lattice, E8ShellCodec, IndexLattice, ZnSphereCodec
from .pq import IndexPQ, ProductQuantizer
from .rabitq import IndexIVFRaBitQ, IndexRaBitQ, RaBitQ
from .refine import IndexRefineFlat
from .sq import IndexScalarQuantizer
from .transform import IndexPreTransform, OPQMatrix

__version__: str = _core.__version__

__all__ = [
    "ITQ",
    "LSH",
    "DTypeError",
    "E8Lattice",
    "E8ShellCodec",
    "FingerprintMismatchError",
    "FormatError",
    "Index",
    "IndexBinary",
    "IndexBinaryFlat",
    "IndexFlat",
    "IndexFlatIP",
    "IndexFlatL2",
    "IndexIDMap",
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexIVFRaBitQ",
    "IndexIVFScalarQuantizer",
    "IndexLattice",
    "IndexPQ",
    "IndexPQFastScan",
    "IndexPreTransform",
    "IndexRaBitQ",
    "IndexRefineFlat",
    "IndexScalarQuantizer",
    "InvalidArgumentError",
    "KMeans",
    "NotTrainedError",
    "OPQMatrix",
    "ProductQuantizer",
    "QuantaError",
    "RaBitQ",
    "SearchParameters",
    "ShapeError",
    "ShardLostError",
    "SignEncoder",
    "SimdUnavailableError",
    "ZnSphereCodec",
    "__version__",
    "available_simd_levels",
    "datasets",
    "deserialize_index",
    "get_num_threads",
    "index_factory",
    "io",
    "metrics",
    "pack_bits",
    "read_index",
    "serialize_index",
    "set_num_threads",
    "set_simd_level",
    "simd_level",
    "unpack_bits",
    "write_index",
]


def simd_level() -> str:
    """SIMD level the kernels use now: ``"scalar"``, ``"avx2"`` or ``"avx512"``.

    Chosen once from the CPU; ``QUANTA_SIMD=scalar|avx2|avx512`` (read at first use) or
    :func:`set_simd_level` lowers it.
    """
    return _core.simd_level()


def available_simd_levels() -> list[str]:
    """Every level this CPU can run, lowest first."""
    return _core.available_simd_levels()


def set_simd_level(level: str) -> None:
    """Force a SIMD level; raises :class:`SimdUnavailableError` if the CPU lacks it."""
    if not isinstance(level, str):
        raise DTypeError(f"level must be a str, got {type(level).__name__}")
    _core.set_simd_level(level)


def set_num_threads(n: int) -> None:
    """Number of threads quanta's pool uses (default: all cores, or ``QUANTA_NUM_THREADS``)."""
    _core.set_num_threads(as_int(n, "n", 1, 1024))


def get_num_threads() -> int:
    """Current size of quanta's thread pool."""
    return _core.get_num_threads()


# torch-backed names, resolved on first use so that ``import quanta`` never imports torch
_LAZY_NN = {"SpreadingVectors": "SpreadingVectors"}


def __getattr__(name: str) -> _Any:
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    if name in _LAZY_NN:
        from . import nn

        return getattr(nn, _LAZY_NN[name])
    raise AttributeError(f"module 'quanta' has no attribute {name!r}")


if hasattr(_os, "register_at_fork"):
    # the parent's worker threads do not exist in a forked child: build a fresh pool there
    _os.register_at_fork(after_in_child=_core._reset_after_fork)
