"""Saving and loading indexes: :func:`write_index` and :func:`read_index`.

A quanta index file is a versioned, checksummed binary container (layout documented in the
Rust module ``quanta_core::io``): a kind tag naming the index type, typed metadata and
64-byte-aligned array sections. Files are written atomically (temporary file in the same
directory, fsync, rename), so a crash or an error never leaves a partial file behind.
``read_index(path, mmap=True)`` memory-maps the file: large arrays are used in place (pages are
loaded on demand and shared between processes) until the index is modified, which copies them
into memory; the file itself is never written. Every checksum is verified on load, which reads
the whole file once, mapped or not.

A truncated, corrupted or foreign file, an unsupported version or an I/O problem raises
:class:`~quanta.exceptions.FormatError` (an ``OSError``) whose message names the file and the
problem.

Every :class:`~quanta.Index` and :class:`~quanta.IndexBinary` subclass is found by its kind
tag; other classes plug in with :func:`register_index_kind` and a ``_write_index(path)`` method.
``write_index`` / ``read_index`` take a path or a binary file object; ``serialize_index`` /
``deserialize_index`` give the same file as ``bytes``; pickling an index uses the same format.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from . import _core
from .exceptions import DTypeError, FormatError

__all__ = [
    "FAISS_KINDS",
    "PathLike",
    "deserialize_index",
    "read_index",
    "read_index_kind",
    "register_index_kind",
    "serialize_index",
    "write_index",
]

PathLike = Union[str, "os.PathLike[str]"]
"""A file path: ``str`` or ``pathlib.Path`` (any ``os.PathLike[str]``)."""

FAISS_KINDS: frozenset[str] = frozenset(_core.FAISS_KINDS)
"""Index kinds that ``format="faiss"`` can write (faiss's IndexFlat, IndexPQ, IndexPQFastScan,
IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIDMap2, IndexPreTransform with OPQ,
IndexRefineFlat, IndexBinaryFlat / IndexBinaryIDMap2); every one of them is also read back."""

IndexReader = Callable[[str, bool], Any]
"""``reader(path, mmap)`` returning the loaded index."""

_READERS: dict[str, IndexReader] = {}


def register_index_kind(kind: str, reader: IndexReader) -> None:
    """Make :func:`read_index` load files of kind ``kind`` with ``reader(path, mmap)``.

    Each index class registers itself once, at import, under the kind tag its Rust type
    writes (``"IndexFlat"``, ...). Its instances must have a ``_write_index(path)`` method.
    Registering a kind again replaces its reader.
    """
    if not isinstance(kind, str) or not kind:
        raise DTypeError(f"kind must be a non-empty str, got {kind!r}")
    _READERS[kind] = reader


def _path(path: Any) -> str:
    try:
        p = os.fspath(path)
    except TypeError:
        raise DTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not isinstance(p, str):
        raise DTypeError(f"path must be a str or os.PathLike[str], got {type(p).__name__}")
    return p


def read_index_kind(path: PathLike) -> str:
    """The kind tag of the index file at ``path`` (e.g. ``"IndexFlat"``); reads the header only."""
    return _core.read_index_kind(_path(path))


def serialize_index(index: Any, format: str = "quanta") -> bytes:
    """The file of ``index`` as ``bytes`` (what :func:`write_index` would write), in quanta's
    format or, with ``format="faiss"``, in faiss's."""
    ser = getattr(index, "serialize", None)
    if not callable(ser):
        raise DTypeError(f"cannot serialize a {type(index).__name__}: not a quanta index")
    out: bytes = ser(format=format) if format != "quanta" else ser()
    return out


def deserialize_index(data: Any) -> Any:
    """The index held in ``data`` (``bytes``, ``bytearray``, ``memoryview`` or a uint8 array),
    as the class that wrote it; a bad file raises :class:`~quanta.exceptions.FormatError`."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise DTypeError(f"data as an array must be uint8, got {data.dtype}")
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DTypeError(f"data must be bytes, got {type(data).__name__}")
    return _from_core(_core.deserialize_index(bytes(data)))


def _from_core(core: Any) -> Any:
    """The Python object of a core index of either family (float or binary)."""
    from .base import Index
    from .binary_base import IndexBinary

    if isinstance(core, _core.IndexBinary):
        return IndexBinary._from_core(core)
    return Index._from_core(core)


def _is_file(obj: Any, method: str) -> bool:
    return not isinstance(obj, (str, bytes, os.PathLike)) and callable(getattr(obj, method, None))


def write_index(index: Any, path: Any, format: str = "quanta") -> None:
    """Save ``index`` to ``path`` atomically (``path`` then holds the old file or the new one),
    or to a binary file object (anything with ``write``).

    ``format="faiss"`` writes the file faiss's ``read_index`` (``read_index_binary`` for
    binary indexes) loads, for the kinds in :data:`FAISS_KINDS`; :func:`read_index` reads
    both formats.

    Raises :class:`~quanta.exceptions.FormatError` (an ``OSError``) if it cannot be written,
    e.g. when the directory does not exist; no partial or temporary file is left behind.
    """
    if _is_file(path, "write"):
        path.write(serialize_index(index, format))
        return
    p = _path(path)
    write = getattr(index, "_write_index", None)
    if not callable(write):
        raise DTypeError(f"cannot write a {type(index).__name__}: not a quanta index")
    if format != "quanta":
        write(p, format=format)
    else:
        write(p)


def read_index(path: Any, mmap: bool = False) -> Any:
    """Load the index saved at ``path`` (or read from a binary file object), as an instance
    of the class that wrote it. faiss index files (``faiss.write_index`` /
    ``write_index_binary``) are recognized and loaded as the equivalent quanta index (see
    :data:`FAISS_KINDS`); they are read into memory (``mmap`` applies to quanta files).

    With ``mmap=True`` (paths only) the index data stays in the memory-mapped file until the
    index is modified; see the module documentation. Raises
    :class:`~quanta.exceptions.FormatError` for a missing, truncated, corrupted or foreign file.
    """
    if not isinstance(mmap, (bool, np.bool_)):
        raise DTypeError(f"mmap must be a bool, got {type(mmap).__name__}")
    if _is_file(path, "read"):
        if mmap:
            raise DTypeError("mmap=True needs a path, not a file object")
        return deserialize_index(path.read())
    from .base import Index
    from .binary_base import IndexBinary

    p = _path(path)
    if _core.is_faiss_file(p):
        # faiss files hold faiss classes: each maps to one quanta class (quanta_core::io::faiss)
        return _from_core(_core.read_index(p, False))
    kind = _core.read_index_kind(p)
    classes = set(Index._classes) | set(IndexBinary._classes)
    if kind in classes:
        return _from_core(_core.read_index(p, bool(mmap)))
    reader = _READERS.get(kind)
    if reader is None:
        known = ", ".join(sorted(set(_READERS) | classes)) or "none"
        raise FormatError(
            f"{p}: holds an index of kind {kind!r}, which this version of quanta cannot read "
            f"(known kinds: {known})"
        )
    return reader(p, bool(mmap))
