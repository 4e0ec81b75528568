"""Brute-force float64 oracles, result comparisons and state guards shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import quanta

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def all_distances(xb: Any, xq: Any, metric: str) -> F64:
    """``(nq, nb)`` squared L2 distances or inner products, computed in float64.

    Exact for integer-valued data (every term fits in a float64 mantissa).
    """
    b = np.asarray(xb, dtype=np.float64)
    q = np.asarray(xq, dtype=np.float64)
    ip = q @ b.T
    if metric == "ip":
        return ip
    return (q * q).sum(1)[:, None] - 2.0 * ip + (b * b).sum(1)[None, :]


def brute_force(xb: Any, xq: Any, k: int, metric: str = "l2") -> tuple[F64, I64]:
    """Exact top-k with faiss/quanta semantics: ties to the lower id, -1/±inf padding."""
    return top_k(all_distances(xb, xq, metric), k, metric)


def top_k(dist: F64, k: int, metric: str) -> tuple[F64, I64]:
    """Top-k of a full ``(nq, nb)`` distance matrix (ties to the lower id, padded)."""
    nq = dist.shape[0]
    key = dist if metric == "l2" else -dist
    order = np.argsort(key, axis=1, kind="stable")[:, :k]  # stable: ties keep the lower id
    kk = order.shape[1]
    D = np.full((nq, k), np.inf if metric == "l2" else -np.inf, dtype=np.float64)
    ids = np.full((nq, k), -1, dtype=np.int64)
    D[:, :kk] = np.take_along_axis(dist, order, axis=1)
    ids[:, :kk] = order
    return D, ids


def assert_unique_ids(ids: I64) -> None:
    for q, row in enumerate(ids):
        valid = row[row >= 0]
        assert np.unique(valid).size == valid.size, f"query {q}: duplicate ids {row}"


def assert_knn_equivalent(D: Any, ids: Any, Dref: Any, Iref: Any, rtol: float = 0.0) -> None:
    """Distances equal (within ``rtol``); ids equal except inside groups of exactly tied
    reference distances. A tie group fully inside the row must hold the same set of ids; the
    group at the end of the row may continue past it (k cuts it), so it may be cut differently.
    """
    D, ids, Dref, Iref = (np.asarray(a) for a in (D, ids, Dref, Iref))
    assert D.shape == Dref.shape and ids.shape == Iref.shape, (D.shape, Dref.shape)
    np.testing.assert_allclose(D, Dref, rtol=rtol, atol=0)
    assert_unique_ids(ids)
    for q, j in np.argwhere(ids != Iref):
        row = Dref[q]
        tied = np.flatnonzero(row == row[j])
        at_end = tied[-1] == row.size - 1
        assert tied.size > 1 or at_end, (
            f"query {q} rank {j}: id {ids[q, j]} but reference {Iref[q, j]} at an untied "
            f"distance {row[j]!r} (row {ids[q]} vs {Iref[q]})"
        )
        if not at_end:
            assert set(ids[q, tied]) == set(Iref[q, tied]), (q, ids[q], Iref[q])


def assert_knn_close(D: Any, ids: Any, dist: F64, k: int, metric: str, atol: float) -> None:
    """Tolerant check for float data: the i-th returned distance matches the i-th true one, each
    returned id really is at the returned distance, ids are unique and the order is monotone."""
    D, ids = np.asarray(D), np.asarray(ids)
    nq, nb = dist.shape
    Dref, _ = top_k(dist, k, metric)
    assert D.shape == (nq, k) and ids.shape == (nq, k)
    np.testing.assert_allclose(D, Dref, rtol=1e-5, atol=atol)
    assert_unique_ids(ids)
    m = min(k, nb)
    assert (ids[:, :m] >= 0).all() and (ids[:, m:] == -1).all()
    got = np.take_along_axis(dist, ids[:, :m], axis=1)
    np.testing.assert_allclose(D[:, :m], got, rtol=1e-5, atol=atol)
    step = np.diff(D[:, :m], axis=1)
    assert (step >= 0).all() if metric == "l2" else (step <= 0).all()


def nearest_centroid_objective(x: Any, centroids: Any) -> float:
    """Sum over ``x`` of the squared L2 distance to the nearest centroid (float64)."""
    d = all_distances(centroids, x, "l2")
    return float(np.maximum(d.min(axis=1), 0.0).sum())


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with quanta's pool at ``n`` threads, then restore the previous size."""
    old = quanta.get_num_threads()
    quanta.set_num_threads(n)
    try:
        yield
    finally:
        quanta.set_num_threads(old)


