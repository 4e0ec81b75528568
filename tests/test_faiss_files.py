"""faiss index files, both directions, against faiss-cpu itself.

Every kind quanta reads is built and written by faiss, loaded by ``quanta.read_index`` and
searched (same ids as faiss, up to ties), then written back with ``format="faiss"``: faiss
reads it, and for every kind but ``IndexIDMap`` (faiss ``IxMp``, written back as the
equivalent ``IxM2``) the bytes are the very bytes faiss wrote. Truncated and corrupted faiss
files are ``FormatError``s, never crashes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import quanta
from _support import assert_recall_equivalent, brute_force, overlap_at
from quanta.exceptions import FormatError, InvalidArgumentError

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.filterwarnings("ignore:.*training points:UserWarning")

D, NT, NB, NQ, K = 48, 3000, 2000, 60, 10
_rng = np.random.default_rng(0)
XT = _rng.standard_normal((NT, D)).astype("float32")
XB = _rng.standard_normal((NB, D)).astype("float32")
XQ = _rng.standard_normal((NQ, D)).astype("float32")

# faiss factory string -> quanta kind it loads as ("np": without faiss's polysemous training,
# which takes 20 s per index here and does not change the file layout)
SPECS = {
    "Flat": "IndexFlat",
    "PQ8np": "IndexPQ",
    "PQ6x6np": "IndexPQ",
    "PQ8x4fs": "IndexPQFastScan",
    "PQ3x4fs": "IndexPQFastScan",
    "IVF16,Flat": "IndexIVFFlat",
    "IVF16,PQ8np": "IndexIVFPQ",
    "IVF16,PQ8x5np": "IndexIVFPQ",
    "IVF16,PQ8x4fs": "IndexIVFPQFastScan",
    "IVF16,PQ3x4fs": "IndexIVFPQFastScan",
    "OPQ8,PQ8np": "IndexPreTransform",
    "IDMap,Flat": "IndexIDMap",
    "IDMap2,PQ8np": "IndexIDMap",
    "PQ8np,RFlat": "IndexRefineFlat",
    "SQ8": "IndexScalarQuantizer",
    "SQ4": "IndexScalarQuantizer",
    "SQfp16": "IndexScalarQuantizer",
    "SQbf16": "IndexScalarQuantizer",
    "IVF16,SQ8": "IndexIVFScalarQuantizer",
    "IVF16,SQ4": "IndexIVFScalarQuantizer",
    "IVF16,SQfp16": "IndexIVFScalarQuantizer",
}
METRICS = {"l2": 1, "ip": 0}  # faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT


def faiss_index(spec: str, metric: str) -> Any:
    fi = faiss.index_factory(D, spec, METRICS[metric])
    if spec.startswith("OPQ"):  # faiss's 50 OPQ iterations take 10 s here; 5 make a rotation
        faiss.downcast_VectorTransform(fi.chain.at(0)).niter = 5
    fi.train(XT)
    if spec.startswith("IDMap"):
        fi.add_with_ids(XB, np.arange(NB, dtype="int64") * 3 + 5)
    else:
        fi.add(XB)
    if "IVF" in spec:
        faiss.extract_index_ivf(fi).nprobe = 4
    return fi


def assert_same_up_to_ties(D1: Any, I1: Any, D0: Any, I0: Any) -> None:
    """quanta's (D1, I1) equal faiss's (D0, I0): distances within float rounding (1e-5 of their
    scale: the two libraries sum in different orders), ids equal except between entries faiss
    ranks at tied distances (equal codes)."""
    tol = 1e-5 * max(1.0, float(np.abs(D0).max()))
    np.testing.assert_allclose(D1, D0, rtol=0, atol=tol)
    for q, j in np.argwhere(I1 != I0):
        tied = np.flatnonzero(np.abs(D0[q] - D0[q, j]) <= tol)
        # a tie group at the end of the row may continue past k, which cuts it anywhere
        at_end = tied[-1] == D0.shape[1] - 1
        assert tied.size > 1 or at_end, f"query {q} rank {j}: {I1[q]} vs {I0[q]} at {D0[q]}"


# IP fast scan: quanta quantizes the negated tables (smaller is closer), faiss the tables
# themselves, so the 8-bit rounding differs and so do the approximate rankings: compared by
# recall against the exact neighbours, with the paired test of _support
APPROXIMATE = {
    ("PQ8x4fs", "ip"),
    ("PQ3x4fs", "ip"),
    ("IVF16,PQ8x4fs", "ip"),
    ("IVF16,PQ3x4fs", "ip"),
}


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("spec", list(SPECS))
def test_faiss_file_loads_searches_and_writes_back(tmp_path: Path, spec: str, metric: str) -> None:
    fi = faiss_index(spec, metric)
    src, back = tmp_path / "faiss.index", tmp_path / "back.index"
    faiss.write_index(fi, str(src))
    qi = quanta.read_index(src)
    assert qi._index.kind == SPECS[spec]
    assert qi.ntotal == fi.ntotal and qi.d == fi.d
    D0, I0 = fi.search(XQ, K)
    D1, I1 = qi.search(XQ, K)
    if (spec, metric) in APPROXIMATE:
        _, gt = brute_force(XB, XQ, K, metric)
        assert_recall_equivalent([overlap_at(I1, gt, K)], [overlap_at(I0, gt, K)], spec)
    else:
        assert_same_up_to_ties(D1, I1, D0, I0)
    quanta.write_index(qi, back, format="faiss")
    if spec != "IDMap,Flat":
        assert back.read_bytes() == src.read_bytes()
    fj = faiss.read_index(str(back))
    D2, I2 = fj.search(XQ, K)
    np.testing.assert_array_equal(I2, I0)
    np.testing.assert_array_equal(D2, D0)
    # bytes in, bytes out: the same through serialize/deserialize
    assert quanta.serialize_index(quanta.deserialize_index(src.read_bytes()), "faiss") == (
        back.read_bytes()
    )


def test_quanta_indexes_written_for_faiss() -> None:
    """Indexes built by quanta itself: faiss loads them and finds what quanta finds."""
    cases = [
        quanta.index_factory(D, "IVF8,PQ12", "l2"),
        quanta.index_factory(D, "IVF8,Flat", "ip"),
        quanta.index_factory(D, "PQ16x4fs", "l2"),
        quanta.index_factory(D, "OPQ8,PQ8", "l2"),
        quanta.index_factory(D, "SQ4", "l2"),
        quanta.index_factory(D, "IVF8,SQ8", "ip"),
        quanta.IndexIVFScalarQuantizer(D, 8, "fp16", by_residual=False),
    ]
    for qi in cases:
        qi.train(XT)
        qi.add(XB)
        fi = faiss.deserialize_index(np.frombuffer(quanta.serialize_index(qi, "faiss"), "uint8"))
        if hasattr(qi, "nprobe"):
            qi.nprobe = 3
            faiss.extract_index_ivf(fi).nprobe = 3
        D1, I1 = qi.search(XQ, K)
        D0, I0 = fi.search(XQ, K)
        assert_same_up_to_ties(D1, I1, D0, I0)


def test_binary_files_both_ways(tmp_path: Path) -> None:
    codes = _rng.integers(0, 256, (500, 16), dtype=np.uint8)
    q = codes[:20]
    fb = faiss.IndexBinaryFlat(128)
    fb.add(codes)
    faiss.write_index_binary(fb, str(tmp_path / "b.faiss"))
    qb = quanta.read_index(tmp_path / "b.faiss")
    assert isinstance(qb, quanta.IndexBinaryFlat)
    np.testing.assert_array_equal(qb.search(q, 5)[0], fb.search(q, 5)[0])
    quanta.write_index(qb, tmp_path / "back.faiss", format="faiss")
    assert (tmp_path / "back.faiss").read_bytes() == (tmp_path / "b.faiss").read_bytes()
    # ids that are not positions: faiss IndexBinaryIDMap2
    fm = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(128))
    fm.add_with_ids(codes, np.arange(500, dtype="int64") * 7)
    faiss.write_index_binary(fm, str(tmp_path / "m.faiss"))
    qm = quanta.read_index(tmp_path / "m.faiss")
    D0, I0 = fm.search(q, 5)
    D1, I1 = qm.search(q, 5)
    np.testing.assert_array_equal(D1, D0)
    assert set(I1[:, 0]) == set(I0[:, 0])
    quanta.write_index(qm, tmp_path / "mback.faiss", format="faiss")
    back = faiss.read_index_binary(str(tmp_path / "mback.faiss"))
    np.testing.assert_array_equal(back.search(q, 5)[0], D0)


def test_what_faiss_cannot_hold_is_refused(tmp_path: Path) -> None:
    r = quanta.index_factory(D, "RaBitQ", "l2")
    r.train(XT)
    with pytest.raises(InvalidArgumentError, match="faiss has no file format for quanta's"):
        quanta.write_index(r, tmp_path / "r.faiss", format="faiss")
    assert not (tmp_path / "r.faiss").exists()
    with pytest.raises(InvalidArgumentError, match="format must be"):
        quanta.serialize_index(r, "faiss2")
    # rotated Lloyd-Max codes have no faiss form; quanta.faiss saves them in quanta's format
    lm = quanta.index_factory(D, "IVF8,SQlm3", "l2")
    lm.train(XT)
    with pytest.raises(InvalidArgumentError, match="lm3 scalar codes"):
        quanta.serialize_index(lm, "faiss")
    import quanta.faiss as qfaiss

    qfaiss.write_index(qfaiss.wrap(lm), str(tmp_path / "lm.index"))
    assert quanta.io.read_index_kind(tmp_path / "lm.index") == "IndexIVFScalarQuantizer"
    # a faiss kind quanta does not read is named
    h = faiss.IndexHNSWFlat(D, 8)
    h.add(XB[:100])
    faiss.write_index(h, str(tmp_path / "h.faiss"))
    with pytest.raises(FormatError, match="IndexHNSWFlat"):
        quanta.read_index(tmp_path / "h.faiss")


@pytest.mark.parametrize(
    "spec", ["IVF16,PQ8np", "IVF16,PQ8x4fs", "OPQ8,PQ8np", "IDMap2,PQ8x4fs", "IVF16,SQ4", "SQfp16"]
)
def test_truncated_and_corrupted_faiss_files_are_format_errors(spec: str) -> None:
    data = faiss.serialize_index(faiss_index(spec, "l2")).tobytes()
    n = len(data)
    cuts = sorted(set(range(0, min(n, 300))) | set(range(300, n, max(1, n // 200))))
    for cut in cuts:
        with pytest.raises(FormatError):
            quanta.deserialize_index(data[:cut])
    rng = np.random.default_rng(1)
    for trial in range(300):
        b = bytearray(data)
        for at in rng.integers(0, min(n, 400) if trial % 2 else n, size=1 + trial % 3):
            b[at] = int(rng.integers(0, 256))
        try:
            quanta.deserialize_index(bytes(b))
        except quanta.QuantaError:
            pass  # any typed error; a crash or another exception fails the test


def test_convert_command_line(tmp_path: Path) -> None:
    fi = faiss_index("IVF16,PQ8np", "l2")
    faiss.write_index(fi, str(tmp_path / "in.faiss"))

    def convert(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "quanta", "convert", *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    r = convert(str(tmp_path / "in.faiss"), str(tmp_path / "out.quanta"))
    assert r.returncode == 0, r.stderr
    assert "faiss IndexIVFPQ" in r.stdout or "IndexIVFPQ" in r.stdout
    assert quanta.io.read_index_kind(tmp_path / "out.quanta") == "IndexIVFPQ"
    # and back: quanta -> faiss is the default direction for a quanta file
    r = convert(str(tmp_path / "out.quanta"), str(tmp_path / "again.faiss"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again.faiss").read_bytes() == (tmp_path / "in.faiss").read_bytes()
    r = convert(str(tmp_path / "missing"), str(tmp_path / "x"))
    assert r.returncode == 1 and "missing" in r.stderr
