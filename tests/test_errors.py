"""Typed errors on bad input, and the numpy conversion policy of every public entry point."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import quanta
from quanta import _core

D = 8
N = 120


def _x(seed: int = 0, n: int = N, d: int = D) -> np.ndarray:
    """Integer-valued float32 data in 0..255: every dtype variant below holds it exactly."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, d)).astype(np.float32)


def _trained_index() -> quanta.IndexFlat:
    index = quanta.IndexFlatL2(D)
    index.add(_x())
    return index


def _trained_ivf(kind: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "flat":
            index: Any = quanta.IndexIVFFlat(D, 4)
            index.train(_x())
        else:
            cls = quanta.IndexIVFPQ if kind == "pq" else quanta.IndexIVFPQFastScan
            index = cls(D, 4, 2) if kind == "fs" else cls(D, 4, 2, nbits=4)
            index.train(_x(), niter=2, pq_niter=2)
        index.add(_x())
    return index


def _trained_pq(cls: type = quanta.IndexPQ) -> Any:
    index = cls(D, 2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index.train(_x(7, n=400))
    index.add(_x())
    return index


def _lattice() -> quanta.IndexLattice:
    index = quanta.IndexLattice(quanta.ZnSphereCodec(D, 6))
    index.add(_x())
    return index


def _sq() -> quanta.IndexScalarQuantizer:
    index = quanta.IndexScalarQuantizer(D, "lm3")
    index.add(_x())
    return index


def _trained_kmeans() -> quanta.KMeans:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quanta.KMeans(D, 3, niter=2).fit(_x())


# (name, call(x) -> Any, argument name in the message): every public entry point taking a matrix
ENTRY_POINTS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("KMeans.fit", lambda x: quanta.KMeans(D, 3, niter=2).fit(x), "x"),
    ("KMeans.assign", lambda x: _trained_kmeans().assign(x), "x"),
    ("IndexFlat.add", lambda x: quanta.IndexFlatL2(D).add(x), "x"),
    ("IndexFlatIP.add", lambda x: quanta.IndexFlatIP(D).add(x), "x"),
    ("IndexFlat.train", lambda x: quanta.IndexFlatL2(D).train(x), "x"),
    ("IndexFlat.search", lambda x: _trained_index().search(x, 3), "queries"),
    ("IndexPQ.train", lambda x: quanta.IndexPQ(D, 2, 4).train(x), "x"),
    ("IndexPQ.add", lambda x: _trained_pq().add(x), "x"),
    ("IndexPQ.search", lambda x: _trained_pq().search(x, 3), "queries"),
    ("IndexPQFastScan.train", lambda x: quanta.IndexPQFastScan(D, 2).train(x), "x"),
    ("IndexPQFastScan.add", lambda x: _trained_pq(quanta.IndexPQFastScan).add(x), "x"),
    (
        "IndexPQFastScan.search",
        lambda x: _trained_pq(quanta.IndexPQFastScan).search(x, 3, k_factor=2),
        "queries",
    ),
    ("IndexScalarQuantizer.train", lambda x: quanta.IndexScalarQuantizer(D).train(x), "x"),
    ("IndexScalarQuantizer.add", lambda x: quanta.IndexScalarQuantizer(D, "fp16").add(x), "x"),
    ("IndexScalarQuantizer.search", lambda x: _sq().search(x, 3), "queries"),
    ("IndexLattice.add", lambda x: quanta.IndexLattice(quanta.ZnSphereCodec(D, 6)).add(x), "x"),
    ("IndexLattice.search", lambda x: _lattice().search(x, 3), "queries"),
    ("IndexIVFFlat.train", lambda x: quanta.IndexIVFFlat(D, 4).train(x), "x"),
    ("IndexIVFFlat.add", lambda x: _trained_ivf("flat").add(x), "x"),
    ("IndexIVFFlat.search", lambda x: _trained_ivf("flat").search(x, 3, nprobe=2), "queries"),
    ("IndexIVFFlat.range_search", lambda x: _trained_ivf("flat").range_search(x, 1.0), "queries"),
    ("IndexIVFPQ.train", lambda x: quanta.IndexIVFPQ(D, 4, 2, nbits=4).train(x, niter=2), "x"),
    ("IndexIVFPQ.add", lambda x: _trained_ivf("pq").add_with_ids(x, np.arange(N)), "x"),
    ("IndexIVFPQ.search", lambda x: _trained_ivf("pq").search(x, 3), "queries"),
    ("IndexIVFPQFastScan.train", lambda x: quanta.IndexIVFPQFastScan(D, 4, 2).train(x), "x"),
    ("IndexIVFPQFastScan.search", lambda x: _trained_ivf("fs").search(x, 3), "queries"),
]
IDS = [e[0] for e in ENTRY_POINTS]


def _names(msg: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", msg) is not None


def _raises(exc: type[BaseException], call: Callable[[], Any]) -> BaseException:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            call()
    err = info.value
    assert isinstance(err, quanta.QuantaError), f"{type(err).__name__} is not a QuantaError: {err}"
    return err


# ---------------------------------------------------------------------------------------------
# the exception hierarchy itself


def test_hierarchy() -> None:
    assert issubclass(quanta.ShapeError, ValueError)
    assert issubclass(quanta.InvalidArgumentError, ValueError)
    assert issubclass(quanta.DTypeError, TypeError)
    assert issubclass(quanta.NotTrainedError, RuntimeError)
    assert issubclass(quanta.FormatError, OSError)
    assert issubclass(quanta.SimdUnavailableError, RuntimeError)
    for cls in (
        quanta.ShapeError,
        quanta.InvalidArgumentError,
        quanta.DTypeError,
        quanta.NotTrainedError,
        quanta.FormatError,
        quanta.SimdUnavailableError,
        quanta.datasets.DatasetNotFoundError,
    ):
        assert issubclass(cls, quanta.QuantaError)
    # the Rust extension raises these exact classes, not look-alikes
    with pytest.raises(quanta.InvalidArgumentError):
        _core.IndexFlat(0, "l2")


# ---------------------------------------------------------------------------------------------
# bad values


# IndexFlat.train is a no-op (as in faiss) that only checks shape and dtype: not listed here
COMPUTING = [e for e in ENTRY_POINTS if e[0] != "IndexFlat.train"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("name", "call", "arg"), COMPUTING, ids=[e[0] for e in COMPUTING])
def test_non_finite_rejected(name: str, call: Callable[[Any], Any], arg: str, bad: float) -> None:
    x = _x()
    x[N - 1, D - 1] = bad  # the very last element: the scan must not stop early
    err = _raises(quanta.InvalidArgumentError, lambda: call(x))
    assert isinstance(err, ValueError)
    assert _names(str(err), arg), str(err)
    assert "row 119" in str(err) and "column 7" in str(err), str(err)
    x = _x()
    x[0, 0] = bad
    _raises(quanta.InvalidArgumentError, lambda: call(x))


def test_float64_overflowing_float32_rejected() -> None:
    """1e39 is finite in float64 but inf once converted: rejected, never stored as inf."""
    x = _x().astype(np.float64)
    x[5, 5] = 1e39
    index = quanta.IndexFlatL2(D)
    _raises(quanta.InvalidArgumentError, lambda: index.add(x))
    assert index.ntotal == 0


def test_non_finite_add_is_atomic() -> None:
    index = quanta.IndexFlatL2(D)
    index.add(_x(1, n=5))
    x = _x()
    x[60, 0] = np.nan
    _raises(quanta.InvalidArgumentError, lambda: index.add(x))
    assert index.ntotal == 5


def test_non_finite_weights_rejected() -> None:
    w = np.ones(N)
    w[3] = np.nan
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.KMeans(D, 2).fit(_x(), weights=w))
    assert _names(str(err), "weights")


def test_bad_weights() -> None:
    km = quanta.KMeans(D, 2)
    err = _raises(quanta.ShapeError, lambda: km.fit(_x(), weights=np.ones(N - 1)))
    assert "weights" in str(err) and str(N - 1) in str(err) and str(N) in str(err)
    _raises(quanta.ShapeError, lambda: km.fit(_x(), weights=np.ones((N, 1))))
    _raises(quanta.DTypeError, lambda: km.fit(_x(), weights=np.array(["a"] * N)))
    _raises(quanta.InvalidArgumentError, lambda: km.fit(_x(), weights=-np.ones(N)))
    _raises(quanta.InvalidArgumentError, lambda: km.fit(_x(), weights=np.zeros(N)))


# ---------------------------------------------------------------------------------------------
# bad shapes


@pytest.mark.parametrize(("name", "call", "arg"), ENTRY_POINTS, ids=IDS)
def test_three_d_rejected(name: str, call: Callable[[Any], Any], arg: str) -> None:
    err = _raises(quanta.ShapeError, lambda: call(_x().reshape(4, N // 4, D)))
    assert isinstance(err, ValueError) and _names(str(err), arg), str(err)


# a 1-D query batch is one query
_QUERIES = ("KMeans.assign", *(n for n in IDS if n.endswith("search")))


@pytest.mark.parametrize(
    ("name", "call", "arg"),
    [e for e in ENTRY_POINTS if e[0] not in _QUERIES],
    ids=[n for n in IDS if n not in _QUERIES],
)
def test_one_d_rejected_outside_queries(name: str, call: Callable[[Any], Any], arg: str) -> None:
    err = _raises(quanta.ShapeError, lambda: call(_x()[0]))
    assert _names(str(err), arg), str(err)


@pytest.mark.parametrize("bad_d", [D - 3, D + 1])
@pytest.mark.parametrize(("name", "call", "arg"), ENTRY_POINTS, ids=IDS)
def test_dimension_mismatch(name: str, call: Callable[[Any], Any], arg: str, bad_d: int) -> None:
    x = _x(d=bad_d)
    err = _raises(quanta.ShapeError, lambda: call(x))
    msg = str(err)
    assert _names(msg, arg), msg
    assert re.search(rf"\b{bad_d}\b", msg) and re.search(rf"\b{D}\b", msg), msg


# an empty query batch and an empty add are no-ops for every index (faiss behaviour; one policy
# since the Index protocol), so they are not in the "empty is rejected" list
_EMPTY_OK = tuple(n for n in IDS if n.startswith("Index") and not n.endswith(".train"))


@pytest.mark.parametrize(
    ("name", "call", "arg"),
    [e for e in ENTRY_POINTS if e[0] not in _EMPTY_OK],
    ids=[n for n in IDS if n not in _EMPTY_OK],
)
def test_empty_rejected(name: str, call: Callable[[Any], Any], arg: str) -> None:
    err = _raises(quanta.ShapeError, lambda: call(np.zeros((0, D), dtype=np.float32)))
    assert _names(str(err), arg), str(err)


@pytest.mark.parametrize(("name", "call", "arg"), ENTRY_POINTS, ids=IDS)
def test_zero_columns_rejected(name: str, call: Callable[[Any], Any], arg: str) -> None:
    _raises(quanta.ShapeError, lambda: call(np.zeros((3, 0), dtype=np.float32)))


# ---------------------------------------------------------------------------------------------
# bad dtypes


@pytest.mark.parametrize(
    "bad",
    [
        np.array([["a"] * D] * 4),
        np.array([[object()] * D] * 4, dtype=object),
        np.ones((4, D), dtype=np.complex64),
        np.array([["1.5"] * D] * 4),
    ],
    ids=["str", "object", "complex", "numeric-strings"],
)
@pytest.mark.parametrize(("name", "call", "arg"), ENTRY_POINTS, ids=IDS)
def test_wrong_dtype(name: str, call: Callable[[Any], Any], arg: str, bad: np.ndarray) -> None:
    err = _raises(quanta.DTypeError, lambda: call(bad))
    assert isinstance(err, TypeError) and _names(str(err), arg), str(err)


@pytest.mark.parametrize(("name", "call", "arg"), ENTRY_POINTS, ids=IDS)
def test_not_an_array(name: str, call: Callable[[Any], Any], arg: str) -> None:
    for bad in (None, object(), "abc", 3.0):
        err = _raises(quanta.QuantaError, lambda bad=bad: call(bad))
        assert isinstance(err, (TypeError, ValueError)), repr(err)


def test_ragged_list() -> None:
    """A ragged nested list is bad input too: it must surface as a quanta error."""
    ragged = [[1.0] * D, [1.0] * (D - 1)]
    for _, call, _ in ENTRY_POINTS:
        _raises(quanta.QuantaError, lambda call=call: call(ragged))


# ---------------------------------------------------------------------------------------------
# bad scalars and options


@pytest.mark.parametrize("k", [0, -1, -(2**40)])
def test_bad_k(k: int) -> None:
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.KMeans(D, k))
    assert _names(str(err), "k")
    err = _raises(quanta.InvalidArgumentError, lambda: _trained_index().search(_x()[:2], k))
    assert _names(str(err), "k")


@pytest.mark.parametrize("k", [2.0, "3", None, True])
def test_k_wrong_type(k: Any) -> None:
    _raises(quanta.DTypeError, lambda: quanta.KMeans(D, k))
    _raises(quanta.DTypeError, lambda: _trained_index().search(_x()[:2], k))


def test_search_k_numpy_int_accepted() -> None:
    _, ids = _trained_index().search(_x()[:2], np.int64(3))
    assert ids.shape == (2, 3)


_SETUP = (
    "import warnings, numpy as np, quanta\n"
    "warnings.simplefilter('ignore')\n"
    "index = quanta.IndexFlatL2(4)\n"
    "index.add(np.ones((10, 4), dtype=np.float32))\n"
    "q = np.ones((10, 4), dtype=np.float32)\n"
)


@pytest.mark.parametrize(
    "call",
    [
        "index.search(q, 10**12)",
        "index.search(q, 2**40)",
        "index.search(q, 2**62)",
        "index.search(q, 2**64)",
        "quanta.KMeans(4, 2, niter=2**40).fit(q)",
        "quanta.set_num_threads(2**40); index.search(q, 1)",
    ],
    ids=["search-k-1e12", "search-k-2^40", "search-k-2^62", "search-k-2^64", "niter", "threads"],
)
def test_huge_sizes_do_not_crash_the_process(call: str) -> None:
    """A size far beyond what can be allocated must raise MemoryError or a quanta error: never
    abort the process, hang, leak a Rust panic (``PanicException`` is a BaseException) or a bare
    OverflowError from the int conversion.

    Run in a subprocess: an abort on allocation failure would take the test runner down.
    """
    code = (
        _SETUP + "try:\n"
        f"    {call}\n"
        "    print('survived')\n"
        "except (MemoryError, quanta.QuantaError):\n"
        "    print('survived')\n"
        "except BaseException as e:\n"
        "    print('wrong error:', type(e).__module__, type(e).__name__, e)\n"
    )
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call} hung for 10 s")
    assert r.returncode == 0 and r.stdout.strip() == "survived", (
        r.returncode,
        r.stdout,
        r.stderr[-1500:],
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: quanta.IndexFlat(2**64),
        lambda: _trained_index().reconstruct(2**64),
        lambda: _trained_index().reconstruct_n(0, 2**64),
        lambda: quanta.KMeans(D, 2, seed=2**64).fit(_x()),
    ],
    ids=["d", "reconstruct", "reconstruct_n", "seed"],
)
def test_out_of_range_ints_are_quanta_errors(call: Callable[[], Any]) -> None:
    err = _raises(quanta.QuantaError, call)
    assert isinstance(err, ValueError)


def test_k_greater_than_n_for_fit() -> None:
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.KMeans(D, N + 1).fit(_x()))
    assert str(N + 1) in str(err) and str(N) in str(err), str(err)


