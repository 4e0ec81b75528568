"""IVF over scalar-quantized codes: quanta ``IndexIVFScalarQuantizer`` vs faiss
``IndexIVFScalarQuantizer``, same data, same nlist / nprobe, same threads.

Recall is 10-recall@10 against the exact inner-product top-10 of debian-minilm (384-d sentence
embeddings, 58k base, 2,000 queries; inner product, as these embeddings are searched); QPS is
one batch of all queries, best of ``--reps``. faiss trains its own coarse centroids (its
k-means), so the recalls are those of two independent trainings, not of identical indexes
(tests/test_sq.py checks identity on shared centroids).

    python benches/bench_ivf_sq.py      # writes benches/results/<cpu>/ivf_sq.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import quanta

sys.path.insert(0, str(Path(__file__).parent))
from bench_cpu import cpu_tag, describe

FAISS_QT = {"8bit": "QT_8bit", "4bit": "QT_4bit", "fp16": "QT_fp16"}


def recall(ids: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, gt)]))


def best_time(f: object, reps: int) -> float:
    f()  # type: ignore[operator]
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()  # type: ignore[operator]
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(quanta.datasets.data_dir() / "debian-minilm.npz"))
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    z = np.load(a.data)
    xb = np.ascontiguousarray(z["base"], dtype=np.float32)
    xq = np.ascontiguousarray(z["queries"], dtype=np.float32)
    gt = z["gt_ip"][:, :10]
    d = xb.shape[1]
    faiss.omp_set_num_threads(a.threads)
    quanta.set_num_threads(a.threads)
    rows = []
    for qtype in ("8bit", "4bit", "fp16"):
        ours = quanta.IndexIVFScalarQuantizer(d, a.nlist, qtype, "ip")
        t0 = time.perf_counter()
        ours.train(xb)
        ours.add(xb)
        t_ours = time.perf_counter() - t0
        coarse = faiss.IndexFlatIP(d)
        ref = faiss.IndexIVFScalarQuantizer(
            coarse,
            d,
            a.nlist,
            getattr(faiss.ScalarQuantizer, FAISS_QT[qtype]),
            faiss.METRIC_INNER_PRODUCT,
        )
        t0 = time.perf_counter()
        ref.train(xb)
        ref.add(xb)
        t_ref = time.perf_counter() - t0
        for nprobe in (4, 16, 64):
            ref.nprobe = nprobe
            tf = best_time(lambda r=ref: r.search(xq, 10), a.reps)
            tq = best_time(lambda o=ours, p=nprobe: o.search(xq, 10, nprobe=p), a.reps)
            rf = recall(ref.search(xq, 10)[1], gt)
            rq = recall(ours.search(xq, 10, nprobe=nprobe)[1], gt)
            nq = xq.shape[0]
            rows.append(
                f"| SQ{qtype.replace('bit', '')} | {ours.code_size} | {nprobe} | {rf:.3f} | "
                f"{nq / tf:,.0f} | {rq:.3f} | {nq / tq:,.0f} | **{tf / tq:.2f}** | "
                f"{t_ref:.1f} | {t_ours:.1f} |"
            )
            print(rows[-1], flush=True)
    out = Path(__file__).parent / "results" / cpu_tag() / "ivf_sq.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# IVF-SQ: quanta IndexIVFScalarQuantizer vs faiss IndexIVFScalarQuantizer\n\n"
        f"{describe()}; faiss {faiss.__version__}; {a.threads} thread(s); "
        f"debian-minilm {xb.shape[0]} x {d}, {xq.shape[0]} queries, inner product, "
        f"IVF{a.nlist}, residual codes (both libraries' default); QPS: one batch, best of "
        f"{a.reps}. *build s*: train + add.\n\n"
        "| codes | bytes/vector | nprobe | faiss 10-R@10 | faiss QPS | quanta 10-R@10 | "
        "quanta QPS | QPS q/f | faiss build s | quanta build s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
