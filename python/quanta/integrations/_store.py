"""The framework-neutral half of the vector stores: documents keyed by string ids over a quanta
index, filters pushed into the index's search, and saving without pickle.

The LangChain and LlamaIndex stores are thin adapters over :class:`DocIndex`; everything that
touches the index (id mapping, upserts, filtered search, reconstruction, files) lives here once.

Ids: the frameworks name documents by strings; the index stores int64 ids. Each stored document
gets the next int64 from a counter (never reused, so a deleted document's id cannot come back in
a result). Indexes that number vectors by position are wrapped in :class:`~quanta.IndexIDMap`.

Files: a store is saved as the index in quanta's checksummed format plus a JSON document store
that records the index file's SHA-256, so a document store is never loaded over another index.
Neither part is a pickle: loading a store from a stranger cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import io as qio
from .._validation import as_float_matrix, positive_int
from ..base import Index, SearchParameters
from ..exceptions import FormatError, InvalidArgumentError, NotTrainedError, ShapeError
from ..factory import index_factory
from ..index import IndexIDMap

__all__ = ["DISTANCE_STRATEGIES", "DocIndex", "Hit"]

DISTANCE_STRATEGIES = ("euclidean", "cosine", "max_inner_product")
"""``euclidean``: squared L2 (smaller is closer); ``cosine``: inner product of L2-normalized
vectors (the store normalizes); ``max_inner_product``: raw inner product."""

_MAGIC = b"QUANTAVS"
_FORMAT = "quanta-vectorstore"
_VERSION = 1

Hit = tuple[str, Any, float]
"""``(key, payload, score)`` of one search result."""


def _metric(strategy: str) -> str:
    if strategy not in DISTANCE_STRATEGIES:
        raise InvalidArgumentError(
            f"distance_strategy must be one of {list(DISTANCE_STRATEGIES)}, got {strategy!r}"
        )
    return "l2" if strategy == "euclidean" else "ip"


class DocIndex:
    """Payloads (documents, nodes) keyed by string ids over one quanta index; thread-safe.

    ``index`` is a quanta :class:`~quanta.Index` (empty; copied) or an
    :func:`~quanta.index_factory` string, built when the first vectors give the dimension. An
    untrained index is trained on the first batch added (or call :meth:`train`)."""

    def __init__(self, index: Index | str, distance_strategy: str = "euclidean") -> None:
        self.distance_strategy = distance_strategy
        self.metric = _metric(distance_strategy)
        self._lock = threading.RLock()
        self._factory: str | None = None
        self._index: Index | None = None
        if isinstance(index, str):
            self._factory = index
        elif isinstance(index, Index):
            if index.ntotal:
                raise InvalidArgumentError(
                    f"index must be empty (it holds {index.ntotal} vectors the store has no "
                    "documents for)"
                )
            if index.metric != self.metric:
                raise InvalidArgumentError(
                    f"distance_strategy={distance_strategy!r} needs metric {self.metric!r}, "
                    f"the index has metric {index.metric!r}"
                )
            self._index = index if index.stores_ids else IndexIDMap(index)
        else:
            raise InvalidArgumentError(
                f"index must be a quanta Index or an index_factory string, got "
                f"{type(index).__name__}"
            )
        self._records: dict[int, tuple[str, Any]] = {}
        self._by_key: dict[str, int] = {}
        self._next_id = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def index(self) -> Index | None:
        """The quanta index (``None`` until the dimension is known)."""
        return self._index

    def __len__(self) -> int:
        return len(self._records)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._by_key)

    def _vectors(self, x: Any, name: str) -> npt.NDArray[np.float32]:
        d = None if self._index is None else self._index.d
        v = as_float_matrix(x, name, d, allow_empty=True)
        if self.distance_strategy == "cosine":
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            v = (v / np.where(norms > 0, norms, 1)).astype(np.float32)
        return np.ascontiguousarray(v, dtype=np.float32)

    def _ensure_index(self, d: int) -> Index:
        if self._index is None:
            assert self._factory is not None
            built = index_factory(d, self._factory, metric=self.metric)
            self._index = built if built.stores_ids else IndexIDMap(built)
        return self._index

    def train(self, vectors: Any) -> None:
        """Train the index on ``vectors`` (n, d) (before the first add, for indexes that learn)."""
        with self._lock:
            v = self._vectors(vectors, "vectors")
            self._ensure_index(v.shape[1]).train(v)

    # -- mutation ---------------------------------------------------------------------------

    def upsert(self, keys: Sequence[str], vectors: Any, payloads: Sequence[Any]) -> None:
        """Store ``payloads`` under ``keys``; a key already present is replaced."""
        if not (len(keys) == len(payloads)):
            raise ShapeError(f"{len(keys)} keys for {len(payloads)} payloads")
        with self._lock:
            v = self._vectors(vectors, "vectors")
            if v.shape[0] != len(keys):
                raise ShapeError(f"{v.shape[0]} vectors for {len(keys)} documents")
            if not keys:
                return
            # checked before anything is removed: a failed upsert must not drop the old entries
            if not np.isfinite(v).all():
                raise InvalidArgumentError("vectors contain NaN or Inf")
            index = self._ensure_index(v.shape[1])
            # one vector per key: the last occurrence in the batch wins, as sequential adds would
            last = {k: i for i, k in enumerate(keys)}
            rows = np.fromiter(sorted(last.values()), dtype=np.int64)
            if not index.is_trained:
                if len(self._records):
                    raise NotTrainedError("the store's index is not trained")
                index.train(v[rows])
            self._remove([k for k in last if k in self._by_key])
            ids = np.arange(self._next_id, self._next_id + len(rows), dtype=np.int64)
            index.add_with_ids(v[rows], ids)
            self._next_id += len(rows)
            for i, r in zip(ids.tolist(), rows.tolist()):
                self._records[i] = (keys[r], payloads[r])
                self._by_key[keys[r]] = i

    def _remove(self, keys: Sequence[str]) -> int:
        ids = [self._by_key.pop(k) for k in dict.fromkeys(keys) if k in self._by_key]
        if ids:
            assert self._index is not None
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            for i in ids:
                del self._records[i]
        return len(ids)

    def delete(self, keys: Sequence[str]) -> int:
        """Remove the documents of ``keys`` (missing keys are ignored); returns how many."""
        with self._lock:
            return self._remove(keys)

    def clear(self) -> None:
        """Remove every document (the index keeps its training)."""
        with self._lock:
            if self._index is not None:
                self._index.reset()
            self._records.clear()
            self._by_key.clear()

    # -- reads ------------------------------------------------------------------------------

    def get(self, keys: Sequence[str]) -> list[tuple[str, Any]]:
        """``(key, payload)`` of the keys present, in the order asked (each once)."""
        with self._lock:
            return [
                self._records[self._by_key[k]] for k in dict.fromkeys(keys) if k in self._by_key
            ]

    def items(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._records.values())

    def vectors(self, keys: Sequence[str]) -> npt.NDArray[np.float32]:
        """The stored (for compressed indexes: decoded) vectors of ``keys`` (all present)."""
        with self._lock:
            assert self._index is not None
            index = self._index
            return np.stack([index.reconstruct(self._by_key[k]) for k in keys]).astype(np.float32)

    def allowed_mask(self, keep: Callable[[str, Any], bool]) -> npt.NDArray[np.bool_]:
        """Bool mask indexed by internal id: stored entries whose ``(key, payload)`` pass."""
        with self._lock:
            mask = np.zeros(self._next_id, dtype=np.bool_)
            for i, (key, payload) in self._records.items():
                if keep(key, payload):
                    mask[i] = True
            return mask

    def search(
        self,
        vector: Any,
        k: int,
        *,
        keep: Callable[[str, Any], bool] | None = None,
        params: SearchParameters | None = None,
        **shortcuts: Any,
    ) -> list[Hit]:
        """The ``k`` best documents for one query vector, best first, as ``(key, payload,
        score)`` (score: squared L2, or inner product). ``keep(key, payload)`` filters inside
        the index's scan, so a selective filter still yields ``k`` results when ``k`` pass."""
        k = positive_int(k, "k")
        with self._lock:
            if self._index is None or not self._records:
                return []
            q = self._vectors(np.atleast_2d(np.asarray(vector)), "embedding")
            if q.shape[0] != 1:
                raise ShapeError(f"one query vector expected, got {q.shape[0]}")
            if keep is not None:
                mask = self.allowed_mask(keep)
                if not mask.any():
                    return []
                shortcuts = {**shortcuts, "ids_allowed": mask}
            dist, ids = self._index.search(
                q, min(k, len(self._records)), params=params, **shortcuts
            )
            return [
                (*self._records[i], float(s))
                for i, s in zip(ids[0].tolist(), dist[0].tolist())
                if i >= 0 and i in self._records
            ]

    # -- files ------------------------------------------------------------------------------

    def _manifest(self, payload_to_json: Callable[[Any], Any], index_sha: str | None) -> bytes:
        records = [[i, key, payload_to_json(p)] for i, (key, p) in sorted(self._records.items())]
        doc = {
            "format": _FORMAT,
            "version": _VERSION,
            "distance_strategy": self.distance_strategy,
            "factory": self._factory,
            "next_id": self._next_id,
            "index_sha256": index_sha,
            "records": records,
        }
        try:
            return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(
                f"document metadata must be JSON-serializable to be saved: {e}"
            ) from e

    def to_bytes(self, payload_to_json: Callable[[Any], Any]) -> bytes:
        """The whole store as bytes: magic, manifest length, JSON manifest, index file."""
        with self._lock:
            blob = b"" if self._index is None else qio.serialize_index(self._index)
            sha = hashlib.sha256(blob).hexdigest() if blob else None
            manifest = self._manifest(payload_to_json, sha)
            return _MAGIC + struct.pack("<Q", len(manifest)) + manifest + blob

    @classmethod
    def from_bytes(cls, data: bytes, payload_from_json: Callable[[Any], Any]) -> DocIndex:
        data = bytes(data)
        head = len(_MAGIC) + 8
        if len(data) < head or data[: len(_MAGIC)] != _MAGIC:
            raise FormatError("not a quanta vector store (bad magic)")
        (n,) = struct.unpack("<Q", data[len(_MAGIC) : head])
        if n > len(data) - head:
            raise FormatError("truncated quanta vector store: manifest runs past the end")
        blob = data[head + n :]
        return cls._load(data[head : head + n], blob, payload_from_json)

    def save(
        self, folder: str | os.PathLike[str], name: str, to_json: Callable[[Any], Any]
    ) -> None:
        """``{name}.quanta`` (the index) and ``{name}.json`` (documents) in ``folder``, each
        written atomically (temporary file, fsync, rename)."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            index_file = path / f"{name}.quanta"
            sha = None
            if self._index is not None:
                qio.write_index(self._index, str(index_file))
                sha = hashlib.sha256(index_file.read_bytes()).hexdigest()
            elif index_file.exists():
                index_file.unlink()
            _write_atomic(path / f"{name}.json", self._manifest(to_json, sha))

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        name: str,
        from_json: Callable[[Any], Any],
    ) -> DocIndex:
        path = Path(folder)
        manifest_file = path / f"{name}.json"
        if not manifest_file.is_file():
            raise FormatError(f"no vector store {name!r} in {str(path)!r} ({manifest_file.name})")
        index_file = path / f"{name}.quanta"
        blob = index_file.read_bytes() if index_file.is_file() else b""
        return cls._load(manifest_file.read_bytes(), blob, from_json)

    @classmethod
    def _load(cls, manifest: bytes, blob: bytes, from_json: Callable[[Any], Any]) -> DocIndex:
        try:
            doc = json.loads(manifest)
        except ValueError as e:
            raise FormatError(f"corrupted vector store manifest: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise FormatError("not a quanta vector store manifest")
        if doc.get("version") != _VERSION:
            raise FormatError(
                f"vector store version {doc.get('version')!r}; this quanta reads {_VERSION}"
            )
        sha = doc.get("index_sha256")
        if (hashlib.sha256(blob).hexdigest() if blob else None) != sha:
            raise FormatError("the index file does not belong to this document store (SHA-256)")
        try:
            strategy = str(doc["distance_strategy"])
            if blob:
                store = cls._over(qio.deserialize_index(blob), strategy)
            elif isinstance(doc.get("factory"), str):
                store = cls(doc["factory"], strategy)
            else:
                raise FormatError("the vector store manifest names no index")
            store._factory = doc.get("factory")
            store._next_id = int(doc["next_id"])
            for i, key, p in doc["records"]:
                if not isinstance(i, int) or not 0 <= i < store._next_id or i in store._records:
                    raise FormatError(f"bad internal id {i!r} in the vector store manifest")
                store._records[i] = (str(key), from_json(p))
                store._by_key[str(key)] = i
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"corrupted vector store manifest: {e!r}") from e
        n = 0 if store._index is None else store._index.ntotal
        if n != len(store._records) or len(store._by_key) != len(store._records):
            raise FormatError(
                f"the index holds {n} vectors, the manifest {len(store._records)} documents"
            )
        return store

    @classmethod
    def _over(cls, index: Index, strategy: str) -> DocIndex:
        """A store around an index read from a file (which may already hold vectors)."""
        store = cls.__new__(cls)
        store.distance_strategy = strategy
        store.metric = _metric(strategy)
        if index.metric != store.metric or not index.stores_ids:
            raise FormatError("the vector store's index does not fit its manifest")
        store._lock = threading.RLock()
        store._factory = None
        store._index = index
        store._records, store._by_key, store._next_id = {}, {}, 0
        return store


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
