"""quanta.metrics against hand-computed cases (ALGORITHMS.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import quanta
from hypothesis import given
from hypothesis import strategies as st
from quanta import metrics

# ---------------------------------------------------------------------------------------------
# nearest-neighbour recall


def test_one_recall_hand_computed() -> None:
    ids = np.array([[3, 1, 2], [0, 5, 4], [-1, -1, -1]])
    gt = np.array([[1, 3], [4, 0], [7, 8]])
    # q0: 1 at rank 2; q1: 4 at rank 3; q2: never
    assert metrics.recall_at(ids, gt, 1) == 0.0
    assert metrics.recall_at(ids, gt, 2) == pytest.approx(1 / 3)
    assert metrics.recall_at(ids, gt, 3) == pytest.approx(2 / 3)


def test_intersection_recall_hand_computed() -> None:
    ids = np.array([[3, 1, 9], [0, 5, 4]])
    gt = np.array([[1, 3, 2], [4, 0, 6]])
    # 2-recall@2: q0 {3,1}∩{1,3} = 2, q1 {0,5}∩{4,0} = 1 → (2 + 1) / (2·2)
    assert metrics.recall_at(ids, gt, 2, n=2) == pytest.approx(0.75)
    # 3-recall@3: q0 {3,1,9}∩{1,3,2} = 2, q1 {0,5,4}∩{4,0,6} = 2 → 4 / 6
    assert metrics.recall_at(ids, gt, 3, n=3) == pytest.approx(2 / 3)
    # 1-D inputs are one column
    assert metrics.recall_at(np.array([1, 2]), np.array([1, 3]), 1) == 0.5


def test_padding_never_matches() -> None:
    ids = np.array([[-1, -1]])
    gt = np.array([[-1, 0]])
    assert metrics.recall_at(ids, gt, 2) == 0.0


# ---------------------------------------------------------------------------------------------
# label-based precision and mAP


DB_LABELS = np.array([0, 1, 0, 2, 0, 1])


def test_precision_hand_computed() -> None:
    ids = np.array([[0, 1, 2, 3], [5, 1, 0, -1]])
    ql = np.array([0, 1])
    # q0 rel = 1 0 1 0; q1 rel = 1 1 0 0 (the -1 is a miss)
    assert metrics.precision_at(ids, ql, DB_LABELS, 1) == 1.0
    assert metrics.precision_at(ids, ql, DB_LABELS, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert metrics.precision_at(ids, ql, DB_LABELS, 4) == pytest.approx((0.5 + 0.5) / 2)
    np.testing.assert_array_equal(
        metrics.relevance(ids, ql, DB_LABELS), [[1, 0, 1, 0], [1, 1, 0, 0]]
    )


def test_average_precision_hand_computed() -> None:
    ids = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [3, 1, 5, 0, 2]])
    ql = np.array([0, 0, 2])
    # q0: rel 1 0 1 0 1 → P@1 = 1, P@3 = 2/3, P@5 = 3/5; retrieved relevant = 3
    ap0 = (1 + 2 / 3 + 3 / 5) / 3
    # q1: rel 0 1 1 0 1 → P@2 = 1/2, P@3 = 2/3, P@5 = 3/5
    ap1 = (1 / 2 + 2 / 3 + 3 / 5) / 3
    # q2 (label 2): rel 1 0 0 0 0 → 1
    ap = metrics.average_precision(ids, ql, DB_LABELS)
    np.testing.assert_allclose(ap, [ap0, ap1, 1.0])
    assert metrics.mean_average_precision(ids, ql, DB_LABELS) == pytest.approx((ap0 + ap1 + 1) / 3)
    # @K=2: q0 rel 1 0 → 1; q1 rel 0 1 → (1/2)/1; q2 → 1
    np.testing.assert_allclose(metrics.average_precision(ids, ql, DB_LABELS, 2), [1, 0.5, 1])
    # IR normalization: divide by min(K, relevant in the database) (label 0: 3 items, 2: 1)
    np.testing.assert_allclose(
        metrics.average_precision(ids, ql, DB_LABELS, 2, normalize="total_relevant"),
        [1 / 2, 0.5 / 2, 1.0],
    )


def test_query_without_relevant_items_counts_as_zero() -> None:
    ids = np.array([[1, 3], [0, 2]])
    ql = np.array([0, 0])
    # q0: rel 0 0 → AP 0 (still in the mean); q1: rel 1 1 → 1
    assert metrics.mean_average_precision(ids, ql, DB_LABELS) == pytest.approx(0.5)


def test_multi_hot_labels() -> None:
    db = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]])
    q = np.array([[0, 1, 0]])
    ids = np.array([[0, 1, 2]])
    np.testing.assert_array_equal(metrics.relevance(ids, q, db), [[False, True, True]])
    # rel 0 1 1 → (1/2 + 2/3) / 2
    assert metrics.mean_average_precision(ids, q, db) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics.average_precision(ids, q, db, normalize="total_relevant")[0] == pytest.approx(
        (1 / 2 + 2 / 3) / 2
    )


def test_rank_by_distance_ties_to_lower_id() -> None:
    dist = np.array([[3, 1, 1, 0, 3], [2, 2, 2, 2, 2]])
    np.testing.assert_array_equal(
        metrics.rank_by_distance(dist), [[3, 1, 2, 0, 4], [0, 1, 2, 3, 4]]
    )
    np.testing.assert_array_equal(metrics.rank_by_distance(dist, 2), [[3, 1], [0, 1]])


@given(
    n=st.integers(1, 60),
    nq=st.integers(1, 6),
    nbits=st.sampled_from([8, 16, 32]),
    k=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_map_of_hamming_ranking_matches_numpy(
    n: int, nq: int, nbits: int, k: int, seed: int
) -> None:
    """IndexBinaryFlat ranking + mean_average_precision = a direct numpy implementation over a
    stable (distance, id) sort, the convention fixed by §7.3."""
    rng = np.random.default_rng(seed)
    k = min(k, n)
    cs = nbits // 8
    db = rng.integers(0, 4, size=(n, cs)).astype(np.uint8)  # few values: many ties
    q = rng.integers(0, 4, size=(nq, cs)).astype(np.uint8)
    dbl, ql = rng.integers(0, 3, n), rng.integers(0, 3, nq)
    index = quanta.IndexBinaryFlat(nbits)
    index.add(db)
    _, ids = index.search(q, k)
    dist = (np.unpackbits(q, axis=1)[:, None, :] != np.unpackbits(db, axis=1)[None]).sum(2)
    np.testing.assert_array_equal(ids, metrics.rank_by_distance(dist, k))
    aps = []
    for i in range(nq):
        rel = dbl[np.argsort(dist[i], kind="stable")[:k]] == ql[i]
        hits = np.cumsum(rel)
        ap = float(((hits / np.arange(1, k + 1)) * rel).sum() / hits[-1]) if hits[-1] else 0.0
        aps.append(ap)
    assert metrics.mean_average_precision(ids, ql, dbl, k) == pytest.approx(np.mean(aps))


def test_bad_input() -> None:
    ids = np.array([[0, 1]])
    with pytest.raises(quanta.ShapeError):
        metrics.recall_at(ids, np.array([[0], [1]]), 1)
    with pytest.raises(quanta.InvalidArgumentError, match="r"):
        metrics.recall_at(ids, ids, 3)
    with pytest.raises(quanta.InvalidArgumentError, match="n"):
        metrics.recall_at(ids, ids, 1, n=2)
    with pytest.raises(quanta.DTypeError):
        metrics.recall_at(ids.astype(np.float32), ids, 1)
    with pytest.raises(quanta.InvalidArgumentError, match="normalize"):
        metrics.average_precision(ids, np.array([0]), DB_LABELS, normalize="ir")
    with pytest.raises(quanta.InvalidArgumentError, match="db_labels"):
        metrics.precision_at(np.array([[10]]), np.array([0]), DB_LABELS, 1)
    with pytest.raises(quanta.ShapeError, match="query_labels"):
        metrics.precision_at(ids, np.array([0, 1]), DB_LABELS, 1)
    with pytest.raises(quanta.InvalidArgumentError, match="k"):
        metrics.mean_average_precision(ids, np.array([0]), DB_LABELS, 0)
