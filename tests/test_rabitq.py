"""RaBitQ codec and IndexRaBitQ: recall against faiss's RaBitQ at equal bits (paired tests whose
tolerance scales with the number of queries), the estimator's bound, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import quanta
from _support import assert_recall_not_worse, brute_force, overlap_at

faiss = pytest.importorskip("faiss")
K = 10


def _minilm(shared_data: Path, nq: int = 500) -> tuple[Any, Any, Any]:
    z = np.load(shared_data / "debian-minilm.npz")
    return (
        z["base"].astype(np.float32),
        z["queries"].astype(np.float32)[:nq],
        z["gt_ip"][:nq],
    )


def _faiss_rabitq(d: int, nbits: int, metric: str) -> Any:
    m = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    return faiss.IndexRaBitQ(d, m, nbits) if nbits > 1 else faiss.IndexRaBitQ(d, m)


@pytest.mark.slow
@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_recall_not_worse_than_faiss_rabitq_on_minilm(shared_data: Path, nbits: int) -> None:
    xb, xq, gt = _minilm(shared_data)
    ix = quanta.IndexRaBitQ(384, nbits, "ip")
    ix.train(xb)
    ix.add(xb)
    _, ids = ix.search(xq, K)
    fx = _faiss_rabitq(384, nbits, "ip")
    fx.train(xb)
    fx.add(xb)
    _, fids = fx.search(xq, K)
    assert_recall_not_worse(
        [overlap_at(ids, gt, K)], [overlap_at(fids, gt, K)], f"RaBitQ{nbits} minilm"
    )


@pytest.mark.parametrize("nbits", [1, 4])
def test_recall_not_worse_than_faiss_rabitq_on_sift(nbits: int) -> None:
    ds = quanta.datasets.load_demo()
    xb, xq, gt = ds.base, ds.queries[:200], ds.gt[:200]
    ix = quanta.index_factory(128, f"RaBitQ{nbits}")
    ix.train(xb)
    ix.add(xb)
    _, ids = ix.search(xq, K)
    fx = _faiss_rabitq(128, nbits, "l2")
    fx.train(xb)
    fx.add(xb)
    _, fids = fx.search(xq, K)
    assert_recall_not_worse(
        [overlap_at(ids, gt, K)], [overlap_at(fids, gt, K)], f"RaBitQ{nbits} sift"
    )


def test_more_bits_higher_recall_and_bounds_cover_the_truth() -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((4000, 64)).astype(np.float32)
    xq = rng.standard_normal((50, 64)).astype(np.float32)
    _, gt = brute_force(xb, xq, K)
    recalls = []
    for nbits in (1, 2, 4, 8):
        ix = quanta.IndexRaBitQ(64, nbits)
        ix.k_factor = 0  # the bound-pruned search: the estimator's own recall
        ix.train(xb)
        ix.add(xb)
        _, i, b = ix.search_with_bounds(xq, K)
        assert (b > 0).all()
        recalls.append(overlap_at(i, gt, K).mean())
        # the bound is a statement about one (query, vector) pair, not about the winners of a
        # search (selected by a low estimate, their errors lean negative): check it on all pairs
        c = ix.codec
        est, bound = c.estimate(xq, c.encode(xb), epsilon=ix.epsilon)
        true = ((xq[:, None, :] - xb[None]) ** 2).sum(-1)
        outside = float((np.abs(true - est) > bound).mean())
        p = quanta.rabitq.failure_probability(ix.epsilon)
        # 50 queries x 4000 vectors, correlated within a query: count 50 x 80 effective
        # samples and allow 4 binomial standard deviations
        assert outside <= p + 4 * np.sqrt(p * (1 - p) / 4000), (nbits, outside, p)
    assert recalls == sorted(recalls) and recalls[-1] > 0.95, recalls


def test_shortlist_recall_grows_with_k_factor_and_planes() -> None:
    # random 64-d data, where the partial (1-plane) estimate ranks poorly: a longer shortlist
    # or more scanned planes recovers the estimator's own ranking (a shortlist of everything)
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((3000, 64)).astype(np.float32)
    xq = rng.standard_normal((40, 64)).astype(np.float32)
    ix = quanta.IndexRaBitQ(64, 4)
    assert (ix.k_factor, ix.scan_planes) == (8, 1)
    ix.train(xb)
    ix.add(xb)
    _, exact = ix.search(xq, K, k_factor=300)  # per call: a shortlist of all 3000
    got = []
    for kf, planes in [(1, 1), (5, 1), (5, 2), (40, 2), (300, 1)]:
        ix.k_factor, ix.scan_planes = kf, planes
        _, i = ix.search(xq, K)
        got.append(overlap_at(i, exact, K).mean())
    assert got == sorted(got) and got[-1] == 1.0 and got[-2] > 0.98, got
    # the bound-pruned search misses only where an estimate leaves its bound (~5.7 % per pair
    # at epsilon 1.9, and then it must also cross the k-th distance)
    ix.k_factor = 0
    _, i = ix.search(xq, K)
    assert overlap_at(i, exact, K).mean() > 0.97
    with pytest.raises(quanta.InvalidArgumentError, match="scan_planes"):
        ix.scan_planes = 5
    with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
        ix.search(xq, K, k_factor=0)


def test_codec_estimates_match_the_index_and_decode() -> None:
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((300, 40)).astype(np.float32)
    c = quanta.RaBitQ(40, 3)
    c.train(xb)
    codes = c.encode(xb)
    assert codes.shape == (300, c.code_size) and codes.dtype == np.uint8
    est, bound = c.estimate(xb[:5], codes)
    assert est.shape == bound.shape == (5, 300) and (bound > 0).all()
    ix = quanta.IndexRaBitQ(40, 3)
    ix.train(xb)
    ix.add(xb)
    d, i = ix.search(xb[:5], 3)
    np.testing.assert_allclose(d, np.take_along_axis(est, i, 1), rtol=1e-4, atol=1e-4)
    rec = c.decode(codes)
    assert float(((rec - xb) ** 2).sum() / (xb**2).sum()) < 0.1
    np.testing.assert_allclose(c.rotation @ c.rotation.T, np.eye(40), atol=1e-4)


def test_bad_input_is_typed() -> None:
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexRaBitQ(8, 9)
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexRaBitQ(8, 1, "cos")
    ix = quanta.IndexRaBitQ(8, 2)
    with pytest.raises(quanta.NotTrainedError):
        ix.add(np.zeros((2, 8), np.float32))
    ix.train(np.ones((4, 8), np.float32))
    with pytest.raises(quanta.InvalidArgumentError):
        ix.add(np.full((2, 8), np.nan, np.float32))
    with pytest.raises(quanta.ShapeError):
        ix.search(np.zeros((2, 7), np.float32), 1)
    with pytest.raises(quanta.InvalidArgumentError):
        ix.epsilon = -1.0
    c = quanta.RaBitQ(8, 2)
    c.train(np.ones((4, 8), np.float32))
    with pytest.raises(quanta.ShapeError):
        c.decode(np.zeros((2, 3), np.uint8))
    bad = c.encode(np.ones((1, 8), np.float32))
    bad[0, -4:] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    with pytest.raises(quanta.InvalidArgumentError):
        c.decode(bad)


def _ivf_pair(desc: str, d: int, metric: str, xb: Any, nprobe: int) -> tuple[Any, Any]:
    ix = quanta.index_factory(d, desc, metric)
    ix.train(xb)
    ix.add(xb)
    ix.nprobe = nprobe
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    fx = faiss.index_factory(d, desc, fm)
    fx.train(xb)
    fx.add(xb)
    faiss.extract_index_ivf(fx).nprobe = nprobe
    return ix, fx


@pytest.mark.parametrize("nbits", [1, 4])
def test_ivf_rabitq_recall_not_worse_than_faiss_on_sift(nbits: int) -> None:
    ds = quanta.datasets.load_demo()
    xb, xq, gt = ds.base, ds.queries[:200], ds.gt[:200]
    ix, fx = _ivf_pair(f"IVF32,RaBitQ{nbits}", 128, "l2", xb, 8)
    assert isinstance(ix, quanta.IndexIVFRaBitQ) and ix.nbits == nbits
    _, ids = ix.search(xq, K)
    _, fids = fx.search(xq, K)
    assert_recall_not_worse(
        [overlap_at(ids, gt, K)], [overlap_at(fids, gt, K)], f"IVF32,RaBitQ{nbits} sift"
    )


@pytest.mark.slow
@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_ivf_rabitq_recall_not_worse_than_faiss_on_minilm(shared_data: Path, nbits: int) -> None:
    xb, xq, gt = _minilm(shared_data)
    ix, fx = _ivf_pair(f"IVF128,RaBitQ{nbits}", 384, "ip", xb, 16)
    _, ids = ix.search(xq, K)
    _, fids = fx.search(xq, K)
    assert_recall_not_worse(
        [overlap_at(ids, gt, K)], [overlap_at(fids, gt, K)], f"IVF128,RaBitQ{nbits} minilm"
    )


def test_ivf_rabitq_codes_around_the_list_centroid_beat_one_global_mean() -> None:
    # clustered data: coding each vector around its own list centroid (the point of the IVF
    # variant) must not lose to the flat index's one global mean at equal bits (paired test)
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 64)).astype(np.float32) * 4
    xb = (centres[rng.integers(0, 20, 6000)] + rng.standard_normal((6000, 64))).astype(np.float32)
    xq = (centres[rng.integers(0, 20, 200)] + rng.standard_normal((200, 64))).astype(np.float32)
    _, gt = brute_force(xb, xq, K)
    ivf = quanta.IndexIVFRaBitQ(64, 20, 2)
    ivf.train(xb)
    ivf.add(xb)
    flat = quanta.IndexRaBitQ(64, 2)
    flat.k_factor = 0
    flat.train(xb)
    flat.add(xb)
    _, i_ivf = ivf.search(xq, K, nprobe=20)
    _, i_flat = flat.search(xq, K)
    assert_recall_not_worse([overlap_at(i_ivf, gt, K)], [overlap_at(i_flat, gt, K)], "IVF vs flat")


def test_ivf_rabitq_bad_input_is_typed() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        quanta.IndexIVFRaBitQ(16, 4, 9)
    with pytest.raises(quanta.InvalidArgumentError, match="nlist"):
        quanta.IndexIVFRaBitQ(16, 0)
    with pytest.raises(quanta.InvalidArgumentError, match="metric"):
        quanta.IndexIVFRaBitQ(16, 4, metric="cos")
    ix = quanta.IndexIVFRaBitQ(16, 4, 2)
    with pytest.raises(quanta.InvalidArgumentError, match="epsilon"):
        ix.epsilon = -1.0
    with pytest.raises(quanta.NotTrainedError):
        ix.add(np.zeros((2, 16), np.float32))
    xb = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    ix.train(xb)
    with pytest.raises(quanta.InvalidArgumentError):
        ix.add(np.full((2, 16), np.nan, np.float32))
    with pytest.raises(quanta.ShapeError):
        ix.search(np.zeros((2, 15), np.float32), 1)
