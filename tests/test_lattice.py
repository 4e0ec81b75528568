"""Lattice quantizers: Zn sphere codec against faiss, E8 properties (hypothesis), IndexLattice."""

from __future__ import annotations

import copy
import itertools
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import quanta
from _support import brute_force, simd_level
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from quanta.lattice import codes_to_int

# (d, r2) of the Spreading Vectors paper (16/32/64-bit settings) plus d=16/64 with small r2
PAPER_CASES = [
    (24, 3), (24, 10), (24, 79),
    (32, 3), (32, 8), (32, 36),
    (40, 2), (40, 7), (40, 24),
    (16, 4), (16, 21), (16, 200),
    (64, 2), (64, 3), (64, 5), (64, 8),
]  # fmt: skip


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def faiss() -> Iterator[Any]:
    f = pytest.importorskip("faiss")
    before = f.omp_get_max_threads()
    f.omp_set_num_threads(1)
    yield f
    f.omp_set_num_threads(before)


def faiss_encode(faiss: Any, codec: Any, x: np.ndarray) -> np.ndarray:
    codes = np.zeros(x.shape[0], dtype=np.uint64)
    codec.encode_multi(x.shape[0], faiss.swig_ptr(x), faiss.swig_ptr(codes))
    return codes


def faiss_decode(faiss: Any, codec: Any, codes: np.ndarray, d: int) -> np.ndarray:
    out = np.zeros((codes.shape[0], d), dtype=np.float32)
    codec.decode_multi(codes.shape[0], faiss.swig_ptr(codes), faiss.swig_ptr(out))
    return out


# ------------------------------------------------------------------------------------------
# Zn sphere codec


@pytest.mark.parametrize(("d", "r2"), PAPER_CASES)
def test_zn_counts_equal_faiss(faiss: Any, d: int, r2: int) -> None:
    ref = faiss.ZnSphereCodec(d, r2)
    c = quanta.ZnSphereCodec(d, r2)
    assert c.nv == ref.nv
    assert c.code_size == ref.code_size
    assert c.natom == ref.natom
    assert c.nbits == (ref.nv - 1).bit_length()


def test_zn_nbits_of_the_spec_table() -> None:
    want = {
        (16, 4): 15,
        (16, 21): 32,
        (16, 200): 55,
        (24, 3): 14,
        (24, 10): 32,
        (24, 79): 64,
        (32, 3): 16,
        (32, 8): 32,
        (32, 36): 64,
        (40, 2): 12,
        (40, 7): 32,
        (40, 24): 64,
    }
    for (d, r2), nb in want.items():
        assert quanta.ZnSphereCodec(d, r2).nbits == nb


@pytest.mark.parametrize(("d", "r2"), PAPER_CASES)
def test_zn_codes_identical_to_faiss(faiss: Any, d: int, r2: int) -> None:
    n = 10_000
    x = unit_rows(n, d, seed=d * 1000 + r2)
    ref = faiss.ZnSphereCodec(d, r2)
    c = quanta.ZnSphereCodec(d, r2)
    fcodes = faiss_encode(faiss, ref, x)
    qcodes = c.encode(x)
    assert qcodes.shape == (n, c.code_size) and qcodes.dtype == np.uint8
    qint = np.array(codes_to_int(qcodes), dtype=np.uint64)
    same = qint == fcodes
    # faiss scores atoms with its own float summation order: a different code is only allowed
    # where both points are equally close to x (a float near-tie), which random data never hits
    if not same.all():
        fdec = faiss_decode(faiss, ref, fcodes[~same], d) / np.float32(np.sqrt(r2))
        qdec = c.decode(qcodes[~same])
        ipf = (fdec.astype(np.float64) * x[~same]).sum(1)
        ipq = (qdec.astype(np.float64) * x[~same]).sum(1)
        np.testing.assert_allclose(ipq, ipf, rtol=0, atol=1e-6)
    assert same.mean() >= 0.999
    # decoding: faiss's integer points scaled to the unit sphere, bit for bit
    fdec = faiss_decode(faiss, ref, fcodes, d) / np.float32(np.sqrt(r2))
    fbytes = fcodes.astype("<u8").view(np.uint8).reshape(n, 8)[:, : c.code_size]
    np.testing.assert_array_equal(c.decode(np.ascontiguousarray(fbytes)), fdec)
    np.testing.assert_array_equal(c.quantize(x), c.decode(qcodes))


