"""IVF with inner product: how the coarse centroids are trained, measured.

faiss trains an inner-product IVF's centroids with spherical k-means whose assignment step is
the IndexFlatIP quantizer (its centroids have unit norm); lists are assigned by inner product.
quanta does the same by default (``CoarseAssign::Spherical``); ``CoarseAssign::L2`` (plain
k-means) is the alternative, measured here as faiss IVF over ``faiss.Kmeans`` centroids. Same
data, same nlist / nprobe, one thread: recall@10 of IVF-Flat against the exact inner-product
top-10, the vectors scanned per query (probed list sizes: unbalanced lists scan more at equal
nprobe) and the list-size imbalance (faiss ``imbalance_factor``).

    python benches/ivf_ip_coarse.py      # writes benches/results/<cpu>/ivf_ip_coarse.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import faiss
import numpy as np
import quanta
from quanta import datasets

sys.path.insert(0, str(Path(__file__).parent))
from bench_cpu import cpu_tag, describe


def recall(ids: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, gt)]))


def imbalance(sizes: np.ndarray) -> float:
    s = sizes.astype(np.float64)
    return float((s * s).sum() * len(s) / s.sum() ** 2)


def scanned(centroids: np.ndarray, sizes: np.ndarray, xq: np.ndarray, nprobe: int) -> float:
    """Mean number of vectors in the nprobe lists of largest inner product."""
    probes = np.argsort(-(xq @ np.asarray(centroids).T), axis=1)[:, :nprobe]
    return float(sizes[probes].sum(axis=1).mean())


def run(name: str, xb: np.ndarray, xq: np.ndarray, nlist: int) -> list[str]:
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    gt = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    faiss.omp_set_num_threads(1)
    quanta.set_num_threads(1)
    fi = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(xb.shape[1]), xb.shape[1], nlist, faiss.METRIC_INNER_PRODUCT
    )
    fi.train(xb)
    fi.add(xb)
    fsizes = np.array([fi.invlists.list_size(i) for i in range(nlist)])
    qi = quanta.IndexIVFFlat(xb.shape[1], nlist, metric="ip")
    qi.train(xb)
    qi.add(xb)
    qsizes = qi.invlists.sizes
    # the alternative: plain L2 k-means centroids, lists still assigned by inner product
    km = faiss.Kmeans(xb.shape[1], nlist, niter=10, seed=1234)
    km.train(xb)
    lq = faiss.IndexFlatIP(xb.shape[1])
    lq.add(km.centroids)
    fl = faiss.IndexIVFFlat(lq, xb.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    fl.add(xb)
    lsizes = np.array([fl.invlists.list_size(i) for i in range(nlist)])
    rows = []
    for nprobe in (1, 4, 16):
        fi.nprobe = fl.nprobe = nprobe
        rf = recall(fi.search(xq, 10)[1], gt)
        rl = recall(fl.search(xq, 10)[1], gt)
        sl = scanned(km.centroids, lsizes, xq, nprobe)
        rq = recall(qi.search(xq, 10, nprobe=nprobe)[1], gt)
        sq = scanned(qi.centroids, qsizes, xq, nprobe)
        sf = scanned(fi.quantizer.reconstruct_n(0, nlist), fsizes, xq, nprobe)
        rows.append(
            f"| {name} | {nlist} | {nprobe} | {rq:.3f} / {sq:.0f} | {rf:.3f} / {sf:.0f} | "
            f"{rl:.3f} / {sl:.0f} | {imbalance(qsizes):.2f} | {imbalance(fsizes):.2f} | "
            f"{imbalance(lsizes):.2f} |"
        )
    return rows


def main() -> None:
    rows = []
    deb = np.load(datasets.data_dir() / "debian-minilm.npz")
    rows += run("debian-minilm (unit norm)", deb["base"], deb["queries"][:500], 256)
    sift = datasets.load("sift_tiledb10k")
    rows += run("sift10k (raw, IP)", sift.base, sift.queries, 64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 64)).astype(np.float32)
    x *= rng.lognormal(0, 0.5, (20000, 1)).astype(np.float32)  # norms spread over ~4x
    rows += run("gaussian, lognormal norms", x[1000:], x[:1000], 128)
    out = Path(__file__).parent / "results" / cpu_tag() / "ivf_ip_coarse.md"
    text = "\n".join(
        [
            "# IVF-Flat, inner product: spherical IP k-means (quanta, faiss) vs L2 k-means",
            "",
            f"CPU: {describe()}; 1 thread; faiss {faiss.__version__}."
            " Recall@10 against the exact inner-product top-10 / mean vectors scanned per query;"
            " imbalance = faiss imbalance_factor of the list sizes (1 = balanced).",
            "",
            "| data | nlist | nprobe | quanta R@10 / scanned | faiss R@10 / scanned "
            "| L2 k-means R@10 / scanned | quanta imbalance | faiss imbalance "
            "| L2 k-means imbalance |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
