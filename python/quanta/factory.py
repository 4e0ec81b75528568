"""``index_factory(d, "IVF1024,PQ16")``: build an index from a faiss-style description.

Grammar (components separated by commas; numbers are decimal)::

    [OPQ{M}[_{d_out}],] BODY [,RFlat]      float vectors, d dimensions
    BFlat                                  binary codes of d bits (IndexBinaryFlat)

    BODY := Flat | PQ{M}[x{nbits}] | PQ{M}x4fs | SQ{type} | RaBitQ[{nbits}][fs] | RaBitQfs[{nbits}]
          | IVF{nlist},Flat | IVF{nlist},PQ{M}[x{nbits}] | IVF{nlist},PQ{M}x4fs
          | IVF{nlist},RaBitQ[{nbits}][fs] | IVF{nlist},SQ{type}

``OPQ`` wraps the rest in :class:`~quanta.IndexPreTransform` with an
:class:`~quanta.OPQMatrix` (the rest is built for ``d_out`` dimensions, default ``d``).
``RFlat`` wraps the index in :class:`~quanta.IndexRefineFlat`: the base index proposes
``k * k_factor`` candidates (``k_factor`` default 1) that are re-ranked by exact distances to
the stored vectors (an IVF base is searched with its own ``nprobe`` unless ``nprobe=`` is given).
The composites live in the core, so every index the factory builds can be saved and loaded.
``SQ8``, ``SQ4``, ``SQfp16``, ``SQbf16`` build :class:`~quanta.IndexScalarQuantizer` with faiss's
``QT_8bit``, ``QT_4bit``, ``QT_fp16``, ``QT_bf16`` codes (faiss's names); ``SQlm2``, ``SQlm3``,
``SQlm4`` its rotated Lloyd-Max codes at 2, 3, 4 bits per dimension (quanta's names, faiss has
no such codes). ``x4fs`` builds the 4-bit fast-scan indexes (:class:`~quanta.IndexPQFastScan`,
:class:`~quanta.IndexIVFPQFastScan`). Anything else raises :class:`~quanta.InvalidArgumentError`
(a ``ValueError``) that lists this grammar.
``RaBitQ`` builds :class:`~quanta.IndexRaBitQ` (1 bit per dimension; ``RaBitQ4``: 4 bits); the
``fs`` spellings of faiss name the same index (quanta's RaBitQ always scans with fast-scan
kernels). ``IVF{nlist},RaBitQ[{nbits}]`` builds :class:`~quanta.IndexIVFRaBitQ` (codes around
each list's centroid; its ``fs`` spelling names the same index). ``IVF{nlist},SQ{type}`` builds
:class:`~quanta.IndexIVFScalarQuantizer` (residuals to the list centroid, as faiss).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from ._validation import positive_int
from .binary import IndexBinaryFlat
from .exceptions import InvalidArgumentError
from .fastscan import IndexPQFastScan
from .index import IndexFlat
from .ivf import IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFScalarQuantizer
from .pq import IndexPQ
from .rabitq import IndexIVFRaBitQ, IndexRaBitQ
from .refine import IndexRefineFlat
from .sq import IndexScalarQuantizer
from .transform import IndexPreTransform, OPQMatrix

__all__ = ["index_factory"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]

GRAMMAR = (
    "[OPQ{M}[_{d_out}],] BODY [,RFlat] with BODY one of Flat | PQ{M}[x{nbits}] | PQ{M}x4fs | "
    "RaBitQ[{nbits}][fs] | "
    "SQ8 | SQ4 | SQfp16 | SQbf16 | SQlm2 | SQlm3 | SQlm4 | "
    "IVF{nlist},Flat | IVF{nlist},PQ{M}[x{nbits}] | IVF{nlist},PQ{M}x4fs | "
    "IVF{nlist},RaBitQ[{nbits}] | IVF{nlist},SQ{type}; or BFlat (binary)"
)


_RABITQ = re.compile(r"RaBitQ(\d*)(fs)?|RaBitQfs(\d*)")
_PQ = re.compile(r"PQ(\d+)(?:x(\d+))?(fs)?")

#: factory suffix of ``SQ{type}`` -> IndexScalarQuantizer qtype
_SQ = {
    "8": "8bit",
    "4": "4bit",
    "fp16": "fp16",
    "bf16": "bf16",
    "lm2": "lm2",
    "lm3": "lm3",
    "lm4": "lm4",
}


def _pq_body(d: int, spec: str, metric: str, nlist: int | None) -> Any:
    m = _PQ.fullmatch(spec)
    if m is None:
        raise InvalidArgumentError(f"cannot parse {spec!r}: expected PQ{{M}}[x{{nbits}}]")
    M = int(m.group(1))
    nbits = int(m.group(2) or 8)
    if m.group(3):
        if nbits != 4:
            raise InvalidArgumentError(f"{spec!r}: fast scan ('fs') needs 4-bit codes (x4fs)")
        if nlist is None:
            return IndexPQFastScan(d, M, metric=metric)
        return IndexIVFPQFastScan(d, nlist, M, metric=metric)
    if nlist is None:
        return IndexPQ(d, M, nbits, metric)
    return IndexIVFPQ(d, nlist, M, nbits, metric)


def _body(d: int, parts: list[str], metric: str) -> Any:
    if parts == ["Flat"]:
        return IndexFlat(d, metric)
    if len(parts) == 1 and parts[0].startswith("PQ"):
        return _pq_body(d, parts[0], metric, None)
    if len(parts) == 1 and (m := _RABITQ.fullmatch(parts[0])) is not None:
        bits = m.group(1) or m.group(3)
        return IndexRaBitQ(d, int(bits) if bits else 1, metric)
    if len(parts) == 1 and parts[0].startswith("SQ") and parts[0][2:] in _SQ:
        return IndexScalarQuantizer(d, _SQ[parts[0][2:]], metric)
    if len(parts) == 2:
        m = re.fullmatch(r"IVF(\d+)", parts[0])
        if m is not None:
            nlist = int(m.group(1))
            if parts[1] == "Flat":
                return IndexIVFFlat(d, nlist, metric)
            if parts[1].startswith("PQ"):
                return _pq_body(d, parts[1], metric, nlist)
            if parts[1].startswith("SQ") and parts[1][2:] in _SQ:
                return IndexIVFScalarQuantizer(d, nlist, _SQ[parts[1][2:]], metric)
            if (r := _RABITQ.fullmatch(parts[1])) is not None:
                bits = r.group(1) or r.group(3)
                return IndexIVFRaBitQ(d, nlist, int(bits) if bits else 1, metric)
    raise InvalidArgumentError(f"unknown index description {','.join(parts)!r}; grammar: {GRAMMAR}")


def index_factory(d: int, description: str, metric: str = "l2") -> Any:
    """Build an (untrained) index from a faiss-style ``description`` (see the module docs).

    Examples: ``"Flat"``, ``"PQ16"``, ``"PQ8x6"``, ``"SQ8"``, ``"OPQ16,SQfp16"``,
    ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``, ``"OPQ16_64,IVF256,PQ16"``, ``"IVF1024,PQ16,RFlat"``,
    ``"BFlat"`` (``d`` in bits).
    """
    d = positive_int(d, "d")
    if not isinstance(description, str):
        raise InvalidArgumentError(f"description must be a str, got {type(description).__name__}")
    if metric not in ("l2", "ip"):
        raise InvalidArgumentError(f"metric must be 'l2' or 'ip', got {metric!r}")
    parts = [p.strip() for p in description.split(",")]
    if parts == ["BFlat"]:
        return IndexBinaryFlat(d)
    refine = parts[-1] == "RFlat"
    if refine:
        parts = parts[:-1]
    transform = None
    if parts and parts[0].startswith("OPQ"):
        m = re.fullmatch(r"OPQ(\d+)(?:_(\d+))?", parts[0])
        if m is None or len(parts) < 2:
            raise InvalidArgumentError(
                f"unknown index description {description!r}; grammar: {GRAMMAR}"
            )
        d_out = int(m.group(2)) if m.group(2) else d
        transform = OPQMatrix(d, int(m.group(1)), d_out=d_out)
        parts = parts[1:]
    try:
        index: Any = _body(transform.d_out if transform else d, parts, metric)
    except InvalidArgumentError as e:
        if "grammar" in str(e) or "not available" in str(e):
            raise
        raise InvalidArgumentError(f"{description!r}: {e}; grammar: {GRAMMAR}") from None
    if transform is not None:
        index = IndexPreTransform(transform, index)
    if refine:
        index = IndexRefineFlat(index)
    return index
