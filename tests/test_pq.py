"""Product quantization: codec and IndexPQ against numpy oracles and against faiss-cpu."""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import quanta
from _support import assert_recall_equivalent, assert_recall_not_worse, hits_at
from hypothesis import given
from hypothesis import strategies as st

faiss = pytest.importorskip("faiss")


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _gauss(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _recall_at(ids: np.ndarray, gt1: np.ndarray, r: int) -> float:
    """The paper's recall@R: fraction of queries whose true nearest neighbour is in the top R."""
    return float((ids[:, :r] == gt1[:, None]).any(axis=1).mean())


# --------------------------------------------------------------------------- argument errors


def test_bad_parameters_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"valid M for d=10: \[1, 2, 5, 10\]"):
        quanta.ProductQuantizer(10, 3)
    with pytest.raises(quanta.QuantaError, match="nbits"):
        quanta.ProductQuantizer(8, 2, nbits=9)
    with pytest.raises(quanta.QuantaError, match="nbits"):
        quanta.IndexPQ(8, 2, nbits=0)
    with pytest.raises(quanta.QuantaError, match="metric"):
        quanta.IndexPQ(8, 2, metric="cosine")
    pq = quanta.ProductQuantizer(8, 2, 4)
    with pytest.raises(quanta.NotTrainedError):
        pq.encode(np.zeros((1, 8), np.float32))
    idx = quanta.IndexPQ(8, 2, 4)
    with pytest.raises(quanta.NotTrainedError):
        idx.add(np.zeros((1, 8), np.float32))
    with pytest.raises(quanta.NotTrainedError):
        idx.search(np.zeros((1, 8), np.float32), 1)
    with pytest.raises(quanta.InvalidArgumentError, match="fewer than ksub"):
        idx.train(_gauss(10, 8, 0))


