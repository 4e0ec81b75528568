"""KMeans: recovery, objective, determinism, options, assign, weights, warnings, progress."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import quanta
from _support import all_distances, nearest_centroid_objective, num_threads
from hypothesis import given
from hypothesis import strategies as st
from quanta import _core

# small fits trigger faiss's "consider at least k*39 points" advice; it is not under test here
pytestmark = pytest.mark.filterwarnings("ignore:.*training points for.*:UserWarning")


def blobs(
    seed: int, k: int = 8, n_per: int = 100, d: int = 8, spread: float = 30.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``k`` unit-variance Gaussian blobs whose centres are ~``spread`` apart."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-spread, spread, (k, d))
    labels = np.repeat(np.arange(k), n_per)
    x = centers[labels] + rng.standard_normal((k * n_per, d))
    return x.astype(np.float32), centers, labels


def assert_recovered(
    km: quanta.KMeans, x: np.ndarray, centers: np.ndarray, labels: np.ndarray
) -> None:
    assert km.centroids is not None
    # every true centre has a centroid close by (mean of ~100 unit Gaussians: error ~0.1/dim)
    gap = np.sqrt(all_distances(km.centroids, centers, "l2").min(axis=1))
    assert gap.max() < 0.6, gap
    # and the partition is the true one, up to a relabelling
    _, assigned = km.assign(x)
    for c in range(len(centers)):
        assert np.unique(assigned[labels == c]).size == 1
    assert np.unique(assigned).size == len(centers)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blobs_recovered_kmeanspp(seed: int) -> None:
    x, centers, labels = blobs(seed)
    km = quanta.KMeans(8, 8, niter=20, seed=seed, init="kmeans++").fit(x)
    assert_recovered(km, x, centers, labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blobs_recovered_random_init_with_redo(seed: int) -> None:
    x, centers, labels = blobs(seed, k=3, n_per=200)
    km = quanta.KMeans(8, 3, niter=20, seed=seed, n_redo=5).fit(x)
    assert_recovered(km, x, centers, labels)


@pytest.mark.parametrize(("niter", "n_redo"), [(1, 1), (7, 1), (5, 3), (25, 2)])
def test_obj_length(niter: int, n_redo: int) -> None:
    x, _, _ = blobs(3, k=4, n_per=100)
    km = quanta.KMeans(8, 4, niter=niter, n_redo=n_redo).fit(x)
    assert km.obj.shape == (niter * n_redo,)
    assert km.obj.dtype == np.float64
    assert np.isfinite(km.obj).all() and (km.obj >= 0).all()


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 12), n_redo=st.integers(1, 2))
def test_obj_non_increasing_without_splits(seed: int, k: int, n_redo: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((500, 6)).astype(np.float32) * rng.uniform(0.5, 3, 6).astype(np.float32)
    niter = 12
    km = quanta.KMeans(6, k, niter=niter, seed=seed % 1000, n_redo=n_redo).fit(x)
    if km.nsplit != 0:
        return  # a split moves a centroid and may raise the objective
    for r in range(n_redo):
        run = km.obj[r * niter : (r + 1) * niter]
        # Lloyd steps never increase the objective; allow float32 summation noise only
        assert (np.diff(run) <= 1e-6 * run[:-1]).all(), run


def test_final_objective_matches_centroids() -> None:
    """``obj[-1]`` is the objective *before* the last update, so it bounds the final one."""
    x, _, _ = blobs(4, k=5)
    km = quanta.KMeans(8, 5, niter=10).fit(x)
    final = nearest_centroid_objective(x, km.centroids)
    assert final <= km.obj[-1] * (1 + 1e-5)
    dist, _ = km.assign(x)
    assert dist.astype(np.float64).sum() == pytest.approx(final, rel=1e-4)


def test_same_seed_identical() -> None:
    x, _, _ = blobs(5, k=6, n_per=200, d=16)
    a = quanta.KMeans(16, 6, niter=10, seed=42).fit(x)
    b = quanta.KMeans(16, 6, niter=10, seed=42).fit(x)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.obj, b.obj)
    assert a.nsplit == b.nsplit


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"init": "kmeans++"},
        {"n_redo": 2},
        {"spherical": True},
        {"max_points_per_centroid": 50},  # subsampling is seeded too
        {"use_bounds": False},
        {"candidates": 2},  # k = 32 >= 16 * 2: candidate lists in use
    ],
    ids=["random", "kmeans++", "redo", "spherical", "subsample", "no-bounds", "candidates"],
)
@pytest.mark.filterwarnings("ignore:sampling:UserWarning")
def test_identical_across_thread_counts(kwargs: dict) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5000, 20)).astype(np.float32)
    runs = []
    for n in (1, 2):
        with num_threads(n):
            km = quanta.KMeans(20, 32, niter=8, seed=7, **kwargs).fit(x)
            runs.append((km.centroids, km.obj, km.nsplit, km.assign(x)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
    np.testing.assert_array_equal(runs[0][3][0], runs[1][3][0])
    np.testing.assert_array_equal(runs[0][3][1], runs[1][3][1])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"init": "kmeans++"}, {"spherical": True}, {"n_redo": 2}],
    ids=["random", "kmeans++", "spherical", "redo"],
)
def test_bounds_give_plain_lloyd_result(kwargs: dict) -> None:
    """``use_bounds`` only skips provably unchanged assignments: same clustering as plain Lloyd."""
    ds = quanta.datasets.load_demo()
    a = quanta.KMeans(ds.d, 48, niter=15, seed=3, use_bounds=True, **kwargs).fit(ds.base)
    b = quanta.KMeans(ds.d, 48, niter=15, seed=3, use_bounds=False, **kwargs).fit(ds.base)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.obj, b.obj, rtol=1e-6)
    assert a.nsplit == b.nsplit
    np.testing.assert_array_equal(a.assign(ds.base)[1], b.assign(ds.base)[1])


@pytest.mark.filterwarnings("ignore:sampling:UserWarning")
@given(
    n=st.integers(20, 400),
    k=st.integers(1, 20),
    d=st.integers(1, 10),
    seed=st.integers(0, 2**31 - 1),
)
def test_bounds_match_plain_lloyd_random_shapes(n: int, k: int, d: int, seed: int) -> None:
    k = min(k, n)
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    a = quanta.KMeans(d, k, niter=8, seed=seed % 997, use_bounds=True).fit(x)
    b = quanta.KMeans(d, k, niter=8, seed=seed % 997, use_bounds=False).fit(x)
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=1e-5, atol=1e-5)
    # the bound path reports exact ||x - c||², plain Lloyd ||x||² + ||c||² - 2<x, c>: the latter's
    # absolute rounding grows with the norms, not with the (here tiny, k ~ n) objective
    scale = float((x.astype(np.float64) ** 2).sum())
    np.testing.assert_allclose(a.obj, b.obj, rtol=1e-5, atol=1e-6 * scale)


def test_different_seed_differs() -> None:
    x = np.random.default_rng(8).standard_normal((2000, 8)).astype(np.float32)
    ref = quanta.KMeans(8, 16, niter=5, seed=0).fit(x).centroids
    others = [quanta.KMeans(8, 16, niter=5, seed=s).fit(x).centroids for s in (1, 2, 3)]
    assert sum(not np.array_equal(ref, o) for o in others) >= 2


def test_kmeanspp_beats_random_on_blobs() -> None:
    obj = {"random": [], "kmeans++": []}
    for seed in range(8):
        x, _, _ = blobs(seed)
        for init in obj:
            km = quanta.KMeans(8, 8, niter=10, seed=seed, init=init).fit(x)
            obj[init].append(nearest_centroid_objective(x, km.centroids))
    assert np.mean(obj["kmeans++"]) <= np.mean(obj["random"])


def test_kmeanspp_seeds_are_data_points() -> None:
    """With one iteration, k-means++ seeding then one update: centroids stay within the data."""
    x, _, _ = blobs(9, k=4)
    km = quanta.KMeans(8, 4, niter=1, init="kmeans++").fit(x)
    assert km.centroids.shape == (4, 8)
    assert np.isfinite(km.centroids).all()
    assert (km.centroids >= x.min(0) - 1e-4).all() and (km.centroids <= x.max(0) + 1e-4).all()


def test_spherical_unit_norm() -> None:
    x, _, _ = blobs(10, k=5)
    km = quanta.KMeans(8, 5, niter=10, spherical=True).fit(x)
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1.0, rtol=1e-5)


@given(
    n=st.integers(1, 200),
    k=st.integers(1, 20),
    d=st.integers(1, 12),
    hi=st.sampled_from([1, 2, 50]),
    seed=st.integers(0, 2**31 - 1),
)
def test_assign_matches_numpy_argmin(n: int, k: int, d: int, hi: int, seed: int) -> None:
    """Integer-valued data and centroids: distances exact, ties go to the lowest centroid."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-hi, hi + 1, (n, d)).astype(np.float32)
    c = rng.integers(-hi, hi + 1, (k, d)).astype(np.float32)
    if k > 1:
        c[k - 1] = c[0]  # a duplicated centroid: must never win over its lower twin
    dist, labels = _core.assign_nearest(x, c)
    ref = all_distances(c, x, "l2")
    assert dist.dtype == np.float32 and labels.dtype == np.int64
    assert dist.shape == labels.shape == (n,)
    np.testing.assert_array_equal(labels, ref.argmin(axis=1))  # argmin: first minimum
    np.testing.assert_array_equal(dist, ref.min(axis=1).astype(np.float32))


