"""faiss index classes as thin wrappers around quanta's indexes.

Every class holds its quanta index in ``_q``; methods take faiss's signatures and call quanta's
(search, training and storage are quanta's). Attributes not defined here are read from (and,
for quanta properties with a setter, written to) the quanta index, so ``index.M`` or
``index.k_factor = 4`` work. Pickling keeps the class: the quanta index pickles itself.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

import quanta

from ._params import IDSelector, IDSelectorBatch, SearchParameters

_I = TypeVar("_I", bound="Index")

__all__ = [
    "METRIC_INNER_PRODUCT",
    "METRIC_L2",
    "Index",
    "IndexBinary",
    "IndexBinaryFlat",
    "IndexFlat",
    "IndexFlatIP",
    "IndexFlatL2",
    "IndexIDMap",
    "IndexIDMap2",
    "IndexIVF",
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexIVFScalarQuantizer",
    "IndexPQ",
    "IndexPQFastScan",
    "IndexPreTransform",
    "IndexRefineFlat",
    "IndexScalarQuantizer",
    "IndexShards",
    "OPQMatrix",
    "ScalarQuantizer",
    "wrap",
]

METRIC_INNER_PRODUCT = 0
METRIC_L2 = 1

_TORCH = [False]
"""``[True]`` once :mod:`quanta.faiss.contrib.torch_utils` is imported."""


def metric_name(metric: Any) -> str:
    """quanta's metric string of a faiss metric constant."""
    if metric == METRIC_L2 or metric == "l2":
        return "l2"
    if metric == METRIC_INNER_PRODUCT or metric == "ip":
        return "ip"
    raise NotImplementedError(
        f"metric {metric!r}: quanta has METRIC_L2 and METRIC_INNER_PRODUCT only"
    )


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _out(like: Any, *arrays: Any) -> Any:
    """``arrays`` as torch tensors on ``like``'s device when torch mode is on and ``like`` is a
    tensor (``like=None``: whenever torch mode is on), else unchanged."""
    if not _TORCH[0] or (like is not None and not _is_torch(like)):
        return arrays if len(arrays) > 1 else arrays[0]
    torch = importlib.import_module("torch")
    dev = like.device if like is not None else "cpu"
    out = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(dev) for a in arrays)
    return out if len(out) > 1 else out[0]


def _ids_arg(x: Any) -> Any:
    """An id array or an :class:`IDSelector` as quanta's ``remove_ids`` argument."""
    if isinstance(x, IDSelector):
        if x._deny:
            raise NotImplementedError(
                "remove_ids with an IDSelectorNot: quanta removes an id list or a bool mask; "
                "pass the ids to remove"
            )
        return x._ids if x._ids is not None else x._mask
    a = x.detach().cpu().numpy() if _is_torch(x) else np.asarray(x)
    return np.ascontiguousarray(a.ravel(), dtype=np.int64)


def _fill(dst: Any, src: Any) -> Any:
    if dst is None:
        return src
    dst[...] = src
    return dst


