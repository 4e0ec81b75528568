"""IndexIVFFlat / IndexIVFPQ: brute-force equivalence over the probed lists, ids, removal,
filters (model-based against a dict), errors, files."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import all_distances
from hypothesis import given
from hypothesis import strategies as st

D = 16
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _data(n: int, seed: int, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def xb() -> np.ndarray:
    return _data(4000, 0)


@pytest.fixture(scope="module")
def ivfpq(xb: np.ndarray) -> quanta.IndexIVFPQ:
    idx = quanta.IndexIVFPQ(D, 32, 4)
    idx.train(xb, niter=5, pq_niter=8)
    idx.add(xb)
    return idx


def _probes(index: quanta.IndexIVFPQ | quanta.IndexIVFFlat, q: np.ndarray, nprobe: int):
    """The probed lists of each query, computed in numpy from the coarse centroids."""
    dc = all_distances(index.centroids, q, index.metric)
    key = dc if index.metric == "l2" else -dc
    return np.argsort(key, axis=1, kind="stable")[:, :nprobe]


def _brute_ivfpq(index: quanta.IndexIVFPQ, q: np.ndarray, nprobe: int, k: int):
    """ADC over the entries of the probed lists: decoded residual + centroid, float64."""
    pq = index.pq
    c = index.centroids
    out_d, out_i = [], []
    for qi, lists in zip(q, _probes(index, q, nprobe)):
        rec, ids = [], []
        for li in lists:
            codes = index.invlists.list_codes(int(li))
            if len(codes):
                r = pq.decode(codes).astype(np.float64)
                rec.append(r + (c[li] if index.by_residual else 0.0))
                ids.append(index.invlists.list_ids(int(li)))
        rec_a, ids_a = np.concatenate(rec), np.concatenate(ids)
        dist = all_distances(rec_a, qi[None], index.metric)[0]
        key = dist if index.metric == "l2" else -dist
        order = np.lexsort((ids_a, key))[:k]
        out_d.append(dist[order])
        out_i.append(ids_a[order])
    return np.array(out_d), np.array(out_i)


def _check_same(D1, I1, D2, I2, rtol=1e-4):
    np.testing.assert_allclose(D1, D2, rtol=rtol, atol=1e-3)
    for a, b, da in zip(I1, I2, D2):
        mism = a != b
        # ids may differ only inside groups of (nearly) tied distances
        for j in np.flatnonzero(mism):
            close = np.isclose(da, da[j], rtol=1e-4, atol=1e-3)
            assert a[j] in set(b[close]) or close[-1], (a, b)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("by_residual", [True, False])
def test_ivfpq_equals_brute_force_adc_over_probed_lists(xb, metric, by_residual) -> None:
    idx = quanta.IndexIVFPQ(D, 16, 4, metric=metric, by_residual=by_residual)
    idx.train(xb, niter=5, pq_niter=8)
    idx.add(xb)
    q = _data(30, 1)
    for nprobe in (1, 4):
        Dq, Iq = idx.search(q, 10, nprobe=nprobe)
        Db, Ib = _brute_ivfpq(idx, q, nprobe, 10)
        _check_same(Dq, Iq, Db, Ib)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfflat_equals_brute_force_over_probed_lists(xb, metric) -> None:
    idx = quanta.IndexIVFFlat(D, 16, metric)
    idx.train(xb)
    ids = np.arange(len(xb), dtype=np.int64) * 5 + 7
    idx.add_with_ids(xb, ids)
    q = _data(25, 2)
    nprobe = 3
    Dq, Iq = idx.search(q, 8, nprobe=nprobe)
    assign = _probes(idx, xb, 1)[:, 0]
    for qi, lists, dq, iq in zip(q, _probes(idx, q, nprobe), Dq, Iq):
        sel = np.flatnonzero(np.isin(assign, lists))
        dist = all_distances(xb[sel], qi[None], metric)[0]
        key = dist if metric == "l2" else -dist
        order = np.lexsort((ids[sel], key))[:8]
        _check_same(dq[None], iq[None], dist[order][None], ids[sel][order][None])


def test_nprobe_all_lists_is_exhaustive_adc(ivfpq) -> None:
    q = _data(10, 3)
    a = ivfpq.search(q, 5, nprobe=ivfpq.nlist)
    b = ivfpq.search(q, 5, nprobe=10 * ivfpq.nlist)  # clamped
    np.testing.assert_array_equal(a[1], b[1])
    assert ivfpq.invlists.sizes.sum() == ivfpq.ntotal == 4000
    assert ivfpq.invlists.imbalance_factor >= 1.0


def test_reconstruct_and_pad(ivfpq, xb) -> None:
    r = ivfpq.reconstruct(3)
    assert r.shape == (D,)
    assert np.linalg.norm(r - xb[3]) < np.linalg.norm(xb[3])
    idx = quanta.IndexIVFFlat(D, 4)
    idx.train(xb)
    idx.add(xb[:3])
    Dd, Ii = idx.search(xb[:1], 10, nprobe=4)
    assert (Ii[0, 3:] == -1).all() and np.isinf(Dd[0, 3:]).all()
    with pytest.raises(quanta.InvalidArgumentError):
        idx.reconstruct(99)


def test_filtered_search_returns_k_allowed(ivfpq) -> None:
    q = _data(8, 4)
    allowed = np.arange(0, 4000, 11, dtype=np.int64)
    mask = np.zeros(4000, dtype=bool)
    mask[allowed] = True
    _, full = ivfpq.search(q, 4000, nprobe=8)
    for kw in (
        {"ids_allowed": allowed},
        {"ids_allowed": mask},
        {"ids_denied": ~mask},
        {"ids_denied": np.flatnonzero(~mask).astype(np.int64)},
    ):
        _, ids = ivfpq.search(q, 10, nprobe=8, **kw)
        for row, ref in zip(ids, full):
            want = [i for i in ref if i >= 0 and i % 11 == 0][:10]
            assert list(row) == want
    with pytest.raises(quanta.InvalidArgumentError):
        ivfpq.search(q, 3, nprobe=2, ids_allowed=allowed, ids_denied=allowed)
    with pytest.raises(quanta.DTypeError):
        ivfpq.search(q, 3, nprobe=2, ids_allowed=allowed.astype(np.float32))
    # integer ids of another width are converted (exactly): same results as int64
    same = ivfpq.search(q, 3, nprobe=2, ids_allowed=allowed.astype(np.int32))
    assert np.array_equal(same[1], ivfpq.search(q, 3, nprobe=2, ids_allowed=allowed)[1])


def test_errors(xb) -> None:
    idx = quanta.IndexIVFPQ(D, 8, 4)
    with pytest.raises(quanta.NotTrainedError):
        idx.add(xb)
    with pytest.raises(quanta.NotTrainedError):
        idx.search(xb[:2], 1, nprobe=1)
    idx.train(xb, niter=2, pq_niter=2)
    with pytest.raises(quanta.InvalidArgumentError):
        idx.search(xb[:2], 1, nprobe=0)
    with pytest.raises(quanta.InvalidArgumentError):
        idx.search(xb[:2], 0, nprobe=1)
    with pytest.raises(quanta.ShapeError):
        idx.search(xb[:2, :8], 1, nprobe=1)
    with pytest.raises(quanta.ShapeError):
        idx.add(xb[:, :8])
    with pytest.raises(quanta.DTypeError):
        idx.add_with_ids(xb[:3], np.arange(3, dtype=np.float32))
    with pytest.raises(quanta.ShapeError):
        idx.add_with_ids(xb[:3], np.arange(4, dtype=np.int64))
    with pytest.raises(quanta.DTypeError):
        idx.remove_ids(np.arange(3, dtype=np.float64))
    bad = xb[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(quanta.InvalidArgumentError):
        idx.add(bad)
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexIVFPQ(10, 8, 3)
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexIVFFlat(D, 0)
    idx.add(xb[:10])
    with pytest.raises(quanta.InvalidArgumentError):
        idx.train(xb)


@pytest.mark.parametrize("kind", ["flat", "pq"])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path: Path, xb, kind: str, mmap: bool) -> None:
    if kind == "pq":
        idx: quanta.IndexIVFPQ | quanta.IndexIVFFlat = quanta.IndexIVFPQ(D, 8, 4)
        idx.train(xb, niter=3, pq_niter=3)  # type: ignore[call-arg]
    else:
        idx = quanta.IndexIVFFlat(D, 8)
        idx.train(xb)
    idx.add_with_ids(xb, np.arange(len(xb), dtype=np.int64) + 100)
    idx.remove_ids(np.array([100, 101], dtype=np.int64))
    path = tmp_path / "ivf.qnt"
    quanta.write_index(idx, path)
    back = quanta.read_index(path, mmap=mmap)
    assert type(back) is type(idx)
    assert back.is_mapped == mmap
    q = _data(6, 5)
    for a, b in zip(idx.search(q, 7, nprobe=3), back.search(q, 7, nprobe=3)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(idx.invlists.sizes, back.invlists.sizes)
    np.testing.assert_array_equal(idx.reconstruct(500), back.reconstruct(500))
    # add after load: copy-on-write of the touched lists, the file is unchanged
    back.add_with_ids(xb[:5], np.arange(5, dtype=np.int64))
    assert back.ntotal == idx.ntotal + 5
    again = quanta.read_index(path)
    assert again.ntotal == idx.ntotal


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.lists(st.integers(0, 300), max_size=20)),
            st.tuples(st.just("remove"), st.lists(st.integers(0, 300), max_size=20)),
            st.tuples(st.just("search"), st.lists(st.integers(0, 300), max_size=40)),
        ),
        max_size=12,
    )
)
def test_model_based_add_remove_filter(ops) -> None:
    """IVFFlat with all lists probed is exact: compare with a dict id -> vector."""
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((301, 4)).astype(np.float32)
    idx = quanta.IndexIVFFlat(4, 4)
    idx.train(vecs)
    model: dict[int, np.ndarray] = {}
    q = rng.standard_normal((2, 4)).astype(np.float32)
    for op, arg in ops:
        ids = np.array(sorted(set(arg)), dtype=np.int64)
        if op == "add":
            new = np.array([i for i in ids if i not in model], dtype=np.int64)
            idx.add_with_ids(vecs[new].reshape(-1, 4), new)
            model.update({int(i): vecs[i] for i in new})
        elif op == "remove":
            n = idx.remove_ids(ids)
            assert n == sum(int(i) in model for i in ids)
            for i in ids:
                model.pop(int(i), None)
        else:
            k = 5
            allowed = [i for i in ids if int(i) in model]
            _, got = idx.search(q, k, nprobe=4, ids_allowed=ids)
            dist = all_distances(vecs[allowed].reshape(-1, 4), q, "l2")
            for row, dr in zip(got, dist):
                order = np.lexsort((np.array(allowed, dtype=np.int64), dr))[:k]
                want = [int(allowed[j]) for j in order] + [-1] * (k - min(k, len(allowed)))
                assert list(row) == want
        assert idx.ntotal == len(model)
        for i in list(model)[:3]:
            np.testing.assert_array_equal(idx.reconstruct(i), model[i])


def test_ivfpq_fastscan_reranked_equals_ivfpq_4bit(xb, tmp_path: Path) -> None:
    ref = quanta.IndexIVFPQ(D, 16, 8, nbits=4)
    ref.train(xb, niter=5, pq_niter=8)
    ref.add(xb)
    fs = quanta.IndexIVFPQFastScan.from_parts(ref.centroids, ref.pq)
    fs.add(xb)
    np.testing.assert_array_equal(fs.invlists.sizes, ref.invlists.sizes)
    q = _data(20, 6)
    fs.k_factor = len(xb)  # re-rank every candidate: exactly the float ADC result
    for a, b in zip(fs.search(q, 10, nprobe=3), ref.search(q, 10, nprobe=3)):
        np.testing.assert_array_equal(a, b)
    fs.k_factor = 1  # approximate distances only: close to the float ones
    Da, Ia = fs.search(q, 10, nprobe=3)
    Dr, Ir = ref.search(q, 10, nprobe=3)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(Ia, Ir)]) >= 8
    assert np.abs(Da - Dr).max() <= 0.2 * np.abs(Dr).max()
    fs.k_factor = 4
    allowed = np.arange(0, len(xb), 5, dtype=np.int64)
    _, Ifil = fs.search(q, 10, nprobe=3, ids_allowed=allowed)
    assert ((Ifil % 5) == 0).all()
    assert fs.remove_ids(Ir[:, 0].copy()) >= 1
    _, Iafter = fs.search(q, 10, nprobe=3)
    assert not np.isin(Iafter, Ir[:, 0]).any()
    path = tmp_path / "fs.qnt"
    quanta.write_index(fs, path)
    back = quanta.read_index(path, mmap=True)
    assert isinstance(back, quanta.IndexIVFPQFastScan) and back.k_factor == 4
    for a, b in zip(back.search(q, 10, nprobe=3), fs.search(q, 10, nprobe=3)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.IndexIVFPQFastScan.from_parts(ref.centroids, quanta.IndexPQ(D, 8, 8).pq)


def test_corrupt_ivf_file_is_format_error(tmp_path: Path, ivfpq) -> None:
    path = tmp_path / "ivf.qnt"
    quanta.write_index(ivfpq, path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.qnt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(quanta.FormatError):
        quanta.read_index(bad)
    bad.write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(quanta.FormatError):
        quanta.read_index(bad, mmap=True)


# ---------------------------------------------------------------------------------------------
# the Index protocol: nprobe as saved state, range search, SearchParameters, pickling


def _three(xb: np.ndarray) -> list[quanta.Index]:
    """One trained, filled index of each IVF class (explicit ids)."""
    flat = quanta.IndexIVFFlat(D, 16)
    flat.train(xb, niter=5)
    pq = quanta.IndexIVFPQ(D, 16, 4)
    pq.train(xb, niter=5, pq_niter=5)
    fs = quanta.IndexIVFPQFastScan(D, 16, 4, k_factor=3)
    fs.train(xb, niter=5, pq_niter=5)
    ids = np.arange(len(xb), dtype=np.int64) * 3 + 1
    for idx in (flat, pq, fs):
        idx.add_with_ids(xb, ids)
    return [flat, pq, fs]


@pytest.fixture(scope="module")
def three(xb: np.ndarray) -> list[quanta.Index]:
    return _three(xb)


def test_default_nprobe_is_one_and_drives_search(three) -> None:
    q = _data(9, 11)
    for idx in three:
        fresh = type(idx)(D, 16) if isinstance(idx, quanta.IndexIVFFlat) else type(idx)(D, 16, 4)
        assert fresh.nprobe == 1 and "nprobe=1" in repr(fresh)
        c = pickle.loads(pickle.dumps(idx))
        for a, b in zip(c.search(q, 5), c.search(q, 5, nprobe=1)):
            np.testing.assert_array_equal(a, b)
        c.nprobe = 6
        for a, b in zip(c.search(q, 5), idx.search(q, 5, nprobe=6)):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(quanta.InvalidArgumentError):
            c.nprobe = 0
        with pytest.raises(quanta.DTypeError):
            c.nprobe = 2.0  # type: ignore[assignment]
        with pytest.raises(quanta.InvalidArgumentError):
            c.search(q, 5, nprobe=0)


@pytest.mark.parametrize("how", ["path", "mmap", "file", "bytes", "pickle", "deepcopy"])
def test_nprobe_and_k_factor_are_saved(tmp_path: Path, xb, how: str) -> None:
    q = _data(7, 12)
    for idx in _three(xb[:1500]):
        idx.nprobe = 5
        if isinstance(idx, quanta.IndexIVFPQFastScan):
            idx.k_factor = 2
        path = tmp_path / f"{type(idx).__name__}.qnt"
        if how in ("path", "mmap"):
            quanta.write_index(idx, path)
            back = quanta.read_index(path, mmap=how == "mmap")
        elif how == "file":
            with open(path, "wb") as f:
                quanta.write_index(idx, f)
            with open(path, "rb") as f:
                back = quanta.read_index(f)
        elif how == "bytes":
            back = quanta.deserialize_index(quanta.serialize_index(idx))
        elif how == "pickle":
            back = pickle.loads(pickle.dumps(idx))
        else:
            back = copy.deepcopy(idx)
        assert type(back) is type(idx) and back.nprobe == 5
        if isinstance(idx, quanta.IndexIVFPQFastScan):
            assert back.k_factor == 2
        for a, b in zip(idx.search(q, 6), back.search(q, 6)):
            np.testing.assert_array_equal(a, b)
        del back  # unmap before the directory goes


def test_pickle_round_trip_searches_identically(three) -> None:
    q = _data(20, 13)
    allowed = np.arange(1, 12001, 6, dtype=np.int64)
    for idx in three:
        back = pickle.loads(pickle.dumps(idx, protocol=pickle.HIGHEST_PROTOCOL))
        assert type(back) is type(idx) and repr(back) == repr(idx)
        np.testing.assert_array_equal(back.invlists.sizes, idx.invlists.sizes)
        np.testing.assert_array_equal(back.centroids, idx.centroids)
        for kw in ({}, {"nprobe": 4}, {"nprobe": 3, "ids_allowed": allowed}):
            for a, b in zip(idx.search(q, 8, **kw), back.search(q, 8, **kw)):
                np.testing.assert_array_equal(a, b)
        for a, b in zip(idx.range_search(q, 9.0, nprobe=2), back.range_search(q, 9.0, nprobe=2)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(idx.reconstruct(31), back.reconstruct(31))


def _range_rows(lims, D_, I_):
    return [(D_[a:b], I_[a:b]) for a, b in zip(lims[:-1], lims[1:])]


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_ivfflat_range_search_is_brute_force_over_probed_lists(xb, metric) -> None:
    idx = quanta.IndexIVFFlat(D, 16, metric)
    idx.train(xb, niter=5)
    idx.add(xb)
    flat = quanta.IndexFlat(D, metric)
    flat.add(xb)
    q = _data(15, 14)
    radius = 12.0 if metric == "l2" else 4.0

    # every list probed: the exact range search (up to the order of near-ties, and hits at
    # the radius itself: the two compute distances with different kernels)
    def clear(dv: np.ndarray, iv: np.ndarray) -> set[int]:
        return set(iv[np.abs(dv - radius) > 1e-4].tolist())

    got = _range_rows(*idx.range_search(q, radius, nprobe=16))
    for (dg, ig), (dw, iw) in zip(got, _range_rows(*flat.range_search(q, radius))):
        assert clear(dg, ig) == clear(dw, iw)
        if len(dg) == len(dw):
            np.testing.assert_allclose(dg, dw, rtol=1e-5, atol=1e-5)
    # nprobe = 3: the entries of the probed lists within the radius, best first
    assign = _probes(idx, xb, 1)[:, 0]
    lims, Dr, Ir = idx.range_search(q, radius, nprobe=3)
    assert lims.shape == (16,) and lims[0] == 0
    for qi, lists, (dq, iq) in zip(q, _probes(idx, q, 3), _range_rows(lims, Dr, Ir)):
        sel = np.flatnonzero(np.isin(assign, lists))
        dist = all_distances(xb[sel], qi[None], metric)[0]
        inside = dist < radius if metric == "l2" else dist > radius
        sel, dist = sel[inside], dist[inside]
        order = np.lexsort((sel, dist if metric == "l2" else -dist))
        assert set(iq) == set(sel), qi
        np.testing.assert_allclose(dq, dist[order], rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(dq) >= -1e-4) if metric == "l2" else np.all(np.diff(dq) <= 1e-4)
    # the default nprobe is the index's
    idx.nprobe = 3
    for a, b in zip(idx.range_search(q, radius), (lims, Dr, Ir)):
        np.testing.assert_array_equal(a, b)


def test_ivfpq_range_search_is_what_search_returns_within_radius(three) -> None:
    q = _data(10, 15)
    for idx in three[1:]:
        k = idx.ntotal
        D_, I_ = idx.search(q, k, nprobe=2)
        r = float(np.median(D_[:, 20]))
        lims, Dr, Ir = idx.range_search(q, r, nprobe=2)
        for (dq, iq), drow, irow in zip(_range_rows(lims, Dr, Ir), D_, I_):
            keep = (irow >= 0) & (drow < r)
            np.testing.assert_array_equal(iq, irow[keep])
            np.testing.assert_array_equal(dq, drow[keep])


def test_filters_and_nprobe_through_search_parameters(three) -> None:
    q = _data(12, 16)
    ids = np.arange(len(three[0]), dtype=np.int64) * 3 + 1
    allowed = ids[::4]
    mask = np.zeros(ids.max() + 1, dtype=bool)
    mask[allowed] = True
    for idx in three:
        ref = idx.search(q, 10, nprobe=4, ids_allowed=allowed)
        assert np.isin(ref[1][ref[1] >= 0], allowed).all()
        for p in (
            quanta.SearchParameters(nprobe=4, ids_allowed=allowed),
            quanta.SearchParameters(nprobe=4, ids_allowed=mask),
            quanta.SearchParameters(nprobe=4, ids_denied=~mask),
        ):
            for a, b in zip(idx.search(q, 10, params=p), ref):
                np.testing.assert_array_equal(a, b)
        # a shortcut overrides the params' field
        p = quanta.SearchParameters(nprobe=1, ids_allowed=allowed)
        for a, b in zip(idx.search(q, 10, params=p, nprobe=4), ref):
            np.testing.assert_array_equal(a, b)
        lims, _, Ir = idx.range_search(q, 50.0, params=quanta.SearchParameters(ids_denied=mask))
        assert not np.isin(Ir, allowed).any() and lims[-1] == len(Ir) > 0


def test_fastscan_k_factor_per_call_equals_the_attribute(three) -> None:
    fs = three[2]
    assert isinstance(fs, quanta.IndexIVFPQFastScan) and fs.k_factor == 3
    q = _data(10, 17)
    a = fs.search(q, 5, nprobe=3, k_factor=1)
    c = pickle.loads(pickle.dumps(fs))
    c.k_factor = 1
    for x, y in zip(a, c.search(q, 5, nprobe=3)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(quanta.InvalidArgumentError):
        fs.search(q, 5, k_factor=0)


def test_ivf_is_not_wrapped_in_an_id_map() -> None:
    # IVF indexes keep the caller's ids (add_with_ids); an id map over one is refused
    for idx in (quanta.IndexIVFFlat(D, 4), quanta.IndexIVFPQ(D, 4, 4)):
        with pytest.raises(quanta.InvalidArgumentError, match="add_with_ids"):
            quanta.IndexIDMap(idx)


def test_remove_ids_by_mask_and_train_defaults(xb) -> None:
    a = quanta.IndexIVFFlat(D, 8)
    b = quanta.IndexIVFFlat(D, 8)
    a.train(xb)
    b.train(xb, niter=10, seed=1234)  # the defaults, spelt out
    np.testing.assert_array_equal(a.centroids, b.centroids)
    a.add(xb[:100])
    mask = np.zeros(100, dtype=bool)
    mask[::2] = True
    assert a.remove_ids(mask) == 50 and a.ntotal == 50
    assert set(np.concatenate([a.invlists.list_ids(i) for i in range(8)])) == set(range(1, 100, 2))
    with pytest.raises(quanta.InvalidArgumentError):
        a.train(xb, niter=0)


def test_ip_coarse_training_is_faiss_spherical_kmeans() -> None:
    """faiss trains an inner-product IVF with spherical k-means (unit-norm centroids, points
    assigned by largest inner product), and so does quanta (benches/ivf_ip_coarse.py measures
    it against L2 k-means)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    spread = x * rng.lognormal(0, 0.5, (3000, 1)).astype(np.float32)
    for data in (unit, spread):
        idx = quanta.IndexIVFFlat(16, 20, metric="ip")
        idx.train(data)
        np.testing.assert_allclose(np.linalg.norm(idx.centroids, axis=1), 1.0, atol=1e-5)
    # L2 IVFs are plain k-means whatever the norms
    idx = quanta.IndexIVFFlat(16, 20)
    idx.train(unit)
    assert np.linalg.norm(idx.centroids, axis=1).max() < 0.999
