"""LlamaIndex's own vector-store cases (those of ``SimpleVectorStore``'s test suite in
llama-index-core) run on :class:`quanta.integrations.llama_index.QuantaVectorStore`, each
checked against what ``SimpleVectorStore`` returns for the same nodes and query; then the store
inside a ``VectorStoreIndex`` (retrieval, persistence through a ``StorageContext``), compressed
indexes and damaged files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

import quanta
from llama_index.core import Document, MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from quanta.integrations.llama_index import QuantaVectorStore

A = "AF3BE6C4-5F43-4D74-B075-6B0E07900DE8"
B = "7D9CD555-846C-445C-A9DD-F8924A01411D"
C = "452D24AB-F185-414C-A352-590B4B9EE51B"


def _nodes() -> list[TextNode]:
    rows = [
        (A, [1.0, 0.0], "test-0", 1.0, "a", ["medium", "high"], "6FTR78Yun"),
        (B, [0.0, 1.0], "test-1", 2.0, "c", ["medium"], "6FTR78Ygl"),
        (C, [1.0, 1.0], "test-2", 3.0, "c", ["low", "medium", "high"], "6FTR78Ztl"),
    ]
    return [
        TextNode(
            text="lorem ipsum",
            id_=i,
            embedding=e,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=src)},
            metadata={"weight": w, "rank": r, "quality": q, "identifier": ident},
        )
        for i, e, src, w, r, q, ident in rows
    ]


def _f(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


# (filters, top_k, node_ids) of each case of llama-index-core's tests/vector_stores/test_simple.py
CASES: dict[str, tuple[MetadataFilters | None, int, list[str] | None]] = {
    "no_filter_all_rows_sorted": (None, 3, None),
    "multiple_matches": (MetadataFilters(filters=[_f("rank", "c")]), 3, None),
    "filter_applies_top_k": (MetadataFilters(filters=[_f("rank", "c")]), 1, None),
    "filter_and_node_ids": (MetadataFilters(filters=[_f("rank", "c")]), 3, [C]),
    "exact_single_match": (MetadataFilters(filters=[_f("rank", "c"), _f("weight", 2.0)]), 1, None),
    "contradictive": (MetadataFilters(filters=[_f("weight", 2), _f("weight", 3)]), 1, None),
    "unknown_field": (MetadataFilters(filters=[_f("unknown_field", "c")]), 1, None),
    "or": (
        MetadataFilters(filters=[_f("rank", "c"), _f("weight", 1.0)], condition=FilterCondition.OR),
        3,
        None,
    ),
    "and": (
        MetadataFilters(
            filters=[_f("rank", "c"), _f("weight", 1.0)], condition=FilterCondition.AND
        ),
        3,
        None,
    ),
    "not": (MetadataFilters(filters=[_f("rank", "a")], condition=FilterCondition.NOT), 3, None),
    "eq": (MetadataFilters(filters=[_f("weight", 1.0)]), 3, None),
    "ne": (MetadataFilters(filters=[_f("weight", 1.0, FilterOperator.NE)]), 3, None),
    "gt": (MetadataFilters(filters=[_f("weight", 1.5, FilterOperator.GT)]), 3, None),
    "gte": (MetadataFilters(filters=[_f("weight", 1.0, FilterOperator.GTE)]), 3, None),
    "lt": (MetadataFilters(filters=[_f("weight", 1.1, FilterOperator.LT)]), 3, None),
    "lte": (MetadataFilters(filters=[_f("weight", 1.0, FilterOperator.LTE)]), 3, None),
    "in": (MetadataFilters(filters=[_f("rank", ["a", "c"], FilterOperator.IN)]), 3, None),
    "nin": (MetadataFilters(filters=[_f("rank", ["c"], FilterOperator.NIN)]), 3, None),
    "contains": (
        MetadataFilters(filters=[_f("quality", "high", FilterOperator.CONTAINS)]),
        3,
        None,
    ),
    "text_match": (
        MetadataFilters(filters=[_f("identifier", "6FTR78Y", FilterOperator.TEXT_MATCH)]),
        3,
        None,
    ),
    "any": (MetadataFilters(filters=[_f("quality", ["high", "low"], FilterOperator.ANY)]), 3, None),
    "all": (
        MetadataFilters(filters=[_f("quality", ["medium", "high"], FilterOperator.ALL)]),
        3,
        None,
    ),
    "is_empty": (
        MetadataFilters(filters=[_f("not_existed_key", None, FilterOperator.IS_EMPTY)]),
        3,
        None,
    ),
}
# what the upstream tests assert, beside the comparison with SimpleVectorStore
EXPECTED = {
    "no_filter_all_rows_sorted": [C, A, B],
    "multiple_matches": [C, B],
    "filter_applies_top_k": [C],
    "filter_and_node_ids": [C],
    "exact_single_match": [B],
    "contradictive": [],
    "unknown_field": [],
    "and": [],
}
COUNTS = {
    "or": 3,
    "not": 2,
    "eq": 1,
    "ne": 2,
    "gt": 2,
    "gte": 3,
    "lte": 1,
    "in": 3,
    "nin": 1,
    "contains": 2,
    "text_match": 2,
    "any": 2,
    "all": 2,
    "is_empty": 3,
}


@pytest.mark.parametrize("index", ["Flat", "SQ8"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_simple_vector_store_cases(case: str, index: str) -> None:
    filters, k, node_ids = CASES[case]
    q = VectorStoreQuery(
        query_embedding=[1.0, 1.0], similarity_top_k=k, filters=filters, node_ids=node_ids
    )
    ref = SimpleVectorStore()
    ref.add(_nodes())
    ours = QuantaVectorStore(index=index)
    ours.add(_nodes())
    want, got = ref.query(q), ours.query(q)
    tol = 1e-2 if index == "SQ8" else 1e-6
    # the same nodes with the same similarities, best first; A and B tie (cosine 0.707 with the
    # query), which SimpleVectorStore orders by insertion and quanta by id
    assert got.ids is not None and want.ids is not None and sorted(got.ids) == sorted(want.ids)
    sim = dict(zip(want.ids, want.similarities or []))
    assert got.similarities == pytest.approx([sim[i] for i in got.ids], abs=tol)
    assert all(a >= b - tol for a, b in zip(got.similarities, got.similarities[1:]))
    if case in EXPECTED:
        assert got.ids[:1] == EXPECTED[case][:1] and sorted(got.ids) == sorted(EXPECTED[case])
    if case in COUNTS:
        assert got.ids is not None and len(got.ids) == COUNTS[case]
    assert [n.node_id for n in got.nodes or []] == got.ids
    assert all(n.get_content() == "lorem ipsum" for n in got.nodes or [])


def test_delete_clear_delete_nodes() -> None:
    store = QuantaVectorStore()
    store.add(_nodes())
    store.delete("test-1")
    q = VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=2)
    assert store.query(q).ids == [C, A]
    store.delete_nodes([A, B])
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=3)).ids == [C]
    store.add(_nodes())
    assert store.ntotal == 3
    store.delete_nodes(filters=MetadataFilters(filters=[_f("rank", "c")]))
    assert [n.node_id for n in store.get_nodes()] == [A]
    store.clear()
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=3)).ids == []
    assert store.get_nodes([A, "missing"]) == []


def test_mmr_and_doc_ids() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 8)).astype(np.float32)
    nodes = [
        TextNode(
            text=f"t{i}",
            id_=f"n{i}",
            embedding=vecs[i].tolist(),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc{i % 5}")},
        )
        for i in range(50)
    ]
    ref, ours = SimpleVectorStore(), QuantaVectorStore()
    ref.add(nodes)
    ours.add(nodes)
    # a query that is not a stored vector: with one, every later MMR score is a 0-0 tie
    q = rng.standard_normal(8).tolist()
    for thr in (0.2, 0.5, 0.9):
        mq = VectorStoreQuery(
            query_embedding=q, similarity_top_k=5, mode=VectorStoreQueryMode.MMR, mmr_threshold=thr
        )
        # every node is a candidate in both (prefetch 50 of 50): same MMR choice
        assert ours.query(mq, mmr_prefetch_k=50).ids == ref.query(mq, mmr_threshold=thr).ids
    only = ours.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4, doc_ids=["doc2"]))
    assert len(only.ids or []) == 4 and all(int(i[1:]) % 5 == 2 for i in only.ids or [])
    with pytest.raises(quanta.InvalidArgumentError, match="svm"):
        ours.query(VectorStoreQuery(query_embedding=q, mode=VectorStoreQueryMode.SVM))
    with pytest.raises(quanta.InvalidArgumentError, match="embedding"):
        ours.add([TextNode(text="no embedding")])


def test_in_a_vector_store_index_with_persistence(tmp_path: Path) -> None:
    docs = [
        Document(text=f"document {i} about {t}", id_=f"d{i}", metadata={"topic": t})
        for i, t in enumerate(["cats", "dogs", "fish", "birds"] * 10)
    ]
    embed = MockEmbedding(embed_dim=16)
    store = QuantaVectorStore(index="IVF2,Flat")
    ctx = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=embed)
    assert store.ntotal == 40 and store.client is not None and store.client.is_trained
    retriever = index.as_retriever(
        similarity_top_k=3,
        filters=MetadataFilters(filters=[_f("topic", "fish")]),
        vector_store_kwargs={"nprobe": 2},
    )
    found = retriever.retrieve("fish")
    assert len(found) == 3 and all(n.node.metadata["topic"] == "fish" for n in found)
    ctx.persist(persist_dir=str(tmp_path))
    loaded = QuantaVectorStore.from_persist_dir(str(tmp_path))
    assert loaded.ntotal == 40
    q = VectorStoreQuery(query_embedding=embed.get_query_embedding("x"), similarity_top_k=5)
    assert loaded.query(q, nprobe=2).ids == store.query(q, nprobe=2).ids
    index.delete_ref_doc("d3")
    assert store.ntotal == 39
    # a damaged file is a FormatError, never a crash or a silently smaller store
    path = tmp_path / "default__vector_store.json"
    data = path.read_bytes()
    for bad in [data[:20], data[:-3], data[:60] + b"\x00" + data[61:]]:
        path.write_bytes(bad)
        with pytest.raises(quanta.FormatError):
            QuantaVectorStore.from_persist_dir(str(tmp_path))


@pytest.mark.parametrize("spec", ["PQ4x4fs,RFlat", "IVF4,PQ4", "RaBitQ"])
def test_compressed_indexes(spec: str) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    nodes = [
        TextNode(
            text=f"t{i}", id_=f"n{i}", embedding=vecs[i].tolist(), metadata={"even": i % 2 == 0}
        )
        for i in range(300)
    ]
    store = QuantaVectorStore(index=spec)
    store.add(nodes)
    probe = {"nprobe": 4} if "IVF" in spec else {}
    self_hits = sum(
        (store.query(VectorStoreQuery(query_embedding=vecs[i].tolist()), **probe).ids or [""])[0]
        == f"n{i}"
        for i in range(0, 300, 15)
    )
    assert self_hits >= 18
    res = store.query(
        VectorStoreQuery(
            query_embedding=vecs[1].tolist(),
            similarity_top_k=10,
            filters=MetadataFilters(filters=[_f("even", 1)]),
        ),
        **probe,
    )
    store.delete_nodes([f"n{i}" for i in range(100)])
    assert store.ntotal == store.client.ntotal == 200  # type: ignore[union-attr]
    assert res.ids is not None


async def test_async_variants() -> None:
    store = QuantaVectorStore()
    assert await store.async_add(_nodes()) == [A, B, C]
    res = await store.aquery(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))
    assert res.ids == [A]
    await store.adelete("test-0")
    assert store.ntotal == 2