class Index:
    """faiss ``Index``: the methods every index has (``add``, ``search``, ...)."""

    _q: Any
    _nprobe: int | None = None
    """nprobe set through :func:`extract_index_ivf` on a composite (quanta keeps the inner
    index as a copy): passed to every search; not saved by ``write_index``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        raise TypeError("faiss.Index is abstract: build IndexFlatL2, IndexIVFFlat, ...")

    @classmethod
    def _of(cls: type[_I], q: Any) -> _I:
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_q", q)
        return obj

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._q, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and not hasattr(type(self), name):
            if isinstance(getattr(type(self._q), name, None), property):
                setattr(self._q, name, value)
                return
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<quanta.faiss.{type(self).__name__} over {self._q!r}>"

    # -- faiss attributes ---------------------------------------------------------------------

    @property
    def d(self) -> int:
        return int(self._q.d)

    @property
    def ntotal(self) -> int:
        return int(self._q.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self._q.is_trained)

    @property
    def metric_type(self) -> int:
        return METRIC_L2 if self._q.metric == "l2" else METRIC_INNER_PRODUCT

    # -- faiss methods ------------------------------------------------------------------------

    def _params(self, params: SearchParameters | None) -> quanta.SearchParameters:
        if params is None:
            return quanta.SearchParameters(nprobe=self._nprobe)
        if not isinstance(params, SearchParameters):
            raise TypeError(f"params must be a SearchParameters, got {type(params).__name__}")
        return params._to_quanta(self._nprobe)

    def train(self, x: Any) -> None:
        self._q.train(x)

    def add(self, x: Any) -> None:
        self._q.add(x)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        self._q.add_with_ids(x, _ids_arg(ids))

    def search(
        self,
        x: Any,
        k: int,
        *,
        params: SearchParameters | None = None,
        D: Any = None,
        I: Any = None,
    ) -> Any:
        Dq, Iq = self._q.search(x, int(k), params=self._params(params))
        return _out(x, _fill(D, Dq), _fill(I, Iq))

    def range_search(self, x: Any, thresh: float, *, params: SearchParameters | None = None) -> Any:
        lims, D, I = self._q.range_search(x, thresh, params=self._params(params))
        return _out(x, lims.astype(np.uint64), D, I)

    def assign(self, x: Any, k: int, labels: Any = None) -> Any:
        return _out(x, _fill(labels, self._q.search(x, int(k), params=self._params(None))[1]))

    def reconstruct(self, key: int, x: Any = None) -> Any:
        return _out(x, _fill(x, self._q.reconstruct(int(key))))

    def reconstruct_n(self, n0: int = 0, ni: int = -1, x: Any = None) -> Any:
        n = None if ni < 0 else int(ni)
        return _out(x, _fill(x, self._q.reconstruct_n(int(n0), n)))

    def reconstruct_batch(self, keys: Any, x: Any = None) -> Any:
        rows = [self._q.reconstruct(int(i)) for i in np.asarray(keys).ravel()]
        out = np.stack(rows) if rows else np.zeros((0, self.d), dtype=np.float32)
        return _out(x, _fill(x, out))

    def remove_ids(self, sel: Any) -> int:
        return int(self._q.remove_ids(_ids_arg(sel)))

    def reset(self) -> None:
        self._q.reset()

    def merge_from(self, other: Index, add_id: int = 0) -> None:
        """Move ``other``'s entries into this index (``other`` is emptied, as in faiss): the
        same trained parameters are needed (quanta's ``Index.merge_from``). ``add_id`` shifts
        ``other``'s ids (indexes storing ids: IVF, ``IndexIDMap``)."""
        q: Any = self._q
        o: Any = getattr(other, "_q", None)
        if o is None or type(q) is not type(o) or q.d != o.d:
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        try:
            if add_id:
                if not q.stores_ids:
                    raise ValueError("add_id needs an index that stores ids (IVF, IndexIDMap)")
                ids = _stored_ids(o)
                if not hasattr(q, "add_with_ids") or ids is None:
                    raise ValueError("add_id is not supported for this index")
                shifted = quanta.deserialize_index(quanta.serialize_index(o))
                shifted.reset()
                vecs = [o.reconstruct(int(i)) for i in ids]
                if isinstance(q, (quanta.IndexIVFFlat, quanta.IndexIDMap)) and vecs:
                    shifted.add_with_ids(np.stack(vecs), ids + np.int64(add_id))
                elif vecs:
                    raise ValueError("add_id with coded IVF lists: merge with add_id=0")
                q.merge_from(shifted)
            else:
                q.merge_from(o)
        except quanta.InvalidArgumentError as e:
            raise ValueError(str(e)) from e
        o.reset()


def _stored_ids(q: Any) -> npt.NDArray[np.int64]:
    if isinstance(q, quanta.IndexIDMap):
        out: npt.NDArray[np.int64] = q.id_map
        return out
    inv = q.invlists
    parts = [inv.list_ids(i) for i in range(inv.nlist)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class IndexFlat(Index):
    """faiss ``IndexFlat(d, metric=METRIC_L2)``: exact search; ``remove_ids`` renumbers."""

    def __init__(self, d: int, metric: int = METRIC_L2) -> None:
        object.__setattr__(self, "_q", quanta.IndexFlat(int(d), metric_name(metric)))


class IndexFlatL2(IndexFlat):
    def __init__(self, d: int) -> None:
        super().__init__(d, METRIC_L2)


class IndexFlatIP(IndexFlat):
    def __init__(self, d: int) -> None:
        super().__init__(d, METRIC_INNER_PRODUCT)


class IndexPQ(Index):
    """faiss ``IndexPQ(d, M, nbits, metric=METRIC_L2)``."""

    def __init__(self, d: int, M: int, nbits: int, metric: int = METRIC_L2) -> None:
        q = quanta.IndexPQ(int(d), int(M), int(nbits), metric_name(metric))
        object.__setattr__(self, "_q", q)


class IndexPQFastScan(Index):
    """faiss ``IndexPQFastScan(d, M, nbits=4, metric=METRIC_L2, bbs=32)``."""

    def __init__(
        self, d: int, M: int, nbits: int = 4, metric: int = METRIC_L2, bbs: int = 32
    ) -> None:
        q = quanta.IndexPQFastScan(int(d), int(M), int(nbits), metric_name(metric))
        object.__setattr__(self, "_q", q)


class ScalarQuantizer:
    """faiss ``ScalarQuantizer`` code types (faiss's values)."""

    QT_8bit = 0
    QT_4bit = 1
    QT_8bit_uniform = 2
    QT_4bit_uniform = 3
    QT_fp16 = 4
    QT_8bit_direct = 5
    QT_6bit = 6
    QT_bf16 = 7


_QTYPES = {0: "8bit", 1: "4bit", 4: "fp16", 7: "bf16"}


class IndexScalarQuantizer(Index):
    """faiss ``IndexScalarQuantizer(d, qtype, metric=METRIC_L2)``; QT_8bit, QT_4bit, QT_fp16,
    QT_bf16 only."""

    def __init__(self, d: int, qtype: int = 0, metric: int = METRIC_L2) -> None:
        if qtype not in _QTYPES:
            raise NotImplementedError(
                f"qtype {qtype}: quanta.IndexScalarQuantizer has QT_8bit, QT_4bit, QT_fp16, "
                "QT_bf16 (and its own 'lm2'..'lm4')"
            )
        q = quanta.IndexScalarQuantizer(int(d), _QTYPES[qtype], metric_name(metric))
        object.__setattr__(self, "_q", q)


class IndexIVF(Index):
    """What the faiss IVF indexes share: ``nprobe``, ``nlist``, ``quantizer``."""

    _quantizer: Index | None = None

    def _init_ivf(self, quantizer: Any, d: int, q: Any) -> None:
        if not isinstance(quantizer, IndexFlat):
            raise NotImplementedError(
                f"quantizer {type(quantizer).__name__}: quanta's IVF indexes use a flat "
                "(exact) coarse quantizer only; pass IndexFlatL2(d) or IndexFlatIP(d)"
            )
        if quantizer.d != d:
            raise ValueError(f"quantizer has d={quantizer.d}, the index d={d}")
        if quantizer.metric_type != (METRIC_L2 if q.metric == "l2" else METRIC_INNER_PRODUCT):
            warnings.warn(
                "quantizer metric differs from the index metric: quanta probes the lists by "
                "the index's metric",
                stacklevel=3,
            )
        object.__setattr__(self, "_q", q)
        object.__setattr__(self, "_quantizer", quantizer)

    @property
    def nprobe(self) -> int:
        return int(self._q.nprobe)

    @nprobe.setter
    def nprobe(self, v: int) -> None:
        self._q.nprobe = int(v)

    @property
    def nlist(self) -> int:
        return int(self._q.nlist)

    @property
    def quantizer(self) -> Index:
        """The coarse quantizer: the one passed in (holding the centroids after training), or
        a flat index over the centroids."""
        if self._quantizer is None or (self._quantizer.ntotal != self.nlist and self.is_trained):
            qz = IndexFlat(self.d, self.metric_type)
            if self.is_trained:
                qz.add(self._q.centroids)
            object.__setattr__(self, "_quantizer", qz)
        assert self._quantizer is not None
        return self._quantizer

    def _prefilled(self) -> npt.NDArray[np.float32] | None:
        """The quantizer's centroids when it already holds ``nlist`` vectors (faiss then skips
        the coarse k-means)."""
        qz = self._quantizer
        if qz is not None and not self.is_trained and qz.ntotal == self.nlist:
            out: npt.NDArray[np.float32] = qz._q.reconstruct_n(0, self.nlist)
            return out
        return None

    def train(self, x: Any) -> None:
        if self.is_trained:  # faiss: a quantizer holding nlist centroids needs no training
            return
        self._q.train(x)
        qz = self._quantizer
        if qz is not None:  # faiss leaves the centroids in the caller's quantizer
            qz.reset()
            qz.add(self._q.centroids)

    def make_direct_map(self, new_maintain: bool = True) -> None:
        """No-op: quanta reconstructs IVF entries by id without a direct map."""

    def set_direct_map_type(self, t: Any) -> None:
        """No-op (see :meth:`make_direct_map`)."""

    def get_list_size(self, list_no: int) -> int:
        return int(self._q.invlists.sizes[int(list_no)])


class IndexIVFFlat(IndexIVF):
    """faiss ``IndexIVFFlat(quantizer, d, nlist, metric=METRIC_L2)``; a quantizer that already
    holds ``nlist`` centroids is used as is (the index is then trained)."""

    def __init__(self, quantizer: Any, d: int, nlist: int, metric: int = METRIC_L2) -> None:
        self._init_ivf(
            quantizer, int(d), quanta.IndexIVFFlat(int(d), int(nlist), metric_name(metric))
        )
        c = self._prefilled()
        if c is not None:
            object.__setattr__(self, "_q", quanta.IndexIVFFlat.from_centroids(c, self._q.metric))


class IndexIVFScalarQuantizer(IndexIVF):
    """faiss ``IndexIVFScalarQuantizer(quantizer, d, nlist, qtype, metric=METRIC_L2,
    by_residual=True)``; QT_8bit, QT_4bit, QT_fp16, QT_bf16, with an empty quantizer (trained
    here)."""

    def __init__(
        self,
        quantizer: Any,
        d: int,
        nlist: int,
        qtype: int = 0,
        metric: int = METRIC_L2,
        by_residual: bool = True,
    ) -> None:
        if qtype not in _QTYPES:
            raise NotImplementedError(
                f"qtype {qtype}: quanta.IndexIVFScalarQuantizer has QT_8bit, QT_4bit, QT_fp16, "
                "QT_bf16 (and its own 'lm2'..'lm4')"
            )
        q = quanta.IndexIVFScalarQuantizer(
            int(d), int(nlist), _QTYPES[qtype], metric_name(metric), bool(by_residual)
        )
        self._init_ivf(quantizer, int(d), q)
        if self._prefilled() is not None:
            raise NotImplementedError(
                "a quantizer that already holds its centroids: quanta.IndexIVFScalarQuantizer "
                "trains its coarse centroids itself (pass an empty IndexFlatL2/IndexFlatIP)"
            )


class IndexIVFPQ(IndexIVF):
    """faiss ``IndexIVFPQ(quantizer, d, nlist, M, nbits, metric=METRIC_L2)`` (residual PQ)."""

    _qcls: Any = quanta.IndexIVFPQ

    def __init__(
        self, quantizer: Any, d: int, nlist: int, M: int, nbits: int, metric: int = METRIC_L2
    ) -> None:
        q = quanta.IndexIVFPQ(int(d), int(nlist), int(M), int(nbits), metric_name(metric))
        self._init_ivf(quantizer, int(d), q)

    def train(self, x: Any) -> None:
        c = self._prefilled()
        if c is None:
            return super().train(x)
        # the quantizer is given: train the PQ on the residuals to its centroids only
        xs = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
        flat = quanta.IndexFlat(self.d, self._q.metric)
        flat.add(c)
        assign = flat.search(xs, 1)[1][:, 0]
        pq = quanta.ProductQuantizer(self.d, self._q.M, self._q.nbits)
        pq.train(xs - c[assign] if self._q.by_residual else xs)
        nprobe = self.nprobe
        q = self._qcls.from_parts(c, pq, self._q.metric, self._q.by_residual)
        q.nprobe = nprobe
        object.__setattr__(self, "_q", q)

    @property
    def by_residual(self) -> bool:
        return bool(self._q.by_residual)

    @by_residual.setter
    def by_residual(self, v: bool) -> None:
        q = self._q
        if q.is_trained or q.ntotal:
            raise NotImplementedError("by_residual can only change before training in quanta")
        kw = {"metric": q.metric, "by_residual": bool(v)}
        if self._qcls is quanta.IndexIVFPQ:
            kw["nbits"] = q.nbits
        new = self._qcls(q.d, q.nlist, q.M, **kw)
        new.nprobe = q.nprobe
        object.__setattr__(self, "_q", new)


class IndexIVFPQFastScan(IndexIVFPQ):
    """faiss ``IndexIVFPQFastScan(quantizer, d, nlist, M, nbits=4, metric=METRIC_L2, bbs=32)``."""

    _qcls: Any = quanta.IndexIVFPQFastScan

    def __init__(
        self,
        quantizer: Any,
        d: int,
        nlist: int,
        M: int,
        nbits: int = 4,
        metric: int = METRIC_L2,
        bbs: int = 32,
    ) -> None:
        if nbits != 4:
            raise NotImplementedError(f"nbits={nbits}: quanta's fast scan uses 4-bit codes only")
        q = quanta.IndexIVFPQFastScan(int(d), int(nlist), int(M), metric_name(metric))
        self._init_ivf(quantizer, int(d), q)


class IndexIDMap(Index):
    """faiss ``IndexIDMap(index)`` / ``IndexIDMap2``: explicit ids over an empty index. quanta
    keeps a copy of a flat/PQ index (read it back with ``.index``); an IVF index stores ids
    itself, so it is used directly (shared, as faiss shares the wrapped index)."""

    _inner: Index | None = None

    def __init__(self, index: Index) -> None:
        if not isinstance(index, Index):
            raise TypeError(f"index must be a faiss Index, got {type(index).__name__}")
        if index.ntotal:
            raise RuntimeError("IndexIDMap: the wrapped index must be empty")
        if hasattr(index._q, "nlist"):
            object.__setattr__(self, "_q", index._q)
            object.__setattr__(self, "_inner", index)
        else:
            object.__setattr__(self, "_q", quanta.IndexIDMap(index._q))

    def add(self, x: Any) -> None:
        raise RuntimeError("add does not make sense with IndexIDMap, use add_with_ids")

    @property
    def index(self) -> Index:
        if self._inner is not None:
            return self._inner
        return wrap(self._q.index)

    @property
    def id_map(self) -> npt.NDArray[np.int64]:
        return _stored_ids(self._q)


class IndexIDMap2(IndexIDMap):
    """Same as :class:`IndexIDMap` (quanta's id map reconstructs by id)."""


class OPQMatrix:
    """faiss ``OPQMatrix(d=0, M=1, d2=-1)``: the third argument is the output dimension.

    ``niter``, ``niter_pq``, ``niter_pq_0``, ``max_train_points`` and ``verbose`` may be set
    before training, as in faiss; the start is faiss's random rotation (quanta's
    ``OPQMatrix(init="eigen")`` is its better default)."""

    def __init__(self, d: int = 0, M: int = 1, d2: int = -1) -> None:
        self.d_in, self.M = int(d), int(M)
        self.d_out = self.d_in if d2 == -1 else int(d2)
        self.niter, self.niter_pq, self.niter_pq_0 = 50, 4, 40
        self.max_train_points, self.verbose = 256 * 256, False
        self._opq: quanta.OPQMatrix | None = None

    def _core(self) -> quanta.OPQMatrix:
        if self._opq is None:
            self._opq = quanta.OPQMatrix(
                self.d_in,
                self.M,
                self.d_out,
                niter=self.niter,
                niter_pq=self.niter_pq,
                niter_pq_0=self.niter_pq_0,
                max_train_points=self.max_train_points,
                init="random",
                verbose=bool(self.verbose),
            )
        return self._opq

    @property
    def is_trained(self) -> bool:
        return self._opq is not None and self._opq.is_trained

    def train(self, x: Any) -> None:
        self._core().train(x)

    def apply(self, x: Any) -> Any:
        return _out(x, self._core().apply(x))

    apply_py = apply

    def reverse_transform(self, y: Any) -> Any:
        return _out(y, self._core().reverse_transform(y))


class IndexPreTransform(Index):
    """faiss ``IndexPreTransform(transform, index)`` with an :class:`OPQMatrix` (quanta's only
    transform); quanta keeps copies of both."""

    def __init__(self, transform: Any, index: Index) -> None:
        opq = transform._core() if isinstance(transform, OPQMatrix) else transform
        if not isinstance(opq, quanta.OPQMatrix):
            raise NotImplementedError(
                f"transform {type(transform).__name__}: quanta.IndexPreTransform takes an "
                "OPQMatrix only"
            )
        if not isinstance(index, Index):
            raise TypeError(f"index must be a faiss Index, got {type(index).__name__}")
        object.__setattr__(self, "_q", quanta.IndexPreTransform(opq, index._q))

    @property
    def index(self) -> Index:
        return wrap(self._q.index)


class IndexRefineFlat(Index):
    """faiss ``IndexRefineFlat(base_index)``: re-rank ``k * k_factor`` candidates exactly."""

    def __init__(self, base_index: Index, xb: Any = None) -> None:
        if not isinstance(base_index, Index):
            raise TypeError(f"base_index must be a faiss Index, got {type(base_index).__name__}")
        if xb is not None or base_index.ntotal:
            raise NotImplementedError(
                "IndexRefineFlat over a filled base index: quanta.IndexRefineFlat needs it "
                "empty; add the vectors through the refine index"
            )
        object.__setattr__(self, "_q", quanta.IndexRefineFlat(base_index._q))

    @property
    def base_index(self) -> Index:
        return wrap(self._q.base_index)


class IndexShards(Index):
    """faiss ``IndexShards(d, threaded=False, successive_ids=True)``: ``search`` asks every
    shard and merges the top-k (ties to the lower shard). With ``successive_ids`` the ids of
    shard ``s`` are shifted by the ``ntotal`` of the shards before it; ``add`` splits the rows
    evenly over the shards (shard ``s`` gets rows ``s*n//S .. (s+1)*n//S``), as faiss does."""

    def __init__(self, d: int, threaded: bool = False, successive_ids: bool = True) -> None:
        object.__setattr__(self, "_q", None)
        self._d, self.threaded, self.successive_ids = int(d), threaded, bool(successive_ids)
        self._shards: list[Index] = []

    def add_shard(self, index: Index) -> None:
        if index.d != self._d:
            raise ValueError(f"shard has d={index.d}, IndexShards d={self._d}")
        self._shards.append(index)

    addIndex = add_shard

    def remove_shard(self, index: Index) -> None:
        self._shards.remove(index)

    def at(self, i: int) -> Index:
        return self._shards[i]

    def count(self) -> int:
        return len(self._shards)

    @property
    def nshard(self) -> int:
        return len(self._shards)

    @property
    def d(self) -> int:
        return self._d

    @property
    def ntotal(self) -> int:
        return sum(s.ntotal for s in self._shards)

    @property
    def is_trained(self) -> bool:
        return all(s.is_trained for s in self._shards)

    @property
    def metric_type(self) -> int:
        return self._shards[0].metric_type if self._shards else METRIC_L2

    def train(self, x: Any) -> None:
        for s in self._shards:
            s.train(x)

    def reset(self) -> None:
        for s in self._shards:
            s.reset()

    def add(self, x: Any) -> None:
        self.add_with_ids(x, None)

    def add_with_ids(self, x: Any, ids: Any) -> None:
        if self.successive_ids and ids is not None:
            raise RuntimeError("It makes no sense to pass in ids and request them to be shifted")
        if self.successive_ids and self.ntotal:
            raise RuntimeError("IndexShards with successive_ids: add() in a single pass only")
        n, S = len(x), len(self._shards)
        if ids is None and not self.successive_ids:
            ids = np.arange(self.ntotal, self.ntotal + n, dtype=np.int64)
        for s, shard in enumerate(self._shards):
            i0, i1 = s * n // S, (s + 1) * n // S
            if ids is None:
                shard.add(x[i0:i1])
            else:
                shard.add_with_ids(x[i0:i1], np.asarray(ids)[i0:i1])

    def search(
        self,
        x: Any,
        k: int,
        *,
        params: SearchParameters | None = None,
        D: Any = None,
        I: Any = None,
    ) -> Any:
        if not self._shards:
            raise RuntimeError("IndexShards has no shard")
        Ds, Is, offset = [], [], 0
        for shard in self._shards:
            d, i = shard.search(x, k, params=params)
            d, i = np.asarray(d), np.asarray(i)
            if self.successive_ids:
                i = np.where(i >= 0, i + offset, i)
            offset += shard.ntotal
            Ds.append(d)
            Is.append(i)
        Dall, Iall = np.concatenate(Ds, axis=1), np.concatenate(Is, axis=1)
        key = Dall if self.metric_type == METRIC_L2 else -Dall
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        Dk, Ik = np.take_along_axis(Dall, order, 1), np.take_along_axis(Iall, order, 1)
        return _out(x, _fill(D, Dk), _fill(I, Ik))

    def _unsupported(self, *a: Any, **kw: Any) -> Any:
        raise NotImplementedError("IndexShards supports add, train, search and reset only")

    range_search = reconstruct = reconstruct_n = remove_ids = merge_from = _unsupported


class IndexBinary(Index):
    """faiss ``IndexBinary``: uint8 codes, int32 Hamming distances."""

    @property
    def code_size(self) -> int:
        return int(self._q.code_size)

    @property
    def metric_type(self) -> int:
        return METRIC_L2

    def range_search(self, x: Any, thresh: float, *, params: SearchParameters | None = None) -> Any:
        lims, D, I = self._q.range_search(x, int(thresh), params=self._params(params))
        return _out(x, lims.astype(np.uint64), D, I)


class IndexBinaryFlat(IndexBinary):
    """faiss ``IndexBinaryFlat(d)``; ``remove_ids`` renumbers the rest, as faiss."""

    def __init__(self, d: int) -> None:
        object.__setattr__(self, "_q", quanta.IndexBinaryFlat(int(d)))

    def add_with_ids(self, x: Any, ids: Any) -> None:
        raise RuntimeError("IndexBinaryFlat numbers codes by position: no add_with_ids")

    def remove_ids(self, sel: Any) -> int:
        # quanta keeps ids stable; faiss renumbers: rebuild from the kept codes
        s = sel if isinstance(sel, IDSelector) else IDSelectorBatch(_ids_arg(sel))
        ids, codes = self._q.ids, self._q.reconstruct_n()
        drop = s._contains(ids)
        self._q.reset()
        if (~drop).any():
            self._q.add(codes[~drop])
        return int(drop.sum())


_WRAPPERS: list[tuple[type, type[Index]]] = [
    (quanta.IndexIVFPQFastScan, IndexIVFPQFastScan),
    (quanta.IndexIVFPQ, IndexIVFPQ),
    (quanta.IndexIVFFlat, IndexIVFFlat),
    (quanta.IndexIVFScalarQuantizer, IndexIVFScalarQuantizer),
    (quanta.IndexPQFastScan, IndexPQFastScan),
    (quanta.IndexPQ, IndexPQ),
    (quanta.IndexScalarQuantizer, IndexScalarQuantizer),
    (quanta.IndexIDMap, IndexIDMap2),
    (quanta.IndexPreTransform, IndexPreTransform),
    (quanta.IndexRefineFlat, IndexRefineFlat),
    (quanta.IndexBinaryFlat, IndexBinaryFlat),
]


def wrap(q: Any) -> Index:
    """The faiss-style object around a quanta index (its class by the quanta class)."""
    if isinstance(q, Index):
        return q
    if isinstance(q, quanta.IndexFlat):
        flat: type[Index] = IndexFlatL2 if q.metric == "l2" else IndexFlatIP
        return flat._of(q)
    for qcls, fcls in _WRAPPERS:
        if isinstance(q, qcls):
            return fcls._of(q)
    if isinstance(q, quanta.IndexBinary):
        return IndexBinary._of(q)
    if isinstance(q, quanta.Index):
        generic: type[Index] = IndexIVF if hasattr(q, "nlist") else Index
        return generic._of(q)
    raise TypeError(f"not a quanta index: {type(q).__name__}")
