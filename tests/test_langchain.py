"""LangChain's own standard vector-store suite (``langchain-tests``) run on
:class:`quanta.integrations.langchain.QuantaVectorStore`, over an exact index and over
compressed ones, plus what the suite does not cover: filters inside the scan, MMR, files without
pickle, cosine, upserts on indexes that need ids, and damaged files."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest

pytest.importorskip("langchain_tests")

import quanta
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests.vectorstores import (
    VectorStoreIntegrationTests,
)
from quanta.integrations.langchain import QuantaVectorStore


class TestQuantaStoreFlat(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Generator[QuantaVectorStore, None, None]:
        yield QuantaVectorStore(self.get_embeddings())


class TestQuantaStoreIVF(VectorStoreIntegrationTests):
    """An index that stores ids itself (no IndexIDMap), probing every list."""

    @pytest.fixture()
    def vectorstore(self) -> Generator[QuantaVectorStore, None, None]:
        emb = self.get_embeddings()
        index = quanta.index_factory(6, "IVF2,Flat")
        index.train(np.asarray(emb.embed_documents([f"t{i}" for i in range(100)]), np.float32))
        index.nprobe = 2
        yield QuantaVectorStore(emb, index)


class TestQuantaStoreCosineSQ(VectorStoreIntegrationTests):
    """Cosine over an 8-bit scalar quantizer: the suite's two-document rankings survive it."""

    @pytest.fixture()
    def vectorstore(self) -> Generator[QuantaVectorStore, None, None]:
        emb = self.get_embeddings()
        index = quanta.index_factory(6, "SQ8", metric="ip")
        index.train(np.asarray(emb.embed_documents([f"t{i}" for i in range(100)]), np.float32))
        yield QuantaVectorStore(emb, index, distance_strategy="cosine")


# -- beyond the standard suite ------------------------------------------------------------------

TEXTS = [f"package {i} in section {i % 10}" for i in range(400)]
METAS = [
    {"i": i, "section": f"s{i % 10}", "tags": ["odd" if i % 2 else "even"]} for i in range(400)
]
IDS = [f"p{i}" for i in range(400)]


def _emb() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=32)


def _exact_ids(store: QuantaVectorStore, query: str, k: int, keep: object = None) -> list[str]:
    """Ids of the k nearest stored documents by brute force over the embeddings."""
    emb = _emb()
    q = np.asarray(emb.embed_query(query), np.float32)
    rows = [
        (float(((np.asarray(emb.embed_query(t), np.float32) - q) ** 2).sum()), i)
        for i, t in zip(IDS, TEXTS)
        if keep is None or keep(METAS[IDS.index(i)])  # type: ignore[operator]
    ]
    return [i for _, i in sorted(rows)[:k]]


@pytest.fixture()
def flat_store() -> QuantaVectorStore:
    return QuantaVectorStore.from_texts(TEXTS, _emb(), metadatas=METAS, ids=IDS)


def test_exact_search_matches_brute_force(flat_store: QuantaVectorStore) -> None:
    for q in ["package 3", "section 7", "unrelated words"]:
        got = [d.id for d in flat_store.similarity_search(q, k=10)]
        assert got == _exact_ids(flat_store, q, 10)


@pytest.mark.parametrize(
    ("spec", "keep"),
    [
        ({"section": "s3"}, lambda m: m["section"] == "s3"),
        ({"i": {"$gte": 390}}, lambda m: m["i"] >= 390),
        ({"i": [1, 2, 399]}, lambda m: m["i"] in (1, 2, 399)),
        (
            {"section": {"$in": ["s1", "s2"]}, "i": {"$lt": 100}},
            lambda m: m["section"] in ("s1", "s2") and m["i"] < 100,
        ),
        (
            {"$or": [{"i": 5}, {"section": {"$eq": "s9"}}]},
            lambda m: m["i"] == 5 or m["section"] == "s9",
        ),
        ({"$not": {"section": {"$nin": ["s4"]}}}, lambda m: m["section"] == "s4"),
        (
            {"$and": [{"i": {"$gt": 10}}, {"i": {"$ne": 20}}, {"i": {"$lte": 21}}]},
            lambda m: 10 < m["i"] <= 21 and m["i"] != 20,
        ),
    ],
)
def test_filters_run_inside_the_scan(
    flat_store: QuantaVectorStore, spec: dict, keep: object
) -> None:
    """A selective filter still yields k results (a post-filter over k or fetch_k would not),
    the same the brute force gives over the documents that pass."""
    for q in ["package 3", "section 7"]:
        got = [d.id for d in flat_store.similarity_search(q, k=8, filter=spec)]
        assert got == _exact_ids(flat_store, q, 8, keep)
        assert got == [d.id for d in flat_store.similarity_search(q, k=8, filter=keep)]


