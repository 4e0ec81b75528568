"""Pieces every trainer in ``quanta.nn`` shares: devices, seeds, input checks, checkpoints, bars.

Input checks reuse the core's numpy policy (:mod:`quanta._validation`) and raise the same
typed errors, so a torch user and a numpy user see the same messages.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .._validation import as_float_matrix, as_int, positive_int, to_numpy
from ..exceptions import DTypeError, FormatError, InvalidArgumentError

__all__ = [
    "as_float_tensor",
    "as_int",
    "load_checkpoint",
    "positive_int",
    "progress",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "set_postfix",
    "to_numpy",
]

T = TypeVar("T")

CHECKPOINT_FORMAT = "quanta.nn.checkpoint/1"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` → CUDA when present, else CPU; ``"cuda"`` without a GPU is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # torch rejects unknown device strings with RuntimeError
        raise InvalidArgumentError(
            f"device must be 'cpu', 'cuda' or 'auto', got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device='cuda' was asked for but torch sees no CUDA device")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a CPU generator for the trainer's own draws.

    On CPU a trainer that draws only from this generator (and the seeded global state) is
    deterministic for a seed; on CUDA some kernels are not, which is documented by each trainer.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state some callers still use
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_float_tensor(
    x: Any, name: str, d: int | None = None, *, device: torch.device | None = None
) -> torch.Tensor:
    """``x`` (numpy array or tensor) as a float32 ``(n, d)`` tensor, NaN/Inf rejected by name.

    A tensor stays on its device (use ``.cpu()`` before ``.numpy()``). Tensors must hold real
    numbers (floating or integer): complex, bool and other dtypes are a ``DTypeError``.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not (t.is_floating_point() or t.dtype in _INTEGER_DTYPES):  # complex, bool, ...
            raise DTypeError(f"{name} must hold real numbers, got tensor dtype {t.dtype}")
        bad_shape = t.dim() != 2 or (d is not None and t.shape[1] != d)
        if bad_shape or t.shape[0] == 0 or t.shape[1] == 0:
            as_float_matrix(t.cpu(), name, d)  # raises the policy's ShapeError
        t = t.to(torch.float32)
    else:
        t = torch.from_numpy(as_float_matrix(x, name, d))
    if not bool(torch.isfinite(t).all()):
        raise InvalidArgumentError(f"{name} contains NaN or Inf")
    return t.to(device) if device is not None else t


def save_checkpoint(
    path: str | os.PathLike[str], kind: str, config: dict[str, Any], state: dict[str, Any]
) -> None:
    """Write ``{format, kind, config, state}`` with torch.save, atomically (temp + rename)."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "kind": kind, "config": config, "state": state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(
    path: str | os.PathLike[str], kind: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(config, state)``.

    Only tensors and plain containers are unpickled (``weights_only=True``). A foreign,
    truncated or other-kind file is a :class:`~quanta.FormatError` naming the file.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise FormatError(f"{os.fspath(path)}: not a readable quanta.nn checkpoint ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{os.fspath(path)}: not a quanta.nn checkpoint")
    if payload.get("kind") != kind:
        raise FormatError(
            f"{os.fspath(path)}: holds a {payload.get('kind')!r} checkpoint, expected {kind!r}"
        )
    return dict(payload["config"]), dict(payload["state"])


def progress(it: Iterable[T], verbose: bool, desc: str, total: int | None = None) -> Iterable[T]:
    """``it`` wrapped in a tqdm bar when ``verbose`` and tqdm is installed, else ``it`` itself.

    Trainers show their loss terms with :func:`set_postfix` on the returned object.
    """
    if not verbose:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    bar: Iterable[T] = tqdm(it, desc=desc, total=total)
    return bar


def set_postfix(bar: object, **terms: float) -> None:
    """Show loss terms on a tqdm bar (no-op on a plain iterable)."""
    fn = getattr(bar, "set_postfix", None)
    if fn is not None:
        fn({k: f"{v:.4g}" for k, v in terms.items()})
