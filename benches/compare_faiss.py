#!/usr/bin/env python
"""quanta vs faiss-cpu, same data, same process, fixed thread counts.

Runs k-means, exact (flat L2) search, binary (Hamming, ``IndexBinaryFlat``) search, product
quantization (ADC scan, encoding, training vs ``IndexPQ``) and the lattice quantizers (Zn sphere
codec vs faiss ``ZnSphereCodec``, E8 decoding vs numpy, lattice search vs ``IndexPQ``) with both
libraries at each thread count, prints a Markdown table of quanta/faiss ratios and writes it to
``<out>/compare_faiss.md`` with the raw numbers in ``<out>/compare_faiss.json`` (default
``benches/results/<cpu tag>``, e.g. ``amd-zen4``, ``intel-sapphire-rapids``: results are filed
per CPU, and each file records the CPU's vendor, family/model and SIMD flags); with ``--only
NAME`` the files are ``compare_faiss_NAME.{md,json}``, so a partial run never
overwrites the full report.

Timing: ``time.perf_counter``, one warm-up call per library and thread count (for k-means a
1-iteration run on the same data), then the best (min) of R repetitions, faiss and quanta
alternating. Threads are set explicitly: ``faiss.omp_set_num_threads(n)`` (faiss's OpenBLAS is
the OpenMP build, so this covers its GEMM too) and ``quanta.set_num_threads(n)``.

Usage::

    .venv/bin/python benches/compare_faiss.py                # full run (~10 min on 2 cores)
    .venv/bin/python benches/compare_faiss.py --quick        # smoke test (smaller sizes)
    .venv/bin/python benches/compare_faiss.py --only flat --threads 1
    .venv/bin/python benches/compare_faiss.py --only binary      # Hamming search only
    .venv/bin/python benches/compare_faiss.py --only pq          # product quantization only
    .venv/bin/python benches/compare_faiss.py --only lattice     # lattice quantizers only
    .venv/bin/python benches/compare_faiss.py --only fastscan    # 4-bit PQ fast scan only
    .venv/bin/python benches/compare_faiss.py --only ivf         # IVFPQ / IVFFlat (bench_ivf.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import bench_cpu
import bench_ivf
import faiss
import numpy as np
import quanta

KMEANS_TIME_TARGET = 0.8  # quanta time / faiss time <= this
KMEANS_OBJ_TARGET = 1.01  # quanta objective / faiss objective <= this
FLAT_QPS_TARGET = 1.0  # quanta QPS / faiss QPS >= this
BINARY_TARGET = 1.5  # quanta codes/s / faiss codes/s >= this (IndexBinaryFlat, k=10)
PQ_SCAN_TARGET = 1.5  # quanta codes/s / faiss codes/s >= this (IndexPQ ADC, nbits=8, k=10)
PQ_ENCODE_TARGET = 1.0  # quanta vectors/s / faiss vectors/s >= this
PQ_TRAIN_TARGET = 1.0  # quanta training time / faiss training time <= this
FASTSCAN_TARGET = 1.0  # quanta codes/s / faiss IndexPQFastScan codes/s >= this (k=10)
ZN_SPEED_TARGET = 2.0  # quanta Zn encode/decode throughput / faiss ZnSphereCodec >= this
TIE_RTOL = 1e-4  # ids that differ are a tie when their exact distances agree within this


# --------------------------------------------------------------------------------------------
# helpers


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def set_threads(n: int) -> None:
    faiss.omp_set_num_threads(n)
    quanta.set_num_threads(n)


def system_busy_s() -> float | None:
    """CPU seconds all processes on the machine have spent busy so far (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    v = [int(x) for x in fields]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    steal = v[7] if len(v) > 7 else 0
    return (sum(v[:8]) - idle - steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


FOREIGN_MAX = 0.25  # a timed run is "clean" when other processes used less than this many cores


class Guard:
    """Waits for the machine to go quiet before a timed run, repeats runs disturbed by other load.

    One budget (seconds) covers the waiting and the repeated runs; once spent, runs are timed as
    they come and disturbed ones are only flagged.
    """

    def __init__(self, budget_s: float, retries: int) -> None:
        self.budget_s = budget_s
        self.retries = retries
        self.waited_s = 0.0
        self.retried_runs = 0  # disturbed runs that were repeated
        self.dirty_runs = 0  # disturbed runs that were kept (no retry or budget left)

    def wait_idle(self, window: float = 0.5) -> None:
        while self.budget_s - self.waited_s > 0:
            b0, c0 = system_busy_s(), process_cpu_s()
            if b0 is None:
                return
            t0 = time.perf_counter()
            time.sleep(window)
            b1, c1 = system_busy_s(), process_cpu_s()
            dt = time.perf_counter() - t0
            self.waited_s += dt
            if b1 is not None and ((b1 - b0) - (c1 - c0)) / dt < FOREIGN_MAX:
                return


GUARD = Guard(budget_s=0.0, retries=0)


class Timing:
    """Wall time of each timed run plus CPU accounting to spot interference from other load.

    ``cpu`` is this process's CPU time per run (user + system, OpenMP spin-waits included);
    ``foreign`` is the CPU time the rest of the machine used meanwhile (from /proc/stat, at
    clock-tick resolution), in cores. Load from other processes ruins multi-thread timings on a
    2-core machine, faiss's statically scheduled OpenMP loops most of all, so a run with more than
    ``FOREIGN_MAX`` foreign cores is retried (``--retries``) and the best is taken over clean runs.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.foreign: list[float | None] = []

    def clean(self, i: int) -> bool:
        f = self.foreign[i]
        return f is None or f < FOREIGN_MAX

    def run_once(self, fn: Callable[[], Any]) -> Any:
        b0, c0, t0 = system_busy_s(), process_cpu_s(), time.perf_counter()
        out = fn()
        t1, c1, b1 = time.perf_counter(), process_cpu_s(), system_busy_s()
        wall = t1 - t0
        self.wall.append(wall)
        self.cpu.append(c1 - c0)
        if b0 is not None and b1 is not None:
            self.foreign.append(max(0.0, (b1 - b0) - (c1 - c0)) / wall)
        else:
            self.foreign.append(None)
        return out

    def run(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(GUARD.retries + 1):
            GUARD.wait_idle()
            out = self.run_once(fn)
            if self.clean(len(self.wall) - 1):
                break
            if attempt == GUARD.retries or GUARD.budget_s <= GUARD.waited_s + self.wall[-1]:
                GUARD.dirty_runs += 1
                break
            GUARD.retried_runs += 1
            GUARD.waited_s += self.wall[-1]  # a repeated run spends the same budget as waiting
            print(
                f"    (other load {self.foreign[-1]:.2f} cores during the run: retrying)",
                flush=True,
            )
        return out

    def best_index(self) -> int:
        clean = [i for i in range(len(self.wall)) if self.clean(i)]
        pool = clean or list(range(len(self.wall)))
        return min(pool, key=lambda i: self.wall[i])

    @property
    def best(self) -> float:
        return self.wall[self.best_index()]

    def summary(self) -> dict[str, Any]:
        i = self.best_index()
        return {
            "times": self.wall,
            "cpu_s": self.cpu,
            "foreign_cores": self.foreign,
            "cpu_per_wall_best": self.cpu[i] / self.wall[i],
            "foreign_cores_best": self.foreign[i],
            "best_is_clean": self.clean(i),
        }


def best_of(
    fns: dict[str, Callable[[], Any]],
    reps: int,
    warmups: dict[str, Callable[[], Any]] | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, Any]], dict[str, Any]]:
    """Warm each function up once, then time ``reps`` alternating rounds; min per function."""
    for fn in (warmups or fns).values():
        fn()
    timings = {name: Timing() for name in fns}
    last: dict[str, Any] = {}
    for _ in range(reps):
        for name, fn in fns.items():
            last[name] = timings[name].run(fn)
    return (
        {n: t.best for n, t in timings.items()},
        {n: t.summary() for n, t in timings.items()},
        last,
    )


def kmeans_objective(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum over x of the squared L2 distance to the nearest centroid (faiss IndexFlatL2)."""
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, _ = index.search(x, 1)
    return float(dist[:, 0].astype(np.float64).sum())


def exact_sqdist(q: np.ndarray, base: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Float64 squared L2 distance of each query row to base[ids[i, j]]; NaN where ids < 0."""
    safe = np.where(ids < 0, 0, ids)
    diff = base[safe].astype(np.float64) - q[:, None, :].astype(np.float64)
    out = np.einsum("ijk,ijk->ij", diff, diff)
    out[ids < 0] = np.nan
    return out


def compare_knn(
    q: np.ndarray,
    base: np.ndarray,
    dq: np.ndarray,
    iq: np.ndarray,
    df: np.ndarray,
    i_f: np.ndarray,
) -> dict[str, Any]:
    """Identical ids up to ties: where ids differ, their exact distances must agree (rtol)."""
    same = iq == i_f
    eq = exact_sqdist(q, base, iq)
    ef = exact_sqdist(q, base, i_f)
    scale = np.maximum(np.maximum(np.abs(eq), np.abs(ef)), 1e-12)
    tie = np.abs(eq - ef) <= TIE_RTOL * scale
    genuine = (~same) & ~tie
    # set-level check (rank order inside near-ties does not matter)
    set_overlap = np.mean([len(np.intersect1d(a, b)) / a.shape[0] for a, b in zip(iq, i_f)])
    # the distances each library reports vs the exact distance of the id it returned
    own_q = np.abs(dq.astype(np.float64) - eq) / np.maximum(eq, 1e-12)
    own_f = np.abs(df.astype(np.float64) - ef) / np.maximum(ef, 1e-12)
    # rank-wise reported distances, quanta vs faiss
    rank_rel = np.abs(dq.astype(np.float64) - df) / np.maximum(np.abs(df.astype(np.float64)), 1e-12)
    return {
        "identical_ids": float(same.mean()),
        "differing_ids": int((~same).sum()),
        "ties": int(((~same) & tie).sum()),
        "genuine_mismatches": int(genuine.sum()),
        "set_overlap": float(set_overlap),
        "max_rel_dist_quanta_vs_exact": float(np.nanmax(own_q)),
        "max_rel_dist_faiss_vs_exact": float(np.nanmax(own_f)),
        "max_rel_dist_quanta_vs_faiss_rankwise": float(np.nanmax(rank_rel)),
        "sorted_ascending_quanta": bool(np.all(np.diff(dq, axis=1) >= 0)),
    }


def recall_at(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    return float(np.mean([len(np.intersect1d(a[:k], g[:k])) / k for a, g in zip(ids, gt)]))


def recall_tie_aware(ids: np.ndarray, gt_dist: np.ndarray, exact: np.ndarray, k: int) -> float:
    """A returned id counts when its exact distance is <= the k-th ground-truth distance."""
    thr = gt_dist[:, k - 1 : k].astype(np.float64)
    return float(np.mean(exact[:, :k] <= thr * (1 + 1e-6) + 1e-6))


def load_dataset(name: str) -> Any:
    try:
        return quanta.datasets.load(name)
    except (quanta.datasets.DatasetNotFoundError, OSError) as e:
        print(f"  [skip] dataset {name}: {e}", file=sys.stderr)
        return None


def load_note(row: dict[str, Any]) -> str:
    """CPU per wall second of each library's best run, and other processes' load meanwhile."""
    parts = []
    for lib in ("faiss", "quanta"):
        t = row[f"{lib}_timing"]
        fc = t["foreign_cores_best"]
        parts.append(
            f"{lib} cpu/wall {t['cpu_per_wall_best']:.2f}"
            + ("" if fc is None else f" other load {fc:.2f} cores")
        )
    return ", ".join(parts)


def max_foreign(rows: list[dict[str, Any]]) -> tuple[float, str]:
    worst, where = 0.0, ""
    for r in rows:
        for lib in ("faiss", "quanta"):
            fc = r[f"{lib}_timing"]["foreign_cores_best"]
            if fc is not None and fc > worst:
                worst = fc
                where = f"{r['case']} {r['dataset']} threads={r['threads']} ({lib})"
    return worst, where


NOISY = "(noisy)"


def row_clean(row: dict[str, Any]) -> bool:
    return bool(row["faiss_timing"]["best_is_clean"] and row["quanta_timing"]["best_is_clean"])


def mark(row: dict[str, Any]) -> str:
    return "" if row_clean(row) else f" {NOISY}"


def fmt_ok(ok: bool) -> str:
    return "ok" if ok else "MISS"


# --------------------------------------------------------------------------------------------
# k-means


def run_kmeans_case(
    label: str, x: np.ndarray, k: int, niter: int, threads: list[int], reps: int
) -> list[dict[str, Any]]:
    n, d = x.shape
    seed = 1234
    rows = []
    for nt in threads:
        set_threads(nt)
        print(f"  k-means {label}: n={n} d={d} k={k} niter={niter} threads={nt} ...", flush=True)
        out: dict[str, Any] = {}

        def run_faiss(it: int = niter) -> Any:
            km = faiss.Kmeans(d, k, niter=it, seed=seed)
            km.train(x)
            return km

        def run_quanta(it: int = niter) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return quanta.KMeans(d, k, niter=it, seed=seed).fit(x)

        best, all_t, last = best_of(
            {"faiss": run_faiss, "quanta": run_quanta},
            reps,
            warmups={"faiss": lambda: run_faiss(1), "quanta": lambda: run_quanta(1)},
        )
        fk, qk = last["faiss"], last["quanta"]
        obj_f = kmeans_objective(x, fk.centroids)
        obj_q = kmeans_objective(x, qk.centroids)
        out = {
            "case": "kmeans",
            "dataset": label,
            "n": n,
            "d": d,
            "k": k,
            "niter": niter,
            "seed": seed,
            "threads": nt,
            "reps": reps,
            "faiss_s": best["faiss"],
            "quanta_s": best["quanta"],
            "faiss_timing": all_t["faiss"],
            "quanta_timing": all_t["quanta"],
            "time_ratio": best["quanta"] / best["faiss"],
            "faiss_obj": obj_f,
            "quanta_obj": obj_q,
            "obj_ratio": obj_q / obj_f,
            "faiss_reported_obj_last": float(fk.obj[-1]) if len(fk.obj) else None,
            "quanta_reported_obj_last": float(qk.obj[-1]) if len(qk.obj) else None,
            "quanta_nsplit": int(qk.nsplit),
        }
        out["time_ok"] = out["time_ratio"] <= KMEANS_TIME_TARGET
        out["obj_ok"] = out["obj_ratio"] <= KMEANS_OBJ_TARGET
        print(
            f"    faiss {out['faiss_s']:.2f}s quanta {out['quanta_s']:.2f}s "
            f"ratio {out['time_ratio']:.3f}; obj ratio {out['obj_ratio']:.5f}; {load_note(out)}",
            flush=True,
        )
        rows.append(out)
    return rows


def bench_kmeans(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n, k = (50_000, 256) if args.quick else (200_000, 1024)
    d = 128
    x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    rows += run_kmeans_case("gaussian", x, k, 20, args.threads, args.kmeans_reps)
    del x
    # issue 15's case: a k between the candidate-list threshold and the large cases, short runs
    n, k = (30_000, 512) if args.quick else (100_000, 512)
    x = np.random.default_rng(1).standard_normal((n, 64), dtype=np.float32)
    rows += run_kmeans_case("gaussian", x, k, 10, args.threads, args.kmeans_reps)
    del x
    if args.no_real:
        return rows
    fm = load_dataset("fashion-mnist")
    if fm is not None:
        kf = 256 if args.quick else 1024
        xf = fm.base if not args.quick else np.ascontiguousarray(fm.base[:20_000])
        rows += run_kmeans_case("fashion-mnist", xf, kf, 20, args.threads, args.kmeans_reps)
    sift = load_dataset("sift_tiledb10k")
    if sift is not None:
        rows += run_kmeans_case(
            "sift_tiledb10k", sift.base, 256, 20, args.threads, args.kmeans_reps
        )
    return rows


# --------------------------------------------------------------------------------------------
# flat search


def run_flat_case(
    label: str,
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    threads: list[int],
    reps: int,
    gt: np.ndarray | None = None,
    gt_dist: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    nb, d = base.shape
    nq = queries.shape[0]
    fi = faiss.IndexFlatL2(d)
    fi.add(base)
    qi = quanta.IndexFlatL2(d)
    qi.add(base)
    rows = []
    for nt in threads:
        set_threads(nt)
        print(f"  flat {label}: nb={nb} d={d} nq={nq} k={k} threads={nt} ...", flush=True)
        best, all_t, last = best_of(
            {"faiss": lambda: fi.search(queries, k), "quanta": lambda: qi.search(queries, k)},
            reps,
        )
        df, i_f = last["faiss"]
        dq, iq = last["quanta"]
        out: dict[str, Any] = {
            "case": "flat_l2",
            "dataset": label,
            "nb": nb,
            "d": d,
            "nq": nq,
            "k": k,
            "threads": nt,
            "reps": reps,
            "faiss_s": best["faiss"],
            "quanta_s": best["quanta"],
            "faiss_timing": all_t["faiss"],
            "quanta_timing": all_t["quanta"],
            "faiss_qps": nq / best["faiss"],
            "quanta_qps": nq / best["quanta"],
        }
        out["qps_ratio"] = out["quanta_qps"] / out["faiss_qps"]
        out["qps_ok"] = out["qps_ratio"] >= FLAT_QPS_TARGET
        out.update(compare_knn(queries, base, dq, iq, df, i_f))
        if gt is not None and gt_dist is not None:
            out["faiss_recall@10"] = recall_at(i_f, gt, 10)
            out["quanta_recall@10"] = recall_at(iq, gt, 10)
            out["faiss_recall@10_ties"] = recall_tie_aware(
                i_f, gt_dist, exact_sqdist(queries, base, i_f), 10
            )
            out["quanta_recall@10_ties"] = recall_tie_aware(
                iq, gt_dist, exact_sqdist(queries, base, iq), 10
            )
        print(
            f"    faiss {out['faiss_qps']:.0f} QPS quanta {out['quanta_qps']:.0f} QPS "
            f"ratio {out['qps_ratio']:.3f}; identical ids {out['identical_ids']:.4f}, "
            f"genuine mismatches {out['genuine_mismatches']}; {load_note(out)}",
            flush=True,
        )
        rows.append(out)
    return rows


def bench_flat(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    nb = 200_000 if args.quick else 1_000_000
    d, k = 128, 10
    rng = np.random.default_rng(0)
    base = rng.standard_normal((nb, d), dtype=np.float32)
    queries = rng.standard_normal((1000, d), dtype=np.float32)
    rows += run_flat_case("gaussian", base, queries, k, args.threads, args.reps)
    rows += run_flat_case(
        "gaussian", base, np.ascontiguousarray(queries[:100]), k, args.threads, args.reps
    )
    del base, queries
    if args.no_real:
        return rows
    fm = load_dataset("fashion-mnist")
    if fm is not None:
        nqf = 1000
        rows += run_flat_case(
            "fashion-mnist",
            fm.base,
            np.ascontiguousarray(fm.queries[:nqf]),
            k,
            args.threads,
            args.reps,
            gt=fm.gt[:nqf],
            gt_dist=fm.gt_dist[:nqf],
        )
    return rows


# --------------------------------------------------------------------------------------------
# binary (Hamming) search


def read_bandwidth_gbs(mib: int = 512, reps: int = 3) -> float:
    """Single-thread memory read bandwidth (GB/s): numpy sum over a buffer far larger than cache."""
    a = np.ones(mib * (1 << 20) // 8, dtype=np.uint64)
    a.sum()
    best = min(_timed(a.sum) for _ in range(reps))
    return a.nbytes / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_binary_case(
    nbits: int,
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    threads: list[int],
    reps: int,
    bandwidth_gbs: float,
) -> list[dict[str, Any]]:
    nb, cs = base.shape
    nq = queries.shape[0]
    fi = faiss.IndexBinaryFlat(nbits)
    fi.add(base)
    qi = quanta.IndexBinaryFlat(nbits)
    qi.add(base)
    rows = []
    for nt in threads:
        set_threads(nt)
        print(f"  binary: nb={nb} nbits={nbits} nq={nq} k={k} threads={nt} ...", flush=True)
        best, all_t, last = best_of(
            {"faiss": lambda: fi.search(queries, k), "quanta": lambda: qi.search(queries, k)},
            reps,
        )
        df, i_f = last["faiss"]
        dq, iq = last["quanta"]
        scanned = nb * nq
        out: dict[str, Any] = {
            "case": "binary_flat",
            "dataset": "uniform-random",
            "nb": nb,
            "nbits": nbits,
            "nq": nq,
            "k": k,
            "threads": nt,
            "reps": reps,
            "faiss_s": best["faiss"],
            "quanta_s": best["quanta"],
            "faiss_timing": all_t["faiss"],
            "quanta_timing": all_t["quanta"],
            "faiss_codes_per_s": scanned / best["faiss"],
            "quanta_codes_per_s": scanned / best["quanta"],
            # bytes of codes compared per second (each query reads every code once)
            "quanta_scan_gbs": scanned * cs / best["quanta"] / 1e9,
            "faiss_scan_gbs": scanned * cs / best["faiss"] / 1e9,
            "read_bandwidth_gbs": bandwidth_gbs,
            "same_distances": bool(np.array_equal(dq, df)),
            "identical_ids": float(np.mean(iq == i_f)),
        }
        out["ratio"] = out["quanta_codes_per_s"] / out["faiss_codes_per_s"]
        out["ok"] = out["ratio"] >= BINARY_TARGET
        # where ids differ the distances must be equal (a tie cut by k)
        out["genuine_mismatches"] = int(((iq != i_f) & (dq != df)).sum())
        print(
            f"    faiss {out['faiss_codes_per_s'] / 1e9:.3f} G codes/s, quanta "
            f"{out['quanta_codes_per_s'] / 1e9:.3f} G codes/s, ratio {out['ratio']:.2f}; "
            f"scan {out['quanta_scan_gbs']:.1f} GB/s vs DRAM read {bandwidth_gbs:.1f} GB/s; "
            f"same distances {out['same_distances']}; {load_note(out)}",
            flush=True,
        )
        rows.append(out)
    return rows


def bench_binary(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    nb = 200_000 if args.quick else 1_000_000
    bw = read_bandwidth_gbs(128 if args.quick else 512)
    print(f"  single-thread read bandwidth (numpy sum): {bw:.1f} GB/s", flush=True)
    rng = np.random.default_rng(0)
    for nbits in (64, 128, 256, 512):
        base = rng.integers(0, 256, size=(nb, nbits // 8), dtype=np.uint8)
        queries = rng.integers(0, 256, size=(1000, nbits // 8), dtype=np.uint8)
        for nq in (100, 1000):
            q = np.ascontiguousarray(queries[:nq])
            rows += run_binary_case(nbits, base, q, 10, args.threads, args.reps, bw)
        del base
    return rows


# --------------------------------------------------------------------------------------------
# product quantization


def _faiss_pq_index(d: int, m: int, centroids: np.ndarray, codes: np.ndarray) -> Any:
    """A faiss IndexPQ holding the given codebooks and codes (identical data on both sides)."""
    fi = faiss.IndexPQ(d, m, 8)
    faiss.copy_array_to_vector(centroids.ravel(), fi.pq.centroids)
    fi.is_trained = True
    fi.add_sa_codes(codes)
    return fi


def run_pq_scan_case(
    label: str,
    d: int,
    m: int,
    centroids: np.ndarray,
    codes: np.ndarray,
    queries: np.ndarray,
    k: int,
    threads: list[int],
    reps: int,
) -> list[dict[str, Any]]:
    nb = codes.shape[0]
    nq = queries.shape[0]
    fi = _faiss_pq_index(d, m, centroids, codes)
    qi = quanta.IndexPQ.from_pq(quanta.ProductQuantizer.from_centroids(centroids))
    qi.add_codes(codes)
    rows = []
    for nt in threads:
        set_threads(nt)
        print(f"  pq adc {label}: nb={nb} PQ{m}x8 nq={nq} k={k} threads={nt} ...", flush=True)
        best, all_t, last = best_of(
            {"faiss": lambda: fi.search(queries, k), "quanta": lambda: qi.search(queries, k)},
            reps,
        )
        df, i_f = last["faiss"]
        dq, iq = last["quanta"]
        scanned = nb * nq
        out: dict[str, Any] = {
            "case": "pq_adc",
            "dataset": label,
            "nb": nb,
            "d": d,
            "M": m,
            "nq": nq,
            "k": k,
            "threads": nt,
            "reps": reps,
            "faiss_s": best["faiss"],
            "quanta_s": best["quanta"],
            "faiss_timing": all_t["faiss"],
            "quanta_timing": all_t["quanta"],
            "faiss_codes_per_s": scanned / best["faiss"],
            "quanta_codes_per_s": scanned / best["quanta"],
            # table lookups per second per thread: the scan's bound is L1 load throughput
            "quanta_lookups_per_s_per_thread": scanned * m / best["quanta"] / nt,
            "identical_ids": float(np.mean(iq == i_f)),
            "max_rel_dist_diff": float(np.max(np.abs(dq - df) / np.maximum(np.abs(df), 1e-30))),
        }
        out["ratio"] = out["quanta_codes_per_s"] / out["faiss_codes_per_s"]
        out["ok"] = out["ratio"] >= PQ_SCAN_TARGET
        print(
            f"    faiss {out['faiss_codes_per_s'] / 1e6:.0f} M codes/s, quanta "
            f"{out['quanta_codes_per_s'] / 1e6:.0f} M codes/s, ratio {out['ratio']:.2f}; "
            f"{out['quanta_lookups_per_s_per_thread'] / 1e9:.2f} G lookups/s/thread; "
            f"same ids {out['identical_ids']:.4f}; {load_note(out)}",
            flush=True,
        )
        rows.append(out)
    return rows


def run_pq_encode_train(
    x_train: np.ndarray, x_enc: np.ndarray, m: int, threads: list[int], reps: int
) -> list[dict[str, Any]]:
    d = x_train.shape[1]
    rows = []
    for nt in threads:
        set_threads(nt)
        print(f"  pq train/encode: n_train={len(x_train)} n={len(x_enc)} PQ{m}x8 threads={nt}")
        fpq = faiss.ProductQuantizer(d, m, 8)
        qpq = quanta.ProductQuantizer(d, m, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tbest, _, _ = best_of(
                {
                    "faiss": lambda f=fpq: f.train(x_train),  # type: ignore[misc]
                    "quanta": lambda q=qpq: q.train(x_train),  # type: ignore[misc]
                },
                1,
                warmups={"none": lambda: None},
            )
        cent = faiss.vector_to_array(fpq.centroids).reshape(m, 256, d // m)
        q2 = quanta.ProductQuantizer.from_centroids(cent)
        ebest, eall, last = best_of(
            {
                "faiss": lambda f=fpq: f.compute_codes(x_enc),  # type: ignore[misc]
                "quanta": lambda q=q2: q.encode(x_enc),  # type: ignore[misc]
            },
            reps,
        )
        same = float(np.mean(last["faiss"] == last["quanta"]))
        out = {
            "case": "pq_encode_train",
            "dataset": "gaussian",
            "n_train": len(x_train),
            "n": len(x_enc),
            "d": d,
            "M": m,
            "threads": nt,
            "faiss_train_s": tbest["faiss"],
            "quanta_train_s": tbest["quanta"],
            "train_ratio": tbest["quanta"] / tbest["faiss"],
            "faiss_timing": eall["faiss"],
            "quanta_timing": eall["quanta"],
            "faiss_encode_per_s": len(x_enc) / ebest["faiss"],
            "quanta_encode_per_s": len(x_enc) / ebest["quanta"],
            "same_codes": same,
            "faiss_train_mse": float(
                ((x_train - fpq.decode(fpq.compute_codes(x_train))) ** 2).sum(1).mean()
            ),
            "quanta_train_mse": qpq.quantization_mse(x_train),
        }
        out["encode_ratio"] = out["quanta_encode_per_s"] / out["faiss_encode_per_s"]
        out["encode_ok"] = out["encode_ratio"] >= PQ_ENCODE_TARGET
        out["train_ok"] = out["train_ratio"] <= PQ_TRAIN_TARGET
        print(
            f"    train faiss {out['faiss_train_s']:.2f}s quanta {out['quanta_train_s']:.2f}s "
            f"(ratio {out['train_ratio']:.2f}); encode faiss "
            f"{out['faiss_encode_per_s'] / 1e6:.2f} M/s quanta "
            f"{out['quanta_encode_per_s'] / 1e6:.2f} M/s (ratio {out['encode_ratio']:.2f}); "
            f"same codes {same:.4f}",
            flush=True,
        )
        rows.append(out)
    return rows


def bench_pq(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    nb = 200_000 if args.quick else 1_000_000
    d, k = 128, 10
    rng = np.random.default_rng(0)
    base = rng.standard_normal((nb, d), dtype=np.float32)
    queries = rng.standard_normal((1000, d), dtype=np.float32)
    train = base[: 20_000 if args.quick else 65_536]
    for m in (8, 16, 32):
        rows += run_pq_encode_train(train, base[:100_000], m, args.threads, args.reps)
        fpq = faiss.ProductQuantizer(d, m, 8)
        fpq.cp.niter = 10
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fpq.train(train[:20_000])
        cent = faiss.vector_to_array(fpq.centroids).reshape(m, 256, d // m)
        codes = quanta.ProductQuantizer.from_centroids(cent).encode(base)
        for nq in (100, 1000):
            q = np.ascontiguousarray(queries[:nq])
            rows += run_pq_scan_case("gaussian", d, m, cent, codes, q, k, args.threads, args.reps)
        del codes
    del base
    if args.no_real:
        return rows
    fm = load_dataset("fashion-mnist")
    if fm is not None:
        for m in (8, 16):
            pq = quanta.ProductQuantizer(fm.d, m, 8)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pq.train(fm.base, niter=10)
            codes = pq.encode(fm.base)
            q = np.ascontiguousarray(fm.queries[:1000])
            rows += run_pq_scan_case(
                "fashion-mnist", fm.d, m, pq.centroids, codes, q, k, args.threads, args.reps
            )
    return rows


# --------------------------------------------------------------------------------------------
# 4-bit PQ fast scan


def run_fastscan_case(
    label: str,
    base: np.ndarray,
    train: np.ndarray,
    m: int,
    queries: dict[int, np.ndarray],
    k: int,
    threads: list[int],
    reps: int,
    bandwidth_gbs: float,
) -> list[dict[str, Any]]:
    """faiss ``IndexPQFastScan`` (PQ{m}x4fs) and quanta ``IndexPQFastScan`` with the same
    centroids and codes; quanta scans with ``k_factor=1`` (no re-ranking, like faiss) and is
    also timed with ``k_factor=4``."""
    nb, d = base.shape
    set_threads(max(threads))
    fi = faiss.IndexPQFastScan(d, m, 4)
    fi.train(train)
    fi.add(base)
    cent = faiss.vector_to_array(fi.pq.centroids).reshape(m, 16, d // m)
    qi = quanta.IndexPQFastScan.from_pq(quanta.ProductQuantizer.from_centroids(cent))
    qi.add(base)
    rows = []
    for nq, q in queries.items():
        for nt in threads:
            set_threads(nt)
            print(f"  fastscan {label}: nb={nb} PQ{m}x4fs nq={nq} k={k} threads={nt} ...")
            best, all_t, last = best_of(
                {
                    "faiss": lambda q=q: fi.search(q, k),  # type: ignore[misc]
                    "quanta": lambda q=q: qi.search(q, k, k_factor=1),  # type: ignore[misc]
                    "quanta_kf4": lambda q=q: qi.search(q, k, k_factor=4),  # type: ignore[misc]
                },
                reps,
            )
            df, i_f = last["faiss"]
            dq, iq = last["quanta"]
            scanned = nb * nq
            code_bytes = (m + 1) // 2
            out: dict[str, Any] = {
                "case": "fastscan",
                "dataset": label,
                "nb": nb,
                "d": d,
                "M": m,
                "nq": nq,
                "k": k,
                "threads": nt,
                "reps": reps,
                "faiss_s": best["faiss"],
                "quanta_s": best["quanta"],
                "quanta_kf4_s": best["quanta_kf4"],
                "faiss_timing": all_t["faiss"],
                "quanta_timing": all_t["quanta"],
                "faiss_codes_per_s": scanned / best["faiss"],
                "quanta_codes_per_s": scanned / best["quanta"],
                "quanta_kf4_codes_per_s": scanned / best["quanta_kf4"],
                # bytes of packed codes consumed per second by all queries together (quanta reads
                # the blocks from memory once per task of up to 32 queries)
                "quanta_code_gbs": scanned * code_bytes / best["quanta"] / 1e9,
                "faiss_code_gbs": scanned * code_bytes / best["faiss"] / 1e9,
                "read_bandwidth_gbs": bandwidth_gbs,
                "identical_ids": float(np.mean(iq == i_f)),
                # same approximate distance at each rank (ids may differ on ties)
                "same_distances": float(np.mean(np.isclose(dq, df, rtol=1e-5, atol=0))),
            }
            # codes per CPU-second of the best run: robust to time slices lost to other load
            # (for threads > 1, faiss's OpenMP spin-waits count as CPU time)
            for lib in ("faiss", "quanta"):
                t = all_t[lib]
                i = t["times"].index(best[lib])
                out[f"{lib}_codes_per_cpu_s"] = scanned / max(t["cpu_s"][i], 1e-9)
            out["cpu_ratio"] = out["quanta_codes_per_cpu_s"] / out["faiss_codes_per_cpu_s"]
            out["ratio"] = out["quanta_codes_per_s"] / out["faiss_codes_per_s"]
            out["ok"] = out["ratio"] >= FASTSCAN_TARGET
            print(
                f"    per CPU-second: faiss {out['faiss_codes_per_cpu_s'] / 1e9:.2f}, quanta "
                f"{out['quanta_codes_per_cpu_s'] / 1e9:.2f} G codes (ratio "
                f"{out['cpu_ratio']:.2f})",
                flush=True,
            )
            print(
                f"    faiss {out['faiss_codes_per_s'] / 1e9:.2f} G codes/s, quanta "
                f"{out['quanta_codes_per_s'] / 1e9:.2f} G codes/s (k_factor=4: "
                f"{out['quanta_kf4_codes_per_s'] / 1e9:.2f}), ratio {out['ratio']:.2f}; "
                f"{out['quanta_code_gbs']:.1f} GB/s of codes vs DRAM read {bandwidth_gbs:.1f} "
                f"GB/s; same distances {out['same_distances']:.4f}; {load_note(out)}",
                flush=True,
            )
            rows.append(out)
    return rows


def fastscan_recall_rows(ds: Any) -> list[dict[str, Any]]:
    """Recall of 4-bit fast scan (with and without re-ranking) vs 8-bit PQ ADC at equal code
    size, on a real dataset with ground truth (quanta only; one thread count, untimed)."""
    rows = []
    gt1 = ds.gt[:, 0]
    for m4 in (16, 32):
        m8 = m4 // 2
        fs = quanta.IndexPQFastScan(ds.d, m4)
        pq8 = quanta.IndexPQ(ds.d, m8, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fs.train(ds.base)
            pq8.train(ds.base)
        fs.add(ds.base)
        pq8.add(ds.base)
        ref = quanta.IndexRefineFlat(quanta.IndexPQFastScan.from_pq(fs.pq), k_factor=4)
        ref.add(ds.base)
        res = {
            "fastscan_kf1": fs.search(ds.queries, 100, k_factor=1)[1],
            "fastscan_kf4": fs.search(ds.queries, 100, k_factor=4)[1],
            "refine_flat_kf4": ref.search(ds.queries, 100)[1],
            "pq8_adc": pq8.search(ds.queries, 100)[1],
        }
        row: dict[str, Any] = {
            "case": "fastscan_recall",
            "dataset": ds.name,
            "M4": m4,
            "M8": m8,
            "code_bytes": m4 // 2,
        }
        for name, ids in res.items():
            for r in (1, 10, 100):
                # the PQ paper's recall@R: true nearest neighbour among the first R
                row[f"{name}_R@{r}"] = float((ids[:, :r] == gt1[:, None]).any(axis=1).mean())
        rows.append(row)
        print(
            f"  fastscan recall {ds.name} {m4 // 2} B codes: "
            + ", ".join(f"{n} R@1 {row[n + '_R@1']:.3f}" for n in res),
            flush=True,
        )
    return rows


def bench_fastscan(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    nb = 200_000 if args.quick else 1_000_000
    d, k = 128, 10
    bw = read_bandwidth_gbs(128 if args.quick else 512)
    print(f"  single-thread read bandwidth (numpy sum): {bw:.1f} GB/s", flush=True)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((nb, d), dtype=np.float32)
    queries = rng.standard_normal((1000, d), dtype=np.float32)
    qs = {nq: np.ascontiguousarray(queries[:nq]) for nq in (100, 1000)}
    for m in (16, 32):
        rows += run_fastscan_case(
            "gaussian", base, base[:20_000], m, qs, k, args.threads, args.reps, bw
        )
    del base
    if not args.no_real:
        sift = load_dataset("sift_tiledb10k")
        if sift is not None:
            rows += fastscan_recall_rows(sift)
    return rows


# --------------------------------------------------------------------------------------------
# lattice quantizers

# (d, r2) of the Spreading Vectors paper: 16/32/64-bit codes at d = 24, 32, 40 (+ d=16, 55 bits)
ZN_CASES = [(24, 3), (24, 10), (24, 79), (32, 8), (32, 36), (40, 24), (16, 200)]


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def e8_numpy(x: np.ndarray) -> np.ndarray:
    """Vectorised numpy Conway & Sloane E8 decoder (same tie rules as quanta), float32."""
    b = x.reshape(-1, 8)

    def d8(v: np.ndarray) -> np.ndarray:
        t = np.trunc(v)
        fr = v - t
        f = np.where(fr > 0.5, t + 1, np.where(fr < -0.5, t - 1, t)).astype(np.float32)
        e = v - f
        odd = (f.sum(1).astype(np.int64) & 1) == 1
        k = np.argmax(np.abs(e), axis=1)
        rows = np.flatnonzero(odd)
        f[rows, k[rows]] += np.where(e[rows, k[rows]] >= 0, 1, -1).astype(np.float32)
        return f

    y0 = d8(b)
    y1 = d8(b - np.float32(0.5)) + np.float32(0.5)
    s0 = ((b - y0) ** 2).sum(1)
    s1 = ((b - y1) ** 2).sum(1)
    return np.where((s1 < s0)[:, None], y1, y0).reshape(x.shape)


def lattice_row(case: str, label: str, nt: int, reps: int, fns: dict[str, Any]) -> dict[str, Any]:
    best, all_t, last = best_of(fns, reps)
    return {
        "case": case,
        "dataset": label,
        "threads": nt,
        "reps": reps,
        "faiss_s": best["faiss"],
        "quanta_s": best["quanta"],
        "faiss_timing": all_t["faiss"],
        "quanta_timing": all_t["quanta"],
        "speedup": best["faiss"] / best["quanta"],
        "_last": last,
    }


def faiss_zn_encode(ref: Any, x: np.ndarray) -> np.ndarray:
    codes = np.empty(x.shape[0], dtype=np.uint64)
    ref.encode_multi(x.shape[0], faiss.swig_ptr(x), faiss.swig_ptr(codes))
    return codes


def faiss_zn_decode(ref: Any, codes: np.ndarray, d: int) -> np.ndarray:
    out = np.empty((codes.shape[0], d), dtype=np.float32)
    ref.decode_multi(codes.shape[0], faiss.swig_ptr(codes), faiss.swig_ptr(out))
    return out


def run_zn_case(d: int, r2: int, n: int, nt: int, reps: int) -> list[dict[str, Any]]:
    """Zn encode and decode; both sides allocate their output per call, as a user's call does."""
    x = unit_rows(n, d, seed=d * 1000 + r2)
    ref = faiss.ZnSphereCodec(d, r2)
    codec = quanta.ZnSphereCodec(d, r2)
    print(f"  zn d={d} r2={r2} n={n} threads={nt} ...", flush=True)
    label = f"d={d} r2={r2} ({codec.nbits} bits)"
    enc = lattice_row(
        "zn_encode",
        label,
        nt,
        reps,
        {"faiss": lambda: faiss_zn_encode(ref, x), "quanta": lambda: codec.encode(x)},
    )
    last = enc.pop("_last")
    fcodes, qc = last["faiss"], last["quanta"]
    qint = np.array([int.from_bytes(r.tobytes(), "little") for r in qc], dtype=np.uint64)
    enc["identical_codes"] = float((qint == fcodes).mean())
    # both decode faiss's codes (quanta's differ on float near-ties of the atom scores)
    qc = np.ascontiguousarray(
        fcodes.astype("<u8").view(np.uint8).reshape(-1, 8)[:, : codec.code_size]
    )
    dec = lattice_row(
        "zn_decode",
        label,
        nt,
        reps,
        {"faiss": lambda: faiss_zn_decode(ref, fcodes, d), "quanta": lambda: codec.decode(qc)},
    )
    last = dec.pop("_last")
    dec["identical_decoded"] = bool(
        np.array_equal(last["faiss"] / np.float32(np.sqrt(r2)), last["quanta"])
    )
    for r in (enc, dec):
        r.update(n=n, d=d, r2=r2, nbits=codec.nbits)
        r["speed_ok"] = r["speedup"] >= ZN_SPEED_TARGET
        print(
            f"    {r['case']}: faiss {n / r['faiss_s']:.0f}/s quanta {n / r['quanta_s']:.0f}/s "
            f"speedup {r['speedup']:.2f}; {load_note(r)}",
            flush=True,
        )
    return [enc, dec]


def run_e8_case(n: int, nt: int, reps: int) -> dict[str, Any]:
    """E8 nearest point vs the numpy reference (in the "faiss" slot: faiss has no E8)."""
    d = 64
    x = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32) * 2
    lat = quanta.E8Lattice()
    print(f"  e8 nearest n={n} d={d} threads={nt} ...", flush=True)
    row = lattice_row(
        "e8_nearest",
        f"d={d} gaussian",
        nt,
        reps,
        {"faiss": lambda: e8_numpy(x), "quanta": lambda: lat.nearest(x)},
    )
    last = row.pop("_last")
    row.update(n=n, d=d, identical=float((last["faiss"] == last["quanta"]).all(1).mean()))
    print(f"    numpy {n / row['faiss_s']:.0f} vec/s quanta {n / row['quanta_s']:.0f} vec/s")
    return row


def run_lattice_search_case(d: int, r2: int, m: int, nb: int, nt: int, reps: int) -> dict[str, Any]:
    """IndexLattice (Zn codes, decode fused with the scan) vs faiss IndexPQ(M=m, 8 bits)."""
    nq = 100
    codec = quanta.ZnSphereCodec(d, r2)
    xb = unit_rows(nb, d, seed=5)
    xq = unit_rows(nq, d, seed=6)
    li = quanta.IndexLattice(codec, "l2")
    li.add(xb)
    pq = faiss.IndexPQ(d, m, 8)
    pq.train(xb[:20_000])
    pq.add(xb)
    print(f"  search zn d={d} r2={r2} vs PQ{m}x8 nb={nb} threads={nt} ...", flush=True)
    row = lattice_row(
        "lattice_search",
        f"Zn d={d} r2={r2} ({codec.nbits} b) vs PQ{m}x8 ({8 * m} b)",
        nt,
        reps,
        {"faiss": lambda: pq.search(xq, 10), "quanta": lambda: li.search(xq, 10)},
    )
    last = row.pop("_last")
    gt = faiss.IndexFlatL2(d)
    gt.add(xb)
    _, igt = gt.search(xq, 1)
    row.update(n=nb, d=d, nq=nq)
    row["faiss_codes_per_s"] = nb * nq / row["faiss_s"]
    row["quanta_codes_per_s"] = nb * nq / row["quanta_s"]
    row["faiss_recall1@10"] = float((last["faiss"][1] == igt).any(1).mean())
    row["quanta_recall1@10"] = float((last["quanta"][1] == igt).any(1).mean())
    print(
        f"    PQ {row['faiss_codes_per_s']:.3g} codes/s, lattice "
        f"{row['quanta_codes_per_s']:.3g} codes/s; {load_note(row)}",
        flush=True,
    )
    return row


def bench_lattice(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = 20_000 if args.quick else 200_000
    nb = 50_000 if args.quick else 200_000
    for nt in args.threads:
        set_threads(nt)
        for d, r2 in ZN_CASES:
            rows += run_zn_case(d, r2, n, nt, args.reps)
        rows.append(run_e8_case(n, nt, args.reps))
        for d, r2, m in [(24, 79, 8), (32, 8, 4)]:
            rows.append(run_lattice_search_case(d, r2, m, nb, nt, args.reps))
    return rows


# --------------------------------------------------------------------------------------------
# report


def header(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quanta_version": quanta.__version__,
        "quanta_simd_level": quanta.simd_level(),
        "quanta_available_simd_levels": quanta.available_simd_levels(),
        "faiss_version": faiss.__version__,
        "faiss_compile_options": faiss.get_compile_options().strip(),
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu": bench_cpu.cpu_info(),
        "cpu_tag": bench_cpu.cpu_tag(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "quick": bool(args.quick),
        "reps": args.reps,
        "kmeans_reps": args.kmeans_reps,
        "retries": args.retries,
        "max_wait_s": args.max_wait,
        "foreign_max_cores": FOREIGN_MAX,
        "timer": "time.perf_counter, 1 warm-up, best of R (faiss/quanta alternating)",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def to_markdown(
    meta: dict[str, Any],
    km: list[dict[str, Any]],
    fl: list[dict[str, Any]],
    bn: list[dict[str, Any]] | None = None,
    pq: list[dict[str, Any]] | None = None,
    la: list[dict[str, Any]] | None = None,
    fs: list[dict[str, Any]] | None = None,
) -> str:
    bn = bn or []
    pq = pq or []
    la = la or []
    fs = fs or []
    lines = ["# quanta vs faiss-cpu", ""]
    lines += [
        f"- quanta {meta['quanta_version']}, SIMD level `{meta['quanta_simd_level']}` "
        f"(available: {', '.join(meta['quanta_available_simd_levels'])})",
        f"- faiss {meta['faiss_version']}, compile options `{meta['faiss_compile_options']}`",
        f"- numpy {meta['numpy_version']}, Python {meta['python']}",
        f"- CPU: {bench_cpu.describe(meta['cpu'])} ({meta['cpu_count']} logical cores)",
        f"- threads: {', '.join(str(t) for t in meta['threads'])} "
        "(faiss.omp_set_num_threads / quanta.set_num_threads)",
        f"- timing: {meta['timer']}; R={meta['reps']} (flat), R={meta['kmeans_reps']} (k-means)"
        + (" — **quick mode** (reduced sizes)" if meta["quick"] else ""),
        f"- run at {meta['date']}",
        "",
    ]
    if km:
        lines += [
            "## k-means (seed 1234, random init)",
            "",
            f"Targets: time ratio quanta/faiss <= {KMEANS_TIME_TARGET}, objective ratio <= "
            f"{KMEANS_OBJ_TARGET}. Objective = sum over training points of the squared distance to "
            "the nearest final centroid (faiss.IndexFlatL2 for both).",
            "",
            "| data | n | d | k | iters | thr | faiss s | quanta s | time q/f | "
            "faiss obj | quanta obj | obj q/f |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in km:
            lines.append(
                f"| {r['dataset']} | {r['n']} | {r['d']} | {r['k']} | {r['niter']} | "
                f"{r['threads']}{mark(r)} | "
                f"{r['faiss_s']:.2f} | {r['quanta_s']:.2f} | "
                f"**{r['time_ratio']:.3f}** {fmt_ok(r['time_ok'])} | "
                f"{r['faiss_obj']:.6g} | {r['quanta_obj']:.6g} | "
                f"**{r['obj_ratio']:.5f}** {fmt_ok(r['obj_ok'])} |"
            )
        lines.append("")
    if fl:
        lines += [
            "## IndexFlatL2 search (k=10)",
            "",
            f"Target: QPS ratio quanta/faiss >= {FLAT_QPS_TARGET}. *same ids*: fraction of "
            "(query, rank) slots with the same id; *genuine*: slots whose ids differ and whose "
            f"exact (float64) distances differ by more than {TIE_RTOL:g} relative (0 = identical "
            "up to ties). Recall@10 vs the dataset's exact ground truth (tie-aware in "
            "parentheses: an id counts when its exact distance is <= the 10th true distance).",
            "",
            "| data | nb | d | nq | thr | faiss QPS | quanta QPS | QPS q/f | same ids | "
            "genuine | recall@10 faiss | recall@10 quanta |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in fl:
            if "faiss_recall@10" in r:
                rf = f"{r['faiss_recall@10']:.4f} ({r['faiss_recall@10_ties']:.4f})"
                rq = f"{r['quanta_recall@10']:.4f} ({r['quanta_recall@10_ties']:.4f})"
            else:
                rf = rq = "—"
            lines.append(
                f"| {r['dataset']} | {r['nb']} | {r['d']} | {r['nq']} | {r['threads']}{mark(r)} | "
                f"{r['faiss_qps']:.1f} | {r['quanta_qps']:.1f} | "
                f"**{r['qps_ratio']:.3f}** {fmt_ok(r['qps_ok'])} | {r['identical_ids']:.4f} | "
                f"{r['genuine_mismatches']} | {rf} | {rq} |"
            )
        lines.append("")
        worst = max(r["max_rel_dist_quanta_vs_exact"] for r in fl)
        worst_f = max(r["max_rel_dist_faiss_vs_exact"] for r in fl)
        lines.append(
            f"Max relative error of reported distances vs exact float64: quanta {worst:.2e}, "
            f"faiss {worst_f:.2e}."
        )
        lines.append("")
    if bn:
        lines += [
            "## IndexBinaryFlat search (Hamming, k=10, uniform random codes)",
            "",
            f"Target: codes/s ratio quanta/faiss >= {BINARY_TARGET}. codes/s = nb × nq / time. "
            "*scan GB/s* = code bytes compared per second (nb × nq × code size / time); quanta "
            "compares a cache-sized block of codes with every query of a batch, so DRAM traffic "
            "is nb × code size per 1024 queries and the scan rate can exceed the single-thread "
            f"DRAM read bandwidth ({bn[0]['read_bandwidth_gbs']:.1f} GB/s, numpy sum over "
            "512 MiB). "
            "*same D*: identical distance matrices; *genuine*: slots whose ids differ at different "
            "distances (0 = identical up to ties).",
            "",
            "| nbits | nb | nq | thr | faiss G codes/s | quanta G codes/s | q/f | "
            "faiss scan GB/s | quanta scan GB/s | same D | genuine |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in bn:
            lines.append(
                f"| {r['nbits']} | {r['nb']} | {r['nq']} | {r['threads']}{mark(r)} | "
                f"{r['faiss_codes_per_s'] / 1e9:.3f} | {r['quanta_codes_per_s'] / 1e9:.3f} | "
                f"**{r['ratio']:.2f}** {fmt_ok(r['ok'])} | {r['faiss_scan_gbs']:.1f} | "
                f"{r['quanta_scan_gbs']:.1f} | {'yes' if r['same_distances'] else 'NO'} | "
                f"{r['genuine_mismatches']} |"
            )
        lines.append("")
    scans = [r for r in pq if r["case"] == "pq_adc"]
    enc = [r for r in pq if r["case"] == "pq_encode_train"]
    if scans:
        lines += [
            "## IndexPQ ADC search (nbits=8, k=10, same codebooks and codes on both sides)",
            "",
            f"Target: codes/s ratio quanta/faiss >= {PQ_SCAN_TARGET}. codes/s = nb × nq / time. "
            "*G lookups/s/thr*: table lookups (M per code) per second per thread — an L1 load "
            "each; the load-port limit of one core is a few G/s, ~1 G/s with gathers.",
            "",
            "| data | nb | M | nq | thr | faiss M codes/s | quanta M codes/s | q/f | "
            "G lookups/s/thr | same ids | max rel dD |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in scans:
            lines.append(
                f"| {r['dataset']} | {r['nb']} | {r['M']} | {r['nq']} | {r['threads']}{mark(r)} | "
                f"{r['faiss_codes_per_s'] / 1e6:.0f} | {r['quanta_codes_per_s'] / 1e6:.0f} | "
                f"**{r['ratio']:.2f}** {fmt_ok(r['ok'])} | "
                f"{r['quanta_lookups_per_s_per_thread'] / 1e9:.2f} | {r['identical_ids']:.4f} | "
                f"{r['max_rel_dist_diff']:.1e} |"
            )
        lines.append("")
    if enc:
        lines += [
            "## PQ training and encoding (Gaussian, d=128, nbits=8)",
            "",
            f"Targets: encode ratio >= {PQ_ENCODE_TARGET}, training time ratio <= "
            f"{PQ_TRAIN_TARGET}. Training: 25 k-means iterations per sub-quantizer (both), "
            "seed 1234; encoding with faiss's codebooks on both sides (*same codes* = fraction "
            "of identical sub-codes). MSE = mean squared reconstruction error on the training set.",
            "",
            "| M | n train | thr | faiss train s | quanta train s | q/f | faiss MSE | quanta MSE | "
            "faiss enc M/s | quanta enc M/s | q/f | same codes |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in enc:
            lines.append(
                f"| {r['M']} | {r['n_train']} | {r['threads']}{mark(r)} | "
                f"{r['faiss_train_s']:.2f} | {r['quanta_train_s']:.2f} | "
                f"**{r['train_ratio']:.2f}** {fmt_ok(r['train_ok'])} | "
                f"{r['faiss_train_mse']:.2f} | {r['quanta_train_mse']:.2f} | "
                f"{r['faiss_encode_per_s'] / 1e6:.2f} | {r['quanta_encode_per_s'] / 1e6:.2f} | "
                f"**{r['encode_ratio']:.2f}** {fmt_ok(r['encode_ok'])} | {r['same_codes']:.4f} |"
            )
        lines.append("")
    if la:
        zn = [r for r in la if r["case"] in ("zn_encode", "zn_decode")]
        lines += [
            "## Lattice quantizers",
            "",
            f"Zn sphere codec, {zn[0]['n'] if zn else 0} random unit vectors: throughput vs "
            "faiss `ZnSphereCodec.encode_multi/decode_multi` (target speedup >= "
            f"{ZN_SPEED_TARGET}); both allocate their output per call; both decode faiss's "
            "codes. *same*: codes identical "
            "to faiss (encode) / decoded vectors identical to faiss's / sqrt(r2) (decode).",
            "",
            "| case | d, r2 | thr | faiss vec/s | quanta vec/s | speedup | same |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in zn:
            same = (
                f"{r['identical_codes']:.4f}"
                if "identical_codes" in r
                else ("yes" if r["identical_decoded"] else "NO")
            )
            lines.append(
                f"| {r['case']} | {r['dataset']} | {r['threads']}{mark(r)} | "
                f"{r['n'] / r['faiss_s']:.0f} | {r['n'] / r['quanta_s']:.0f} | "
                f"**{r['speedup']:.2f}** {fmt_ok(r['speed_ok'])} | {same} |"
            )
        lines += [
            "",
            "E8 nearest-point decoding (Conway & Sloane) vs a vectorised numpy reference "
            "(same tie rules; *same* = fraction of identical rows):",
            "",
            "| data | n | thr | numpy vec/s | quanta vec/s | speedup | same |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in la:
            if r["case"] == "e8_nearest":
                lines.append(
                    f"| {r['dataset']} | {r['n']} | {r['threads']}{mark(r)} | "
                    f"{r['n'] / r['faiss_s']:.0f} | {r['n'] / r['quanta_s']:.0f} | "
                    f"{r['speedup']:.1f} | {r['identical']:.4f} |"
                )
        lines += [
            "",
            "Asymmetric lattice search (`IndexLattice`, L2, decode fused with the scan) vs faiss "
            "`IndexPQ` (ADC tables) at equal bits, 100 queries, k=10; codes scanned per second; "
            "1-recall@10 against exact search on the float vectors.",
            "",
            "| codes | nb | thr | PQ codes/s | lattice codes/s | lattice/PQ | "
            "R@10 PQ | R@10 lattice |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in la:
            if r["case"] == "lattice_search":
                lines.append(
                    f"| {r['dataset']} | {r['n']} | {r['threads']}{mark(r)} | "
                    f"{r['faiss_codes_per_s']:.3g} | {r['quanta_codes_per_s']:.3g} | "
                    f"{r['speedup']:.2f} | {r['faiss_recall1@10']:.2f} | "
                    f"{r['quanta_recall1@10']:.2f} |"
                )
        lines.append("")
    scans_fs = [r for r in fs if r["case"] == "fastscan"]
    if scans_fs:
        lines += [
            "## 4-bit PQ fast scan (`IndexPQFastScan`, Gaussian d=128, k=10)",
            "",
            f"Target: codes/s ratio quanta/faiss >= {FASTSCAN_TARGET} (faiss PQ16x4fs / "
            "PQ32x4fs, same centroids and codes; quanta with `k_factor=1`, i.e. no re-ranking, "
            "as faiss; *kf4*: quanta with re-ranking of 4k candidates by float ADC). "
            "*GB/s codes*: packed code bytes (M/2 per vector) consumed per second by all "
            "queries together; quanta reads a run of blocks from memory once per task of up to "
            "32 queries (each block once per 4 queries from cache), so its memory traffic is far "
            "below that. *DRAM*: single-thread numpy read bandwidth. *per CPU-s*: codes per "
            "CPU-second of the same best runs, which discounts time slices lost to other load "
            "(at 2 threads faiss's OpenMP spin-waits count as CPU time). "
            "*same D*: fraction of (query, rank) with the same approximate distance as faiss.",
            "",
            "| M | nq | thr | faiss G codes/s | quanta G codes/s | q/f | quanta kf4 G codes/s | "
            "faiss per CPU-s | quanta per CPU-s | q/f CPU | GB/s codes | DRAM GB/s | same D |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in scans_fs:
            lines.append(
                f"| {r['M']} | {r['nq']} | {r['threads']}{mark(r)} | "
                f"{r['faiss_codes_per_s'] / 1e9:.2f} | {r['quanta_codes_per_s'] / 1e9:.2f} | "
                f"**{r['ratio']:.2f}** {fmt_ok(r['ok'])} | "
                f"{r['quanta_kf4_codes_per_s'] / 1e9:.2f} | "
                f"{r['faiss_codes_per_cpu_s'] / 1e9:.2f} | "
                f"{r['quanta_codes_per_cpu_s'] / 1e9:.2f} | "
                f"{r['cpu_ratio']:.2f} | {r['quanta_code_gbs']:.1f} | "
                f"{r['read_bandwidth_gbs']:.1f} | {r['same_distances']:.4f} |"
            )
        lines.append("")
    rec_fs = [r for r in fs if r["case"] == "fastscan_recall"]
    if rec_fs:
        lines += [
            "Recall (1-recall@R against the exact nearest neighbour) at equal code size: 4-bit "
            "fast scan without / with float-ADC re-ranking (`k_factor=4`), `IndexRefineFlat` "
            "(raw vectors, `k_factor=4`), and 8-bit PQ ADC (`IndexPQ`, M/2 sub-quantizers).",
            "",
            "| data | bytes | method | R@1 | R@10 | R@100 |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for r in rec_fs:
            for name, lab in (
                ("fastscan_kf1", f"PQ{r['M4']}x4fs"),
                ("fastscan_kf4", f"PQ{r['M4']}x4fs k_factor=4"),
                ("refine_flat_kf4", f"PQ{r['M4']}x4fs + RefineFlat k_factor=4"),
                ("pq8_adc", f"PQ{r['M8']}x8 ADC"),
            ):
                lines.append(
                    f"| {r['dataset']} | {r['code_bytes']} | {lab} | {r[name + '_R@1']:.3f} | "
                    f"{r[name + '_R@10']:.3f} | {r[name + '_R@100']:.3f} |"
                )
        lines.append("")
    worst, where = max_foreign(km + fl + bn + pq + la + scans_fs)
    noisy = sum(1 for r in km + fl + bn + pq + la + scans_fs if not row_clean(r))
    lines.append(
        f"Interference check (other processes' CPU use, from /proc/stat, during each best run): "
        f"highest {worst:.2f} cores" + (f" ({where})" if where else "") + f"; {noisy} row(s) "
        f"marked {NOISY} had no run below {FOREIGN_MAX} cores of other load, so their timings "
        f"are suspect. {meta.get('retried_runs', 0)} timed run(s) were repeated and "
        f"{meta.get('dirty_runs', 0)} kept despite other load; {meta.get('waited_s', 0.0):.0f} s "
        "spent waiting for the machine to go quiet or on repeated runs."
    )
    lines.append("")
    return "\n".join(lines)


def parse_threads(s: str) -> list[int]:
    out = [int(t) for t in s.split(",") if t.strip()]
    if not out or any(t < 1 for t in out):
        raise argparse.ArgumentTypeError(f"bad thread list {s!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    p.add_argument("--threads", type=parse_threads, default=[1, 2], help="e.g. 1,2")
    p.add_argument(
        "--only",
        choices=["kmeans", "flat", "binary", "pq", "lattice", "fastscan", "ivf"],
        help="run one case family",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default benches/results/<cpu tag>, e.g. amd-zen3, intel-sapphire-rapids)",
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions for search (best of)")
    p.add_argument("--kmeans-reps", type=int, default=1, help="repetitions for k-means (best of)")
    p.add_argument("--no-real", action="store_true", help="skip the real datasets")
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="repeat a timed run up to this many times when other processes loaded the machine",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=180.0,
        help="seconds to spend in all on waiting for the machine to go quiet and on repeating "
        "runs disturbed by other processes",
    )
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path(__file__).resolve().parent / "results" / bench_cpu.cpu_tag()
    if args.reps < 1 or args.kmeans_reps < 1:
        p.error("--reps and --kmeans-reps must be >= 1")
    GUARD.budget_s = max(0.0, args.max_wait)
    GUARD.retries = max(0, args.retries)

    meta = header(args)
    print(f"quanta {meta['quanta_version']}  simd_level={meta['quanta_simd_level']}")
    print(f"faiss {meta['faiss_version']}  compile options: {meta['faiss_compile_options']}")
    print(f"CPU: {bench_cpu.describe(meta['cpu'])} ({meta['cpu_count']} logical cores)")
    print(f"threads: {args.threads}  reps: {args.reps} (k-means: {args.kmeans_reps})")
    print(flush=True)

    t0 = time.perf_counter()
    km = bench_kmeans(args) if args.only in (None, "kmeans") else []
    fl = bench_flat(args) if args.only in (None, "flat") else []
    bn = bench_binary(args) if args.only in (None, "binary") else []
    pq = bench_pq(args) if args.only in (None, "pq") else []
    la = bench_lattice(args) if args.only in (None, "lattice") else []
    fs = bench_fastscan(args) if args.only in (None, "fastscan") else []
    iv = (
        bench_ivf.bench_ivf(args, best_of, set_threads, load_dataset)
        if args.only in (None, "ivf")
        else []
    )
    meta["total_s"] = time.perf_counter() - t0
    meta["dirty_runs"] = GUARD.dirty_runs
    meta["retried_runs"] = GUARD.retried_runs
    meta["waited_s"] = GUARD.waited_s

    md = to_markdown(meta, km, fl, bn, pq, la, fs)
    if iv:
        md += "\n" + bench_ivf.to_markdown(iv)
    print()
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "compare_faiss" if args.only is None else f"compare_faiss_{args.only}"
    (args.out / f"{stem}.md").write_text(md)
    with open(args.out / f"{stem}.json", "w") as f:
        json.dump(
            {
                "meta": meta,
                "kmeans": km,
                "flat": fl,
                "binary": bn,
                "pq": pq,
                "lattice": la,
                "fastscan": fs,
                "ivf": iv,
            },
            f,
            indent=2,
        )
    print(f"wrote {args.out / f'{stem}.md'} and {args.out / f'{stem}.json'}")
    print(f"total {meta['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
