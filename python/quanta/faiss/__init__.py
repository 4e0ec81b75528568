"""faiss compatibility layer: ``import quanta.faiss as faiss`` runs common faiss code.

The names keep faiss's signatures and semantics (metric constants, ``IndexIVFFlat(quantizer,
d, nlist)``, ``SearchParametersIVF``, ``IDSelectorBatch``, ``Kmeans``, ``serialize_index`` ...)
and are thin wrappers over quanta's indexes: search, training and storage are quanta's. Names
quanta cannot honour raise :class:`NotImplementedError` (a ``RuntimeError``, what faiss raises)
naming the nearest quanta equivalent. See ``docs/faiss_migration.md``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import numpy.typing as npt

import quanta

from ._indexes import (
    METRIC_INNER_PRODUCT,
    METRIC_L2,
    Index,
    IndexBinary,
    IndexBinaryFlat,
    IndexFlat,
    IndexFlatIP,
    IndexFlatL2,
    IndexIDMap,
    IndexIDMap2,
    IndexIVF,
    IndexIVFFlat,
    IndexIVFPQ,
    IndexIVFPQFastScan,
    IndexIVFScalarQuantizer,
    IndexPQ,
    IndexPQFastScan,
    IndexPreTransform,
    IndexRefineFlat,
    IndexScalarQuantizer,
    IndexShards,
    OPQMatrix,
    ScalarQuantizer,
    metric_name,
    wrap,
)
from ._io import (
    IO_FLAG_MMAP,
    IO_FLAG_MMAP_IFC,
    IO_FLAG_ONDISK_SAME_DIR,
    IO_FLAG_READ_ONLY,
    IO_FLAG_SKIP_IVF_DATA,
    PyCallbackIOReader,
    PyCallbackIOWriter,
    deserialize_index,
    read_index,
    serialize_index,
    write_index,
)
from ._params import (
    IDSelector,
    IDSelectorAnd,
    IDSelectorArray,
    IDSelectorBatch,
    IDSelectorBitmap,
    IDSelectorNot,
    IDSelectorOr,
    IDSelectorRange,
    IDSelectorXOr,
    IndexRefineSearchParameters,
    SearchParameters,
    SearchParametersIVF,
    SearchParametersPQ,
)

__all__ = [
    "IO_FLAG_MMAP",
    "IO_FLAG_MMAP_IFC",
    "IO_FLAG_ONDISK_SAME_DIR",
    "IO_FLAG_READ_ONLY",
    "IO_FLAG_SKIP_IVF_DATA",
    "METRIC_INNER_PRODUCT",
    "METRIC_L2",
    "IDSelector",
    "IDSelectorAnd",
    "IDSelectorArray",
    "IDSelectorBatch",
    "IDSelectorBitmap",
    "IDSelectorNot",
    "IDSelectorOr",
    "IDSelectorRange",
    "IDSelectorXOr",
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
    "IndexRefineSearchParameters",
    "IndexScalarQuantizer",
    "IndexShards",
    "Kmeans",
    "OPQMatrix",
    "ParameterSpace",
    "PyCallbackIOReader",
    "PyCallbackIOWriter",
    "ScalarQuantizer",
    "SearchParameters",
    "SearchParametersIVF",
    "SearchParametersPQ",
    "clone_index",
    "deserialize_index",
    "deserialize_index_binary",
    "downcast_index",
    "extract_index_ivf",
    "get_num_gpus",
    "index_factory",
    "knn",
    "normalize_L2",
    "omp_get_max_threads",
    "omp_set_num_threads",
    "read_index",
    "read_index_binary",
    "serialize_index",
    "serialize_index_binary",
    "try_extract_index_ivf",
    "vector_to_array",
    "write_index",
    "write_index_binary",
]

read_index_binary, write_index_binary = read_index, write_index
serialize_index_binary, deserialize_index_binary = serialize_index, deserialize_index

ClusteringInitMethod_RANDOM = 0
ClusteringInitMethod_KMEANS_PLUS_PLUS = 1

# ---------------------------------------------------------------------------------------------
# functions


def normalize_L2(x: Any) -> None:
    """L2-normalise the rows of ``x`` in place (float32, C-contiguous, as faiss; zero rows
    stay zero)."""
    if _is_torch(x):
        x.div_(x.norm(dim=1, keepdim=True).clamp_min(1e-38))
        return
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise TypeError("normalize_L2 needs a C-contiguous float32 numpy array (in place)")
    if x.ndim != 2:
        raise ValueError(f"normalize_L2 needs a 2-D array, got shape {x.shape}")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]
    np.divide(x, norms, out=x, where=norms > 0, casting="unsafe")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def knn(xq: Any, xb: Any, k: int, metric: int = METRIC_L2, metric_arg: float = 0.0) -> Any:
    """Exact ``(D, I)`` of ``xq`` against ``xb`` without keeping an index."""
    index = IndexFlat(np.asarray(xb).shape[1], metric)
    index.add(xb)
    return index.search(xq, k)


def omp_set_num_threads(n: int) -> None:
    """Size of quanta's thread pool."""
    quanta.set_num_threads(int(n))


