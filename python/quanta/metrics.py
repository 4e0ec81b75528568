"""Retrieval metrics (numpy only), with the definitions of ALGORITHMS.md §7.

Two families, never to be mixed in one table:

* **Nearest-neighbour recall** against exact ground truth ``gt`` (ids sorted by true distance):
  :func:`recall_at` (``n``-recall@R; ``n=1`` is the PQ paper's "recall@R", ``n=R`` the
  intersection recall "k-recall@k").
* **Label-based retrieval quality** (deep-hashing papers): :func:`precision_at`,
  :func:`average_precision` / :func:`mean_average_precision` (mAP@K). An item is relevant when it
  shares a label with the query (integer labels), or at least one label (multi-hot rows).

Every function takes ``ids``: the ranked result lists ``(nq, R)`` as returned by an index
``search`` (padding id ``-1`` counts as a miss, never as a match). Ranking ties are the caller's
responsibility; quanta's indexes order by (distance, id), and :func:`rank_by_distance` does the
same for a distance matrix (stable sort by distance, then id), which makes mAP over integer
Hamming distances deterministic (§7.3, §7.4 pitfall 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._validation import _to_numpy, as_int
from .exceptions import DTypeError, InvalidArgumentError, ShapeError

__all__ = [
    "average_precision",
    "mean_average_precision",
    "precision_at",
    "rank_by_distance",
    "recall_at",
    "relevance",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _ids(ids: Any, name: str = "ids") -> I64:
    a = _to_numpy(ids, name)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"{name} must hold integer ids, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ShapeError(f"{name} must be a 2-D array (nq, R), got shape {a.shape}")
    return a.astype(np.int64, copy=False)


def rank_by_distance(dist: Any, k: int | None = None) -> I64:
    """Column ids of each row of ``dist`` ``(nq, n)`` sorted by (distance, id), first ``k``."""
    d = _to_numpy(dist, "dist")
    if d.ndim != 2:
        raise ShapeError(f"dist must be a 2-D array (nq, n), got shape {d.shape}")
    if d.dtype.kind not in "iuf":
        raise DTypeError(f"dist must hold numbers, got dtype {d.dtype}")
    order = np.argsort(d, axis=1, kind="stable")  # stable: equal distances keep the lower id
    return order[:, : d.shape[1] if k is None else as_int(k, "k", 1, 2**62)].astype(np.int64)


def recall_at(ids: Any, gt: Any, r: int, n: int = 1) -> float:
    """``n``-recall@``r``: mean over queries of ``|ids[q, :r] ∩ gt[q, :n]| / n``.

    ``n=1`` (default) is 1-recall@R: the fraction of queries whose true nearest neighbour
    ``gt[q, 0]`` is among the first ``r`` results. ``n=r`` is the intersection recall k-recall@k.
    """
    ranked = _ids(ids)
    truth = _ids(gt, "gt")
    if ranked.shape[0] != truth.shape[0]:
        raise ShapeError(f"ids has {ranked.shape[0]} queries but gt has {truth.shape[0]}")
    r = as_int(r, "r", 1, int(ranked.shape[1]))
    n = as_int(n, "n", 1, min(r, truth.shape[1]))
    if ranked.shape[0] == 0:
        raise ShapeError("ids is empty (0 queries)")
    top = ranked[:, :r]
    hits = 0
    for q in range(ranked.shape[0]):
        g = truth[q, :n]
        g = g[g >= 0]
        hits += int(np.isin(top[q][top[q] >= 0], g).sum())
    return float(hits) / float(n * int(ranked.shape[0]))


def relevance(ids: Any, query_labels: Any, db_labels: Any) -> npt.NDArray[np.bool_]:
    """``rel[q, r]``: whether result ``ids[q, r]`` shares a label with query ``q``.

    Labels are 1-D integers (one class per item) or 2-D multi-hot ``(n, C)`` (relevant = at least
    one common label). Padding ids (``-1``) are never relevant.
    """
    ranked = _ids(ids)
    ql = _to_numpy(query_labels, "query_labels")
    dl = _to_numpy(db_labels, "db_labels")
    if ql.ndim != dl.ndim or ql.ndim not in (1, 2):
        raise ShapeError(
            f"query_labels and db_labels must both be 1-D (classes) or 2-D (multi-hot), got "
            f"shapes {ql.shape} and {dl.shape}"
        )
    if ql.shape[0] != ranked.shape[0]:
        raise ShapeError(f"query_labels has {ql.shape[0]} rows, ids has {ranked.shape[0]} queries")
    if ql.ndim == 2 and ql.shape[1] != dl.shape[1]:
        raise ShapeError(f"multi-hot labels differ in width: {ql.shape[1]} vs {dl.shape[1]}")
    valid = ranked >= 0
    if valid.any() and int(ranked[valid].max()) >= dl.shape[0]:
        raise InvalidArgumentError(
            f"ids holds {int(ranked[valid].max())}, outside db_labels (length {dl.shape[0]})"
        )
    safe = np.where(valid, ranked, 0)
    if ql.ndim == 1:
        rel = dl[safe] == ql[:, None]
    else:
        rel = (dl[safe].astype(bool) & ql[:, None, :].astype(bool)).any(axis=-1)
    return np.asarray(rel & valid, dtype=bool)


def precision_at(ids: Any, query_labels: Any, db_labels: Any, k: int) -> float:
    """Mean precision@k: fraction of relevant items among the first ``k`` results."""
    rel = relevance(ids, query_labels, db_labels)
    k = as_int(k, "k", 1, rel.shape[1])
    return float(rel[:, :k].mean()) if rel.shape[0] else 0.0


def average_precision(
    ids: Any,
    query_labels: Any,
    db_labels: Any,
    k: int | None = None,
    *,
    normalize: str = "retrieved",
) -> F64:
    """AP@K of each query over its ranked list ``ids[q, :K]`` (``K`` default: all columns).

    ``AP@K = Σ_{r ≤ K} P@r · rel(r) / Z``. ``normalize="retrieved"`` (default; the convention of
    the GreedyHash and MeCoQ code): ``Z`` = relevant items retrieved in the top K, and a query with
    none gets AP = 0 (still counted in the mean). ``normalize="total_relevant"`` (IR standard):
    ``Z = min(K, relevant items in the whole database)``; lower numbers, not comparable.
    """
    if normalize not in ("retrieved", "total_relevant"):
        raise InvalidArgumentError(
            f"normalize must be 'retrieved' or 'total_relevant', got {normalize!r}"
        )
    rel = relevance(ids, query_labels, db_labels)
    k = rel.shape[1] if k is None else as_int(k, "k", 1, rel.shape[1])
    rel = rel[:, :k]
    ranks = np.arange(1, k + 1, dtype=np.float64)
    hits = np.cumsum(rel, axis=1, dtype=np.float64)
    num = ((hits / ranks) * rel).sum(axis=1)
    if normalize == "retrieved":
        z = hits[:, -1] if k else np.zeros(rel.shape[0])
    else:
        ql = _to_numpy(query_labels, "query_labels")
        dl = _to_numpy(db_labels, "db_labels")
        if ql.ndim == 1:
            total = np.array([(dl == c).sum() for c in ql], dtype=np.float64)
        else:
            total = (ql.astype(bool).astype(np.int64) @ dl.astype(bool).T.astype(np.int64) > 0).sum(
                axis=1
            )
        z = np.minimum(float(k), total.astype(np.float64))
    out = np.zeros(rel.shape[0], dtype=np.float64)
    np.divide(num, z, out=out, where=z > 0)
    return out


def mean_average_precision(
    ids: Any,
    query_labels: Any,
    db_labels: Any,
    k: int | None = None,
    *,
    normalize: str = "retrieved",
) -> float:
    """mAP@K: the mean of :func:`average_precision` over all queries."""
    ap = average_precision(ids, query_labels, db_labels, k, normalize=normalize)
    if ap.size == 0:
        raise ShapeError("ids is empty (0 queries)")
    return float(ap.mean())
