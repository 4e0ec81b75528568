"""Paper check for binary codes: LSH vs sign-of-PCA vs ITQ (Gong & Lazebnik, CVPR 2011).

On MNIST and Fashion-MNIST (``quanta.datasets``: 60k train = database, 10k test = queries), for
16/32/64-bit codes, every method is trained on the database, both sides are encoded, and the
database is ranked by Hamming distance with :class:`quanta.IndexBinaryFlat` (ties by lower id, so
the numbers are deterministic). Reported:

* **mAP@1000** (label-based, AP normalized by the relevant items retrieved in the top 1000 — the
  deep-hashing convention of ALGORITHMS.md §7.2; relevant = same class),
* **P@100** (label precision of the first 100),
* **1-recall@100** (fraction of queries whose exact L2 nearest neighbour is among the first 100
  Hamming neighbours, §7.1).

Methods: ``LSH`` (quanta default: centred, orthogonal projection), ``LSH-uncentred`` (faiss
``IndexLSH`` style), ``PCA-sign`` (top principal directions, no rotation; numpy eigh), ``ITQ``
(50 iterations). Expected from the paper: ITQ > PCA-sign, ITQ > LSH at these code lengths, and
the gap shrinks as bits grow for LSH.

Usage::

    python -m quanta.experiments.binary                   # writes results/binary.md + .png
    python -m quanta.experiments.binary --queries 2000    # faster
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import quanta
from quanta import datasets, metrics

from ._report import write_report

METHODS = ("LSH", "LSH-uncentred", "PCA-sign", "ITQ")


def _pca_sign(xb: npt.NDArray[np.float32], nbits: int) -> tuple[Any, Any]:
    """Encoder for sign((x − μ) P), P = top-``nbits`` covariance eigenvectors (numpy, float64)."""
    x = xb.astype(np.float64)
    mu = x.mean(axis=0)
    cov = np.cov(x, rowvar=False, bias=True)
    _, vecs = np.linalg.eigh(cov)
    p = vecs[:, ::-1][:, :nbits]

    def encode(v: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        return quanta.pack_bits((v.astype(np.float64) - mu) @ p)

    return encode, None


def _encoder(method: str, d: int, nbits: int, xb: npt.NDArray[np.float32], seed: int) -> Any:
    if method == "LSH":
        return quanta.LSH(d, nbits, seed=seed).train(xb).encode, None
    if method == "LSH-uncentred":
        return quanta.LSH(d, nbits, seed=seed, center=False).encode, None
    if method == "PCA-sign":
        return _pca_sign(xb, nbits)
    if method == "ITQ":
        itq = quanta.ITQ(d, nbits, niter=50, seed=seed).train(xb)
        return itq.encode, itq.losses
    raise ValueError(method)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        ds = datasets.load(name)
        xb, xq = ds.base, ds.queries[: args.queries]
        assert ds.base_labels is not None and ds.query_labels is not None
        bl, ql = ds.base_labels, ds.query_labels[: args.queries]
        gt = ds.gt[: args.queries]
        print(f"{name}: base {xb.shape}, queries {xq.shape}", flush=True)
        for nbits in args.bits:
            for method in METHODS:
                t0 = time.perf_counter()
                encode, losses = _encoder(method, ds.d, nbits, xb, args.seed)
                t1 = time.perf_counter()
                cb, cq = encode(xb), encode(xq)
                t2 = time.perf_counter()
                index = quanta.IndexBinaryFlat(8 * cb.shape[1])
                index.add(cb)
                _, ids = index.search(cq, args.k_map)
                t3 = time.perf_counter()
                row = {
                    "dataset": name,
                    "nbits": nbits,
                    "method": method,
                    "map": metrics.mean_average_precision(ids, ql, bl, args.k_map),
                    "p100": metrics.precision_at(ids, ql, bl, 100),
                    "recall100": metrics.recall_at(ids, gt, 100),
                    "train_s": t1 - t0,
                    "encode_s": t2 - t1,
                    "search_s": t3 - t2,
                    "itq_loss": None if losses is None else (float(losses[0]), float(losses[-1])),
                    "itq_monotone": None
                    if losses is None
                    else bool(np.all(np.diff(losses) <= 1e-9 * losses[0])),
                }
                rows.append(row)
                print(
                    f"  {nbits:3d} bits {method:14s} mAP@{args.k_map} {row['map']:.4f} "
                    f"P@100 {row['p100']:.4f} 1-recall@100 {row['recall100']:.4f} "
                    f"(train {row['train_s']:.1f}s, search {row['search_s']:.1f}s)",
                    flush=True,
                )
    return rows


def to_markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Binary codes: LSH vs PCA-sign vs ITQ (paper check)",
        "",
        f"- quanta {quanta.__version__}, SIMD `{quanta.simd_level()}`, "
        f"{quanta.get_num_threads()} threads, numpy {np.__version__}, "
        f"Python {platform.python_version()}",
        "- command: `" + " ".join(["python -m quanta.experiments.binary", *args.argv]) + "`",
        f"- database = 60k train split, queries = first {args.queries} of the 10k test split; "
        "every encoder trained on the database; Hamming ranking by `IndexBinaryFlat` "
        "(ties to the lower id, deterministic)",
        f"- mAP@{args.k_map}: label relevance (same class), AP normalized by the relevant items "
        "retrieved in the top K (ALGORITHMS.md §7.2); P@100: label precision; 1-recall@100: "
        "exact L2 nearest neighbour among the first 100 (§7.1)",
        f"- LSH = quanta default (centred, orthogonal projection); LSH-uncentred = faiss "
        f"`IndexLSH` style; PCA-sign = top principal directions, no rotation; ITQ = 50 "
        f"iterations; seed {args.seed}. The ITQ loss ‖B − VR‖² includes the constant ‖V‖² "
        "(unscaled 0..255 pixels), so its decrease looks small; only its monotonicity matters",
        "",
    ]
    for name in args.datasets:
        lines += [
            f"## {name}",
            "",
            f"| bits | method | mAP@{args.k_map} | P@100 | 1-recall@100 | train s | "
            "ITQ loss first → last |",
            "|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in (r for r in rows if r["dataset"] == name):
            loss = (
                ""
                if r["itq_loss"] is None
                else f"{r['itq_loss'][0]:.4g} → {r['itq_loss'][1]:.4g}"
                + ("" if r["itq_monotone"] else " (NOT monotone)")
            )
            lines.append(
                f"| {r['nbits']} | {r['method']} | {r['map']:.4f} | {r['p100']:.4f} | "
                f"{r['recall100']:.4f} | {r['train_s']:.1f} | {loss} |"
            )
        lines.append("")
    verdicts = []
    for name in args.datasets:
        for nbits in args.bits:
            by = {r["method"]: r for r in rows if r["dataset"] == name and r["nbits"] == nbits}
            if "ITQ" in by and "LSH" in by:
                itq, lsh, pca = by["ITQ"], by["LSH"], by.get("PCA-sign")
                ok = itq["map"] > lsh["map"]
                ok_pca = pca is None or itq["map"] > pca["map"]
                verdicts.append(
                    f"- {name}, {nbits} bits: ITQ {'beats' if ok else 'does NOT beat'} LSH "
                    f"({itq['map']:.4f} vs {lsh['map']:.4f})"
                    + (
                        ""
                        if pca is None
                        else f", {'beats' if ok_pca else 'does NOT beat'} PCA-sign "
                        f"({pca['map']:.4f})"
                    )
                )
    lines += ["## Verdict (mAP)", "", *verdicts, ""]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> bool:
    try:
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, len(args.datasets), figsize=(5 * len(args.datasets), 4))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, args.datasets):
        for method in METHODS:
            pts = [
                (r["nbits"], r["map"])
                for r in rows
                if r["dataset"] == name and r["method"] == method
            ]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", label=method)
        ax.set_title(name)
        ax.set_xlabel("bits")
        ax.set_ylabel(f"mAP@{args.k_map}")
        ax.set_xticks(args.bits)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--queries", type=int, default=10_000, help="test queries used (max 10000)")
    p.add_argument("--k-map", type=int, default=1000, help="K of mAP@K")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    args.argv = argv
    if any(b % 8 for b in args.bits):
        p.error("--bits must be multiples of 8")
    rows = run(args)
    md = to_markdown(rows, args)
    write_report(args.out, "binary", md, lambda png: plot(rows, args, png), "mAP vs bits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
