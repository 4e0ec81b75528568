"""Spreading Vectors (quanta.nn.spreading): losses, mining, catalyzer, trainer, end-to-end index.

Tiny models and synthetic data only: the reproduction on real data is
``python -m quanta.experiments.spreading``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import quanta  # noqa: E402
from quanta.nn import _common  # noqa: E402
from quanta.nn.spreading import (  # noqa: E402
    Catalyzer,
    SpreadingVectors,
    knn_positives,
    koleo_loss,
    rank_negatives,
    train_catalyzer,
    triplet_rank_loss,
)

TINY = {"hidden": 32, "n_hidden": 2, "epochs": 2, "k_pos": 5, "k_neg": 10}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def blobs(n: int = 300, d: int = 12, centers: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d)) * 4
    return (c[rng.integers(centers, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# KoLeo


def test_koleo_hand_case_value_and_gradient() -> None:
    # points on a line at 0, 1, 3: nearest-neighbour distances 1, 1, 2
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = koleo_loss(z)
    expected = -(math.log(3 * 1) + math.log(3 * 1) + math.log(3 * 2)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    # d/dz of -1/3 Σ log ρ_i, by hand: z0 gets 1/3 + 1/3, z1 -1/3 - 1/3 + 1/6, z2 -1/6
    g = np.array([[2 / 3, 0.0], [-1 / 2, 0.0], [-1 / 6, 0.0]])
    np.testing.assert_allclose(z.grad.numpy(), g, atol=1e-12)


def test_koleo_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(7, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(koleo_loss, (z,), eps=1e-6, atol=1e-5)


def test_koleo_duplicates_finite_and_small_batches() -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    v = koleo_loss(z)
    assert math.isfinite(v.item())
    assert v.item() > 0  # ρ = 1e-8 for the duplicates dominates: -log(3e-8) > 0
    one = torch.ones(1, 3, requires_grad=True)
    out = koleo_loss(one)
    assert out.item() == 0.0
    out.backward()  # the term is skipped but stays in the graph
    with pytest.raises(quanta.ShapeError):
        koleo_loss(torch.ones(3))


def test_koleo_prefers_spread_points() -> None:
    gen = torch.Generator().manual_seed(0)
    spread = torch.nn.functional.normalize(torch.randn(64, 8, generator=gen), dim=1)
    clumped = torch.nn.functional.normalize(spread * 0.05 + torch.ones(8), dim=1)
    assert koleo_loss(spread).item() < koleo_loss(clumped).item()


# ---------------------------------------------------------------------------------------------
# triplet loss


def test_triplet_rank_loss_hand_case() -> None:
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    n = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    # first triplet satisfied (1 < 2): 0; second violated by 3 - 1 = 2; mean = 1
    loss = triplet_rank_loss(a, p, n)
    assert loss.item() == pytest.approx(1.0, abs=1e-4)
    assert triplet_rank_loss(a, p, n, margin=1.5).item() == pytest.approx((0.5 + 3.5) / 2, 1e-4)
    loss.backward()
    assert a.grad is not None
    # only the violated triplet pushes its anchor: towards p (0, 3), away from n (1, 0)
    np.testing.assert_allclose(a.grad.numpy()[0], [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(a.grad.numpy()[1], [0.5, -0.5], atol=1e-4)
    with pytest.raises(quanta.ShapeError):
        triplet_rank_loss(a, p[:1], n)


# ---------------------------------------------------------------------------------------------
# mining


def _brute_knn(x: np.ndarray, k: int) -> np.ndarray:
    d2 = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def test_knn_positives_are_true_input_space_neighbours() -> None:
    x = np.random.default_rng(1).normal(size=(120, 6)).astype(np.float32)
    ids = knn_positives(x, 10)
    assert ids.shape == (120, 10) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, _brute_knn(x, 10))
    with_self = knn_positives(x, 10, include_self=True)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(120))
    np.testing.assert_array_equal(with_self[:, 1:], ids[:, :9])


def test_knn_positives_never_return_the_anchor_with_duplicates() -> None:
    x = np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32)
    x[7] = x[3]  # exact duplicate: row 7's first hit is row 3 (lower id on the tie)
    ids = knn_positives(x, 4)
    assert not (ids == np.arange(40)[:, None]).any()
    assert ids[7, 0] == 3 and ids[3, 0] == 7
    with pytest.raises(quanta.InvalidArgumentError):
        knn_positives(x[:4], 4)


def test_rank_negatives_take_the_kth_output_neighbour() -> None:
    z = np.random.default_rng(4).normal(size=(80, 5)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    neg = rank_negatives(z, rank=20)
    d2 = ((z[:, None, :].astype(np.float64) - z[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")
    np.testing.assert_array_equal(neg, order[:, 19])  # rank 1 is the row itself
    zq = quanta.ZnSphereCodec(5, 3).quantize(z)
    negq = rank_negatives(z, zq, rank=20)
    d2q = ((z[:, None, :].astype(np.float64) - zq[None, :, :]) ** 2).sum(-1)
    # the 20th distance to the quantized database (ids may tie on equal codes)
    kth = np.sort(d2q, axis=1)[:, 19]
    np.testing.assert_allclose(d2q[np.arange(80), negq], kth, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# catalyzer


def test_catalyzer_outputs_unit_rows_and_checks_input() -> None:
    cat = Catalyzer(12, 8, hidden=16)
    x = blobs(50)
    with pytest.raises(quanta.NotTrainedError, match="input normalization was never fitted"):
        cat.embed(x)
    cat.fit_input_normalization(x)
    out = cat(torch.from_numpy(x))  # train mode
    np.testing.assert_allclose(out.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    z = cat.embed(x)
    assert z.shape == (50, 8) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert cat.training  # embed restores the mode
    with pytest.raises(quanta.ShapeError):
        cat.embed(np.zeros((3, 11), dtype=np.float32))
    with pytest.raises(quanta.ShapeError):
        cat(torch.zeros(3, 11))
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="NaN"):
        cat.embed(bad)
    with pytest.raises(quanta.InvalidArgumentError):
        Catalyzer(12, 8, dropout=1.0)


def test_training_is_deterministic_and_learns_neighbourhoods(tmp_path: Path) -> None:
    x = blobs(300)
    ckpt = tmp_path / "cat.pt"
    kw = {**TINY, "epochs": 8, "lambda_koleo": 0.02}
    a = train_catalyzer(x, 8, seed=7, checkpoint=ckpt, **kw)
    b = train_catalyzer(x, 8, seed=7, **kw)
    c = train_catalyzer(x, 8, seed=8, **{**kw, "epochs": 1})
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert not torch.equal(a.net.net[0].weight, c.net.net[0].weight)
    assert len(a.history) == 8 and all(math.isfinite(h["loss"]) for h in a.history)
    # the 4-entry schedule stretched over 8 epochs
    assert [h["lr"] for h in a.history] == [0.1] * 4 + [0.05] * 2 + [0.01] * 2
    # neighbourhoods: output-space 10-NN overlap with the input-space 10-NN improves on the
    # same network before training (the trainer seeds, then builds the net)
    true = _brute_knn(x, 10)

    def overlap(cat: Catalyzer) -> float:
        got = _brute_knn(cat.embed(x), 10)
        return float(np.mean([len(set(g) & set(t)) for g, t in zip(got, true)])) / 10

    _common.seed_everything(7)
    start = Catalyzer(12, 8, hidden=32)
    start.fit_input_normalization(x)
    start.eval()
    assert overlap(a) > overlap(start) + 0.03
    loaded = Catalyzer.load(ckpt)
    np.testing.assert_array_equal(loaded.embed(x), a.embed(x))
    assert loaded.history == a.history


def test_validation_keeps_the_best_epoch() -> None:
    x = blobs(120)
    scores = iter([0.1, 0.9, 0.2])
    snapshots: list[np.ndarray] = []

    def validate(cat: Catalyzer, epoch: int) -> float:
        snapshots.append(cat.embed(x))
        return next(scores)

    cat = train_catalyzer(x, 8, validate=validate, **{**TINY, "epochs": 3})
    assert cat.best_epoch == 1
    assert [h["val"] for h in cat.history] == [0.1, 0.9, 0.2]
    np.testing.assert_array_equal(cat.embed(x), snapshots[1])


def test_quantizer_aware_training_and_bad_arguments() -> None:
    x = blobs(120, d=12)
    for q in ("sign", quanta.ZnSphereCodec(8, 3), quanta.E8ShellCodec(1, d=8)):
        cat = train_catalyzer(x, 8, quantizer=q, **{**TINY, "epochs": 1})
        assert math.isfinite(cat.history[0]["loss"])
    with pytest.raises(quanta.ShapeError):
        train_catalyzer(x, 8, quantizer=quanta.ZnSphereCodec(6, 3), **TINY)
    with pytest.raises(quanta.InvalidArgumentError):
        train_catalyzer(x, 8, quantizer="lattice", **TINY)
    with pytest.raises(quanta.ShapeError):
        train_catalyzer(x[:, :5].reshape(-1), 8, **TINY)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(quanta.InvalidArgumentError, match="Inf"):
        train_catalyzer(bad, 8, **TINY)
    with pytest.raises(quanta.InvalidArgumentError):
        train_catalyzer(x, 8, lambda_koleo=float("nan"), **TINY)
    with pytest.raises(quanta.ShapeError):
        train_catalyzer(x, 8, positives=np.zeros((5, 2), dtype=np.int64), **TINY)
    with pytest.raises(quanta.ShapeError):
        train_catalyzer(x, 8, catalyzer=Catalyzer(12, 6, hidden=8), **TINY)


# ---------------------------------------------------------------------------------------------
# end-to-end


@pytest.fixture(scope="module")
def trained() -> tuple[Catalyzer, np.ndarray]:
    torch.set_num_threads(1)
    x = blobs(240, d=12, seed=5)
    return train_catalyzer(x, 8, lambda_koleo=0.02, **TINY), x


CODECS = {
    "sign": lambda: "sign",
    "zn": lambda: quanta.ZnSphereCodec(8, 4),
    "e8": lambda: quanta.E8ShellCodec([1, 2], d=8),
    "pq": lambda: quanta.ProductQuantizer(8, 2, 4),
}


@pytest.mark.filterwarnings("ignore:sub-quantizer")  # tiny PQ training sets
@pytest.mark.parametrize("kind", sorted(CODECS))
def test_spreading_vectors_end_to_end_and_save_load(
    kind: str, trained: tuple[Catalyzer, np.ndarray], tmp_path: Path
) -> None:
    cat, x = trained
    sv = SpreadingVectors(cat, CODECS[kind]())
    sv.fit(x, train_catalyzer=False)
    assert sv.is_trained and sv.kind == kind
    sv.add(x[:200])
    assert sv.ntotal == 200
    dist, ids = sv.search(x[200:], 5)
    assert dist.shape == (40, 5) and dist.dtype == np.float32 and ids.dtype == np.int64
    assert (np.diff(dist, axis=1) >= 0).all()
    # same ranking as the pipeline done by hand
    z = cat.embed(x)
    if kind == "sign":
        ref = quanta.IndexBinaryFlat(8)
        ref.add(quanta.pack_bits(z[:200]))
        dist_ref, ids_ref = ref.search(quanta.pack_bits(z[200:]), 5)
        np.testing.assert_array_equal(dist, dist_ref.astype(np.float32))
    elif kind in ("zn", "e8"):
        codec = sv.codec
        dec = codec.decode(codec.encode(z[:200]))
        d2 = ((z[200:, None, :].astype(np.float64) - dec[None]) ** 2).sum(-1)
        np.testing.assert_allclose(dist, np.sort(d2, axis=1)[:, :5], atol=1e-4)
        # independent ranking: stable sort of the exact distances to the decoded points, so
        # equal distances (vectors encoded to the same point) go to the lower id
        ids_ref = np.argsort(d2, axis=1, kind="stable")[:, :5]
    else:
        ref_pq = quanta.IndexPQ.from_pq(sv.codec)
        ref_pq.add(z[:200])
        _, ids_ref = ref_pq.search(z[200:], 5)
    np.testing.assert_array_equal(ids, ids_ref)
    # padding when k > ntotal
    dist2, ids2 = sv.search(x[:2], 205)
    assert (ids2[:, 200:] == -1).all() and np.isinf(dist2[:, 200:]).all()
    # save -> load -> same outputs
    path = tmp_path / f"sv_{kind}.pt"
    sv.save(path)
    back = SpreadingVectors.load(path)
    assert back.ntotal == 200 and back.nbits == sv.nbits and back.kind == kind
    np.testing.assert_array_equal(back.codes(), sv.codes())
    dist_back, ids_back = back.search(x[200:], 5)
    np.testing.assert_array_equal(ids_back, ids)
    np.testing.assert_array_equal(dist_back, dist)
    # bad input
    with pytest.raises(quanta.ShapeError):
        sv.search(np.zeros((2, 11), dtype=np.float32), 3)
    q = x[200:203].copy()
    q[0, 0] = np.nan
    with pytest.raises(quanta.InvalidArgumentError):
        sv.search(q, 3)
    with pytest.raises(quanta.InvalidArgumentError):
        sv.search(x[:2], 0)
    with pytest.raises(quanta.ShapeError):
        sv.add(np.ones((2, 13), dtype=np.float32))


def test_spreading_vectors_errors(tmp_path: Path) -> None:
    cat = Catalyzer(12, 8, hidden=8)
    with pytest.raises(quanta.ShapeError):
        SpreadingVectors(cat, quanta.ZnSphereCodec(6, 3))
    with pytest.raises(quanta.DTypeError):
        SpreadingVectors(cat, quanta.IndexFlat(8))  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError):
        SpreadingVectors(cat, "zn")
    sv = SpreadingVectors(cat, quanta.ZnSphereCodec(8, 3))
    with pytest.raises(quanta.NotTrainedError):
        sv.add(np.zeros((2, 12), dtype=np.float32))
    pq = SpreadingVectors(cat, quanta.ProductQuantizer(8, 2, 4))
    cat.fit_input_normalization(blobs(60))
    with pytest.raises(quanta.NotTrainedError):
        pq.search(np.zeros((2, 12), dtype=np.float32), 1)
    other = tmp_path / "cat.pt"
    cat.save(other)
    with pytest.raises(quanta.FormatError, match="expected"):
        SpreadingVectors.load(other)  # a catalyzer checkpoint, not a SpreadingVectors one
    with pytest.raises(quanta.FormatError):
        _common.load_checkpoint(other, "quanta.nn.SomethingElse")


@pytest.mark.filterwarnings("ignore:sub-quantizer")
def test_fit_trains_the_catalyzer_and_pq() -> None:
    x = blobs(160, d=12, seed=9)
    sv = SpreadingVectors(Catalyzer(12, 8, hidden=16), quanta.ProductQuantizer(8, 2, 4))
    sv.fit(x, epochs=1, k_pos=5, k_neg=10)
    assert sv.is_trained and len(sv.catalyzer.history) == 1
    sv.add(x)
    _, ids = sv.search(x[:10], 1)
    assert ids.shape == (10, 1) and (ids >= 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_runs_on_cuda() -> None:
    x = blobs(120)
    cat = train_catalyzer(x, 8, device="cuda", **TINY)
    z = cat.embed(x)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mining_helpers_accept_cuda_tensors() -> None:
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    xc = torch.from_numpy(x).cuda()
    np.testing.assert_array_equal(knn_positives(xc, 3), knn_positives(x, 3))
    np.testing.assert_array_equal(rank_negatives(xc, xc, 5), rank_negatives(x, x, 5))
