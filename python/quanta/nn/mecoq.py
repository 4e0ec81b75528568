"""MeCoQ — contrastive soft product quantization with code memory (Wang et al., AAAI 2022).

ALGORITHMS.md §6. An encoder (:class:`~quanta.nn.backbones.SmallCNN` for 28x28 images or
:class:`~quanta.nn.backbones.MLP`) and a linear projection give ``z ∈ R^D``; :class:`SoftPQ`
splits it into ``M`` sub-vectors, L2-normalizes them and the codewords, and replaces each by the
α-softmax mixture of its codewords. Two augmented views of a batch are pulled together by the
debiased contrastive loss (:func:`debiased_contrastive_loss`), with the soft codes of recent
batches (:class:`CodeMemory`, re-decoded with the current codebooks) as extra negatives, plus a
codeword-diversity regularizer (:func:`codeword_regularizer`) and a soft-code entropy term.

Retrieval (AQS, §6.8): :meth:`MeCoQ.to_index` exports a :class:`quanta.IndexPQ` (inner-product
metric) holding the normalized codebooks and the database's hard codes; :meth:`MeCoQ.search`
embeds the queries, normalizes their sub-vectors and ranks with the Rust ADC kernel — the query
stays un-quantized, ``score = Σ_m <z_q^m / ||z_q^m||, c̄^m_{i_m}>``.

Choices (§6, Appendix A): codebooks are learned (``learn_codebooks=False`` freezes them at the
normalized Xavier initialization, as the released code does); ``compat="paper"`` uses the paper's
loss (``N_neg`` counts memory negatives, clamp ``N_neg·e^{-1/T}``, memory re-normalized) and AQS
(normalized query sub-vectors); ``compat="released_code"`` reproduces the code's variants. Unfilled
memory slots are masked (``mask_unfilled=True``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from ..exceptions import DTypeError, InvalidArgumentError, ShapeError
from ..pq import IndexPQ, ProductQuantizer
from ._common import (
    as_float_tensor,
    load_checkpoint,
    progress,
    resolve_device,
    save_checkpoint,
    seed_everything,
    set_postfix,
    to_numpy,
)
from .backbones import MLP, SmallCNN, as_images

__all__ = [
    "CodeMemory",
    "FeatureAugment",
    "ImageAugment",
    "MeCoQ",
    "SoftPQ",
    "codeword_regularizer",
    "debiased_contrastive_loss",
    "load_mecoq",
    "soft_code_entropy",
    "train_mecoq",
]

CHECKPOINT_KIND = "mecoq"
COMPAT = ("paper", "released_code")
SearchResult = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def _check_compat(compat: str) -> str:
    if compat not in COMPAT:
        raise InvalidArgumentError(f"compat must be 'paper' or 'released_code', got {compat!r}")
    return compat


def _positive(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidArgumentError(f"{name} must be a finite number > 0, got {v!r}")
    return float(v)


def _nonneg(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


def _count(v: Any, name: str, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < lo:
        raise InvalidArgumentError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


# --------------------------------------------------------------------------- soft quantization


class SoftPQ(nn.Module):
    """``M`` codebooks of ``ksub`` unit codewords over ``dsub = d / M`` dimensions (§6.3).

    ``forward(z)`` returns the soft reconstruction ``z̃ (n, d)`` (concatenation over m of
    ``Σ_k p^m_k c̄^m_k``) and the soft codes ``p (n, M, ksub)``,
    ``p^m = softmax(α <ẑ^m, c̄^m_k>)`` with ``ẑ^m``, ``c̄^m_k`` L2-normalized. :meth:`hard_codes`
    gives ``argmax_k <ẑ^m, c̄^m_k>`` (lowest k on ties), the limit of ``p`` as α → ∞.
    """

    def __init__(
        self, d: int, M: int, ksub: int = 256, alpha: float = 10.0, learn_codebooks: bool = True
    ) -> None:
        super().__init__()
        d, M, ksub = _count(d, "d"), _count(M, "M"), _count(ksub, "ksub", 2)
        if d % M:
            raise InvalidArgumentError(f"d={d} is not divisible by M={M}: M must divide d")
        self.d, self.M, self.ksub, self.dsub = d, M, ksub, d // M
        self.alpha = _positive(alpha, "alpha")
        c = torch.empty(M, ksub, self.dsub)
        nn.init.xavier_uniform_(c)
        self.raw_codebooks = nn.Parameter(F.normalize(c, dim=-1), requires_grad=learn_codebooks)

    @property
    def codebooks(self) -> torch.Tensor:
        """Unit codewords ``(M, ksub, dsub)`` (differentiable w.r.t. the raw parameter)."""
        return F.normalize(self.raw_codebooks, dim=-1)

    @torch.no_grad()
    def renormalize_(self) -> None:
        """Put the stored codewords back on the unit sphere (after an optimizer step)."""
        self.raw_codebooks.copy_(F.normalize(self.raw_codebooks, dim=-1))

    def split(self, z: torch.Tensor) -> torch.Tensor:
        """``z (n, d)`` → normalized sub-vectors ``(n, M, dsub)``."""
        if z.dim() != 2 or z.shape[1] != self.d:
            raise ShapeError(f"z must have shape (n, {self.d}), got {tuple(z.shape)}")
        return F.normalize(z.reshape(z.shape[0], self.M, self.dsub), dim=-1)

    def similarities(self, z: torch.Tensor) -> torch.Tensor:
        """``<ẑ^m, c̄^m_k>`` as ``(n, M, ksub)``."""
        return torch.einsum("nmd,mkd->nmk", self.split(z), self.codebooks)

    def soft_codes(self, z: torch.Tensor) -> torch.Tensor:
        """α-softmax assignments ``(n, M, ksub)``."""
        return torch.softmax(self.alpha * self.similarities(z), dim=-1)

    def decode(self, p: torch.Tensor) -> torch.Tensor:
        """Soft (or one-hot) codes ``(n, M, ksub)`` → reconstructions ``(n, d)`` with the
        current codebooks."""
        if p.dim() != 3 or p.shape[1:] != (self.M, self.ksub):
            raise ShapeError(
                f"codes must have shape (n, {self.M}, {self.ksub}), got {tuple(p.shape)}"
            )
        return torch.einsum("nmk,mkd->nmd", p, self.codebooks).reshape(p.shape[0], self.d)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.soft_codes(z)
        return self.decode(p), p

    @torch.no_grad()
    def hard_codes(self, z: torch.Tensor) -> torch.Tensor:
        """``argmax_k <ẑ^m, c̄^m_k>`` as int64 ``(n, M)``; the first maximum wins ties."""
        return self.similarities(z).argmax(dim=-1)


# --------------------------------------------------------------------------- losses


def debiased_contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    memory: torch.Tensor | None = None,
    *,
    temperature: float = 0.25,
    rho_plus: float = 0.1,
    compat: str = "paper",
) -> torch.Tensor:
    """Debiased contrastive loss (§6.4) of two views ``z1``, ``z2`` ``(B, D)``.

    Anchors are the 2B rows; each one's positive is its other view, its negatives the other
    ``2B − 2`` rows plus the ``N_M`` rows of ``memory`` ``(N_M, D)``. With ``pos = e^{s+/T}``:
    ``g = max((Σ_neg e^{s/T} − ρ⁺·N·pos) / (1 − ρ⁺), floor)``, loss = ``mean −log(pos/(pos + g))``.
    ``compat="paper"``: ``N = 2B − 2 + N_M``, floor ``N·e^{−1/T}``, memory rows normalized.
    ``compat="released_code"``: ``N = 2B − 2``, floor ``e^{−N/T}``, memory rows as given.
    ``rho_plus=0`` is the plain NT-Xent/InfoNCE loss.
    """
    _check_compat(compat)
    t = _positive(temperature, "temperature")
    rho = _nonneg(rho_plus, "rho_plus")
    if rho >= 1:
        raise InvalidArgumentError(f"rho_plus must be in [0, 1), got {rho_plus!r}")
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ShapeError(
            f"z1 and z2 must both have shape (B, D), got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    b = z1.shape[0]
    if b < 2:
        raise ShapeError(f"the batch must hold at least 2 items, got B={b}")
    feats = F.normalize(torch.cat([z1, z2]), dim=-1)
    sim = feats @ feats.T / t
    n2 = 2 * b
    idx = torch.arange(n2, device=feats.device)
    pos_idx = (idx + b) % n2
    pos = torch.exp(sim[idx, pos_idx])
    neg_mask = torch.ones(n2, n2, dtype=torch.bool, device=feats.device)
    neg_mask[idx, idx] = False
    neg_mask[idx, pos_idx] = False
    neg = (torch.exp(sim) * neg_mask).sum(dim=1)
    n_neg = n2 - 2
    if memory is not None and memory.shape[0] > 0:
        if memory.dim() != 2 or memory.shape[1] != z1.shape[1]:
            raise ShapeError(
                f"memory must have shape (N_M, {z1.shape[1]}), got {tuple(memory.shape)}"
            )
        mem = F.normalize(memory, dim=-1) if compat == "paper" else memory
        neg = neg + torch.exp(feats @ mem.T / t).sum(dim=1)
        if compat == "paper":
            n_neg += memory.shape[0]
    if rho > 0:
        floor = n_neg * math.exp(-1.0 / t) if compat == "paper" else math.exp(-n_neg / t)
        neg = torch.clamp((neg - rho * n_neg * pos) / (1.0 - rho), min=floor)
    return (-torch.log(pos / (pos + neg))).mean()


def codeword_regularizer(codebooks: torch.Tensor) -> torch.Tensor:
    """``Ω_C = (1/(M K²)) Σ_m Σ_i Σ_j <c̄^m_i, c̄^m_j>`` of codebooks ``(M, K, dsub)``
    (normalized here; the diagonal is included, as in the paper and the code)."""
    if codebooks.dim() != 3:
        raise ShapeError(f"codebooks must have shape (M, K, dsub), got {tuple(codebooks.shape)}")
    c = F.normalize(codebooks, dim=-1)
    return torch.einsum("mkd,mjd->mkj", c, c).mean()


def soft_code_entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean over rows and sub-spaces of ``−Σ_k p_k log p_k`` for soft codes ``(n, M, K)``.

    This is the released code's scale (its λ values are tuned for it); ALGORITHMS.md §6.5 writes
    the sum over sub-spaces, i.e. ``M`` times this value — same minimizer, λ rescaled.
    """
    if p.dim() != 3:
        raise ShapeError(f"soft codes must have shape (n, M, K), got {tuple(p.shape)}")
    return (-(p * torch.log(p + 1e-12)).sum(dim=-1)).mean()


