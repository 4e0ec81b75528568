"""Real datasets for tests, benchmarks and the demo.

* :func:`load_demo` — ``sift_ngt5k`` (4,503 base / 500 query 128-d SIFT descriptors with exact
  L2 ground truth, Apache-2.0, from yahoojapan/NGT), shipped inside the package under
  ``quanta/data/`` with its licence file, so it works on a fresh clone without anything else.
* :func:`load` — the shared sets (``fashion-mnist``, ``mnist``, ``sift_tiledb10k``,
  ``sift_ngt5k``) read from ``$QUANTA_DATA`` or ``../shared/data`` beside the repository.

Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .exceptions import InvalidArgumentError, QuantaError

__all__ = [
    "NAMES",
    "Dataset",
    "DatasetNotFoundError",
    "HashingSplit",
    "data_dir",
    "hashing_split",
    "load",
    "load_demo",
]

NAMES = ("fashion-mnist", "mnist", "sift_tiledb10k", "sift_ngt5k")
_PACKAGE_DATA = Path(__file__).resolve().parent / "data"


class DatasetNotFoundError(QuantaError, FileNotFoundError):
    """The shared data directory or a dataset file is missing."""


@dataclass(frozen=True)
class Dataset:
    """Base vectors, queries and exact L2 ground truth (top-100, ties to the lower index).

    ``base``/``queries`` are float32. For the MNIST-style sets ``base`` is the 60k train split and
    ``queries`` the 10k test split, with class labels in ``base_labels``/``query_labels``.
    """

    name: str
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    gt: npt.NDArray[np.int64]
    gt_dist: npt.NDArray[np.float32]
    base_labels: npt.NDArray[np.int64] | None
    query_labels: npt.NDArray[np.int64] | None
    license_file: Path

    @property
    def d(self) -> int:
        return int(self.base.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, base={self.base.shape}, queries={self.queries.shape}, "
            f"labels={'yes' if self.base_labels is not None else 'no'})"
        )


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("QUANTA_DATA")
    if env:
        out.append(Path(env))
    repo = Path(__file__).resolve().parents[2]  # python/quanta/ -> repo root (editable install)
    out += [repo.parent / "shared" / "data", repo / "shared" / "data"]
    out.append(Path.cwd().parent / "shared" / "data")
    return out


def data_dir() -> Path:
    """The shared data directory (``$QUANTA_DATA`` first). Raises if none exists."""
    for c in _candidates():
        if (c / "README.md").exists() or any(c.glob("*.npz")):
            return c
    tried = ", ".join(str(c) for c in _candidates())
    raise DatasetNotFoundError(f"shared data directory not found (tried {tried}); set QUANTA_DATA")


def _from_npz(name: str, path: Path) -> Dataset:
    with np.load(path) as z:
        arrays: dict[str, Any] = {k: z[k] for k in z.files}
    if "train_x" in arrays:
        base, queries = arrays["train_x"], arrays["test_x"]
        bl: npt.NDArray[np.int64] | None = arrays["train_y"].astype(np.int64)
        ql: npt.NDArray[np.int64] | None = arrays["test_y"].astype(np.int64)
    else:
        base, queries, bl, ql = arrays["base"], arrays["queries"], None, None
    return Dataset(
        name=name,
        base=np.ascontiguousarray(base, dtype=np.float32),
        queries=np.ascontiguousarray(queries, dtype=np.float32),
        gt=arrays["gt_l2"].astype(np.int64),
        gt_dist=arrays["gt_l2_dist"].astype(np.float32),
        base_labels=bl,
        query_labels=ql,
        license_file=path.with_name(f"{name}.LICENSE.txt"),
    )


def load(name: str) -> Dataset:
    """Load a shared dataset by name (see :data:`NAMES`)."""
    if name not in NAMES:
        raise InvalidArgumentError(f"unknown dataset {name!r}; available: {', '.join(NAMES)}")
    path = data_dir() / f"{name}.npz"
    if not path.exists():
        raise DatasetNotFoundError(f"{path} does not exist")
    return _from_npz(name, path)


def load_demo() -> Dataset:
    """The small dataset shipped with quanta (``sift_ngt5k``, Apache-2.0)."""
    return _from_npz("sift_ngt5k", _PACKAGE_DATA / "sift_ngt5k.npz")


@dataclass(frozen=True)
class HashingSplit:
    """The deep-hashing "setting I" split of a labelled set (ALGORITHMS.md §8).

    Train and test rows are pooled (70 000 for MNIST-style sets); ``queries`` holds
    ``n_query_per_class`` rows per class, ``train`` ``n_train_per_class`` other rows per class,
    and ``database`` every row that is not a query (so it contains the training rows, as in the
    GreedyHash/MeCoQ protocol). Pixels stay float32 in 0..255. Indices refer to the pooled array.
    """

    name: str
    queries: npt.NDArray[np.float32]
    query_labels: npt.NDArray[np.int64]
    train: npt.NDArray[np.float32]
    train_labels: npt.NDArray[np.int64]
    database: npt.NDArray[np.float32]
    database_labels: npt.NDArray[np.int64]
    query_idx: npt.NDArray[np.int64]
    train_idx: npt.NDArray[np.int64]
    database_idx: npt.NDArray[np.int64]


def hashing_split(
    name: str, n_query_per_class: int = 100, n_train_per_class: int = 500, seed: int = 0
) -> HashingSplit:
    """Pool a labelled shared set and split it per class (deterministic for a seed)."""
    ds = load(name)
    if ds.base_labels is None or ds.query_labels is None:
        raise InvalidArgumentError(f"dataset {name!r} has no labels")
    x = np.concatenate([ds.base, ds.queries])
    y = np.concatenate([ds.base_labels, ds.query_labels])
    rng = np.random.default_rng(seed)
    q_idx: list[npt.NDArray[np.int64]] = []
    t_idx: list[npt.NDArray[np.int64]] = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        if rows.size < n_query_per_class + n_train_per_class:
            raise InvalidArgumentError(
                f"class {c} of {name!r} has {rows.size} rows, fewer than "
                f"n_query_per_class + n_train_per_class = {n_query_per_class + n_train_per_class}"
            )
        q_idx.append(rows[:n_query_per_class])
        t_idx.append(rows[n_query_per_class : n_query_per_class + n_train_per_class])
    qi = np.sort(np.concatenate(q_idx)).astype(np.int64)
    ti = np.sort(np.concatenate(t_idx)).astype(np.int64)
    is_query = np.zeros(len(y), dtype=bool)
    is_query[qi] = True
    di = np.flatnonzero(~is_query).astype(np.int64)
    return HashingSplit(
        name=name,
        queries=x[qi],
        query_labels=y[qi],
        train=x[ti],
        train_labels=y[ti],
        database=x[di],
        database_labels=y[di],
        query_idx=qi,
        train_idx=ti,
        database_idx=di,
    )
