"""IndexScalarQuantizer: faiss equivalence of the uniform / 16-bit codes, the rotated
Lloyd-Max codes' estimator and distortion, input checks and persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import PAIRED_Z, assert_recall_equivalent, overlap_at

K = 10


@pytest.fixture(scope="module")
def sift() -> quanta.datasets.Dataset:
    return quanta.datasets.load_demo()


def _search(index: quanta.Index, ds: quanta.datasets.Dataset) -> np.ndarray:
    index.train(ds.base)
    index.add(ds.base)
    return index.search(ds.queries, K)[1]


# ------------------------------------------------------------------ against faiss


@pytest.fixture(scope="module")
def faiss_1t() -> Iterator[object]:
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # its OpenMP threads and quanta's pool share the cores
    yield faiss
    faiss.omp_set_num_threads(before)


FAISS_QT = {"8bit": "QT_8bit", "4bit": "QT_4bit", "fp16": "QT_fp16", "bf16": "QT_bf16"}


@pytest.mark.parametrize("qtype", list(FAISS_QT))
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_recall_and_reconstruction_match_faiss(
    sift: quanta.datasets.Dataset, faiss_1t: object, qtype: str, metric: str
) -> None:
    faiss = faiss_1t
    qt = getattr(faiss.ScalarQuantizer, FAISS_QT[qtype])
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    ref = faiss.IndexScalarQuantizer(sift.d, qt, fm)  # type: ignore[attr-defined]
    ref.train(sift.base)
    ref.add(sift.base)
    ours = quanta.IndexScalarQuantizer(sift.d, qtype, metric)
    ids = _search(ours, sift)
    assert ours.code_size == ref.code_size
    # the same codec: reconstructions agree (bf16: faiss truncates, quanta rounds to nearest,
    # so one bf16 step of 2^-7 relative; the others up to float rounding of the decode formula)
    rec, rec_ref = ours.reconstruct_n(0, 200), ref.reconstruct_n(0, 200)
    rtol = 2.0**-7 if qtype == "bf16" else 1e-5
    np.testing.assert_allclose(rec, rec_ref, rtol=rtol, atol=1e-4)
    # recall (L2 ground truth for l2; faiss's own exact IP ranking for ip): paired test over
    # the same queries, tolerance from the per-query differences (see _support)
    if metric == "l2":
        gt = sift.gt
    else:
        flat = faiss.IndexFlatIP(sift.d)  # type: ignore[attr-defined]
        flat.add(sift.base)
        gt = flat.search(sift.queries, K)[1]
    ref_ids = ref.search(sift.queries, K)[1]
    assert_recall_equivalent(
        [overlap_at(ids, gt, K)], [overlap_at(ref_ids, gt, K)], f"SQ {qtype} {metric} R@10"
    )


def test_fp16_distances_match_faiss(sift: quanta.datasets.Dataset, faiss_1t: object) -> None:
    faiss = faiss_1t
    ref = faiss.IndexScalarQuantizer(sift.d, faiss.ScalarQuantizer.QT_fp16)  # type: ignore[attr-defined]
    ref.add(sift.base)
    ours = quanta.IndexScalarQuantizer(sift.d, "fp16")
    ours.add(sift.base)
    D, _ = ours.search(sift.queries[:50], K)
    Dr, _ = ref.search(sift.queries[:50], K)
    np.testing.assert_allclose(D, Dr, rtol=1e-4)


# ------------------------------------------------------------------ rotated Lloyd-Max

# Max (1960): E[(X − q(X))²] of the optimal b-bit quantizer of X ~ N(0, 1)
LLOYD_MAX_DISTORTION = {2: 0.1175, 3: 0.03454, 4: 0.009497}


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_lloyd_max_inner_product_estimate_is_unbiased(bits: int) -> None:
    # independent pairs (q_j, x_j), correlated so <q, x> is far from 0 (a multiplicative bias
    # would show); the bound is the CLT's: |mean error| < 4 standard errors
    n, d = 1500, 64
    x = _gaussian(n, d, 1)
    q = x + 0.7 * _gaussian(n, d, 2)
    index = quanta.IndexScalarQuantizer(d, f"lm{bits}", "ip")
    index.add(x)
    D, ids = index.search(q, n)
    est_diag = np.array([D[j][ids[j] == j][0] for j in range(n)], dtype=np.float64)
    true = np.einsum("ij,ij->i", q.astype(np.float64), x.astype(np.float64))
    err = est_diag - true
    se = err.std(ddof=1) / np.sqrt(n)
    assert abs(err.mean()) < 4 * se, f"lm{bits}: bias {err.mean():.4f}, se {se:.4f}"
    # the test has power: the plain estimate <q, decode(x)> is biased (shrunk) beyond it
    rec = index.reconstruct_n(0, n).astype(np.float64)
    plain = np.einsum("ij,ij->i", q.astype(np.float64), rec)
    perr = plain - true
    assert abs(perr.mean()) > 4 * perr.std(ddof=1) / np.sqrt(n)
    # L2 uses the same estimate: ||q||² + ||x||² − 2·est
    l2 = quanta.IndexScalarQuantizer(d, f"lm{bits}")
    l2.add(x)
    Dl, il = l2.search(q[:5], n)
    for j in range(5):
        got = Dl[j][il[j] == j][0]
        want = float(q[j] @ q[j] + x[j] @ x[j] - 2 * est_diag[j])
        assert abs(got - want) < 1e-3 * abs(want) + 1e-2


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_lloyd_max_distortion_is_the_theoretical_one(bits: int) -> None:
    # rotated unit-vector coordinates are ≈ N(0, 1/d); at d = 256 their law differs from the
    # Gaussian by O(1/d) (kurtosis 3 − 6/(d+2)), allowed as a 3 % model error on top of 4 s.e.
    n, d = 2000, 256
    x = _gaussian(n, d, 3) * 5.0
    index = quanta.IndexScalarQuantizer(d, f"lm{bits}")
    index.add(x)
    rel = ((x - index.reconstruct_n(0, n)) ** 2).sum(1) / (x**2).sum(1)
    want = LLOYD_MAX_DISTORTION[bits]
    bound = 4 * rel.std(ddof=1) / np.sqrt(n) + 0.03 * want
    assert abs(rel.mean() - want) < bound, f"lm{bits}: {rel.mean():.5f} vs {want}"


def test_lloyd_max_recall_grows_with_bits(sift: quanta.datasets.Dataset) -> None:
    scores = {}
    for b in (2, 3, 4):
        ids = _search(quanta.IndexScalarQuantizer(sift.d, f"lm{b}"), sift)
        scores[b] = overlap_at(ids, sift.gt, K)
    for lo, hi in ((2, 3), (3, 4)):
        diff = scores[hi] - scores[lo]
        # one-sided paired test: more bits are significantly better
        assert diff.sum() > PAIRED_Z * np.sqrt((diff**2).sum()), (
            f"lm{lo} {scores[lo].mean():.3f} vs lm{hi} {scores[hi].mean():.3f}"
        )


def test_lloyd_max_seed_and_calibration(sift: quanta.datasets.Dataset) -> None:
    a = quanta.IndexScalarQuantizer(sift.d, "lm4", seed=1)
    b = quanta.IndexScalarQuantizer(sift.d, "lm4", seed=2)
    for idx in (a, b):
        idx.add(sift.base[:100])
    assert not np.array_equal(a.reconstruct(0), b.reconstruct(0))
    with pytest.warns(UserWarning, match="at least 2"):
        quanta.IndexScalarQuantizer(sift.d, "lm2").train(sift.base[:1])


# ------------------------------------------------------------------ inputs and persistence


@pytest.mark.parametrize("qtype", quanta.sq.QTYPES)
def test_bad_inputs_raise_typed_errors(qtype: str) -> None:
    d = 12
    x = _gaussian(50, d, 4)
    index = quanta.IndexScalarQuantizer(d, qtype)
    if qtype in ("8bit", "4bit"):
        assert not index.is_trained
        with pytest.raises(quanta.NotTrainedError):
            index.add(x)
        with pytest.raises(quanta.NotTrainedError):
            index.search(x[:2], 1)
        with pytest.raises(quanta.ShapeError):
            index.train(x[:0])
    index.train(x)
    index.add(x)
    bad = x[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(quanta.InvalidArgumentError):
        index.add(bad)
    with pytest.raises(quanta.InvalidArgumentError):
        index.search(bad, 1)
    with pytest.raises(quanta.ShapeError):
        index.add(x[:, :-1])
    with pytest.raises(quanta.ShapeError):
        index.search(x[:, :-1], 1)
    with pytest.raises(quanta.DTypeError):
        index.add(np.array([["a"] * d]))
    for k in (0, -1, 2**31):
        with pytest.raises((quanta.InvalidArgumentError, quanta.DTypeError)):
            index.search(x[:2], k)
    with pytest.raises(quanta.InvalidArgumentError):
        index.train(x)  # codes were added
    with pytest.raises(quanta.InvalidArgumentError):
        index.reconstruct(50)
    assert index.ntotal == 50


def test_constructor_checks() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="qtype"):
        quanta.IndexScalarQuantizer(8, "6bit")
    with pytest.raises(quanta.DTypeError):
        quanta.IndexScalarQuantizer(8, 8)  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexScalarQuantizer(8, "8bit", "cosine")
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexScalarQuantizer(0)
    assert quanta.IndexScalarQuantizer(8, "QT_fp16").qtype == "fp16"
    sizes = {q: quanta.IndexScalarQuantizer(13, q).code_size for q in quanta.sq.QTYPES}
    assert sizes == {"8bit": 13, "4bit": 7, "fp16": 26, "bf16": 26, "lm2": 12, "lm3": 13, "lm4": 15}


@pytest.mark.parametrize("qtype", quanta.sq.QTYPES)
def test_save_load_round_trip(qtype: str, tmp_path: Path) -> None:
    d = 20
    x = _gaussian(300, d, 5)
    index = quanta.IndexScalarQuantizer(d, qtype, "ip")
    index.train(x)
    index.add(x)
    path = tmp_path / "sq.qnt"
    quanta.write_index(index, str(path))
    for back in (
        quanta.read_index(str(path)),
        quanta.read_index(str(path), mmap=True),
        quanta.deserialize_index(quanta.serialize_index(index)),
    ):
        assert type(back) is quanta.IndexScalarQuantizer
        assert (back.qtype, back.metric, back.ntotal) == (qtype, "ip", 300)
        for a, b in zip(index.search(x[:7], 5), back.search(x[:7], 5)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(back.reconstruct(3), index.reconstruct(3))


# ------------------------------------------------------------------ IVF over SQ codes


@pytest.mark.parametrize("qtype", ["8bit", "4bit", "fp16"])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivf_sq_is_faiss_ivf_sq_on_the_same_centroids(
    sift: quanta.datasets.Dataset, faiss_1t: object, qtype: str, metric: str
) -> None:
    """faiss's IndexIVFScalarQuantizer around quanta's coarse centroids (faiss keeps a
    quantizer that already holds them) trains the same ranges on the same residuals: the
    reconstructions and the search results must be faiss's, not only the recall."""
    faiss = faiss_1t
    ours = quanta.IndexIVFScalarQuantizer(sift.d, 32, qtype, metric)
    ours.train(sift.base)
    ours.add(sift.base)
    fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    coarse = (faiss.IndexFlatL2 if metric == "l2" else faiss.IndexFlatIP)(sift.d)  # type: ignore[attr-defined]
    coarse.add(ours.centroids)
    qt = getattr(faiss.ScalarQuantizer, FAISS_QT[qtype])
    ref = faiss.IndexIVFScalarQuantizer(coarse, sift.d, 32, qt, fm)  # type: ignore[attr-defined]
    ref.train(sift.base)
    ref.add(sift.base)
    ref.make_direct_map()
    assert ours.code_size == ref.code_size
    rows = np.arange(0, sift.base.shape[0], 37)
    rec = np.stack([ours.reconstruct(int(i)) for i in rows])
    rec_ref = np.stack([ref.reconstruct(int(i)) for i in rows])
    # fp16 residuals: the two libraries' float-to-half conversions may differ by a step or two
    # (2^-10 relative) where the residual is not exactly representable; the rest is the same
    # decode formula up to float rounding
    # (and a vector on a tie between two centroids may sit in the other list)
    fp16 = qtype == "fp16"
    rtol, atol = (2.0**-8, 0.02) if fp16 else (1e-5, 1e-3)
    np.testing.assert_allclose(rec, rec_ref, rtol=rtol, atol=atol)
    drtol = 1e-3 if fp16 else 1e-4  # distances: summation order, and those half steps
    for nprobe in (1, 4):
        ref.nprobe = nprobe
        D, ids = ours.search(sift.queries, K, nprobe=nprobe)
        Dr, Ir = ref.search(sift.queries, K)
        # the same candidates and distances up to float rounding (the kernels' summation order
        # differs): equal ids wherever the reference distances are not within rounding of a tie
        np.testing.assert_allclose(D, Dr, rtol=drtol, atol=1e-2)
        gaps = np.abs(np.diff(Dr, axis=1))
        clear = np.ones_like(Dr, dtype=bool)
        clear[:, 1:] &= gaps > 1e-3 * np.abs(Dr[:, 1:]) + 1e-2
        clear[:, :-1] &= gaps > 1e-3 * np.abs(Dr[:, :-1]) + 1e-2
        assert (ids[clear] == Ir[clear]).all(), f"nprobe {nprobe}"