# --------------------------------------------------------------------------- code memory


class CodeMemory:
    """FIFO queue of ``size`` soft codes ``(M, ksub)`` (§6.6), detached.

    :meth:`enqueue` writes rows at the pointer with wrap-around (a batch larger than the queue
    keeps its last ``size`` rows); :meth:`codes` returns the stored codes oldest first — only the
    filled slots with ``mask_unfilled=True``, else all ``size`` slots in storage order with zero
    rows for unfilled slots (the released code). Decode them with the *current* codebooks
    (:meth:`SoftPQ.decode`) to get the memory negatives.
    """

    def __init__(
        self, size: int, M: int, ksub: int, device: torch.device | str | None = None
    ) -> None:
        self.size = _count(size, "memory size")
        self.buffer = torch.zeros(self.size, _count(M, "M"), _count(ksub, "ksub"), device=device)
        self.ptr = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @property
    def is_full(self) -> bool:
        return self.count == self.size

    @torch.no_grad()
    def enqueue(self, p: torch.Tensor) -> None:
        if p.dim() != 3 or p.shape[1:] != self.buffer.shape[1:]:
            raise ShapeError(
                f"codes must have shape (n, {self.buffer.shape[1]}, {self.buffer.shape[2]}), "
                f"got {tuple(p.shape)}"
            )
        p = p.detach().to(self.buffer.device, self.buffer.dtype)
        if p.shape[0] > self.size:
            p = p[-self.size :]
        n = p.shape[0]
        first = min(n, self.size - self.ptr)
        self.buffer[self.ptr : self.ptr + first] = p[:first]
        if n > first:
            self.buffer[: n - first] = p[first:]
        self.ptr = (self.ptr + n) % self.size
        self.count = min(self.size, self.count + n)

    def codes(self, mask_unfilled: bool = True) -> torch.Tensor:
        if not mask_unfilled:
            return self.buffer
        if self.count < self.size:
            return self.buffer[: self.count]
        return torch.cat([self.buffer[self.ptr :], self.buffer[: self.ptr]])

    def reset(self) -> None:
        self.buffer.zero_()
        self.ptr = 0
        self.count = 0


