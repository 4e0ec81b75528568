"""LlamaIndex vector store over any quanta index: ``pip install quanta[llama-index]``.

>>> from llama_index.core import StorageContext, VectorStoreIndex
>>> from quanta.integrations.llama_index import QuantaVectorStore
>>> store = QuantaVectorStore(index="IVF256,PQ48x4fs,RFlat")  # doctest: +SKIP
>>> ctx = StorageContext.from_defaults(vector_store=store)  # doctest: +SKIP
>>> index = VectorStoreIndex.from_documents(docs, storage_context=ctx)  # doctest: +SKIP

The store keeps the nodes themselves (``stores_text = True``), so a query returns nodes without
a separate document store. Metadata filters use LlamaIndex's own semantics (the function its
``SimpleVectorStore`` uses) and are turned into the index's id selector: a filtered query
returns ``similarity_top_k`` nodes whenever that many pass. ``persist`` writes one file: the
index in quanta's checksummed format and the nodes as JSON, no pickle.

Similarities (higher is closer): cosine similarity (``distance_strategy="cosine"``, the
default, as ``SimpleVectorStore``), the inner product (``"max_inner_product"``), or
``1 / (1 + squared L2)`` (``"euclidean"``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

try:
    import fsspec  # type: ignore[import-untyped]
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import (
        DEFAULT_PERSIST_DIR,
        DEFAULT_PERSIST_FNAME,
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import (
        build_metadata_filter_fn,
        metadata_dict_to_node,
        node_to_metadata_dict,
    )
except ImportError as e:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "quanta.integrations.llama_index needs llama-index-core: pip install 'quanta[llama-index]'"
    ) from e

import numpy as np

from ..base import Index
from ..exceptions import InvalidArgumentError
from ._store import DocIndex, _write_atomic

__all__ = ["QuantaVectorStore"]

_NAMESPACE_SEP = "__"


def _node_to_json(node: Any) -> Any:
    return node_to_metadata_dict(node, remove_text=False, flat_metadata=False)


def _node_from_json(j: Any) -> BaseNode:
    return metadata_dict_to_node(dict(j))


def _matcher(filters: MetadataFilters | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """``metadata -> bool`` of LlamaIndex's own filter function (the one ``SimpleVectorStore``
    uses), so operators, missing fields, IS_EMPTY and NOT mean exactly what they mean there."""
    if filters is None:
        return None
    # it looks metadata up by node id; handing it the metadata as the "id" and the identity as
    # the lookup evaluates the filter on one node's metadata without a table
    identity = cast(Callable[[str], Mapping[str, Any]], lambda meta: meta)
    fn = build_metadata_filter_fn(identity, filters)
    return lambda meta: fn(cast(str, meta))


class QuantaVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store whose vectors live in a quanta index.

    Args:
        index: a quanta :class:`~quanta.Index` (empty) or an :func:`~quanta.index_factory`
            string (default ``"Flat"``), built at the first add; an index that needs training
            is trained on the first batch of nodes added.
        distance_strategy: ``"cosine"`` (default), ``"euclidean"`` or ``"max_inner_product"``.
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    flat_metadata: bool = False
    distance_strategy: str = "cosine"

    _store: DocIndex = PrivateAttr()

    def __init__(
        self, index: Index | str = "Flat", distance_strategy: str = "cosine", **kwargs: Any
    ) -> None:
        super().__init__(**{"distance_strategy": distance_strategy, **kwargs})
        self._store = DocIndex(index, distance_strategy)

    @classmethod
    def _over(cls, store: DocIndex) -> QuantaVectorStore:
        out = cls.__new__(cls)
        fields: dict[str, Any] = {"distance_strategy": store.distance_strategy}
        BasePydanticVectorStore.__init__(out, **fields)
        out._store = store
        return out

    @classmethod
    def class_name(cls) -> str:
        return "QuantaVectorStore"

    @property
    def client(self) -> Index | None:
        """The quanta index (``None`` until the first add gives the dimension)."""
        return self._store.index

    # not __len__: frameworks test stores for truth (`if vector_store:`), and an empty store
    # must not read as "no store"
    @property
    def ntotal(self) -> int:
        """Number of stored documents."""
        return len(self._store)

    # -- adding and deleting ----------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store ``nodes`` (each with its embedding); a node id already present is replaced."""
        missing = [n.node_id for n in nodes if n.embedding is None]
        if missing:
            raise InvalidArgumentError(f"nodes without an embedding: {missing[:5]}")
        keys = [n.node_id for n in nodes]
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        # the stored copy drops the embedding: the index holds the vector
        payloads = [n.model_copy(update={"embedding": None}) for n in nodes]
        self._store.upsert(keys, vectors.reshape(len(keys), -1), payloads)
        return keys

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        import asyncio

        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._store.delete([k for k, node in self._store.items() if node.ref_doc_id == ref_doc_id])

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def _select(
        self, node_ids: Sequence[str] | None, filters: MetadataFilters | None
    ) -> list[tuple[str, Any]]:
        rows = self._store.get(list(node_ids)) if node_ids is not None else self._store.items()
        match = _matcher(filters)
        return [(k, n) for k, n in rows if match is None or match(n.metadata)]

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return [n for _, n in self._select(node_ids, filters)]

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes of ``node_ids`` that pass ``filters`` (all nodes if both are None)."""
        self._store.delete([k for k, _ in self._select(node_ids, filters)])

    def clear(self) -> None:
        self._store.clear()

    # -- query ------------------------------------------------------------------------------

    def _similarity(self, score: float) -> float:
        return 1.0 / (1.0 + score) if self.distance_strategy == "euclidean" else score

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest ``query.query_embedding`` among those that
        pass ``query.filters``, ``query.node_ids`` and ``query.doc_ids`` (all inside the index
        scan). Modes: default and MMR (``mmr_threshold``; candidates: the
        ``mmr_prefetch_k`` nearest, default ``max(20, 4 * top_k)``). Keywords the index's
        search takes (``nprobe``, ``k_factor``) pass through."""
        if query.query_embedding is None:
            raise InvalidArgumentError("query.query_embedding is required")
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise InvalidArgumentError(
                f"query mode {query.mode.value!r} is not supported; use 'default' or 'mmr'"
            )
        k = query.similarity_top_k
        prefetch = int(kwargs.pop("mmr_prefetch_k", max(20, 4 * k)))
        mmr_threshold = kwargs.pop("mmr_threshold", query.mmr_threshold)
        search_kw = {p: kwargs[p] for p in ("nprobe", "k_factor", "params") if p in kwargs}
        match = _matcher(query.filters)
        # an empty list is no restriction, as in LlamaIndex's own stores: a VectorStoreIndex
        # over a store that keeps the text passes node_ids=[] (it tracks no nodes itself)
        only = set(query.node_ids) if query.node_ids else None
        docs = set(query.doc_ids) if query.doc_ids else None

        def keep(key: str, node: Any) -> bool:
            return (
                (only is None or key in only)
                and (docs is None or node.ref_doc_id in docs)
                and (match is None or bool(match(node.metadata)))
            )

        unfiltered = match is None and only is None and docs is None
        mmr = query.mode == VectorStoreQueryMode.MMR
        hits = self._store.search(
            query.query_embedding,
            max(prefetch, k) if mmr else k,
            keep=None if unfiltered else keep,
            **search_kw,
        )
        if mmr and hits:
            keys = [key for key, _, _ in hits]
            vectors = self._store.vectors(keys)
            sims, chosen = get_top_k_mmr_embeddings(
                list(map(float, query.query_embedding)),
                vectors.tolist(),
                similarity_top_k=k,
                embedding_ids=list(range(len(hits))),
                mmr_threshold=mmr_threshold,
            )
            picked = [hits[i] for i in chosen]
            return VectorStoreQueryResult(
                nodes=[n for _, n, _ in picked],
                similarities=[float(s) for s in sims],
                ids=[key for key, _, _ in picked],
            )
        return VectorStoreQueryResult(
            nodes=[n for _, n, _ in hits],
            similarities=[self._similarity(s) for _, _, s in hits],
            ids=[key for key, _, _ in hits],
        )

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        import asyncio

        return await asyncio.to_thread(self.query, query, **kwargs)

    # -- files ------------------------------------------------------------------------------

    def persist(
        self,
        persist_path: str = os.path.join(DEFAULT_PERSIST_DIR, f"default__{DEFAULT_PERSIST_FNAME}"),
        fs: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        """Write the store (index and nodes) to ``persist_path``: atomically on the local file
        system, through ``fs`` otherwise."""
        data = self._store.to_bytes(_node_to_json)
        if fs is None:
            from pathlib import Path

            path = Path(persist_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)
        else:
            fs.makedirs(os.path.dirname(persist_path) or ".", exist_ok=True)
            with fs.open(persist_path, "wb") as f:
                f.write(data)

    @classmethod
    def from_persist_path(
        cls, persist_path: str, fs: fsspec.AbstractFileSystem | None = None
    ) -> QuantaVectorStore:
        """The store :meth:`persist` wrote (a damaged file is a :class:`~quanta.FormatError`)."""
        if fs is None:
            with open(persist_path, "rb") as f:
                data = f.read()
        else:
            with fs.open(persist_path, "rb") as f:
                data = f.read()
        return cls._over(DocIndex.from_bytes(data, _node_from_json))

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str = DEFAULT_PERSIST_DIR,
        namespace: str = "default",
        fs: fsspec.AbstractFileSystem | None = None,
    ) -> QuantaVectorStore:
        """The store a ``StorageContext.persist(persist_dir)`` wrote for ``namespace``."""
        name = f"{namespace}{_NAMESPACE_SEP}{DEFAULT_PERSIST_FNAME}"
        return cls.from_persist_path(os.path.join(persist_dir, name), fs=fs)