def omp_get_max_threads() -> int:
    return quanta.get_num_threads()


def get_num_gpus() -> int:
    """0: quanta runs on the CPU."""
    return 0


def vector_to_array(v: Any) -> npt.NDArray[Any]:
    """A flat numpy copy (quanta's attributes are numpy arrays already)."""
    return np.array(v).ravel()


def clone_index(index: Any) -> Any:
    return copy.deepcopy(index)


def downcast_index(index: Any) -> Any:
    """Identity: quanta.faiss objects always have their most derived class."""
    return index


downcast_VectorTransform = downcast_index


def index_factory(d: int, description: str, metric: int = METRIC_L2) -> Any:
    """quanta's factory (``Flat``, ``PQ16``, ``IVF1024,Flat``, ``OPQ16,IVF256,PQ16``, ...,
    ``,RFlat``) plus faiss's ``IDMap,`` / ``IDMap2,`` prefix; a description quanta cannot
    build raises :class:`NotImplementedError` listing quanta's grammar."""
    desc = description.strip()
    for prefix in ("IDMap2,", "IDMap,"):
        if desc.startswith(prefix):
            return IndexIDMap(index_factory(d, desc[len(prefix) :], metric))
    try:
        return wrap(quanta.index_factory(int(d), desc, metric_name(metric)))
    except quanta.InvalidArgumentError as e:
        raise NotImplementedError(f"index_factory({description!r}): {e}") from None


# ---------------------------------------------------------------------------------------------
# composites: the IVF inside


class _IVFInside(IndexIVF):
    """The IVF index inside a composite. quanta holds it as a copy, so only ``nprobe`` set
    here takes effect (on the composite's searches); other changes would be lost."""

    _outer: Any = None

    @property
    def nprobe(self) -> int:
        n = self._outer._nprobe
        return int(self._q.nprobe) if n is None else int(n)

    @nprobe.setter
    def nprobe(self, v: int) -> None:
        object.__setattr__(self._outer, "_nprobe", int(v))

    def _copy_only(self, *a: Any, **kw: Any) -> Any:
        raise NotImplementedError(
            "quanta keeps the IVF inside a composite as a copy: call this on the composite"
        )

    train = add = add_with_ids = remove_ids = reset = merge_from = _copy_only


def try_extract_index_ivf(index: Any) -> IndexIVF | None:
    """The IVF index in ``index`` (itself, or inside an id map, pre-transform or refine), or
    ``None``. Inside a composite it is a view whose ``nprobe`` applies to the composite."""
    if isinstance(index, IndexIVF):
        return index
    if isinstance(getattr(index, "_inner", None), IndexIVF):
        out: IndexIVF = index._inner
        return out
    if not isinstance(index, Index) or index._q is None:
        return None
    q = index._q
    while not hasattr(q, "nlist"):
        q = getattr(q, "index", getattr(q, "base_index", None))
        if q is None:
            return None
    view: _IVFInside = _IVFInside._of(q)
    object.__setattr__(view, "_outer", index)
    return view


def extract_index_ivf(index: Any) -> IndexIVF:
    ivf = try_extract_index_ivf(index)
    if ivf is None:
        raise RuntimeError(f"{type(index).__name__} is not an IVF index and holds none")
    return ivf


class ParameterSpace:
    """faiss ``ParameterSpace``: ``set_index_parameter(index, "nprobe" | "k_factor", v)``."""

    def set_index_parameter(self, index: Any, name: str, value: Any) -> None:
        if name == "nprobe":
            extract_index_ivf(index).nprobe = int(value)
        elif name == "k_factor" and hasattr(index._q, "k_factor"):
            index._q.k_factor = int(value)
        else:
            raise NotImplementedError(f"parameter {name!r}: quanta.faiss sets nprobe, k_factor")

    def set_index_parameters(self, index: Any, description: str) -> None:
        for item in filter(None, description.split(",")):
            name, value = item.split("=")
            self.set_index_parameter(index, name.strip(), float(value))


# ---------------------------------------------------------------------------------------------
# k-means

_KMEANS_ARGS = {
    "niter": "niter",
    "nredo": "n_redo",
    "verbose": "verbose",
    "spherical": "spherical",
    "int_centroids": "int_centroids",
    "seed": "seed",
    "max_points_per_centroid": "max_points_per_centroid",
    "min_points_per_centroid": "min_points_per_centroid",
}
_KMEANS_IGNORED = {"update_index", "frozen_centroids", "decode_block_size"}


