"""The one index protocol of the Python layer: :class:`Index` and :class:`SearchParameters`.

Every float-vector index subclasses :class:`Index`, which carries the shared methods once:
``train``, ``add``, ``add_with_ids``, ``search``, ``range_search``, ``remove_ids``,
``reconstruct``, ``reset``, pickling and ``repr``. A subclass adds its constructor and what is
specific to it (``nprobe``, ``M``, ...). Its core object (``_core.Index`` subclass) holds all
state, so that saving, loading and pickling keep everything, search defaults included.

Default policy (one for every index, as faiss): ``metric="l2"``, ``nprobe=1``, ``k_factor=1``.

Filters: ``ids_allowed=`` / ``ids_denied=`` take an int64 array of ids or a bool mask indexed by
id (``mask[i]`` is id ``i``; ids past its end are not in it). Every index applies the filter
inside its scan, before a candidate reaches the top-k, so rejected entries never take a slot.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from . import _core
from ._progress import make_progress
from ._validation import as_float_matrix, as_ids, as_int, positive_int, to_numpy
from .exceptions import DTypeError, InvalidArgumentError

__all__ = ["CoreWrapper", "Index", "RangeSearchResult", "SearchParameters", "SearchResult"]

SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
"""``(D, I)``: float32 ``(nq, k)`` distances and int64 ``(nq, k)`` ids, ``-1`` padded."""

RangeSearchResult = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]
"""``(lims, D, I)`` as faiss: the hits of query ``i`` are ``D[lims[i]:lims[i+1]]``."""

_W = TypeVar("_W", bound="CoreWrapper")


@dataclasses.dataclass
class SearchParameters:
    """Per-call search parameters (faiss ``SearchParameters``); ``None`` keeps the index's own
    default. Each index reads the fields that apply to it and ignores the others, so one value
    can be passed to any index (or a composite, which forwards it)."""

    nprobe: int | None = None
    """Inverted lists visited per query (IVF indexes)."""
    k_factor: int | None = None
    """Candidates per result re-ranked by a finer distance (fast scan, refine)."""
    mode: str | None = None
    """``"adc"`` or ``"sdc"`` (``IndexPQ``)."""
    bias_correction: bool | None = None
    """SDC bias correction (``IndexPQ``, ``mode="sdc"``)."""
    ids_allowed: Any = None
    """Only these ids (int64 array or bool mask) may be returned."""
    ids_denied: Any = None
    """These ids (int64 array or bool mask) may not be returned."""

    def _merged(self, shortcuts: dict[str, Any]) -> SearchParameters:
        unknown = set(shortcuts) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidArgumentError(
                f"unknown search parameter(s) {sorted(unknown)}; known: "
                f"{[f.name for f in dataclasses.fields(self)]}"
            )
        given = {k: v for k, v in shortcuts.items() if v is not None}
        return dataclasses.replace(self, **given)

    def _core_kwargs(self) -> dict[str, Any]:
        ids, mask, deny = _filter(self.ids_allowed, self.ids_denied)
        mode = self.mode
        if mode is not None and mode not in ("adc", "sdc"):
            raise InvalidArgumentError(f"mode must be 'adc' or 'sdc', got {mode!r}")
        return {
            "nprobe": None if self.nprobe is None else positive_int(self.nprobe, "nprobe"),
            "k_factor": None if self.k_factor is None else positive_int(self.k_factor, "k_factor"),
            "mode": mode,
            "bias_correction": None if self.bias_correction is None else bool(self.bias_correction),
            "filter_ids": ids,
            "filter_mask": mask,
            "deny": deny,
        }


def _filter(ids_allowed: Any, ids_denied: Any) -> tuple[Any, Any, bool]:
    """(ids, mask, deny) for the core from the user's allow/deny argument."""
    if ids_allowed is not None and ids_denied is not None:
        raise InvalidArgumentError("give ids_allowed or ids_denied, not both")
    deny = ids_denied is not None
    f = ids_denied if deny else ids_allowed
    if f is None:
        return None, None, False
    name = "ids_denied" if deny else "ids_allowed"
    return (*_ids_or_mask(f, name), deny)


def _ids_or_mask(f: Any, name: str) -> tuple[Any, Any]:
    a = to_numpy(f, name)
    if a.dtype == np.bool_:
        if a.ndim != 1:
            raise DTypeError(f"{name} as a mask must be 1-D bool, got shape {a.shape}")
        return None, np.ascontiguousarray(a)
    if a.dtype.kind not in "iu":
        raise DTypeError(
            f"{name} must be an int64 array of ids or a bool mask indexed by id, "
            f"got dtype {a.dtype}"
        )
    return as_ids(a, name), None


def _file_format(value: Any) -> str:
    """``"quanta"`` or ``"faiss"``, the two index file formats."""
    if value not in ("quanta", "faiss"):
        raise InvalidArgumentError(f"format must be 'quanta' or 'faiss', got {value!r}")
    return str(value)


