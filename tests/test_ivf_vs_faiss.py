"""IndexIVFPQ / IndexIVFFlat against faiss-cpu at equal nlist / M / nbits / nprobe.

Fair comparison: the coarse centroids and PQ codebooks faiss trained are loaded into quanta
(``from_parts`` / ``from_centroids``), so both encode and search with the same quantizers; the
per-query 10-recall@10 must agree (two-sided paired test, ``_support``: a tolerance derived
from how many queries differ, the same on every CPU). Trained-vs-trained recall (each library's
own k-means, different random streams) must not be significantly worse (one-sided).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import assert_recall_equivalent, assert_recall_not_worse, overlap_at

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _dataset(name: str, nq: int) -> quanta.datasets.Dataset:
    ds = quanta.datasets.load(name)
    return dataclasses.replace(ds, queries=ds.queries[:nq], gt=ds.gt[:nq])


@pytest.fixture(scope="module")
def sift(shared_data: Path) -> quanta.datasets.Dataset:
    return _dataset("sift_tiledb10k", 1000)


@pytest.fixture(scope="module")
def fmnist(shared_data: Path) -> quanta.datasets.Dataset:
    return _dataset("fashion-mnist", 500)


def _ivfpq_vs_faiss(ds: quanta.datasets.Dataset, nlist: int, M: int, nbits: int) -> None:
    d = ds.d
    ref = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, nlist, M, nbits)
    ref.train(ds.base)
    ref.add(ds.base)
    coarse = ref.quantizer.reconstruct_n(0, nlist)
    ksub = 1 << nbits
    cb = faiss.vector_to_array(ref.pq.centroids).reshape(M, ksub, d // M)
    ours = quanta.IndexIVFPQ.from_parts(coarse, quanta.ProductQuantizer.from_centroids(cb))
    ours.add(ds.base)
    own = quanta.IndexIVFPQ(d, nlist, M, nbits)
    own.train(ds.base)
    own.add(ds.base)
    np.testing.assert_array_equal(
        ours.invlists.sizes, [ref.invlists.list_size(i) for i in range(nlist)]
    )
    for nprobe in (1, 4, 16):
        ref.nprobe = nprobe
        _, Iref = ref.search(ds.queries, 10)
        _, Iq = ours.search(ds.queries, 10, nprobe=nprobe)
        _, Io = own.search(ds.queries, 10, nprobe=nprobe)
        r_ref, r_q, r_own = (overlap_at(i, ds.gt, 10) for i in (Iref, Iq, Io))
        assert_recall_equivalent([r_q], [r_ref], f"same quantizers, nprobe={nprobe}")
        assert_recall_not_worse([r_own], [r_ref], f"own training, nprobe={nprobe}")
        # same quantizers: the same neighbours, up to float rounding at near-ties
        assert (Iq == Iref).mean() > 0.97, nprobe


def test_ivfpq_sift(sift: quanta.datasets.Dataset) -> None:
    _ivfpq_vs_faiss(sift, 64, 16, 8)


def test_ivfpq_sift_6bit(sift: quanta.datasets.Dataset) -> None:
    # faiss packs 6-bit codes, quanta stores one byte each: same codebooks, same recall
    _ivfpq_vs_faiss(sift, 32, 8, 6)


@pytest.mark.slow  # 784-d training: 3 min at QUANTA_SIMD=scalar, so the full pass only
def test_ivfpq_fashion_mnist(fmnist: quanta.datasets.Dataset) -> None:
    _ivfpq_vs_faiss(fmnist, 64, 16, 8)


@pytest.mark.parametrize(
    "name",
    ["sift", pytest.param("fmnist", marks=pytest.mark.slow)],  # 784-d: full pass only
)
def test_ivfflat(name: str, request: pytest.FixtureRequest) -> None:
    ds: quanta.datasets.Dataset = request.getfixturevalue(name)
    nlist = 64
    ref = faiss.IndexIVFFlat(faiss.IndexFlatL2(ds.d), ds.d, nlist)
    ref.train(ds.base)
    ref.add(ds.base)
    ours = quanta.IndexIVFFlat.from_centroids(ref.quantizer.reconstruct_n(0, nlist))
    ours.add(ds.base)
    own = quanta.IndexIVFFlat(ds.d, nlist)
    own.train(ds.base)
    own.add(ds.base)
    for nprobe in (1, 4):
        ref.nprobe = nprobe
        _, Iref = ref.search(ds.queries, 10)
        _, Iq = ours.search(ds.queries, 10, nprobe=nprobe)
        _, Io = own.search(ds.queries, 10, nprobe=nprobe)
        r_ref = overlap_at(Iref, ds.gt, 10)
        assert_recall_equivalent([overlap_at(Iq, ds.gt, 10)], [r_ref], f"nprobe={nprobe}")
        assert_recall_not_worse([overlap_at(Io, ds.gt, 10)], [r_ref], f"own, nprobe={nprobe}")


def test_ivfpq_fastscan_sift(sift: quanta.datasets.Dataset) -> None:
    """faiss IndexIVFPQFastScan (no re-ranking) vs quanta with k_factor=1 and 4, same
    quantizers: equivalent per-query recall at k_factor=1, not worse at k_factor=4."""
    d, nlist, M = sift.d, 64, 32
    ref = faiss.IndexIVFPQFastScan(faiss.IndexFlatL2(d), d, nlist, M, 4)
    ref.train(sift.base)
    ref.add(sift.base)
    coarse = ref.quantizer.reconstruct_n(0, nlist)
    cb = faiss.vector_to_array(ref.pq.centroids).reshape(M, 16, d // M)
    # faiss trains this index's PQ on the vectors or the residuals depending on its
    # by_residual default: encode the same way
    ours = quanta.IndexIVFPQFastScan.from_parts(
        coarse, quanta.ProductQuantizer.from_centroids(cb), by_residual=bool(ref.by_residual)
    )
    ours.add(sift.base)
    for nprobe in (1, 4, 16):
        ref.nprobe = nprobe
        _, Iref = ref.search(sift.queries, 10)
        r_ref = overlap_at(Iref, sift.gt, 10)
        ours.k_factor = 1
        r1 = overlap_at(ours.search(sift.queries, 10, nprobe=nprobe)[1], sift.gt, 10)
        ours.k_factor = 4
        r4 = overlap_at(ours.search(sift.queries, 10, nprobe=nprobe)[1], sift.gt, 10)
        assert_recall_equivalent([r1], [r_ref], f"k_factor=1, nprobe={nprobe}")
        assert_recall_not_worse([r4], [r_ref], f"k_factor=4, nprobe={nprobe}")
