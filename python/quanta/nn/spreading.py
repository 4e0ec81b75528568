"""Spreading Vectors (Sablayrolles, Douze, Schmid, Jégou — ICLR 2019), ALGORITHMS.md §4.

A small MLP, the **catalyzer**, maps vectors onto the unit sphere so that a fixed quantizer
(sign bits, the spherical Zn lattice, E8 shells) or PQ codes them well. It is trained with

* a triplet **rank loss** (:func:`triplet_rank_loss`): the positive of an anchor is one of its
  ``k_pos = 10`` nearest neighbours in input space (computed once with :class:`quanta.IndexFlat`,
  :func:`knn_positives`), the negative its ``k_neg = 50``-th neighbour in output space, re-mined
  at the start of every epoch with a quanta index (:func:`rank_negatives`);
* the **KoLeo** entropy regularizer (:func:`koleo_loss`) that spreads the outputs:
  ``L = L_rank + λ · L_koleo``.

:func:`train_catalyzer` is the trainer (SGD with momentum, batch 64, piecewise-constant learning
rate); :class:`SpreadingVectors` is the end-to-end index: queries go through the catalyzer,
database vectors through the catalyzer and a codec, and the codes are searched by a core index
(sign → :class:`quanta.IndexBinaryFlat`, Zn/E8 → :class:`quanta.IndexLattice` asymmetric,
PQ → :class:`quanta.IndexPQ` ADC).

Deviations from the released code (facebookresearch/spreadingvectors), all documented:

* inputs are centred and divided by one global scale (stored in the catalyzer, so L2 geometry is
  unchanged up to a factor) — the released code feeds raw vectors, which is fine for SIFT/Deep
  but makes SGD at lr 0.1 diverge on 0..255 pixels;
* anchors, positives and negatives go through the network in one concatenated batch (one
  BatchNorm statistic over the 3·64 rows instead of three forward passes of 64) — faster on CPU;
* the learning-rate schedule is stretched over any number of epochs (entry ``⌊e·L/epochs⌋`` at
  epoch ``e``) instead of requiring ``epochs % L == 0``;
* quantizer-aware ("end-to-end") training works for every codec: ``quantizer=`` a Zn/E8 codec
  or ``"sign"`` quantizes the positives and negatives with a straight-through estimator and the
  database side of the negative mining (the released code's option fails: ``Zn(r2)`` lacks d).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from ..binary import IndexBinaryFlat, SignEncoder
from ..exceptions import (
    DTypeError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    ShapeError,
)
from ..index import IndexFlat
from ..lattice import E8ShellCodec, IndexLattice, ZnSphereCodec
from ..pq import IndexPQ, ProductQuantizer
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
)
from .backbones import MLP

__all__ = [
    "Catalyzer",
    "SpreadingVectors",
    "knn_positives",
    "koleo_loss",
    "rank_negatives",
    "train_catalyzer",
    "triplet_rank_loss",
]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Codec = Union[SignEncoder, ZnSphereCodec, E8ShellCodec, ProductQuantizer]
QuantizerArg = Union[None, str, SignEncoder, ZnSphereCodec, E8ShellCodec]

CATALYZER_KIND = "quanta.nn.Catalyzer"
SPREADING_KIND = "quanta.nn.SpreadingVectors"
DEFAULT_LR_SCHEDULE = (0.1, 0.1, 0.05, 0.01)


# ---------------------------------------------------------------------------------------------
# network


class Catalyzer(nn.Module):
    """``n_hidden`` blocks Linear → BatchNorm1d → ReLU (width ``hidden``), Linear to ``d_out``,
    then per-row L2 normalization (ALGORITHMS.md §4.2; paper: ``hidden=1024``, ``n_hidden=2``).

    The input is first centred and scaled by one global factor (buffers ``input_mean``,
    ``input_scale``, learnt by :meth:`fit_input_normalization`, saved with the weights).
    :meth:`embed` runs in eval mode (BatchNorm running statistics) on numpy or torch input and
    returns float32 unit rows.
    """

    input_mean: torch.Tensor
    input_scale: torch.Tensor
    fitted: torch.Tensor

    def __init__(
        self, d_in: int, d_out: int, hidden: int = 1024, n_hidden: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.d_in = positive_int(d_in, "d_in")
        self.d_out = positive_int(d_out, "d_out")
        self.hidden = positive_int(hidden, "hidden")
        self.n_hidden = as_int(n_hidden, "n_hidden", 0, 64)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise DTypeError(f"dropout must be a float, got {type(dropout).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise InvalidArgumentError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.net = MLP(self.d_in, self.d_out, self.hidden, self.n_hidden, self.dropout)
        self.register_buffer("input_mean", torch.zeros(self.d_in))
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.history: list[dict[str, float]] = []
        """Per-epoch training statistics of the last :func:`train_catalyzer` run."""
        self.best_epoch: int | None = None
        """Epoch kept by validation (``None`` when training did not validate)."""

    def config(self) -> dict[str, Any]:
        """Constructor arguments (what :meth:`load` needs to rebuild the module)."""
        return {
            "d_in": self.d_in,
            "d_out": self.d_out,
            "hidden": self.hidden,
            "n_hidden": self.n_hidden,
            "dropout": self.dropout,
        }

    @property
    def is_fitted(self) -> bool:
        """Whether the input normalization has been fitted (by training or loading)."""
        return bool(self.fitted.item())

    @torch.no_grad()
    def fit_input_normalization(self, x: Any) -> None:
        """Mean of ``x`` and ``sqrt(E‖x − μ‖² / d_in)`` as the global scale (floored at 1e-12)."""
        t = as_float_tensor(x, "x", self.d_in).to(torch.float64)
        mu = t.mean(0)
        scale = ((t - mu) ** 2).sum(1).mean().div(self.d_in).sqrt().clamp_min(1e-12)
        self.input_mean.copy_(mu.to(self.input_mean))
        self.input_scale.copy_(scale.to(self.input_scale))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.d_in:
            raise ShapeError(
                f"x must have shape (n, {self.d_in}) (the catalyzer's d_in), got {tuple(x.shape)}"
            )
        z = self.net((x - self.input_mean) / self.input_scale)
        return F.normalize(z, p=2.0, dim=1, eps=1e-12)

    @torch.no_grad()
    def embed(self, x: Any, batch_size: int = 4096) -> F32:
        """Unit rows ``(n, d_out)`` float32 of ``x`` (checked: shape, NaN/Inf), in eval mode.

        Needs the input normalization (fitted by :func:`train_catalyzer` or
        :meth:`fit_input_normalization`, or loaded): otherwise a :class:`~quanta.NotTrainedError`.
        """
        if not self.is_fitted:
            raise NotTrainedError(
                "Catalyzer.embed: the input normalization was never fitted; train the "
                "catalyzer (train_catalyzer) or call fit_input_normalization first"
            )
        t = as_float_tensor(x, "x", self.d_in)
        batch_size = positive_int(batch_size, "batch_size")
        was_training = self.training
        self.eval()
        dev = self.input_mean.device
        try:
            out = [
                self(t[i : i + batch_size].to(dev)).cpu() for i in range(0, t.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        return np.ascontiguousarray(torch.cat(out).numpy(), dtype=np.float32)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Weights, normalization and config in a ``quanta.nn`` checkpoint (atomic write)."""
        save_checkpoint(path, CATALYZER_KIND, self._full_config(), _cpu_state(self))

    def _full_config(self) -> dict[str, Any]:
        return {**self.config(), "history": self.history, "best_epoch": self.best_epoch}

    @classmethod
    def _from(cls, config: dict[str, Any], state: dict[str, Any]) -> Catalyzer:
        keys = ("d_in", "d_out", "hidden", "n_hidden", "dropout")
        try:
            cat = cls(**{k: config[k] for k in keys})
            cat.load_state_dict(state)
        except (KeyError, RuntimeError) as e:
            raise FormatError(f"catalyzer checkpoint does not match its config ({e})") from None
        cat.history = list(config.get("history", []))
        cat.best_epoch = config.get("best_epoch")
        cat.eval()
        return cat

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Catalyzer:
        """The catalyzer saved by :meth:`save` (or by :func:`train_catalyzer`'s checkpoint), in
        eval mode on the CPU."""
        config, state = load_checkpoint(path, CATALYZER_KIND)
        return cls._from(config, state)


