"""The numpy policy, written once.

* Float inputs (vectors, queries, training sets) are converted to C-contiguous ``float32``;
  a copy happens only when the input is not already so (float64, Fortran order, slices, ...).
  Integer/bool arrays are accepted for vectors and converted too (SIFT data is integral).
* Torch tensors (and anything with ``__array__`` or ``__dlpack__``) are accepted; CPU tensors are
  viewed without a copy where dtype and layout allow. GPU tensors are moved to the CPU.
* Codes must already be ``uint8``: a silent cast there could change values, so a wrong dtype is
  a :class:`~quanta.exceptions.DTypeError`. Ids are ``int64``; other integer dtypes are
  converted when every value fits (as faiss accepts int32 ids), floats and bools are refused.
* Matrices must be 2-D ``(n, d)``. For queries only, a 1-D vector is read as one query.
* NaN/Inf are rejected by the Rust core (checked without a temporary copy).

The functions in ``__all__`` are the package's internal API for this policy: the index modules
use them directly, ``quanta.nn`` through :mod:`quanta.nn._common` (its one import of this module).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .exceptions import DTypeError, InvalidArgumentError, ShapeError

__all__ = [
    "as_codes",
    "as_float_matrix",
    "as_float_vector",
    "as_ids",
    "as_int",
    "positive_int",
    "to_numpy",
]


def to_numpy(x: Any, name: str) -> np.ndarray[Any, Any]:
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("torch"):
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        return np.asarray(t.numpy() if hasattr(t, "numpy") else t)
    if hasattr(x, "__array__") or isinstance(x, (list, tuple)):
        try:
            return np.asarray(x)
        except ValueError as e:  # ragged nested lists
            raise ShapeError(f"{name} cannot be read as an array: {e}") from None
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    raise DTypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def as_float_matrix(
    x: Any, name: str, d: int | None = None, *, allow_1d: bool = False, allow_empty: bool = False
) -> npt.NDArray[np.float32]:
    """Return ``x`` as a C-contiguous float32 ``(n, d)`` array, or raise a typed error."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiub":
        raise DTypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim == 1 and allow_1d:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        hint = " (a single vector is accepted only for queries)" if a.ndim == 1 else ""
        raise ShapeError(f"{name} must be a 2-D array (n, d), got shape {a.shape}{hint}")
    if d is not None and a.shape[1] != d:
        raise ShapeError(f"{name} has {a.shape[1]} columns, expected d={d}")
    if a.shape[0] == 0 and not allow_empty:
        raise ShapeError(f"{name} is empty (0 rows)")
    if a.shape[1] == 0:
        raise ShapeError(f"{name} has 0 columns")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_float_vector(x: Any, name: str, n: int | None = None) -> npt.NDArray[np.float32]:
    """Return ``x`` as a C-contiguous float32 1-D array of length ``n`` (if given)."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "fiub":
        raise DTypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ShapeError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ShapeError(f"{name} has {a.shape[0]} entries, expected {n}")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_ids(x: Any, name: str = "ids") -> npt.NDArray[np.int64]:
    """Ids as a 1-D int64 array. Any integer dtype is converted when the conversion is exact
    (int8..int64 and uint8..uint32 always, uint64 below 2**63); floats, bools and objects are a
    :class:`~quanta.exceptions.DTypeError`: rounding an id would silently change it."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"{name} must be an integer (int64) array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ShapeError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype != np.int64:
        if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise DTypeError(f"{name} holds {int(a.max())}, beyond the int64 range of ids")
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def as_codes(
    x: Any,
    name: str,
    code_size: int | None = None,
    *,
    allow_1d: bool = False,
    allow_empty: bool = False,
) -> npt.NDArray[np.uint8]:
    """Packed binary codes: exactly ``uint8``, 2-D ``(n, code_size)`` (a 1-D query if allowed)."""
    a = to_numpy(x, name)
    if a.dtype != np.uint8:
        raise DTypeError(
            f"{name} must be uint8 packed codes, got dtype {a.dtype} "
            "(use quanta.pack_bits to pack bool/±1 values)"
        )
    if a.ndim == 1 and allow_1d:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D array (n, code_size), got shape {a.shape}")
    if code_size is not None and a.shape[1] != code_size:
        raise ShapeError(
            f"{name} has {a.shape[1]} bytes per code, expected code_size={code_size} "
            f"(nbits={8 * code_size})"
        )
    if a.shape[0] == 0 and not allow_empty:
        raise ShapeError(f"{name} is empty (0 rows)")
    return np.ascontiguousarray(a)


def as_int(v: Any, name: str, lo: int, hi: int) -> int:
    """An ``int`` in ``lo..=hi`` (bools and floats are rejected: no silent truncation)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise DTypeError(f"{name} must be an int, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise InvalidArgumentError(f"{name} must be in {lo}..={hi}, got {v}")
    return int(v)


def positive_int(v: Any, name: str, hi: int = 2**31 - 1) -> int:
    """An ``int`` in ``1..=hi`` (default: up to 2**31 - 1)."""
    return as_int(v, name, 1, hi)
