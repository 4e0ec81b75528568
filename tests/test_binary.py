"""Binary codes: packing, sign/LSH/ITQ encoders and IndexBinaryFlat against numpy and faiss."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
import quanta
from _support import assert_knn_equivalent, simd_level
from hypothesis import given
from hypothesis import strategies as st
from quanta import _core

PAD = 2**31 - 1
WIDTHS = [8, 16, 24, 64, 72, 128, 256, 512]


def hamming_matrix(q: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(nq, n)`` Hamming distances by unpacking bits (independent of the Rust kernels)."""
    qb = np.unpackbits(q, axis=1).astype(np.int32)
    bb = np.unpackbits(b, axis=1).astype(np.int32)
    return (qb[:, None, :] != bb[None, :, :]).sum(axis=2)


def brute_knn(q: np.ndarray, b: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple:
    dist = hamming_matrix(q, b)
    ids = np.arange(b.shape[0]) if ids is None else ids
    nq = q.shape[0]
    D = np.full((nq, k), PAD, dtype=np.int32)
    Ires = np.full((nq, k), -1, dtype=np.int64)
    for i in range(nq):
        order = np.lexsort((ids, dist[i]))[:k]  # (distance, id)
        D[i, : order.size] = dist[i, order]
        Ires[i, : order.size] = ids[order]
    return D, Ires


def tie_codes(rng: np.random.Generator, n: int, cs: int, variety: int) -> np.ndarray:
    """Codes drawn from a few byte values: many exactly tied distances."""
    vals = rng.integers(0, 256, size=variety, dtype=np.uint8)
    return vals[rng.integers(0, variety, size=(n, cs))]


@st.composite
def search_cases(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    nbits = draw(st.sampled_from(WIDTHS))
    n = draw(st.integers(1, 400))
    nq = draw(st.integers(1, 12))
    k = draw(st.integers(1, n + 3))
    variety = draw(st.sampled_from([2, 4, 256]))
    seed = draw(st.integers(0, 2**32 - 1))
    return nbits, n, nq, k, variety, seed


@given(case=search_cases())
def test_search_matches_numpy_brute_force(case: tuple) -> None:
    nbits, n, nq, k, variety, seed = case
    rng = np.random.default_rng(seed)
    cs = nbits // 8
    xb, xq = tie_codes(rng, n, cs, variety), tie_codes(rng, nq, cs, variety)
    xq[: min(nq, n) // 2] = xb[: min(nq, n) // 2]  # exact matches: distance 0
    index = quanta.IndexBinaryFlat(nbits)
    index.add(xb)
    Dref, Iref = brute_knn(xq, xb, k)
    for level in quanta.available_simd_levels():
        with simd_level(level):
            D, Ires = index.search(xq, k)
        assert D.dtype == np.int32 and Ires.dtype == np.int64 and D.shape == (nq, k)
        np.testing.assert_array_equal(D, Dref, err_msg=level)
        np.testing.assert_array_equal(Ires, Iref, err_msg=level)


@given(case=search_cases(), radius=st.integers(0, 300))
def test_range_search_matches_numpy(case: tuple, radius: int) -> None:
    nbits, n, nq, _, variety, seed = case
    rng = np.random.default_rng(seed)
    cs = nbits // 8
    xb, xq = tie_codes(rng, n, cs, variety), tie_codes(rng, nq, cs, variety)
    index = quanta.IndexBinaryFlat(nbits)
    index.add(xb)
    lims, D, Ires = index.range_search(xq, radius)
    assert lims.dtype == np.int64 and D.dtype == np.int32 and Ires.dtype == np.int64
    assert lims.shape == (nq + 1,) and lims[0] == 0 and lims[-1] == Ires.size == D.size
    dist = hamming_matrix(xq, xb)
    for i in range(nq):
        sel = np.flatnonzero(dist[i] < radius)  # faiss: strictly below the radius
        order = np.lexsort((sel, dist[i, sel]))
        np.testing.assert_array_equal(Ires[lims[i] : lims[i + 1]], sel[order])
        np.testing.assert_array_equal(D[lims[i] : lims[i + 1]], dist[i, sel[order]])


def test_block_and_thread_boundaries() -> None:
    """Sizes straddling cache blocks / parallel chunks, at 1 and 2 threads and every level."""
    rng = np.random.default_rng(5)
    for nbits, n in [(64, 4097 * 3), (256, 1025 * 5 + 3), (520, 3001)]:
        cs = nbits // 8
        xb, xq = tie_codes(rng, n, cs, 3), tie_codes(rng, 17, cs, 3)
        index = quanta.IndexBinaryFlat(nbits)
        index.add(xb)
        Dref, Iref = brute_knn(xq, xb, 50)
        for threads in (1, 2):
            old = quanta.get_num_threads()
            quanta.set_num_threads(threads)
            try:
                D, Ires = index.search(xq, 50)
            finally:
                quanta.set_num_threads(old)
            np.testing.assert_array_equal(D, Dref)
            np.testing.assert_array_equal(Ires, Iref)


def test_padding_and_empty() -> None:
    index = quanta.IndexBinaryFlat(16)
    D, Ires = index.search(np.zeros((2, 2), np.uint8), 3)
    assert (D == PAD).all() and (Ires == -1).all()
    index.add(np.array([[1, 0], [3, 0]], np.uint8))
    D, Ires = index.search(np.array([1, 0], np.uint8), 4)  # 1-D query = one query
    np.testing.assert_array_equal(D, [[0, 1, PAD, PAD]])
    np.testing.assert_array_equal(Ires, [[0, 1, -1, -1]])
    lims, D, Ires = index.range_search(np.zeros((0, 2), np.uint8), 3)
    assert lims.tolist() == [0] and D.size == Ires.size == 0
    assert index.range_search(np.array([[1, 0]], np.uint8), 0)[0].tolist() == [0, 0]


def test_ids_add_with_ids_remove_reset() -> None:
    rng = np.random.default_rng(1)
    xb = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    index = quanta.IndexBinaryFlat(64)
    index.add(xb[:20])
    index.add_with_ids(xb[20:40], np.arange(100, 120, dtype=np.int64))
    index.add(xb[40:])  # continues after the largest id
    ids = np.concatenate([np.arange(20), np.arange(100, 120), np.arange(120, 130)])
    np.testing.assert_array_equal(index.ids, ids)
    assert index.remove_ids(np.array([0, 105, 999], dtype=np.int64)) == 2
    keep = (ids != 0) & (ids != 105)
    np.testing.assert_array_equal(index.ids, ids[keep])
    np.testing.assert_array_equal(index.reconstruct_n(), xb[keep])
    D, Ires = index.search(xb[:5], 7)
    Dref, Iref = brute_knn(xb[:5], xb[keep], 7, ids[keep])
    np.testing.assert_array_equal(D, Dref)
    np.testing.assert_array_equal(Ires, Iref)
    # unsorted ids: ties still go to the lower id
    perm = rng.permutation(xb.shape[0]).astype(np.int64)
    j = quanta.IndexBinaryFlat(64)
    j.add_with_ids(tie_codes(rng, 50, 8, 2), perm)
    q = tie_codes(rng, 4, 8, 2)
    D, Ires = j.search(q, 10)
    Dref, Iref = brute_knn(q, j.reconstruct_n(), 10, perm)
    np.testing.assert_array_equal(Ires, Iref)
    index.reset()
    assert index.ntotal == 0 and len(index) == 0
    index.add(xb[:1])
    assert index.ids.tolist() == [0]


# ---------------------------------------------------------------------------------------------
# bad input


def test_codes_must_be_uint8() -> None:
    index = quanta.IndexBinaryFlat(64)
    for bad in (
        np.zeros((3, 8), np.int8),
        np.zeros((3, 8), np.int64),
        np.zeros((3, 8), np.float32),
        np.zeros((3, 8), bool),
    ):
        with pytest.raises(quanta.DTypeError, match="codes"):
            index.add(bad)
        with pytest.raises(quanta.DTypeError, match="queries"):
            index.search(bad, 1)
        with pytest.raises(quanta.DTypeError, match="codes"):
            _core.IndexBinaryFlat(64).add(bad)  # the Rust layer checks too
    with pytest.raises(quanta.DTypeError):
        index.add([[1, 2, 3, 4, 5, 6, 7, 8]])  # a list of Python ints is int64


@pytest.mark.parametrize("width", [0, 4, 7, 9, 16])
def test_wrong_width(width: int) -> None:
    index = quanta.IndexBinaryFlat(64)
    with pytest.raises(quanta.ShapeError, match=rf"\b{width}\b.*\b8\b"):
        index.add(np.zeros((2, width), np.uint8))
    with pytest.raises(quanta.ShapeError, match="queries"):
        index.search(np.zeros((2, width), np.uint8), 1)
    with pytest.raises(quanta.ShapeError, match="codes"):
        _core.IndexBinaryFlat(64).add(np.zeros((2, width), np.uint8))


def test_bad_arguments() -> None:
    index = quanta.IndexBinaryFlat(64)
    index.add(np.zeros((3, 8), np.uint8))
    q = np.zeros((1, 8), np.uint8)
    for k in (0, -1):
        with pytest.raises(quanta.InvalidArgumentError, match="k"):
            index.search(q, k)
        with pytest.raises(quanta.InvalidArgumentError, match="k"):
            index._index.search(q, k)
    with pytest.raises(quanta.DTypeError):
        index.search(q, 1.5)  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError, match="radius"):
        index.range_search(q, -1)
    with pytest.raises(quanta.InvalidArgumentError, match="radius"):
        index._index.range_search(q, -1)
    for nbits in (0, -8, 12, 1):
        with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
            quanta.IndexBinaryFlat(nbits)
        with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
            _core.IndexBinaryFlat(nbits)
    with pytest.raises(quanta.ShapeError, match="empty"):
        index.add(np.zeros((0, 8), np.uint8))
    with pytest.raises(quanta.ShapeError):
        index.add(np.zeros((2, 2, 8), np.uint8))
    with pytest.raises(quanta.ShapeError):
        index.add(np.zeros(8, np.uint8))  # 1-D only for queries
    with pytest.raises(quanta.DTypeError, match="ids"):
        index.add_with_ids(np.zeros((2, 8), np.uint8), np.array([1, 2], np.float64))
    with pytest.raises(quanta.DTypeError, match="ids"):
        index.add_with_ids(np.zeros((2, 8), np.uint8), np.array([1, 2**63], np.uint64))
    with pytest.raises(quanta.ShapeError, match="ids"):
        index.add_with_ids(np.zeros((2, 8), np.uint8), np.array([1], np.int64))
    with pytest.raises(quanta.InvalidArgumentError, match="ids"):
        index.add_with_ids(np.zeros((2, 8), np.uint8), np.array([1, -1], np.int64))
    assert index.ntotal == 3  # failed adds leave the index unchanged
    with pytest.raises(quanta.ShapeError, match="C-contiguous"):
        _core.IndexBinaryFlat(64).add(np.zeros((4, 16), np.uint8)[:, ::2])


def test_non_contiguous_codes_accepted_by_python_layer() -> None:
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (40, 16), dtype=np.uint8)
    sliced = big[::2, ::2]  # neither row- nor column-contiguous
    fortran = np.asfortranarray(big[:, :8])
    index = quanta.IndexBinaryFlat(64)
    index.add(sliced)
    index.add(fortran)
    np.testing.assert_array_equal(
        index.reconstruct_n(), np.concatenate([sliced, np.ascontiguousarray(fortran)])
    )
    D, _ = index.search(fortran[:3], 1)
    assert (D == 0).all()


def test_huge_k_is_an_error_not_a_crash() -> None:
    code = (
        "import numpy as np, quanta\n"
        "i = quanta.IndexBinaryFlat(64); i.add(np.zeros((4, 8), np.uint8))\n"
        "try:\n    i.search(np.zeros((1000, 8), np.uint8), 2**31 - 1)\n"
        "except (MemoryError, quanta.QuantaError):\n    print('survived')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "survived", r.stderr[-1000:]


# ---------------------------------------------------------------------------------------------
# packing and the sign encoder


def test_pack_bits_conventions() -> None:
    x = np.array([[1.0, -1.0, 0.0, 2.0, -0.0, 0.5, -3.0, 1e-30, 4.0, 0.0]], np.float32)
    expected = np.array([[0b1010_1001, 0b0000_0001]], np.uint8)  # LSB first, zero -> 0, padded
    np.testing.assert_array_equal(quanta.pack_bits(x), expected)
    np.testing.assert_array_equal(quanta.pack_bits(x > 0), expected)
    np.testing.assert_array_equal(quanta.pack_bits(np.sign(x).astype(np.int8)), expected)
    np.testing.assert_array_equal(quanta.SignEncoder(10).encode(x), expected)
    np.testing.assert_array_equal(quanta.pack_bits(x.tolist()), expected)
    signs = quanta.unpack_bits(expected, 10)
    np.testing.assert_array_equal(signs, np.where(x > 0, 1.0, -1.0))
    assert signs.dtype == np.float32
    np.testing.assert_array_equal(quanta.unpack_bits(expected, 10, signed=False), (x > 0) * 1)
    np.testing.assert_array_equal(quanta.SignEncoder(10).decode(expected), signs)
    # matches faiss's convention: numpy packbits little-endian
    np.testing.assert_array_equal(
        quanta.pack_bits(x), np.packbits(x > 0, axis=1, bitorder="little")
    )


@given(
    n=st.integers(1, 20),
    d=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_unpack_roundtrip_and_sign_encoder(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pm = rng.choice(np.array([-1.0, 1.0], np.float32), size=(n, d))
    codes = quanta.pack_bits(pm)
    assert codes.shape == (n, (d + 7) // 8) and codes.dtype == np.uint8
    np.testing.assert_array_equal(quanta.unpack_bits(codes, d), pm)
    np.testing.assert_array_equal(quanta.SignEncoder(d).encode(pm), codes)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[rng.random((n, d)) < 0.2] = 0.0
    np.testing.assert_array_equal(quanta.SignEncoder(d).encode(x), quanta.pack_bits(x))
    # Hamming of packed ±1 vectors: <a, b> = d - 2 H
    a, b = pm[:1], pm[-1:]
    h = hamming_matrix(quanta.pack_bits(a), quanta.pack_bits(b))[0, 0]
    assert float((a @ b.T)[0, 0]) == d - 2 * h


def test_pack_bits_bad_input() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="NaN"):
        quanta.pack_bits(np.array([[np.nan, 1.0]]))
    with pytest.raises(quanta.DTypeError):
        quanta.pack_bits(np.array([["a", "b"]]))
    with pytest.raises(quanta.ShapeError):
        quanta.pack_bits(np.float32(1.0))
    with pytest.raises(quanta.ShapeError):
        quanta.pack_bits(np.zeros((3, 0)))
    with pytest.raises(quanta.DTypeError, match="uint8"):
        quanta.unpack_bits(np.zeros((2, 2), np.int64))
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        quanta.unpack_bits(np.zeros((2, 2), np.uint8), 17)
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.SignEncoder(4).encode(np.array([[1.0, np.inf, 0.0, 1.0]]))
    with pytest.raises(quanta.ShapeError, match="code_size"):
        quanta.SignEncoder(10).decode(np.zeros((2, 1), np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="d"):
        quanta.SignEncoder(0)


def test_torch_tensors_accepted() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor([[1.0, -1.0, 0.0, 2.0, -0.5, 3.0, -1.0, 1.0, 1.0]], requires_grad=True)
    expected = np.packbits(x.detach().numpy() > 0, axis=1, bitorder="little")
    np.testing.assert_array_equal(quanta.pack_bits(x), expected)
    np.testing.assert_array_equal(quanta.pack_bits(torch.sign(x.detach())), expected)
    np.testing.assert_array_equal(quanta.pack_bits(x.detach() > 0), expected)
    codes = torch.from_numpy(expected)
    np.testing.assert_array_equal(quanta.unpack_bits(codes, 9), quanta.unpack_bits(expected, 9))


def test_import_quanta_does_not_import_torch() -> None:
    code = "import sys, quanta; quanta.pack_bits([[1, -1]]); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr[-1000:]


# ---------------------------------------------------------------------------------------------
# LSH


def _reference_bits(x: np.ndarray, w: np.ndarray, offset: np.ndarray) -> tuple:
    proj = x.astype(np.float64) @ w.astype(np.float64).T - offset
    return proj > 0, np.abs(proj)


def _assert_codes_match(codes: np.ndarray, bits: np.ndarray, margin: np.ndarray) -> None:
    """Bits equal the float64 reference except where the projection is within rounding of 0."""
    got = quanta.unpack_bits(codes, bits.shape[1], signed=False).astype(bool)
    differ = got != bits
    assert not (differ & (margin > 1e-3)).any(), int(differ.sum())


@pytest.mark.parametrize("projection", ["orthogonal", "gaussian"])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("thresholds", [False, True])
def test_lsh_matches_numpy_reference(projection: str, center: bool, thresholds: bool) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((500, 20)) + 2.0).astype(np.float32)
    lsh = quanta.LSH(
        20, 16, seed=9, projection=projection, center=center, train_thresholds=thresholds
    )
    assert lsh.is_trained == (not center and not thresholds)
    if not lsh.is_trained:
        with pytest.raises(quanta.NotTrainedError):
            lsh.encode(x)
    lsh.train(x)
    w = lsh.directions
    assert w.shape == (16, 20)
    if projection == "orthogonal":
        np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-5)
    offset = w.astype(np.float64) @ lsh.mean.astype(np.float64) + lsh.thresholds
    bits, margin = _reference_bits(x, w, offset)
    codes = lsh.encode(x)
    _assert_codes_match(codes, bits, margin)
    if thresholds:  # medians: each bit splits the training set in half
        ones = bits.mean(axis=0)
        assert np.abs(ones - 0.5).max() < 0.01
    if not center:
        np.testing.assert_array_equal(lsh.mean, 0)
    # same seed, same codes; another seed, other codes
    again = quanta.LSH(
        20, 16, seed=9, projection=projection, center=center, train_thresholds=thresholds
    ).train(x)
    np.testing.assert_array_equal(again.encode(x), codes)
    other = quanta.LSH(
        20, 16, seed=10, projection=projection, center=center, train_thresholds=thresholds
    ).train(x)
    assert not np.array_equal(other.encode(x), codes)


def test_lsh_angle_property() -> None:
    """P[bit differs] = angle / pi for sign-random-projection codes (no centring)."""
    a = np.zeros((1, 8), np.float32)
    b = np.zeros((1, 8), np.float32)
    a[0, 0] = 1.0
    b[0, :2] = [np.cos(np.pi / 4), np.sin(np.pi / 4)]
    lsh = quanta.LSH(8, 8192, seed=1, projection="gaussian", center=False)
    h = hamming_matrix(lsh.encode(a), lsh.encode(b))[0, 0]
    assert abs(h / 8192 - 0.25) < 0.02


def test_lsh_bad_arguments() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        quanta.LSH(8, 9, projection="orthogonal")
    assert quanta.LSH(8, 9).projection == "gaussian"  # auto
    with pytest.raises(quanta.InvalidArgumentError, match="projection"):
        quanta.LSH(8, 4, projection="rotation")
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        quanta.LSH(8, 0)
    with pytest.raises(quanta.InvalidArgumentError, match="seed"):
        quanta.LSH(8, 4, seed=-1)
    lsh = quanta.LSH(8, 4)
    with pytest.raises(quanta.ShapeError, match=r"\b7\b.*\b8\b"):
        lsh.train(np.zeros((5, 7), np.float32))
    with pytest.raises(quanta.InvalidArgumentError):
        lsh.train(np.full((5, 8), np.nan, np.float32))


# ---------------------------------------------------------------------------------------------
# ITQ


def _correlated(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    basis = rng.standard_normal((d, d))
    scales = np.geomspace(10.0, 0.1, d)
    return ((rng.standard_normal((n, d)) * scales) @ basis + 3.0).astype(np.float32)


@pytest.mark.parametrize(("d", "nbits"), [(16, 8), (40, 16), (70, 32), (8, 8)])
def test_itq_loss_monotone_and_encode_reference(d: int, nbits: int) -> None:
    rng = np.random.default_rng(d)
    x = _correlated(rng, 3000, d)
    itq = quanta.ITQ(d, nbits, niter=30, seed=5)
    with pytest.raises(quanta.NotTrainedError):
        itq.encode(x)
    itq.train(x)
    loss = itq.losses
    assert loss.shape == (31,)
    assert np.all(np.diff(loss) <= 1e-9 * loss[0]), loss  # non-increasing
    assert loss[-1] < loss[0]
    ev = itq.eigenvalues
    assert np.all(np.diff(ev) <= 1e-9 * ev[0])
    # eigenvalues are the top of numpy's covariance spectrum
    cov = np.cov(x.astype(np.float64), rowvar=False, bias=True)
    np.testing.assert_allclose(ev, np.linalg.eigvalsh(cov)[::-1][:nbits], rtol=1e-6)
    np.testing.assert_allclose(itq.mean, x.astype(np.float64).mean(0), rtol=1e-5, atol=1e-5)
    w = itq.projection
    assert w.shape == (nbits, d)
    # rows of (P R)^T are orthonormal
    np.testing.assert_allclose(w @ w.T, np.eye(nbits), atol=1e-4)
    offset = w.astype(np.float64) @ itq.mean.astype(np.float64)
    bits, margin = _reference_bits(x, w, offset)
    _assert_codes_match(itq.encode(x), bits, margin)
    again = quanta.ITQ(d, nbits, niter=30, seed=5).train(x)
    np.testing.assert_array_equal(again.encode(x), itq.encode(x))


def test_itq_edge_cases() -> None:
    rng = np.random.default_rng(0)
    x = _correlated(rng, 10, 16)
    with pytest.warns(RuntimeWarning, match="rank-deficient"):
        itq = quanta.ITQ(16, 16, niter=5).train(x)
    assert np.all(np.diff(itq.losses) <= 1e-9 * itq.losses[0])
    assert quanta.ITQ(16, 8, niter=0).train(x).losses.shape == (1,)
    with pytest.raises(quanta.InvalidArgumentError, match="nbits"):
        quanta.ITQ(8, 9)
    with pytest.raises(quanta.InvalidArgumentError, match="niter"):
        quanta.ITQ(8, 4, niter=-1)
    with pytest.raises(quanta.ShapeError, match="empty"):
        quanta.ITQ(8, 4).train(np.zeros((0, 8), np.float32))
    with pytest.raises(quanta.InvalidArgumentError):
        quanta.ITQ(2, 1).train(np.array([[1.0, np.inf]], np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        const = quanta.ITQ(4, 2, niter=3).train(np.ones((50, 4), np.float32))
    assert const.encode(np.ones((2, 4), np.float32)).shape == (2, 1)


# ---------------------------------------------------------------------------------------------
# against faiss


@pytest.fixture(scope="module")
def faiss() -> Any:
    faiss = pytest.importorskip("faiss")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield faiss
    faiss.omp_set_num_threads(before)


def test_index_binary_flat_vs_faiss(faiss: Any) -> None:
    rng = np.random.default_rng(11)
    for nbits in (64, 128, 256, 512, 40):
        cs = nbits // 8
        xb, xq = tie_codes(rng, 3000, cs, 3), tie_codes(rng, 40, cs, 3)
        ref = faiss.IndexBinaryFlat(nbits)
        ref.add(xb)
        index = quanta.IndexBinaryFlat(nbits)
        index.add(xb)
        for k in (1, 10, 100, 3005):
            Dref, Iref = ref.search(xq, k)
            D, Ires = index.search(xq, k)
            assert D.dtype == Dref.dtype and Ires.dtype == Iref.dtype
            assert_knn_equivalent(D, Ires, Dref, Iref)
        radius = nbits // 3
        lims_f, Df, If = ref.range_search(xq, radius)
        lims, D, Ires = index.range_search(xq, radius)
        np.testing.assert_array_equal(lims, lims_f.astype(np.int64))
        for i in range(xq.shape[0]):
            a, b = slice(lims[i], lims[i + 1]), slice(lims_f[i], lims_f[i + 1])
            assert sorted(zip(D[a], Ires[a])) == sorted(zip(Df[b].astype(np.int32), If[b]))


def _one_recall(codes_b: np.ndarray, codes_q: np.ndarray, gt: np.ndarray, r: int) -> float:
    index = quanta.IndexBinaryFlat(8 * codes_b.shape[1])
    index.add(codes_b)
    _, Ires = index.search(codes_q, r)
    return quanta.metrics.recall_at(Ires, gt, r)


def _faiss_recall(faiss: Any, index: Any, ds: Any, r: int) -> float:
    index.train(ds.base)
    index.add(ds.base)
    _, Ires = index.search(ds.queries, r)
    return quanta.metrics.recall_at(Ires, ds.gt, r)


@pytest.mark.parametrize("nbits", [32, 64])
def test_lsh_recall_matches_faiss(faiss: Any, nbits: int) -> None:
    """Same method (random rotation + sign, no centring, no thresholds), different random draws:
    the mean 1-recall@100 over 5 seeds agrees within noise."""
    ds = quanta.datasets.load_demo()
    ours, theirs = [], []
    for seed in range(5):
        lsh = quanta.LSH(ds.d, nbits, seed=seed, projection="orthogonal", center=False)
        ours.append(_one_recall(lsh.encode(ds.base), lsh.encode(ds.queries), ds.gt, 100))
        ref = faiss.IndexLSH(ds.d, nbits, True, False)
        ref.rrot.init(seed + 1)  # a different rotation per run
        theirs.append(_faiss_recall(faiss, ref, ds, 100))
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.05, (ours, theirs)


@pytest.mark.parametrize("nbits", [32, 64])
def test_itq_recall_matches_faiss(faiss: Any, nbits: int) -> None:
    ds = quanta.datasets.load_demo()
    itq = quanta.ITQ(ds.d, nbits).train(ds.base)
    ours = _one_recall(itq.encode(ds.base), itq.encode(ds.queries), ds.gt, 100)
    theirs = _faiss_recall(faiss, faiss.index_factory(ds.d, f"ITQ{nbits},LSH"), ds, 100)
    assert ours > theirs - 0.05, (ours, theirs)
    # and ITQ beats plain LSH at the same code length
    lsh = quanta.LSH(ds.d, nbits, seed=0, center=False)
    plain = _one_recall(lsh.encode(ds.base), lsh.encode(ds.queries), ds.gt, 100)
    assert ours > plain, (ours, plain)


class _DLPackOnly:
    """Exposes only the DLPack protocol (as a GPU-less tensor library would)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._a.__dlpack_device__()


class _ArrayOnly:
    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._a


def test_dlpack_and_array_protocols() -> None:
    x = np.array([[1.0, -1.0, 0.0, 2.0]], np.float32)
    expected = quanta.pack_bits(x)
    np.testing.assert_array_equal(quanta.pack_bits(_DLPackOnly(x)), expected)
    np.testing.assert_array_equal(quanta.pack_bits(_ArrayOnly(x)), expected)
    np.testing.assert_array_equal(quanta.unpack_bits(_DLPackOnly(expected), 4), [[1, -1, -1, 1]])
    index = quanta.IndexBinaryFlat(8)
    index.add(_DLPackOnly(expected))
    assert index.search(_ArrayOnly(expected), 1)[0].tolist() == [[0]]


@pytest.mark.parametrize("mmap", [False, True])
def test_binary_write_read_round_trip(tmp_path: Any, mmap: bool) -> None:
    rng = np.random.default_rng(31)
    codes = rng.integers(0, 256, size=(200, 8), dtype=np.uint8)
    idx = quanta.IndexBinaryFlat(64)
    idx.add_with_ids(codes, rng.permutation(1000)[:200].astype(np.int64))
    path = tmp_path / "binary.qnt"
    quanta.write_index(idx, path)
    assert quanta.io.read_index_kind(path) == "IndexBinaryFlat"
    back = quanta.read_index(path, mmap=mmap)
    assert isinstance(back, quanta.IndexBinaryFlat)
    assert (back.nbits, back.ntotal) == (64, 200)
    np.testing.assert_array_equal(back.ids, idx.ids)
    np.testing.assert_array_equal(back.reconstruct_n(), idx.reconstruct_n())
    q = rng.integers(0, 256, size=(20, 8), dtype=np.uint8)
    a, b = idx.search(q, 10), back.search(q, 10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_damaged_binary_file_is_a_format_error(tmp_path: Any) -> None:
    idx = quanta.IndexBinaryFlat(16)
    idx.add(np.arange(40, dtype=np.uint8).reshape(20, 2))
    path = tmp_path / "binary.qnt"
    quanta.write_index(idx, path)
    data = path.read_bytes()
    for cut in (0, 10, 64, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(quanta.FormatError):
            quanta.read_index(path)
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(quanta.FormatError):
        quanta.read_index(path)