@pytest.mark.parametrize("param", ["d", "niter", "n_redo", "max_points_per_centroid"])
def test_kmeans_bad_positive_params(param: str) -> None:
    kwargs: dict[str, Any] = {"d": D, "k": 2, param: 0}
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.KMeans(**kwargs))
    assert _names(str(err), param)
    kwargs[param] = 1.5
    _raises(quanta.DTypeError, lambda: quanta.KMeans(**kwargs))


@pytest.mark.parametrize("seed", [-1, "x", 1.5])
def test_kmeans_bad_seed(seed: Any) -> None:
    err = _raises(quanta.QuantaError, lambda: quanta.KMeans(D, 2, seed=seed))
    assert _names(str(err), "seed")


@pytest.mark.parametrize("init", ["foo", "k-means++", "", "RANDOM"])
def test_bad_init(init: str) -> None:
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.KMeans(D, 2, init=init))
    assert isinstance(err, ValueError) and _names(str(err), "init")


@pytest.mark.parametrize("metric", ["cos", "L2", "", None, 2])
def test_bad_metric(metric: Any) -> None:
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.IndexFlat(D, metric))
    assert isinstance(err, ValueError) and _names(str(err), "metric")


@pytest.mark.parametrize("d", [0, -3])
def test_bad_index_d(d: int) -> None:
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.IndexFlat(d))
    assert _names(str(err), "d")
    _raises(quanta.DTypeError, lambda: quanta.IndexFlatL2(4.0))  # type: ignore[arg-type]