@contextmanager
def simd_level(level: str) -> Iterator[None]:
    """Run the block at SIMD ``level``, then restore the previous level."""
    old = quanta.simd_level()
    quanta.set_simd_level(level)
    try:
        yield
    finally:
        quanta.set_simd_level(old)


# --------------------------------------------------------------------------- recall vs a reference
#
# Tests that compare quanta's recall with faiss's must hold on every CPU. Two indexes trained by
# two libraries (or on two CPUs, whose float rounding steers k-means differently) differ by
# training noise; a fixed margin tuned on one machine fails on another. The tolerance below is
# derived from the data instead, by a paired sign-symmetry test over the same queries: let
# d_q = ours_q - ref_q be the per-query difference of a recall score (a hit indicator for
# 1-recall@R, the overlap fraction for 10-recall@10). If both sides have the same quality, each
# d_q is as likely to be +x as -x, so S = Σ d_q has mean 0 and variance Σ d_q², and
# |S| > z·sqrt(Σ d_q²) happens with probability about 2·Φ(-z) — 0.27 % for z = 3 (one-sided:
# 0.13 %). For hit indicators this is McNemar's test (Σ d_q² = b + c, the discordant queries).
# Pooling several runs (seeds, training-row orders) averages the training-level variation that
# makes one run's differences correlated across queries.

PAIRED_Z = 3.0


def hits_at(ids: Any, gt1: Any, r: int) -> F64:
    """Per query: 1.0 if the true nearest neighbour ``gt1[q]`` is in the first ``r`` results."""
    ids, gt1 = np.asarray(ids), np.asarray(gt1).reshape(-1)
    return np.asarray((ids[:, :r] == gt1[:, None]).any(axis=1), dtype=np.float64)


def overlap_at(ids: Any, gt: Any, k: int) -> F64:
    """Per query: |first k results ∩ true k nearest| / k (k-recall@k)."""
    ids, gt = np.asarray(ids)[:, :k], np.asarray(gt)[:, :k]
    return np.array([np.intersect1d(a[a >= 0], b).size / k for a, b in zip(ids, gt)])


def assert_recall_not_worse(ours: list[Any], ref: list[Any], what: str) -> None:
    """One-sided paired test at ``PAIRED_Z``: quanta's per-query scores (pooled over runs) are
    not significantly lower than the reference's."""
    d = np.concatenate(
        [np.asarray(o, np.float64) - np.asarray(t, np.float64) for o, t in zip(ours, ref)]
    )
    s, bound = float(d.sum()), PAIRED_Z * float(np.sqrt((d * d).sum()))
    n = d.size
    mean_o = float(np.concatenate([np.asarray(o, np.float64) for o in ours]).mean())
    mean_r = float(np.concatenate([np.asarray(t, np.float64) for t in ref]).mean())
    assert s >= -bound, (
        f"{what}: recall {mean_o:.4f} vs reference {mean_r:.4f} over {n} query-runs; "
        f"sum of differences {s:.2f} < -{PAIRED_Z}·sqrt(sum of squares) = {-bound:.2f}"
    )


def assert_recall_equivalent(ours: list[Any], ref: list[Any], what: str) -> None:
    """Two-sided paired test at ``PAIRED_Z``: neither side scores significantly higher."""
    assert_recall_not_worse(ours, ref, what)
    assert_recall_not_worse(ref, ours, what + " (reference vs quanta)")