def test_filter_errors(flat_store: QuantaVectorStore) -> None:
    with pytest.raises(quanta.InvalidArgumentError, match=r"\$regex"):
        flat_store.similarity_search("x", k=2, filter={"section": {"$regex": "s"}})
    with pytest.raises(quanta.InvalidArgumentError, match=r"\$in"):
        flat_store.similarity_search("x", k=2, filter={"i": {"$in": 3}})
    with pytest.raises(quanta.InvalidArgumentError, match="nprob"):
        flat_store.similarity_search("x", k=2, nprob=4)
    assert flat_store.similarity_search("x", k=3, filter={"missing": 1}) == []
    assert flat_store.similarity_search("x", k=3, filter={"missing": {"$ne": 1}}) == []


def test_mmr(flat_store: QuantaVectorStore) -> None:
    q = "package 12 in section 2"
    near = [d.id for d in flat_store.similarity_search(q, k=20)]
    mmr = [d.id for d in flat_store.max_marginal_relevance_search(q, k=5, fetch_k=20)]
    assert len(set(mmr)) == 5 and set(mmr) <= set(near) and mmr[0] == near[0]
    # lambda 1: relevance only, which MMR measures by cosine (as LangChain's FAISS store)
    emb = _emb()
    qv = np.asarray(emb.embed_query(q))
    cos = {
        i: float(v @ qv / np.linalg.norm(v) / np.linalg.norm(qv))
        for i in near
        for v in [np.asarray(emb.embed_query(TEXTS[IDS.index(i)]))]
    }
    assert [
        d.id for d in flat_store.max_marginal_relevance_search(q, k=5, fetch_k=20, lambda_mult=1.0)
    ] == sorted(near, key=lambda i: -cos[i])[:5]
    filtered = flat_store.max_marginal_relevance_search(q, k=4, filter={"section": "s5"})
    assert len(filtered) == 4 and all(d.metadata["section"] == "s5" for d in filtered)


def test_cosine_scores_and_relevance() -> None:
    emb = _emb()
    store = QuantaVectorStore.from_texts(TEXTS[:50], emb, ids=IDS[:50], distance_strategy="cosine")
    q = np.asarray(emb.embed_query("package 7"), np.float64)
    docs = np.asarray(emb.embed_documents(TEXTS[:50]), np.float64)
    cos = docs @ q / np.linalg.norm(docs, axis=1) / np.linalg.norm(q)
    got = store.similarity_search_with_score("package 7", k=5)
    order = np.argsort(-cos)[:5]
    assert [d.id for d, _ in got] == [IDS[i] for i in order]
    assert [s for _, s in got] == pytest.approx(cos[order].tolist(), abs=1e-5)
    rel = store.similarity_search_with_relevance_scores("package 7", k=5)
    assert all(0.0 <= r <= 1.0 for _, r in rel)


@pytest.mark.parametrize("spec", ["PQ8x4fs,RFlat", "IVF4,PQ8", "OPQ8,IVF4,Flat", "SQ8", "RaBitQ"])
def test_compressed_indexes_train_on_first_add(spec: str) -> None:
    store = QuantaVectorStore(_emb(), spec)
    store.add_texts(TEXTS, METAS, ids=IDS)
    assert store.index is not None and store.index.is_trained and store.ntotal == 400
    # a stored text is its own nearest neighbour; IVF probes all lists here
    probe = {"nprobe": 4} if "IVF" in spec else {}
    hits = sum(
        store.similarity_search(TEXTS[i], k=1, **probe)[0].id == IDS[i] for i in range(0, 400, 20)
    )
    assert hits >= 18, f"{hits}/20 self-matches"
    # upsert: same ids again replace, they do not duplicate
    store.add_texts(TEXTS[:10], [{"v": 2}] * 10, ids=IDS[:10])
    assert store.ntotal == 400 and store.index.ntotal == 400
    assert store.get_by_ids(["p3"])[0].metadata == {"v": 2}
    store.delete(IDS[:200])
    assert store.ntotal == store.index.ntotal == 200
    assert all(int(d.id[1:]) >= 200 for d in store.similarity_search("package 3", k=20, **probe))


