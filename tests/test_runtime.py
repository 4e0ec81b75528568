"""Runtime controls (SIMD level, threads), packaging, datasets, fork safety and Ctrl-C."""

from __future__ import annotations

import importlib.metadata
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import quanta
from _support import brute_force, num_threads, simd_level
from quanta import _core

PKG = Path(quanta.__file__).resolve().parent


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


# ---------------------------------------------------------------------------------------------
# SIMD level


def test_simd_level_is_available() -> None:
    levels = quanta.available_simd_levels()
    assert levels[0] == "scalar"
    assert len(set(levels)) == len(levels)
    assert quanta.simd_level() in levels
    assert _core.detected_simd_level() == levels[-1]  # available: lowest first, up to the best


def test_env_quanta_simd_respected() -> None:
    env = os.environ.get("QUANTA_SIMD")
    if not env:
        pytest.skip("QUANTA_SIMD not set in this run")
    want = env.strip().lower()
    if want not in quanta.available_simd_levels():  # unknown/unsupported: warned and ignored
        want = _core.detected_simd_level()
    assert quanta.simd_level() == want


@pytest.mark.parametrize("level", ["scalar", "SCALAR"])
def test_env_quanta_simd_in_fresh_process(level: str) -> None:
    r = _run_python("import quanta; print(quanta.simd_level())", QUANTA_SIMD=level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "scalar"


def test_env_quanta_simd_bad_value_is_ignored_with_a_message() -> None:
    r = _run_python(
        "import quanta; print(quanta.simd_level(), quanta._core.detected_simd_level())",
        QUANTA_SIMD="sse9",
    )
    assert r.returncode == 0, r.stderr
    level, detected = r.stdout.split()
    assert level == detected
    assert "sse9" in r.stderr


def test_set_simd_level_round_trip() -> None:
    before = quanta.simd_level()
    for level in quanta.available_simd_levels():
        with simd_level(level):
            assert quanta.simd_level() == level
        assert quanta.simd_level() == before


def test_kernels_agree_across_simd_levels() -> None:
    """Float data (not integer): every level within float32 rounding of the others."""
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((777, 67)).astype(np.float32)  # odd d: every SIMD tail path
    xq = rng.standard_normal((33, 67)).astype(np.float32)
    out = {}
    for level in quanta.available_simd_levels():
        with simd_level(level):
            index = quanta.IndexFlatL2(67)
            index.add(xb)
            out[level] = index.search(xq, 10)
    Dref, _ = brute_force(xb, xq, 10)
    for level, (D, ids) in out.items():
        np.testing.assert_allclose(D, Dref, rtol=1e-4, atol=1e-3, err_msg=level)
        assert (ids == out["scalar"][1]).mean() > 0.99, level


# ---------------------------------------------------------------------------------------------
# threads


def test_num_threads_round_trip() -> None:
    before = quanta.get_num_threads()
    assert isinstance(before, int) and before >= 1
    for n in (1, 3, 2):
        with num_threads(n):
            assert quanta.get_num_threads() == n
            index = quanta.IndexFlatL2(4)
            index.add(np.eye(4, dtype=np.float32))
            assert index.search(np.eye(4, dtype=np.float32), 1)[1].ravel().tolist() == [0, 1, 2, 3]
    assert quanta.get_num_threads() == before


def test_env_quanta_num_threads() -> None:
    r = _run_python("import quanta; print(quanta.get_num_threads())", QUANTA_NUM_THREADS="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"


# ---------------------------------------------------------------------------------------------
# packaging


def test_import_does_not_import_torch(tmp_path: Path) -> None:
    # an importable stand-in torch makes this meaningful even where torch is not installed
    # (a guarded ``try: import torch`` would succeed and leave it in sys.modules)
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    code = "import quanta, sys; assert 'torch' not in sys.modules, 'torch imported'"
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    r = _run_python(code, PYTHONPATH=path)
    assert r.returncode == 0, r.stderr
    check = _run_python("import torch; print(torch.__file__)", PYTHONPATH=path)
    assert str(tmp_path) in check.stdout  # the stand-in really shadows any real torch
    r = _run_python("import quanta, sys; assert 'torch' not in sys.modules")
    assert r.returncode == 0, r.stderr


def test_torch_names_resolve_lazily() -> None:
    pytest.importorskip("torch")
    import quanta.nn

    assert quanta.SpreadingVectors is quanta.nn.SpreadingVectors
    assert quanta.nn is importlib.import_module("quanta.nn")
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = quanta.no_such_name  # type: ignore[attr-defined]


def test_version() -> None:
    assert isinstance(quanta.__version__, str) and quanta.__version__
    assert quanta.__version__ == importlib.metadata.version("quanta")


def test_typing_files_shipped() -> None:
    assert (PKG / "py.typed").is_file()
    stub = PKG / "_core.pyi"
    assert stub.is_file()
    text = stub.read_text()
    for name in ("kmeans_train", "assign_nearest", "class IndexFlat", "set_simd_level"):
        assert name in text


def test_public_api_exported() -> None:
    for name in quanta.__all__:
        assert hasattr(quanta, name), name
    for name in ("KMeans", "IndexFlat", "IndexFlatL2", "IndexFlatIP", "datasets", "QuantaError"):
        assert name in quanta.__all__


# ---------------------------------------------------------------------------------------------
# datasets


def test_load_demo() -> None:
    ds = quanta.datasets.load_demo()
    assert ds.name == "sift_ngt5k"
    assert ds.base.shape == (4503, 128) and ds.base.dtype == np.float32
    assert ds.queries.shape == (500, 128) and ds.queries.dtype == np.float32
    assert ds.gt.shape == (500, 100) and ds.gt.dtype == np.int64
    assert ds.gt_dist.shape == (500, 100) and ds.gt_dist.dtype == np.float32
    assert ds.base.flags.c_contiguous and ds.queries.flags.c_contiguous
    assert ds.d == 128
    assert ds.base_labels is None and ds.query_labels is None
    assert ds.license_file.is_file() and ds.license_file.stat().st_size > 0
    assert ds.license_file.parent == PKG / "data"
    assert (ds.gt >= 0).all() and (ds.gt < 4503).all()
    assert (np.diff(ds.gt_dist, axis=1) >= 0).all()
    assert "sift_ngt5k" in repr(ds)


@pytest.mark.slow
@pytest.mark.parametrize("name", quanta.datasets.NAMES)
def test_shared_datasets_load(shared_data: Path, name: str) -> None:
    ds = quanta.datasets.load(name)
    assert ds.name == name
    nb, d = ds.base.shape
    nq = ds.queries.shape[0]
    assert ds.queries.shape == (nq, d) and ds.base.dtype == ds.queries.dtype == np.float32
    assert ds.gt.shape == ds.gt_dist.shape == (nq, 100)
    assert ds.gt.dtype == np.int64 and ds.gt_dist.dtype == np.float32
    assert (ds.gt >= 0).all() and (ds.gt < nb).all()
    assert ds.license_file.is_file()
    assert ds.license_file.parent == shared_data
    if "mnist" in name:
        assert ds.base_labels is not None and ds.query_labels is not None
        assert ds.base_labels.shape == (nb,) and ds.query_labels.shape == (nq,)
        assert set(np.unique(ds.base_labels)) <= set(range(10))
    # the stored ground truth is right for a few queries (the float64 oracle is exact: integers)
    Dref, Iref = brute_force(ds.base, ds.queries[:5], 100)
    np.testing.assert_array_equal(ds.gt_dist[:5], Dref)
    np.testing.assert_array_equal(ds.gt[:5], Iref)


@pytest.mark.slow
def test_shared_sift_ngt5k_equals_demo(shared_data: Path) -> None:
    a, b = quanta.datasets.load("sift_ngt5k"), quanta.datasets.load_demo()
    for field in ("base", "queries", "gt", "gt_dist"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_quanta_data_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = PKG / "data"
    for f in demo.iterdir():
        (tmp_path / f.name).symlink_to(f)
    monkeypatch.setenv("QUANTA_DATA", str(tmp_path))
    assert quanta.datasets.data_dir() == tmp_path
    ds = quanta.datasets.load("sift_ngt5k")
    assert ds.base.shape == (4503, 128)
    assert ds.license_file == tmp_path / "sift_ngt5k.LICENSE.txt"


# ---------------------------------------------------------------------------------------------
# fork safety


def _child_search(expected_ids: np.ndarray, nthreads: int) -> None:
    # runs in the forked child: the parent's pool threads do not exist here
    quanta.set_num_threads(nthreads)
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((2000, 16)).astype(np.float32)
    index = quanta.IndexFlatL2(16)
    index.add(xb)
    _, ids = index.search(xb[:50], 5)
    if not np.array_equal(ids, expected_ids):
        os._exit(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quanta.KMeans(16, 8, niter=3).fit(xb)
    os._exit(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork semantics tested on Linux")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() of a threaded process
@pytest.mark.parametrize("nthreads", [1, 2])
def test_fork_after_pool_use(nthreads: int) -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((2000, 16)).astype(np.float32)
    index = quanta.IndexFlatL2(16)
    index.add(xb)
    _, expected = index.search(xb[:50], 5)  # the pool is now running in the parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quanta.KMeans(16, 8, niter=3).fit(xb)

    proc = mp.get_context("fork").Process(target=_child_search, args=(expected, nthreads))
    proc.start()
    proc.join(60)
    if proc.is_alive():
        proc.kill()
        proc.join()
        pytest.fail("forked child hung (thread pool inherited from the parent?)")
    assert proc.exitcode == 0
    # the parent's pool still works
    _, again = index.search(xb[:50], 5)
    np.testing.assert_array_equal(again, expected)


# ---------------------------------------------------------------------------------------------
# Ctrl-C


def _sigint_after(delay: float, done: threading.Event) -> threading.Timer:
    def fire() -> None:
        if not done.is_set():  # never interrupt pytest itself if the call already returned
            os.kill(os.getpid(), signal.SIGINT)

    t = threading.Timer(delay, fire)
    t.start()
    return t


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill")
def test_keyboard_interrupt_stops_kmeans() -> None:
    x = np.random.default_rng(0).standard_normal((200_000, 64), dtype=np.float32)
    km = quanta.KMeans(64, 1024, niter=200)
    done = threading.Event()
    timer = _sigint_after(0.5, done)
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            km.fit(x)
    finally:
        done.set()
        timer.cancel()
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"KeyboardInterrupt took {elapsed:.1f}s"
    assert km.centroids is None  # nothing half-trained is left behind
    # the library is usable right after
    small = quanta.KMeans(64, 4, niter=2).fit(x[:1000])
    assert small.centroids is not None and small.centroids.shape == (4, 64)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT via os.kill")
def test_keyboard_interrupt_stops_search() -> None:
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((100_000, 64), dtype=np.float32)
    index = quanta.IndexFlatL2(64)
    index.add(xb)
    queries = rng.standard_normal((100_000, 64), dtype=np.float32)
    done = threading.Event()
    timer = _sigint_after(0.3, done)
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            index.search(queries, 10)
    finally:
        done.set()
        timer.cancel()
    assert time.perf_counter() - t0 < 5.0
    _, ids = index.search(xb[:3], 1)
    assert ids.ravel().tolist() == [0, 1, 2]