# --------------------------------------------------------------------------- augmentations


@dataclass(frozen=True)
class ImageAugment:
    """Random views of grey images ``(n, 1, H, W)`` in [0, 1], torch ops only (§6.7, adapted
    to 28x28 grey images: colour jitter becomes brightness/contrast, blur becomes noise).

    Random resized crop (area ``crop_scale``, aspect ``crop_ratio``) and horizontal flip
    (``flip_p``) in one bilinear ``grid_sample``; brightness/contrast jitter with
    probability ``jitter_p``; Gaussian pixel noise of std ``noise_std`` with probability
    ``noise_p``; clamped to [0, 1]. Each image draws its own parameters from ``generator``.
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.7
    brightness: float = 0.4
    contrast: float = 0.4
    noise_p: float = 0.5
    noise_std: float = 0.1

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ShapeError(f"images must have shape (n, C, H, W), got {tuple(x.shape)}")
        n = x.shape[0]

        def u(lo: float, hi: float) -> torch.Tensor:
            return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(x.device)

        area = u(*self.crop_scale)
        log_r = u(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
        ratio = torch.exp(log_r)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (u(0.0, 1.0) * 2 - 1) * (1 - w)
        cy = (u(0.0, 1.0) * 2 - 1) * (1 - h)
        flip = torch.where(u(0.0, 1.0) < self.flip_p, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        jit = (u(0.0, 1.0) < self.jitter_p).reshape(n, 1, 1, 1)
        bright = u(1 - self.brightness, 1 + self.brightness).reshape(n, 1, 1, 1)
        contr = u(1 - self.contrast, 1 + self.contrast).reshape(n, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        jittered = ((out - mean) * contr + mean) * bright
        out = torch.where(jit, jittered, out)
        noisy = (u(0.0, 1.0) < self.noise_p).reshape(n, 1, 1, 1)
        noise = torch.randn(out.shape, generator=generator).to(x.device) * self.noise_std
        out = torch.where(noisy, out + noise, out)
        return out.clamp(0.0, 1.0)


@dataclass(frozen=True)
class FeatureAugment:
    """Random views of feature vectors ``(n, d)``: feature dropout (``drop_p``) and Gaussian
    noise of ``noise_std`` times each feature's batch standard deviation."""

    drop_p: float = 0.1
    noise_std: float = 0.1

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        keep = (torch.rand(x.shape, generator=generator) >= self.drop_p).to(x.device)
        scale = x.std(dim=0, keepdim=True) if x.shape[0] > 1 else torch.ones_like(x[:1])
        noise = torch.randn(x.shape, generator=generator).to(x.device) * self.noise_std * scale
        return x * keep + noise


