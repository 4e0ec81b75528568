"""Core composites (IndexPreTransform, IndexRefineFlat): forwarding, filters, save/load."""

from __future__ import annotations

import copy
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import brute_force

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

D = 16


def _data(n: int, seed: int = 0, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _same(a: quanta.Index, b: quanta.Index, q: np.ndarray) -> None:
    da, ia = a.search(q, 5)
    db, ib = b.search(q, 5)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)


@pytest.mark.parametrize(
    ("desc", "cls"),
    [
        ("OPQ4,Flat", quanta.IndexPreTransform),
        ("OPQ4_8,Flat", quanta.IndexPreTransform),
        ("Flat,RFlat", quanta.IndexRefineFlat),
        ("OPQ4,Flat,RFlat", quanta.IndexRefineFlat),
    ],
)
def test_factory_composites_save_load_pickle(tmp_path: Path, desc: str, cls: type) -> None:
    x, q = _data(600), _data(7, 1)
    index = quanta.index_factory(D, desc)
    assert type(index) is cls
    index.train(x)
    index.add(x)
    path = tmp_path / "c.qnt"
    quanta.write_index(index, path)
    assert quanta.io.read_index_kind(path) == cls.__name__
    for back in (
        quanta.read_index(path),
        quanta.read_index(path, mmap=True),
        quanta.deserialize_index(quanta.serialize_index(index)),
        pickle.loads(pickle.dumps(index)),
        copy.deepcopy(index),
    ):
        assert type(back) is cls and back.ntotal == 600 and back.d == D
        _same(index, back, q)
    buf = io.BytesIO()
    quanta.write_index(index, buf)
    buf.seek(0)
    _same(index, quanta.read_index(buf), q)


def test_pretransform_forwards_to_the_inner_index() -> None:
    x, q = _data(500), _data(6, 1)
    opq = quanta.OPQMatrix(D, 4, niter=3)
    flat = quanta.IndexFlat(D)
    idx = quanta.IndexPreTransform(opq, flat)
    assert not idx.is_trained and not opq.is_trained
    with pytest.raises(quanta.NotTrainedError):
        idx.add(x)
    idx.train(x)
    idx.add(x)
    # it holds copies: the arguments are unchanged, the getters return copies
    assert flat.ntotal == 0 and not opq.is_trained
    assert idx.index.ntotal == 500 and idx.transform.is_trained
    A = idx.transform.A
    np.testing.assert_allclose(A @ A.T, np.eye(D), atol=1e-4)
    # an orthogonal rotation keeps L2 distances: the exact neighbours
    D0, I0 = brute_force(x, q, 5)
    dd, ii = idx.search(q, 5)
    np.testing.assert_array_equal(ii, I0)
    np.testing.assert_allclose(dd, D0, rtol=1e-3, atol=1e-3)
    # filters and range search reach the inner scan
    _, ia = idx.search(q, 5, ids_allowed=np.arange(0, 500, 2, dtype=np.int64))
    assert (ia % 2 == 0).all() and (ia >= 0).all()
    lims, rd, _ = idx.range_search(q, float(D0[:, 2].max()) + 1e-3)
    assert lims.shape == (7,) and (rd < float(D0[:, 2].max()) + 1e-3).all()
    np.testing.assert_allclose(idx.reconstruct(3), x[3], atol=1e-4)
    assert idx.remove_ids(np.array([0, 1], dtype=np.int64)) == 2 and idx.ntotal == 498
    assert "IndexPreTransform(d=16" in repr(idx)
    idx.reset()
    assert idx.ntotal == 0 and idx.is_trained
    with pytest.raises(quanta.ShapeError, match="d_out"):
        quanta.IndexPreTransform(quanta.OPQMatrix(D, 4), quanta.IndexFlat(8))
    with pytest.raises(quanta.DTypeError, match="transform"):
        quanta.IndexPreTransform(object(), flat)  # type: ignore[arg-type]


