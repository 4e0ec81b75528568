"""faiss's I/O names, in faiss's file format.

``write_index`` / ``serialize_index`` write the file faiss's own ``read_index`` loads, for
every kind faiss has a format for (``quanta.io.FAISS_KINDS``: flat, PQ, PQ fast scan, IVF
flat/PQ/PQ fast scan, id maps, OPQ pre-transforms, refine-flat, binary flat); quanta-only
kinds (RaBitQ, lattices, ...) are written in quanta's format. ``read_index`` reads both
formats, faiss's from faiss-cpu itself included.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

import quanta

from ._indexes import Index, wrap

__all__ = [
    "IO_FLAG_MMAP",
    "IO_FLAG_MMAP_IFC",
    "IO_FLAG_ONDISK_SAME_DIR",
    "IO_FLAG_READ_ONLY",
    "IO_FLAG_SKIP_IVF_DATA",
    "PyCallbackIOReader",
    "PyCallbackIOWriter",
    "deserialize_index",
    "read_index",
    "serialize_index",
    "write_index",
]

# faiss's values
IO_FLAG_READ_ONLY = 2
IO_FLAG_ONDISK_SAME_DIR = 4
IO_FLAG_SKIP_IVF_DATA = 8
IO_FLAG_MMAP_IFC = 512
IO_FLAG_MMAP = IO_FLAG_SKIP_IVF_DATA | 0x646F0000


class PyCallbackIOWriter:
    """faiss ``PyCallbackIOWriter(callback)``: ``write_index`` calls ``callback(bytes)``."""

    def __init__(self, callback: Callable[[bytes], Any], bs: int = 1024 * 1024) -> None:
        self.callback, self.bs = callback, bs


class PyCallbackIOReader:
    """faiss ``PyCallbackIOReader(callback)``: ``read_index`` calls ``callback(nbytes)``
    until it returns no bytes (quanta reads one index to the end of the stream)."""

    def __init__(self, callback: Callable[[int], bytes], bs: int = 1024 * 1024) -> None:
        self.callback, self.bs = callback, bs


def _q(index: Any) -> Any:
    return index._q if isinstance(index, Index) else index


def _format(index: Any) -> str:
    """faiss's format where faiss has one for the kind (and, for scalar quantizers, the code
    type: faiss has no rotated Lloyd-Max codes), else quanta's."""
    core = getattr(index, "_index", None)
    lloyd_max = str(getattr(core, "qtype", "")).startswith("lm")
    faiss_kind = getattr(core, "kind", None) in quanta.io.FAISS_KINDS
    return "faiss" if faiss_kind and not lloyd_max else "quanta"


def write_index(index: Any, f: Any, io_flags: int = 0) -> None:
    """Save to a path, a binary file object or a :class:`PyCallbackIOWriter`."""
    if isinstance(f, PyCallbackIOWriter):
        q = _q(index)
        f.callback(quanta.serialize_index(q, format=_format(q)))
    else:
        q = _q(index)
        quanta.write_index(q, f, format=_format(q))


def read_index(f: Any, io_flags: int = 0) -> Any:
    """Load from a path, a binary file object or a :class:`PyCallbackIOReader`.

    ``IO_FLAG_MMAP`` / ``IO_FLAG_MMAP_IFC`` memory-map the file (quanta's copy-on-write map,
    the file is never written, so ``IO_FLAG_READ_ONLY`` is implied); other flags raise."""
    flags = int(io_flags)
    mmap = (flags & IO_FLAG_MMAP) == IO_FLAG_MMAP or bool(flags & IO_FLAG_MMAP_IFC)
    if (flags & IO_FLAG_MMAP) == IO_FLAG_MMAP:
        flags &= ~IO_FLAG_MMAP
    rest = flags & ~(IO_FLAG_MMAP_IFC | IO_FLAG_READ_ONLY)
    if rest:
        raise NotImplementedError(
            f"io_flags {rest:#x}: quanta.read_index has mmap=True only (no on-disk IVF lists)"
        )
    if isinstance(f, PyCallbackIOReader):
        chunks = []
        while chunk := f.callback(f.bs):
            chunks.append(chunk)
        return wrap(quanta.deserialize_index(b"".join(chunks)))
    if mmap and isinstance(f, (str, os.PathLike)):
        return wrap(quanta.read_index(f, mmap=True))
    return wrap(quanta.read_index(f))


def serialize_index(index: Any) -> npt.NDArray[np.uint8]:
    """The index file as a uint8 array (as faiss)."""
    q = _q(index)
    data = quanta.serialize_index(q, format=_format(q))
    return np.frombuffer(data, dtype=np.uint8).copy()


def deserialize_index(data: Any, io_flags: int = 0) -> Any:
    """The index held in a uint8 array (or ``bytes``)."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
    return wrap(quanta.deserialize_index(data))