class Kmeans:
    """faiss ``Kmeans(d, k, niter=25, nredo=1, verbose=False, spherical=False, seed=1234,
    ...)`` over :class:`quanta.KMeans`: after ``train(x)``, ``centroids`` ``(k, d)``, ``obj``
    (objective per iteration), ``index`` (a flat index over the centroids, inner product when
    ``spherical``) and ``assign(x) -> (D, I)``."""

    def __init__(self, d: int, k: int, **kwargs: Any) -> None:
        self.d, self.k = int(d), int(k)
        self._kw: dict[str, Any] = {}
        for name, v in kwargs.items():
            if name == "gpu":
                if v:
                    raise NotImplementedError("Kmeans(gpu=...): quanta.KMeans runs on the CPU")
            elif name == "init_method":
                self._kw["init"] = (
                    "kmeans++" if v == ClusteringInitMethod_KMEANS_PLUS_PLUS else "random"
                )
            elif name in _KMEANS_ARGS:
                self._kw[_KMEANS_ARGS[name]] = v
            elif name not in _KMEANS_IGNORED:
                raise AttributeError(f"Kmeans has no parameter {name!r}")
        self.spherical = bool(kwargs.get("spherical", False))
        self.reset()

    def reset(self, k: int | None = None) -> None:
        if k is not None:
            self.k = int(k)
        self.centroids: npt.NDArray[np.float32] | None = None
        self.obj: npt.NDArray[np.float64] | None = None
        self.index: Index = IndexFlatIP(self.d) if self.spherical else IndexFlatL2(self.d)

    def train(self, x: Any, weights: Any = None, init_centroids: Any = None) -> float:
        if init_centroids is not None:
            raise NotImplementedError(
                "Kmeans.train(init_centroids=...): quanta.KMeans starts from random rows or "
                "k-means++ (init_method)"
            )
        km = quanta.KMeans(self.d, self.k, **self._kw).fit(x, weights)
        assert km.centroids is not None
        self.centroids, self.obj = km.centroids, np.asarray(km.obj, dtype=np.float64)
        self.index.reset()
        self.index.add(self.centroids)
        return float(self.obj[-1]) if self.obj.size else 0.0

    def assign(self, x: Any) -> tuple[Any, Any]:
        if self.centroids is None:
            raise RuntimeError("should train before assigning")
        D, I = self.index.search(x, 1)
        return D.ravel(), I.ravel()


# ---------------------------------------------------------------------------------------------
# names quanta does not have


def _unsupported(name: str, hint: str) -> type:
    def __init__(self: Any, *a: Any, **kw: Any) -> None:
        raise NotImplementedError(f"faiss.{name} is not in quanta: {hint}")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not available: {hint}"})


_UNSUPPORTED = {
    "IndexHNSWFlat": "no graph index; nearest: IndexIVFFlat (quanta.IndexIVFFlat)",
    "IndexHNSWPQ": "no graph index; nearest: IndexIVFPQ",
    "IndexHNSWSQ": "no graph index; nearest: IndexIVFFlat or IndexScalarQuantizer",
    "IndexNSGFlat": "no graph index; nearest: IndexIVFFlat",
    "IndexLSH": "nearest: quanta.LSH codes in IndexBinaryFlat",
    "IndexBinaryIVF": "nearest: IndexBinaryFlat",
    "IndexBinaryHNSW": "nearest: IndexBinaryFlat",
    "IndexBinaryIDMap": "quanta.IndexBinaryFlat takes add_with_ids itself (quanta API)",
    "IndexLSHIVF": "nearest: IndexBinaryFlat",
    "IndexIVFPQR": "nearest: IndexRefineFlat(IndexIVFPQ(...))",
    "IndexRefine": "nearest: IndexRefineFlat (exact re-ranking)",
    "IndexReplicas": "one quanta index is already multi-threaded: use it directly",
    "PCAMatrix": "nearest transform: OPQMatrix (quanta.OPQMatrix)",
    "RandomRotationMatrix": "nearest transform: OPQMatrix",
    "ITQMatrix": "nearest: quanta.ITQ (binary codes)",
    "NormalizationTransform": "normalize_L2 the vectors before add/search",
    "StandardGpuResources": "quanta runs on the CPU",
    "SearchParametersHNSW": "no graph index",
}
globals().update({n: _unsupported(n, h) for n, h in _UNSUPPORTED.items()})


def index_cpu_to_gpu(*a: Any, **kw: Any) -> Any:
    raise NotImplementedError("index_cpu_to_gpu: quanta runs on the CPU; use the index as is")


index_cpu_to_all_gpus = index_gpu_to_cpu = index_cpu_to_gpu
