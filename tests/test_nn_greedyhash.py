"""GreedyHash (quanta.nn.greedyhash): straight-through sign, penalty and losses on hand cases,
training on tiny sets, encode∘pack against the sign rule, checkpoints, HashRetriever."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import quanta  # noqa: E402
from quanta.nn import (  # noqa: E402
    GreedyHash,
    GreedyHashLayer,
    HashRetriever,
    greedy_penalty,
    greedy_sign,
    seed_everything,
    train_greedyhash,
    train_greedyhash_unsupervised,
)
from quanta.nn.greedyhash import supervised_loss, unsupervised_loss  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models: one thread is faster, and much faster on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(
    n_per: int = 30, d: int = 12, c: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (c, d))
    x = np.concatenate([centres[i] + rng.normal(0, 1, (n_per, d)) for i in range(c)])
    y = np.repeat(np.arange(c), n_per)
    return x.astype(np.float32), y


# ---------------------------------------------------------------------------------------------
# sign and penalty


def test_greedy_sign_forward_rule_matches_sign_encoder() -> None:
    h = torch.tensor([[-2.0, -0.0, 0.0, 1e-30, 3.0, -1e-30, 0.5, -7.0]])
    b = greedy_sign(h)
    np.testing.assert_array_equal(b.numpy(), [[-1, -1, -1, 1, 1, -1, 1, -1]])
    # the same bits as quanta's sign rule (x > 0 → 1, 0 → 0 → −1)
    codes = quanta.SignEncoder(8).encode(h.numpy())
    np.testing.assert_array_equal(quanta.unpack_bits(codes, 8), b.numpy())
    assert b.dtype == h.dtype and set(np.unique(b.numpy())) <= {-1.0, 1.0}


def test_gradient_passes_through_sign_unchanged() -> None:
    h = torch.tensor([[-3.0, -0.5, 0.0, 0.2, 1.0, 5.0]], requires_grad=True)
    w = torch.tensor([[0.7, -1.3, 2.0, 0.1, -4.0, 9.0]])
    (greedy_sign(h) * w).sum().backward()
    assert h.grad is not None
    # identity: no clipping outside |h| <= 1 (unlike the hardtanh straight-through estimator)
    torch.testing.assert_close(h.grad, w, rtol=0, atol=0)


def test_penalty_hand_computed_value_and_gradient() -> None:
    h = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    p = greedy_penalty(h)
    # | |h| − 1 |³ = 1, 0, 1, 0.125 → mean 2.125 / 4
    assert float(p.detach()) == pytest.approx(2.125 / 4)
    p.backward()
    assert h.grad is not None
    # ∂/∂h = 3 (|h| − 1)² sgn(|h| − 1) sgn(h) / N (at h = 0 torch's sgn(0) = 0)
    expect = [0.0, 0.0, 3 * 1 * 1 * -1 / 4, 3 * 0.25 * -1 * 1 / 4]
    np.testing.assert_allclose(h.grad.numpy(), expect)
    assert float(greedy_penalty(torch.tensor([[1.0, -1.0]]))) == 0.0


def test_supervised_loss_hand_computed() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    h = torch.tensor([[2.0, 0.0]])  # penalty (1 + 1) / 2 = 1
    total, ce, pen = supervised_loss(logits, y, h, alpha=0.5)
    ce_hand = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(1 / (1 + math.e))) / 2
    assert float(ce) == pytest.approx(ce_hand)
    assert float(pen) == pytest.approx(1.0)
    assert float(total) == pytest.approx(ce_hand + 0.5)


def test_unsupervised_loss_halves_hand_computed() -> None:
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    h = b.clone()  # penalty 0
    # pairs (0, 2), (1, 3): cos f = 0, 1/√2; cos b = 1, 0 → ((1 − 0)² + (0 − 1/√2)²) / 2
    total, sim, pen = unsupervised_loss(f, h, b, alpha=0.1, pairs="halves")
    assert float(sim) == pytest.approx(0.75)
    assert float(pen) == 0.0 and float(total) == pytest.approx(0.75)
    # an odd fifth row is left out (pairs of the first 2·⌊N/2⌋ rows)
    f5 = torch.cat([f, torch.tensor([[5.0, -3.0]])])
    b5 = torch.cat([b, torch.tensor([[1.0, 1.0]])])
    assert float(unsupervised_loss(f5, b5, b5, pairs="halves")[1]) == pytest.approx(0.75)


def test_unsupervised_loss_all_pairs_matches_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(6, 5, generator=g)
    h = torch.randn(6, 8, generator=g)
    b = greedy_sign(h)
    sq = []
    for i in range(6):
        for j in range(i + 1, 6):
            cf = float(f[i] @ f[j] / (f[i].norm() * f[j].norm()))
            cb = float(b[i] @ b[j]) / 8
            sq.append((cb - cf) ** 2)
    total, sim, _ = unsupervised_loss(f, h, b, alpha=0.3, pairs="all")
    assert float(sim) == pytest.approx(np.mean(sq), rel=1e-5)
    assert float(total) == pytest.approx(np.mean(sq) + 0.3 * float(greedy_penalty(h)), rel=1e-5)
    with pytest.raises(quanta.InvalidArgumentError, match="pairs"):
        unsupervised_loss(f, h, b, pairs="some")
    with pytest.raises(quanta.ShapeError, match="at least 2"):
        unsupervised_loss(f[:1], h[:1], b[:1])


def test_hash_layer_is_linear_then_sign() -> None:
    torch.manual_seed(0)
    layer = GreedyHashLayer(5, 16)
    x = torch.randn(7, 5)
    h = layer.project(x)
    torch.testing.assert_close(h, x @ layer.linear.weight.T + layer.linear.bias)
    torch.testing.assert_close(layer(x), torch.where(h > 0, 1.0, -1.0))


# ---------------------------------------------------------------------------------------------
# models and training


def test_supervised_training_lowers_the_loss_on_a_tiny_set() -> None:
    x, y = _blobs()
    seed_everything(0)
    model = GreedyHash(12, 16, n_classes=3, backbone="mlp", feat_dim=16, hidden=32, n_hidden=1)
    hist = train_greedyhash(model, x, y, epochs=8, batch_size=16, device="cpu", seed=1)
    assert len(hist.loss) == 8 and hist.best_epoch == 7
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert hist.main[-1] < hist.main[0]
    # the codes separate the blobs: items of one class retrieve their own class first
    codes = model.encode(x)
    index = quanta.IndexBinaryFlat(16)
    index.add(codes)
    _, ids = index.search(codes, 10)
    assert quanta.metrics.precision_at_k(ids, y, y, 10) > 0.9


def test_unsupervised_training_lowers_the_loss_on_a_tiny_set() -> None:
    x, _ = _blobs(n_per=40)
    seed_everything(0)
    model = GreedyHash(12, 16)
    hist = train_greedyhash_unsupervised(
        model, x[:100], epochs=10, batch_size=20, val=x[100:], device="cpu", seed=2
    )
    assert len(hist.val) == 10 and hist.val_name == "val loss"
    assert hist.loss[-1] < hist.loss[0]
    assert hist.val[hist.best_epoch] == min(hist.val)
    for pairs in ("all",):
        seed_everything(0)
        m2 = GreedyHash(12, 16)
        h2 = train_greedyhash_unsupervised(m2, x, epochs=5, batch_size=20, pairs=pairs, seed=2)
        assert h2.main[-1] < h2.main[0]


def test_validation_keeps_the_best_epoch() -> None:
    x, y = _blobs(seed=4)
    seed_everything(0)
    model = GreedyHash(12, 8, n_classes=3, backbone="mlp", feat_dim=8, hidden=16, n_hidden=1)
    hist = train_greedyhash(
        model, x[::2], y[::2], epochs=4, batch_size=15, val=(x[1::2], y[1::2]), device="cpu"
    )
    assert len(hist.val) == 4 and hist.val[hist.best_epoch] == max(hist.val)
    # the kept weights are those of the best epoch: recomputing the validation mAP gives it back
    from quanta.nn.greedyhash import _self_map

    assert _self_map(model.encode(x[1::2]), y[1::2]) == pytest.approx(hist.val[hist.best_epoch])


def test_same_seed_same_codes() -> None:
    x, y = _blobs()
    out = []
    for _ in range(2):
        seed_everything(3)
        m = GreedyHash(12, 16, n_classes=3, backbone="mlp", feat_dim=8, hidden=16, n_hidden=1)
        train_greedyhash(m, x, y, epochs=2, batch_size=16, seed=5, device="cpu")
        out.append(m.encode(x))
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("backbone", ["none", "mlp", "cnn"])
def test_encode_then_pack_matches_the_sign_rule(backbone: str) -> None:
    rng = np.random.default_rng(0)
    d = 784 if backbone == "cnn" else 10
    x = rng.integers(0, 256, (9, d)).astype(np.float32)
    seed_everything(0)
    kwargs = {"feat_dim": 8, "hidden": 8, "n_hidden": 1} if backbone != "none" else {}
    model = GreedyHash(d, 24, backbone=backbone, **kwargs)
    model.fit_input_stats(torch.from_numpy(x))
    model.eval()
    codes = model.encode(x, batch_size=4)  # several batches
    assert codes.dtype == np.uint8 and codes.shape == (9, 3)
    h = model.project(x)
    # packed by hand: bit = h > 0, code bit 8i + j is bit j (LSB first) of byte i
    np.testing.assert_array_equal(codes, np.packbits(h > 0, axis=1, bitorder="little"))
    with torch.no_grad():
        _, b = model(torch.from_numpy(x))
    np.testing.assert_array_equal(quanta.unpack_bits(codes, 24), b.numpy())
    # bit j of byte i is code bit 8i + j, LSB first
    bits = (h > 0).astype(np.uint8)
    np.testing.assert_array_equal(codes[:, 0], (bits[:, :8] << np.arange(8)).sum(1))


def test_model_save_load_gives_the_same_codes(tmp_path: Path) -> None:
    x, y = _blobs()
    seed_everything(0)
    model = GreedyHash(12, 16, n_classes=3, backbone="mlp", feat_dim=8, hidden=16, n_hidden=1)
    train_greedyhash(model, x, y, epochs=2, batch_size=16, device="cpu")
    path = tmp_path / "gh.pt"
    model.save(path)
    back = GreedyHash.load(path)
    assert back.config() == model.config()
    np.testing.assert_array_equal(back.encode(x), model.encode(x))
    torch.testing.assert_close(back.shift, model.shift)
    with pytest.raises(quanta.FormatError, match="HashRetriever"):
        HashRetriever.load(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(quanta.FormatError):
        GreedyHash.load(tmp_path / "junk.pt")


def test_hash_retriever_fit_add_search_save_load(tmp_path: Path) -> None:
    x, y = _blobs()
    seed_everything(0)
    r = HashRetriever(
        GreedyHash(12, 16, n_classes=3, backbone="mlp", feat_dim=8, hidden=16, n_hidden=1)
    )
    with pytest.raises(quanta.NotTrainedError):
        r.add(x)
    r.fit(x, y, epochs=6, batch_size=16, device="cpu")
    assert r.history is not None and len(r.history.loss) == 6
    r.add(x[:50])
    r.add(x[50:])
    assert r.ntotal == 90
    d, ids = r.search(x[:5], 10)
    assert d.dtype == np.int32 and ids.dtype == np.int64 and ids.shape == (5, 10)
    # same order as a plain IndexBinaryFlat over the model's codes
    index = quanta.IndexBinaryFlat(16)
    index.add(r.model.encode(x))
    d_ref, i_ref = index.search(r.model.encode(x[:5]), 10)
    np.testing.assert_array_equal(ids, i_ref)
    np.testing.assert_array_equal(d, d_ref)
    path = tmp_path / "retriever.pt"
    r.save(path)
    back = HashRetriever.load(path)
    assert back.ntotal == 90 and "ntotal=90" in repr(back)
    d2, ids2 = back.search(x[:5], 10)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(d2, d)
    back.add(x[:1])  # ids continue after the loaded ones
    assert back.index.ids[-1] == 90
    # unsupervised fit through the same entry point
    seed_everything(0)
    u = HashRetriever(GreedyHash(12, 8)).fit(x, epochs=2, batch_size=16)
    u.add(x)
    assert u.search(x[:2], 3)[1].shape == (2, 3)


def test_bad_input_errors() -> None:
    x, y = _blobs()
    with pytest.raises(quanta.InvalidArgumentError, match="backbone"):
        GreedyHash(12, 16, backbone="resnet")
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        GreedyHash(12, 12)
    with pytest.raises(quanta.InvalidArgumentError, match="d_in"):
        GreedyHash(12, 16, backbone="cnn")
    with pytest.raises(quanta.InvalidArgumentError, match="n_classes"):
        train_greedyhash(GreedyHash(12, 16), x, y, epochs=1)
    model = GreedyHash(12, 16, n_classes=3)
    with pytest.raises(quanta.ShapeError):
        train_greedyhash(model, x[:, :5], y, epochs=1)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="NaN"):
        train_greedyhash(model, bad, y, epochs=1)
    with pytest.raises(quanta.InvalidArgumentError, match="y must be in"):
        train_greedyhash(model, x, y + 1, epochs=1)
    with pytest.raises(quanta.ShapeError, match="y must be 1-D"):
        train_greedyhash(model, x, y[:-1], epochs=1)
    with pytest.raises(quanta.InvalidArgumentError, match="alpha"):
        train_greedyhash(model, x, y, epochs=1, alpha=-1.0)
    with pytest.raises(quanta.InvalidArgumentError, match="optimizer"):
        train_greedyhash(model, x, y, epochs=1, optimizer="lbfgs")
    with pytest.raises(quanta.InvalidArgumentError, match="epochs"):
        train_greedyhash(model, x, y, epochs=0)
    with pytest.raises(quanta.InvalidArgumentError, match="device"):
        train_greedyhash(model, x, y, epochs=1, device="tpu")
    with pytest.raises(quanta.ShapeError, match="batch_size"):
        train_greedyhash_unsupervised(GreedyHash(12, 16), x[:10], epochs=1, batch_size=32)
    with pytest.raises(quanta.ShapeError, match="features"):
        train_greedyhash_unsupervised(GreedyHash(12, 16), x, features=x[:5], epochs=1)
    with pytest.raises(quanta.ShapeError):
        model.encode(x[:, :3])
    with pytest.raises(quanta.InvalidArgumentError, match="GreedyHash"):
        HashRetriever("model")  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError, match="classifier"):
        GreedyHash(12, 16).logits(torch.ones(1, 16))


@pytest.mark.parametrize("backbone", ["none", "mlp"])
def test_unfitted_input_statistics_are_not_trained_errors(backbone: str) -> None:
    x, _ = _blobs()
    kwargs = {"feat_dim": 8, "hidden": 8, "n_hidden": 1} if backbone != "none" else {}
    model = GreedyHash(12, 16, backbone=backbone, **kwargs)
    for call in (model.project, model.encode):
        with pytest.raises(quanta.NotTrainedError, match="input statistics were never fitted"):
            call(x)
    model.fit_input_stats(torch.from_numpy(x))
    assert model.encode(x).shape == (len(x), 2)
    # the trainers fit the statistics themselves
    fresh = GreedyHash(12, 16, backbone=backbone, **kwargs)
    train_greedyhash_unsupervised(fresh, x, epochs=1, batch_size=16, seed=0, device="cpu")
    assert fresh.encode(x).shape == (len(x), 2)


def test_cnn_model_needs_no_input_statistics() -> None:
    seed_everything(0)
    model = GreedyHash(784, 8, backbone="cnn", feat_dim=8)
    x = np.random.default_rng(0).integers(0, 256, (3, 784)).astype(np.float32)
    assert model.encode(x).shape == (3, 1)