class CoreWrapper:
    """What every index family shares: the core object ``_index``, the kind -> class registry
    (``_kind`` on a subclass registers it in its family's ``_classes``), persistence through the
    checksummed file format (``serialize``, pickling, ``copy``), ``ntotal``, ``reset``,
    ``remove_ids`` and ``repr``. :class:`Index` (float vectors) and :class:`~quanta.IndexBinary`
    (binary codes) build on it."""

    _index: Any
    _kind: ClassVar[str] = ""
    """Kind tag of the core index this class wraps (its file kind)."""
    _classes: ClassVar[dict[str, type[CoreWrapper]]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "_classes" not in cls.__dict__ and cls._kind:
            cls._classes[cls._kind] = cls

    @classmethod
    def _wrap(cls: type[_W], core: Any) -> _W:
        """The instance of this class around an existing core object."""
        obj = cls.__new__(cls)
        obj._index = core
        return obj

    @classmethod
    def _from_core(cls: type[_W], core: Any) -> _W:
        """The Python object of a core index of this family, as the class of its kind."""
        found: Any = cls._classes.get(core.kind, cls)
        out: _W = found._wrap(core)
        return out

    @property
    def ntotal(self) -> int:
        """Number of stored vectors (codes)."""
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        """Whether ``add`` and ``search`` may be called."""
        return bool(self._index.is_trained)

    def __len__(self) -> int:
        return self.ntotal

    def reset(self) -> None:
        """Remove every vector (training is kept)."""
        self._index.reset()

    def remove_ids(self, ids: Any) -> int:
        """Remove the entries whose id is in ``ids`` (int64 array, or bool mask indexed by id);
        returns how many were removed. Indexes numbering vectors by position
        (:class:`~quanta.IndexFlat`, ...) renumber the remaining ones, as faiss."""
        idv, mask = _ids_or_mask(np.atleast_1d(to_numpy(ids, "ids")), "ids")
        return int(self._index.remove_ids(ids=idv, mask=mask))

    def serialize(self, format: str = "quanta") -> bytes:
        """The index file in memory: the checksummed quanta format, or with
        ``format="faiss"`` the file faiss's ``read_index`` loads (for the kinds in
        :data:`quanta.io.FAISS_KINDS`; others raise :class:`~quanta.InvalidArgumentError`)."""
        if _file_format(format) == "faiss":
            return bytes(self._index.serialize_faiss())
        return bytes(self._index.serialize())

    def _write_index(self, path: str, format: str = "quanta") -> None:
        if _file_format(format) == "faiss":
            self._index.write_faiss(path)
        else:
            self._index.write(path)

    def __getstate__(self) -> dict[str, Any]:
        return {"quanta_index": self.serialize()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._index = _core.deserialize_index(state["quanta_index"])

    def __copy__(self: _W) -> _W:
        return type(self)._wrap(self._index.__copy__())

    def __deepcopy__(self: _W, memo: dict[int, Any]) -> _W:
        return type(self)._wrap(self._index.__copy__())

    def _repr_parts(self) -> list[str]:
        """``repr`` fields before ``ntotal``: the family's, then :meth:`_repr_fields`."""
        extra = self._repr_fields()
        return [extra] if extra else []

    def _repr_fields(self) -> str:
        """Constructor-like fields of ``repr``; subclasses extend."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join([*self._repr_parts(), f'ntotal={self.ntotal}'])})"


class Index(CoreWrapper):
    """Base class of every float-vector index (faiss ``Index``).

    ``search(q, k)`` returns ``(D, I)``: ``D`` float32 ``(nq, k)`` squared L2 distances
    (ascending) or inner products (descending), ``I`` int64 ``(nq, k)`` ids; rows are padded
    with ``-1`` (and ``inf`` / ``-inf``) when fewer than ``k`` results exist.
    """

    _classes: ClassVar[dict[str, type[CoreWrapper]]] = {}

    # -- shared properties ------------------------------------------------------------------

    @property
    def d(self) -> int:
        """Dimension."""
        return int(self._index.d)

    @property
    def metric(self) -> str:
        """``"l2"`` or ``"ip"``."""
        return str(self._index.metric)

    @property
    def is_mapped(self) -> bool:
        """Whether some data is still a view of a memory-mapped file
        (``read_index(..., mmap=True)``, until the index is modified)."""
        return bool(self._index.is_mapped)

    @property
    def stores_ids(self) -> bool:
        """Whether the index keeps the caller's ids itself (``add_with_ids``, ``remove_ids``
        without renumbering): IVF indexes, :class:`~quanta.IndexIDMap`, and an
        :class:`~quanta.IndexPreTransform` over one. Other indexes number vectors by position;
        wrap them in :class:`~quanta.IndexIDMap` to give them ids."""
        return bool(self._index.stores_ids)

    # -- shared methods ---------------------------------------------------------------------

    def _progress(self, verbose: bool, what: str) -> Any:
        return make_progress(verbose, f"{type(self).__name__} {what}")

    def train(self, x: Any, *, verbose: bool = False) -> None:
        """Learn the index's parameters from ``x`` ``(n, d)`` (a no-op for indexes without
        training, which still validate ``x``)."""
        import warnings

        xs = as_float_matrix(x, "x", self.d)
        for w in self._index.train(xs, progress=self._progress(verbose, "training")):
            warnings.warn(w, stacklevel=2)

    def add(self, x: Any, *, verbose: bool = False) -> None:
        """Append ``x`` ``(n, d)``; ids continue from ``ntotal``."""
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        self._index.add(xs, progress=self._progress(verbose, "add"))

    def add_with_ids(self, x: Any, ids: Any, *, verbose: bool = False) -> None:
        """Append ``x`` ``(n, d)`` with int64 ``ids`` ``(n,)`` (IVF indexes, ``IndexIDMap``;
        other indexes number vectors by position: wrap them in :class:`~quanta.IndexIDMap`)."""
        xs = as_float_matrix(x, "x", self.d, allow_empty=True)
        self._index.add_with_ids(xs, as_ids(ids), progress=self._progress(verbose, "add"))

    def search(
        self,
        q: Any,
        k: int,
        *,
        params: SearchParameters | None = None,
        verbose: bool = False,
        **shortcuts: Any,
    ) -> SearchResult:
        """k nearest stored vectors of each query (a 1-D query is one query).

        ``params`` (:class:`SearchParameters`) or its fields as keyword shortcuts
        (``nprobe=``, ``k_factor=``, ``ids_allowed=``, ...) override the index's defaults for
        this call."""
        k = positive_int(k, "k")
        p = (params or SearchParameters())._merged(shortcuts)
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        out: SearchResult = self._index.search(
            qs, k, progress=self._progress(verbose, "search"), **p._core_kwargs()
        )
        return out

    def range_search(
        self,
        q: Any,
        radius: float,
        *,
        params: SearchParameters | None = None,
        verbose: bool = False,
        **shortcuts: Any,
    ) -> RangeSearchResult:
        """Every stored vector within ``radius`` of each query, as faiss returns it:
        ``(lims, D, I)`` with the hits of query ``i`` in ``D[lims[i]:lims[i+1]]``, best first.
        L2: squared distance ``< radius``; inner product: similarity ``> radius``."""
        r = float(radius)
        if not np.isfinite(r):
            raise InvalidArgumentError(f"radius must be finite, got {radius!r}")
        p = (params or SearchParameters())._merged(shortcuts)
        qs = as_float_matrix(q, "queries", self.d, allow_1d=True, allow_empty=True)
        out: RangeSearchResult = self._index.range_search(
            qs, r, progress=self._progress(verbose, "range search"), **p._core_kwargs()
        )
        return out

    def fingerprint(self) -> str:
        """SHA-256 (hex) of what was learned and set, not of what was added: the file of an
        empty copy (centroids, codebooks, rotations, search defaults). Two indexes with the same
        fingerprint can be merged, or searched as shards of one index. Costs a copy of the
        index."""
        import hashlib

        empty = self._index.__copy__()
        empty.reset()
        return hashlib.sha256(bytes(empty.serialize())).hexdigest()

    def merge_from(self, other: Index) -> None:
        """Copy every entry of ``other`` into this index (faiss ``merge_from`` with
        ``add_id=0``, except that ``other`` is left as it is). ``other`` must be of the same
        type with the same trained parameters and search defaults (e.g. a copy of one trained
        index that took other vectors): indexes that store ids keep ``other``'s ids, positional
        ones append them after their own. Flat, PQ, fast scan, SQ, every IVF kind,
        :class:`IndexIDMap` and :class:`IndexPreTransform` over those merge; others raise
        :class:`~quanta.InvalidArgumentError`."""
        if not isinstance(other, Index):
            raise DTypeError(f"other must be a quanta Index, got {type(other).__name__}")
        if other is self or other._index is self._index:
            raise InvalidArgumentError("cannot merge an index into itself")
        self._index.merge_from(other._index)

    def reconstruct(self, id: int) -> npt.NDArray[np.float32]:
        """The stored (or decoded) vector with id ``id``."""
        out: npt.NDArray[np.float32] = self._index.reconstruct(
            as_int(id, "id", -(2**63), 2**63 - 1)
        )
        return out

    def reconstruct_n(self, i0: int = 0, n: int | None = None) -> npt.NDArray[np.float32]:
        """Vectors of ids ``i0 .. i0+n`` as an ``(n, d)`` copy."""
        i0 = as_int(i0, "i0", 0, self.ntotal)
        n = self.ntotal - i0 if n is None else as_int(n, "n", 0, self.ntotal - i0)
        out: npt.NDArray[np.float32] = self._index.reconstruct_n(i0, n)
        return out

    def _repr_parts(self) -> list[str]:
        return [f"d={self.d}", *super()._repr_parts(), f"metric={self.metric!r}"]
