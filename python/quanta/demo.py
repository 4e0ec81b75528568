"""``make demo``: train, index and search the SIFT sample shipped with quanta; print a table.

Runs on a fresh clone (the dataset is ``quanta/data/sift_ngt5k.npz``, Apache-2.0): exact search,
inverted files (IVFFlat, IVFPQ), PQ with ADC/SDC, 4-bit fast scan, OPQ and ITQ binary codes.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

import quanta


def recall_at(ids: npt.NDArray[np.int64], gt: npt.NDArray[np.int64], r: int) -> float:
    """The PQ paper's recall@R: fraction of queries whose true nearest neighbour is in the top R."""
    return float(np.mean([gt[i, 0] in ids[i, :r] for i in range(len(gt))]))


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[Any, float]:
    best = float("inf")
    out: Any = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, default=10, help="neighbours per query")
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    args = ap.parse_args(argv)
    if args.threads:
        quanta.set_num_threads(args.threads)

    ds = quanta.datasets.load_demo()
    xb, xq, gt = ds.base, ds.queries, ds.gt
    print(
        f"quanta {quanta.__version__}  simd={quanta.simd_level()}  "
        f"threads={quanta.get_num_threads()}"
    )
    print(
        f"dataset {ds.name}: base {xb.shape}, queries {xq.shape}, licence {ds.license_file.name}\n"
    )

    rows: list[tuple[str, str, float, float, float, float]] = []

    # exact search: the reference every compressed index is measured against
    flat = quanta.IndexFlat(ds.d)
    flat.add(xb)
    (_, ids), t = timed(lambda: flat.search(xq, args.k))
    rows.append(
        (
            "IndexFlat (exact L2)",
            f"{4 * ds.d} B",
            recall_at(ids, gt, 1),
            recall_at(ids, gt, args.k),
            len(xq) / t,
            0.0,
        )
    )

    # k-means, then inverted files: scan only the vectors/codes of the nprobe nearest cells
    t0 = time.perf_counter()
    km = quanta.KMeans(ds.d, 64, niter=20, seed=1234).fit(xb)
    t_train = time.perf_counter() - t0
    obj = float(km.obj[-1]) if km.obj is not None and len(km.obj) else float("nan")
    print(f"k-means k=64 on {len(xb)} vectors: {t_train:.2f} s, final objective {obj:.4g}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: a 4.5k-vector training set is small
        ivf_indexes: list[tuple[str, str, Any]] = [
            ("IndexIVFFlat nlist=64", f"{4 * ds.d} B", quanta.IndexIVFFlat(ds.d, 64)),
            ("IndexIVFPQ nlist=64, M=16 x 8 bits", "16 B", quanta.IndexIVFPQ(ds.d, 64, 16)),
        ]
        for name, size, index in ivf_indexes:
            t0 = time.perf_counter()
            index.train(xb)
            index.add(xb)
            t_train = time.perf_counter() - t0
            for nprobe in (4, 16):

                def run_ivf(index: Any = index, nprobe: int = nprobe) -> Any:
                    return index.search(xq, args.k, nprobe=nprobe)

                (_, ids), t = timed(run_ivf)
                rows.append(
                    (
                        f"{name}, nprobe={nprobe}",
                        size,
                        recall_at(ids, gt, 1),
                        recall_at(ids, gt, args.k),
                        len(xq) / t,
                        t_train,
                    )
                )

    # compressed: PQ codes (ADC and SDC), OPQ, binary ITQ codes, all searched exhaustively
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: a 4.5k-vector training set is small
        for m in (8, 16):
            t0 = time.perf_counter()
            pq = quanta.IndexPQ(ds.d, m)
            pq.train(xb)
            pq.add(xb)
            t_train = time.perf_counter() - t0
            for mode in ("adc", "sdc"):

                def run(pq: quanta.IndexPQ = pq, mode: str = mode) -> Any:
                    return pq.search(xq, args.k, mode=mode)

                (_, ids), t = timed(run)
                rows.append(
                    (
                        f"IndexPQ M={m} x 8 bits, {mode.upper()}",
                        f"{pq.code_size} B",
                        recall_at(ids, gt, 1),
                        recall_at(ids, gt, args.k),
                        len(xq) / t,
                        t_train,
                    )
                )
        for m in (16, 32):
            t0 = time.perf_counter()
            fs = quanta.IndexPQFastScan(ds.d, m)
            fs.train(xb)
            fs.add(xb)
            t_train = time.perf_counter() - t0
            for k_factor in (1, 4):

                def run_fs(fs: quanta.IndexPQFastScan = fs, k_factor: int = k_factor) -> Any:
                    return fs.search(xq, args.k, k_factor=k_factor)

                (_, ids), t = timed(run_fs)
                rerank = "no re-ranking" if k_factor == 1 else f"re-rank {k_factor}k"
                rows.append(
                    (
                        f"IndexPQFastScan M={m} x 4 bits, {rerank}",
                        f"{fs.code_size} B",
                        recall_at(ids, gt, 1),
                        recall_at(ids, gt, args.k),
                        len(xq) / t,
                        t_train,
                    )
                )
        t0 = time.perf_counter()
        opq = quanta.IndexPreTransform(quanta.OPQMatrix(ds.d, 8, niter=20), quanta.IndexPQ(ds.d, 8))
        opq.train(xb)
        opq.add(xb)
        t_train = time.perf_counter() - t0
        (_, ids), t = timed(lambda: opq.search(xq, args.k))
        rows.append(
            (
                "OPQ + IndexPQ M=8, ADC",
                "8 B",
                recall_at(ids, gt, 1),
                recall_at(ids, gt, args.k),
                len(xq) / t,
                t_train,
            )
        )
        t0 = time.perf_counter()
        itq = quanta.ITQ(ds.d, 64)
        itq.train(xb)
        binary = quanta.IndexBinaryFlat(64)
        binary.add(itq.encode(xb))
        t_train = time.perf_counter() - t0
        codes_q = itq.encode(xq)
        (_, ids), t = timed(lambda: binary.search(codes_q, args.k))
        rows.append(
            (
                "ITQ 64 bits, Hamming",
                "8 B",
                recall_at(ids, gt, 1),
                recall_at(ids, gt, args.k),
                len(xq) / t,
                t_train,
            )
        )

    print(f"| method | bytes/vector | recall@1 | recall@{args.k} | queries/s | train s |")
    print("|---|---|---|---|---|---|")
    for name, size, r1, rk, qps, tt in rows:
        train = f"{tt:.2f}" if tt else "-"
        print(f"| {name} | {size} | {r1:.3f} | {rk:.3f} | {qps:,.0f} | {train} |")
    print(
        "\nrecall@R = fraction of queries whose exact nearest neighbour is among the R returned."
        "\nIVF rows scan only the nprobe nearest of 64 k-means cells; the other compressed rows"
        "\nscan every code (ADC/SDC table lookups, 4-bit in-register lookups, Hamming popcounts)."
    )


if __name__ == "__main__":
    main()
