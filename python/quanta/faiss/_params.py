"""faiss search parameters and id selectors, translated to :class:`quanta.SearchParameters`.

A selector becomes quanta's filter: an int64 id array (``IDSelectorBatch``), a bool mask
indexed by id (``IDSelectorRange``, ``IDSelectorBitmap``, ``And``/``Or``/``Xor``) and a deny
flag (``IDSelectorNot``). quanta applies it inside the scan, as faiss does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import quanta

__all__ = [
    "IDSelector",
    "IDSelectorAnd",
    "IDSelectorArray",
    "IDSelectorBatch",
    "IDSelectorBitmap",
    "IDSelectorNot",
    "IDSelectorOr",
    "IDSelectorRange",
    "IDSelectorXOr",
    "IndexRefineSearchParameters",
    "SearchParameters",
    "SearchParametersIVF",
    "SearchParametersPQ",
]

_MAX_MASK = 1 << 30
"""Largest id range turned into a bool mask (1 GiB); beyond it a range selector raises."""


class IDSelector:
    """Base of the selectors: ``_ids`` (int64 ids) or ``_mask`` (bool, indexed by id), and
    ``_deny`` (the selector holds the ids it rejects)."""

    _ids: npt.NDArray[np.int64] | None = None
    _mask: npt.NDArray[np.bool_] | None = None
    _deny: bool = False

    def is_member(self, id: int) -> bool:
        """Whether ``id`` passes the selector."""
        return bool(self._contains(np.array([id], dtype=np.int64))[0])

    def _contains(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        if self._ids is not None:
            inside = np.isin(ids, self._ids)
        else:
            m = self._as_mask()
            inside = np.zeros(ids.shape, dtype=bool)
            ok = (ids >= 0) & (ids < m.size)
            inside[ok] = m[ids[ok]]
        out: npt.NDArray[np.bool_] = ~inside if self._deny else inside
        return out

    def _as_mask(self) -> npt.NDArray[np.bool_]:
        if self._mask is not None:
            return self._mask
        ids = self._ids if self._ids is not None else np.zeros(0, dtype=np.int64)
        ids = ids[ids >= 0]
        m = np.zeros(int(ids.max()) + 1 if ids.size else 0, dtype=bool)
        m[ids] = True
        return m

    def _filter(self) -> dict[str, Any]:
        """``ids_allowed=`` / ``ids_denied=`` for quanta."""
        f: Any = self._ids if self._ids is not None else self._mask
        return {"ids_denied": f} if self._deny else {"ids_allowed": f}


class IDSelectorBatch(IDSelector):
    """``IDSelectorBatch(ids)``: the ids in ``ids`` (any integer array, as faiss casts it)."""

    def __init__(self, ids: Any) -> None:
        self._ids = np.unique(np.ascontiguousarray(np.asarray(ids).ravel(), dtype=np.int64))


class IDSelectorArray(IDSelectorBatch):
    """Same as :class:`IDSelectorBatch` (faiss scans the array instead of hashing it)."""


class IDSelectorRange(IDSelector):
    """Ids in ``imin <= id < imax`` (a bool mask of ``imax`` entries)."""

    def __init__(self, imin: int, imax: int, assume_sorted: bool = False) -> None:
        lo, hi = max(int(imin), 0), max(int(imax), 0)
        if hi > _MAX_MASK:
            raise NotImplementedError(
                f"IDSelectorRange up to {hi}: quanta filters by id list or bool mask; pass the "
                "ids (IDSelectorBatch) for ranges this large"
            )
        m = np.zeros(hi, dtype=bool)
        m[lo:hi] = True
        self._mask = m


class IDSelectorBitmap(IDSelector):
    """``IDSelectorBitmap(bitmap)``: id ``i`` passes when bit ``i % 8`` of byte ``i // 8`` is
    set (faiss's layout); ``IDSelectorBitmap(n, bitmap)`` uses the first ``n`` bytes."""

    def __init__(self, *args: Any) -> None:
        if len(args) == 2:
            n, bitmap = int(args[0]), np.asarray(args[1], dtype=np.uint8)[: int(args[0])]
        elif len(args) == 1:
            bitmap = np.asarray(args[0], dtype=np.uint8)
            n = bitmap.size
        else:
            raise TypeError("IDSelectorBitmap(bitmap) or IDSelectorBitmap(n, bitmap)")
        bits = np.unpackbits(bitmap.ravel()[:n], bitorder="little")
        self._mask = bits.astype(bool)


class IDSelectorNot(IDSelector):
    """Every id that ``sel`` rejects."""

    def __init__(self, sel: IDSelector) -> None:
        self.sel = sel
        self._ids, self._mask, self._deny = sel._ids, sel._mask, not sel._deny


class _Combined(IDSelector):
    _op: Any = None

    def __init__(self, lhs: IDSelector, rhs: IDSelector) -> None:
        if lhs._deny or rhs._deny:
            raise NotImplementedError(
                f"{type(self).__name__} of an IDSelectorNot: quanta takes one allow list or one "
                "deny list; combine the ids with numpy and pass an IDSelectorBatch"
            )
        a, b = lhs._as_mask(), rhs._as_mask()
        n = max(a.size, b.size)
        a, b = np.pad(a, (0, n - a.size)), np.pad(b, (0, n - b.size))
        self.lhs, self.rhs = lhs, rhs
        self._mask = type(self)._op(a, b)


class IDSelectorAnd(_Combined):
    """Ids that pass both selectors."""

    _op = np.logical_and


class IDSelectorOr(_Combined):
    """Ids that pass either selector."""

    _op = np.logical_or


class IDSelectorXOr(_Combined):
    """Ids that pass exactly one selector."""

    _op = np.logical_xor


class SearchParameters:
    """faiss ``SearchParameters(sel=None)``: an optional :class:`IDSelector`."""

    def __init__(self, sel: IDSelector | None = None, **kw: Any) -> None:
        self.sel = sel
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(f"{type(self).__name__} has no field {k!r}")
            setattr(self, k, v)

    def _to_quanta(self, nprobe: int | None = None) -> quanta.SearchParameters:
        """The quanta parameters (``nprobe``: the caller's default, e.g. a composite's)."""
        kw: dict[str, Any] = {"nprobe": nprobe}
        self._fields(kw)
        if self.sel is not None:
            if not isinstance(self.sel, IDSelector):
                raise TypeError(f"sel must be an IDSelector, got {type(self.sel).__name__}")
            kw.update(self.sel._filter())
        return quanta.SearchParameters(**kw)

    def _fields(self, kw: dict[str, Any]) -> None:
        """Add this class's quanta fields to ``kw``."""


class SearchParametersIVF(SearchParameters):
    """faiss ``SearchParametersIVF(sel=None, nprobe=1, max_codes=0)``. As in faiss, ``nprobe``
    here replaces the index's ``nprobe`` (its default is 1, not the index's value)."""

    nprobe: int = 1
    max_codes: int = 0
    quantizer_params: SearchParameters | None = None

    def _fields(self, kw: dict[str, Any]) -> None:
        if self.max_codes:
            raise NotImplementedError(
                "SearchParametersIVF.max_codes: quanta bounds the scan by nprobe only"
            )
        kw["nprobe"] = int(self.nprobe)


class SearchParametersPQ(SearchParameters):
    """faiss ``SearchParametersPQ``; ``search_type``/``polysemous_ht`` are not available."""

    polysemous_ht: int = 0

    def _fields(self, kw: dict[str, Any]) -> None:
        if self.polysemous_ht:
            raise NotImplementedError("polysemous search: quanta has no polysemous codes")


class IndexRefineSearchParameters(SearchParameters):
    """faiss ``IndexRefineSearchParameters(k_factor=1, base_index_params=None)``."""

    k_factor: float = 1.0
    base_index_params: SearchParameters | None = None

    def _fields(self, kw: dict[str, Any]) -> None:
        kf = float(self.k_factor)
        if kf != int(kf) or kf < 1:
            raise NotImplementedError(f"k_factor={kf}: quanta takes an integer k_factor >= 1")
        kw["k_factor"] = int(kf)
        base = self.base_index_params
        if base is not None:
            base._fields(kw)
            if base.sel is not None and self.sel is None:
                kw.update(base.sel._filter())
