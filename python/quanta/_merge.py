"""Merging per-part top-k results into one (shards, ``IndexShards``): one rule everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["merge_knn"]


def merge_knn(
    dists: Sequence[npt.NDArray[np.float32]],
    ids: Sequence[npt.NDArray[np.int64]],
    k: int,
    metric: str,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The ``k`` best of several ``(nq, k_i)`` results of the same queries, as one index would
    rank them: ascending squared L2 or descending inner product, ties to the smaller id,
    padding (``-1`` ids) last; rows with fewer than ``k`` hits stay padded with ``-1`` and
    ``inf`` (L2) / ``-inf`` (inner product)."""
    nq = dists[0].shape[0] if dists else 0
    if not dists or sum(d.shape[1] for d in dists) == 0:
        pad = np.inf if metric == "l2" else -np.inf
        return np.full((nq, k), pad, np.float32), np.full((nq, k), -1, np.int64)
    d = np.concatenate([np.asarray(x, np.float32) for x in dists], axis=1)
    i = np.concatenate([np.asarray(x, np.int64) for x in ids], axis=1)
    key = d if metric == "l2" else -d
    empty = i < 0
    key = np.where(empty, np.inf, key)
    tie = np.where(empty, np.iinfo(np.int64).max, i)
    # lexsort sorts by the last key first: (padding last) distance, then id
    order = np.lexsort((tie, key), axis=1)[:, :k]
    dk, ik = np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)
    if dk.shape[1] < k:
        pad = np.inf if metric == "l2" else -np.inf
        extra = k - dk.shape[1]
        dk = np.concatenate([dk, np.full((nq, extra), pad, np.float32)], axis=1)
        ik = np.concatenate([ik, np.full((nq, extra), -1, np.int64)], axis=1)
    dk = np.where(ik < 0, np.float32(np.inf if metric == "l2" else -np.inf), dk)
    return dk.astype(np.float32, copy=False), ik
