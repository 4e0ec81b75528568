"""LangChain's own FAISS store (``langchain_community.vectorstores.FAISS``) with ``quanta.faiss``
standing in for faiss: every operation the migration issue lists gives the documents the store
gives on faiss-cpu (exact index, so the same ids up to ties; the fake embeddings have none)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("faiss")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    lc_faiss = pytest.importorskip("langchain_community.vectorstores.faiss")

import faiss as real_faiss
import quanta.faiss
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.embeddings import DeterministicFakeEmbedding

TEXTS = [f"document number {i} about topic {i % 7}" for i in range(120)]
METAS = [{"i": i, "group": i % 3} for i in range(120)]
QUERIES = ["document number 5", "topic 3", "something else entirely", "number 77"]


@pytest.fixture()
def use_backend(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    def use(module: Any) -> None:
        monkeypatch.setattr(lc_faiss, "dependable_faiss_import", lambda no_avx2=None: module)

    return use


def _run(use: Callable[[Any], None], backend: Any, tmp: Path, **store_kw: Any) -> list[Any]:
    """Every operation, on one backend; returns what a user would see at each step."""
    use(backend)
    emb = DeterministicFakeEmbedding(size=32)
    FAISS = lc_faiss.FAISS
    store = FAISS.from_texts(
        TEXTS, emb, metadatas=METAS, ids=[f"d{i}" for i in range(120)], **store_kw
    )
    seen: list[Any] = []

    def docs(found: list[Any]) -> list[Any]:
        return [(d.id, d.page_content, d.metadata) for d in found]

    for q in QUERIES:
        seen.append(docs(store.similarity_search(q, k=5)))
        scored = store.similarity_search_with_score(q, k=5)
        seen.append([d.id for d, _ in scored])
        # float32 sums in another order: equal to a few ulps, compared with a tolerance
        seen.append(("scores", [float(s) for _, s in scored]))
        seen.append(docs(store.similarity_search(q, k=4, filter={"group": 1})))
        seen.append(docs(store.max_marginal_relevance_search(q, k=4, fetch_k=12)))
    store.delete(["d5", "d6", "d77"])
    seen.append(docs(store.similarity_search(QUERIES[0], k=5)))
    other = FAISS.from_texts(
        ["merged text one", "merged text two"], emb, ids=["m1", "m2"], **store_kw
    )
    store.merge_from(other)
    seen.append(docs(store.similarity_search("merged text two", k=3)))
    store.save_local(str(tmp / backend.__name__))
    loaded = FAISS.load_local(
        str(tmp / backend.__name__), emb, allow_dangerous_deserialization=True, **store_kw
    )
    seen.append(docs(loaded.similarity_search(QUERIES[1], k=5)))
    again = FAISS.deserialize_from_bytes(
        store.serialize_to_bytes(), emb, allow_dangerous_deserialization=True, **store_kw
    )
    seen.append(docs(again.similarity_search(QUERIES[3], k=5)))
    seen.append(docs(again.get_by_ids(["d1", "m2", "d5"])))
    seen.append(loaded.index.ntotal)
    return seen


@pytest.mark.parametrize(
    "store_kw",
    [
        {},
        {"normalize_L2": True},
        {"distance_strategy": DistanceStrategy.MAX_INNER_PRODUCT},
    ],
    ids=["l2", "l2-normalized", "inner-product"],
)
def test_langchain_faiss_store_on_quanta_faiss(
    use_backend: Callable[[Any], None], tmp_path: Path, store_kw: dict[str, Any]
) -> None:
    expected = _run(use_backend, real_faiss, tmp_path, **store_kw)
    got = _run(use_backend, quanta.faiss, tmp_path, **store_kw)
    assert len(got) == len(expected)
    for step, (g, e) in enumerate(zip(got, expected)):
        if isinstance(e, tuple) and e[0] == "scores":
            assert g[1] == pytest.approx(e[1], rel=1e-5, abs=1e-5), f"step {step} differs"
        else:
            assert g == e, f"step {step} differs"
