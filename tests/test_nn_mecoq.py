"""MeCoQ (quanta.nn.mecoq): soft PQ, losses on hand cases, code memory FIFO, AQS export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import quanta  # noqa: E402
from quanta.nn import mecoq  # noqa: E402
from quanta.nn.mecoq import (  # noqa: E402
    CodeMemory,
    ImageAugment,
    MeCoQ,
    SoftPQ,
    codeword_regularizer,
    debiased_contrastive_loss,
    soft_code_entropy,
    train_mecoq,
)


def _vector_model(seed: int = 0, M: int = 2, ksub: int = 16, feat_dim: int = 8) -> MeCoQ:
    torch.manual_seed(seed)
    cfg: dict[str, Any] = {
        "encoder": "mlp",
        "input": "vector",
        "d_in": 12,
        "enc_dim": 16,
        "hidden": 16,
        "n_hidden": 1,
        "feat_dim": feat_dim,
        "M": M,
        "ksub": ksub,
        "alpha": 10.0,
        "learn_codebooks": True,
        "pixel_scale": 1.0,
    }
    return MeCoQ(cfg).eval()


# ----------------------------------------------------------------------------- soft PQ


def test_soft_assignment_tends_to_hard_codes_as_alpha_grows() -> None:
    torch.manual_seed(1)
    z = torch.randn(50, 12)
    pq = SoftPQ(12, 3, ksub=8, alpha=1.0)
    hard = pq.hard_codes(z)
    onehot = torch.nn.functional.one_hot(hard, 8).float()
    errs = []
    for alpha in (1.0, 10.0, 100.0, 1e4):
        pq.alpha = alpha
        zt, p = pq(z)
        assert p.shape == (50, 3, 8)
        assert torch.allclose(p.sum(-1), torch.ones(50, 3), atol=1e-5)
        errs.append(float((p.detach() - onehot).abs().max()))
    assert errs == sorted(errs, reverse=True)
    assert errs[-1] < 1e-4
    # the soft reconstruction tends to the hard one: the chosen unit codewords
    hard_rec = pq.decode(onehot)
    assert torch.allclose(zt, hard_rec, atol=1e-4)
    cb = pq.codebooks
    assert torch.allclose(cb.norm(dim=-1), torch.ones(3, 8), atol=1e-6)
    assert torch.allclose(hard_rec.reshape(50, 3, 4)[:, 1], cb[1][hard[:, 1]])


def test_hard_codes_are_argmax_of_normalized_inner_products_lowest_on_ties() -> None:
    pq = SoftPQ(4, 2, ksub=4)
    with torch.no_grad():
        c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
        pq.raw_codebooks.copy_(torch.stack([c, c]))
    # sub-vector 0 points along e1 (codewords 0 and 2 tie: lowest wins), sub-vector 1 along e2;
    # scaling a sub-vector does not change its code (sub-vectors are normalized)
    z = torch.tensor([[5.0, 0.0, 0.0, 0.1], [-0.1, 0.0, 0.0, -3.0]])
    # row 1, sub-space 1 (-e2): codewords 0, 2 and 3 tie at 0 -> 0
    assert pq.hard_codes(z).tolist() == [[0, 1], [3, 0]]


def test_renormalize_and_frozen_codebooks() -> None:
    pq = SoftPQ(8, 2, ksub=4, learn_codebooks=False)
    assert not pq.raw_codebooks.requires_grad
    with torch.no_grad():
        pq.raw_codebooks.mul_(3.0)
    pq.renormalize_()
    assert torch.allclose(pq.raw_codebooks.norm(dim=-1), torch.ones(2, 4), atol=1e-6)


# ----------------------------------------------------------------------------- losses


def _reference_loss(
    z1: np.ndarray, z2: np.ndarray, mem: np.ndarray | None, t: float, rho: float, compat: str
) -> float:
    """Loop over anchors in float64 (independent of the vectorized implementation)."""
    f = np.concatenate([z1, z2]).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    b = len(z1)
    if mem is not None:
        mem = mem.astype(np.float64)
        if compat == "paper":
            mem = mem / np.maximum(np.linalg.norm(mem, axis=1, keepdims=True), 1e-12)
    total = 0.0
    for q in range(2 * b):
        kp = (q + b) % (2 * b)
        pos = math.exp(f[q] @ f[kp] / t)
        negs = [math.exp(f[q] @ f[j] / t) for j in range(2 * b) if j not in (q, kp)]
        n_neg = 2 * b - 2
        if mem is not None:
            negs += [math.exp(f[q] @ m / t) for m in mem]
            if compat == "paper":
                n_neg += len(mem)
        g = sum(negs)
        if rho > 0:
            floor = n_neg * math.exp(-1 / t) if compat == "paper" else math.exp(-n_neg / t)
            g = max((g - rho * n_neg * pos) / (1 - rho), floor)
        total += -math.log(pos / (pos + g))
    return total / (2 * b)


def test_contrastive_loss_hand_case_infonce_and_debiased() -> None:
    e = torch.eye(3, dtype=torch.float64)
    z1 = torch.stack([e[0], e[1]])
    z2 = torch.stack([e[0], e[1]]) * 2.0  # rows are normalized: the scale is irrelevant
    t = 0.5
    # every anchor: positive similarity 1, two negatives of similarity 0
    plain = -math.log(math.exp(2) / (math.exp(2) + 2))
    got = debiased_contrastive_loss(z1, z2, temperature=t, rho_plus=0.0)
    assert float(got) == pytest.approx(plain, rel=1e-6)
    g = max((2 - 0.1 * 2 * math.exp(2)) / 0.9, 2 * math.exp(-2))
    deb = -math.log(math.exp(2) / (math.exp(2) + g))
    got = debiased_contrastive_loss(z1, z2, temperature=t, rho_plus=0.1)
    assert float(got) == pytest.approx(deb, rel=1e-6)
    # a large prior hits the clamp: paper floor N·e^{-1/T}, released code e^{-N/T}
    pos = math.exp(2)
    clamp_paper = -math.log(pos / (pos + 2 * math.exp(-2)))
    clamp_code = -math.log(pos / (pos + math.exp(-4)))
    got = debiased_contrastive_loss(z1, z2, temperature=t, rho_plus=0.9)
    assert float(got) == pytest.approx(clamp_paper, rel=1e-6)
    got = debiased_contrastive_loss(z1, z2, temperature=t, rho_plus=0.9, compat="released_code")
    assert float(got) == pytest.approx(clamp_code, rel=1e-6)


def test_contrastive_loss_memory_hand_case_paper_vs_released_code() -> None:
    e = torch.eye(3, dtype=torch.float64)
    z1, z2 = torch.stack([e[0], e[1]]), torch.stack([e[0], e[1]])
    mem = torch.stack([2.0 * e[0]])  # not unit: paper re-normalizes, the released code does not
    t = 0.5
    # anchors along e1 (2 of 4) see the memory at s=1 (paper) or s=2 (code); the others at 0
    pos = math.exp(2)
    paper_e1 = -math.log(pos / (pos + 2 + math.exp(2)))
    paper_e2 = -math.log(pos / (pos + 2 + 1))
    got = debiased_contrastive_loss(z1, z2, mem, temperature=t, rho_plus=0.0)
    assert float(got) == pytest.approx((paper_e1 + paper_e2) / 2, rel=1e-6)
    code_e1 = -math.log(pos / (pos + 2 + math.exp(4)))
    got = debiased_contrastive_loss(
        z1, z2, mem, temperature=t, rho_plus=0.0, compat="released_code"
    )
    assert float(got) == pytest.approx((code_e1 + paper_e2) / 2, rel=1e-6)
    # debiased with memory: N counts the memory row in the paper form only
    g1 = max((2 + math.exp(2) - 0.1 * 3 * pos) / 0.9, 3 * math.exp(-2))
    g2 = max((3 - 0.1 * 3 * pos) / 0.9, 3 * math.exp(-2))
    want = (-math.log(pos / (pos + g1)) - math.log(pos / (pos + g2))) / 2
    got = debiased_contrastive_loss(z1, z2, mem, temperature=t, rho_plus=0.1)
    assert float(got) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("compat", ["paper", "released_code"])
@pytest.mark.parametrize("rho", [0.0, 0.1, 0.15])
def test_contrastive_loss_matches_a_loop_reference(compat: str, rho: float) -> None:
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    mem = rng.normal(size=(5, 8)) * 0.3
    for m in (None, mem):
        want = _reference_loss(z1, z2, m, 0.3, rho, compat)
        got = debiased_contrastive_loss(
            torch.tensor(z1),
            torch.tensor(z2),
            None if m is None else torch.tensor(m),
            temperature=0.3,
            rho_plus=rho,
            compat=compat,
        )
        assert float(got) == pytest.approx(want, rel=1e-9)


def test_loss_gradient_reaches_codebooks_and_encoder() -> None:
    torch.manual_seed(0)
    pq = SoftPQ(8, 2, ksub=4)
    z = torch.randn(6, 8, requires_grad=True)
    zt, _ = pq(z)
    loss = debiased_contrastive_loss(zt[:3], zt[3:]) + 0.5 * codeword_regularizer(pq.raw_codebooks)
    loss.backward()
    assert pq.raw_codebooks.grad is not None and float(pq.raw_codebooks.grad.abs().sum()) > 0
    assert z.grad is not None and float(z.grad.abs().sum()) > 0


def test_codeword_regularizer_and_entropy_hand_cases() -> None:
    same = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # two equal directions: all products 1
    assert float(codeword_regularizer(same)) == pytest.approx(1.0)
    opposite = torch.tensor([[[1.0, 0.0], [-2.0, 0.0]]])  # (1 + 1 - 1 - 1) / 4
    assert float(codeword_regularizer(opposite)) == pytest.approx(0.0, abs=1e-7)
    ortho = torch.eye(4).reshape(1, 4, 4)  # only the diagonal: 4 / 16
    assert float(codeword_regularizer(ortho)) == pytest.approx(0.25)
    uniform = torch.full((3, 2, 8), 1 / 8)
    assert float(soft_code_entropy(uniform)) == pytest.approx(math.log(8), rel=1e-6)
    onehot = torch.nn.functional.one_hot(torch.tensor([[1, 2], [0, 7]]), 8).float()
    assert float(soft_code_entropy(onehot)) == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- code memory


def _tagged(values: list[float]) -> Any:
    """Codes (n, 1, 2) whose first entry carries a tag."""
    v = torch.tensor(values).reshape(-1, 1, 1)
    return torch.cat([v, 1 - v], dim=2)


def test_code_memory_is_fifo_with_wraparound() -> None:
    mem = CodeMemory(5, 1, 2)
    assert len(mem) == 0 and mem.codes().shape == (0, 1, 2)
    mem.enqueue(_tagged([0.1, 0.2]))
    mem.enqueue(_tagged([0.3, 0.4]))
    assert len(mem) == 4 and not mem.is_full
    assert mem.codes()[:, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    unmasked = mem.codes(mask_unfilled=False)
    assert unmasked.shape == (5, 1, 2) and unmasked[4].abs().sum() == 0  # zero slot kept
    mem.enqueue(_tagged([0.5, 0.6]))  # wraps: 0.1 is evicted
    assert mem.is_full and len(mem) == 5
    assert mem.codes()[:, 0, 0].tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6])
    mem.enqueue(_tagged([0.7]))
    assert mem.codes()[:, 0, 0].tolist() == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
    mem.enqueue(_tagged([0.01 * i for i in range(8)]))  # larger than the queue: last 5 kept
    assert mem.codes()[:, 0, 0].tolist() == pytest.approx([0.03, 0.04, 0.05, 0.06, 0.07])
    mem.reset()
    assert len(mem) == 0
    with pytest.raises(quanta.ShapeError, match="codes must have shape"):
        mem.enqueue(torch.zeros(2, 2, 2))


def test_code_memory_detaches_and_is_redecoded_with_current_codebooks() -> None:
    pq = SoftPQ(4, 2, ksub=4)
    z = torch.randn(3, 4, requires_grad=True)
    _, p = pq(z)
    mem = CodeMemory(8, 2, 4)
    mem.enqueue(p)
    assert not mem.codes().requires_grad
    before = pq.decode(mem.codes()).detach().clone()
    with torch.no_grad():
        pq.raw_codebooks.mul_(-1.0)
    assert torch.allclose(pq.decode(mem.codes()), -before, atol=1e-6)


# ----------------------------------------------------------------------------- augmentations


def test_image_augment_identity_flip_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=g)
    ident = ImageAugment(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, noise_p=0.0
    )
    assert torch.allclose(ident(x, g), x, atol=1e-5)
    flip = ImageAugment(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, noise_p=0.0
    )
    assert torch.allclose(flip(x, g), torch.flip(x, dims=[3]), atol=1e-5)
    out = ImageAugment()(x, g)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.allclose(out, x)
    a = ImageAugment()(x, torch.Generator().manual_seed(5))
    b = ImageAugment()(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- export / AQS


def test_exported_index_ranks_like_a_torch_reference() -> None:
    model = _vector_model()
    rng = np.random.default_rng(0)
    xdb = rng.normal(size=(300, 12)).astype(np.float32)
    xq = rng.normal(size=(10, 12)).astype(np.float32)
    index = model.to_index(xdb)
    assert isinstance(index, quanta.IndexPQ) and index.metric == "ip" and index.ntotal == 300
    codes = model.encode(xdb)
    np.testing.assert_array_equal(index.codes, codes)
    cb = model.codebooks()
    np.testing.assert_allclose(index.pq.centroids, cb, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(cb, axis=-1), 1.0, atol=1e-6)
    for compat in ("paper", "released_code"):
        z = model.embed(xq).double()
        zs = z.reshape(10, 2, 4)
        if compat == "paper":
            zs = zs / zs.norm(dim=-1, keepdim=True)
        table = torch.einsum("qmd,mkd->qmk", zs, torch.tensor(cb, dtype=torch.float64)).numpy()
        scores = table[:, 0, codes[:, 0]] + table[:, 1, codes[:, 1]]  # (nq, ndb)
        ref = np.stack([np.lexsort((np.arange(300), -s))[:50] for s in scores])
        D, ids = model.search(index, xq, 50, compat=compat)
        assert D.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (10, 50)
        np.testing.assert_array_equal(ids, ref)
        np.testing.assert_allclose(D, np.take_along_axis(scores, ref, 1), atol=1e-5)
    # duplicated codes among 300 items over 16*16 cells: ties exist and go to the lower id
    assert len({tuple(c) for c in codes}) < 300


def test_rust_l2_encoding_of_unit_subvectors_equals_argmax_codes() -> None:
    """Fallback path (no add_codes): with unit codewords, nearest-L2 = max inner product."""
    model = _vector_model(seed=2)
    x = np.random.default_rng(1).normal(size=(200, 12)).astype(np.float32)
    zn = model.query_vectors(x, "paper")
    pq = quanta.ProductQuantizer.from_centroids(model.codebooks())
    np.testing.assert_array_equal(pq.encode(zn), model.encode(x))


def test_train_checkpoint_seed_and_image_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    val = (x[:8], y[:8], x[8:], y[8:])
    kw: dict[str, Any] = dict(
        M=2,
        ksub=8,
        feat_dim=8,
        encoder="mlp",
        enc_dim=16,
        hidden=16,
        n_hidden=1,
        epochs=3,
        batch_size=16,
        memory_size=20,
        queue_begin_epoch=1,
        val=val,
        val_k=20,
        seed=7,
    )
    ck = tmp_path / "m.ckpt"
    model, hist = train_mecoq(x, checkpoint=ck, **kw)
    assert len(hist) == 3 and all(np.isfinite(h["loss"]) for h in hist)
    assert hist[0]["memory"] == 0 and hist[1]["memory"] == 20  # enabled from epoch 1, full
    assert all(0 <= h["val_map"] <= 1 for h in hist)
    again, _ = train_mecoq(x, **kw)
    np.testing.assert_array_equal(again.codebooks(), model.codebooks())
    loaded = MeCoQ.load(ck)
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
    assert mecoq.load_mecoq(ck).config == model.config
    # select="last" returns the last epoch's weights; the callback sees every epoch
    seen: list[tuple[int, float, Any]] = []

    def snap(epoch: int, m: MeCoQ, rec: dict[str, float]) -> None:
        seen.append((epoch, rec["val_map"], m.codebooks().copy()))

    last, hist_last = train_mecoq(x, select="last", callback=snap, **kw)
    assert [e for e, _, _ in seen] == [0, 1, 2]
    assert [v for _, v, _ in seen] == [h["val_map"] for h in hist_last]
    np.testing.assert_array_equal(last.codebooks(), seen[-1][2])
    best = int(np.argmax([v for _, v, _ in seen]))
    np.testing.assert_array_equal(model.codebooks(), seen[best][2])
    # 28x28 uint8 images through the small CNN and the image augmentations
    imgs = rng.integers(0, 256, size=(16, 784)).astype(np.uint8)
    cnn, hist = train_mecoq(
        imgs, M=2, ksub=4, encoder="cnn", enc_dim=16, epochs=1, batch_size=8, seed=1
    )
    assert cnn.config["pixel_scale"] == pytest.approx(1 / 255)
    assert cnn.encode(imgs).shape == (16, 2) and np.isfinite(hist[0]["loss"])


# ----------------------------------------------------------------------------- errors


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="not divisible"):
        SoftPQ(10, 3)
    with pytest.raises(quanta.InvalidArgumentError, match="alpha"):
        SoftPQ(8, 2, alpha=0)
    pq = SoftPQ(8, 2, ksub=4)
    with pytest.raises(quanta.ShapeError, match="z must have shape"):
        pq(torch.zeros(3, 6))
    with pytest.raises(quanta.ShapeError, match="codes must have shape"):
        pq.decode(torch.zeros(3, 2, 5))
    z = torch.randn(4, 8)
    with pytest.raises(quanta.ShapeError, match="z1 and z2"):
        debiased_contrastive_loss(z, z[:3])
    with pytest.raises(quanta.ShapeError, match="at least 2"):
        debiased_contrastive_loss(z[:1], z[:1])
    with pytest.raises(quanta.ShapeError, match="memory"):
        debiased_contrastive_loss(z, z, torch.zeros(3, 5))
    with pytest.raises(quanta.InvalidArgumentError, match="rho_plus"):
        debiased_contrastive_loss(z, z, rho_plus=1.0)
    with pytest.raises(quanta.InvalidArgumentError, match="temperature"):
        debiased_contrastive_loss(z, z, temperature=0.0)
    with pytest.raises(quanta.InvalidArgumentError, match="compat"):
        debiased_contrastive_loss(z, z, compat="faiss")

    x = np.random.default_rng(0).normal(size=(32, 12)).astype(np.float32)
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="x_train contains NaN"):
        train_mecoq(bad, M=2, encoder="mlp", epochs=1, batch_size=8)
    with pytest.raises(quanta.DTypeError, match="x_train"):
        train_mecoq(np.array([["a"] * 12] * 4), M=2, encoder="mlp", batch_size=2)
    with pytest.raises(quanta.InvalidArgumentError, match="encoder='cnn' needs"):
        train_mecoq(x, M=2, encoder="cnn", batch_size=8)
    with pytest.raises(quanta.InvalidArgumentError, match="feat_dim"):
        train_mecoq(x, M=3, feat_dim=8, encoder="mlp")
    with pytest.raises(quanta.ShapeError, match="fewer than batch_size"):
        train_mecoq(x, M=2, encoder="mlp", batch_size=64)
    with pytest.raises(quanta.InvalidArgumentError, match="epochs"):
        train_mecoq(x, M=2, encoder="mlp", epochs=0)

    model = _vector_model()
    with pytest.raises(quanta.ShapeError, match="x has 5 columns, expected d=12"):
        model.embed(np.zeros((3, 5), dtype=np.float32))
    index = model.to_index(x)
    with pytest.raises(quanta.InvalidArgumentError, match="k must be"):
        model.search(index, x[:2], 0)
    with pytest.raises(quanta.DTypeError, match=r"index must be a quanta\.IndexPQ"):
        model.search(quanta.IndexFlatIP(8), x[:2], 3)  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError, match="inner-product IndexPQ"):
        model.search(quanta.IndexPQ(8, 2, 4, metric="l2"), x[:2], 3)
    with pytest.raises(quanta.InvalidArgumentError, match="compat"):
        model.query_vectors(x[:2], compat="faiss")
    with pytest.raises(quanta.InvalidArgumentError, match="power of two"):
        _vector_model(ksub=12).to_index(x)
    other = tmp_path / "other.ckpt"
    quanta.nn.save_checkpoint(other, "greedyhash", {}, {})
    with pytest.raises(quanta.FormatError, match="expected 'mecoq'"):
        MeCoQ.load(other)


def test_image_model_accepts_4d_numpy_and_tensor_images() -> None:
    torch.manual_seed(0)
    cfg: dict[str, Any] = {
        "encoder": "cnn",
        "input": "image",
        "d_in": 784,
        "enc_dim": 8,
        "hidden": 16,
        "n_hidden": 1,
        "feat_dim": 4,
        "M": 2,
        "ksub": 4,
        "alpha": 10.0,
        "learn_codebooks": True,
        "pixel_scale": 1 / 255,
    }
    model = MeCoQ(cfg).eval()
    imgs = np.random.default_rng(0).integers(0, 256, size=(5, 1, 28, 28)).astype(np.uint8)
    flat = imgs.reshape(5, 784)
    want = model.encode(flat)
    np.testing.assert_array_equal(model.encode(imgs), want)
    np.testing.assert_array_equal(model.encode(torch.from_numpy(imgs)), want)
    assert tuple(model.check_input(imgs.tolist()).shape) == (5, 784)
    with pytest.raises(quanta.ShapeError, match="x has 812 columns, expected d=784"):
        model.check_input(np.zeros((2, 1, 28, 29), np.float32))
    vec = _vector_model()  # vector input: 4-D stays an error
    with pytest.raises(quanta.ShapeError, match="2-D"):
        vec.check_input(np.zeros((2, 1, 3, 4), np.float32))


def test_as_float_tensor_rejects_non_real_and_empty_tensors() -> None:
    from quanta.nn._common import as_float_tensor

    for bad in (torch.zeros(3, 4, dtype=torch.complex64), torch.zeros(3, 4, dtype=torch.bool)):
        with pytest.raises(quanta.DTypeError, match="x must hold real numbers"):
            as_float_tensor(bad, "x")
    with pytest.raises(quanta.ShapeError, match="x has 0 columns"):
        as_float_tensor(torch.zeros(3, 0), "x")
    with pytest.raises(quanta.ShapeError, match="x is empty"):
        as_float_tensor(torch.zeros(0, 4), "x")
    t = as_float_tensor(torch.arange(6, dtype=torch.int16).reshape(2, 3), "x", 3)
    assert t.dtype == torch.float32 and t.tolist() == [[0, 1, 2], [3, 4, 5]]