def test_input_validation() -> None:
    x = _gauss(300, 8, 1)
    idx = quanta.IndexPQ(8, 2, 4)
    idx.train(x, niter=3)
    idx.add(x)
    with pytest.raises(quanta.ShapeError, match="queries has 7 columns"):
        idx.search(x[:, :7], 1)
    bad = x[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite.*row 1, column 3"):
        idx.search(bad, 1)
    with pytest.raises(quanta.InvalidArgumentError, match="k must be"):
        idx.search(x[:1], 0)
    with pytest.raises(quanta.InvalidArgumentError, match="mode"):
        idx.search(x[:1], 1, mode="xdc")
    with pytest.raises(quanta.InvalidArgumentError, match="L2 metric only"):
        ip = quanta.IndexPQ(8, 2, 4, metric="ip")
        ip.train(x, niter=2)
        ip.search(x[:1], 1, bias_correction=True)
    with pytest.raises(quanta.DTypeError, match="uint8"):
        idx.pq.decode(np.zeros((1, 2), np.int32))
    with pytest.raises(quanta.ShapeError):
        idx.pq.decode(np.zeros((1, 3), np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="not a valid 4-bit sub-code"):
        idx.pq.decode(np.array([[0, 16]], np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="not a valid 4-bit sub-code"):
        idx.add_codes(np.array([[200, 1]], np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="already holds codes"):
        idx.train(x)
    with pytest.raises(ValueError, match="out of range"):
        idx.reconstruct(10**6)


# --------------------------------------------------------------------------- codec properties


@given(
    M=st.sampled_from([1, 2, 4, 8]),
    nbits=st.integers(1, 8),
    n=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_encode_decode_shapes_and_tables(M: int, nbits: int, n: int, seed: int) -> None:
    d = 16
    ksub = 2**nbits
    rng = np.random.default_rng(seed)
    cent = rng.standard_normal((M, ksub, d // M)).astype(np.float32)
    pq = quanta.ProductQuantizer.from_centroids(cent)
    assert (pq.M, pq.ksub, pq.dsub, pq.nbits, pq.code_size) == (M, ksub, d // M, nbits, M)
    x = rng.standard_normal((n, d)).astype(np.float32)
    codes = pq.encode(x)
    assert codes.dtype == np.uint8 and codes.shape == (n, M)
    assert (codes < ksub).all()
    rec = pq.decode(codes)
    assert rec.dtype == np.float32 and rec.shape == (n, d)
    # brute-force nearest centroid per sub-vector (ties would allow either; none for Gaussians)
    sub = x.reshape(n, M, d // M)
    dist = ((sub[:, :, None, :] - cent[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(codes, dist.argmin(-1))
    # distance tables: summing a code's entries gives the decoded distance / inner product
    for metric in ("l2", "ip"):
        t = pq.compute_distance_tables(x, metric)
        assert t.shape == (n, M, ksub)
        est = np.take_along_axis(t, codes[:, :, None].astype(np.int64), axis=2).sum((1, 2))
        if metric == "l2":
            want = ((x - rec) ** 2).sum(1)
        else:
            want = (x * rec).sum(1)
        np.testing.assert_allclose(est, want, rtol=1e-4, atol=1e-4)
    sdc = pq.sdc_tables()
    assert sdc.shape == (M, ksub, ksub)
    np.testing.assert_allclose(sdc, ((cent[:, :, None] - cent[:, None]) ** 2).sum(-1), atol=1e-4)


@given(k=st.integers(1, 60), metric=st.sampled_from(["l2", "ip"]), nbits=st.sampled_from([3, 8]))
def test_index_search_equals_table_brute_force(k: int, metric: str, nbits: int) -> None:
    x = _gauss(400, 12, 5)
    q = _gauss(5, 12, 6)
    idx = quanta.IndexPQ(12, 3, nbits, metric)
    idx.train(x, niter=3)
    idx.add(x[:50])
    D, ids = idx.search(q, k)
    t = idx.pq.compute_distance_tables(q, metric)
    codes = idx.codes.astype(np.int64)
    est = np.stack([t[i][np.arange(3)[None, :], codes].sum(1) for i in range(len(q))])
    key = est if metric == "l2" else -est
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    kk = order.shape[1]
    np.testing.assert_allclose(D[:, :kk], np.take_along_axis(est, order, 1), rtol=1e-5, atol=1e-5)
    assert (ids[:, kk:] == -1).all()
    # every id is really at its reported distance, in order
    np.testing.assert_allclose(
        np.take_along_axis(est, ids[:, :kk], 1), D[:, :kk], rtol=1e-5, atol=1e-5
    )


def test_sdc_bias_and_reconstruct() -> None:
    x = _gauss(3000, 16, 7)
    idx = quanta.IndexPQ(16, 4, 8)
    idx.train(x, niter=5)
    idx.add(x[:1000])
    np.testing.assert_array_equal(idx.reconstruct(3), idx.pq.decode(idx.codes[3:4])[0])
    # bias terms = mean squared error of each centroid's training points
    pq = idx.pq
    codes = pq.encode(x)
    err = ((x - pq.decode(codes)).reshape(-1, 4, 4) ** 2).sum(-1)
    m, j = 2, int(codes[0, 2])
    np.testing.assert_allclose(pq.bias[m, j], err[codes[:, m] == j, m].mean(), rtol=1e-4)
    D0, _ = idx.search(x[:20], 5, mode="sdc")
    D1, _ = idx.search(x[:20], 5, mode="sdc", bias_correction=True)
    assert (D0[:, 0] == 0).all()  # the query's own code is at symmetric distance 0
    assert (D1 >= D0 - 1e-4).all()
    # bias-corrected ADC: on average closer to the true squared distance than plain ADC
    q = _gauss(50, 16, 8)
    Da, Ia = idx.search(q, 20)
    Db, Ib = idx.search(q, 20, bias_correction=True)
    true_a = ((q[:, None] - x[:1000][Ia]) ** 2).sum(-1)
    true_b = ((q[:, None] - x[:1000][Ib]) ** 2).sum(-1)
    assert abs((Db - true_b).mean()) < abs((Da - true_a).mean())
    idx.reset()
    assert idx.ntotal == 0 and idx.is_trained


def test_torch_and_float64_inputs() -> None:
    x = np.random.default_rng(9).standard_normal((500, 8))  # float64
    pq = quanta.ProductQuantizer(8, 4, 4)
    pq.train(x, niter=3)
    assert pq.encode(x[:3]).shape == (3, 4)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x[:3].astype(np.float32))
    np.testing.assert_array_equal(pq.encode(t), pq.encode(x[:3]))
    pq2 = quanta.ProductQuantizer.from_centroids(torch.from_numpy(pq.centroids))
    np.testing.assert_array_equal(pq2.centroids, pq.centroids)


# --------------------------------------------------------------------------- against faiss


def _faiss_pq(x: np.ndarray, M: int, niter: int = 25) -> object:
    ref = faiss.ProductQuantizer(x.shape[1], M, 8)
    ref.cp.niter = niter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.train(x)
    return ref


def _codes_match_faiss(ds: quanta.datasets.Dataset, M: int) -> None:
    ref = _faiss_pq(ds.base, M, niter=10)
    cent = faiss.vector_to_array(ref.centroids).reshape(M, 256, ds.d // M)
    pq = quanta.ProductQuantizer.from_centroids(cent)
    x = ds.queries
    codes, fcodes = pq.encode(x), ref.compute_codes(x)
    diff = np.argwhere(codes != fcodes)
    # differences allowed only where both centroids are at the same distance (up to rounding)
    for i, m in diff:
        sub = x[i, m * pq.dsub : (m + 1) * pq.dsub].astype(np.float64)
        da = ((sub - cent[m, codes[i, m]]) ** 2).sum()
        db = ((sub - cent[m, fcodes[i, m]]) ** 2).sum()
        assert abs(da - db) <= 1e-5 * max(da, 1.0), (i, m, da, db)
    assert len(diff) <= 1e-3 * codes.size
    # ADC distances through an index built on faiss's codes
    idx = quanta.IndexPQ.from_pq(pq)
    idx.add_codes(ref.compute_codes(ds.base))
    fidx = faiss.IndexPQ(ds.d, M, 8)
    fidx.pq = ref
    fidx.is_trained = True
    fidx.add(ds.base)
    D, ids = idx.search(x[:200], 10)
    Dref, Iref = fidx.search(x[:200], 10)
    np.testing.assert_allclose(D, Dref, rtol=1e-4)
    assert (ids == Iref).mean() > 0.99
    # the distance tables themselves
    t = pq.compute_distance_tables(x[:5])
    est = np.take_along_axis(t, idx.codes[Iref[:5, :1]].reshape(5, M, 1).astype(np.int64), 2)
    np.testing.assert_allclose(est.sum((1, 2)), Dref[:5, 0], rtol=1e-4)


@pytest.mark.slow
def test_codes_and_adc_match_faiss_sift(shared_data: Path) -> None:
    ds = quanta.datasets.load("sift_tiledb10k")
    for M in (8, 16, 32):
        _codes_match_faiss(ds, M)


@pytest.mark.slow
def test_codes_and_adc_match_faiss_fashion(shared_data: Path) -> None:
    ds = quanta.datasets.load("fashion-mnist")
    _codes_match_faiss(ds, 16)


def _hits_vs_faiss(
    ds: quanta.datasets.Dataset, M: int, nq: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    xq = ds.queries[:nq]
    gt1 = ds.gt[:nq, 0]
    idx = quanta.IndexPQ(ds.d, M, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx.train(ds.base, niter=25)
    idx.add(ds.base)
    _, ids = idx.search(xq, 100)
    fidx = faiss.IndexPQ(ds.d, M, 8)
    fidx.pq.cp.niter = 25
    fidx.train(ds.base)
    fidx.add(ds.base)
    _, fids = fidx.search(xq, 100)
    return {r: (hits_at(ids, gt1, r), hits_at(fids, gt1, r)) for r in (1, 10, 100)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "M", "two_sided"),
    [
        ("sift_tiledb10k", 8, True),
        ("sift_tiledb10k", 16, True),
        ("fashion-mnist", 16, True),
        # PQ8 on Fashion-MNIST: quanta's R@1 came out 0.53 points *above* faiss's (0.2422 vs
        # 0.2369). Both start from the same rows (faiss's RNG is reproduced) and plain k-means
        # agrees with faiss to 1e-5; PQ codebooks then drift by float rounding through 25 Lloyd
        # steps, and faiss itself moves by 0.2 points between 1 and 2 threads. One-sided here.
        ("fashion-mnist", 8, False),
    ],
)
def test_trained_recall_matches_faiss(
    shared_data: Path, name: str, M: int, two_sided: bool
) -> None:
    """Same initial rows as faiss, so the same codebooks up to rounding drift: McNemar's test
    (``_support``) on the per-query hits, a tolerance that follows the number of queries the
    drift flips instead of a margin measured on one CPU."""
    ds = quanta.datasets.load(name)
    for r, (ours, theirs) in _hits_vs_faiss(ds, M, nq=len(ds.queries)).items():
        what = f"{name} PQ{M}x8 R@{r}"
        if two_sided:
            assert_recall_equivalent([ours], [theirs], what)
        else:
            assert_recall_not_worse([ours], [theirs], what)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("mmap", [False, True])
def test_write_read_round_trip(tmp_path: Path, mmap: bool) -> None:
    x = _gauss(2000, 16, 11)
    idx = quanta.IndexPQ(16, 4, 6)
    idx.train(x, niter=4)
    idx.add(x[:500])
    path = tmp_path / "pq.qnt"
    quanta.write_index(idx, path)
    assert quanta.io.read_index_kind(path) == "IndexPQ"
    back = quanta.read_index(path, mmap=mmap)
    assert isinstance(back, quanta.IndexPQ)
    assert back.is_mapped == mmap
    assert (back.M, back.nbits, back.metric, back.ntotal) == (4, 6, "l2", 500)
    np.testing.assert_array_equal(back.codes, idx.codes)
    np.testing.assert_array_equal(back.pq.bias, idx.pq.bias)
    for mode in ("adc", "sdc"):
        a = idx.search(x[:30], 7, mode=mode, bias_correction=True)
        b = back.search(x[:30], 7, mode=mode, bias_correction=True)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    before = path.read_bytes()
    back.add(x[500:600])
    assert back.ntotal == 600 and not back.is_mapped
    assert path.read_bytes() == before


def test_damaged_pq_file_is_a_format_error(tmp_path: Path) -> None:
    x = _gauss(300, 8, 12)
    idx = quanta.IndexPQ(8, 2, 4)
    idx.train(x, niter=2)
    idx.add(x[:10])
    path = tmp_path / "pq.qnt"
    quanta.write_index(idx, path)
    data = path.read_bytes()
    for cut in (0, 10, 64, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(quanta.FormatError):
            quanta.read_index(path)
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(quanta.FormatError, match=r"checksum|CRC|crc"):
        quanta.read_index(path)


# --------------------------------------------------------------------------- Index protocol


def _pq_index(metric: str = "l2", n: int = 3000, nbits: int = 6) -> tuple[quanta.IndexPQ, Any]:
    x = _gauss(n, 16, 21)
    idx = quanta.IndexPQ(16, 4, nbits, metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few training points for small n
        idx.train(x, niter=4)
    idx.add(x)
    return idx, x


def _subset(idx: quanta.IndexPQ, keep: np.ndarray) -> quanta.IndexPQ:
    sub = quanta.IndexPQ.from_pq(idx.pq, idx.metric)
    sub.add_codes(idx.codes[keep])
    return sub


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_filters_equal_search_of_the_allowed_subset(metric: str) -> None:
    idx, _ = _pq_index(metric)
    q = _gauss(9, 16, 22)
    rng = np.random.default_rng(23)
    mask = rng.random(idx.ntotal) < 0.3
    allowed = np.flatnonzero(mask).astype(np.int64)
    sub = _subset(idx, allowed)
    modes = [("adc", False), ("sdc", False)] + ([("sdc", True)] if metric == "l2" else [])
    for mode, bias in modes:
        for k in (1, 10, 400):
            Dw, Iw = sub.search(q, k, mode=mode, bias_correction=bias)
            Iw = np.where(Iw >= 0, allowed[np.maximum(Iw, 0)], -1)
            for f in (
                {"ids_allowed": allowed},
                {"ids_allowed": mask},
                {"ids_denied": np.flatnonzero(~mask).astype(np.int64)},
                {"ids_denied": ~mask},
            ):
                D, ids = idx.search(q, k, mode=mode, bias_correction=bias, **f)
                np.testing.assert_array_equal(ids, Iw)
                np.testing.assert_array_equal(D, Dw)
    # the same through SearchParameters
    p = quanta.SearchParameters(ids_allowed=allowed, mode="sdc")
    _, Iw1 = sub.search(q[:1], 5, mode="sdc")
    np.testing.assert_array_equal(idx.search(q[:1], 5, params=p)[1], allowed[Iw1])
    # fewer allowed entries than k: padding
    D, ids = idx.search(q, 5, ids_allowed=allowed[:3])
    assert (ids[:, 3:] == -1).all() and set(ids[0, :3]) == set(allowed[:3].tolist())


def test_remove_ids_renumbers_like_faiss() -> None:
    x = _gauss(2000, 16, 24)
    fidx = faiss.IndexPQ(16, 4, 8)
    fidx.pq.cp.niter = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fidx.train(x)
    fidx.add(x[:500])
    cent = faiss.vector_to_array(fidx.pq.centroids).reshape(4, 256, 4)
    idx = quanta.IndexPQ.from_pq(quanta.ProductQuantizer.from_centroids(cent))
    codes = faiss.vector_to_array(fidx.codes).reshape(500, 4)
    idx.add_codes(codes)
    gone = np.array([0, 7, 250, 499, 1000], dtype=np.int64)
    assert idx.remove_ids(gone) == 4
    assert fidx.remove_ids(faiss.IDSelectorBatch(gone)) == 4
    assert idx.ntotal == fidx.ntotal == 496
    np.testing.assert_array_equal(idx.codes, faiss.vector_to_array(fidx.codes).reshape(496, 4))
    q = _gauss(20, 16, 25)
    D, ids = idx.search(q, 10)
    Dref, Iref = fidx.search(q, 10)
    np.testing.assert_allclose(D, Dref, rtol=1e-4)
    assert (ids == Iref).mean() > 0.99
    keep = np.setdiff1d(np.arange(500), gone)
    np.testing.assert_array_equal(idx.reconstruct(7), idx.pq.decode(codes[keep[7]])[0])
    # a bool mask: removes the marked positions
    mask = np.zeros(idx.ntotal, dtype=bool)
    mask[::2] = True
    assert idx.remove_ids(mask) == 248 and idx.ntotal == 248
    assert idx.remove_ids(np.array([], dtype=np.int64)) == 0


def test_search_defaults_are_properties_saved_with_the_index(tmp_path: Path) -> None:
    idx, x = _pq_index()
    q = x[:12]
    assert (idx.mode, idx.bias_correction) == ("adc", False)
    adc = idx.search(q, 6)
    sdc = idx.search(q, 6, mode="sdc", bias_correction=True)
    assert not np.array_equal(adc[0], sdc[0])
    idx.mode = "sdc"
    idx.bias_correction = True
    for a, b in zip(idx.search(q, 6), sdc):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(idx.search(q, 6, mode="adc", bias_correction=False), adc):
        np.testing.assert_array_equal(a, b)
    quanta.write_index(idx, tmp_path / "pq.qnt")
    for back in (quanta.read_index(tmp_path / "pq.qnt"), pickle.loads(pickle.dumps(idx))):
        assert isinstance(back, quanta.IndexPQ)
        assert (back.mode, back.bias_correction) == ("sdc", True)
        for a, b in zip(back.search(q, 6), sdc):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(quanta.InvalidArgumentError, match="mode"):
        idx.mode = "xdc"
    with pytest.raises(quanta.DTypeError, match="bias_correction"):
        idx.bias_correction = 1  # type: ignore[assignment]
    ip = quanta.IndexPQ(16, 4, 4, "ip")
    with pytest.raises(quanta.InvalidArgumentError, match="L2 metric only"):
        ip.bias_correction = True
    assert repr(idx) == "IndexPQ(d=16, M=4, nbits=6, metric='l2', ntotal=3000)"


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_pickle_and_copy_round_trip_give_identical_results(metric: str) -> None:
    idx, x = _pq_index(metric, n=1000)
    q = _gauss(15, 16, 26)
    want = idx.search(q, 8)
    for back in (pickle.loads(pickle.dumps(idx)), copy.deepcopy(idx), copy.copy(idx)):
        assert type(back) is quanta.IndexPQ
        assert (back.M, back.nbits, back.metric, back.ntotal) == (4, 6, metric, 1000)
        np.testing.assert_array_equal(back.codes, idx.codes)
        np.testing.assert_array_equal(back.pq.centroids, idx.pq.centroids)
        for a, b in zip(back.search(q, 8), want):
            np.testing.assert_array_equal(a, b)
    # a copy is independent
    other = copy.copy(idx)
    other.add(x[:5])
    assert (other.ntotal, idx.ntotal) == (1005, 1000)
    # an untrained index pickles too
    fresh = pickle.loads(pickle.dumps(quanta.IndexPQ(16, 4)))
    assert not fresh.is_trained and fresh.ntotal == 0


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_range_search_equals_filtering_the_full_search(metric: str) -> None:
    idx, _ = _pq_index(metric, n=700)
    q = _gauss(6, 16, 27)
    D, ids = idx.search(q, idx.ntotal)
    radius = float(np.median(D[:, 50]))
    lims, Dr, Ir = idx.range_search(q, radius)
    assert lims.shape == (7,) and lims[0] == 0
    for i in range(len(q)):
        keep = D[i] < radius if metric == "l2" else D[i] > radius
        np.testing.assert_array_equal(Ir[lims[i] : lims[i + 1]], ids[i][keep])
        np.testing.assert_array_equal(Dr[lims[i] : lims[i + 1]], D[i][keep])
    # search parameters apply: sdc, and a filter
    allowed = np.arange(0, idx.ntotal, 2, dtype=np.int64)
    lims, Dr, Ir = idx.range_search(q, radius, mode="sdc", ids_allowed=allowed)
    D2, I2 = idx.search(q, idx.ntotal, mode="sdc", ids_allowed=allowed)
    for i in range(len(q)):
        keep = (I2[i] >= 0) & ((D2[i] < radius) if metric == "l2" else (D2[i] > radius))
        np.testing.assert_array_equal(Ir[lims[i] : lims[i + 1]], I2[i][keep])
    assert (Ir % 2 == 0).all()


# --------------------------------------------------------------------------- OPQ


def test_opq_rotation_is_orthonormal_and_lowers_pq_error() -> None:
    rng = np.random.default_rng(13)
    z = rng.standard_normal((3000, 4)).astype(np.float32)
    mix = rng.standard_normal((4, 32)).astype(np.float32) * np.linspace(
        0.2, 3, 32, dtype=np.float32
    )
    x = z @ mix + 0.05 * rng.standard_normal((3000, 32)).astype(np.float32)
    opq = quanta.OPQMatrix(32, 4, niter=8)
    with pytest.raises(quanta.NotTrainedError):
        opq.apply(x)
    opq.train(x)
    A = opq.A
    np.testing.assert_allclose(A @ A.T, np.eye(32), atol=1e-4)
    assert opq.pq_errors[-1] < opq.pq_errors[0]
    y = opq.apply(x[:10])
    np.testing.assert_allclose(y, x[:10] @ A.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(opq.reverse_transform(y), x[:10], rtol=1e-3, atol=1e-3)
    # the rotation makes PQ better than on raw axes on this correlated data
    raw = quanta.ProductQuantizer(32, 4, 8)
    raw.train(x)
    rot = quanta.ProductQuantizer(32, 4, 8)
    rot.train(opq.apply(x))
    assert rot.quantization_mse(opq.apply(x)) < raw.quantization_mse(x)
    # wrapped in an index
    idx = quanta.IndexPreTransform(opq, quanta.IndexPQ(32, 4))
    idx.train(x)
    idx.add(x)
    _, ids = idx.search(x[:5], 3, mode="adc")
    assert ids.shape == (5, 3) and idx.ntotal == 3000
    assert idx.reconstruct(0).shape == (32,)
    with pytest.raises(quanta.ShapeError):
        quanta.IndexPreTransform(opq, quanta.IndexPQ(16, 4))
    with pytest.raises(ValueError, match="d_out"):
        quanta.OPQMatrix(32, 4, d_out=40)
    # positional arguments as faiss's OPQMatrix(d, M, d_out): the third is d_out, not niter
    assert quanta.OPQMatrix(32, 4, 16).d_out == 16
    with pytest.raises(TypeError):
        quanta.OPQMatrix(32, 4, 16, 10)  # type: ignore[misc]
    with pytest.raises(ValueError, match="valid M"):
        quanta.OPQMatrix(32, 5)
    with pytest.raises(ValueError, match="orthonormal"):
        opq.A = np.ones((32, 32), np.float32)


@pytest.mark.slow
def test_opq_recall_not_worse_than_faiss_opq(shared_data: Path) -> None:
    """OPQ8 + PQ8x8 on SIFT10k, quanta (eigenvalue-allocation start) vs faiss (random start).

    OPQ's alternation is chaotic in the float rounding: one run's recall@10 moves by ±0.02
    between SIMD levels, CPUs (Zen 4 vs Sapphire Rapids) and training-row orders. So each
    library trains on three row orders and the per-query hits are pooled into McNemar's test
    (``_support``): a CPU-independent tolerance, z = 3.
    """
    ds = quanta.datasets.load("sift_tiledb10k")
    gt1 = ds.gt[:, 0]
    ours: dict[int, list[np.ndarray]] = {10: [], 100: []}
    ref: dict[int, list[np.ndarray]] = {10: [], 100: []}
    for seed in range(3):
        xt = ds.base[np.random.default_rng(seed).permutation(len(ds.base))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idx = quanta.IndexPreTransform(
                quanta.OPQMatrix(ds.d, 8, niter=20), quanta.IndexPQ(ds.d, 8)
            )
            idx.train(xt)
            fo = faiss.OPQMatrix(ds.d, 8)
            fo.niter = 20
            fidx = faiss.IndexPreTransform(fo, faiss.IndexPQ(ds.d, 8, 8))
            fidx.train(xt)
        idx.add(ds.base)
        fidx.add(ds.base)
        _, ids = idx.search(ds.queries, 100)
        _, fids = fidx.search(ds.queries, 100)
        for r in (10, 100):
            ours[r].append(hits_at(ids, gt1, r))
            ref[r].append(hits_at(fids, gt1, r))
    for r in (10, 100):
        assert_recall_not_worse(ours[r], ref[r], f"OPQ8,PQ8 R@{r}")
