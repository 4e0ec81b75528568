"""GreedyHash (Su, Zhang, Han, Tian — NeurIPS 2018), ALGORITHMS.md §5.

The hash layer keeps the codes binary in the forward pass and passes the gradient straight
through the sign (no clipping): ``b = sgn(h)``, ``∂L/∂h = ∂L/∂b``. A cubic penalty
``mean(| |h| − 1 |³)`` (weight ``alpha``, paper code default 0.1 = α·N·K of the paper's sum form)
keeps ``h`` near ``±1`` so that the straight-through step is accurate.

* :func:`greedy_sign` — the autograd function (forward ``h > 0 → +1`` else ``−1``, the
  :class:`quanta.SignEncoder` / faiss rule, so a stored code never differs from the trained one).
* :class:`GreedyHashLayer` — ``Linear(d_in, nbits)`` → :func:`greedy_sign`.
* :class:`GreedyHash` — backbone (``"cnn"``: :class:`~quanta.nn.SmallCNN` for 28x28 images,
  ``"mlp"``: :class:`~quanta.nn.MLP`, ``"none"``: the hash layer sits on the inputs, as the
  paper's unsupervised model sits on frozen VGG features) → hash layer, plus a bias-free linear
  classifier on the ``±1`` codes when ``n_classes`` is given. :meth:`GreedyHash.encode` returns
  packed uint8 codes for :class:`quanta.IndexBinaryFlat`.
* :func:`train_greedyhash` (supervised) — loss ``CE(W·b, y) + alpha·penalty`` (§5.3);
  :func:`train_greedyhash_unsupervised` — loss
  ``mean((cos(b_i, b_j) − cos(f_i, f_j))²) + alpha·penalty`` over the pairs ``(i, i + N/2)`` of
  each batch (the reference code, §5.4) or over all pairs of the batch (``pairs="all"``); ``f``
  are the given features (default: the inputs, centred).
* :class:`HashRetriever` — a model and an :class:`~quanta.IndexBinaryFlat` together.

Model selection uses a validation set given by the caller (never the test queries): supervised
training keeps the epoch with the best validation mAP (validation items retrieving each other),
unsupervised training the epoch with the lowest validation loss (labels are never used).

Determinism: on CPU, the same seed gives the same model (:func:`seed_everything` is called by
the trainers before any draw; call it yourself before building a model to fix its initial
weights, as :meth:`HashRetriever.fit` does). CUDA kernels may be non-deterministic.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from .. import metrics
from ..binary import IndexBinaryFlat, pack_bits
from ..exceptions import InvalidArgumentError, NotTrainedError, ShapeError
from ._common import (
    as_float_tensor,
    as_int,
    load_checkpoint,
    positive_int,
    progress,
    resolve_device,
    save_checkpoint,
    seed_everything,
    set_postfix,
    to_numpy,
)
from .backbones import MLP, SmallCNN

__all__ = [
    "DEFAULT_ALPHA",
    "GreedyHash",
    "GreedyHashLayer",
    "HashRetriever",
    "TrainHistory",
    "greedy_penalty",
    "greedy_sign",
    "supervised_loss",
    "train_greedyhash",
    "train_greedyhash_unsupervised",
    "unsupervised_loss",
]

DEFAULT_ALPHA = 0.1
"""Penalty weight of the reference code (``0.1·mean``), i.e. α = 0.1/(N·K) of the paper's sum."""

BACKBONES = ("cnn", "mlp", "none")
MODEL_KIND = "quanta.nn.GreedyHash"
RETRIEVER_KIND = "quanta.nn.HashRetriever"


# ---------------------------------------------------------------------------------------------
# hash layer and losses


class _GreedySign(torch.autograd.Function):
    """Forward ``h > 0 → +1`` else ``−1``; backward: the identity (no clipping)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        return torch.where(h > 0, torch.ones_like(h), -torch.ones_like(h))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


def greedy_sign(h: torch.Tensor) -> torch.Tensor:
    """``±1`` codes of ``h`` (``0 → −1``) with a straight-through (identity) gradient."""
    return cast(torch.Tensor, _GreedySign.apply(h))


def greedy_penalty(h: torch.Tensor) -> torch.Tensor:
    """``mean(| |h| − 1 |³)`` over all entries: the paper's ``‖H − sgn(H)‖₃³ / (N·K)``.

    Differentiated with respect to ``h`` directly (not through the sign); multiply by the weight
    ``alpha`` (:data:`DEFAULT_ALPHA` in the reference code).
    """
    return (h.abs() - 1.0).abs().pow(3).mean()


def supervised_loss(
    logits: torch.Tensor, y: torch.Tensor, h: torch.Tensor, alpha: float = DEFAULT_ALPHA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, ce, penalty)`` with ``total = CE(logits, y) + alpha·penalty(h)``."""
    ce = F.cross_entropy(logits, y)
    pen = greedy_penalty(h)
    return ce + alpha * pen, ce, pen