def test_save_load_without_pickle(flat_store: QuantaVectorStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flat_store.delete(["p1", "p2"])
    flat_store.save_local(tmp_path, "kb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.json", "kb.quanta"]
    assert quanta.read_index(str(tmp_path / "kb.quanta")).ntotal == 398
    loaded = QuantaVectorStore.load_local(str(tmp_path), _emb(), index_name="kb")
    again = QuantaVectorStore.deserialize_from_bytes(flat_store.serialize_to_bytes(), _emb())
    for q in ["package 3", "section 1"]:
        want = flat_store.similarity_search_with_score(q, k=6, filter={"section": "s1"})
        assert loaded.similarity_search_with_score(q, k=6, filter={"section": "s1"}) == want
        assert again.similarity_search_with_score(q, k=6, filter={"section": "s1"}) == want
    loaded.add_texts(["new"], ids=["p1"])  # ids keep counting past the saved ones
    assert loaded.get_by_ids(["p1"])[0].page_content == "new" and loaded.ntotal == 399


def test_damaged_files_are_format_errors(flat_store: QuantaVectorStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flat_store.save_local(tmp_path / "a")
    QuantaVectorStore.from_texts(TEXTS[:5], _emb()).save_local(tmp_path / "b")
    # the index of another store: its SHA-256 is not the one the documents were saved with
    (tmp_path / "a" / "index.quanta").write_bytes((tmp_path / "b" / "index.quanta").read_bytes())
    with pytest.raises(quanta.FormatError, match="SHA-256"):
        QuantaVectorStore.load_local(tmp_path / "a", _emb())
    blob = flat_store.serialize_to_bytes()
    for bad in [blob[:5], blob[:40], blob[:-7], b"X" + blob[1:], blob[:30] + b"{" + blob[31:]]:
        with pytest.raises(quanta.FormatError):
            QuantaVectorStore.deserialize_from_bytes(bad, _emb())
    with pytest.raises(quanta.FormatError, match="no vector store"):
        QuantaVectorStore.load_local(tmp_path / "missing", _emb())


def test_bad_arguments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(quanta.InvalidArgumentError, match="distance_strategy"):
        QuantaVectorStore(_emb(), distance_strategy="manhattan")
    with pytest.raises(quanta.InvalidArgumentError, match="metric"):
        QuantaVectorStore(_emb(), quanta.IndexFlatL2(32), distance_strategy="cosine")
    full = quanta.IndexFlatL2(32)
    full.add(np.zeros((2, 32), np.float32))
    with pytest.raises(quanta.InvalidArgumentError, match="empty"):
        QuantaVectorStore(_emb(), full)
    store = QuantaVectorStore(_emb())
    with pytest.raises(quanta.InvalidArgumentError, match="metadatas"):
        store.add_texts(["a", "b"], [{}])
    store.add_texts(["a"], [{"when": object()}])
    with pytest.raises(quanta.InvalidArgumentError, match="JSON"):
        store.save_local(tmp_path)
    with pytest.raises(quanta.InvalidArgumentError, match="k"):
        store.similarity_search("a", k=0)
    # a failed upsert keeps the old entry
    store.add_texts(["b"], ids=["b"])
    with pytest.raises(quanta.InvalidArgumentError, match="NaN"):
        store.add_embeddings([("b2", [float("nan")] * 32)], ids=["b"])
    assert store.get_by_ids(["b"])[0].page_content == "b"


def test_concurrent_adds_and_searches() -> None:
    """Searches, upserts and deletes from several threads: no borrow errors, nothing lost."""
    import concurrent.futures as cf

    store = QuantaVectorStore(_emb(), "IVF4,Flat")
    store.add_texts(TEXTS[:200], METAS[:200], ids=IDS[:200])

    def work(t: int) -> None:
        for j in range(20):
            store.similarity_search(TEXTS[j], k=3, nprobe=2)
            store.add_texts([f"thread {t} text {j}"], ids=[f"t{t}-{j}"])
            if j % 2:
                store.delete([f"t{t}-{j - 1}"])

    with cf.ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert store.ntotal == store.index.ntotal == 200 + 4 * 10  # type: ignore[union-attr]


async def test_async_variants_use_the_async_embeddings(flat_store: QuantaVectorStore) -> None:
    import asyncio

    got = await asyncio.gather(
        *(flat_store.asimilarity_search(q, k=4) for q in ["package 1", "package 2"]),
        flat_store.aadd_texts(["async text"], ids=["a1"]),
    )
    assert [d.id for d in got[0]] == _exact_ids(flat_store, "package 1", 4)
    assert (
        got[2] == ["a1"] and (await flat_store.aget_by_ids(["a1"]))[0].page_content == "async text"
    )
    mmr = await flat_store.amax_marginal_relevance_search("package 1", k=3)
    assert len(mmr) == 3
    await flat_store.adelete(["a1"])
    assert await flat_store.aget_by_ids(["a1"]) == []
