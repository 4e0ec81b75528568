"""IndexFlat (L2 and IP) against a float64 numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest
import quanta
from _support import (
    all_distances,
    assert_knn_close,
    assert_knn_equivalent,
    brute_force,
    num_threads,
    simd_level,
)
from hypothesis import given
from hypothesis import strategies as st

METRICS = ["l2", "ip"]


def int_data(rng: np.random.Generator, n: int, d: int, hi: int) -> np.ndarray:
    """Small integer-valued float32 data: every distance is exact in float32, ties are common."""
    return rng.integers(-hi, hi + 1, size=(n, d)).astype(np.float32)


@st.composite
def search_cases(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    n = draw(st.integers(1, 300))
    d = draw(st.integers(1, 40))
    nq = draw(st.integers(1, 20))
    k = draw(st.integers(1, n + 3))
    hi = draw(st.sampled_from([1, 3, 20]))
    seed = draw(st.integers(0, 2**32 - 1))
    return n, d, nq, k, hi, seed


@pytest.mark.parametrize("metric", METRICS)
@given(case=search_cases())
def test_matches_brute_force_exactly_on_integer_data(metric: str, case: tuple) -> None:
    n, d, nq, k, hi, seed = case
    rng = np.random.default_rng(seed)
    xb, xq = int_data(rng, n, d, hi), int_data(rng, nq, d, hi)
    # some queries equal to stored rows: exercises zero distances and exact ties
    xq[: min(nq, n) // 2] = xb[: min(nq, n) // 2]
    index = quanta.IndexFlat(d, metric)
    index.add(xb)
    D, ids = index.search(xq, k)
    Dref, Iref = brute_force(xb, xq, k, metric)
    assert D.dtype == np.float32 and ids.dtype == np.int64
    assert D.shape == ids.shape == (nq, k)
    # integer data: float32 arithmetic is exact, so distances and tie order must match exactly
    np.testing.assert_array_equal(D, Dref.astype(np.float32))
    np.testing.assert_array_equal(ids, Iref)


@pytest.mark.parametrize("metric", METRICS)
@given(case=search_cases())
def test_matches_brute_force_on_float_data(metric: str, case: tuple) -> None:
    n, d, nq, k, _, seed = case
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xq = rng.standard_normal((nq, d)).astype(np.float32)
    index = quanta.IndexFlat(d, metric)
    index.add(xb)
    D, ids = index.search(xq, k)
    dist = all_distances(xb, xq, metric)
    scale = float(
        (xb.astype(np.float64) ** 2).sum(1).max() + (xq.astype(np.float64) ** 2).sum(1).max()
    )
    assert_knn_close(D, ids, dist, k, metric, atol=1e-5 * scale)


def test_block_boundaries_exact() -> None:
    """Sizes that straddle any plausible GEMM / top-k tile boundary."""
    rng = np.random.default_rng(7)
    for n, nq, d in [(1025, 257, 33), (4097, 65, 17), (511, 1031, 129)]:
        xb, xq = int_data(rng, n, d, 4), int_data(rng, nq, d, 4)
        for metric in METRICS:
            index = quanta.IndexFlat(d, metric)
            index.add(xb)
            D, ids = index.search(xq, 13)
            Dref, Iref = brute_force(xb, xq, 13, metric)
            np.testing.assert_array_equal(D, Dref.astype(np.float32))
            np.testing.assert_array_equal(ids, Iref)


def test_duplicate_rows_ties_go_to_lower_id() -> None:
    a = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    b = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    xb = np.stack([b, a, b, a, a, b])  # a at ids 1, 3, 4; b at ids 0, 2, 5
    index = quanta.IndexFlatL2(3)
    index.add(xb)
    D, ids = index.search(a, 6)
    np.testing.assert_array_equal(ids, [[1, 3, 4, 0, 2, 5]])
    np.testing.assert_array_equal(D, [[0, 0, 0, 1, 1, 1]])
    # a cut through the middle of a tie group keeps the lowest ids
    _, ids = index.search(b, 2)
    np.testing.assert_array_equal(ids, [[0, 2]])

    ip = quanta.IndexFlatIP(3)
    ip.add(xb)
    D, ids = ip.search(np.array([[0.0, 0.0, 1.0]]), 6)
    np.testing.assert_array_equal(ids, [[0, 2, 5, 1, 3, 4]])
    np.testing.assert_array_equal(D, [[4, 4, 4, 3, 3, 3]])


@pytest.mark.parametrize("nq", [1, 5, 20, 32, 100])  # single-query and batched (GEMM) paths
@pytest.mark.parametrize("level", quanta.available_simd_levels())
def test_signed_zero_is_a_tie(nq: int, level: str) -> None:
    """0·(-1) = -0.0 and 0·1 = +0.0 are equal scores: the tie goes to the lower id."""
    xb = np.array([[1.0], [-1.0]] * 6, dtype=np.float32)  # 12 rows
    q = np.zeros((nq, 1), dtype=np.float32)
    with simd_level(level):
        index = quanta.IndexFlatIP(1)
        index.add(xb)
        D, ids = index.search(q, 12)
    np.testing.assert_array_equal(D, 0.0)
    np.testing.assert_array_equal(ids, np.tile(np.arange(12), (nq, 1)))


def test_many_equal_rows_tie_order_across_blocks() -> None:
    """3000 identical rows: every query sees one giant tie group, must get ids 0..k-1."""
    xb = np.ones((3000, 8), dtype=np.float32)
    for metric in METRICS:
        index = quanta.IndexFlat(8, metric)
        index.add(xb)
        _, ids = index.search(np.ones((5, 8)), 50)
        np.testing.assert_array_equal(ids, np.tile(np.arange(50), (5, 1)))


@pytest.mark.parametrize(("metric", "pad"), [("l2", np.inf), ("ip", -np.inf)])
def test_padding_when_k_exceeds_ntotal(metric: str, pad: float) -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((3, 5)).astype(np.float32)
    index = quanta.IndexFlat(5, metric)
    index.add(xb)
    D, ids = index.search(rng.standard_normal((4, 5)), 7)
    assert D.shape == ids.shape == (4, 7)
    assert (ids[:, 3:] == -1).all() and (D[:, 3:] == pad).all()
    assert (np.sort(ids[:, :3], axis=1) == np.arange(3)).all()
    assert np.isfinite(D[:, :3]).all()


@pytest.mark.parametrize(("metric", "pad"), [("l2", np.inf), ("ip", -np.inf)])
def test_search_on_empty_index(metric: str, pad: float) -> None:
    index = quanta.IndexFlat(4, metric)
    D, ids = index.search(np.ones((2, 4), dtype=np.float32), 3)
    assert D.shape == ids.shape == (2, 3)
    assert (ids == -1).all() and (D == pad).all()


def test_one_dimensional_query_is_one_query() -> None:
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((50, 6)).astype(np.float32)
    index = quanta.IndexFlatL2(6)
    index.add(xb)
    D1, I1 = index.search(xb[7], 4)
    D2, I2 = index.search(xb[7:8], 4)
    assert D1.shape == I1.shape == (1, 4)
    np.testing.assert_array_equal(D1, D2)
    np.testing.assert_array_equal(I1, I2)
    assert I1[0, 0] == 7 and D1[0, 0] == 0


@pytest.mark.parametrize("metric", METRICS)
def test_empty_query_batch(metric: str) -> None:
    index = quanta.IndexFlat(6, metric)
    index.add(np.ones((10, 6), dtype=np.float32))
    D, ids = index.search(np.zeros((0, 6), dtype=np.float32), 5)
    assert D.shape == ids.shape == (0, 5)
    assert D.dtype == np.float32 and ids.dtype == np.int64


def test_reconstruct_reset_ntotal_len() -> None:
    rng = np.random.default_rng(2)
    x1 = rng.standard_normal((20, 9)).astype(np.float32)
    x2 = rng.standard_normal((15, 9))  # float64: converted on add
    index = quanta.IndexFlatL2(9)
    assert index.ntotal == len(index) == 0
    assert index.d == 9 and index.metric == "l2" and index.is_trained
    assert index.reconstruct_n().shape == (0, 9)
    index.add(x1)
    index.add(x2)
    assert index.ntotal == len(index) == 35
    both = np.vstack([x1, x2.astype(np.float32)])
    for i in (0, 19, 20, 34):
        r = index.reconstruct(i)
        assert r.dtype == np.float32 and r.shape == (9,)
        np.testing.assert_array_equal(r, both[i])
    np.testing.assert_array_equal(index.reconstruct_n(), both)
    np.testing.assert_array_equal(index.reconstruct_n(5, 10), both[5:15])
    np.testing.assert_array_equal(index.reconstruct_n(30), both[30:])
    assert index.reconstruct_n(3, 0).shape == (0, 9)
    # ids continue across add() calls
    _, ids = index.search(x2[3], 1)
    assert ids[0, 0] == 23
    # reconstruct returns a copy, not a view of the storage
    r = index.reconstruct(0)
    r[:] = 1e6
    np.testing.assert_array_equal(index.reconstruct(0), x1[0])
    for bad in (35, -1):
        with pytest.raises(quanta.InvalidArgumentError):
            index.reconstruct(bad)
    with pytest.raises(quanta.InvalidArgumentError):
        index.reconstruct_n(30, 10)
    index.reset()
    assert index.ntotal == len(index) == 0
    D, ids = index.search(x1[:2], 3)
    assert (ids == -1).all() and (D == np.inf).all()
    index.add(x2)
    _, ids = index.search(x2[3], 1)
    assert ids[0, 0] == 3  # ids restart at 0 after reset
    assert "ntotal=15" in repr(index)


def test_factories() -> None:
    assert quanta.IndexFlatL2(3).metric == "l2"
    assert quanta.IndexFlatIP(3).metric == "ip"
    assert quanta.IndexFlat(3).metric == "l2"
    quanta.IndexFlatL2(3).train(np.ones((2, 3)))  # no-op, accepted


@pytest.mark.parametrize("metric", METRICS)
def test_results_identical_across_thread_counts(metric: str) -> None:
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((3000, 24)).astype(np.float32)
    xq = rng.standard_normal((300, 24)).astype(np.float32)
    results = []
    for n in (1, 2):
        with num_threads(n):
            assert quanta.get_num_threads() == n
            index = quanta.IndexFlat(24, metric)
            index.add(xb)
            results.append(index.search(xq, 20))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_demo_dataset_reproduces_ground_truth() -> None:
    ds = quanta.datasets.load_demo()
    index = quanta.IndexFlatL2(ds.d)
    index.add(ds.base)
    D, ids = index.search(ds.queries, 10)
    # SIFT values are integers, so the squared distances are exact in float32
    assert_knn_equivalent(D, ids, ds.gt_dist[:, :10], ds.gt[:, :10])
    np.testing.assert_array_equal(D, ds.gt_dist[:, :10])


@pytest.mark.parametrize("level", quanta.available_simd_levels())
def test_demo_dataset_every_simd_level(level: str) -> None:
    """Every SIMD level the CPU has must give the exact ground truth, for L2 and IP."""
    ds = quanta.datasets.load_demo()
    q = ds.queries[:100]
    with simd_level(level):
        assert quanta.simd_level() == level
        l2 = quanta.IndexFlatL2(ds.d)
        l2.add(ds.base)
        D, ids = l2.search(q, 10)
        ip = quanta.IndexFlatIP(ds.d)
        ip.add(ds.base)
        Dip, Iip = ip.search(q, 10)
    assert_knn_equivalent(D, ids, ds.gt_dist[:100, :10], ds.gt[:100, :10])
    Dref, Iref = brute_force(ds.base, q, 10, "ip")
    assert_knn_equivalent(Dip, Iip, Dref, Iref)
