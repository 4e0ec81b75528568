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
