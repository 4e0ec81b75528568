"""The one Index protocol, checked on every index type the same way.

Each case builds a small trained index holding ``N`` vectors; every test below runs on every
case, so an index type that skips part of the protocol (filters, pickling, saved defaults,
range search, ids) fails here rather than in a user's code.
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import quanta

D, N, NQ, K = 16, 600, 12, 10


def _data(seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((NQ, D)).astype(np.float32)
    return x, q


def _trained(make: Callable[[], quanta.Index]) -> Callable[[], quanta.Index]:
    def build() -> quanta.Index:
        x, _ = _data()
        index = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few training points for 256 centroids
            index.train(x)
        if isinstance(index, quanta.IndexIDMap):
            index.add_with_ids(x, np.arange(N, dtype=np.int64) * 7 + 3)
        else:
            index.add(x)
        return index

    return build


def _factory(desc: str, metric: str = "l2") -> Callable[[], quanta.Index]:
    def make() -> quanta.Index:
        out: quanta.Index = quanta.index_factory(D, desc, metric)
        return out

    return make


# every index type of the protocol; an entry whose class is not yet a quanta.Index is skipped
CASES: dict[str, Callable[[], Any]] = {
    "Flat": lambda: quanta.IndexFlat(D),
    "FlatIP": lambda: quanta.IndexFlat(D, "ip"),
    "IDMap,Flat": lambda: quanta.IndexIDMap(quanta.IndexFlat(D)),
    "PQ8": lambda: quanta.IndexPQ(D, 8, 8),
    "PQ8x4fs": lambda: quanta.IndexPQFastScan(D, 8),
    "IVF8,Flat": lambda: quanta.IndexIVFFlat(D, 8),
    "IVF8,PQ8": lambda: quanta.IndexIVFPQ(D, 8, 8),
    "IVF8,PQ8x4fs": lambda: quanta.IndexIVFPQFastScan(D, 8, 8),
    "OPQ8,Flat": _factory("OPQ8,Flat"),
    "PQ8,RFlat": _factory("PQ8,RFlat"),
    "IVF8,PQ8,RFlat": _factory("IVF8,PQ8,RFlat"),
    "OPQ8,IVF8,PQ8x4fs": _factory("OPQ8,IVF8,PQ8x4fs", "ip"),
    "Zn": lambda: quanta.IndexLattice(quanta.ZnSphereCodec(D, 10)),
    "PQ8,IP": lambda: quanta.IndexPQ(D, 8, 8, "ip"),
    "IDMap,PQ8": lambda: quanta.IndexIDMap(quanta.IndexPQ(D, 8, 8)),
    "RaBitQ": lambda: quanta.IndexRaBitQ(D),
    "RaBitQ4,IP": lambda: quanta.IndexRaBitQ(D, 4, "ip"),
    "RaBitQ2,RFlat": _factory("RaBitQ2,RFlat"),
    "IVF8,RaBitQ": lambda: quanta.IndexIVFRaBitQ(D, 8),
    "IVF8,RaBitQ4,IP": _factory("IVF8,RaBitQ4", "ip"),
    "SQ8": lambda: quanta.IndexScalarQuantizer(D, "8bit"),
    "SQ4": lambda: quanta.IndexScalarQuantizer(D, "4bit"),
    "SQfp16": lambda: quanta.IndexScalarQuantizer(D, "fp16"),
    "SQbf16,IP": lambda: quanta.IndexScalarQuantizer(D, "bf16", "ip"),
    "SQlm3": lambda: quanta.IndexScalarQuantizer(D, "lm3"),
    "IVF8,SQ8": _factory("IVF8,SQ8"),
    "IVF8,SQ4,IP": lambda: quanta.IndexIVFScalarQuantizer(D, 8, "4bit", "ip"),
    "IVF8,SQfp16,plain": lambda: quanta.IndexIVFScalarQuantizer(D, 8, "fp16", by_residual=False),
    "IVF8,SQlm3": _factory("IVF8,SQlm3"),
}


def _build(name: str) -> quanta.Index:
    make = CASES[name]
    try:
        probe = make()
    except Exception as e:  # a case that cannot even be built is reported
        pytest.fail(f"{name}: cannot build: {e!r}")
    assert isinstance(probe, quanta.Index), f"{type(probe).__name__} is not on the protocol"
    return _trained(make)()


def _same_search(a: quanta.Index, b: quanta.Index, q: np.ndarray[Any, Any]) -> None:
    da, ia = a.search(q, K)
    db, ib = b.search(q, K)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)


@pytest.fixture(params=sorted(CASES))
def index(request: pytest.FixtureRequest) -> quanta.Index:
    return _build(request.param)


def test_shared_properties(index: quanta.Index) -> None:
    assert index.d == D and index.ntotal == N and len(index) == N
    assert index.is_trained and index.metric in ("l2", "ip")
    assert isinstance(index, quanta.Index)
    r = repr(index)
    assert r.startswith(type(index).__name__ + "(") and f"ntotal={N}" in r, r


def test_pickle_copy_serialize_round_trips(index: quanta.Index, tmp_path: Path) -> None:
    _, q = _data()
    for back in (
        pickle.loads(pickle.dumps(index)),
        copy.copy(index),
        copy.deepcopy(index),
        quanta.deserialize_index(quanta.serialize_index(index)),
    ):
        assert type(back) is type(index)
        _same_search(index, back, q)
    buf = io.BytesIO()
    quanta.write_index(index, buf)
    buf.seek(0)
    _same_search(index, quanta.read_index(buf), q)
    path = tmp_path / "index.qnt"
    quanta.write_index(index, path)
    for mmap in (False, True):
        back = quanta.read_index(path, mmap=mmap)
        assert type(back) is type(index)
        _same_search(index, back, q)


def test_copies_are_independent(index: quanta.Index) -> None:
    _, q = _data(1)
    twin = copy.deepcopy(index)
    index.reset()
    assert index.ntotal == 0 and twin.ntotal == N
    assert (index.search(q, K)[1] == -1).all()


def _ids_of(index: quanta.Index) -> np.ndarray[Any, Any]:
    """Every stored id (from an unfiltered search as wide as the index)."""
    _, q = _data()
    i = index.search(q[:1], N, params=quanta.SearchParameters(nprobe=64))[1]
    return np.unique(i[i >= 0])


@pytest.mark.parametrize("how", ["allowed", "denied", "mask"])
def test_filter_is_applied_inside_the_scan(index: quanta.Index, how: str) -> None:
    _, q = _data()
    ids = _ids_of(index)
    rng = np.random.default_rng(4)
    chosen = np.sort(rng.choice(ids, size=len(ids) // 3, replace=False)).astype(np.int64)
    if how == "allowed":
        kw: dict[str, Any] = {"ids_allowed": chosen}
        ok = set(chosen.tolist())
    elif how == "denied":
        kw = {"ids_denied": chosen}
        ok = set(ids.tolist()) - set(chosen.tolist())
    else:
        mask = np.zeros(int(ids.max()) + 1, dtype=bool)
        mask[chosen] = True
        kw = {"ids_allowed": mask}
        ok = set(chosen.tolist())
    nprobe = 64  # every list: the filter must not cost results
    d, i = index.search(q, K, nprobe=nprobe, **kw)
    got = i[i >= 0]
    assert set(got.tolist()) <= ok
    # rejected entries never take a slot: every row is full
    assert (i >= 0).all(), "a filtered search returned fewer than k hits"
    # the same as the same search through SearchParameters
    _, i2 = index.search(q, K, params=quanta.SearchParameters(nprobe=nprobe, **kw))
    np.testing.assert_array_equal(i, i2)
    name = type(index).__name__
    if name == "IndexRefineFlat" or (name == "IndexRaBitQ" and index.k_factor > 0):
        # re-ranks the best allowed *approximate* hits (a shortlist): not a prefix of the full
        # search
        return
    # and the best allowed hits of an unfiltered full search (distances as the index computes
    # them, so ties aside the rows agree)
    dw, iw = index.search(q, N, nprobe=nprobe)
    for r in range(NQ):
        keep = [j for j in range(N) if iw[r, j] in ok][:K]
        np.testing.assert_allclose(d[r], dw[r, keep], rtol=1e-5, atol=1e-5)


def test_unknown_search_parameter_is_an_error(index: quanta.Index) -> None:
    _, q = _data()
    with pytest.raises(quanta.InvalidArgumentError, match="nprob"):
        index.search(q, K, nprob=3)


def test_range_search_matches_the_knn_search(index: quanta.Index) -> None:
    _, q = _data()
    dw, iw = index.search(q, N, nprobe=64)
    radius = float(np.median(dw[:, K]))
    lims, _, ii = index.range_search(q, radius, nprobe=64)
    assert lims.dtype == np.int64 and lims.shape == (NQ + 1,) and lims[0] == 0
    for r in range(NQ):
        if index.metric == "l2":
            want = iw[r][(iw[r] >= 0) & (dw[r] < radius)]
        else:
            want = iw[r][(iw[r] >= 0) & (dw[r] > radius)]
        got = ii[lims[r] : lims[r + 1]]
        assert set(got.tolist()) == set(want.tolist())
    with pytest.raises(quanta.InvalidArgumentError, match="radius"):
        index.range_search(q, float("nan"))


def test_remove_ids_is_denying_them(index: quanta.Index) -> None:
    """Every index removes ids. Afterwards a search returns what the same search denying those
    ids returned before (same distances; positional indexes renumber the rest as faiss,
    indexes keeping ids do not)."""
    _, q = _data(1)
    ids = _ids_of(index)
    gone = ids[[0, 5, 17, 300, N - 1]]
    kw = {"nprobe": 8} if hasattr(index, "nprobe") else {}
    d_deny, i_deny = index.search(q, K, ids_denied=gone, **kw)
    assert index.remove_ids(gone) == 5 and index.ntotal == N - 5
    d, i = index.search(q, K, **kw)
    if index.stores_ids:  # the same ids again: nothing left to remove
        assert index.remove_ids(gone) == 0
    if index.stores_ids:
        want = i_deny
    else:
        new_pos = np.cumsum(~np.isin(np.arange(N), gone)) - 1
        want = np.where(i_deny >= 0, new_pos[np.maximum(i_deny, 0)], -1)
    np.testing.assert_array_equal(i, want)
    np.testing.assert_array_equal(d, d_deny)


def test_empty_add_and_search_are_no_ops(index: quanta.Index) -> None:
    empty = np.zeros((0, D), dtype=np.float32)
    if isinstance(index, quanta.IndexIDMap):
        index.add_with_ids(empty, np.zeros(0, dtype=np.int64))
    else:
        index.add(empty)
    assert index.ntotal == N
    d, i = index.search(empty, K)
    assert d.shape == (0, K) and i.shape == (0, K)


def test_default_policy() -> None:
    """One policy: metric l2, nprobe 1 (as faiss), k_factor 1 — except RaBitQ, whose shortlist
    default is measured per nbits (0: the exact bound-pruned search at 1 bit)."""
    assert quanta.IndexFlat(D).metric == "l2"
    for make in CASES.values():
        ix = make()
        if not isinstance(ix, quanta.Index):
            continue
        if hasattr(ix, "nprobe"):
            assert ix.nprobe == 1, type(ix).__name__
        if isinstance(ix, quanta.IndexRaBitQ):
            want = {1: 0, 2: 4, 3: 5}.get(ix.nbits, 8)
            assert (ix.k_factor, ix.scan_planes) == (want, 1)
        elif hasattr(ix, "k_factor"):
            assert ix.k_factor == 1, type(ix).__name__


# kinds whose entries cannot be appended from another index (the error says so)
NO_MERGE = {"Zn", "IVF8,PQ8,RFlat"}


def test_merge_from_equals_adding_everything() -> None:
    """Two copies of one trained index take halves of the data; merging one into the other
    gives the index that took all of it (positional kinds append the other's entries)."""
    x, q = _data()
    for name in sorted(CASES):
        whole = _build(name)
        a, b = copy.deepcopy(whole), copy.deepcopy(whole)
        a.reset()
        b.reset()
        half = N // 2
        if isinstance(whole, quanta.IndexIDMap) or whole.stores_ids:
            ids = np.arange(N, dtype=np.int64) * 7 + 3
            a.add_with_ids(x[:half], ids[:half])
            b.add_with_ids(x[half:], ids[half:])
            whole.reset()
            whole.add_with_ids(x, ids)
        else:
            a.add(x[:half])
            b.add(x[half:])
        if name in NO_MERGE:
            with pytest.raises(quanta.InvalidArgumentError, match="merge_from"):
                a.merge_from(b)
            continue
        a.merge_from(b)
        assert a.ntotal == N and b.ntotal == N - half, name
        kw = {"nprobe": 8} if hasattr(whole, "nprobe") else {}
        da, ia = a.search(q, K, **kw)
        dw, iw = whole.search(q, K, **kw)
        np.testing.assert_array_equal(ia, iw, err_msg=name)
        np.testing.assert_allclose(da, dw, rtol=1e-6, atol=1e-6, err_msg=name)
    # other training: refused, never merged
    other = quanta.IndexIVFFlat(D, 8)
    other.train(_data(5)[0])
    mine = quanta.IndexIVFFlat(D, 8)
    mine.train(x)
    with pytest.raises(quanta.InvalidArgumentError, match="trained parameters"):
        mine.merge_from(other)
    with pytest.raises(quanta.InvalidArgumentError, match="into itself"):
        mine.merge_from(mine)
    with pytest.raises(quanta.InvalidArgumentError, match="cannot merge"):
        mine.merge_from(quanta.IndexFlat(D))
