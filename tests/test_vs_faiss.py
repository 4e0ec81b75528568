"""quanta against faiss-cpu on the same data: IndexFlat results and k-means objectives."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import all_distances, assert_knn_equivalent, nearest_centroid_objective

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    """faiss's OpenMP threads and quanta's pool would fight over the same (2 CI) cores."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def demo() -> quanta.datasets.Dataset:
    return quanta.datasets.load_demo()


@pytest.fixture(scope="module")
def sift10k(shared_data: Path) -> quanta.datasets.Dataset:
    return quanta.datasets.load("sift_tiledb10k")


def _flat_vs_faiss(ds: quanta.datasets.Dataset, metric: str, k: int) -> None:
    index = quanta.IndexFlat(ds.d, metric)
    index.add(ds.base)
    D, ids = index.search(ds.queries, k)
    ref = faiss.IndexFlatL2(ds.d) if metric == "l2" else faiss.IndexFlatIP(ds.d)
    ref.add(ds.base)
    Dref, Iref = ref.search(ds.queries, k)
    assert D.dtype == Dref.dtype and ids.dtype == Iref.dtype
    assert_knn_equivalent(D, ids, Dref, Iref, rtol=1e-3)
    # where the two differ (tie groups cut by k), quanta's ids really are at its distances
    exact = all_distances(ds.base, ds.queries, metric)
    np.testing.assert_array_equal(D, np.take_along_axis(exact, ids, axis=1).astype(np.float32))


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_flat_demo(demo: quanta.datasets.Dataset, metric: str) -> None:
    _flat_vs_faiss(demo, metric, 100)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_flat_sift10k(sift10k: quanta.datasets.Dataset, metric: str) -> None:
    _flat_vs_faiss(sift10k, metric, 100)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_flat_random_float(metric: str) -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((5000, 48)).astype(np.float32)
    xq = rng.standard_normal((200, 48)).astype(np.float32)
    index = quanta.IndexFlat(48, metric)
    index.add(xb)
    D, ids = index.search(xq, 20)
    ref = faiss.IndexFlatL2(48) if metric == "l2" else faiss.IndexFlatIP(48)
    ref.add(xb)
    Dref, Iref = ref.search(xq, 20)
    np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=1e-4)
    # continuous data: no exact ties, so the ids agree except where float32 rounding swaps two
    # neighbours whose distances differ by less than the rounding error
    assert (ids == Iref).mean() > 0.995


def _kmeans_vs_faiss(x: np.ndarray, k: int, niter: int, seed: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = quanta.KMeans(x.shape[1], k, niter=niter, seed=seed).fit(x)
    ref = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed)
    ref.train(x)
    ours = nearest_centroid_objective(x, km.centroids)
    theirs = nearest_centroid_objective(x, ref.centroids)
    assert ours <= theirs * 1.01, (ours, theirs, ours / theirs)
    assert ours >= theirs * 0.99, (ours, theirs, ours / theirs)


@pytest.mark.parametrize("seed", [1234, 1])
def test_kmeans_demo(demo: quanta.datasets.Dataset, seed: int) -> None:
    _kmeans_vs_faiss(demo.base, 64, 20, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1234, 1])
def test_kmeans_sift10k(sift10k: quanta.datasets.Dataset, seed: int) -> None:
    _kmeans_vs_faiss(sift10k.base, 64, 20, seed)


def test_kmeans_objective_reporting_like_faiss(demo: quanta.datasets.Dataset) -> None:
    """``obj`` follows faiss's convention: one entry per iteration, before each update."""
    km = quanta.KMeans(demo.d, 32, niter=10, seed=5).fit(demo.base)
    ref = faiss.Kmeans(demo.d, 32, niter=10, seed=5)
    ref.train(demo.base)
    assert km.obj.shape == (len(ref.obj),)
    np.testing.assert_allclose(km.obj[-1], ref.obj[-1], rtol=0.02)
