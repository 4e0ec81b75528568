"""``make demo``: train, index and search the SIFT sample shipped with quanta; print a table.

Runs on a fresh clone (the dataset is ``quanta/data/sift_ngt5k.npz``, Apache-2.0). Later
codecs/indexes add their rows here.
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

    # k-means: the building block of IVF and PQ; search by scanning the nearest clusters
    for nlist, nprobe in ((64, 4), (64, 16)):
        t0 = time.perf_counter()
        km = quanta.KMeans(ds.d, nlist, niter=20, seed=1234).fit(xb)
        t_train = time.perf_counter() - t0
        _, assign = km.assign(xb)
        coarse = quanta.IndexFlat(ds.d)
        assert km.centroids is not None
        coarse.add(km.centroids)

        def probe(
            nprobe: int = nprobe,
            coarse: quanta.IndexFlat = coarse,
            assign: npt.NDArray[np.int64] = assign,
        ) -> npt.NDArray[np.int64]:
            _, lists = coarse.search(xq, nprobe)
            out = np.full((len(xq), args.k), -1, dtype=np.int64)
            for i, q in enumerate(xq):
                cand = np.flatnonzero(np.isin(assign, lists[i]))
                d = ((xb[cand] - q) ** 2).sum(1)
                order = np.lexsort((cand, d))[: args.k]
                out[i, : len(order)] = cand[order]
            return out

        ids, t = timed(probe, repeat=1)
        rows.append(
            (
                f"k-means {nlist} cells, probe {nprobe}",
                f"{4 * ds.d} B",
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
        "\nThe k-means rows scan the vectors of the probed cells exactly (numpy), a preview of IVF;"
        "\ncompressed rows scan every code (ADC/SDC table lookups, Hamming popcounts)."
    )


if __name__ == "__main__":
    main()
