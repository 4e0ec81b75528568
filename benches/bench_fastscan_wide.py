"""4-bit PQ fast scan past M = 256: quanta vs faiss ``IndexPQFastScan`` QPS and recall.

N × 384 random unit vectors (inner product), ``PQ{M}x4fs`` for M in 96, 192, 384 (384 = 4 bits
per dimension, the case past the old M <= 256 limit), both libraries with the *same* centroids
(trained by faiss, loaded into quanta with ``ProductQuantizer.from_centroids``), so the QPS
compare scan speed and the recall the table rounding. 1 and 2 threads, nq queries, k = 10,
best of ``--repeat`` runs. Writes ``benches/results/<cpu-tag>/fastscan_wide.{md,json}``.

    python benches/bench_fastscan_wide.py [--n 100000] [--nq 1000] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import bench_cpu
import faiss
import numpy as np
import quanta


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _recall(ids: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([np.intersect1d(a, b).size / gt.shape[1] for a, b in zip(ids, gt)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--ms", default="96,192,384")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    d, k = a.d, 10
    xb, xq = _unit(a.n, d, 1), _unit(a.nq, d, 2)
    gt = np.argsort(-(xq @ xb.T), axis=1)[:, :k]
    rows = []
    for M in [int(m) for m in a.ms.split(",")]:
        fidx = faiss.IndexPQFastScan(d, M, 4, faiss.METRIC_INNER_PRODUCT)
        fidx.train(xb[: min(a.n, 20_000)])
        fidx.add(xb)
        cent = faiss.vector_to_array(fidx.pq.centroids).reshape(M, 16, d // M)
        qidx = quanta.IndexPQFastScan.from_pq(quanta.ProductQuantizer.from_centroids(cent), "ip")
        qidx.add(xb)
        for t in [int(v) for v in a.threads.split(",")]:
            faiss.omp_set_num_threads(t)
            quanta.set_num_threads(t)
            tf, (_, fi) = _best(lambda f=fidx: f.search(xq, k), a.repeat)
            tq, (_, qi) = _best(lambda i=qidx: i.search(xq, k, k_factor=1), a.repeat)
            row = {
                "spec": f"PQ{M}x4fs",
                "M": M,
                "threads": t,
                "quanta_qps": a.nq / tq,
                "faiss_qps": a.nq / tf,
                "quanta_recall10": _recall(qi, gt),
                "faiss_recall10": _recall(fi, gt),
                "agreement": _recall(qi, fi),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    info = bench_cpu.cpu_info()
    out = a.out or Path(__file__).resolve().parent / "results" / bench_cpu.cpu_tag(info)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "cpu": info,
        "n": a.n,
        "nq": a.nq,
        "d": d,
        "k": k,
        "simd": quanta.simd_level(),
        "faiss": faiss.__version__,
        "repeat": a.repeat,
    }
    (out / "fastscan_wide.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "# 4-bit PQ fast scan past M = 256: quanta vs faiss",
        "",
        f"CPU: {bench_cpu.describe(info)}; quanta SIMD level {meta['simd']}; faiss "
        f"{faiss.__version__}. N = {a.n} × {d} random unit vectors, inner product, "
        f"{a.nq} queries, k = {k}, same centroids in both, best of {a.repeat}.",
        "",
        "| index | threads | quanta QPS | faiss QPS | quanta / faiss | 10-R@10 quanta | "
        "10-R@10 faiss | top-10 agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['spec']} | {r['threads']} | {r['quanta_qps']:.0f} | {r['faiss_qps']:.0f} | "
            f"{r['quanta_qps'] / r['faiss_qps']:.2f} | {r['quanta_recall10']:.4f} | "
            f"{r['faiss_recall10']:.4f} | {r['agreement']:.4f} |"
        )
    (out / "fastscan_wide.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
