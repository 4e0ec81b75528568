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
    with pytest.raises(quanta.InvalidArgumentError, match=r"^r must be in 1\.\.=2, got 3$"):
        metrics.recall_at(ids, ids, 3)
    with pytest.raises(quanta.InvalidArgumentError, match=r"^n must be in 1\.\.=1, got 2$"):
        metrics.recall_at(ids, ids, 1, n=2)
    with pytest.raises(quanta.DTypeError):
        metrics.recall_at(ids.astype(np.float32), ids, 1)
    with pytest.raises(quanta.InvalidArgumentError, match="normalize"):
        metrics.average_precision(ids, np.array([0]), DB_LABELS, normalize="ir")
    with pytest.raises(quanta.InvalidArgumentError, match="db_labels"):
        metrics.precision_at(np.array([[10]]), np.array([0]), DB_LABELS, 1)
    with pytest.raises(quanta.ShapeError, match="query_labels"):
        metrics.precision_at(ids, np.array([0, 1]), DB_LABELS, 1)
    with pytest.raises(quanta.InvalidArgumentError, match=r"^k must be in 1\.\.=2, got 0$"):
        metrics.mean_average_precision(ids, np.array([0]), DB_LABELS, 0)


# ---------------------------------------------------------------------------------------------
# named entry points of issue 10 (recall_at_r, k_recall_at_k, map_at_k, precision_at_k, PR curve)


def test_named_recall_functions() -> None:
    ids = np.array([[3, 1, 9], [0, 5, 4]])
    gt = np.array([[1, 3, 2], [4, 0, 6]])
    # 1-recall@R: q0's nn 1 at rank 2, q1's nn 4 at rank 3
    assert metrics.recall_at_r(ids, gt, 1) == 0.0
    assert metrics.recall_at_r(ids, gt, 2) == 0.5
    assert metrics.recall_at_r(ids, gt, 3) == 1.0
    # k-recall@k is the intersection recall: 2-recall@2 = (2 + 1) / 4
    assert metrics.k_recall_at_k(ids, gt, 2) == pytest.approx(0.75)
    # 1-recall@1: neither first result is the first neighbour
    assert metrics.k_recall_at_k(ids, gt, 1) == 0.0
    # 3-recall@3: {3, 1, 9} ∩ {1, 3, 2} = 2 and {0, 5, 4} ∩ {4, 0, 6} = 2, out of 6
    assert metrics.k_recall_at_k(ids, gt, 3) == pytest.approx(4 / 6)
    assert metrics.recall_at(ids, gt, 3, n=3) == pytest.approx(4 / 6)


def test_padded_ground_truth_never_matches_padded_results() -> None:
    ids = np.array([[-1, 2]])
    gt = np.array([[-1, 2]])
    # gt[0, 0] is padding: it must not meet the result's padding; 2 meets 2
    assert metrics.recall_at_r(ids, gt, 2) == 0.0
    assert metrics.k_recall_at_k(ids, gt, 2) == 0.5


def test_map_at_k_none_is_map_at_all_and_matches_old_name() -> None:
    ids = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [3, 1, 5, 0, 2]])
    ql = np.array([0, 0, 2])
    ap0 = (1 + 2 / 3 + 3 / 5) / 3
    ap1 = (1 / 2 + 2 / 3 + 3 / 5) / 3
    assert metrics.map_at_k(ids, ql, DB_LABELS) == pytest.approx((ap0 + ap1 + 1) / 3)
    assert metrics.map_at_k(ids, ql, DB_LABELS, None) == pytest.approx((ap0 + ap1 + 1) / 3)
    assert metrics.mean_average_precision(ids, ql, DB_LABELS) == pytest.approx((ap0 + ap1 + 1) / 3)
    assert metrics.map_at_k(ids, ql, DB_LABELS, 2) == pytest.approx((1 + 0.5 + 1) / 3)
    # P@3: labels of the first 3 results [0, 1, 0], [1, 0, 0], [2, 1, 1] -> 2/3, 2/3, 1/3
    assert metrics.precision_at_k(ids, ql, DB_LABELS, 3) == pytest.approx(5 / 9)
    assert metrics.precision_at(ids, ql, DB_LABELS, 3) == pytest.approx(5 / 9)
    with pytest.raises(quanta.InvalidArgumentError, match=r"^k must be in 1\.\.=5, got 6$"):
        metrics.map_at_k(ids, ql, DB_LABELS, 6)  # never silently mAP@all (§7.4 pitfall 4)


