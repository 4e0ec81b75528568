"""quanta vs faiss (PQ fast scan, RaBitQ, RaBitQ fast scan) vs turbovec at 1, 2 and 4 bits per
dimension: 10-recall@10 on debian-minilm (384-d, exact inner-product ground truth) and QPS on
N x 384 random unit vectors, same process, same threads. Writes Markdown + JSON under
benches/results/<cpu-tag>/compare_peers.{md,json}.

    python benches/compare_peers.py [--n 1000000] [--nq 1000] [--threads 1,2] [--quick]

quanta's rows are factory strings (one line each in QUANTA below); peers are skipped with a
note when not installed. turbovec runs its searches on rayon's global pool, which takes its size
from ``RAYON_NUM_THREADS`` once per process: its add and QPS are measured in a child process
per thread count, started with that variable (same data, same seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import quanta
from bench_cpu import cpu_info, cpu_tag, describe  # type: ignore[import-not-found]

K = 10
# budget (bits/dim) -> quanta factory strings measured at that budget
QUANTA: dict[int, list[str]] = {
    1: ["RaBitQ", "PQ96x4fs"],
    2: ["RaBitQ2", "PQ192x4fs", "SQlm2"],
    4: ["RaBitQ4", "PQ384x4fs", "SQ4", "SQlm4"],
}


def _faiss_builders(d: int, bits: int) -> dict[str, Callable[[], Any]]:
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    out: dict[str, Callable[[], Any]] = {
        f"faiss PQ{d * bits // 4}x4fs": lambda: faiss.IndexPQFastScan(d, d * bits // 4, 4, ip),
    }
    if bits == 1:
        out["faiss RaBitQ"] = lambda: faiss.IndexRaBitQ(d, ip)
        out["faiss RaBitQfs"] = lambda: faiss.IndexRaBitQFastScan(d, ip)
    else:
        out[f"faiss RaBitQ{bits}"] = lambda: faiss.IndexRaBitQ(d, ip, bits)
        out[f"faiss RaBitQfs{bits}"] = lambda: faiss.IndexRaBitQFastScan(d, ip, 32, bits)
    return out


class _Turbo:
    def __init__(self, d: int, bits: int) -> None:
        import turbovec

        self.ix = turbovec.TurboQuantIndex(d, bits)

    def train(self, x: Any) -> None:
        pass

    def add(self, x: Any) -> None:
        self.ix.add(x)

    def search(self, q: Any, k: int) -> Any:
        return self.ix.search(q, k)


def _timed(f: Callable[[], Any], reps: int = 2) -> tuple[Any, float]:
    out = f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return out, best


def _rows(d: int, bits: int) -> dict[str, Callable[[], Any]]:
    rows: dict[str, Callable[[], Any]] = {}
    for fs in QUANTA[bits]:
        rows[f"quanta {fs}"] = lambda fs=fs: quanta.index_factory(d, fs, "ip")
    try:
        rows.update(_faiss_builders(d, bits))
    except ImportError:
        pass
    try:
        import turbovec  # noqa: F401

        if bits in (2, 4):
            rows[f"turbovec {bits}bit"] = lambda: _Turbo(d, bits)
    except ImportError:
        pass
    return rows


def _threads(n: int) -> None:
    quanta.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def _synthetic(n: int, nq: int) -> tuple[Any, Any]:
    """The QPS data: n base and nq query unit vectors of 384 dimensions (seeded)."""
    rng = np.random.default_rng(0)
    sb = rng.standard_normal((n, 384)).astype(np.float32)
    sb /= np.linalg.norm(sb, axis=1, keepdims=True)
    sq = rng.standard_normal((nq, 384)).astype(np.float32)
    sq /= np.linalg.norm(sq, axis=1, keepdims=True)
    return sb, sq


def _turbovec_child(bits: int, n: int, nq: int) -> None:
    """Child process (``--turbovec-child``): add + search timings of turbovec on the
    synthetic data, on as many threads as RAYON_NUM_THREADS says; one JSON line out."""
    sb, sq = _synthetic(n, nq)
    ix = _Turbo(384, bits)
    t = time.perf_counter()
    ix.add(sb)
    t_add = time.perf_counter() - t
    _, s = _timed(lambda: ix.search(sq, K))
    print(json.dumps({"add_s": t_add, "qps": len(sq) / s}))


def _turbovec_timings(bits: int, n: int, nq: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--turbovec-child", str(bits), "--n", str(n), "--nq", str(nq)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _recall(ids: Any, gt: Any) -> float:
    ids = np.asarray(ids)
    return float(np.mean([np.intersect1d(a[:K], b[:K]).size / K for a, b in zip(ids, gt)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default=str(quanta.datasets.data_dir() / "debian-minilm.npz"))
    ap.add_argument("--turbovec-child", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    n = 100_000 if a.quick else a.n
    if a.turbovec_child:
        _turbovec_child(a.turbovec_child, n, a.nq)
        return
    z = np.load(a.data)
    xb = z["base"].astype(np.float32)
    xq = z["queries"].astype(np.float32)[: a.nq]
    gt = z["gt_ip"][: a.nq]
    sb, sq = _synthetic(n, a.nq)
    threads = [int(t) for t in a.threads.split(",")]
    results: list[dict[str, Any]] = []
    for bits in (1, 2, 4):
        for name, make in _rows(384, bits).items():
            _threads(threads[0])
            try:
                ix = make()
                ix.train(xb)
                ix.add(xb)
                _, ids = ix.search(xq, K)
                rec = _recall(ids, gt)
                if name.startswith("turbovec"):
                    timed = {th: _turbovec_timings(bits, n, a.nq, th) for th in threads}
                    row = {"bits": bits, "index": name, "recall": rec}
                    row["add_s"] = timed[threads[-1]]["add_s"]
                    row.update({f"qps_{th}t": timed[th]["qps"] for th in threads})
                    print(row, flush=True)
                    results.append(row)
                    continue
                ix = make()
                ix.train(sb[:100_000])
                t = time.perf_counter()
                ix.add(sb)
                t_add = time.perf_counter() - t
                row: dict[str, Any] = {
                    "bits": bits,
                    "index": name,
                    "recall": rec,
                    "add_s": t_add,
                }
                for th in threads:
                    _threads(th)
                    _, s = _timed(lambda ix=ix: ix.search(sq, K))
                    row[f"qps_{th}t"] = len(sq) / s
            except Exception as e:  # an unsupported combination is a row with a note
                row = {"bits": bits, "index": name, "error": repr(e)}
            print(row, flush=True)
            results.append(row)
    cpu = cpu_info()
    out = Path(__file__).parent / "results" / cpu_tag()
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_peers.json").write_text(
        json.dumps({"cpu": cpu, "n": n, "nq": a.nq, "rows": results}, indent=1)
    )
    cols = ["recall", "add_s"] + [f"qps_{t}t" for t in threads]
    lines = [
        f"# quanta vs peers at equal bits per dimension ({describe(cpu)})",
        "",
        f"recall: 10-recall@10 on debian-minilm ({a.nq} queries, inner product); QPS and add "
        f"time on {n} x 384 random unit vectors, k=10; add_s at {threads[0]} thread(s) "
        f"(turbovec: {threads[-1]}, its pool in a child process per thread count).",
        "",
        "| bits/dim | index | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for r in results:
        vals = [
            (f"{r[c]:.3f}" if c == "recall" else f"{r[c]:.1f}" if c == "add_s" else f"{r[c]:.0f}")
            if c in r
            else r.get("error", "")[:40]
            for c in cols
        ]
        lines.append(f"| {r['bits']} | {r['index']} | " + " | ".join(vals) + " |")
    (out / "compare_peers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