def test_zn_beyond_64_bits_roundtrip() -> None:
    c = quanta.ZnSphereCodec(48, 30)
    assert c.nbits > 64 and c.code_size > 8
    x = unit_rows(2000, 48, seed=1)
    codes = c.encode(x)
    dec = c.decode(codes)
    np.testing.assert_allclose(np.linalg.norm(dec, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(c.encode(dec), codes)
    assert max(codes_to_int(codes)) < c.nv
    top = np.frombuffer((c.nv - 1).to_bytes(c.code_size, "little"), dtype=np.uint8)
    np.testing.assert_array_equal(c.encode(c.decode(top)), top[None])
    bad = np.frombuffer(c.nv.to_bytes(c.code_size, "little"), dtype=np.uint8)
    with pytest.raises(quanta.InvalidArgumentError, match="nv"):
        c.decode(bad)


def test_zn_small_codec_is_a_bijection_onto_the_sphere() -> None:
    d, r2 = 5, 6
    c = quanta.ZnSphereCodec(d, r2)
    pts = [p for p in itertools.product(range(-2, 3), repeat=d) if sum(v * v for v in p) == r2]
    assert c.nv == len(pts)
    codes = np.array([list(v.to_bytes(c.code_size, "little")) for v in range(c.nv)], np.uint8)
    dec = c.decode(codes) * np.sqrt(r2)
    ints = np.rint(dec).astype(int)
    assert {tuple(p) for p in ints} == set(pts)
    np.testing.assert_array_equal(c.encode(dec), codes)
    # encode = nearest point = max inner product over the whole sphere
    x = unit_rows(500, d, seed=2)
    ip = x @ (np.array(pts, dtype=np.float64).T / np.sqrt(r2))
    got = (c.quantize(x).astype(np.float64) * x).sum(1)
    np.testing.assert_allclose(got, ip.max(1), atol=1e-6)


def test_zn_simd_levels_agree() -> None:
    c = quanta.ZnSphereCodec(24, 79)
    x = unit_rows(3000, 24, seed=3)
    ref = c.encode(x)
    for lvl in quanta.available_simd_levels():
        with simd_level(lvl):
            np.testing.assert_array_equal(c.encode(x), ref)


def test_zn_errors() -> None:
    with pytest.raises(quanta.InvalidArgumentError, match="r2"):
        quanta.ZnSphereCodec(128, 400)  # more than 2^128 points
    with pytest.raises(quanta.InvalidArgumentError, match="r2"):
        quanta.ZnSphereCodec(2, 3)  # 3 is not a sum of two squares
    with pytest.raises(quanta.InvalidArgumentError, match="d"):
        quanta.ZnSphereCodec(0, 3)
    with pytest.raises(quanta.DTypeError):
        quanta.ZnSphereCodec(8.0, 3)  # type: ignore[arg-type]
    c = quanta.ZnSphereCodec(8, 3)
    x = unit_rows(4, 8, seed=0)
    x[2, 3] = np.nan
    with pytest.raises(quanta.InvalidArgumentError, match="x"):
        c.encode(x)
    with pytest.raises(quanta.ShapeError, match="x"):
        c.encode(np.zeros((3, 7), np.float32))
    with pytest.raises(quanta.DTypeError, match="codes"):
        c.decode(np.zeros((3, c.code_size), np.int64))
    with pytest.raises(quanta.ShapeError, match="code_size"):
        c.decode(np.zeros((3, c.code_size + 1), np.uint8))
    with pytest.raises(quanta.InvalidArgumentError, match="row 1"):
        c.decode(np.array([[0] * c.code_size, [255] * c.code_size], np.uint8))
    # the raw extension checks too
    with pytest.raises(quanta.DTypeError):
        c._codec.encode(x.astype(np.float64))


# ------------------------------------------------------------------------------------------
# E8 lattice (properties)

ROOTS = quanta.E8ShellCodec(1).points().astype(np.float64) / 2.0
finite = st.floats(-40, 40, allow_nan=False, width=32)


def is_e8(y: np.ndarray) -> bool:
    z = y * 2
    if not np.array_equal(z, np.rint(z)):
        return False
    z = z.astype(np.int64)
    par = z % 2
    return bool((par == par[:, :1]).all() and (z.sum(1) % 4 == 0).all())


@given(hnp.arrays(np.float32, st.sampled_from([(1, 8), (3, 16)]), elements=finite))
def test_e8_nearest_is_a_closest_lattice_point(x: np.ndarray) -> None:
    lat = quanta.E8Lattice()
    y = lat.nearest(x)
    blocks = y.reshape(-1, 8).astype(np.float64)
    xb = x.reshape(-1, 8).astype(np.float64)
    assert is_e8(blocks)
    d0 = ((xb - blocks) ** 2).sum(1)
    # no lattice point in the neighbouring shell y + root is closer (roots = Voronoi-relevant)
    for b in range(blocks.shape[0]):
        nb = blocks[b] + ROOTS
        assert (((xb[b] - nb) ** 2).sum(1) >= d0[b] - 1e-9).all()
    np.testing.assert_array_equal(lat.nearest(y), y)


@given(
    hnp.arrays(np.int64, (4, 8), elements=st.integers(-20, 20)),
    st.booleans(),
    st.sampled_from([1.0, 0.5, 0.25, 2.0]),
)
def test_e8_decode_encode_identity_on_lattice_points(z: np.ndarray, half: bool, s: float) -> None:
    z[:, 0] += z.sum(1) % 2  # D8: even coordinate sum
    y = z.astype(np.float64) + (0.5 if half else 0.0)
    x = (y * s).astype(np.float32)
    lat = quanta.E8Lattice(s)
    codes = lat.encode(x)
    assert codes.dtype == np.int32
    np.testing.assert_array_equal(codes, (2 * y).astype(np.int32))
    np.testing.assert_array_equal(lat.decode(codes), x)
    np.testing.assert_array_equal(lat.nearest(x), x)


def test_e8_simd_levels_agree() -> None:
    x = np.random.default_rng(0).standard_normal((5000, 32)).astype(np.float32) * 3
    x[::7] = np.round(x[::7] * 2) / 2  # ties
    ref = quanta.E8Lattice(0.7).nearest(x)
    for lvl in quanta.available_simd_levels():
        with simd_level(lvl):
            np.testing.assert_array_equal(quanta.E8Lattice(0.7).nearest(x), ref)


def test_e8_errors() -> None:
    lat = quanta.E8Lattice()
    with pytest.raises(quanta.ShapeError, match="multiple of 8"):
        lat.nearest(np.zeros((2, 12), np.float32))
    with pytest.raises(quanta.ShapeError, match="multiple of 8"):
        lat._lat.nearest(np.zeros((2, 12), np.float32))
    with pytest.raises(quanta.InvalidArgumentError):
        lat.nearest(np.full((1, 8), np.inf, np.float32))
    with pytest.raises(quanta.InvalidArgumentError, match="too large"):
        lat.nearest(np.full((1, 8), 1e9, np.float32))
    with pytest.raises(quanta.InvalidArgumentError, match="scale"):
        quanta.E8Lattice(0.0)
    with pytest.raises(quanta.InvalidArgumentError, match="not an E8 point"):
        lat.decode(np.array([[1, 0, 0, 0, 0, 0, 0, 0]], np.int32))
    with pytest.raises(quanta.DTypeError):
        lat.decode(np.zeros((1, 8), np.int64))


# ------------------------------------------------------------------------------------------
# E8 shell codec


@pytest.mark.parametrize(("m", "size"), [(1, 240), (2, 2160), (3, 6720), (4, 17520)])
def test_e8_shell_sizes(m: int, size: int) -> None:
    c = quanta.E8ShellCodec(m)
    assert c.points_per_block == size and c.nv == size
    p = c.points()
    assert is_e8(p / 2.0)
    assert ((p.astype(np.int64) ** 2).sum(1) == 8 * m).all()


def test_e8_shell_union_and_bits() -> None:
    c = quanta.E8ShellCodec([1, 2], d=32)
    assert c.points_per_block == 2400
    assert c.nv == 2400**4 and c.nbits == (2400**4 - 1).bit_length()
    with pytest.raises(quanta.ShapeError, match="multiple of 8"):
        quanta.E8ShellCodec(1, d=12)
    with pytest.raises(quanta.InvalidArgumentError, match="128 bits"):
        quanta.E8ShellCodec(4, d=128)
    with pytest.raises(quanta.InvalidArgumentError, match="shells"):
        quanta.E8ShellCodec(9)


@given(st.integers(0, 2400**2 - 1))
def test_e8_shell_decode_encode_identity(code: int) -> None:
    c = quanta.E8ShellCodec([1, 2], d=16)
    b = np.frombuffer(code.to_bytes(c.code_size, "little"), dtype=np.uint8)
    v = c.decode(b)
    np.testing.assert_allclose(np.linalg.norm(v), 1.0, atol=1e-6)
    np.testing.assert_array_equal(c.encode(v), b[None])


def test_e8_shell_encode_is_brute_force_argmax() -> None:
    c = quanta.E8ShellCodec(2, d=16)
    x = unit_rows(300, 16, seed=4)
    pts = c.points().astype(np.float64)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    dec = c.quantize(x).astype(np.float64) * np.sqrt(2)
    for b in range(2):
        xb = x[:, 8 * b : 8 * b + 8].astype(np.float64)
        best = (xb @ pts.T).max(1)
        got = (xb * dec[:, 8 * b : 8 * b + 8]).sum(1)
        np.testing.assert_allclose(got, best, atol=1e-5)


# ------------------------------------------------------------------------------------------
# IndexLattice


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize(
    "make", [lambda: quanta.ZnSphereCodec(24, 10), lambda: quanta.E8ShellCodec([1, 2], d=24)]
)
def test_index_lattice_search_equals_brute_force_on_decoded(make: Any, metric: str) -> None:
    codec = make()
    xb = unit_rows(5000, 24, seed=5)
    xq = unit_rows(50, 24, seed=6)
    index = quanta.IndexLattice(codec, metric)
    index.add(xb)
    assert index.ntotal == len(index) == 5000
    dec = codec.decode(index.codes())
    D, ids = index.search(xq, 10)
    Dref, Iref = brute_force(dec, xq, 10, metric)
    np.testing.assert_allclose(D, Dref, atol=1e-5)
    # ids agree except within float near-ties
    mismatch = ids != Iref
    assert mismatch.mean() < 0.01
    np.testing.assert_array_equal(index.reconstruct(7), dec[7])
    # more results than codes: padded
    small = quanta.IndexLattice(codec, metric)
    small.add_codes(index.codes()[:3])
    D2, I2 = small.search(xq[:2], 5)
    assert (I2[:, 3:] == -1).all()
    assert np.isinf(D2[:, 3:]).all()


def test_index_lattice_threads_and_simd_do_not_change_results() -> None:
    from _support import num_threads

    codec = quanta.ZnSphereCodec(32, 8)
    xb = unit_rows(9000, 32, seed=7)
    xq = unit_rows(40, 32, seed=8)
    index = quanta.IndexLattice(codec)
    index.add(xb)
    ref = index.search(xq, 20)
    with num_threads(1):
        one = index.search(xq, 20)
    np.testing.assert_array_equal(one[1], ref[1])
    np.testing.assert_array_equal(one[0], ref[0])
    with simd_level("scalar"):
        sc = index.search(xq, 20)
    np.testing.assert_allclose(sc[0], ref[0], atol=1e-5)


def test_index_lattice_errors() -> None:
    index = quanta.IndexLattice(quanta.ZnSphereCodec(16, 4))
    with pytest.raises(quanta.DTypeError, match="codec"):
        quanta.IndexLattice(quanta.E8Lattice())  # type: ignore[arg-type]
    with pytest.raises(quanta.InvalidArgumentError, match="metric"):
        quanta.IndexLattice(quanta.ZnSphereCodec(16, 4), "cos")
    with pytest.raises(quanta.ShapeError):
        index.add(np.zeros((3, 8), np.float32))
    with pytest.raises(quanta.InvalidArgumentError, match="k"):
        index.search(np.zeros((1, 16), np.float32), 0)
    with pytest.raises(quanta.DTypeError, match="codes"):
        index.add_codes(np.zeros((1, 2), np.int8))
    with pytest.raises(quanta.InvalidArgumentError, match="nv"):
        index.add_codes(np.full((1, 2), 255, np.uint8))
    assert index.ntotal == 0


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize(
    ("codec", "metric"),
    [(lambda: quanta.ZnSphereCodec(16, 10), "ip"), (lambda: quanta.E8ShellCodec([1, 2], 16), "l2")],
)
def test_lattice_write_read_round_trip(tmp_path: Any, codec: Any, metric: str, mmap: bool) -> None:
    rng = np.random.default_rng(41)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    c = codec()
    idx = quanta.IndexLattice(c, metric)
    idx.add(x)
    path = tmp_path / "lattice.qnt"
    quanta.write_index(idx, path)
    assert quanta.io.read_index_kind(path) == "IndexLattice"
    back = quanta.read_index(path, mmap=mmap)
    assert isinstance(back, quanta.IndexLattice)
    assert back.is_mapped == mmap
    assert type(back.codec) is type(c)
    assert (back.d, back.metric, back.ntotal, back.code_size) == (16, metric, 500, idx.code_size)
    assert back.codec.nv == c.nv
    np.testing.assert_array_equal(back.codes(), idx.codes())
    q = rng.standard_normal((15, 16)).astype(np.float32)
    a, b = idx.search(q, 8), back.search(q, 8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    repr(back)
    back.add(x[:2])  # copy-on-write: the file is never modified
    assert back.ntotal == 502 and not back.is_mapped


def test_damaged_lattice_file_is_a_format_error(tmp_path: Any) -> None:
    rng = np.random.default_rng(42)
    idx = quanta.IndexLattice(quanta.E8ShellCodec(1, 8))
    idx.add(rng.standard_normal((20, 8)).astype(np.float32))
    path = tmp_path / "lattice.qnt"
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


def _ids_match_up_to_ties(D: np.ndarray, ids: np.ndarray, Dw: np.ndarray, Iw: np.ndarray) -> None:
    """Same distances (to float rounding: the tiles of a subset are laid out differently) and
    the same ids, except between entries whose distances are within that rounding."""
    np.testing.assert_allclose(D, Dw, atol=1e-5)
    for d_row, i_row, w_row in zip(Dw, ids, Iw):
        for j in np.flatnonzero(i_row != w_row):
            near = np.abs(d_row - d_row[j]) <= 1e-5
            assert i_row[j] in w_row[near] or near.sum() > 1, (j, i_row, w_row)


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize(
    "make", [lambda: quanta.ZnSphereCodec(24, 10), lambda: quanta.E8ShellCodec([1, 2], d=24)]
)
def test_index_lattice_filters_equal_search_of_the_allowed_subset(make: Any, metric: str) -> None:
    index = quanta.IndexLattice(make(), metric)
    index.add(unit_rows(6000, 24, seed=50))
    q = unit_rows(20, 24, seed=51)
    mask = np.random.default_rng(52).random(index.ntotal) < 0.2
    allowed = np.flatnonzero(mask).astype(np.int64)
    sub = quanta.IndexLattice(index.codec, metric)
    sub.add_codes(index.codes()[allowed])
    for k in (1, 10, 300):
        Dw, Iw = sub.search(q, k)
        Iw = np.where(Iw >= 0, allowed[np.maximum(Iw, 0)], -1)
        for f in (
            {"ids_allowed": allowed},
            {"ids_allowed": mask},
            {"ids_denied": np.flatnonzero(~mask).astype(np.int64)},
            {"ids_denied": ~mask},
        ):
            D, ids = index.search(q, k, **f)
            assert np.isin(ids, allowed).all()
            _ids_match_up_to_ties(D, ids, Dw, Iw)
    D, ids = index.search(q, 5, ids_allowed=allowed[:2])
    assert (ids[:, 2:] == -1).all() and np.isinf(D[:, 2:]).all()


def test_index_lattice_remove_ids_pickle_and_default_metric() -> None:
    codec = quanta.ZnSphereCodec(16, 10)
    index = quanta.IndexLattice(codec)
    assert index.metric == "l2"
    assert (index.nv, index.nbits, index.code_size) == (codec.nv, codec.nbits, codec.code_size)
    x = unit_rows(500, 16, seed=53)
    index.add(x)
    codes = index.codes()
    gone = np.array([1, 2, 499, 600], dtype=np.int64)
    assert index.remove_ids(gone) == 3
    keep = np.setdiff1d(np.arange(500), gone)
    np.testing.assert_array_equal(index.codes(), codes[keep])
    np.testing.assert_array_equal(index.reconstruct(1), codec.decode(codes[3])[0])
    q = unit_rows(7, 16, seed=54)
    want = index.search(q, 9)
    for back in (pickle.loads(pickle.dumps(index)), copy.deepcopy(index)):
        assert type(back) is quanta.IndexLattice and type(back.codec) is quanta.ZnSphereCodec
        assert (back.metric, back.ntotal, back.codec.r2) == ("l2", 497, 10)
        for a, b in zip(back.search(q, 9), want):
            np.testing.assert_array_equal(a, b)
    # range search = the k = ntotal search cut at the radius
    D, ids = index.search(q, index.ntotal)
    lims, Dr, Ir = index.range_search(q, 1.0)
    for i in range(len(q)):
        np.testing.assert_array_equal(Ir[lims[i] : lims[i + 1]], ids[i][D[i] < 1.0])
        np.testing.assert_array_equal(Dr[lims[i] : lims[i + 1]], D[i][D[i] < 1.0])
    index.train(x)  # a no-op that checks x
    with pytest.raises(quanta.ShapeError):
        index.train(x[:, :8])