def test_ivf_sq_factory_recall_and_files(sift: quanta.datasets.Dataset, tmp_path: Path) -> None:
    """``IVF16,SQ4`` scanning every list has the recall of 4-bit codes (the flat codec's within
    the paired tolerance: on SIFT the residuals' min/max range is nearly the vectors'), and its
    file loads memory-mapped with the same results and the saved nprobe."""
    flat = quanta.IndexScalarQuantizer(sift.d, "4bit")
    ivf = quanta.index_factory(sift.d, "IVF16,SQ4")
    assert isinstance(ivf, quanta.IndexIVFScalarQuantizer) and ivf.by_residual
    ivf.nprobe = 16  # every list: only the codes differ
    r_flat = overlap_at(_search(flat, sift), sift.gt, K)
    r_ivf = overlap_at(_search(ivf, sift), sift.gt, K)
    assert_recall_equivalent([r_ivf], [r_flat], "IVF16,SQ4 vs SQ4 R@10")
    path = tmp_path / "ivfsq.quanta"
    quanta.write_index(ivf, path)
    back = quanta.read_index(path, mmap=True)
    assert isinstance(back, quanta.IndexIVFScalarQuantizer) and back.nprobe == 16
    np.testing.assert_array_equal(back.search(sift.queries, K)[1], ivf.search(sift.queries, K)[1])


def test_ivf_sq_bad_arguments_are_typed_errors() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="qtype"):
        quanta.IndexIVFScalarQuantizer(8, 4, "9bit")
    with pytest.raises(quanta.DTypeError, match="by_residual"):
        quanta.IndexIVFScalarQuantizer(8, 4, "8bit", by_residual="yes")  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError, match="nlist"):
        quanta.IndexIVFScalarQuantizer(8, 0)
    with pytest.raises(quanta.InvalidArgumentError, match="metric"):
        quanta.IndexIVFScalarQuantizer(8, 4, "8bit", "cos")
    index = quanta.IndexIVFScalarQuantizer(8, 4, "8bit")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    with pytest.raises(quanta.NotTrainedError):
        index.add(x)
    with pytest.raises(quanta.NotTrainedError):
        index.search(x[:2], 1)
    index.train(x)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="x"):
        index.add(bad)
    with pytest.raises(quanta.ShapeError):
        index.add(x[:, :7])
