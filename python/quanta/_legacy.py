"""Transitional: the Python-side composites, for inner indexes not yet on the core ``Index``
protocol (``IndexPQ``, ``IndexPQFastScan``, the IVF family until their migration, issue #16).

:class:`~quanta.IndexPreTransform` and :class:`~quanta.IndexRefineFlat` build these when the
wrapped index has no core object; they keep the old behaviour (the wrapped index is shared, not
copied) and cannot be saved. Delete this module, and the two ``__new__`` that dispatch to it,
once every index subclasses :class:`~quanta.Index`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._validation import as_float_matrix, as_int, positive_int
from .base import Index, SearchResult
from .exceptions import DTypeError, InvalidArgumentError, NotTrainedError, ShapeError
from .refine import IndexRefineFlat
from .transform import IndexPreTransform, OPQMatrix


def core_of(index: Any) -> Any:
    """The core object of a protocol index, or ``None`` (legacy indexes, foreign objects)."""
    core = getattr(index, "_index", None) if isinstance(index, Index) else None
    return core if isinstance(core, _core.Index) else None


class _Unsaved:
    def serialize(self) -> bytes:
        raise DTypeError(
            f"cannot save this {type(self).__name__}: its inner index is not on the Index "
            "protocol yet"
        )

    def _write_index(self, path: str) -> None:
        self.serialize()


class LegacyPreTransform(_Unsaved, IndexPreTransform):
    """:class:`~quanta.IndexPreTransform` over a legacy index (the old Python composite)."""

    _kind = ""

    def __init__(self, transform: OPQMatrix, index: Any) -> None:
        if not isinstance(transform, OPQMatrix):
            raise DTypeError(
                f"transform must be a quanta.OPQMatrix, got {type(transform).__name__}"
            )
        if getattr(index, "d", None) != transform.d_out:
            raise ShapeError(
                f"index has d={getattr(index, 'd', None)}, expected the transform's "
                f"d_out={transform.d_out}"
            )
        self._t = transform
        self._i = index

    @property
    def transform(self) -> OPQMatrix:
        return self._t

    @property
    def index(self) -> Any:
        return self._i

    @property
    def d(self) -> int:
        return self._t.d_in

    @property
    def metric(self) -> str:
        metric = getattr(self._i, "metric", None)
        if metric is None:
            raise DTypeError(f"the wrapped index {type(self._i).__name__} has no metric")
        return str(metric)

    @property
    def ntotal(self) -> int:
        return int(self._i.ntotal)

    @property
    def is_trained(self) -> bool:
        return self._t.is_trained and bool(getattr(self._i, "is_trained", True))

    def train(self, x: Any, *, verbose: bool = False) -> None:
        xs = as_float_matrix(x, "x", self.d)
        if not self._t.is_trained:
            self._t.train(xs)
        self._i.train(self._t.apply(xs))

    def add(self, x: Any, *, verbose: bool = False) -> None:
        self._i.add(self._t.apply(as_float_matrix(x, "x", self.d, allow_empty=True)))

    def search(self, q: Any, k: int, **kwargs: Any) -> SearchResult:
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        result: SearchResult = self._i.search(self._t.apply(qs), k, **kwargs)
        return result

    def reconstruct(self, i: int) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = self._t.reverse_transform(self._i.reconstruct(i))[0]
        return out

    def reset(self) -> None:
        self._i.reset()

    def __repr__(self) -> str:
        return f"IndexPreTransform({self._t!r}, {self._i!r})"


class LegacyRefineFlat(_Unsaved, IndexRefineFlat):
    """:class:`~quanta.IndexRefineFlat` over a legacy index (the old Python composite)."""

    _kind = ""

    def __init__(self, base_index: Any, k_factor: int = 1) -> None:
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
        self._b = base_index
        self._metric = metric
        self._kf = positive_int(k_factor, "k_factor")
        self._xb = np.zeros((0, int(base_index.d)), dtype=np.float32)

    @property
    def base_index(self) -> Any:
        return self._b

    @property
    def d(self) -> int:
        return int(self._b.d)

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def ntotal(self) -> int:
        return int(self._xb.shape[0])

    @property
    def is_trained(self) -> bool:
        return bool(getattr(self._b, "is_trained", True))

    @property
    def k_factor(self) -> int:
        return self._kf

    @k_factor.setter
    def k_factor(self, value: Any) -> None:
        self._kf = positive_int(value, "k_factor")

    def train(self, x: Any, **kwargs: Any) -> None:
        self._b.train(as_float_matrix(x, "x", self.d), **kwargs)

    def add(self, x: Any, *, verbose: bool = False) -> None:
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        if not self.is_trained:
            raise NotTrainedError("IndexRefineFlat: the base index is not trained")
        self._b.add(xs)
        self._xb = np.concatenate([self._xb, xs]) if self.ntotal else xs.copy()

    def reconstruct(self, i: int) -> npt.NDArray[np.float32]:
        if self.ntotal == 0:
            as_int(i, "i", 0, 2**63 - 1)  # type check first: a bad type is a DTypeError
            raise InvalidArgumentError(f"i={i} is out of range: the index is empty (ntotal=0)")
        row: npt.NDArray[np.float32] = self._xb[as_int(i, "i", 0, self.ntotal - 1)]
        return row.copy()

    def reset(self) -> None:
        self._b.reset()
        self._xb = np.zeros((0, self.d), dtype=np.float32)

    def search(self, q: Any, k: int, k_factor: int | None = None) -> SearchResult:  # type: ignore[override]
        from .fastscan import IndexPQFastScan

        k = positive_int(k, "k")
        kf = self._kf if k_factor is None else positive_int(k_factor, "k_factor")
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        kk = k * kf
        ip = self.metric == "ip"
        if self.ntotal == 0:  # nothing stored: all padding, like faiss
            nq = qs.shape[0]
            pad = np.full((nq, k), -np.inf if ip else np.inf, dtype=np.float32)
            return pad, np.full((nq, k), -1, dtype=np.int64)
        if isinstance(self._b, IndexPQFastScan):
            _, cand = self._b.search(qs, kk, k_factor=1)
        else:
            _, cand = self._b.search(qs, kk)
        valid = cand >= 0
        key = np.empty(cand.shape, dtype=np.float32)
        # exact distances of the candidates, a slab of queries at a time (bounded memory)
        step = max(1, (1 << 22) // max(1, kk * self.d))
        for a in range(0, qs.shape[0], step):
            c, v, qq = cand[a : a + step], valid[a : a + step], qs[a : a + step]
            vecs = self._xb[np.where(v, c, 0)]  # (slab, kk, d)
            if ip:
                kq = -np.einsum("qkd,qd->qk", vecs, qq)
            else:
                diff = vecs - qq[:, None, :]
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
        return f"IndexRefineFlat(base_index={self._b!r}, k_factor={self._kf}, ntotal={self.ntotal})"
