"""``index_factory(d, "IVF1024,PQ16")``: build an index from a faiss-style description.

Grammar (components separated by commas; numbers are decimal)::

    [OPQ{M}[_{d_out}],] BODY [,RFlat]      float vectors, d dimensions
    BFlat                                  binary codes of d bits (IndexBinaryFlat)

    BODY := Flat | PQ{M}[x{nbits}] | PQ{M}x4fs
          | IVF{nlist},Flat | IVF{nlist},PQ{M}[x{nbits}] | IVF{nlist},PQ{M}x4fs

``OPQ`` wraps the rest in :class:`~quanta.IndexPreTransform` with an
:class:`~quanta.OPQMatrix` (the rest is built for ``d_out`` dimensions, default ``d``).
``RFlat`` wraps the index in :class:`IndexRefineFlatBasic`: the base index proposes
``k * k_factor`` candidates that are re-ranked by exact distances to the stored vectors.
``x4fs`` (4-bit fast-scan PQ) raises :class:`~quanta.InvalidArgumentError` when this build of
quanta has no fast-scan index. Anything else raises :class:`~quanta.InvalidArgumentError`
(a ``ValueError``) that lists this grammar.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

from ._validation import as_float_matrix, positive_int
from .binary import IndexBinaryFlat
from .exceptions import InvalidArgumentError
from .index import IndexFlat
from .ivf import IndexIVFFlat, IndexIVFPQ
from .pq import IndexPQ
from .transform import IndexPreTransform, OPQMatrix

__all__ = ["IndexRefineFlatBasic", "index_factory"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]

GRAMMAR = (
    "[OPQ{M}[_{d_out}],] BODY [,RFlat] with BODY one of Flat | PQ{M}[x{nbits}] | PQ{M}x4fs | "
    "IVF{nlist},Flat | IVF{nlist},PQ{M}[x{nbits}] | IVF{nlist},PQ{M}x4fs; or BFlat (binary)"
)


class IndexRefineFlatBasic:
    """A base index re-ranked by exact distances (faiss ``IndexRefineFlat``, minimal version).

    Keeps a float copy of every added vector; ``search(q, k)`` asks the base index for
    ``k * k_factor`` candidates and returns the ``k`` nearest of them by exact squared L2 (or
    inner product). The base index must number vectors sequentially (``add``, not ids). Not
    persistable.
    """

    def __init__(self, base: Any, k_factor: int = 4) -> None:
        self.base = base
        self.k_factor = positive_int(k_factor, "k_factor")
        self._xb = np.zeros((0, int(base.d)), dtype=np.float32)

    @property
    def d(self) -> int:
        """Dimension."""
        return int(self.base.d)

    @property
    def ntotal(self) -> int:
        """Stored vectors."""
        return int(self._xb.shape[0])

    @property
    def metric(self) -> str:
        """The base index's metric."""
        return str(getattr(self.base, "metric", "l2"))

    @property
    def is_trained(self) -> bool:
        """Whether the base index is trained."""
        return bool(getattr(self.base, "is_trained", True))

    def __len__(self) -> int:
        return self.ntotal

    def train(self, x: Any) -> None:
        """Train the base index."""
        self.base.train(x)

    def add(self, x: Any) -> None:
        """Add to the base index and keep the raw vectors."""
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        self.base.add(xs)
        self._xb = np.concatenate([self._xb, xs])

    def reset(self) -> None:
        """Empty both."""
        self.base.reset()
        self._xb = self._xb[:0]

    def search(self, q: Any, k: int, k_factor: int | None = None, **kwargs: Any) -> SearchResult:
        """Top ``k`` of the base index's ``k * k_factor`` candidates by exact distance; other
        keyword arguments (``nprobe``, ...) go to the base index."""
        k = positive_int(k, "k")
        kf = self.k_factor if k_factor is None else positive_int(k_factor, "k_factor")
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        _, cand = self.base.search(qs, k * kf, **kwargs)
        valid = cand >= 0
        vec = self._xb[np.where(valid, cand, 0)]
        ip = np.einsum("qkd,qd->qk", vec, qs)
        if self.metric == "ip":
            key = np.where(valid, -ip, np.inf)
        else:
            key = (vec * vec).sum(2) - 2 * ip + (qs * qs).sum(1)[:, None]
            key = np.where(valid, key, np.inf)
        order = np.lexsort((np.where(valid, cand, np.iinfo(np.int64).max), key), axis=1)[:, :k]
        ids = np.take_along_axis(np.where(valid, cand, -1), order, 1)
        dist = np.take_along_axis(key, order, 1).astype(np.float32)
        if self.metric == "ip":
            dist = -dist  # invalid slots: -inf
        return np.ascontiguousarray(dist), np.ascontiguousarray(ids)

    def __repr__(self) -> str:
        return f"IndexRefineFlatBasic({self.base!r}, k_factor={self.k_factor})"


def _fast_scan(kind: str) -> Any:
    """The fast-scan class ``kind``, or an error saying it is not in this build."""
    from . import _core

    if not hasattr(_core, kind):
        raise InvalidArgumentError(
            f"{kind} (4-bit fast-scan PQ, 'x4fs') is not available yet in this build of quanta"
        )
    import quanta

    return getattr(quanta, kind)


_PQ = re.compile(r"PQ(\d+)(?:x(\d+))?(fs)?")


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
            return _fast_scan("IndexPQFastScan")(d, M, metric=metric)
        return _fast_scan("IndexIVFPQFastScan")(d, nlist, M, metric=metric)
    if nlist is None:
        return IndexPQ(d, M, nbits, metric)
    return IndexIVFPQ(d, nlist, M, nbits, metric)


def _body(d: int, parts: list[str], metric: str) -> Any:
    if parts == ["Flat"]:
        return IndexFlat(d, metric)
    if len(parts) == 1 and parts[0].startswith("PQ"):
        return _pq_body(d, parts[0], metric, None)
    if len(parts) == 2:
        m = re.fullmatch(r"IVF(\d+)", parts[0])
        if m is not None:
            nlist = int(m.group(1))
            if parts[1] == "Flat":
                return IndexIVFFlat(d, nlist, metric)
            if parts[1].startswith("PQ"):
                return _pq_body(d, parts[1], metric, nlist)
    raise InvalidArgumentError(f"unknown index description {','.join(parts)!r}; grammar: {GRAMMAR}")


def index_factory(d: int, description: str, metric: str = "l2") -> Any:
    """Build an (untrained) index from a faiss-style ``description`` (see the module docs).

    Examples: ``"Flat"``, ``"PQ16"``, ``"PQ8x6"``, ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``,
    ``"OPQ16_64,IVF256,PQ16"``, ``"IVF1024,PQ16,RFlat"``, ``"BFlat"`` (``d`` in bits).
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
        index = IndexRefineFlatBasic(index)
    return index