def test_assign_public_api() -> None:
    x, _, _ = blobs(11, k=4, d=8)
    km = quanta.KMeans(8, 4, niter=5).fit(x)
    dist, labels = km.assign(x)
    assert dist.dtype == np.float32 and labels.dtype == np.int64
    ref = all_distances(km.centroids, x, "l2")
    np.testing.assert_array_equal(labels, ref.argmin(axis=1))
    np.testing.assert_allclose(dist, ref.min(axis=1), rtol=1e-4, atol=1e-3)
    d1, l1 = km.assign(x[3])  # one vector
    assert d1.shape == l1.shape == (1,) and l1[0] == labels[3]


def test_n_equals_k_returns_the_points() -> None:
    x = np.random.default_rng(12).standard_normal((30, 5)).astype(np.float32)
    x[17] = x[4]  # duplicates allowed
    km = quanta.KMeans(5, 30, niter=10).fit(x)
    np.testing.assert_array_equal(np.sort(km.centroids, axis=0), np.sort(x, axis=0))
    assert {tuple(r) for r in km.centroids} == {tuple(r) for r in x}
    dist, labels = km.assign(x)
    np.testing.assert_allclose(dist, 0, atol=1e-4)  # float32 ||x||^2 - 2x.c + ||c||^2 rounding
    # each point maps to a centroid equal to it; the duplicate pair maps to one (the lower) id
    np.testing.assert_array_equal(km.centroids[labels], x)
    assert labels[4] == labels[17]