def test_assign_before_fit() -> None:
    err = _raises(quanta.NotTrainedError, lambda: quanta.KMeans(D, 2).assign(_x()))
    assert isinstance(err, RuntimeError) and "fit" in str(err)


def test_reconstruct_bad_ids() -> None:
    index = _trained_index()
    for bad in (N, N + 10, -1):
        err = _raises(quanta.InvalidArgumentError, lambda bad=bad: index.reconstruct(bad))
        assert str(bad) in str(err)
    _raises(quanta.InvalidArgumentError, lambda: index.reconstruct_n(N - 2, 5))
    _raises(quanta.InvalidArgumentError, lambda: index.reconstruct_n(-1, 2))


@pytest.mark.parametrize("bad", [None, 1.5])
def test_reconstruct_non_integer_id(bad: Any) -> None:
    """An id that is not an integer is a dtype error, not a silent int() truncation."""
    _raises(quanta.DTypeError, lambda: _trained_index().reconstruct(bad))


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_non_positive(n: int) -> None:
    before = quanta.get_num_threads()
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.set_num_threads(n))
    assert isinstance(err, ValueError)
    assert quanta.get_num_threads() == before


@pytest.mark.parametrize("n", [1.5, "2", True, None])
def test_set_num_threads_rejects_non_int(n: Any) -> None:
    _raises(quanta.DTypeError, lambda: quanta.set_num_threads(n))