def unsupervised_loss(
    features: torch.Tensor,
    h: torch.Tensor,
    b: torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    pairs: str = "halves",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, similarity, penalty)``: cosine-similarity preservation plus ``alpha·penalty``.

    ``pairs="halves"`` (reference code): pairs ``(i, i + N/2)`` of the first ``2·⌊N/2⌋`` rows,
    ``similarity = mean_i (cos(b_i, b_{i+N/2}) − cos(f_i, f_{i+N/2}))²``. ``pairs="all"``: the
    same mean over every pair ``i < j`` of the batch. Zero feature rows have cosine 0.
    """
    if pairs not in ("halves", "all"):
        raise InvalidArgumentError(f"pairs must be 'halves' or 'all', got {pairs!r}")
    n = features.shape[0]
    if n < 2:
        raise ShapeError(f"the unsupervised loss needs a batch of at least 2 rows, got {n}")
    fn = F.normalize(features, dim=1)
    bn = F.normalize(b, dim=1)
    if pairs == "halves":
        m = n // 2
        cf = (fn[:m] * fn[m : 2 * m]).sum(dim=1)
        cb = (bn[:m] * bn[m : 2 * m]).sum(dim=1)
        sim = (cb - cf).pow(2).mean()
    else:
        iu = torch.triu_indices(n, n, offset=1, device=features.device)
        cf = (fn @ fn.T)[iu[0], iu[1]]
        cb = (bn @ bn.T)[iu[0], iu[1]]
        sim = (cb - cf).pow(2).mean()
    pen = greedy_penalty(h)
    return sim + alpha * pen, sim, pen


class GreedyHashLayer(nn.Module):
    """``Linear(d_in, nbits)`` followed by :func:`greedy_sign`; ``forward`` returns ``±1`` codes."""

    def __init__(self, d_in: int, nbits: int) -> None:
        super().__init__()
        self.d_in = positive_int(d_in, "d_in")
        self.nbits = positive_int(nbits, "nbits")
        self.linear = nn.Linear(self.d_in, self.nbits)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sign activations ``h`` (what the penalty acts on)."""
        out: torch.Tensor = self.linear(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return greedy_sign(self.project(x))


# ---------------------------------------------------------------------------------------------
# model


class GreedyHash(nn.Module):
    """Backbone → :class:`GreedyHashLayer` (→ bias-free classifier on the codes).

    ``backbone``: ``"cnn"`` (:class:`SmallCNN` with ``feat_dim`` outputs; inputs are 28x28
    images, ``d_in`` must be 784; raw bytes are scaled by the CNN), ``"mlp"`` (:class:`MLP`
    ``d_in → hidden (× n_hidden) → feat_dim``) or ``"none"`` (hash layer directly on the inputs).
    For ``"mlp"``/``"none"`` the inputs are standardised with a shift and scale fitted on the
    training data (:meth:`fit_input_stats`, done by the trainers) and stored with the model.
    """

    shift: torch.Tensor
    scale: torch.Tensor
    stats_fitted: torch.Tensor
    trained: torch.Tensor

    def __init__(
        self,
        d_in: int,
        nbits: int,
        n_classes: int | None = None,
        backbone: str = "none",
        feat_dim: int = 512,
        hidden: int = 1024,
        n_hidden: int = 2,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise InvalidArgumentError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        self.d_in = positive_int(d_in, "d_in")
        self.nbits = positive_int(nbits, "nbits")
        if self.nbits % 8:
            raise InvalidArgumentError(f"nbits must be a multiple of 8, got {self.nbits}")
        self.n_classes = None if n_classes is None else as_int(n_classes, "n_classes", 2, 2**31)
        self.backbone_name = backbone
        self.feat_dim = positive_int(feat_dim, "feat_dim")
        self.hidden = positive_int(hidden, "hidden")
        self.n_hidden = as_int(n_hidden, "n_hidden", 0, 64)
        self.backbone: nn.Module
        if backbone == "cnn":
            if self.d_in != 784:
                raise InvalidArgumentError(
                    f"backbone='cnn' takes 28x28 images (d_in=784), got {d_in}"
                )
            self.backbone = SmallCNN(self.feat_dim)
            width = self.feat_dim
        elif backbone == "mlp":
            self.backbone = MLP(self.d_in, self.feat_dim, self.hidden, self.n_hidden)
            width = self.feat_dim
        else:
            self.backbone = nn.Identity()
            width = self.d_in
        self.hash = GreedyHashLayer(width, self.nbits)
        self.classifier = (
            None if self.n_classes is None else nn.Linear(self.nbits, self.n_classes, bias=False)
        )
        self.register_buffer("shift", torch.zeros(self.d_in))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("stats_fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    def config(self) -> dict[str, Any]:
        """Constructor arguments (what a checkpoint needs to rebuild the model)."""
        return {
            "d_in": self.d_in,
            "nbits": self.nbits,
            "n_classes": self.n_classes,
            "backbone": self.backbone_name,
            "feat_dim": self.feat_dim,
            "hidden": self.hidden,
            "n_hidden": self.n_hidden,
        }

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def fit_input_stats(self, x: torch.Tensor) -> None:
        """Shift = mean of ``x``, scale = RMS of the centred ``x`` (``"mlp"``/``"none"`` only)."""
        if self.backbone_name == "cnn":
            return
        x = x.to(torch.float64)
        mu = x.mean(dim=0)
        rms = float((x - mu).pow(2).mean().sqrt())
        self.shift.copy_(mu.to(torch.float32))
        self.scale.fill_(rms if rms > 0 else 1.0)
        self.stats_fitted.fill_(True)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone_name == "cnn":
            return x
        return (x - self.shift) / self.scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, b)``: pre-sign activations and ``±1`` codes of a batch ``(n, d_in)``."""
        h = self.hash.project(self.backbone(self._inputs(x)))
        return h, greedy_sign(h)

    def logits(self, b: torch.Tensor) -> torch.Tensor:
        """Class scores of ``±1`` codes (supervised models only)."""
        if self.classifier is None:
            raise InvalidArgumentError("this GreedyHash has no classifier (n_classes=None)")
        out: torch.Tensor = self.classifier(b)
        return out

    @torch.no_grad()
    def project(self, x: Any, batch_size: int = 4096) -> npt.NDArray[np.float32]:
        """Pre-sign activations ``h`` of ``x`` ``(n, d_in)`` (eval mode) as float32 numpy.

        ``"mlp"``/``"none"`` models need their input statistics (fitted by the trainers or
        :meth:`fit_input_stats`, or loaded): otherwise a :class:`~quanta.NotTrainedError`."""
        if self.backbone_name != "cnn" and not bool(self.stats_fitted):
            raise NotTrainedError(
                f"GreedyHash (backbone={self.backbone_name!r}): input statistics were never "
                "fitted; train it (train_greedyhash, train_greedyhash_unsupervised) or call "
                "fit_input_stats first"
            )
        t = as_float_tensor(x, "x", self.d_in)
        batch_size = positive_int(batch_size, "batch_size")
        was_training = self.training
        self.eval()
        dev = self.device
        try:
            out = [
                self(t[i : i + batch_size].to(dev))[0].cpu()
                for i in range(0, t.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy()

    def encode(self, x: Any, batch_size: int = 4096) -> npt.NDArray[np.uint8]:
        """Packed codes ``(n, nbits/8)`` uint8 (bit = ``h > 0``, LSB first) for IndexBinaryFlat."""
        return pack_bits(self.project(x, batch_size))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Checkpoint (config + weights + input statistics), written atomically."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        save_checkpoint(path, MODEL_KIND, self.config(), state)

    @classmethod
    def from_checkpoint(cls, config: dict[str, Any], state: dict[str, Any]) -> GreedyHash:
        model = cls(**config)
        model.load_state_dict(state)
        return model

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> GreedyHash:
        config, state = load_checkpoint(path, MODEL_KIND)
        return cls.from_checkpoint(config, state).to(resolve_device(device))


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class TrainHistory:
    """Per-epoch means of the loss terms, the validation score, and the epoch kept."""

    loss: list[float] = field(default_factory=list)
    main: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    val_name: str = ""
    best_epoch: int = -1


def _labels_tensor(y: Any, n: int, n_classes: int) -> torch.Tensor:
    a = to_numpy(y, "y")
    if a.ndim != 1 or a.shape[0] != n:
        raise ShapeError(f"y must be 1-D with one label per row of x ({n}), got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise InvalidArgumentError(f"y must hold integer class labels, got dtype {a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) >= n_classes):
        raise InvalidArgumentError(
            f"y must be in 0..{n_classes - 1} (n_classes={n_classes}), got "
            f"{int(a.min())}..{int(a.max())}"
        )
    return torch.from_numpy(a.astype(np.int64))


def _optimizer(
    model: nn.Module, name: str, lr: float | None, weight_decay: float, paper_lr: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=paper_lr if lr is None else lr,
            momentum=0.9,
            weight_decay=weight_decay,
        )
    if name == "adam":
        return torch.optim.Adam(
            model.parameters(), lr=1e-3 if lr is None else lr, weight_decay=weight_decay
        )
    raise InvalidArgumentError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def _common_checks(epochs: int, batch_size: int, alpha: float) -> tuple[int, int, float]:
    epochs = positive_int(epochs, "epochs")
    batch_size = as_int(batch_size, "batch_size", 2, 2**31 - 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise InvalidArgumentError(f"alpha must be a number >= 0, got {alpha!r}")
    if not math.isfinite(float(alpha)):
        raise InvalidArgumentError(f"alpha must be finite, got {alpha!r}")
    return epochs, batch_size, float(alpha)


def _self_map(codes: npt.NDArray[np.uint8], labels: npt.NDArray[Any]) -> float:
    """mAP@all of a labelled set retrieving itself, each query's own item left out."""
    n = codes.shape[0]
    index = IndexBinaryFlat(8 * codes.shape[1])
    index.add(codes)
    _, ids = index.search(codes, n)
    keep = ids != np.arange(n)[:, None]
    ranked = ids[keep].reshape(n, n - 1)
    return metrics.map_at_k(ranked, labels, labels)


def train_greedyhash(
    model: GreedyHash,
    x: Any,
    y: Any,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float | None = None,
    weight_decay: float = 5e-4,
    lr_step: int | None = None,
    alpha: float = DEFAULT_ALPHA,
    val: tuple[Any, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    verbose: bool = False,
) -> TrainHistory:
    """Train ``model`` (built with ``n_classes``) with ``CE(W·b, y) + alpha·penalty(h)``.

    Paper settings (§5.3): ``optimizer="sgd"`` (momentum 0.9, lr 1e-3 when ``lr`` is None), weight
    decay 5e-4, batch 32, ``lr_step=30`` (×0.1 every 30 epochs) — tuned for a pretrained
    AlexNet. The default here is Adam (lr 1e-3), which trains the from-scratch backbones in far
    fewer epochs. ``val=(x_val, y_val)``: the epoch with the best validation mAP@all (validation
    items retrieving each other) is kept; without it, the last epoch.
    """
    if model.classifier is None or model.n_classes is None:
        raise InvalidArgumentError("train_greedyhash needs a GreedyHash built with n_classes")
    epochs, batch_size, alpha = _common_checks(epochs, batch_size, alpha)
    xt = as_float_tensor(x, "x", model.d_in)
    yt = _labels_tensor(y, xt.shape[0], model.n_classes)
    xv: torch.Tensor | None = None
    yv: npt.NDArray[Any] | None = None
    if val is not None:
        xv = as_float_tensor(val[0], "val[0]", model.d_in)
        yv = _labels_tensor(val[1], xv.shape[0], model.n_classes).numpy()
        if xv.shape[0] < 2:
            raise ShapeError("val needs at least 2 rows")
    dev = resolve_device(device)
    gen = seed_everything(seed)
    model.to(dev)
    if not bool(model.stats_fitted):
        model.fit_input_stats(xt)
    opt = _optimizer(model, optimizer, lr, weight_decay, paper_lr=1e-3)
    sched = (
        None
        if lr_step is None
        else torch.optim.lr_scheduler.StepLR(opt, positive_int(lr_step, "lr_step"), 0.1)
    )
    hist = TrainHistory(val_name="val mAP@all" if val is not None else "")
    best: dict[str, torch.Tensor] | None = None
    n = xt.shape[0]
    bar = progress(range(epochs), verbose, f"GreedyHash supervised {model.nbits} bits")
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = np.zeros(3)
        steps = 0
        for i in range(0, n - 1, batch_size):
            idx = perm[i : i + batch_size]
            if idx.numel() < 2:  # BatchNorm needs two rows
                continue
            h, b = model(xt[idx].to(dev))
            loss, ce, pen = supervised_loss(model.logits(b), yt[idx].to(dev), h, alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's stub lacks annotations
            opt.step()
            sums += (loss.item(), ce.item(), pen.item())
            steps += 1
        if sched is not None:
            sched.step()
        means = sums / max(steps, 1)
        hist.loss.append(float(means[0]))
        hist.main.append(float(means[1]))
        hist.penalty.append(float(means[2]))
        if xv is not None and yv is not None:
            score = _self_map(model.encode(xv), yv)
            hist.val.append(score)
            if score >= max(hist.val):
                best = copy.deepcopy(model.state_dict())
                hist.best_epoch = epoch
            set_postfix(bar, loss=means[0], ce=means[1], pen=means[2], val_map=score)
        else:
            set_postfix(bar, loss=means[0], ce=means[1], pen=means[2])
    if best is not None:
        model.load_state_dict(best)
    else:
        hist.best_epoch = epochs - 1
    model.trained.fill_(True)
    model.eval()
    return hist


def train_greedyhash_unsupervised(
    model: GreedyHash,
    x: Any,
    *,
    features: Any = None,
    center: bool = True,
    epochs: int = 50,
    batch_size: int = 64,
    pairs: str = "halves",
    optimizer: str = "adam",
    lr: float | None = None,
    weight_decay: float = 5e-4,
    alpha: float = DEFAULT_ALPHA,
    val: Any = None,
    val_features: Any = None,
    seed: int = 0,
    device: str = "auto",
    verbose: bool = False,
) -> TrainHistory:
    """Train ``model`` so that code cosines reproduce feature cosines (§5.4); labels unused.

    ``features`` ``(n, f)``: the Euclidean features whose cosine similarities the codes must keep
    (default: ``x`` itself — pixels or a frozen embedding). ``center`` subtracts their training
    mean first (the paper's VGG features are not centred; for raw pixels, whose cosines are all
    positive, centring is what makes the target informative). Paper settings: SGD lr 1e-4,
    momentum 0.9, weight decay 5e-4, batch 32, ``pairs="halves"``. Batches drop the last partial
    batch. ``val`` (inputs, with ``val_features`` or the inputs as features): the epoch with the
    lowest validation loss is kept.
    """
    epochs, batch_size, alpha = _common_checks(epochs, batch_size, alpha)
    if pairs not in ("halves", "all"):
        raise InvalidArgumentError(f"pairs must be 'halves' or 'all', got {pairs!r}")
    xt = as_float_tensor(x, "x", model.d_in)
    n = xt.shape[0]
    if n < batch_size:
        raise ShapeError(f"x has {n} rows, fewer than batch_size={batch_size}")
    ft = xt if features is None else as_float_tensor(features, "features")
    if ft.shape[0] != n:
        raise ShapeError(f"features has {ft.shape[0]} rows, x has {n}")
    mu = ft.mean(dim=0) if center else torch.zeros(ft.shape[1])
    ft = ft - mu
    xv = fv = None
    if val is not None:
        xv = as_float_tensor(val, "val", model.d_in)
        fv = xv if val_features is None else as_float_tensor(val_features, "val_features")
        if fv.shape != (xv.shape[0], ft.shape[1]):
            raise ShapeError(f"val_features must have shape {(xv.shape[0], ft.shape[1])}")
        if xv.shape[0] < 2:
            raise ShapeError("val needs at least 2 rows")
        fv = fv - mu
    dev = resolve_device(device)
    gen = seed_everything(seed)
    model.to(dev)
    if not bool(model.stats_fitted):
        model.fit_input_stats(xt)
    opt = _optimizer(model, optimizer, lr, weight_decay, paper_lr=1e-4)
    hist = TrainHistory(val_name="val loss" if val is not None else "")
    best: dict[str, torch.Tensor] | None = None
    bar = progress(range(epochs), verbose, f"GreedyHash unsupervised {model.nbits} bits")
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = np.zeros(3)
        steps = 0
        for i in range(0, n - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            h, b = model(xt[idx].to(dev))
            loss, sim, pen = unsupervised_loss(ft[idx].to(dev), h, b, alpha, pairs)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's stub lacks annotations
            opt.step()
            sums += (loss.item(), sim.item(), pen.item())
            steps += 1
        means = sums / max(steps, 1)
        hist.loss.append(float(means[0]))
        hist.main.append(float(means[1]))
        hist.penalty.append(float(means[2]))
        if xv is not None and fv is not None:
            model.eval()
            with torch.no_grad():
                parts = []
                for j in range(0, xv.shape[0] - 1, 1024):
                    xb, fb = xv[j : j + 1024].to(dev), fv[j : j + 1024].to(dev)
                    if xb.shape[0] < 2:
                        continue
                    h, b = model(xb)
                    parts.append(float(unsupervised_loss(fb, h, b, alpha, pairs)[0]))
            score = float(np.mean(parts))
            hist.val.append(score)
            if score <= min(hist.val):
                best = copy.deepcopy(model.state_dict())
                hist.best_epoch = epoch
            set_postfix(bar, loss=means[0], sim=means[1], pen=means[2], val_loss=score)
        else:
            set_postfix(bar, loss=means[0], sim=means[1], pen=means[2])
    if best is not None:
        model.load_state_dict(best)
    else:
        hist.best_epoch = epochs - 1
    model.trained.fill_(True)
    model.eval()
    return hist


# ---------------------------------------------------------------------------------------------
# retriever


class HashRetriever:
    """A :class:`GreedyHash` model and the :class:`~quanta.IndexBinaryFlat` of its codes.

    ``fit(x, y)`` trains supervised (model with ``n_classes``), ``fit(x)`` unsupervised;
    ``add(x)`` encodes and stores, ``search(q, k)`` encodes the queries and returns
    ``(D int32 Hamming, I int64)`` in the library's (distance, id) order.

    ``save(path)`` writes ONE checkpoint file holding the model (config, weights, input
    statistics) and the stored codes with their ids, so ``load`` restores the exact index without
    re-encoding the database (the codes are the index; re-encoding would need the raw data).
    """

    def __init__(self, model: GreedyHash) -> None:
        if not isinstance(model, GreedyHash):
            raise InvalidArgumentError(
                f"model must be a quanta.nn.GreedyHash, got {type(model).__name__}"
            )
        self.model = model
        self.index = IndexBinaryFlat(model.nbits)
        self.history: TrainHistory | None = None

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def fit(self, x: Any, y: Any = None, **train_kwargs: Any) -> HashRetriever:
        """Train: :func:`train_greedyhash` when ``y`` is given, else the unsupervised trainer."""
        if y is None:
            self.history = train_greedyhash_unsupervised(self.model, x, **train_kwargs)
        else:
            self.history = train_greedyhash(self.model, x, y, **train_kwargs)
        return self

    def _check_trained(self) -> None:
        if not bool(self.model.trained):
            raise NotTrainedError("the GreedyHash model is not trained: call fit first")

    def add(self, x: Any) -> None:
        """Encode ``x`` and append the codes (ids continue from the largest so far + 1)."""
        self._check_trained()
        self.index.add(self.model.encode(x))

    def search(self, q: Any, k: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """Hamming k-NN of the encoded queries: ``(D, I)``, ``-1`` padding past ``ntotal``."""
        self._check_trained()
        return self.index.search(self.model.encode(q), k)

    def save(self, path: str | os.PathLike[str]) -> None:
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "codes": torch.from_numpy(self.index.reconstruct_n()),
            "ids": torch.from_numpy(self.index.ids),
        }
        save_checkpoint(path, RETRIEVER_KIND, self.model.config(), state)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str = "cpu") -> HashRetriever:
        config, state = load_checkpoint(path, RETRIEVER_KIND)
        model = GreedyHash.from_checkpoint(config, state["model"]).to(resolve_device(device))
        model.eval()
        r = cls(model)
        codes = state["codes"].numpy()
        if codes.shape[0]:
            r.index.add_with_ids(codes, state["ids"].numpy())
        return r

    def __repr__(self) -> str:
        c = self.model.config()
        return (
            f"HashRetriever(nbits={c['nbits']}, backbone={c['backbone']!r}, "
            f"supervised={c['n_classes'] is not None}, ntotal={self.ntotal})"
        )