def test_weighted_single_cluster_is_weighted_mean() -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((200, 7)).astype(np.float32) * 5 + 2
    w = rng.uniform(0, 3, 200).astype(np.float32)
    w[:10] = 0  # zero weights are allowed
    km = quanta.KMeans(7, 1, niter=3).fit(x, weights=w)
    ref = (x.astype(np.float64) * w[:, None]).sum(0) / w.astype(np.float64).sum()
    np.testing.assert_allclose(km.centroids[0], ref, rtol=1e-4, atol=1e-4)
    unweighted = quanta.KMeans(7, 1, niter=3).fit(x)
    np.testing.assert_allclose(unweighted.centroids[0], x.astype(np.float64).mean(0), atol=1e-4)


def test_weights_pull_centroids() -> None:
    """Two clusters; heavy weight on one point drags its cluster's centroid onto it."""
    x, _, _ = blobs(14, k=2, n_per=100)
    w = np.ones(200, dtype=np.float32)
    w[0] = 1e6
    km = quanta.KMeans(8, 2, niter=10, init="kmeans++").fit(x, weights=w)
    _, lab = km.assign(x[:1])
    np.testing.assert_allclose(km.centroids[lab[0]], x[0], atol=1e-2)


def test_subsampling_warning() -> None:
    x = np.random.default_rng(15).standard_normal((1000, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="sampling"):
        km = quanta.KMeans(4, 4, niter=3, max_points_per_centroid=50).fit(x)
    assert km.centroids.shape == (4, 4)
    # at the limit: no subsampling warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quanta.KMeans(4, 4, niter=3, max_points_per_centroid=250).fit(x)


def test_int_centroids() -> None:
    x = np.random.default_rng(16).integers(0, 256, (500, 8)).astype(np.float32)
    km = quanta.KMeans(8, 4, niter=5, int_centroids=True).fit(x)
    np.testing.assert_array_equal(km.centroids, np.round(km.centroids))


def test_verbose_progress_writes_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    x, _, _ = blobs(17, k=4)
    km = quanta.KMeans(8, 4, niter=6, verbose=True).fit(x)
    assert km.centroids is not None
    err = capsys.readouterr().err
    assert "k-means" in err


def test_progress_callback_and_errors() -> None:
    x = np.random.default_rng(18).standard_normal((3000, 8)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    _core.kmeans_train(x, 8, niter=4, progress=lambda done, total: calls.append((done, total)))
    assert calls, "progress is reported at least once, at the end"
    assert all(0 <= d <= t for d, t in calls)
    assert calls[-1][0] == calls[-1][1]

    def boom(done: int, total: int) -> None:
        raise RuntimeError("boom from callback")

    with pytest.raises(RuntimeError, match="boom from callback"):
        _core.kmeans_train(x, 8, niter=4, progress=boom)
    # the pool is still usable afterwards
    assert _core.kmeans_train(x, 8, niter=2)[0].shape == (8, 8)


def test_train_alias_and_repr() -> None:
    x, _, _ = blobs(19, k=3)
    km = quanta.KMeans(8, 3, niter=2)
    assert "untrained" in repr(km)
    assert km.train(x) is km
    assert "trained" in repr(km) and "untrained" not in repr(km)


def test_candidate_lists_close_to_plain_lloyd() -> None:
    """Candidate lists (the default from k = 256) cost at most a hair of objective."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((20000, 32)).astype(np.float32)
    fast = quanta.KMeans(32, 256, niter=12, seed=5, candidates=16).fit(x)
    plain = quanta.KMeans(32, 256, niter=12, seed=5, candidates=0).fit(x)
    # the first two iterations are full searches from the same centroids
    np.testing.assert_allclose(fast.obj[:2], plain.obj[:2], rtol=1e-6)
    assert not np.array_equal(fast.centroids, plain.centroids)  # the lists were used
    obj_fast = float(fast.assign(x)[0].astype(np.float64).sum())
    obj_plain = float(plain.assign(x)[0].astype(np.float64).sum())
    assert obj_fast <= obj_plain * 1.005
    # the reported objective is the exact cost of the assignment made (never flattering)
    assert fast.obj[-1] >= obj_fast * (1 - 1e-5)


def test_candidates_validated() -> None:
    x = np.random.default_rng(0).standard_normal((300, 20)).astype(np.float32)
    with pytest.raises(quanta.InvalidArgumentError, match="candidates"):
        quanta.KMeans(20, 8, candidates=-1).fit(x)