def _sklearn_ap(rel_in_rank_order: np.ndarray) -> float:
    sk = pytest.importorskip("sklearn.metrics")
    n = rel_in_rank_order.shape[0]
    return float(sk.average_precision_score(rel_in_rank_order, -np.arange(n, dtype=float)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_at_all_matches_sklearn_single_label(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, nq = 300, 12
    dl, ql = rng.integers(0, 5, n), rng.integers(0, 5, nq)
    ids = np.argsort(rng.random((nq, n)), axis=1)  # a full ranking of the database
    rel = dl[ids] == ql[:, None]
    assert rel.any(axis=1).all()
    expected = [_sklearn_ap(rel[q]) for q in range(nq)]
    np.testing.assert_allclose(metrics.average_precision(ids, ql, dl), expected, rtol=1e-12)
    np.testing.assert_allclose(
        metrics.average_precision(ids, ql, dl, normalize="total_relevant"), expected, rtol=1e-12
    )
    assert metrics.map_at_k(ids, ql, dl) == pytest.approx(np.mean(expected), rel=1e-12)


def test_map_at_all_matches_sklearn_multi_label() -> None:
    rng = np.random.default_rng(7)
    n, nq, c = 200, 9, 6
    db = rng.random((n, c)) < 0.25
    q = rng.random((nq, c)) < 0.3
    q[:, 0] = True
    db[0, 0] = True  # every query has at least one relevant item
    ids = np.argsort(rng.random((nq, n)), axis=1)
    rel = (db[ids] & q[:, None, :]).any(axis=2)
    expected = [_sklearn_ap(rel[i]) for i in range(nq)]
    np.testing.assert_allclose(metrics.average_precision(ids, q, db), expected, rtol=1e-12)
    # 0/1 integer matrices are the same labels
    assert metrics.map_at_k(ids, q.astype(np.int8), db.astype(np.int64)) == pytest.approx(
        np.mean(expected), rel=1e-12
    )


def _loop_ap(ids: np.ndarray, ql: np.ndarray, dl: np.ndarray, k: int) -> np.ndarray:
    out = []
    for q in range(ids.shape[0]):
        hits, s = 0, 0.0
        for r in range(k):
            i = ids[q, r]
            if i >= 0 and dl[i] == ql[q]:
                hits += 1
                s += hits / (r + 1)
        out.append(s / hits if hits else 0.0)
    return np.array(out)


@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_blocked_computation_matches_a_loop(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """The vectorised, blocked AP (with padding) equals a plain per-query loop."""
    monkeypatch.setattr(metrics, "_BLOCK", block)
    rng = np.random.default_rng(3)
    n, nq, r = 80, 23, 40
    dl, ql = rng.integers(0, 4, n), rng.integers(0, 4, nq)
    ids = np.argsort(rng.random((nq, n)), axis=1)[:, :r]
    ids[rng.random((nq, r)) < 0.1] = -1
    for k in (1, 13, r):
        np.testing.assert_allclose(
            metrics.average_precision(ids, ql, dl, k), _loop_ap(ids, ql, dl, k), rtol=1e-12
        )
    rel = metrics.relevance(ids, ql, dl)
    np.testing.assert_array_equal(rel, (ids >= 0) & (dl[np.maximum(ids, 0)] == ql[:, None]))


def test_tie_averaged_ap_hand_computed() -> None:
    db = np.array([0, 1, 0, 1])
    ids = np.array([[0, 1, 2, 3]])
    ql = np.array([0])
    dist = np.array([[0, 0, 1, 2]])
    # rel 1 0 1 0; the first two tie → 0.5 0.5 1 0; hits 0.5 1 2 2
    # num = 0.5·0.5/1 + 0.5·1/2 + 1·2/3 = 0.25 + 0.25 + 2/3; Z = 2
    expect = (0.25 + 0.25 + 2 / 3) / 2
    assert metrics.average_precision(ids, ql, db, distances=dist)[0] == pytest.approx(expect)
    # no ties: identical to the plain AP
    dist_distinct = np.array([[0, 1, 2, 3]])
    assert metrics.map_at_k(ids, ql, db, distances=dist_distinct) == pytest.approx(
        metrics.map_at_k(ids, ql, db)
    )
    with pytest.raises(quanta.ShapeError, match="distances"):
        metrics.average_precision(ids, ql, db, distances=np.zeros((1, 2)))


@given(
    n=st.integers(2, 50),
    nq=st.integers(1, 5),
    nbytes=st.sampled_from([1, 2]),
    k=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_map_depends_only_on_the_distance_id_order(
    n: int, nq: int, nbytes: int, k: int, seed: int
) -> None:
    """mAP of an IndexBinaryFlat ranking is unchanged by the database storage order and the
    query order (it is a function of the (distance, id) order only), and the tie-averaged mAP
    is unchanged even when ties are broken the other way (by descending id)."""
    rng = np.random.default_rng(seed)
    k = min(k, n)
    db = rng.integers(0, 4, size=(n, nbytes)).astype(np.uint8)  # few values: many ties
    q = rng.integers(0, 4, size=(nq, nbytes)).astype(np.uint8)
    dl, ql = rng.integers(0, 3, n), rng.integers(0, 3, nq)
    index = quanta.IndexBinaryFlat(8 * nbytes)
    index.add(db)
    d, ids = index.search(q, k)
    ref = metrics.map_at_k(ids, ql, dl, k)
    # same codes stored in another order under their own ids
    perm = rng.permutation(n)
    shuffled = quanta.IndexBinaryFlat(8 * nbytes)
    shuffled.add_with_ids(db[perm], perm.astype(np.int64))
    d2, ids2 = shuffled.search(q, k)
    np.testing.assert_array_equal(ids2, ids)
    np.testing.assert_array_equal(d2, d)
    assert metrics.map_at_k(ids2, ql, dl, k) == ref
    # queries in another order: per-query APs permute, the mean is the same
    qp = rng.permutation(nq)
    _, ids3 = index.search(q[qp], k)
    np.testing.assert_allclose(
        metrics.average_precision(ids3, ql[qp], dl, k),
        metrics.average_precision(ids, ql, dl, k)[qp],
    )
    # ties broken by descending id instead: the tie-averaged mAP@all does not move
    dist = (np.unpackbits(q, axis=1)[:, None, :] != np.unpackbits(db, axis=1)[None]).sum(2)
    rev = np.lexsort((-np.arange(n)[None, :].repeat(nq, 0), dist), axis=1)
    d_rev = np.take_along_axis(dist, rev, axis=1)
    full = metrics.rank_by_distance(dist)
    d_full = np.take_along_axis(dist, full, axis=1)
    assert metrics.map_at_k(rev, ql, dl, distances=d_rev) == pytest.approx(
        metrics.map_at_k(full, ql, dl, distances=d_full)
    )


def test_precision_recall_curve_hand_computed() -> None:
    db = np.array([0, 1, 0, 1, 0])  # label 0: 3 items, label 1: 2 items
    ids = np.array([[0, 1, 2, 3, 4], [0, 1, 3, 2, 4]])
    ql = np.array([0, 1])
    pr = metrics.precision_recall_curve(ids, ql, db, cutoffs=[1, 2, 5])
    np.testing.assert_array_equal(pr.cutoffs, [1, 2, 5])
    # q0 rel 1 0 1 0 1: P 1, 1/2, 3/5; R 1/3, 1/3, 1
    # q1 rel 0 1 1 0 0: P 0, 1/2, 2/5; R 0, 1/2, 1
    np.testing.assert_allclose(pr.precision, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(pr.recall, [1 / 6, (1 / 3 + 1 / 2) / 2, 1.0])
    default = metrics.precision_recall_curve(ids, ql, db)
    assert default.cutoffs[0] == 1 and default.cutoffs[-1] == 5
    assert np.all(np.diff(default.cutoffs) > 0)
    np.testing.assert_allclose(default.recall[-1], 1.0)
    with pytest.raises(quanta.InvalidArgumentError, match="cutoffs"):
        metrics.precision_recall_curve(ids, ql, db, cutoffs=[2, 2])
    with pytest.raises(quanta.InvalidArgumentError, match="cutoffs"):
        metrics.precision_recall_curve(ids, ql, db, cutoffs=[6])


def test_total_relevant_counts_labels_absent_from_the_database() -> None:
    db = np.array([0, 0, 1])
    ids = np.array([[0, 1], [2, 0]])
    ql = np.array([5, 1])  # label 5 is nowhere in the database
    ap = metrics.average_precision(ids, ql, db, normalize="total_relevant")
    np.testing.assert_allclose(ap, [0.0, 1.0])
    pr = metrics.precision_recall_curve(ids, ql, db, cutoffs=[1, 2])
    np.testing.assert_allclose(pr.recall, [0.5, 0.5])


def test_more_bad_input() -> None:
    with pytest.raises(quanta.DTypeError, match="db_labels"):
        metrics.map_at_k(np.array([[0]]), np.array([0]), np.array(["a"]))
    with pytest.raises(quanta.ShapeError, match="multi-hot"):
        metrics.map_at_k(np.array([[0]]), np.ones((1, 2)), np.ones((1, 3)))
    with pytest.raises(quanta.InvalidArgumentError, match="NaN"):
        metrics.rank_by_distance(np.array([[0.0, np.nan]]))
    with pytest.raises(quanta.ShapeError, match="empty"):
        metrics.map_at_k(np.zeros((0, 3), dtype=np.int64), np.zeros(0, int), DB_LABELS)
    with pytest.raises(quanta.InvalidArgumentError, match="padding"):
        metrics.map_at_k(np.array([[0, -2]]), np.array([0]), DB_LABELS)
