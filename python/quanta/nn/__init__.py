"""Learned quantizers (PyTorch): catalyzer (Spreading Vectors), GreedyHash, MeCoQ.

``import quanta`` never imports torch; ``import quanta.nn`` does, and raises a clear
``ImportError`` when torch is missing (``pip install quanta[torch]``). Each model hands its
codebooks or codes to a Rust index of the core (``IndexBinaryFlat``, ``IndexLattice``,
``IndexPQ``) for search.

Shared pieces live in :mod:`quanta.nn._common` (device, seeding, input checks, checkpoints,
progress) and :mod:`quanta.nn.backbones` (small CNN for 28x28 images, MLP for features).
Each paper has its own module; their public names are re-exported here.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "quanta.nn needs PyTorch: pip install 'quanta[torch]' (the rest of quanta works without it)"
    ) from e

from ._common import load_checkpoint, resolve_device, save_checkpoint, seed_everything
from .backbones import MLP, SmallCNN
from .greedyhash import (
    GreedyHash,
    GreedyHashLayer,
    HashRetriever,
    greedy_penalty,
    greedy_sign,
    train_greedyhash,
    train_greedyhash_unsupervised,
)
from .mecoq import (
    CodeMemory,
    FeatureAugment,
    ImageAugment,
    MeCoQ,
    SoftPQ,
    codeword_regularizer,
    debiased_contrastive_loss,
    load_mecoq,
    soft_code_entropy,
    train_mecoq,
)
from .spreading import (
    Catalyzer,
    SpreadingVectors,
    knn_positives,
    koleo_loss,
    rank_negatives,
    train_catalyzer,
    triplet_rank_loss,
)

__all__ = [
    "MLP",
    "Catalyzer",
    "CodeMemory",
    "FeatureAugment",
    "GreedyHash",
    "GreedyHashLayer",
    "HashRetriever",
    "ImageAugment",
    "MeCoQ",
    "SmallCNN",
    "SoftPQ",
    "SpreadingVectors",
    "codeword_regularizer",
    "debiased_contrastive_loss",
    "greedy_penalty",
    "greedy_sign",
    "knn_positives",
    "koleo_loss",
    "load_checkpoint",
    "load_mecoq",
    "rank_negatives",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "soft_code_entropy",
    "train_catalyzer",
    "train_greedyhash",
    "train_greedyhash_unsupervised",
    "train_mecoq",
    "triplet_rank_loss",
]
