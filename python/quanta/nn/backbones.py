"""Backbones trained from scratch (no pretrained weights exist offline).

* :class:`SmallCNN` — 28x28 grey images (MNIST, Fashion-MNIST): two conv blocks and an MLP head.
  Input ``(n, 784)`` uint8/float pixels or ``(n, 1, 28, 28)``; pixels are scaled to [0, 1] when
  they look like bytes (max > 1.5), so callers may pass the datasets' raw arrays.
* :class:`MLP` — feature vectors: Linear → BatchNorm → ReLU blocks.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "SmallCNN", "as_images"]


def as_images(x: torch.Tensor) -> torch.Tensor:
    """``(n, 784)``, ``(n, 28, 28)`` or ``(n, 1, 28, 28)`` → float ``(n, 1, 28, 28)`` in [0, 1]."""
    x = x.to(torch.float32)
    if x.dim() == 2:
        x = x.reshape(-1, 1, 28, 28)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    if x.numel() and float(x.max()) > 1.5:
        x = x / 255.0
    return x


class SmallCNN(nn.Module):
    """conv(32)-BN-ReLU-pool, conv(64)-BN-ReLU-pool, Linear(3136 → out_dim)-BN-ReLU."""

    def __init__(self, out_dim: int = 256) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(as_images(x)))
        return out


class MLP(nn.Module):
    """``n_hidden`` blocks of Linear → BatchNorm1d → ReLU, then a final Linear to ``d_out``."""

    def __init__(
        self, d_in: int, d_out: int, hidden: int = 1024, n_hidden: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = d_in
        for _ in range(n_hidden):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, d_out))
        self.net = nn.Sequential(*layers)
        self.d_in, self.d_out = d_in, d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out
