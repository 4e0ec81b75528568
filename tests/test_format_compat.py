"""Files written before the Index protocol (format 1.x, commit 0980321) still load and search
the same: the protocol added metadata keys (``nprobe``, ``mode``, ...) that old files lack, and
each loads with the value the old code used.

``tests/data/format_v1/`` holds one small file per index kind and ``expected.npz`` the results the
writing version returned (300 Gaussian vectors, d = 16, 5 queries, k = 5; IVF searched at
nprobe = 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import quanta

DATA = Path(__file__).parent / "data" / "format_v1"
KINDS = [
    "IndexFlat",
    "IndexPQ",
    "IndexPQFastScan",
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexLattice",
    "IndexBinaryFlat",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mmap", [False, True])
def test_old_files_load_and_search_the_same(kind: str, mmap: bool) -> None:
    expected = np.load(DATA / "expected.npz")
    index = quanta.read_index(DATA / f"{kind}.qnt", mmap=mmap)
    assert type(index).__name__ == kind
    q = expected["q"]
    if kind == "IndexBinaryFlat":
        dd, ii = index.search(quanta.pack_bits(q.repeat(4, axis=1) > 0), 5)
    elif kind.startswith("IndexIVF"):
        assert index.nprobe == 1  # not in the old file: the default
        dd, ii = index.search(q, 5, nprobe=4)
    else:
        dd, ii = index.search(q, 5)
    _same_results(dd, ii, expected[f"{kind}_D"], expected[f"{kind}_I"])


def _same_results(dd: Any, ii: Any, de: Any, ie: Any) -> None:
    """The expected results were computed at the avx512 level: bit-identical there (and for the
    integer Hamming distances everywhere); at another level float kernels round differently, so
    distances agree to float32 rounding and ids may swap only at near-ties."""
    if quanta.simd_level() == "avx512" or dd.dtype != np.float32:
        np.testing.assert_array_equal(ii, ie)
        np.testing.assert_array_equal(dd, de)
        return
    np.testing.assert_allclose(dd, de, rtol=1e-4, atol=1e-4)
    for r in range(ii.shape[0]):
        want = dict(zip(ie[r].tolist(), de[r].tolist()))
        for i, d in zip(ii[r].tolist(), dd[r].tolist()):
            # an id the old run did not return must tie with its last hit
            ref = want.get(i, de[r, -1])
            assert abs(d - ref) <= 1e-4 * max(1.0, abs(ref)), (r, i, d, ref)


def test_old_defaults_that_were_saved_are_kept() -> None:
    # fast scan saved its k_factor (then 4 by default) and the lattice index its metric
    # (then "ip" by default): a loaded index keeps what it was written with
    assert quanta.read_index(DATA / "IndexPQFastScan.qnt").k_factor == 4
    assert quanta.read_index(DATA / "IndexLattice.qnt").metric == "ip"
    pq = quanta.read_index(DATA / "IndexPQ.qnt")
    assert pq.mode == "adc" and pq.bias_correction is False