def test_pretransform_over_an_id_map_keeps_the_ids() -> None:
    x = _data(300)
    opq = quanta.OPQMatrix(D, 4, niter=2)
    opq.train(x)
    idx = quanta.IndexPreTransform(opq, quanta.IndexIDMap(quanta.IndexFlat(D)))
    ids = np.arange(1000, 1300, dtype=np.int64)
    idx.add_with_ids(x, ids)
    _, ii = idx.search(x[:4], 1)
    np.testing.assert_array_equal(ii[:, 0], ids[:4])
    _, ii = idx.search(x[:4], 1, ids_denied=ids[:4])
    assert not np.isin(ii, ids[:4]).any()
    back = quanta.deserialize_index(quanta.serialize_index(idx))
    assert isinstance(back.index, quanta.IndexIDMap)
    np.testing.assert_array_equal(back.search(x[:4], 1)[1][:, 0], ids[:4])


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_refine_reranks_exactly_with_filters_and_padding(metric: str) -> None:
    x, q = _data(300), _data(5, 1)
    base = quanta.IndexFlat(D, metric)
    ref = quanta.IndexRefineFlat(base, k_factor=2)
    assert ref.metric == metric and ref.k_factor == 2
    dd, ii = ref.search(q, 4)  # empty: padding
    assert (ii == -1).all() and (np.isneginf(dd) if metric == "ip" else np.isposinf(dd)).all()
    ref.add(x[:6])
    assert base.ntotal == 0 and ref.base_index.ntotal == 6  # a copy of the base
    dd, ii = ref.search(q, 8)  # 16 candidates asked, only 6 stored
    want_d, want_i = brute_force(x[:6], q, 8, metric)
    np.testing.assert_array_equal(ii, want_i)
    np.testing.assert_allclose(dd[:, :6], want_d[:, :6], rtol=1e-5, atol=1e-5)
    ref.add(x[6:])
    _, ii = ref.search(q, 5, ids_denied=np.arange(0, 300, 3, dtype=np.int64))
    assert (ii % 3 != 0).all()
    np.testing.assert_array_equal(ref.reconstruct(3), x[3])
    with pytest.raises(quanta.InvalidArgumentError, match="out of range"):
        ref.reconstruct(300)
    # removal renumbers the base and the raw vectors alike (as faiss's positional ids)
    assert ref.remove_ids(np.array([0, 1], dtype=np.int64)) == 2 and ref.ntotal == 298
    np.testing.assert_array_equal(ref.reconstruct(1), x[3])
    want_d, want_i = brute_force(x[2:], q, 5, metric)
    np.testing.assert_array_equal(ref.search(q, 5, k_factor=300)[1], want_i)


def test_refine_k_factor_is_saved_and_checked() -> None:
    x = _data(400)
    ref = quanta.IndexRefineFlat(quanta.IndexFlat(D))
    assert ref.k_factor == 1  # the one default policy
    ref.k_factor = 3
    ref.add(x)
    back = pickle.loads(pickle.dumps(ref))
    assert back.k_factor == 3
    assert "k_factor=3" in repr(back)
    for bad in (0, -1):
        with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
            ref.k_factor = bad
        with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
            ref.search(x[:2], 3, k_factor=bad)
        with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
            quanta.IndexRefineFlat(quanta.IndexFlat(D), k_factor=bad)
    full = quanta.IndexFlat(D)
    full.add(x[:1])
    with pytest.raises(quanta.InvalidArgumentError, match="empty"):
        quanta.IndexRefineFlat(full)
    # an id map returns ids that are not positions: a clear error, not a bad lookup
    idm = quanta.IndexRefineFlat(quanta.IndexIDMap(quanta.IndexFlat(D)))
    with pytest.raises(quanta.InvalidArgumentError, match="add_with_ids"):
        idm.add(x[:3])


def test_every_factory_string_round_trips(tmp_path: Path) -> None:
    x, q = _data(4000, d=32), _data(5, 1, d=32)
    for desc in ("OPQ16,IVF256,PQ16,RFlat", "OPQ8,PQ8", "IVF16,PQ8x4fs,RFlat", "PQ4,RFlat"):
        index = quanta.index_factory(32, desc)
        index.train(x)
        index.add(x)
        path = tmp_path / "f.qnt"
        quanta.write_index(index, path)
        back = quanta.read_index(path)
        assert type(back) is type(index)
        _same(index, back, q)
        _same(index, pickle.loads(pickle.dumps(index)), q)