def _cpu_state(module: nn.Module) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# losses


def koleo_loss(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko–Leonenko entropy regularizer ``−(1/n) Σ_i log(n · ρ_i)``.

    ``ρ_i`` is the L2 distance from row ``i`` to its nearest other row of the batch ``z``
    ``(n, d)``, floored at ``eps`` (duplicates would give ``+∞``). The neighbour is found without
    gradient (lowest index on ties), the distance recomputed with it. ``n < 2`` gives 0.
    """
    if not isinstance(z, torch.Tensor):
        raise DTypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise ShapeError(f"z must be a 2-D tensor (n, d), got shape {tuple(z.shape)}")
    n = z.shape[0]
    if n < 2:
        return (z * 0).sum()
    with torch.no_grad():
        sq = (z * z).sum(1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
        d2.fill_diagonal_(math.inf)
        nn_idx = d2.argmin(1)
    rho = (z - z[nn_idx]).norm(dim=1).clamp_min(eps)
    return -torch.log(n * rho).mean()


def triplet_rank_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.0
) -> torch.Tensor:
    """``mean_i max(0, ‖a_i − p_i‖ − ‖a_i − n_i‖ + margin)`` with non-squared L2 distances
    (``torch.nn.functional.pairwise_distance``, eps 1e-6); the released code uses margin 0."""
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        if not isinstance(t, torch.Tensor):
            raise DTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2 or t.shape != anchor.shape:
            raise ShapeError(
                f"{name} has shape {tuple(t.shape)}, expected the anchor's {tuple(anchor.shape)}"
            )
    d_pos = F.pairwise_distance(anchor, positive)
    d_neg = F.pairwise_distance(anchor, negative)
    return F.relu(d_pos - d_neg + margin).mean()


# ---------------------------------------------------------------------------------------------
# triplet mining


def knn_positives(x: Any, k: int = 10, include_self: bool = False) -> I64:
    """Ids ``(n, k)`` of the exact ``k`` nearest neighbours (squared L2, ties to the lower id) of
    every row of ``x`` among the rows of ``x``, with :class:`quanta.IndexFlat`.

    ``include_self=False`` (quanta default) drops each row's own id (the released code keeps it:
    rank 0 is then usually the anchor itself, ``include_self=True`` reproduces that).
    """
    xs = as_float_tensor(x, "x").cpu().numpy()
    n = xs.shape[0]
    k = positive_int(k, "k")
    kk = k if include_self else k + 1
    if kk > n:
        raise InvalidArgumentError(
            f"k={k} neighbours{'' if include_self else ' besides itself'} need at least {kk} "
            f"rows, x has {n}"
        )
    index = IndexFlat(xs.shape[1])
    index.add(xs)
    _, ids = index.search(xs, kk)
    if include_self:
        return ids
    own = ids == np.arange(n)[:, None]
    # a row whose own id is not in its list (exact duplicates with lower ids): drop the last
    missing = ~own.any(1)
    own[missing, -1] = True  # ids in a row are distinct: exactly one entry per row to drop
    return np.ascontiguousarray(ids[~own].reshape(n, k))


def rank_negatives(z: Any, z_db: Any | None = None, rank: int = 50) -> I64:
    """For every row of ``z``, the id of its ``rank``-th nearest row of ``z_db`` (default ``z``
    itself, the row counting as rank 1 as in the released code), via :class:`quanta.IndexFlat`.

    ``z_db`` may be the quantized outputs (negatives mined against the codes). With fewer than
    ``rank`` database rows the last one found is used.
    """
    zs = as_float_tensor(z, "z").cpu().numpy()
    db = zs if z_db is None else as_float_tensor(z_db, "z_db", zs.shape[1]).cpu().numpy()
    rank = positive_int(rank, "rank")
    index = IndexFlat(zs.shape[1])
    index.add(db)
    _, ids = index.search(zs, min(rank, db.shape[0]))
    return np.ascontiguousarray(ids[:, -1])


# ---------------------------------------------------------------------------------------------
# quantizers used during training


def _quantizer_fn(quantizer: QuantizerArg, d_out: int) -> Callable[[F32], F32] | None:
    """numpy ``z → quantized unit rows`` for quantizer-aware training, or ``None``."""
    if quantizer is None:
        return None
    if isinstance(quantizer, str):
        if quantizer != "sign":
            raise InvalidArgumentError(
                f"quantizer must be None, 'sign', a ZnSphereCodec or an E8ShellCodec, "
                f"got {quantizer!r}"
            )
        quantizer = SignEncoder(d_out)
    if isinstance(quantizer, SignEncoder):
        if quantizer.d != d_out:
            raise ShapeError(f"quantizer has d={quantizer.d}, expected d_out={d_out}")
        inv = np.float32(1.0 / math.sqrt(d_out))

        def sign(z: F32) -> F32:
            return np.where(z > 0, inv, -inv).astype(np.float32)

        return sign
    if isinstance(quantizer, (ZnSphereCodec, E8ShellCodec)):
        if quantizer.d != d_out:
            raise ShapeError(f"quantizer has d={quantizer.d}, expected d_out={d_out}")
        return quantizer.quantize
    raise DTypeError(
        "quantizer must be None, 'sign', a SignEncoder, a ZnSphereCodec or an E8ShellCodec, "
        f"got {type(quantizer).__name__}"
    )


def _straight_through(z: torch.Tensor, fn: Callable[[F32], F32]) -> torch.Tensor:
    q = torch.from_numpy(fn(np.ascontiguousarray(z.detach().cpu().numpy(), dtype=np.float32)))
    return z + (q.to(z) - z).detach()


def _lr_at(schedule: Sequence[float], epoch: int, epochs: int) -> float:
    return float(schedule[min(epoch * len(schedule) // epochs, len(schedule) - 1)])


# ---------------------------------------------------------------------------------------------
# trainer


def train_catalyzer(
    x_learn: Any,
    d_out: int,
    *,
    quantizer: QuantizerArg = None,
    lambda_koleo: float = 0.05,
    epochs: int = 10,
    lr_schedule: Sequence[float] = DEFAULT_LR_SCHEDULE,
    batch_size: int = 64,
    momentum: float = 0.9,
    k_pos: int = 10,
    k_neg: int = 50,
    margin: float = 0.0,
    hidden: int = 1024,
    n_hidden: int = 2,
    dropout: float = 0.0,
    positives: Any | None = None,
    positives_include_self: bool = False,
    validate: Callable[[Catalyzer, int], float] | None = None,
    validate_every: int = 1,
    catalyzer: Catalyzer | None = None,
    seed: int = 1234,
    device: str | torch.device | None = "cpu",
    verbose: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Catalyzer:
    """Train a :class:`Catalyzer` on ``x_learn`` ``(n, d_in)`` (ALGORITHMS.md §4.3–4.4).

    Each epoch: draw one positive per anchor among its ``k_pos`` input-space neighbours
    (``positives``: precomputed ids ``(n, ≥1)``, else :func:`knn_positives`, once); embed all
    of ``x_learn`` (eval mode) and take each anchor's ``k_neg``-th output-space neighbour as its
    negative (:func:`rank_negatives`, against the quantized outputs when ``quantizer`` is set);
    then SGD (``momentum``, no weight decay) over a random permutation in batches of
    ``batch_size`` on ``triplet_rank_loss + lambda_koleo · koleo_loss(anchors)``. The learning
    rate follows ``lr_schedule`` stretched over ``epochs`` (paper: 0.1, 0.1, 0.05, 0.01 over 160
    epochs). A trailing batch of one row is skipped (BatchNorm needs two).

    ``quantizer`` (``"sign"``, a :class:`quanta.ZnSphereCodec` or :class:`quanta.E8ShellCodec`
    of dimension ``d_out``) turns on quantizer-aware training: positives and negatives are
    quantized with a straight-through estimator. ``validate(catalyzer, epoch) → score`` (higher
    is better, e.g. 1-recall@10 on held-out data) runs every ``validate_every`` epochs and the
    best state is kept (paper: every 10 epochs, Zn 64 bits). ``catalyzer`` warm-starts from an
    existing model. ``checkpoint`` is rewritten (atomically) after every epoch with the current
    state; :meth:`Catalyzer.load` reads it. The returned model is in eval mode and keeps
    ``history`` (per-epoch loss terms, offending triplets, lr, validation score).

    Deterministic for a ``seed`` on the CPU (all draws come from one seeded generator, the
    mining index is exact and deterministic); on CUDA some kernels are not.
    """
    x = as_float_tensor(x_learn, "x_learn")
    n, d_in = x.shape
    d_out = positive_int(d_out, "d_out")
    epochs = positive_int(epochs, "epochs")
    batch_size = as_int(batch_size, "batch_size", 2, 1 << 24)
    k_pos = positive_int(k_pos, "k_pos")
    k_neg = positive_int(k_neg, "k_neg")
    validate_every = positive_int(validate_every, "validate_every")
    seed = as_int(seed, "seed", 0, 2**63 - 1)
    lam = _finite_float(lambda_koleo, "lambda_koleo", lo=0.0)
    momentum = _finite_float(momentum, "momentum", lo=0.0)
    margin = _finite_float(margin, "margin")
    schedule = [_finite_float(v, "lr_schedule", lo=0.0) for v in lr_schedule]
    if not schedule:
        raise InvalidArgumentError("lr_schedule must hold at least one learning rate")
    if n < 3:
        raise InvalidArgumentError(f"x_learn needs at least 3 rows for triplets, got {n}")
    qfn = _quantizer_fn(quantizer, d_out)
    dev = resolve_device(device)
    g = seed_everything(seed)

    if catalyzer is None:
        cat = Catalyzer(d_in, d_out, hidden, n_hidden, dropout)
    else:
        if not isinstance(catalyzer, Catalyzer):
            raise DTypeError(f"catalyzer must be a Catalyzer, got {type(catalyzer).__name__}")
        if catalyzer.d_in != d_in or catalyzer.d_out != d_out:
            raise ShapeError(
                f"catalyzer maps {catalyzer.d_in} → {catalyzer.d_out}, but x_learn has d={d_in} "
                f"and d_out={d_out}"
            )
        cat = catalyzer
    if not cat.is_fitted:
        cat.fit_input_normalization(x)

    if positives is None:
        pos_table = torch.from_numpy(knn_positives(x, min(k_pos, n - 1), positives_include_self))
    else:
        pos_table = _check_positives(positives, n)

    cat.to(dev)
    x_dev = x.to(dev)
    opt = torch.optim.SGD(cat.parameters(), lr=schedule[0], momentum=momentum)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, Any]] | None = None
    rows = torch.arange(n)

    for epoch in range(epochs):
        lr = _lr_at(schedule, epoch, epochs)
        for group in opt.param_groups:
            group["lr"] = lr
        rank_pos = torch.randint(pos_table.shape[1], (n,), generator=g)
        pos_idx = pos_table[rows, rank_pos]
        z_all = cat.embed(x)
        neg_idx = torch.from_numpy(
            rank_negatives(z_all, None if qfn is None else qfn(z_all), min(k_neg, n))
        )
        perm = torch.randperm(n, generator=g)

        cat.train()
        sums = {"loss": 0.0, "rank": 0.0, "koleo": 0.0}
        offending = 0
        nbatch = 0
        starts = range(0, n, batch_size)
        bar = progress(starts, verbose, f"catalyzer epoch {epoch + 1}/{epochs}", len(starts))
        for i0 in bar:
            idx = perm[i0 : i0 + batch_size]
            b = idx.shape[0]
            if b < 2:
                continue
            batch = torch.cat([idx, pos_idx[idx], neg_idx[idx]]).to(dev)
            out = cat(x_dev[batch])
            anc, pos, neg = out[:b], out[b : 2 * b], out[2 * b :]
            if qfn is not None:
                pos, neg = _straight_through(pos, qfn), _straight_through(neg, qfn)
            per_point = F.relu(
                F.pairwise_distance(anc, pos) - F.pairwise_distance(anc, neg) + margin
            )
            l_rank = per_point.mean()
            l_koleo = koleo_loss(anc)
            loss = l_rank + lam * l_koleo
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch's stub lacks annotations
            opt.step()
            sums["loss"] += float(loss.detach())
            sums["rank"] += float(l_rank.detach())
            sums["koleo"] += float(l_koleo.detach())
            offending += int((per_point.detach() > 0).sum())
            nbatch += 1
            if nbatch % 50 == 0:
                set_postfix(bar, **{k: v / nbatch for k, v in sums.items()})
        if not math.isfinite(sums["loss"]):
            raise InvalidArgumentError(
                f"training diverged at epoch {epoch} (loss {sums['loss']}); lower the learning rate"
            )
        logs: dict[str, float] = {k: v / max(nbatch, 1) for k, v in sums.items()}
        logs.update(epoch=float(epoch), lr=lr, offending=float(offending))
        if validate is not None and ((epoch + 1) % validate_every == 0 or epoch + 1 == epochs):
            cat.eval()
            score = float(validate(cat, epoch))
            logs["val"] = score
            if best is None or score > best[0]:
                best = (score, epoch, copy.deepcopy(cat.state_dict()))
        history.append(logs)
        if verbose:
            terms = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "epoch")
            print(f"catalyzer epoch {epoch + 1}/{epochs}: {terms}", flush=True)
        cat.history = history
        if checkpoint is not None:
            cat.best_epoch = None if best is None else best[1]
            save_checkpoint(checkpoint, CATALYZER_KIND, cat._full_config(), _cpu_state(cat))

    if best is not None:
        cat.load_state_dict(best[2])
        cat.best_epoch = best[1]
        if checkpoint is not None:
            save_checkpoint(checkpoint, CATALYZER_KIND, cat._full_config(), _cpu_state(cat))
    cat.history = history
    cat.eval()
    return cat


def _finite_float(v: Any, name: str, lo: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise DTypeError(f"{name} must be a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or (lo is not None and f < lo):
        raise InvalidArgumentError(
            f"{name} must be finite{'' if lo is None else f' and >= {lo}'}, got {v}"
        )
    return f


def _check_positives(positives: Any, n: int) -> torch.Tensor:
    p = positives.detach().cpu().numpy() if isinstance(positives, torch.Tensor) else positives
    p = np.asarray(p)
    if p.dtype.kind not in "iu":
        raise DTypeError(f"positives must hold integer ids, got dtype {p.dtype}")
    if p.ndim != 2 or p.shape[0] != n or p.shape[1] == 0:
        raise ShapeError(f"positives must have shape ({n}, k) with k >= 1, got {p.shape}")
    if p.min() < 0 or p.max() >= n:
        raise InvalidArgumentError(f"positives must be ids in [0, {n}), got {p.min()}..{p.max()}")
    return torch.from_numpy(p.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# end-to-end index


def _codec_kind(codec: Any) -> str:
    if isinstance(codec, SignEncoder):
        return "sign"
    if isinstance(codec, ZnSphereCodec):
        return "zn"
    if isinstance(codec, E8ShellCodec):
        return "e8"
    if isinstance(codec, ProductQuantizer):
        return "pq"
    raise DTypeError(
        "codec must be 'sign', a SignEncoder, a ZnSphereCodec, an E8ShellCodec or a "
        f"ProductQuantizer, got {type(codec).__name__}"
    )


class SpreadingVectors:
    """Catalyzer + codec + core index, end to end (ALGORITHMS.md §4.5–4.7).

    ``codec`` (its ``d`` must be the catalyzer's ``d_out``):

    * ``"sign"`` / :class:`quanta.SignEncoder` — ``d_out`` bits, symmetric Hamming search in
      :class:`quanta.IndexBinaryFlat` (query binarized too, as the released code);
    * :class:`quanta.ZnSphereCodec` / :class:`quanta.E8ShellCodec` — lattice codes in
      :class:`quanta.IndexLattice`, asymmetric: the query's catalyzer output against the decoded
      unit vectors;
    * :class:`quanta.ProductQuantizer` — trained by :meth:`fit` on the catalyzer outputs if
      not yet trained, :class:`quanta.IndexPQ` ADC search.

    ``search`` returns faiss-style ``(D, I)``: ``D`` float32 ``(nq, k)`` ascending (Hamming
    distances for sign codes, squared L2 to the decoded/reconstructed unit vectors otherwise),
    ``I`` int64, ``-1`` (and ``inf``) padding. :meth:`save` / :meth:`load` keep everything
    (weights, codec parameters, codes) in one checkpoint file.
    """

    def __init__(self, catalyzer: Catalyzer, codec: Codec | str) -> None:
        if not isinstance(catalyzer, Catalyzer):
            raise DTypeError(f"catalyzer must be a Catalyzer, got {type(catalyzer).__name__}")
        if isinstance(codec, str):
            if codec != "sign":
                raise InvalidArgumentError(f"codec must be 'sign' or a codec object, got {codec!r}")
            codec = SignEncoder(catalyzer.d_out)
        self.kind = _codec_kind(codec)
        if codec.d != catalyzer.d_out:
            raise ShapeError(
                f"codec has d={codec.d} but the catalyzer outputs d_out={catalyzer.d_out}"
            )
        self.catalyzer = catalyzer
        self.codec: Codec = codec
        self._index: IndexBinaryFlat | IndexLattice | IndexPQ | None = None
        self._make_index()

    def _make_index(self) -> None:
        c = self.codec
        if isinstance(c, SignEncoder):
            self._index = IndexBinaryFlat(8 * c.code_size)
        elif isinstance(c, (ZnSphereCodec, E8ShellCodec)):
            self._index = IndexLattice(c, "l2")
        elif isinstance(c, ProductQuantizer):
            self._index = IndexPQ.from_pq(c, "l2") if c.is_trained else None

    @property
    def d(self) -> int:
        """Input dimension (the catalyzer's ``d_in``)."""
        return self.catalyzer.d_in

    @property
    def d_out(self) -> int:
        return self.catalyzer.d_out

    @property
    def code_size(self) -> int:
        """Bytes per stored code."""
        return int(self.codec.code_size)

    @property
    def nbits(self) -> int:
        """Bits of information per code (``ceil(log2 nv)`` for lattices, ``M·nbits`` for PQ)."""
        c = self.codec
        if isinstance(c, ProductQuantizer):
            return c.M * c.nbits
        return int(c.nbits)

    @property
    def is_trained(self) -> bool:
        return self.catalyzer.is_fitted and self._index is not None

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else self._index.ntotal

    def __len__(self) -> int:
        return self.ntotal

    def fit(
        self, x_learn: Any, *, train_catalyzer: bool = True, **train_kwargs: Any
    ) -> SpreadingVectors:
        """Train the catalyzer on ``x_learn`` (keyword arguments go to :func:`train_catalyzer`,
        warm-starting from the current weights), then a PQ codec on its outputs if needed.

        ``train_catalyzer=False`` keeps the weights (a pre-trained catalyzer) and only fits
        what is missing (input normalization, PQ codebooks). Lattice and sign codecs have no
        parameters. Must be called before :meth:`add` unless the catalyzer is already fitted.
        """
        if train_catalyzer:
            self.catalyzer = _train(x_learn, self.d_out, catalyzer=self.catalyzer, **train_kwargs)
        elif not self.catalyzer.is_fitted:
            self.catalyzer.fit_input_normalization(x_learn)
        if isinstance(self.codec, ProductQuantizer) and not self.codec.is_trained:
            self.codec.train(self.catalyzer.embed(x_learn))
            self._make_index()
        return self

    def _check_ready(self, what: str) -> None:
        if not self.is_trained:
            raise NotTrainedError(f"SpreadingVectors.{what}: call fit() first")

    def _codes_input(self, x: Any, name: str) -> F32:
        return self.catalyzer.embed(as_float_tensor(x, name, self.d))

    def add(self, x: Any) -> None:
        """Embed, encode and append ``x`` ``(n, d)``; ids continue from ``ntotal``."""
        self._check_ready("add")
        z = self._codes_input(x, "x")
        assert self._index is not None
        if isinstance(self._index, IndexBinaryFlat):
            self._index.add(self.codec.encode(z))
        else:
            self._index.add(z)

    def search(self, q: Any, k: int) -> tuple[F32, I64]:
        """``k`` nearest stored codes of each query ``q`` ``(nq, d)`` (a 1-D query is one)."""
        self._check_ready("search")
        k = positive_int(k, "k")
        qa = q.detach().cpu() if isinstance(q, torch.Tensor) else np.asarray(q)
        if qa.ndim == 1:
            qa = qa.reshape(1, -1)
        z = self._codes_input(qa, "queries")
        assert self._index is not None
        if isinstance(self._index, IndexBinaryFlat):
            dh, ids = self._index.search(self.codec.encode(z), k)
            dist = dh.astype(np.float32)
            dist[ids < 0] = np.inf
            return dist, ids
        dist, ids = self._index.search(z, k)
        return dist, ids

    def codes(self) -> npt.NDArray[np.uint8]:
        """The stored codes ``(ntotal, code_size)`` (a copy)."""
        idx = self._index
        if idx is None:
            return np.zeros((0, self.code_size), dtype=np.uint8)
        if isinstance(idx, IndexBinaryFlat):
            return idx.reconstruct_n()
        if isinstance(idx, IndexLattice):
            return idx.codes()
        return idx.codes

    def reset(self) -> None:
        """Remove every stored code (the models stay)."""
        if self._index is not None:
            self._index.reset()

    # -- persistence ---------------------------------------------------------------------------

    def _codec_config(self) -> dict[str, Any]:
        c = self.codec
        if isinstance(c, SignEncoder):
            return {"kind": "sign", "d": c.d}
        if isinstance(c, ZnSphereCodec):
            return {"kind": "zn", "d": c.d, "r2": c.r2}
        if isinstance(c, E8ShellCodec):
            return {"kind": "e8", "d": c.d, "shells": list(c.shells)}
        return {"kind": "pq", "d": c.d, "M": c.M, "nbits": c.nbits, "trained": c.is_trained}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Catalyzer weights + config, codec parameters (PQ codebooks) and the stored codes in
        one ``quanta.nn`` checkpoint, written atomically."""
        state: dict[str, Any] = {
            "catalyzer": _cpu_state(self.catalyzer),
            "codes": torch.from_numpy(self.codes().copy()),
        }
        if isinstance(self.codec, ProductQuantizer) and self.codec.is_trained:
            state["centroids"] = torch.from_numpy(np.ascontiguousarray(self.codec.centroids))
        config = {"catalyzer": self.catalyzer._full_config(), "codec": self._codec_config()}
        save_checkpoint(path, SPREADING_KIND, config, state)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpreadingVectors:
        """The index saved by :meth:`save` (catalyzer on the CPU, eval mode)."""
        config, state = load_checkpoint(path, SPREADING_KIND)
        try:
            cat = Catalyzer._from(config["catalyzer"], state["catalyzer"])
            cc = config["codec"]
            codec: Codec
            if cc["kind"] == "sign":
                codec = SignEncoder(cc["d"])
            elif cc["kind"] == "zn":
                codec = ZnSphereCodec(cc["d"], cc["r2"])
            elif cc["kind"] == "e8":
                codec = E8ShellCodec(cc["shells"], d=cc["d"])
            elif cc["kind"] == "pq":
                if cc.get("trained"):
                    codec = ProductQuantizer.from_centroids(state["centroids"].numpy())
                else:
                    codec = ProductQuantizer(cc["d"], cc["M"], cc["nbits"])
            else:
                raise KeyError(f"codec kind {cc['kind']!r}")
            obj = cls(cat, codec)
            codes = state["codes"].numpy()
        except (KeyError, TypeError, AttributeError) as e:
            raise FormatError(
                f"{os.fspath(path)}: SpreadingVectors checkpoint is incomplete ({e})"
            ) from None
        if codes.shape[0]:
            idx = obj._index
            if isinstance(idx, IndexBinaryFlat):
                idx.add(codes)
            elif idx is not None:
                idx.add_codes(codes)
        return obj

    def __repr__(self) -> str:
        return (
            f"SpreadingVectors(d={self.d}, d_out={self.d_out}, codec={self.codec!r}, "
            f"nbits={self.nbits}, ntotal={self.ntotal})"
        )


_train = train_catalyzer  # SpreadingVectors.fit's keyword ``train_catalyzer`` shadows the name