@pytest.mark.parametrize("level", ["sse9", "", "avx-512", "neon9"])
def test_set_simd_level_unknown(level: str) -> None:
    before = quanta.simd_level()
    err = _raises(quanta.InvalidArgumentError, lambda: quanta.set_simd_level(level))
    assert isinstance(err, ValueError) and repr(level).strip("'") in str(err)
    assert quanta.simd_level() == before


def test_set_simd_level_non_string() -> None:
    for level in (3, None):
        _raises(quanta.QuantaError, lambda level=level: quanta.set_simd_level(level))


def test_set_simd_level_unavailable() -> None:
    missing = [lv for lv in ("avx2", "avx512") if lv not in quanta.available_simd_levels()]
    if not missing:
        pytest.skip("this CPU supports every x86 level quanta knows")
    before = quanta.simd_level()
    err = _raises(quanta.SimdUnavailableError, lambda: quanta.set_simd_level(missing[-1]))
    assert isinstance(err, RuntimeError)
    assert quanta.simd_level() == before


def test_dataset_unknown_name() -> None:
    err = _raises(quanta.QuantaError, lambda: quanta.datasets.load("no-such-set"))
    assert isinstance(err, ValueError) and "no-such-set" in str(err)


def test_dataset_missing_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing but data-less QUANTA_DATA does not count; a missing file is a typed error."""
    empty = tmp_path / "data"
    empty.mkdir()
    (empty / "README.md").write_text("empty\n")
    monkeypatch.setenv("QUANTA_DATA", str(empty))
    err = _raises(quanta.datasets.DatasetNotFoundError, lambda: quanta.datasets.load("mnist"))
    assert isinstance(err, FileNotFoundError) and "mnist" in str(err)


# ---------------------------------------------------------------------------------------------
# the conversion policy: every accepted layout gives the float32 C-contiguous result


def _variants(x: np.ndarray) -> dict[str, Any]:
    """Same values, different containers/layouts. ``x`` holds integers in 0..255."""
    wide = np.zeros((x.shape[0] * 2, x.shape[1] * 3), dtype=np.float32)
    wide[::2, ::3] = x
    return {
        "float64": x.astype(np.float64),
        "fortran": np.asfortranarray(x),
        "transposed": np.ascontiguousarray(x.T).T,
        "row-slice": wide[::2, ::3],
        "col-slice": np.ascontiguousarray(wide[::2])[:, ::3],
        "negative-stride": x[::-1][::-1],
        "int64": x.astype(np.int64),
        "int32": x.astype(np.int32),
        "uint8": x.astype(np.uint8),
        "float16": x.astype(np.float16) if np.abs(x).max() <= 2048 else x,
        "list": x.tolist(),
        "tuple": tuple(map(tuple, x.tolist())),
        "readonly": _readonly(x),
    }


def _readonly(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y.flags.writeable = False
    return y


VARIANT_NAMES = list(_variants(np.zeros((1, 1), dtype=np.float32)))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_index_accepts_layouts_and_dtypes(variant: str) -> None:
    xb, xq = _x(0), _x(1, n=17)
    ref = quanta.IndexFlatL2(D)
    ref.add(xb)
    Dref, Iref = ref.search(xq, 5)

    index = quanta.IndexFlatL2(D)
    index.add(_variants(xb)[variant])
    np.testing.assert_array_equal(index.reconstruct_n(), xb)
    Dv, Iv = index.search(_variants(xq)[variant], 5)
    np.testing.assert_array_equal(Dv, Dref)
    np.testing.assert_array_equal(Iv, Iref)
    # single-query 1-D form of the variant
    q1 = _variants(xq[:1])[variant]
    q1 = q1[0] if not isinstance(q1, np.ndarray) else q1.reshape(-1)
    D1, I1 = ref.search(q1, 5)
    np.testing.assert_array_equal(I1, Iref[:1])
    np.testing.assert_array_equal(D1, Dref[:1])


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_kmeans_accepts_layouts_and_dtypes(variant: str) -> None:
    x = _x(2, n=400)
    ref = quanta.KMeans(D, 4, niter=5, seed=3).fit(x)
    km = quanta.KMeans(D, 4, niter=5, seed=3).fit(_variants(x)[variant])
    np.testing.assert_array_equal(km.centroids, ref.centroids)
    np.testing.assert_array_equal(km.obj, ref.obj)
    Dv, Iv = km.assign(_variants(x[:50])[variant])
    Dr, Ir = ref.assign(x[:50])
    np.testing.assert_array_equal(Dv, Dr)
    np.testing.assert_array_equal(Iv, Ir)


def test_inputs_not_modified() -> None:
    x = _x(4, n=300)
    xf = np.asfortranarray(x.astype(np.float64))
    keep, keepf = x.copy(), xf.copy()
    index = quanta.IndexFlatIP(D)
    index.add(x)
    index.search(xf, 3)
    quanta.KMeans(D, 3, niter=3, spherical=True).fit(x, weights=np.ones(300))
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(xf, keepf)


def test_bool_data_accepted() -> None:
    x = _x() > 128
    index = quanta.IndexFlatL2(D)
    index.add(x)
    np.testing.assert_array_equal(index.reconstruct_n(), x.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# the Rust layer itself never casts or copies silently


def test_core_add_rejects_float64() -> None:
    idx = _core.IndexFlat(D, "l2")
    err = _raises(quanta.DTypeError, lambda: idx.add(_x().astype(np.float64)))
    assert isinstance(err, TypeError) and "float64" in str(err) and _names(str(err), "x")
    assert idx.ntotal == 0


@pytest.mark.parametrize(
    "make",
    [
        np.asfortranarray,
        lambda a: np.repeat(a, 2, axis=0)[::2],
        lambda a: np.repeat(a, 2, axis=1)[:, ::2],
        lambda a: np.ascontiguousarray(a.T).T,
    ],
    ids=["fortran", "row-slice", "col-slice", "transposed"],
)
def test_core_add_rejects_non_contiguous(make: Callable[[np.ndarray], np.ndarray]) -> None:
    x = make(_x())
    assert x.dtype == np.float32 and x.shape == (N, D) and not x.flags.c_contiguous
    idx = _core.IndexFlat(D, "l2")
    err = _raises(quanta.ShapeError, lambda: idx.add(x))
    assert "contiguous" in str(err)
    assert idx.ntotal == 0


@pytest.mark.parametrize(
    "bad",
    [_x().astype(np.int32), _x().tolist(), _x()[0], _x().astype(np.float16)],
    ids=["int32", "list", "1-D", "float16"],
)
def test_core_add_rejects_other_inputs(bad: Any) -> None:
    idx = _core.IndexFlat(D, "l2")
    _raises(quanta.DTypeError, lambda: idx.add(bad))
    assert idx.ntotal == 0


def test_core_search_kmeans_assign_reject_unconverted() -> None:
    x = _x()
    idx = _core.IndexFlat(D, "l2")
    idx.add(x)
    _raises(quanta.DTypeError, lambda: idx.search(x.astype(np.float64), 2))
    _raises(quanta.ShapeError, lambda: idx.search(np.asfortranarray(x), 2))
    _raises(quanta.DTypeError, lambda: _core.kmeans_train(x.astype(np.float64), 2))
    _raises(quanta.ShapeError, lambda: _core.kmeans_train(x[::2], 2))
    _raises(quanta.DTypeError, lambda: _core.assign_nearest(x.astype(np.float64), x[:2]))
    _raises(quanta.ShapeError, lambda: _core.assign_nearest(x, np.asfortranarray(x[:2])))
    _raises(quanta.ShapeError, lambda: _core.assign_nearest(x, x[:2, :3].copy()))
    w = np.ones(N, dtype=np.float64)
    _raises(quanta.DTypeError, lambda: _core.kmeans_train(x, 2, weights=w))
