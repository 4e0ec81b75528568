"""quanta.index_factory: every grammar entry builds the right index; bad strings fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import quanta
from _support import brute_force

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3000, 32)).astype(np.float32)


@pytest.mark.parametrize(
    ("desc", "cls"),
    [
        ("Flat", quanta.IndexFlat),
        ("PQ8", quanta.IndexPQ),
        ("PQ8x6", quanta.IndexPQ),
        ("IVF16,Flat", quanta.IndexIVFFlat),
        ("IVF16,PQ8", quanta.IndexIVFPQ),
        ("IVF16,PQ4x5", quanta.IndexIVFPQ),
        ("OPQ8,PQ8", quanta.IndexPreTransform),
        ("OPQ4_16,IVF8,PQ4", quanta.IndexPreTransform),
        ("IVF16,PQ8,RFlat", quanta.IndexRefineFlat),
        ("IVF16,PQ8x4fs", quanta.IndexIVFPQFastScan),
        ("IVF16,PQ8x4fs,RFlat", quanta.IndexRefineFlat),
        ("SQ8", quanta.IndexScalarQuantizer),
        ("SQ4", quanta.IndexScalarQuantizer),
        ("SQfp16", quanta.IndexScalarQuantizer),
        ("SQbf16", quanta.IndexScalarQuantizer),
        ("SQlm4", quanta.IndexScalarQuantizer),
        ("OPQ8,SQ8", quanta.IndexPreTransform),
        ("SQlm3,RFlat", quanta.IndexRefineFlat),
    ],
)
def test_factory_builds_and_searches(x: np.ndarray, desc: str, cls: type) -> None:
    index = quanta.index_factory(32, desc)
    assert isinstance(index, cls)
    index.train(x)
    index.add(x)
    assert index.ntotal == len(x)
    D, ids = index.search(x[:5], 3)
    assert ids.shape == (5, 3) and D.dtype == np.float32
    # each vector's own id is usually its nearest neighbour
    assert (ids[:, 0] == np.arange(5)).mean() >= 0.6


def test_factory_parameters() -> None:
    ivf = quanta.index_factory(32, "IVF64,PQ8x6", metric="ip")
    assert (ivf.nlist, ivf.M, ivf.nbits, ivf.metric) == (64, 8, 6, "ip")
    opq = quanta.index_factory(32, "OPQ4_16,IVF8,PQ4")
    assert opq.transform.d_out == 16 and opq.index.d == 16
    assert quanta.index_factory(64, "BFlat").nbits == 64
    for suffix, qtype in [("8", "8bit"), ("4", "4bit"), ("fp16", "fp16"), ("bf16", "bf16")]:
        sq = quanta.index_factory(32, "SQ" + suffix, metric="ip")
        assert (sq.qtype, sq.metric) == (qtype, "ip")
    for b in (2, 3, 4):
        assert quanta.index_factory(32, f"SQlm{b}").code_size == 32 * b // 8 + 8
    assert quanta.index_factory(32, "OPQ8,SQfp16").index.qtype == "fp16"


def test_refine_reranks_exactly(x: np.ndarray) -> None:
    index = quanta.index_factory(32, "PQ4,RFlat")
    index.train(x)
    index.add(x)
    q = x[:20] + 0.01
    D, ids = index.search(q, 5, k_factor=600)  # k * k_factor = base: exact search
    Dr, Ir = brute_force(x, q, 5)
    np.testing.assert_array_equal(ids, Ir)
    np.testing.assert_allclose(D, Dr, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "desc",
    [
        "",
        "IVF",
        "IVF16",
        "PQ",
        "PQ8y4",
        "IVF16,HNSW",
        "OPQ8",
        "Flat,Flat",
        "LSH",
        "SQ",
        "SQ6",
        "SQlm5",
    ],
)
def test_unknown_strings_list_the_grammar(desc: str) -> None:
    with pytest.raises(ValueError, match="grammar"):
        quanta.index_factory(32, desc)


def test_fast_scan_entries(x: np.ndarray) -> None:
    assert isinstance(quanta.index_factory(32, "PQ8x4fs"), quanta.IndexPQFastScan)
    ivf = quanta.index_factory(32, "IVF16,PQ8x4fs", metric="ip")
    assert isinstance(ivf, quanta.IndexIVFPQFastScan) and ivf.metric == "ip"
    with pytest.raises(quanta.InvalidArgumentError, match="4-bit"):
        quanta.index_factory(32, "PQ8x6fs")
