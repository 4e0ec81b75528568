"""``quanta.faiss``: everyday faiss snippets run unchanged with faiss and with quanta.faiss.

Each snippet is a function of a ``faiss`` module, written as faiss code; it runs once with the
real faiss and once with ``quanta.faiss`` and the two results are compared:

* exact indexes: the same distances (rtol 1e-4) and the same ids wherever the distance is not
  tied (:func:`_support.assert_knn_equivalent` semantics, with a tolerance on the ties);
* approximate indexes: quanta's 10-recall@10 against the exact ground truth is not lower than
  faiss's by more than 3 standard errors of the paired per-query difference (the one-sided
  paired sign-symmetry test of :func:`_support.assert_recall_not_worse`, false alarm ~0.13 %
  when both have the same quality), and not absurdly low (> 0.5).
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from _support import assert_recall_not_worse, brute_force, overlap_at

real_faiss = pytest.importorskip("faiss")
# both libraries warn that 2000 points are few for 256 PQ centroids: expected here
pytestmark = pytest.mark.filterwarnings("ignore:.*training points:UserWarning")
import quanta  # noqa: E402
import quanta.faiss as qfaiss  # noqa: E402

D_, NB, NQ, K = 32, 2000, 200, 10


def _data() -> tuple[np.ndarray, np.ndarray]:
    """A seeded Gaussian mixture (50 clusters): IVF/PQ behave as on real embeddings."""
    rng = np.random.default_rng(1234)
    centers = rng.normal(size=(50, D_)) * 1.0
    lab = rng.integers(0, 50, NB + NQ)
    x = (centers[lab] + rng.normal(size=(NB + NQ, D_))).astype(np.float32)
    return x[:NB], x[NB:]


XB, XQ = _data()
GT_D, GT_I = brute_force(XB, XQ, K)


@pytest.fixture(scope="module", autouse=True)
def _threads() -> Iterator[None]:
    before = real_faiss.omp_get_max_threads()
    real_faiss.omp_set_num_threads(1)
    yield
    real_faiss.omp_set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# comparisons


def same_knn(ref: tuple[Any, Any], got: tuple[Any, Any], rtol: float = 1e-4) -> None:
    """Distances equal within ``rtol`` (plus a small absolute slack); ids equal at every rank
    whose reference distance is not tied (within that tolerance) with a neighbour."""
    Dr, Ir = (np.asarray(a) for a in ref)
    Dg, Ig = (np.asarray(a) for a in got)
    assert Dr.shape == Dg.shape and Ir.shape == Ig.shape
    scale = np.abs(Dr[np.isfinite(Dr)]).max(initial=1.0)
    tol = rtol * scale
    np.testing.assert_allclose(Dg, Dr, rtol=rtol, atol=tol)
    for q, j in np.argwhere(Ig != Ir):
        row = Dr[q]
        tied = np.abs(row - row[j]) <= 2 * tol
        assert tied.sum() > 1 or j == row.size - 1, (q, j, Ig[q], Ir[q], row)


def recall_ok(ref_I: Any, got_I: Any, gt: Any = GT_I, what: str = "") -> None:
    r_ref, r_got = overlap_at(ref_I, gt, K), overlap_at(got_I, gt, K)
    assert r_got.mean() > 0.5, f"{what}: recall@10 {r_got.mean():.3f}"
    assert_recall_not_worse([r_got], [r_ref], what)


SNIPPETS: list[tuple[Callable[[Any], Any], Callable[[Any, Any], None]]] = []


def snippet(check: Callable[[Any, Any], None]) -> Callable[[Callable[[Any], Any]], Any]:
    def deco(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        SNIPPETS.append((fn, check))
        return fn

    return deco


def knn_check(ref: Any, got: Any) -> None:
    same_knn(ref, got)


def recall_check(ref: Any, got: Any) -> None:
    recall_ok(ref[1], got[1])


# ---------------------------------------------------------------------------------------------
# the snippets: plain faiss code


@snippet(knn_check)
def getting_started(faiss: Any) -> Any:
    index = faiss.IndexFlatL2(D_)
    print(index.is_trained)
    index.add(XB)
    print(index.ntotal)
    D, I = index.search(XQ, K)
    assert index.d == D_ and index.metric_type == faiss.METRIC_L2
    return D, I


@snippet(recall_check)
def ivfflat_with_quantizer(faiss: Any) -> Any:
    nlist = 32
    quantizer = faiss.IndexFlatL2(D_)
    index = faiss.IndexIVFFlat(quantizer, D_, nlist)
    assert not index.is_trained
    index.train(XB)
    assert index.is_trained
    index.add(XB)
    index.nprobe = 4
    assert quantizer.ntotal == nlist  # the centroids end up in the quantizer
    return index.search(XQ, K)


@snippet(recall_check)
def ivfpq(faiss: Any) -> Any:
    nlist, m = 32, 8
    quantizer = faiss.IndexFlatL2(D_)
    index = faiss.IndexIVFPQ(quantizer, D_, nlist, m, 8)
    index.train(XB)
    index.add(XB)
    index.nprobe = 8
    return index.search(XQ, K)


@snippet(recall_check)
def factory(faiss: Any) -> Any:
    index = faiss.index_factory(D_, "IVF32,Flat")
    index.train(XB)
    index.add(XB)
    faiss.extract_index_ivf(index).nprobe = 6
    return index.search(XQ, K)


@snippet(knn_check)
def idmap(faiss: Any) -> Any:
    index = faiss.IndexIDMap(faiss.IndexFlatL2(D_))
    ids = np.arange(NB, dtype=np.int64) * 10 + 7
    index.add_with_ids(XB, ids)
    D, I = index.search(XQ, K)
    return D, (I - 7) // 10  # positions again, to compare with the ground truth


@snippet(knn_check)
def remove_ids(faiss: Any) -> Any:
    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    n = index.remove_ids(np.arange(0, NB, 3))
    assert n == len(range(0, NB, 3)) and index.ntotal == NB - n
    return index.search(XQ, K)  # ids are compacted to 0..ntotal-1


def range_check(ref: Any, got: Any) -> None:
    (lr, Dr, Ir), (lg, Dg, Ig) = ref, got
    assert lr.dtype == lg.dtype and np.array_equal(lr, lg)
    for q in range(len(lr) - 1):
        a, b = slice(lr[q], lr[q + 1]), slice(lg[q], lg[q + 1])
        order_r, order_g = np.argsort(Ir[a]), np.argsort(Ig[b])
        assert np.array_equal(Ir[a][order_r], Ig[b][order_g])
        np.testing.assert_allclose(Dr[a][order_r], Dg[b][order_g], rtol=1e-4, atol=1e-3)


@snippet(range_check)
def range_search(faiss: Any) -> Any:
    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    radius = float(np.median(GT_D[:, 5]))  # about 5 hits per query, far from any tie
    lims, D, I = index.range_search(XQ, radius)
    return lims, D, I


def arrays_equal(ref: Any, got: Any) -> None:
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@snippet(arrays_equal)
def reconstruct(faiss: Any) -> Any:
    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    return index.reconstruct(5), index.reconstruct_n(10, 5), index.reconstruct_n(0, 3)


@snippet(knn_check)
def cosine_normalize_L2(faiss: Any) -> Any:
    xb, xq = XB.copy(), XQ.copy()
    faiss.normalize_L2(xb)
    faiss.normalize_L2(xq)
    index = faiss.IndexFlatIP(D_)
    index.add(xb)
    D, I = index.search(xq, K)
    assert np.allclose(np.linalg.norm(xb, axis=1), 1, atol=1e-5)
    return D, I


def kmeans_check(ref: Any, got: Any) -> None:
    # per-point squared distance to the assigned centroid: quanta's mean must not exceed
    # faiss's by more than 3 standard errors of the paired per-point difference
    (Dr, cr, _objr, nr), (Dg, cg, objg, ng) = ref, got
    # faiss 1.15 stops once the objective no longer moves, quanta runs every iteration
    assert cr.shape == cg.shape == (16, D_) and 1 <= nr <= 20 and 1 <= ng <= 20
    diff = Dg.astype(np.float64) - Dr
    assert diff.mean() <= 3 * diff.std() / np.sqrt(diff.size) + 1e-6 * Dr.mean(), diff.mean()
    assert objg[-1] <= objg[0]


@snippet(kmeans_check)
def kmeans(faiss: Any) -> Any:
    kmeans = faiss.Kmeans(D_, 16, niter=20, verbose=False, seed=123)
    kmeans.train(XB)
    D, I = kmeans.assign(XB)
    assert I.shape == (NB,) and kmeans.index.ntotal == 16
    return D, kmeans.centroids, np.asarray(kmeans.obj), len(kmeans.obj)


@snippet(knn_check)
def write_read(faiss: Any) -> Any:
    import tempfile

    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.faiss")
        faiss.write_index(index, path)
        index2 = faiss.read_index(path)
    buf = io.BytesIO()
    faiss.write_index(index2, faiss.PyCallbackIOWriter(buf.write))
    buf.seek(0)
    index3 = faiss.read_index(faiss.PyCallbackIOReader(buf.read))
    assert index3.ntotal == NB
    return index3.search(XQ, K)


@snippet(knn_check)
def serialize(faiss: Any) -> Any:
    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    arr = faiss.serialize_index(index)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8
    return faiss.deserialize_index(arr).search(XQ, K)


@snippet(recall_check)
def pickling(faiss: Any) -> Any:
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(D_), D_, 16)
    index.train(XB)
    index.add(XB)
    index.nprobe = 4
    index2 = pickle.loads(pickle.dumps(index))
    D, I = index2.search(XQ, K)
    assert np.array_equal(I, index.search(XQ, K)[1])
    return D, I


@snippet(knn_check)
def shards(faiss: Any) -> Any:
    index = faiss.IndexShards(D_)
    parts = []
    for i in range(3):
        shard = faiss.IndexFlatL2(D_)
        shard.add(XB[i * NB // 3 : (i + 1) * NB // 3])
        parts.append(shard)
        index.add_shard(shard)
    assert index.ntotal == NB
    return index.search(XQ, K)


@snippet(recall_check)
def merge_from(faiss: Any) -> Any:
    quantizer = faiss.IndexFlatL2(D_)
    index1 = faiss.IndexIVFFlat(quantizer, D_, 16)
    index1.train(XB)
    index2 = faiss.clone_index(index1)
    index1.add(XB[: NB // 2])
    index2.add(XB[NB // 2 :])
    index1.merge_from(index2, index1.ntotal)
    assert index1.ntotal == NB and index2.ntotal == 0
    index1.nprobe = 4
    return index1.search(XQ, K)


def filtered_check(ref: Any, got: Any) -> None:
    same_knn(ref, got)
    allowed = np.arange(0, NB, 2)
    assert np.isin(np.asarray(got[1]), allowed).all()


@snippet(filtered_check)
def search_params_selector(faiss: Any) -> Any:
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(D_), D_, 16)
    index.train(XB)
    index.add(XB)
    sel = faiss.IDSelectorBatch(np.arange(0, NB, 2))
    params = faiss.SearchParametersIVF(sel=sel, nprobe=16)  # every list: exact over the subset
    return index.search(XQ, K, params=params)


@snippet(knn_check)
def inner_product(faiss: Any) -> Any:
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(D_), D_, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(XB)
    index.add(XB)
    index.nprobe = 8  # all lists: exact
    flat = faiss.IndexFlat(D_, faiss.METRIC_INNER_PRODUCT)
    flat.add(XB)
    D, I = index.search(XQ, K)
    same_knn(flat.search(XQ, K), (D, I))
    return D, I


@snippet(knn_check)
def threads(faiss: Any) -> Any:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    assert faiss.omp_get_max_threads() == 2
    index = faiss.IndexFlatL2(D_)
    index.add(XB)
    out = index.search(XQ, K)
    faiss.omp_set_num_threads(before)
    return out


@contextmanager
def _torch_utils_undone() -> Iterator[None]:
    """Undo what importing ``contrib.torch_utils`` patches, in faiss (its replacement
    ``search`` drops ``params=``) and in quanta.faiss, so the other tests see plain numpy."""
    classes = [c for c in vars(real_faiss).values() if isinstance(c, type)]
    saved = {c: dict(vars(c)) for c in classes}
    try:
        yield
    finally:
        for c, before in saved.items():
            for name in set(vars(c)) - set(before):
                delattr(c, name)
            for name, v in before.items():
                if vars(c).get(name) is not v:
                    setattr(c, name, v)
        qfaiss._indexes._TORCH[0] = False
        for mod in ("faiss.contrib.torch_utils", "quanta.faiss.contrib.torch_utils"):
            sys.modules.pop(mod, None)  # a later import patches again


@snippet(knn_check)
def torch_tensors(faiss: Any) -> Any:
    torch = pytest.importorskip("torch")
    importlib.import_module(faiss.__name__ + ".contrib.torch_utils")
    index = faiss.IndexFlatL2(D_)
    index.add(torch.from_numpy(XB))
    D, I = index.search(torch.from_numpy(XQ), K)
    assert isinstance(D, torch.Tensor) and isinstance(I, torch.Tensor)
    assert I.dtype == torch.int64
    return D.numpy(), I.numpy()


@pytest.mark.parametrize("fn,check", SNIPPETS, ids=[fn.__name__ for fn, _ in SNIPPETS])
def test_snippet_runs_unchanged(
    fn: Callable[[Any], Any], check: Callable[[Any, Any], None]
) -> None:
    with _torch_utils_undone():
        ref = fn(real_faiss)
        got = fn(qfaiss)
    check(ref, got)


def test_snippets_match_ground_truth() -> None:
    """The exact snippets agree with a float64 brute force too, not only with faiss."""
    same_knn((GT_D, GT_I), getting_started(qfaiss))


# ---------------------------------------------------------------------------------------------
# quanta.faiss specifics


def test_write_index_to_bytesio_directly() -> None:
    index = qfaiss.IndexFlatL2(D_)
    index.add(XB)
    buf = io.BytesIO()
    qfaiss.write_index(index, buf)
    buf.seek(0)
    back = qfaiss.read_index(buf)
    assert isinstance(back, qfaiss.IndexFlatL2) and back.ntotal == NB


def test_read_index_mmap(tmp_path: Any) -> None:
    index = qfaiss.IndexFlatL2(D_)
    index.add(XB)
    # a quanta file is mapped; a faiss file (what qfaiss.write_index writes) is read into memory
    quanta.write_index(index._q, str(tmp_path / "x.idx"))
    qfaiss.write_index(index, str(tmp_path / "x.faiss"))
    flags = qfaiss.IO_FLAG_MMAP | qfaiss.IO_FLAG_READ_ONLY
    back = qfaiss.read_index(str(tmp_path / "x.idx"), flags)
    assert back.is_mapped
    same_knn(index.search(XQ, K), back.search(XQ, K))
    from_faiss = qfaiss.read_index(str(tmp_path / "x.faiss"), flags)
    assert not from_faiss.is_mapped
    same_knn(index.search(XQ, K), from_faiss.search(XQ, K))
    with pytest.raises(NotImplementedError):
        qfaiss.read_index(str(tmp_path / "x.idx"), qfaiss.IO_FLAG_ONDISK_SAME_DIR)


def test_unsupported_names_raise_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match="IndexIVFFlat"):
        qfaiss.IndexHNSWFlat(D_, 32)
    with pytest.raises(NotImplementedError):
        qfaiss.index_factory(D_, "HNSW32")
    with pytest.raises(NotImplementedError):
        qfaiss.IndexIVFPQ(qfaiss.IndexPQ(D_, 4, 8), D_, 8, 4, 8)
    # merge_from appends the coded lists of an IVFPQ with the same training, as faiss
    index = qfaiss.IndexIVFPQ(qfaiss.IndexFlatL2(D_), D_, 8, 4, 8)
    index.train(XB)
    other = qfaiss.clone_index(index)
    index.add(XB[:100])
    other.add_with_ids(XB[100:], np.arange(100, len(XB)))
    index.merge_from(other)
    assert index.ntotal == len(XB) and other.ntotal == 0
    index.nprobe = 8
    assert (index.search(XB[150:151], 1)[1] == 150).all()
    retrained = qfaiss.IndexIVFPQ(qfaiss.IndexFlatL2(D_), D_, 8, 4, 8)
    retrained.train(XB[::-1].copy())
    with pytest.raises(ValueError, match="trained parameters"):
        index.merge_from(retrained)


def test_opq_third_argument_is_d_out() -> None:
    opq = qfaiss.OPQMatrix(D_, 4, 16)
    index = qfaiss.IndexPreTransform(opq, qfaiss.IndexPQ(16, 8, 8))
    index.train(XB)
    index.add(XB)
    assert index.index.d == 16
    recall_ok(real_ref_opq(), index.search(XQ, K)[1], what="OPQ4_16,PQ8")


def real_ref_opq() -> Any:
    opq = real_faiss.OPQMatrix(D_, 4, 16)
    index = real_faiss.IndexPreTransform(opq, real_faiss.IndexPQ(16, 8, 8))
    index.train(XB)
    index.add(XB)
    return index.search(XQ, K)[1]


def test_selectors() -> None:
    index = qfaiss.IndexFlatL2(D_)
    index.add(XB)
    ref = real_faiss.IndexFlatL2(D_)
    ref.add(XB)
    bitmap = np.packbits(np.arange(NB) % 3 == 0, bitorder="little")
    for make in (
        lambda f: f.IDSelectorRange(100, 900),
        lambda f: f.IDSelectorBitmap(bitmap),
        lambda f: f.IDSelectorNot(f.IDSelectorRange(0, 1000)),
    ):
        got = index.search(XQ, K, params=qfaiss.SearchParameters(sel=make(qfaiss)))
        exp = ref.search(XQ, K, params=real_faiss.SearchParameters(sel=make(real_faiss)))
        same_knn(exp, got)


def test_ivf_with_prefilled_quantizer_and_idmap_over_ivf() -> None:
    centroids = XB[:16].copy()
    out = {}
    for f in (real_faiss, qfaiss):
        quantizer = f.IndexFlatL2(D_)
        quantizer.add(centroids)
        index = f.IndexIVFFlat(quantizer, D_, 16)
        assert index.is_trained  # faiss: a full quantizer needs no training
        idmap = f.IndexIDMap(index)
        idmap.add_with_ids(XB, np.arange(NB, dtype=np.int64) + 1000)
        index.nprobe = 16
        out[f] = idmap.search(XQ, K)
    same_knn(out[real_faiss], out[qfaiss])


def test_binary_flat_remove_renumbers_as_faiss() -> None:
    codes = np.packbits(XB > 0, axis=1)
    out = []
    for f in (real_faiss, qfaiss):
        index = f.IndexBinaryFlat(D_)
        index.add(codes)
        assert index.remove_ids(np.arange(0, NB, 2)) == NB // 2
        D, I = index.search(codes[:50], 5)
        out.append((D.astype(np.float32), I))
    same_knn(*out)


def test_pickle_keeps_class_and_composite_nprobe() -> None:
    index = qfaiss.index_factory(D_, "OPQ4,IVF16,PQ4")
    index.train(XB)
    index.add(XB)
    qfaiss.ParameterSpace().set_index_parameter(index, "nprobe", 16)
    back = pickle.loads(pickle.dumps(index))
    assert type(back) is qfaiss.IndexPreTransform
    assert qfaiss.extract_index_ivf(back).nprobe == 16
    np.testing.assert_array_equal(back.search(XQ, K)[1], index.search(XQ, K)[1])
