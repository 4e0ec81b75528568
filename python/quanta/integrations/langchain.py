"""LangChain vector store over any quanta index: ``pip install quanta[langchain]``.

>>> from quanta.integrations.langchain import QuantaVectorStore
>>> store = QuantaVectorStore(embeddings, index="IVF256,PQ48x4fs,RFlat")  # doctest: +SKIP
>>> store.add_texts(texts, metadatas)  # the first batch trains the index  # doctest: +SKIP
>>> store.similarity_search("query", k=4, filter={"section": "net"}, nprobe=16)  # doctest: +SKIP

Filters (``filter=``) are a callable ``metadata -> bool`` or a dict in LangChain's FAISS store
syntax (:func:`quanta.integrations.filters.metadata_filter`); they are turned into the index's
id selector, so filtered search returns ``k`` documents whenever ``k`` pass (no over-fetching).
Search keywords that quanta indexes take (``nprobe``, ``k_factor``, ...) pass through.
``save_local``/``load_local`` and ``serialize_to_bytes``/``deserialize_from_bytes`` write the
index in quanta's checksummed format and the documents as JSON: no pickle anywhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as e:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "quanta.integrations.langchain needs langchain-core: pip install 'quanta[langchain]'"
    ) from e

import numpy as np

from ..base import Index
from ..exceptions import InvalidArgumentError
from ._store import DocIndex
from .filters import metadata_filter

__all__ = ["QuantaVectorStore"]

_SEARCH_PARAMS = frozenset(
    {"params", "nprobe", "k_factor", "mode", "bias_correction", "ids_allowed", "ids_denied"}
)


def _doc_to_json(p: Any) -> Any:
    return {"page_content": p[0], "metadata": p[1]}


def _doc_from_json(j: Any) -> tuple[str, dict[str, Any]]:
    return str(j["page_content"]), dict(j["metadata"])


# keywords of other stores' searches that mean nothing here: filtering happens inside the scan,
# so there is no candidate pool to size
_IGNORED = frozenset({"fetch_k"})


def _search_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords for the index's search; an unknown one is an error (a misspelt ``nprobe``
    must not be ignored silently)."""
    unknown = set(kwargs) - _SEARCH_PARAMS - _IGNORED
    if unknown:
        raise InvalidArgumentError(
            f"unknown search keyword(s) {sorted(unknown)}; the index takes {sorted(_SEARCH_PARAMS)}"
        )
    return {k: v for k, v in kwargs.items() if k in _SEARCH_PARAMS}


