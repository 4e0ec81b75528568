"""4-bit PQ fast scan: IndexPQFastScan against IndexPQ and faiss, and IndexRefineFlat."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import assert_recall_equivalent, assert_recall_not_worse, hits_at, overlap_at


@pytest.fixture(scope="module", autouse=True)
def _faiss_single_thread() -> Iterator[None]:
    try:
        import faiss
    except ImportError:  # only the faiss comparisons need it; they skip themselves
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _gauss(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _recall_at(ids: np.ndarray, gt1: np.ndarray, r: int) -> float:
    return float((ids[:, :r] == gt1[:, None]).any(axis=1).mean())


def _trained(d: int, M: int, n: int = 3000, metric: str = "l2") -> quanta.IndexPQFastScan:
    idx = quanta.IndexPQFastScan(d, M, metric=metric)
    idx.train(_gauss(n, d, 1), niter=8)
    return idx


# --------------------------------------------------------------------------- errors


def test_bad_parameters_and_inputs_name_the_argument() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="nbits=4"):
        quanta.IndexPQFastScan(16, 4, nbits=8)
    with pytest.raises(quanta.InvalidArgumentError, match="valid M for d=10"):
        quanta.IndexPQFastScan(10, 3)
    with pytest.raises(quanta.InvalidArgumentError, match="metric"):
        quanta.IndexPQFastScan(16, 4, metric="cosine")
    with pytest.raises(quanta.InvalidArgumentError, match="nbits=4"):
        quanta.IndexPQFastScan.from_pq(quanta.ProductQuantizer(16, 4, 8))
    idx = quanta.IndexPQFastScan(16, 4)
    with pytest.raises(quanta.NotTrainedError):
        idx.add(_gauss(3, 16, 0))
    with pytest.raises(quanta.NotTrainedError):
        idx.search(_gauss(3, 16, 0), 1)
    idx.train(_gauss(700, 16, 0), niter=3)
    idx.add(_gauss(100, 16, 2))
    q = _gauss(2, 16, 3)
    with pytest.raises(quanta.InvalidArgumentError, match="k"):
        idx.search(q, 0)
    with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
        idx.search(q, 1, k_factor=0)
    with pytest.raises(quanta.DTypeError, match="k_factor"):
        idx.search(q, 1, k_factor=1.5)  # type: ignore[arg-type]
    with pytest.raises(quanta.DTypeError, match="k_factor"):
        idx.k_factor = True
    with pytest.raises(quanta.ShapeError, match="queries"):
        idx.search(_gauss(2, 8, 3), 1)
    bad = q.copy()
    bad[1, 3] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="queries"):
        idx.search(bad, 1)
    with pytest.raises(quanta.DTypeError, match="codes"):
        idx.add_codes(np.zeros((2, 4), np.int32))
    with pytest.raises(quanta.ShapeError, match="codes"):
        idx.add_codes(np.zeros((2, 5), np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="codes"):
        idx.add_codes(np.full((2, 4), 16, np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="already holds codes"):
        idx.train(_gauss(500, 16, 0))
    with pytest.raises(quanta.InvalidArgumentError):
        idx.reconstruct(100)


# --------------------------------------------------------------------------- vs IndexPQ


@pytest.mark.parametrize(("M", "metric"), [(4, "l2"), (5, "l2"), (8, "ip"), (3, "ip")])
def test_full_rerank_equals_index_pq_and_codes_match(M: int, metric: str) -> None:
    d = 4 * M if M != 5 else 20
    idx = _trained(d, M, metric=metric)
    x = _gauss(1111, d, 4)
    idx.add(x[:500])
    idx.add(x[500:])
    ref = quanta.IndexPQ.from_pq(idx.pq, metric)
    ref.add(x)
    np.testing.assert_array_equal(idx.codes, ref.codes)
    assert idx.code_size == (M + 1) // 2
    np.testing.assert_array_equal(idx.reconstruct(777), ref.reconstruct(777))
    q = _gauss(13, d, 5)
    dw, iw = ref.search(q, 10)
    # re-ranking every stored vector with the float tables is exactly IndexPQ's ADC search
    dg, ig = idx.search(q, 10, k_factor=len(x))
    np.testing.assert_array_equal(ig, iw)
    np.testing.assert_array_equal(dg, dw)
    # the plain scan: approximate distances, close to the float ADC ones of the same ids
    da, ia = idx.search(q, 10, k_factor=1)
    assert (ia == iw).mean() > 0.6
    assert ((ia >= 0) & (ia < len(x))).all()
    # documented bound (ALGORITHMS.md §2.9): per query a = 255 / s with s the largest span
    # max_j T[m, j] - min_j T[m, j] of a float table row; every one of the M quantized entries
    # is within 0.5 / a, so |approx - float ADC| <= M / (2a) for the same id (+ float rounding)
    tables = idx.pq.compute_distance_tables(q, metric).astype(np.float64)  # (nq, M, 16)
    span = (tables.max(axis=2) - tables.min(axis=2)).max(axis=1)  # (nq,)
    a = np.where(span > 0, 255.0 / span, 1.0)
    codes = idx.pq.encode(x).astype(np.int64)  # (n, M), one centroid index per sub-quantizer
    adc = np.take_along_axis(tables[:, None, :, :], codes[ia][..., None], 3)[..., 0].sum(-1)
    bound = M / (2 * a)[:, None]
    err = np.abs(da.astype(np.float64) - adc)
    assert (err <= bound * (1 + 1e-3) + 1e-5 * np.abs(adc) + 1e-6).all(), (err / bound).max()
    assert err.max() > 0  # the tables really are quantized
    if metric == "l2":
        assert np.all(np.diff(da, axis=1) >= 0)
    else:
        assert np.all(np.diff(da, axis=1) <= 0)


def test_every_simd_level_and_thread_count_gives_identical_results() -> None:
    d, M = 16, 8
    idx = _trained(d, M)
    # 70k vectors: with 2 threads and one query the scan is split into block ranges
    idx.add(_gauss(70_001, d, 6))
    q = _gauss(9, d, 7)
    before_lvl, before_th = quanta.simd_level(), quanta.get_num_threads()
    results = []
    try:
        for th in (1, 2):
            quanta.set_num_threads(th)
            for lvl in quanta.available_simd_levels():
                quanta.set_simd_level(lvl)
                for kf in (1, 3):
                    results.append(((th, lvl, kf), idx.search(q, 17, k_factor=kf)))
                    results.append(((th, lvl, kf, 1), idx.search(q[:1], 17, k_factor=kf)))
    finally:
        quanta.set_simd_level(before_lvl)
        quanta.set_num_threads(before_th)
    first: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for key, (dd, ii) in results:
        sig = (key[2], len(key))
        if sig not in first:
            first[sig] = (dd, ii)
            continue
        np.testing.assert_array_equal(ii, first[sig][1], err_msg=str(key))
        np.testing.assert_array_equal(dd, first[sig][0], err_msg=str(key))


def test_padding_and_small_databases() -> None:
    idx = _trained(8, 2, n=700)
    _, ii = idx.search(_gauss(2, 8, 1), 3)
    assert (ii == -1).all()
    idx.add(_gauss(5, 8, 2))
    dd, ii = idx.search(_gauss(2, 8, 1), 8, k_factor=1)
    assert (ii[:, 5:] == -1).all() and np.isinf(dd[:, 5:]).all()
    assert sorted(ii[0, :5].tolist()) == list(range(5))
    _, ii1 = idx.search(_gauss(1, 8, 1)[0], 2)
    assert ii1.shape == (1, 2)
    idx.reset()
    assert idx.ntotal == 0 and idx.is_trained


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("mmap", [False, True])
def test_write_read_round_trip(tmp_path: Path, mmap: bool) -> None:
    idx = _trained(21, 7)  # odd M
    idx.add(_gauss(1000, 21, 8))
    q = _gauss(20, 21, 9)
    want = idx.search(q, 10, k_factor=1), idx.search(q, 10, k_factor=4)
    p = tmp_path / "fs.quanta"
    quanta.write_index(idx, p)
    back = quanta.read_index(p, mmap=mmap)
    assert isinstance(back, quanta.IndexPQFastScan)
    assert back.is_mapped == mmap
    assert (back.d, back.M, back.ntotal, back.metric) == (21, 7, 1000, "l2")
    got = back.search(q, 10, k_factor=1), back.search(q, 10, k_factor=4)
    for (dw, iw), (dg, ig) in zip(want, got):
        np.testing.assert_array_equal(ig, iw)
        np.testing.assert_array_equal(dg, dw)
    back.add(_gauss(3, 21, 10))  # copy-on-write of a mapped file
    assert back.ntotal == 1003 and not back.is_mapped
    # a truncated file is a FormatError naming the problem, not a crash
    raw = p.read_bytes()
    bad = tmp_path / "bad.quanta"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(quanta.FormatError):
        quanta.read_index(bad)


# --------------------------------------------------------------------------- Index protocol


def _filled(n: int = 5000, metric: str = "l2") -> tuple[quanta.IndexPQFastScan, np.ndarray]:
    idx = _trained(15, 5, metric=metric)  # odd M: a padded sub-quantizer
    x = _gauss(n, 15, 30)
    idx.add(x)
    return idx, x


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_filters_equal_search_of_the_allowed_subset(metric: str) -> None:
    idx, _ = _filled(metric=metric)
    q = _gauss(40, 15, 31)  # several query groups per task
    mask = np.random.default_rng(32).random(idx.ntotal) < 0.25
    allowed = np.flatnonzero(mask).astype(np.int64)
    sub = quanta.IndexPQFastScan.from_pq(idx.pq, metric)
    sub.add_codes(idx.codes[allowed])
    for k, kf in ((1, 1), (10, 1), (10, 3), (300, 1)):
        Dw, Iw = sub.search(q, k, k_factor=kf)
        Iw = np.where(Iw >= 0, allowed[np.maximum(Iw, 0)], -1)
        for f in (
            {"ids_allowed": allowed},
            {"ids_allowed": mask},
            {"ids_denied": np.flatnonzero(~mask).astype(np.int64)},
        ):
            D, ids = idx.search(q, k, k_factor=kf, **f)
            np.testing.assert_array_equal(ids, Iw, err_msg=f"k={k} kf={kf}")
            np.testing.assert_array_equal(D, Dw, err_msg=f"k={k} kf={kf}")
    p = quanta.SearchParameters(ids_denied=~mask, k_factor=2)
    np.testing.assert_array_equal(
        idx.search(q, 5, params=p)[1], allowed[sub.search(q, 5, k_factor=2)[1]]
    )


def test_remove_ids_renumbers_like_faiss() -> None:
    idx, x = _filled(1000)
    codes = idx.codes
    gone = np.array([0, 31, 32, 33, 999, 5000], dtype=np.int64)
    assert idx.remove_ids(gone) == 5
    keep = np.setdiff1d(np.arange(1000), gone)
    assert idx.ntotal == len(keep) == 995
    np.testing.assert_array_equal(idx.codes, codes[keep])
    ref = quanta.IndexPQFastScan.from_pq(idx.pq)
    ref.add_codes(codes[keep])
    q = _gauss(7, 15, 33)
    for kf in (1, 4):
        for a, b in zip(idx.search(q, 10, k_factor=kf), ref.search(q, 10, k_factor=kf)):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(idx.reconstruct(0), ref.reconstruct(0))
    # the repacked blocks take further adds (a partial last block)
    idx.add(x[:40])
    np.testing.assert_array_equal(idx.codes[995:], codes[:40])
    mask = np.ones(idx.ntotal, dtype=bool)
    assert idx.remove_ids(mask) == 1035 and idx.ntotal == 0
    assert (idx.search(q, 3)[1] == -1).all()


def test_k_factor_default_is_one_and_saved_with_write_read_and_pickle(tmp_path: Path) -> None:
    idx, x = _filled(2000)
    q = x[:9]
    assert idx.k_factor == 1
    one = idx.search(q, 10)
    for a, b in zip(one, idx.search(q, 10, k_factor=1)):
        np.testing.assert_array_equal(a, b)
    idx.k_factor = 6
    six = idx.search(q, 10)
    for a, b in zip(six, idx.search(q, 10, k_factor=6)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[0], six[0])
    quanta.write_index(idx, tmp_path / "fs.qnt")
    for back in (
        quanta.read_index(tmp_path / "fs.qnt"),
        quanta.read_index(tmp_path / "fs.qnt", mmap=True),
        pickle.loads(pickle.dumps(idx)),
        quanta.deserialize_index(quanta.serialize_index(idx)),
        copy.deepcopy(idx),
    ):
        assert type(back) is quanta.IndexPQFastScan
        assert back.k_factor == 6
        for a, b in zip(back.search(q, 10), six):
            np.testing.assert_array_equal(a, b)
        # the per-call parameter still overrides the loaded default
        np.testing.assert_array_equal(back.search(q, 10, k_factor=1)[0], one[0])
    assert "k_factor=6" in repr(idx)


def test_pickle_round_trip_gives_identical_results() -> None:
    idx, _ = _filled(3000, metric="ip")
    q = _gauss(11, 15, 34)
    back = pickle.loads(pickle.dumps(idx))
    assert (back.d, back.M, back.nbits, back.metric, back.ntotal) == (15, 5, 4, "ip", 3000)
    np.testing.assert_array_equal(back.codes, idx.codes)
    for kf in (1, 3):
        for a, b in zip(back.search(q, 12, k_factor=kf), idx.search(q, 12, k_factor=kf)):
            np.testing.assert_array_equal(a, b)
    radius = float(np.median(idx.search(q, 20)[0][:, 19]))
    for a, b in zip(idx.range_search(q, radius), back.range_search(q, radius)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- recall


def test_k_factor_and_refine_improve_recall() -> None:
    d, M = 32, 8
    x = _gauss(20_000, d, 11)
    q = _gauss(200, d, 12)
    gt = quanta.IndexFlat(d)
    gt.add(x)
    gt1 = gt.search(q, 1)[1][:, 0]
    idx = quanta.IndexPQFastScan(d, M)
    idx.train(x[:5000], niter=10)
    idx.add(x)
    r1 = _recall_at(idx.search(q, 10, k_factor=1)[1], gt1, 1)
    r4 = _recall_at(idx.search(q, 10, k_factor=8)[1], gt1, 1)
    assert r4 > r1, (r1, r4)
    ref = quanta.IndexRefineFlat(quanta.IndexPQFastScan.from_pq(idx.pq), k_factor=16)
    ref.add(x)
    dr, ir = ref.search(q, 10)
    rr = _recall_at(ir, gt1, 1)
    assert rr > r4 + 0.3, (r4, rr)
    # refined distances are exact squared L2, sorted
    np.testing.assert_allclose(dr[:, 0], ((x[ir[:, 0]] - q) ** 2).sum(1), rtol=1e-4)
    assert np.all(np.diff(dr, axis=1) >= 0)


def test_refine_wrapper_on_index_pq_ip_and_padding() -> None:
    d = 16
    x = _gauss(300, d, 13)
    q = _gauss(5, d, 14)
    base = quanta.IndexPQ(d, 4, 4, metric="ip")
    base.train(np.concatenate([x, x + 0.01]), niter=5)
    ref = quanta.IndexRefineFlat(base, k_factor=2)
    ref.add(x[:6])
    dd, ii = ref.search(q, 4)  # 8 candidates asked, only 6 stored
    exact = q @ x[:6].T
    want = np.argsort(-exact, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(ii, want)
    np.testing.assert_allclose(dd, np.take_along_axis(exact, want, 1), rtol=1e-5)
    dd, ii = ref.search(q, 8, k_factor=1)
    assert (ii[:, 6:] == -1).all() and np.isneginf(dd[:, 6:]).all()
    np.testing.assert_array_equal(ref.reconstruct(3), x[3])
    base.add(x[:1])  # a base index holding vectors is refused (the refine index copies it)
    with pytest.raises(quanta.InvalidArgumentError, match="empty"):
        quanta.IndexRefineFlat(base)
    with pytest.raises(quanta.DTypeError, match="base_index"):
        quanta.IndexRefineFlat(object())
    with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
        quanta.IndexRefineFlat(quanta.IndexPQFastScan(8, 2), k_factor=0)
    with pytest.raises(quanta.NotTrainedError):
        quanta.IndexRefineFlat(quanta.IndexPQFastScan(8, 2)).add(x[:2, :8])


def _faiss_fastscan_vs_quanta(ds: quanta.datasets.Dataset, M: int) -> None:
    faiss = pytest.importorskip("faiss")
    fidx = faiss.IndexPQFastScan(ds.d, M, 4)
    fidx.train(ds.base)
    fidx.add(ds.base)
    cent = faiss.vector_to_array(fidx.pq.centroids).reshape(M, 16, ds.d // M)
    idx = quanta.IndexPQFastScan.from_pq(quanta.ProductQuantizer.from_centroids(cent))
    idx.add(ds.base)
    xq, gt1 = ds.queries, ds.gt[:, 0]
    fd, fids = fidx.search(xq, 100)
    dd, ids = idx.search(xq, 100, k_factor=1)
    for r in (1, 10, 100):
        # same quantizer: per-query hits agree up to near-ties (paired test, ``_support``)
        assert_recall_equivalent(
            [hits_at(ids, gt1, r)], [hits_at(fids, gt1, r)], f"{ds.name} PQ{M}x4fs R@{r}"
        )
    # same centroids, same table rounding: the same approximate distance at every rank (the
    # ids may differ on tied distances, which quanta orders by id and faiss does not); a few
    # entries move where a code differs (encoding near-ties under a different float order)
    same = np.isclose(dd, fd, rtol=1e-5, atol=0)
    assert same.mean() > 0.999, same.mean()


@pytest.mark.slow
@pytest.mark.parametrize("M", [16, 32])
def test_recall_matches_faiss_fastscan_sift(shared_data: Path, M: int) -> None:
    _faiss_fastscan_vs_quanta(quanta.datasets.load("sift_tiledb10k"), M)


@pytest.mark.slow
@pytest.mark.parametrize("M", [16, 49])
def test_recall_matches_faiss_fastscan_fashion(shared_data: Path, M: int) -> None:
    _faiss_fastscan_vs_quanta(quanta.datasets.load("fashion-mnist"), M)


# --------------------------------------------------------------------------- past M = 256


def _minilm(shared_data: Path, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = shared_data / "debian-minilm.npz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    with np.load(path) as z:
        xb = z["base"].astype(np.float32)
        xq = z["queries"][:nq].astype(np.float32)
        gt = z["gt_ip"][:nq, :10]
    return xb, xq, gt


def test_wide_m_factory_files_and_errors(tmp_path: Path) -> None:
    # 4 bits per dimension of 384-d vectors: M = 384 > 256, through the class and the factory
    d = 384
    x = _gauss(1500, d, 30)
    q = _gauss(12, d, 31)
    idx = quanta.index_factory(d, "PQ384x4fs", "ip")
    assert isinstance(idx, quanta.IndexPQFastScan) and idx.M == 384
    idx.train(x, niter=4)
    idx.add(x)
    ref = quanta.IndexPQ.from_pq(idx.pq, "ip")
    ref.add(x)
    # re-ranking every vector is exactly IndexPQ's ADC search; the plain scan is close to it
    dw, iw = ref.search(q, 10)
    dg, ig = idx.search(q, 10, k_factor=len(x))
    np.testing.assert_array_equal(ig, iw)
    np.testing.assert_array_equal(dg, dw)
    da, ia = idx.search(q, 10, k_factor=1)
    assert overlap_at(ia, iw, 10).mean() > 0.8
    p = tmp_path / "pq384fs.quanta"
    quanta.write_index(idx, p)
    back = quanta.read_index(p)
    assert isinstance(back, quanta.IndexPQFastScan) and back.M == 384
    for got, want in zip(back.search(q, 10, k_factor=1), (da, ia)):
        np.testing.assert_array_equal(got, want)
    # IVF fast scan at M = 384 (factory string), and a file round trip
    ivf = quanta.index_factory(d, "IVF4,PQ384x4fs")
    assert isinstance(ivf, quanta.IndexIVFPQFastScan)
    ivf.train(x)
    ivf.add(x)
    want_ivf = ivf.search(q, 10, nprobe=2)
    assert (want_ivf[1] >= 0).all()
    quanta.write_index(ivf, tmp_path / "ivf.quanta")
    got_ivf = quanta.read_index(tmp_path / "ivf.quanta").search(q, 10, nprobe=2)
    for got, want in zip(got_ivf, want_ivf):
        np.testing.assert_array_equal(got, want)
    # the limit is M <= 4096 (d = M here: 4 bits per dimension up to 4096-d)
    quanta.IndexPQFastScan(1536, 1536)
    with pytest.raises(quanta.InvalidArgumentError, match="M <= 4096"):
        quanta.IndexPQFastScan(4100, 4100)
    with pytest.raises(quanta.InvalidArgumentError, match="M <= 4096"):
        quanta.index_factory(4100, "IVF4,PQ4100x4fs")


@pytest.mark.slow
def test_wide_m_recall_close_to_4bit_adc_and_to_faiss(shared_data: Path) -> None:
    # PQ384x4fs on 384-d all-MiniLM embeddings (IP): per-query 10-recall@10 of the fast scan is
    # not significantly below the float-ADC search of the same 4-bit quantizer (IndexPQ with
    # nbits=4), by the paired test of ``_support`` (its tolerance scales with the query
    # count: 3·sqrt(Σ d_q²) over the 1000 queries), and equivalent to faiss's IndexPQFastScan
    # with the same centroids
    xb, xq, gt = _minilm(shared_data, 1000)
    d = M = 384
    pq = quanta.IndexPQ(d, M, nbits=4, metric="ip")
    pq.train(xb[::3], niter=10)
    pq.add(xb)
    fs = quanta.IndexPQFastScan.from_pq(pq.pq, "ip")
    fs.add(xb)
    _, ia = pq.search(xq, 10)
    _, ifs = fs.search(xq, 10, k_factor=1)
    r_adc, r_fs = overlap_at(ia, gt, 10), overlap_at(ifs, gt, 10)
    assert r_fs.mean() > 0.85, r_fs.mean()
    assert_recall_not_worse([r_fs], [r_adc], "PQ384x4fs vs IndexPQ(384, 384, nbits=4) 10-R@10")
    # the fast-scan ranking is the ADC ranking up to the table rounding
    assert overlap_at(ifs, ia, 10).mean() > 0.95
    faiss = pytest.importorskip("faiss")
    fidx = faiss.IndexPQFastScan(d, M, 4, faiss.METRIC_INNER_PRODUCT)
    cent = pq.pq.centroids.reshape(-1).astype(np.float32)
    faiss.copy_array_to_vector(cent, fidx.pq.centroids)
    fidx.is_trained = True
    fidx.add(xb)
    _, fids = fidx.search(xq, 10)
    assert_recall_equivalent([r_fs], [overlap_at(fids, gt, 10)], "PQ384x4fs vs faiss 10-R@10")


def test_refine_with_every_candidate_is_exact_search() -> None:
    # k * k_factor >= ntotal: the re-ranked list is the exact one (queries in several slabs)
    d, n = 1024, 600
    x = _gauss(n, d, 15)
    q = _gauss(20, d, 16)
    base = quanta.IndexPQFastScan(d, 64)
    with pytest.warns(UserWarning):
        base.train(x, niter=2)
    ref = quanta.IndexRefineFlat(base, k_factor=120)
    ref.add(x)
    flat = quanta.IndexFlat(d)
    flat.add(x)
    dw, iw = flat.search(q, 5)
    dg, ig = ref.search(q, 5)
    np.testing.assert_array_equal(ig, iw)
    np.testing.assert_allclose(dg, dw, rtol=1e-4)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_refine_on_empty_index_pads_and_reconstruct_checks_the_id(metric: str) -> None:
    d = 8
    base = quanta.IndexPQ(d, 2, 4, metric=metric)
    base.train(_gauss(700, d, 17), niter=3)
    ref = quanta.IndexRefineFlat(base)
    dd, ii = ref.search(_gauss(3, d, 18), 4)
    assert dd.shape == (3, 4) and dd.dtype == np.float32 and ii.dtype == np.int64
    assert (ii == -1).all()
    assert (np.isneginf(dd) if metric == "ip" else np.isposinf(dd)).all()
    dd, ii = ref.search(np.zeros((0, d), np.float32), 2)
    assert dd.shape == (0, 2) and ii.shape == (0, 2)
    # messages of the Python composite ("i=...") and of the core one ("id ... out of range")
    with pytest.raises(quanta.InvalidArgumentError, match=r"i=|out of range"):
        ref.reconstruct(0)
    ref.add(_gauss(2, d, 19))
    with pytest.raises(quanta.InvalidArgumentError, match=r"i must be in|out of range"):
        ref.reconstruct(2)
    with pytest.raises(quanta.DTypeError, match=r"id? must be an int"):
        ref.reconstruct(1.0)  # type: ignore[arg-type]
    ref.reset()
    assert (ref.search(_gauss(1, d, 18), 1)[1] == -1).all()


def test_factory_opq_refine_ip_reranks_by_inner_product() -> None:
    d = 16
    x = _gauss(1000, d, 20)
    q = _gauss(7, d, 21)
    idx = quanta.index_factory(d, "OPQ4,PQ4x4,RFlat", metric="ip")
    assert isinstance(idx, quanta.IndexRefineFlat) and idx.metric == "ip"
    assert idx.base_index.metric == "ip"
    idx.train(x)
    idx.add(x[:50])
    idx.k_factor = 50  # every stored vector is a candidate: the exact inner-product ranking
    dd, ii = idx.search(q, 5)
    exact = q @ x[:50].T
    want = np.argsort(-exact, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(ii, want)
    np.testing.assert_allclose(dd, np.take_along_axis(exact, want, 1), rtol=1e-5, atol=1e-5)


def test_refine_needs_a_base_index_with_a_metric() -> None:
    class NoMetric:
        d, ntotal = 8, 0

        def add(self, x: np.ndarray) -> None: ...

        def search(self, q: np.ndarray, k: int) -> None: ...

    with pytest.raises(quanta.DTypeError, match="metric"):
        quanta.IndexRefineFlat(NoMetric())
    opq = quanta.OPQMatrix(8, 2)
    with pytest.raises(quanta.DTypeError, match="no metric"):
        quanta.IndexRefineFlat(quanta.IndexPreTransform(opq, NoMetric()))
