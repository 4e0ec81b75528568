"""Quantization error of the lattice codecs at equal bits (Spreading Vectors, Sec. 4.5-4.8).

``python -m quanta.experiments.lattice [--quick] [--out results]`` writes ``results/lattice.md``
and ``results/lattice.png``: the mean squared error ``E‖x − x̂‖²`` of unit vectors ``x`` and
their reconstructions ``x̂`` for

* the spherical Zn codec (largest r² whose code fits the budget; decoded vectors are unit),
* E8 shell codes on 8-dim blocks (the union of shells with the most points that fits),
* PQ (``M × 8`` bits, k-means codebooks trained on a separate split), and
* sign binarization (``d`` bits, ``x̂ = sign(x)/sqrt(d)``),

on random unit vectors and on normalized Fashion-MNIST / SIFT reduced to ``d`` dimensions by PCA
(fitted on the training split) — the catalyzer of the paper is trained in another issue; this
table is its baseline. PQ is faiss's ``ProductQuantizer`` for now: quanta's PQ is being written on
another branch and will replace it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import quanta

F32 = npt.NDArray[np.float32]
BUDGETS = (16, 32, 64)
DIMS = (24, 32, 40)
SHELL_SIZES = {m: 240 * sum(k**3 for k in range(1, m + 1) if m % k == 0) for m in range(1, 9)}


def normalize(x: np.ndarray) -> F32:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(n, 1e-12), dtype=np.float32)


def mse(x: np.ndarray, y: np.ndarray) -> float:
    return float(((x.astype(np.float64) - y.astype(np.float64)) ** 2).sum(1).mean())


def zn_for_budget(d: int, bits: int) -> quanta.ZnSphereCodec | None:
    """The Zn codec with the largest r² whose ``nbits <= bits`` (counts grow with r²)."""
    best = None
    for r2 in range(1, 400):
        try:
            c = quanta.ZnSphereCodec(d, r2)
        except quanta.InvalidArgumentError:
            continue  # no point of that norm (or too many bits for u128)
        if c.nbits > bits:
            break
        best = c
    return best


def e8_for_budget(d: int, bits: int) -> quanta.E8ShellCodec | None:
    """The union of E8 shells (m <= 8) with the most points whose code fits ``bits``."""
    blocks = d // 8
    best: tuple[int, list[int]] | None = None
    for r in range(1, 9):
        for sub in itertools.combinations(range(1, 9), r):
            k = sum(SHELL_SIZES[m] for m in sub)
            if math.ceil(blocks * math.log2(k) - 1e-12) <= bits and (best is None or k > best[0]):
                best = (k, list(sub))
    return None if best is None else quanta.E8ShellCodec(best[1], d=d)


def pq_reconstruct(train: F32, x: F32, bits: int) -> F32 | None:
    # faiss's ProductQuantizer stands in until quanta's PQ lands (concurrent branch)
    import faiss

    d = x.shape[1]
    m = bits // 8
    if m < 1 or d % m:
        return None
    pq: Any = faiss.ProductQuantizer(d, m, 8)  # the swig wrapper takes numpy arrays
    pq.cp.seed = 1234
    pq.train(train)
    return np.asarray(pq.decode(pq.compute_codes(x)), dtype=np.float32)


def datasets(quick: bool) -> list[tuple[str, F32, F32]]:
    """(name, training rows, evaluation rows) in the original dimension."""
    n = 5000 if quick else 20000
    rng = np.random.default_rng(0)
    out: list[tuple[str, F32, F32]] = [
        ("random", rng.standard_normal((n, 128)).astype(np.float32), np.empty((0, 0), np.float32))
    ]
    try:
        fm = quanta.datasets.load("fashion-mnist")
        out.append(("fashion-mnist", fm.base[: 3 * n], fm.queries[:n]))
    except quanta.QuantaError as e:
        print(f"[skip] fashion-mnist: {e}")
    try:
        sift = quanta.datasets.load("sift_tiledb10k")
        out.append(("sift_tiledb10k", sift.base[:6000], sift.base[6000:]))
    except quanta.QuantaError as e:
        print(f"[skip] sift_tiledb10k: {e}")
    return out


def reduce_dim(name: str, train: F32, ev: F32, d: int, seed: int) -> tuple[F32, F32]:
    """Unit vectors in ``d`` dims: random Gaussian ones, or PCA (fitted on ``train``)."""
    if name == "random":
        rng = np.random.default_rng(seed + d)
        n = train.shape[0]
        return normalize(rng.standard_normal((n, d))), normalize(rng.standard_normal((n, d)))
    mean = train.mean(0)
    cov = np.cov((train - mean).T.astype(np.float64))
    w, v = np.linalg.eigh(cov)
    p = v[:, np.argsort(w)[::-1][:d]]
    return normalize((train - mean) @ p), normalize((ev - mean) @ p)


def run(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, train0, ev0 in datasets(quick):
        for d in DIMS:
            train, x = reduce_dim(name, train0, ev0, d, seed=1)
            sign = np.where(x > 0, 1.0, -1.0).astype(np.float32) / np.float32(np.sqrt(d))
            for bits in BUDGETS:
                t0 = time.perf_counter()
                row: dict[str, Any] = {"data": name, "d": d, "budget": bits, "n": x.shape[0]}
                zn = zn_for_budget(d, bits)
                if zn is not None:
                    row["zn"] = (zn.nbits, mse(x, zn.quantize(x)), f"r2={zn.r2}")
                e8 = e8_for_budget(d, bits)
                if e8 is not None:
                    row["e8"] = (e8.nbits, mse(x, e8.quantize(x)), f"shells={e8.shells}")
                rec = pq_reconstruct(train, x, bits)
                if rec is not None:
                    row["pq"] = (bits, mse(x, rec), f"M={bits // 8}x8")
                row["sign"] = (d, mse(x, sign), "")
                rows.append(row)
                print(
                    f"{name:15s} d={d} budget={bits}: "
                    + ", ".join(
                        f"{k} {row[k][1]:.4f} ({row[k][0]} b)"
                        for k in ("zn", "e8", "pq", "sign")
                        if k in row
                    )
                    + f"  [{time.perf_counter() - t0:.1f} s]",
                    flush=True,
                )
    return rows


def cell(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "—"
    bits, err, cfg = row[key]
    return f"{err:.4f} ({bits} b{', ' + cfg if cfg else ''})"


def to_markdown(rows: list[dict[str, Any]], elapsed: float) -> str:
    lines = [
        "# Lattice quantizers: quantization error at equal bits",
        "",
        "Mean squared error `E‖x − x̂‖²` over unit vectors `x` (lower is better; 2.0 = "
        "orthogonal, the error of a random unit guess). Each cell: MSE (actual bits, config). "
        "Zn: largest r² with nbits <= budget; E8: union of shells m <= 8 with the most points "
        "that fits; PQ: faiss `ProductQuantizer` (M×8 bits, trained on a separate split; a "
        "stand-in until quanta's PQ lands); sign: `d` bits whatever the budget. Real data: PCA "
        "to d (fitted on the training split), then L2-normalized — no catalyzer yet.",
        "",
        f"quanta {quanta.__version__}, SIMD `{quanta.simd_level()}`, {elapsed:.0f} s.",
        "",
        "| data | d | budget | Zn sphere | E8 shells | PQ | sign |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} (n={r['n']}) | {r['d']} | {r['budget']} | {cell(r, 'zn')} | "
            f"{cell(r, 'e8')} | {cell(r, 'pq')} | {cell(r, 'sign')} |"
        )
    lines += [
        "",
        "Observations (computed from the table above):",
        "",
    ]
    for data in dict.fromkeys(r["data"] for r in rows):
        sub = [r for r in rows if r["data"] == data and "zn" in r and "pq" in r]
        wins = sum(1 for r in sub if r["zn"][1] < r["pq"][1])
        e8w = [r for r in rows if r["data"] == data and "zn" in r and "e8" in r]
        e8wins = sum(1 for r in e8w if r["e8"][1] < r["zn"][1])
        lines.append(
            f"- {data}: Zn beats PQ in {wins}/{len(sub)} settings; E8 shells beat Zn in "
            f"{e8wins}/{len(e8w)} settings where both fit the budget."
        )
    lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 4), squeeze=False)
    for ax, name in zip(axes[0], data):
        for key, style in (("zn", "o-"), ("e8", "s-"), ("pq", "^-"), ("sign", "x")):
            for d in DIMS:
                pts = sorted(
                    {r[key][:2] for r in rows if r["data"] == name and r["d"] == d and key in r}
                )
                if pts:
                    ax.plot(*zip(*pts), style, label=f"{key} d={d}", alpha=0.8)
        ax.set_title(name)
        ax.set_xlabel("bits per vector")
        ax.set_ylabel("MSE (unit vectors)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer vectors")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, time.perf_counter() - t0)
    (args.out / "lattice.md").write_text(md)
    plot(rows, args.out / "lattice.png")
    print(md)
    print(f"wrote {args.out / 'lattice.md'} and {args.out / 'lattice.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