Augment = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


# --------------------------------------------------------------------------- model


def _make_encoder(cfg: dict[str, Any]) -> nn.Module:
    kind = cfg["encoder"]
    if kind == "cnn":
        return SmallCNN(out_dim=cfg["enc_dim"])
    if kind == "mlp":
        return MLP(cfg["d_in"], cfg["enc_dim"], hidden=cfg["hidden"], n_hidden=cfg["n_hidden"])
    raise InvalidArgumentError(f"encoder must be 'cnn' or 'mlp', got {kind!r}")


class MeCoQ(nn.Module):
    """Encoder → ``Linear(enc_dim, feat_dim)`` → :class:`SoftPQ` (build with
    :func:`train_mecoq` or :meth:`from_config`; ``config`` holds every architecture choice).

    ``input="image"``: rows are 28x28 grey images (``(n, 784)`` or ``(n, 1, 28, 28)``), pixels
    multiplied by ``pixel_scale``; the CNN sees images, the MLP their flattened pixels.
    ``input="vector"``: rows are feature vectors of ``d_in`` columns.
    """

    def __init__(self, config: dict[str, Any], encoder: nn.Module | None = None) -> None:
        super().__init__()
        cfg = dict(config)
        self.config = cfg
        self.encoder = _make_encoder(cfg) if encoder is None else encoder
        self.projection = nn.Linear(cfg["enc_dim"], cfg["feat_dim"])
        self.pq = SoftPQ(
            cfg["feat_dim"], cfg["M"], cfg["ksub"], cfg["alpha"], cfg["learn_codebooks"]
        )

    @classmethod
    def from_config(cls, config: dict[str, Any], encoder: nn.Module | None = None) -> MeCoQ:
        return cls(config, encoder)

    @property
    def M(self) -> int:
        return self.pq.M

    @property
    def ksub(self) -> int:
        return self.pq.ksub

    @property
    def feat_dim(self) -> int:
        return self.pq.d

    @property
    def device(self) -> torch.device:
        return self.pq.raw_codebooks.device

    def check_input(self, x: Any, name: str = "x") -> torch.Tensor:
        """``x`` as a float32 ``(n, d_in)`` tensor (typed errors). A tensor stays on its device;
        anything else (numpy, lists) becomes a CPU tensor. For ``input="image"`` 4-D input
        ``(n, 1, 28, 28)`` (tensor or array-like) is flattened to ``(n, 784)``."""
        if self.config["input"] == "image":
            if not isinstance(x, torch.Tensor):
                x = to_numpy(x, name)
            if x.ndim == 4:
                x = x.reshape(x.shape[0], -1)
        return as_float_tensor(x, name, self.config["d_in"])

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Raw rows → what the encoder consumes before augmentation (images in [0, 1])."""
        if self.config["input"] == "image":
            return as_images(x * self.config["pixel_scale"])
        return x

    def features(self, v: torch.Tensor) -> torch.Tensor:
        """Prepared (possibly augmented) input → continuous embedding ``z (n, feat_dim)``."""
        if self.config["input"] == "image" and self.config["encoder"] != "cnn":
            v = v.reshape(v.shape[0], -1)
        out: torch.Tensor = self.projection(self.encoder(v))
        return out

    @torch.no_grad()
    def embed(self, x: Any, batch_size: int = 2048) -> torch.Tensor:
        """Continuous embeddings ``z`` ``(n, feat_dim)`` (CPU float32, eval mode)."""
        xs = self.check_input(x)
        was = self.training
        self.eval()
        try:
            out = [
                self.features(self.prepare(xs[i : i + batch_size].to(self.device))).cpu()
                for i in range(0, xs.shape[0], batch_size)
            ]
        finally:
            self.train(was)
        return torch.cat(out)

    @torch.no_grad()
    def encode(self, x: Any, batch_size: int = 2048) -> npt.NDArray[np.uint8]:
        """Hard codes ``(n, M)`` uint8 (``argmax_k <ẑ^m, c̄^m_k>``); needs ``ksub <= 256``."""
        if self.ksub > 256:
            raise InvalidArgumentError(f"uint8 codes need ksub <= 256, got ksub={self.ksub}")
        z = self.embed(x, batch_size).to(self.device)
        return self.pq.hard_codes(z).cpu().numpy().astype(np.uint8)

    def codebooks(self) -> npt.NDArray[np.float32]:
        """Unit codebooks ``(M, ksub, dsub)`` float32."""
        return self.pq.codebooks.detach().cpu().numpy().astype(np.float32)

    def query_vectors(self, x: Any, compat: str = "paper") -> npt.NDArray[np.float32]:
        """AQS query vectors: embeddings with each sub-vector L2-normalized (``"paper"``) or raw
        (``"released_code"``). Their inner-product ADC score against a code is the AQS."""
        z = self.embed(x)
        if _check_compat(compat) == "paper":
            z = self.pq.split(z.to(self.device)).reshape(z.shape[0], -1).cpu()
        return np.ascontiguousarray(z.numpy(), dtype=np.float32)

    def to_index(self, x_db: Any) -> IndexPQ:
        """A :class:`quanta.IndexPQ` (metric ``"ip"``) with the learned unit codebooks and the
        hard codes of ``x_db`` (ids 0..n-1 in row order)."""
        k = self.ksub
        if k > 256 or k & (k - 1):
            raise InvalidArgumentError(f"IndexPQ needs ksub a power of two in 2..256, got ksub={k}")
        codes = self.encode(x_db)
        index = IndexPQ.from_pq(ProductQuantizer.from_centroids(self.codebooks()), metric="ip")
        index.add_codes(codes)
        return index

    def search(self, index: IndexPQ, x_q: Any, k: int, compat: str = "paper") -> SearchResult:
        """AQS top-k of ``x_q`` in ``index`` (from :meth:`to_index`) via the Rust ADC kernel:
        ``D`` float32 ``(nq, k)`` scores descending, ``I`` int64, ties to the lower id."""
        if not isinstance(index, IndexPQ):
            raise DTypeError(f"index must be a quanta.IndexPQ, got {type(index).__name__}")
        if index.metric != "ip" or index.d != self.feat_dim or index.M != self.M:
            raise InvalidArgumentError(
                f"index must be an inner-product IndexPQ with d={self.feat_dim}, M={self.M} "
                f"(from to_index), got {index!r}"
            )
        return index.search(self.query_vectors(x_q, compat), k, mode="adc")

    def save(self, path: str | Path) -> None:
        """Checkpoint with the config and weights (:func:`load_mecoq` / :meth:`load`)."""
        save_checkpoint(path, CHECKPOINT_KIND, self.config, {"model": self.state_dict()})

    @classmethod
    def load(cls, path: str | Path, encoder: nn.Module | None = None) -> MeCoQ:
        """Model from a checkpoint of :meth:`save` or of :func:`train_mecoq` (CPU)."""
        config, state = load_checkpoint(path, CHECKPOINT_KIND)
        model = cls(config, encoder)
        model.load_state_dict(state["model"])
        return model


# --------------------------------------------------------------------------- training


def _lr_at(step: int, total: int, warm: int, lr: float, lr_min: float = 1e-5) -> float:
    """Linear warm-up from ``lr_min`` over ``warm`` steps, then cosine decay to ``lr_min``."""
    if step < warm:
        return lr_min + (lr - lr_min) * step / max(warm, 1)
    frac = (step - warm) / max(total - warm, 1)
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * min(frac, 1.0)))


def _validation_map(model: MeCoQ, val: tuple[Any, Any, Any, Any], k: int, compat: str) -> float:
    xq, yq, xdb, ydb = val
    index = model.to_index(xdb)
    _, ids = model.search(index, xq, min(k, index.ntotal), compat)
    return metrics.map_at_k(ids, yq, ydb, min(k, index.ntotal))


def train_mecoq(
    x_train: Any,
    *,
    M: int = 4,
    ksub: int = 256,
    feat_dim: int | None = None,
    encoder: str | nn.Module = "cnn",
    input: str = "auto",
    enc_dim: int = 256,
    hidden: int = 1024,
    n_hidden: int = 2,
    alpha: float = 10.0,
    temperature: float = 0.25,
    rho_plus: float = 0.1,
    gamma: float = 0.5,
    lam: float = 0.05,
    weight_decay: float = 1e-3,
    memory_size: int = 384,
    queue_begin_epoch: int | None = 3,
    mask_unfilled: bool = True,
    learn_codebooks: bool = True,
    compat: str = "paper",
    augment: Augment | str = "auto",
    epochs: int = 50,
    batch_size: int = 128,
    lr: float = 0.01,
    optimizer: str = "sgd",
    warmup_epochs: int = 1,
    val: tuple[Any, Any, Any, Any] | None = None,
    val_k: int = 1000,
    patience: int | None = None,
    select: str = "best_val",
    callback: Callable[[int, MeCoQ, dict[str, float]], None] | None = None,
    seed: int = 2021,
    device: str | torch.device | None = None,
    checkpoint: str | Path | None = None,
    verbose: bool = False,
) -> tuple[MeCoQ, list[dict[str, float]]]:
    """Train MeCoQ on unlabelled ``x_train`` (§6); returns ``(model, history)``.

    Defaults follow the paper's CIFAR-10 scripts (T = 0.25, ρ⁺ = 0.1, λ = 0.05, γ = 0.5,
    β = 1e-3, memory 384 from epoch 3, SGD momentum 0.9, lr 0.01, one warm-up epoch, cosine
    decay, batch 128, α = 10). ``feat_dim`` defaults to ``16·M`` (the scripts' D = 32 at
    16 bits). ``queue_begin_epoch=None`` disables the code memory (the ablation); epochs count
    from 0, the memory is filled from the epoch before it is used.

    ``encoder``: ``"cnn"`` (:class:`SmallCNN`, 28x28 images), ``"mlp"`` (:class:`MLP` with
    ``hidden``/``n_hidden``), or a module mapping prepared input to ``enc_dim`` features.
    ``input``: ``"image"`` or ``"vector"`` (``"auto"``: image when rows have 784 columns).
    ``augment``: ``"image"`` (:class:`ImageAugment`), ``"vector"`` (:class:`FeatureAugment`),
    ``"auto"`` (by ``input``) or a callable ``(x, generator) -> view``.

    ``val = (x_query, y_query, x_db, y_db)`` (carve it from the training data, never the test
    queries): mAP@``val_k`` of the exported index is computed after every epoch, the best epoch's
    weights are returned (``select="best_val"``; ``select="last"`` returns the last epoch's) and
    ``patience`` epochs without improvement stop training. ``callback(epoch, model, record)`` runs
    after every epoch (after validation; ``record`` is that epoch's history entry).
    ``checkpoint``: a path rewritten after every epoch (model, config, history).
    On CPU a seed gives the same model; CUDA kernels may not be deterministic.
    """
    dev = resolve_device(device)
    compat = _check_compat(compat)
    M, ksub = _count(M, "M"), _count(ksub, "ksub", 2)
    feat_dim = 16 * M if feat_dim is None else _count(feat_dim, "feat_dim")
    if feat_dim % M:
        raise InvalidArgumentError(f"feat_dim={feat_dim} is not divisible by M={M}")
    if optimizer not in ("sgd", "adam"):
        raise InvalidArgumentError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    epochs, batch_size = _count(epochs, "epochs"), _count(batch_size, "batch_size", 2)
    warmup_epochs = _count(warmup_epochs, "warmup_epochs", 0)
    memory_size = _count(memory_size, "memory_size")
    if queue_begin_epoch is not None:
        queue_begin_epoch = _count(queue_begin_epoch, "queue_begin_epoch", 0)
    if patience is not None:
        patience = _count(patience, "patience")
    if select not in ("best_val", "last"):
        raise InvalidArgumentError(f"select must be 'best_val' or 'last', got {select!r}")
    lr = _positive(lr, "lr")
    weight_decay = _nonneg(weight_decay, "weight_decay")
    gamma, lam = _nonneg(gamma, "gamma"), _nonneg(lam, "lam")
    _positive(temperature, "temperature")
    if not 0 <= _nonneg(rho_plus, "rho_plus") < 1:
        raise InvalidArgumentError(f"rho_plus must be in [0, 1), got {rho_plus!r}")

    xs = as_float_tensor(
        x_train.reshape(len(x_train), -1) if getattr(x_train, "ndim", 2) == 4 else x_train,
        "x_train",
    )
    n, d_in = xs.shape
    if n < batch_size:
        raise ShapeError(f"x_train has {n} rows, fewer than batch_size={batch_size}")
    if input == "auto":
        input = "image" if d_in == 784 else "vector"
    if input not in ("image", "vector"):
        raise InvalidArgumentError(f"input must be 'image', 'vector' or 'auto', got {input!r}")
    if input == "image" and d_in != 784:
        raise ShapeError(f"input='image' needs 28x28 images (784 columns), got {d_in}")
    if isinstance(encoder, str):
        if encoder not in ("cnn", "mlp"):
            raise InvalidArgumentError(
                f"encoder must be 'cnn', 'mlp' or an nn.Module, got {encoder!r}"
            )
        if encoder == "cnn" and input != "image":
            raise InvalidArgumentError("encoder='cnn' needs input='image' (28x28 images)")
        kind, custom = encoder, None
    elif isinstance(encoder, nn.Module):
        kind, custom = "custom", encoder
    else:
        raise DTypeError(f"encoder must be a str or nn.Module, got {type(encoder).__name__}")
    if isinstance(augment, str):
        if augment not in ("auto", "image", "vector"):
            raise InvalidArgumentError(
                f"augment must be 'auto', 'image', 'vector' or a callable, got {augment!r}"
            )
        mode = input if augment == "auto" else augment
        aug: Augment = ImageAugment() if mode == "image" else FeatureAugment()
    elif callable(augment):
        aug = augment
    else:
        raise DTypeError(f"augment must be a str or a callable, got {type(augment).__name__}")

    gen = seed_everything(seed)
    pixel_scale = 1.0 / 255.0 if input == "image" and float(xs.max()) > 1.5 else 1.0
    config: dict[str, Any] = {
        "encoder": kind,
        "input": input,
        "d_in": d_in,
        "enc_dim": _count(enc_dim, "enc_dim"),
        "hidden": _count(hidden, "hidden"),
        "n_hidden": _count(n_hidden, "n_hidden", 0),
        "feat_dim": feat_dim,
        "M": M,
        "ksub": ksub,
        "alpha": _positive(alpha, "alpha"),
        "learn_codebooks": bool(learn_codebooks),
        "pixel_scale": pixel_scale,
    }
    model = MeCoQ(config, custom).to(dev)
    net_params = [p for name, p in model.named_parameters() if not name.startswith("pq.")]
    groups: list[dict[str, Any]] = [{"params": net_params, "weight_decay": weight_decay}]
    if learn_codebooks:
        groups.append({"params": [model.pq.raw_codebooks], "weight_decay": 0.0})
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(groups, lr=lr, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(groups, lr=lr)
    )
    memory = CodeMemory(memory_size, M, ksub, dev) if queue_begin_epoch is not None else None
    steps_per_epoch = n // batch_size
    total_steps = steps_per_epoch * epochs
    warm_steps = steps_per_epoch * warmup_epochs
    history: list[dict[str, float]] = []
    best_map, best_state, since_best, step = -1.0, None, 0, 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        use_mem = (
            memory is not None and queue_begin_epoch is not None and epoch >= queue_begin_epoch
        )
        fill_mem = (
            memory is not None and queue_begin_epoch is not None and epoch + 1 >= queue_begin_epoch
        )
        sums = {"loss": 0.0, "contrastive": 0.0, "entropy": 0.0, "codeword": 0.0}
        bar = progress(range(steps_per_epoch), verbose, f"MeCoQ M={M} epoch {epoch + 1}/{epochs}")
        for it in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total_steps, warm_steps, lr)
            rows = xs[perm[it * batch_size : (it + 1) * batch_size]].to(dev)
            base = model.prepare(rows)
            views = torch.cat([aug(base, gen), aug(base, gen)])
            z = model.features(views)
            zt, p = model.pq(z)
            b = rows.shape[0]
            mem_feats = None
            if use_mem and memory is not None and (len(memory) or not mask_unfilled):
                mem_feats = model.pq.decode(memory.codes(mask_unfilled))
            l_con = debiased_contrastive_loss(
                zt[:b], zt[b:], mem_feats, temperature=temperature, rho_plus=rho_plus, compat=compat
            )
            l_ent = 0.5 * (soft_code_entropy(p[:b]) + soft_code_entropy(p[b:]))
            l_cw = codeword_regularizer(model.pq.raw_codebooks)
            loss = l_con + lam * l_ent + gamma * l_cw
            if not bool(torch.isfinite(loss)):
                raise InvalidArgumentError(
                    f"MeCoQ loss became {float(loss)} at epoch {epoch}, step {it}: lower lr"
                )
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            opt.step()
            model.pq.renormalize_()
            if fill_mem and memory is not None:
                memory.enqueue(p[:b])
                memory.enqueue(p[b:])
            step += 1
            terms = {
                "loss": float(loss.detach()),
                "contrastive": float(l_con.detach()),
                "entropy": float(l_ent.detach()),
                "codeword": float(l_cw.detach()),
            }
            for key, v in terms.items():
                sums[key] += v
            set_postfix(bar, **terms)
        rec: dict[str, float] = {"epoch": float(epoch)}
        rec.update({key: v / steps_per_epoch for key, v in sums.items()})
        rec["memory"] = float(len(memory)) if use_mem and memory is not None else 0.0
        rec["seconds"] = time.perf_counter() - t0
        if val is not None:
            rec["val_map"] = _validation_map(model, val, val_k, compat)
            if rec["val_map"] > best_map:
                best_map, since_best = rec["val_map"], 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
        history.append(rec)
        if callback is not None:
            callback(epoch, model, rec)
        if verbose:
            extra = f", val mAP@{val_k} {rec['val_map']:.4f}" if "val_map" in rec else ""
            print(f"MeCoQ epoch {epoch + 1}: loss {rec['loss']:.4f}{extra}", flush=True)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                CHECKPOINT_KIND,
                config,
                {"model": model.state_dict(), "history": [dict(h) for h in history]},
            )
        if patience is not None and since_best >= patience:
            break
    if best_state is not None and select == "best_val":
        model.load_state_dict(best_state)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                CHECKPOINT_KIND,
                config,
                {"model": model.state_dict(), "history": [dict(h) for h in history]},
            )
    model.eval()
    return model, history


def load_mecoq(path: str | Path, encoder: nn.Module | None = None) -> MeCoQ:
    """Model from a :func:`train_mecoq` / :meth:`MeCoQ.save` checkpoint."""
    return MeCoQ.load(path, encoder)
