"""Paper check for IVFADC: recall@100 vs number of codes scanned, exhaustive ADC vs IVFADC.

Jégou, Douze, Schmid, "Product quantization for nearest neighbor search", TPAMI 2011
(ALGORITHMS.md §2.6, §2.7). 64-bit codes (M=8, nbits=8). Exhaustive ADC (:class:`quanta.IndexPQ`)
scans every code; IVFADC (:class:`quanta.IndexIVFPQ`, residuals to ``nlist`` = k' coarse
centroids) scans the ``nprobe`` = w nearest lists only. Reported per configuration: recall@R
(R = 1, 10, 100; fraction of queries whose exact nearest neighbour is among the first R) and
the mean number of codes scanned per query (sum of the probed list sizes, counted from the
coarse assignment), also as a fraction of the base.

The paper reports (SIFT1M, unverified figures, see ALGORITHMS.md §2.7): IVFADC with k'=1024,
w=8, 64-bit codes reaches the recall@100 of exhaustive ADC or slightly above (≈0.93–0.94) while
visiting about 1 % of the base. Here: Fashion-MNIST (60k base, 784-d, 10k queries), quantizers
trained on the base.

Usage::

    python -m quanta.experiments.ivfadc            # writes results/ivfadc.md + results/ivfadc.png
    python -m quanta.experiments.ivfadc --quick    # 1000 queries, 10 PQ k-means iterations
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import quanta
from quanta import datasets, metrics

from ._report import write_report

RS = (1, 10, 100)
NLISTS = (256, 1024)
NPROBES = (1, 2, 4, 8, 16, 32, 64)
M, NBITS = 8, 8


def _scanned(index: quanta.IndexIVFPQ, q: np.ndarray, nprobe: int) -> float:
    """Mean codes scanned per query: sizes of the nprobe lists nearest to each query."""
    c = index.centroids.astype(np.float64)
    qq = q.astype(np.float64)
    dist = (qq * qq).sum(1)[:, None] - 2 * qq @ c.T + (c * c).sum(1)[None, :]
    probes = np.argsort(dist, axis=1, kind="stable")[:, :nprobe]
    return float(index.invlists.sizes[probes].sum(1).mean())


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    ds = datasets.load("fashion-mnist")
    xq = ds.queries[: args.queries] if args.queries else ds.queries
    gt = ds.gt[: len(xq)]
    nb = len(ds.base)
    rows: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pq = quanta.IndexPQ(ds.d, M, NBITS)
        pq.train(ds.base, niter=args.niter)
        pq.add(ds.base)
        t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ids = pq.search(xq, 100)
    t_search = time.perf_counter() - t0
    rows.append(
        {
            "method": "ADC",
            "nlist": None,
            "nprobe": None,
            "scanned": float(nb),
            "recall": {r: metrics.recall_at(ids, gt, r) for r in RS},
            "train_s": t_train,
            "search_s": t_search,
        }
    )
    print(f"ADC: recall@100 {rows[-1]['recall'][100]:.4f}", flush=True)
    for nlist in NLISTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            ivf = quanta.IndexIVFPQ(ds.d, nlist, M, NBITS)
            ivf.train(ds.base, pq_niter=args.niter)
            ivf.add(ds.base)
            t_train = time.perf_counter() - t0
        for nprobe in NPROBES:
            t0 = time.perf_counter()
            _, ids = ivf.search(xq, 100, nprobe=nprobe)
            t_search = time.perf_counter() - t0
            rows.append(
                {
                    "method": "IVFADC",
                    "nlist": nlist,
                    "nprobe": nprobe,
                    "scanned": _scanned(ivf, xq, nprobe),
                    "recall": {r: metrics.recall_at(ids, gt, r) for r in RS},
                    "train_s": t_train,
                    "search_s": t_search,
                    "imbalance": ivf.invlists.imbalance_factor,
                }
            )
            print(
                f"IVFADC k'={nlist} w={nprobe}: recall@100 {rows[-1]['recall'][100]:.4f}, "
                f"{rows[-1]['scanned']:.0f} codes/query",
                flush=True,
            )
    for r in rows:
        r["n_query"] = len(xq)
        r["nb"] = nb
    return rows


def to_markdown(rows: list[dict[str, Any]], args: argparse.Namespace, wall_s: float) -> str:
    nb, nq = rows[0]["nb"], rows[0]["n_query"]
    adc = rows[0]
    lines = [
        "# IVFADC vs exhaustive ADC (paper check)",
        "",
        f"- quanta {quanta.__version__}, SIMD `{quanta.simd_level()}`, "
        f"{quanta.get_num_threads()} threads, numpy {np.__version__}, Python "
        f"{platform.python_version()}; total runtime {wall_s:.0f} s",
        "- command: `" + " ".join(["python -m quanta.experiments.ivfadc", *args.argv]) + "`",
        "- paper: Jégou, Douze, Schmid, TPAMI 2011 (ALGORITHMS.md §2.6, §2.7)",
        f"- data: `fashion-mnist`, {nb} base × 784-d, {nq} queries; ground truth = exact L2 "
        "nearest neighbour (`gt[:, 0]`); recall@R = fraction of queries whose true nearest "
        "neighbour is among the first R returned",
        f"- codes: 64-bit (M={M}, nbits={NBITS}); PQ k-means {args.niter} iterations, coarse "
        "k-means 10 iterations (faiss IVF default), all trained on the base; IVFADC encodes "
        "residuals to the coarse centroid",
        "- codes scanned = mean over queries of the sizes of the probed lists",
        "",
        "| method | k' (nlist) | w (nprobe) | codes scanned / query | % of base | R@1 | R@10 | "
        "R@100 | search s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['nlist'] or '-'} | {r['nprobe'] or '-'} | "
            f"{r['scanned']:.0f} | {100 * r['scanned'] / nb:.2f} | {r['recall'][1]:.4f} | "
            f"{r['recall'][10]:.4f} | {r['recall'][100]:.4f} | {r['search_s']:.2f} |"
        )
    k8 = next((r for r in rows if r["nlist"] == 1024 and r["nprobe"] == 8), None)
    lines += [""]
    if k8 is not None:
        diff = k8["recall"][100] - adc["recall"][100]
        lines.append(
            f"**Paper claim** (IVFADC k'=1024, w=8 reaches exhaustive-ADC recall@100 or slightly "
            f"above while visiting ~1 % of the base): here k'=1024, w=8 gives recall@100 "
            f"{k8['recall'][100]:.4f} vs ADC {adc['recall'][100]:.4f} ({diff:+.4f}) while "
            f"scanning {100 * k8['scanned'] / nb:.2f} % of the base. "
            + (
                "Consistent with the paper (within 0.01)."
                if diff >= -0.01
                else "Below ADC by more than 0.01 on this 60k-vector set: with only ~59 vectors "
                "per list, 8 lists hold too few of the true neighbours' cells."
            )
        )
    best = max((r for r in rows if r["method"] == "IVFADC"), key=lambda r: r["recall"][100])
    lines += [
        "",
        f"Best IVFADC recall@100: {best['recall'][100]:.4f} (k'={best['nlist']}, "
        f"w={best['nprobe']}, {100 * best['scanned'] / nb:.1f} % of the base). IVFADC can exceed "
        "ADC because residual codes are more precise than codes of the raw vectors "
        "(the coarse centroid carries part of the vector exactly).",
        "",
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.5))
    adc = rows[0]
    ax.axhline(adc["recall"][100], color="k", linestyle=":", label="exhaustive ADC")
    ax.plot([adc["scanned"]], [adc["recall"][100]], "ks")
    for nlist, col in zip(NLISTS, ("C0", "C3")):
        rr = [r for r in rows if r["nlist"] == nlist]
        ax.plot(
            [r["scanned"] for r in rr],
            [r["recall"][100] for r in rr],
            marker="o",
            color=col,
            label=f"IVFADC k'={nlist}, w=1..64",
        )
        for r in rr:
            ax.annotate(str(r["nprobe"]), (r["scanned"], r["recall"][100]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("codes scanned per query")
    ax.set_ylabel("recall@100")
    ax.set_title(f"Fashion-MNIST, 64-bit codes ({rows[0]['n_query']} queries)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--queries", type=int, default=None, help="queries used (default: all)")
    p.add_argument("--niter", type=int, default=25, help="PQ k-means iterations")
    p.add_argument("--quick", action="store_true", help="1000 queries, 10 k-means iterations")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.queries = min(args.queries or 1000, 1000)
        args.niter = min(args.niter, 10)
    t0 = time.perf_counter()
    rows = run(args)
    md = to_markdown(rows, args, time.perf_counter() - t0)
    write_report(args.out, "ivfadc", md, lambda png: plot(rows, png), "recall@100 vs codes scanned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
