"""quanta.write_index / quanta.read_index: round trips, mmap, atomic writes, damaged files."""

from __future__ import annotations

import os
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import quanta
from hypothesis import given
from hypothesis import strategies as st
from quanta import _core

METRICS = ["l2", "ip"]
D = 12


def _data(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def _index(metric: str, n: int = 300) -> quanta.IndexFlat:
    index = quanta.IndexFlat(D, metric)
    index.add(_data(n))
    return index


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_searches_identically(tmp_path: Path, metric: str, mmap: bool) -> None:
    index = _index(metric)
    path = tmp_path / "flat.qnt"
    quanta.write_index(index, path)
    assert quanta.io.read_index_kind(path) == "IndexFlat"
    back = quanta.read_index(path, mmap=mmap)
    assert type(back) is quanta.IndexFlat
    assert (back.d, back.metric, back.ntotal) == (D, metric, 300)
    assert back.is_mapped is mmap
    np.testing.assert_array_equal(back.reconstruct_n(), index.reconstruct_n())
    q = _data(17, seed=1)
    D0, I0 = index.search(q, 10)
    D1, I1 = back.search(q, 10)
    np.testing.assert_array_equal(D0, D1)
    np.testing.assert_array_equal(I0, I1)


@given(
    n=st.integers(0, 60),
    d=st.integers(1, 40),
    metric=st.sampled_from(METRICS),
    mmap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_any_shape(n: int, d: int, metric: str, mmap: bool, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    index = quanta.IndexFlat(d, metric)
    if n:
        index.add(x)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.qnt"
        quanta.write_index(index, path)
        back = quanta.read_index(path, mmap=mmap)
        assert (back.d, back.metric, back.ntotal) == (d, metric, n)
        np.testing.assert_array_equal(back.reconstruct_n(), x.reshape(n, d))
        del back  # unmap before the directory goes


def test_str_path_and_empty_index(tmp_path: Path) -> None:
    path = str(tmp_path / "empty.qnt")
    quanta.write_index(quanta.IndexFlatIP(3), path)
    back = quanta.read_index(path, True)
    assert (back.d, back.metric, back.ntotal) == (3, "ip", 0)
    D_, I_ = back.search(np.ones((2, 3), np.float32), 2)
    assert (I_ == -1).all() and np.isneginf(D_).all()


def test_overwrite_is_atomic_and_keeps_old_mapping_valid(tmp_path: Path) -> None:
    path = tmp_path / "x.qnt"
    quanta.write_index(_index("l2", 50), path)
    old = quanta.read_index(path, mmap=True)
    quanta.write_index(_index("ip", 20), path)
    # the mapped old index still reads the old data: the rewrite replaced the file by rename
    np.testing.assert_array_equal(old.reconstruct_n(), _index("l2", 50).reconstruct_n())
    assert quanta.read_index(path).ntotal == 20
    assert os.listdir(tmp_path) == ["x.qnt"]


def test_add_after_mmap_load_copies_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.qnt"
    quanta.write_index(_index("l2"), path)
    before = path.read_bytes()
    index = quanta.read_index(path, mmap=True)
    assert index.is_mapped
    extra = _data(5, seed=9)
    index.add(extra)
    assert not index.is_mapped
    assert index.ntotal == 305
    _, ids = index.search(extra, 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(300, 305))
    assert path.read_bytes() == before
    assert quanta.read_index(path).ntotal == 300
    again = quanta.read_index(path, mmap=True)
    again.reset()
    assert again.ntotal == 0 and not again.is_mapped
    assert path.read_bytes() == before


def test_write_into_missing_directory_raises_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "x.qnt"
    with pytest.raises(quanta.FormatError) as info:
        quanta.write_index(_index("l2"), target)
    assert isinstance(info.value, OSError)
    assert "x.qnt" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(quanta.FormatError):
        quanta.write_index(_index("l2"), tmp_path / "d")  # a directory is in the way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("mmap", [False, True])
def test_truncated_file_is_format_error(tmp_path: Path, mmap: bool) -> None:
    path = tmp_path / "t.qnt"
    quanta.write_index(_index("l2", 40), path)
    full = path.read_bytes()
    for cut in [0, 1, 7, 8, 63, 64, 100, len(full) // 2, len(full) - 1]:
        path.write_bytes(full[:cut])
        with pytest.raises(quanta.FormatError, match=r"t\.qnt") as info:
            quanta.read_index(path, mmap=mmap)
        assert "truncated" in str(info.value) or "empty file" in str(info.value)


@pytest.mark.parametrize("mmap", [False, True])
def test_modified_file_is_format_error(tmp_path: Path, mmap: bool) -> None:
    path = tmp_path / "c.qnt"
    quanta.write_index(_index("ip", 40), path)
    full = bytearray(path.read_bytes())
    rng = np.random.default_rng(3)
    for pos in [*range(0, 64, 5), *rng.integers(64, len(full), 40).tolist(), len(full) - 1]:
        damaged = bytearray(full)
        damaged[pos] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(quanta.FormatError, match=r"c\.qnt"):
            quanta.read_index(path, mmap=mmap)
    # a change of one float in the vectors payload is caught by its checksum
    path.write_bytes(bytes(full[:-4]) + np.float32(0.5).tobytes())
    with pytest.raises(quanta.FormatError, match=r"section 'vectors' is corrupted"):
        quanta.read_index(path, mmap=mmap)


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(quanta.FormatError, match="PNG image"):
        quanta.read_index(png)
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(quanta.FormatError, match=r"numpy \.npy"):
        quanta.read_index(npy, mmap=True)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(quanta.FormatError, match="not a quanta index file"):
        quanta.read_index(noise)
    with pytest.raises(quanta.FormatError, match=r"missing\.qnt") as info:
        quanta.read_index(tmp_path / "missing.qnt")
    assert isinstance(info.value, OSError) and isinstance(info.value, quanta.QuantaError)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(quanta.FormatError, match="is a directory"):
        quanta.read_index(tmp_path)


def test_newer_version_names_the_supported_one(tmp_path: Path) -> None:
    path = tmp_path / "v.qnt"
    quanta.write_index(_index("l2", 5), path)
    b = bytearray(path.read_bytes())
    b[8:10] = (2).to_bytes(2, "little")
    path.write_bytes(bytes(b))
    with pytest.raises(quanta.FormatError, match=r"version 2\.0.*reads version 1\.x"):
        quanta.read_index(path)


def test_unknown_kind_and_registry(tmp_path: Path) -> None:
    path = tmp_path / "k.qnt"
    quanta.write_index(_index("l2", 5), path)
    b = bytearray(path.read_bytes())
    # a kind tag this build has no reader for (patched in place: fix the header checksum)
    b[32:41] = b"IndexZZZZ"
    crc = zlib.crc32(bytes(b[:28]) + bytes(b[32:64]) + bytes(b[64 : 64 + 64 * 2]))
    b[28:32] = crc.to_bytes(4, "little")
    path.write_bytes(bytes(b))
    assert quanta.io.read_index_kind(path) == "IndexZZZZ"
    with pytest.raises(quanta.FormatError, match=r"kind 'IndexZZZZ'.*IndexFlat"):
        quanta.read_index(path)
    # a class registered for the kind is dispatched to
    seen: list[tuple[str, bool]] = []
    quanta.io.register_index_kind("IndexZZZZ", lambda p, m: seen.append((p, m)) or "loaded")
    try:
        assert quanta.read_index(path, mmap=True) == "loaded"
        assert seen == [(str(path), True)]
    finally:
        quanta.io._READERS.pop("IndexZZZZ")


def test_bad_arguments() -> None:
    with pytest.raises(quanta.DTypeError, match="path"):
        quanta.read_index(123)  # type: ignore[arg-type]
    with pytest.raises(quanta.DTypeError, match="path"):
        quanta.read_index(b"/tmp/x")  # type: ignore[arg-type]
    with pytest.raises(quanta.DTypeError, match="mmap"):
        quanta.read_index("x.qnt", mmap="yes")  # type: ignore[arg-type]
    with pytest.raises(quanta.DTypeError, match="not a quanta index"):
        quanta.write_index(object(), "x.qnt")
    with pytest.raises(quanta.DTypeError):
        quanta.io.register_index_kind("", lambda p, m: None)


def test_core_entry_points_accept_pathlike(tmp_path: Path) -> None:
    core = _core.IndexFlat(4, "l2")
    core.add(np.eye(4, dtype=np.float32))
    core.write(tmp_path / "core.qnt")
    back = _core.read_index(tmp_path / "core.qnt", mmap=True)
    assert isinstance(back, _core.IndexFlat) and back.ntotal == 4 and back.is_mapped
    assert _core.read_index_kind(str(tmp_path / "core.qnt")) == "IndexFlat"


def test_fastscan_k_factor_is_saved_with_the_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    idx = quanta.IndexPQFastScan(16, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx.train(x, niter=3)
    idx.add(x)
    idx.k_factor = 7
    path = tmp_path / "fs.qnt"
    quanta.write_index(idx, path)
    for mmap in (False, True):
        back = quanta.read_index(path, mmap=mmap)
        assert isinstance(back, quanta.IndexPQFastScan)
        assert back.k_factor == 7
        np.testing.assert_array_equal(back.search(x[:5], 3)[1], idx.search(x[:5], 3)[1])
    with pytest.raises(quanta.InvalidArgumentError, match="k_factor"):
        idx.k_factor = 0


def _pq_family(kind: str) -> quanta.Index:
    """A small filled index of each migrated code-index kind."""
    x = np.random.default_rng(8).standard_normal((800, 16)).astype(np.float32)
    idx: quanta.Index
    if kind == "IndexPQ":
        idx = quanta.IndexPQ(16, 4, 5)
    elif kind == "IndexPQFastScan":
        idx = quanta.IndexPQFastScan(16, 8)
    else:
        idx = quanta.IndexLattice(quanta.E8ShellCodec([1, 2], 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx.train(x)
    idx.add(x)
    return idx


@pytest.mark.parametrize("kind", ["IndexPQ", "IndexPQFastScan", "IndexLattice"])
def test_code_indexes_through_every_entry_point(tmp_path: Path, kind: str) -> None:
    idx = _pq_family(kind)
    q = np.random.default_rng(9).standard_normal((9, 16)).astype(np.float32)
    want = idx.search(q, 7)
    path = tmp_path / "i.qnt"
    quanta.write_index(idx, path)
    assert quanta.io.read_index_kind(path) == kind
    with open(tmp_path / "f.qnt", "wb") as f:
        quanta.write_index(idx, f)
    with open(tmp_path / "f.qnt", "rb") as f:
        from_file = quanta.read_index(f)
    loaded = [
        quanta.read_index(path),
        quanta.read_index(path, mmap=True),
        from_file,
        quanta.deserialize_index(quanta.serialize_index(idx)),
    ]
    for back in loaded:
        assert type(back) is type(idx) and back._index.kind == kind
        assert (back.d, back.metric, back.ntotal) == (idx.d, idx.metric, idx.ntotal)
        for a, b in zip(back.search(q, 7), want):
            np.testing.assert_array_equal(a, b)
    assert loaded[1].is_mapped and not loaded[0].is_mapped
    # the core entry point returns the core subclass of the kind
    core = _core.read_index(path)
    assert type(core).__name__ == kind and isinstance(core, _core.Index)


def test_ivf_files_load_as_their_class_with_their_search_defaults(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((800, 16)).astype(np.float32)
    made = [
        quanta.IndexIVFFlat(16, 8),
        quanta.IndexIVFPQ(16, 8, 4, nbits=4),
        quanta.IndexIVFPQFastScan(16, 8, 4, k_factor=2),
        quanta.IndexIVFRaBitQ(16, 8, 2),
        quanta.IndexIVFScalarQuantizer(16, 8, "4bit"),
    ]
    for idx in made:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idx.train(x, niter=3)
        idx.add(x)
        idx.nprobe = 3
        path = tmp_path / f"{type(idx).__name__}.qnt"
        quanta.write_index(idx, path)
        assert quanta.io.read_index_kind(path) == type(idx).__name__
        core = _core.read_index(path)
        assert type(core) is getattr(_core, type(idx).__name__) and core.nprobe == 3
        for mmap in (False, True):
            back = quanta.read_index(path, mmap=mmap)
            assert type(back) is type(idx) and back.nprobe == 3 and back.is_mapped == mmap
            assert getattr(back, "k_factor", 2) == 2
            for a, b in zip(back.search(x[:5], 4), idx.search(x[:5], 4, nprobe=3)):
                np.testing.assert_array_equal(a, b)
            del back