class QuantaVectorStore(VectorStore):
    """A LangChain ``VectorStore`` whose vectors live in a quanta index.

    Args:
        embedding: the LangChain ``Embeddings`` of documents and queries.
        index: a quanta :class:`~quanta.Index` (empty; indexes that number vectors by position
            are wrapped in :class:`~quanta.IndexIDMap`) or an :func:`~quanta.index_factory`
            string (default ``"Flat"``, exact search), built at the first add. An index that
            needs training is trained on the first batch added, or by :meth:`train`.
        distance_strategy: ``"euclidean"`` (scores are squared L2, smaller is closer),
            ``"cosine"`` (vectors are L2-normalized; scores are cosine similarities) or
            ``"max_inner_product"``.
        relevance_score_fn: maps a score to a relevance in [0, 1]; by default one that fits
            the distance strategy (for normalized embeddings).
    """

    def __init__(
        self,
        embedding: Embeddings,
        index: Index | str = "Flat",
        *,
        distance_strategy: str = "euclidean",
        relevance_score_fn: Callable[[float], float] | None = None,
    ) -> None:
        self.embedding = embedding
        self._store = DocIndex(index, distance_strategy)
        self.override_relevance_score_fn = relevance_score_fn

    @classmethod
    def _over(cls, embedding: Embeddings, store: DocIndex, **kwargs: Any) -> QuantaVectorStore:
        out = cls.__new__(cls)
        out.embedding = embedding
        out._store = store
        out.override_relevance_score_fn = kwargs.get("relevance_score_fn")
        return out

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    @property
    def index(self) -> Index | None:
        """The quanta index (``None`` until the first add gives the dimension)."""
        return self._store.index

    @property
    def distance_strategy(self) -> str:
        return self._store.distance_strategy

    # not __len__: frameworks test stores for truth (`if vector_store:`), and an empty store
    # must not read as "no store"
    @property
    def ntotal(self) -> int:
        """Number of stored documents."""
        return len(self._store)

    # -- adding -----------------------------------------------------------------------------

    def train(self, texts: Sequence[str]) -> None:
        """Train the index on the embeddings of ``texts`` (for indexes that learn, before the
        first add; otherwise the first batch added trains it)."""
        self._store.train(self.embedding.embed_documents(list(texts)))

    @staticmethod
    def _prepare(
        texts: Sequence[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidArgumentError(f"{len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise InvalidArgumentError(f"{len(ids)} ids for {len(texts)} texts")
        keys = [str(i) if i else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        metas = metadatas or [{} for _ in texts]
        # copies: the caller's metadata dicts must not change under the store
        return keys, [(t, dict(m)) for t, m in zip(texts, metas)]

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed ``texts`` and store them; an id already present is replaced (upsert)."""
        texts = list(texts)
        keys, payloads = self._prepare(texts, metadatas, ids)
        vectors = self.embedding.embed_documents(texts) if texts else []
        self._store.upsert(
            keys, np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1), payloads
        )
        return keys

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        keys, payloads = self._prepare(texts, metadatas, ids)
        vectors = await self.embedding.aembed_documents(texts) if texts else []
        arr = np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1)
        await run_in_executor(None, self._store.upsert, keys, arr, payloads)
        return keys

    def add_embeddings(
        self,
        text_embeddings: Iterable[tuple[str, list[float]]],
        metadatas: list[dict[str, Any]] | None = None,
        ids: list[str] | None = None,
    ) -> list[str]:
        """Store precomputed ``(text, embedding)`` pairs (as LangChain's FAISS store)."""
        pairs = list(text_embeddings)
        keys, payloads = self._prepare([t for t, _ in pairs], metadatas, ids)
        vectors = np.asarray([e for _, e in pairs], dtype=np.float32).reshape(len(keys), -1)
        self._store.upsert(keys, vectors, payloads)
        return keys

    # -- deleting and reading ---------------------------------------------------------------

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents of ``ids`` (missing ids are ignored); ``None`` deletes all."""
        if ids is None:
            self._store.clear()
        else:
            self._store.delete([str(i) for i in ids])
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return await run_in_executor(None, self.delete, ids, **kwargs)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [
            Document(id=key, page_content=text, metadata=dict(meta))
            for key, (text, meta) in self._store.get([str(i) for i in ids])
        ]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await run_in_executor(None, self.get_by_ids, ids)

    # -- search -----------------------------------------------------------------------------

    def _keep(self, filter: Any) -> Callable[[str, Any], bool] | None:
        if filter is None:
            return None
        match = metadata_filter(filter)
        return lambda _key, payload: match(payload[1])

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Callable[[dict[str, Any]], bool] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """``(document, score)`` of the ``k`` best, best first (score: squared L2 for
        ``euclidean``, similarity otherwise). ``filter`` is applied inside the index scan."""
        hits = self._store.search(embedding, k, keep=self._keep(filter), **_search_kwargs(kwargs))
        return [
            (Document(id=key, page_content=text, metadata=dict(meta)), score)
            for key, (text, meta), score in hits
        ]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(
            self.embedding.embed_query(query), k, **kwargs
        )

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        embedding = await self.embedding.aembed_query(query)
        return await run_in_executor(
            None, self.similarity_search_with_score_by_vector, embedding, k, **kwargs
        )

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return await run_in_executor(None, self.similarity_search_by_vector, embedding, k, **kwargs)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        if self.distance_strategy == "euclidean":
            # squared L2 of unit vectors lies in [0, 4]: relevance 1 - ||a - b|| / 2
            return lambda s: max(0.0, 1.0 - float(np.sqrt(max(s, 0.0))) / 2.0)
        # cosine similarity (or inner product of unit vectors) in [-1, 1]
        return lambda s: min(1.0, max(0.0, (1.0 + s) / 2.0))

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Callable[[dict[str, Any]], bool] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Maximal marginal relevance among the ``fetch_k`` best (filtered in the scan), on the
        vectors the index holds (decoded ones for compressed indexes, as faiss's store)."""
        hits = self.similarity_search_with_score_by_vector(
            embedding, max(fetch_k, k), filter=filter, **kwargs
        )
        if not hits:
            return []
        vectors = self._store.vectors([d.id or "" for d, _ in hits])
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), list(vectors), k=k, lambda_mult=lambda_mult
        )
        return [hits[i][0] for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self.embedding.embed_query(query), k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        embedding = await self.embedding.aembed_query(query)
        return await run_in_executor(
            None,
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            **kwargs,
        )

    # -- construction and files -------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> QuantaVectorStore:
        """A store over ``texts``; keywords ``index``, ``distance_strategy`` and
        ``relevance_score_fn`` as the constructor."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def save_local(self, folder_path: str | os.PathLike[str], index_name: str = "index") -> None:
        """``{index_name}.quanta`` (the index, checksummed) and ``{index_name}.json`` (the
        documents) in ``folder_path``; each file is written atomically."""
        self._store.save(folder_path, index_name, _doc_to_json)

    @classmethod
    def load_local(
        cls,
        folder_path: str | os.PathLike[str],
        embeddings: Embeddings,
        index_name: str = "index",
        **kwargs: Any,
    ) -> QuantaVectorStore:
        """The store :meth:`save_local` wrote. Nothing is unpickled, so (unlike LangChain's FAISS
        store) no ``allow_dangerous_deserialization`` is needed; a damaged or mismatched pair of
        files raises :class:`~quanta.FormatError`."""
        kwargs.pop("allow_dangerous_deserialization", None)
        return cls._over(
            embeddings, DocIndex.load(folder_path, index_name, _doc_from_json), **kwargs
        )

    def serialize_to_bytes(self) -> bytes:
        """The store (index and documents) as bytes, without pickle."""
        return self._store.to_bytes(_doc_to_json)

    @classmethod
    def deserialize_from_bytes(
        cls, serialized: bytes, embeddings: Embeddings, **kwargs: Any
    ) -> QuantaVectorStore:
        kwargs.pop("allow_dangerous_deserialization", None)
        return cls._over(embeddings, DocIndex.from_bytes(serialized, _doc_from_json), **kwargs)
