"""IndexBinaryFlat on the binary index protocol: filters, pickling, serialize, copies."""

from __future__ import annotations

import copy
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import quanta


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def _index(n: int = 500, seed: int = 0) -> tuple[quanta.IndexBinaryFlat, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    index = quanta.IndexBinaryFlat(64)
    index.add_with_ids(codes, ids)
    return index, codes, ids


def _brute(codes: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    dist = _hamming(q, codes)
    out = np.full((len(q), k), -1, np.int64)
    for i, row in enumerate(dist):
        order = np.lexsort((ids, row))[:k]
        out[i, : len(order)] = ids[order]
    return out


@pytest.mark.parametrize("k", [1, 10, 64])
@pytest.mark.parametrize("nq", [3, 400])  # per-code and bit-sliced scans
def test_filters_match_brute_force_on_the_subset(k: int, nq: int) -> None:
    index, codes, ids = _index()
    q = np.random.default_rng(1).integers(0, 256, size=(nq, 8), dtype=np.uint8)
    allowed = ids[ids % 3 == 0]
    keep = np.isin(ids, allowed)
    _, got = index.search(q, k, ids_allowed=allowed)
    np.testing.assert_array_equal(got, _brute(codes[keep], ids[keep], q, k))
    _, got = index.search(q, k, ids_denied=allowed)
    np.testing.assert_array_equal(got, _brute(codes[~keep], ids[~keep], q, k))
    mask = np.zeros(ids.max() + 1, bool)
    mask[allowed] = True
    _, got = index.search(q, k, params=quanta.SearchParameters(ids_allowed=mask))
    np.testing.assert_array_equal(got, _brute(codes[keep], ids[keep], q, k))
    lims, _, ri = index.range_search(q, 28, ids_denied=allowed)
    _, _, full_I = index.range_search(q, 28)
    assert not np.isin(ri, allowed).any()
    assert len(ri) == (~np.isin(full_I, allowed)).sum() and lims[-1] == len(ri)
    with pytest.raises(quanta.InvalidArgumentError, match="not both"):
        index.search(q, k, ids_allowed=allowed, ids_denied=allowed)
    with pytest.raises(quanta.InvalidArgumentError, match="unknown search parameter"):
        index.search(q, k, nprob=3)


def test_pickle_serialize_copy_and_read_back(tmp_path: Path) -> None:
    index, codes, ids = _index()
    q = codes[:20]
    want = index.search(q, 5)
    assert isinstance(index, quanta.IndexBinary)
    buf = io.BytesIO()
    quanta.write_index(index, buf)
    buf.seek(0)
    path = tmp_path / "b.qnt"
    quanta.write_index(index, path)
    for back in (
        pickle.loads(pickle.dumps(index)),
        quanta.deserialize_index(quanta.serialize_index(index)),
        quanta.deserialize_index(index.serialize()),
        quanta.read_index(buf),
        quanta.read_index(path),
        copy.copy(index),
        copy.deepcopy(index),
    ):
        assert type(back) is quanta.IndexBinaryFlat
        np.testing.assert_array_equal(back.ids, ids)
        got = back.search(q, 5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # the core object pickles too, and a copy is independent
    core = pickle.loads(pickle.dumps(index._index))
    assert core.ntotal == 500
    c = copy.copy(index)
    c.reset()
    assert index.ntotal == 500 and c.ntotal == 0
    assert repr(index) == "IndexBinaryFlat(nbits=64, ntotal=500)"


def test_reconstruct_and_remove_by_mask() -> None:
    index, codes, ids = _index(50)
    np.testing.assert_array_equal(index.reconstruct(int(ids[7])), codes[7])
    with pytest.raises(quanta.InvalidArgumentError, match="not in the index"):
        index.reconstruct(-3)
    with pytest.raises(quanta.DTypeError, match="id"):
        index.reconstruct(1.5)  # type: ignore[arg-type]
    mask = np.zeros(ids.max() + 1, bool)
    mask[ids[:10]] = True
    assert index.remove_ids(mask) == 10
    assert index.ntotal == 40 and not np.isin(index.ids, ids[:10]).any()
    assert index.remove_ids(ids[10]) == 1  # a scalar id still works
    assert index.remove_ids(np.array([], np.int64)) == 0
