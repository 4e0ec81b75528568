"""Paper check for GreedyHash (Su, Zhang, Han, Tian — NeurIPS 2018), ALGORITHMS.md §5 and §8.

Data: each of Fashion-MNIST and MNIST in the CIFAR-10 "setting I" shape
(:func:`quanta.datasets.hashing_split`): train and test rows pooled (70 000), 1 000 queries
(100 per class), 5 000 training images (500 per class, drawn from the database), database = the
other 69 000. For 16/32/64 bits, every method is trained on the training images, database and
queries are encoded, and the database is ranked by Hamming distance with
:class:`quanta.IndexBinaryFlat` (PQ: by ADC distance with :class:`quanta.IndexPQ`), ties to the
lower database id (deterministic). Metrics (§7.2): **mAP@all** (the paper's supervised metric)
and **mAP@1000** (its unsupervised one) for every method.

Methods:

* ``LSH`` (quanta default: centred, orthogonal projection), ``ITQ`` (50 iterations),
  ``PQ-ADC`` (M = bits/8 sub-quantizers of 256 centroids: equal bits per vector), on pixels.
* ``GH-unsup``: GreedyHash unsupervised (hash layer on the standardised pixels, trained so that
  code cosines reproduce centred-pixel cosines, pairs (i, i + N/2) as in the reference code).
* ``GH-sup``: GreedyHash supervised (backbone → hash layer → bias-free classifier on the ±1
  codes, cross-entropy + α·penalty). Backbone: an MLP on pixels by default (``--backbone cnn``
  for the small CNN, about 8x slower on CPU).
* ``… α=0``: the same without the cubic penalty (ablation).

GreedyHash models are trained on 4 500 of the 5 000 training images; the other 500 (50 per
class) are the validation set for model selection (supervised: best validation mAP of the
validation items retrieving each other; unsupervised: lowest validation loss). The test queries
are never used for selection. Deviations from the paper (no pretrained AlexNet/VGG offline;
2 CPU cores): backbones trained from scratch, Adam (lr 1e-3) instead of SGD, few epochs.

Usage::

    python -m quanta.experiments.greedyhash            # writes results/greedyhash.md + .png
    python -m quanta.experiments.greedyhash --quick    # smoke run (one dataset, 16 bits)
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import quanta
from quanta import datasets, metrics

TIE_AVG = ("LSH", "ITQ", "GH-unsup", "GH-sup")  # tie-averaged mAP@all shown for these
METHODS = ("LSH", "ITQ", "PQ-ADC", "GH-unsup", "GH-unsup α=0", "GH-sup", "GH-sup α=0")

# ALGORITHMS.md §5.5 (recalled from the paper's tables, unverified): CIFAR-10, AlexNet/VGG16
# pretrained on ImageNet — a different dataset and backbone.
PAPER_SUP_CIFAR = {12: 0.774, 24: 0.795, 32: 0.810, 48: 0.822}
PAPER_UNSUP_CIFAR = {16: 0.448, 32: 0.472, 64: 0.501}

Encoder = Callable[[npt.NDArray[Any]], npt.NDArray[np.uint8]]


def _val_split(
    labels: npt.NDArray[Any], per_class: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(fit rows, validation rows) of the training set, ``per_class`` validation rows a class."""
    rng = np.random.default_rng(seed)
    val = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    )
    mask = np.zeros(len(labels), dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.sort(val)


def _hamming_ranking(
    index: quanta.IndexBinaryFlat, db_signs: npt.NDArray[np.float32], nbits: int
) -> Callable[[npt.NDArray[np.uint8]], tuple[npt.NDArray[np.int16], npt.NDArray[np.int64]]]:
    """Full Hamming ranking of query codes by (distance, id): ``(D, I)`` over the database.

    ``IndexBinaryFlat.search`` is a k-NN search; for k = the whole database (mAP@all) a dense
    ``±1`` product plus a stable (radix) sort of the small-integer distances is ~4x faster.
    The first block is checked against ``index.search`` (same ids in the same order).
    """
    checked = False

    def rank(codes: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int64]]:
        nonlocal checked
        dot = quanta.unpack_bits(codes, nbits) @ db_signs.T
        dist = np.rint((nbits - dot) / 2).astype(np.int16)
        ids = metrics.rank_by_distance(dist)
        d_sorted = np.take_along_axis(dist, ids, axis=1)
        if not checked:
            k = min(1000, ids.shape[1])
            d_ref, i_ref = index.search(codes, k)
            if not (np.array_equal(i_ref, ids[:, :k]) and np.array_equal(d_ref, d_sorted[:, :k])):
                raise AssertionError("dense Hamming ranking differs from IndexBinaryFlat.search")
            checked = True
        return d_sorted, ids

    return rank


def _evaluate(
    search: Callable[[npt.NDArray[Any]], tuple[Any, npt.NDArray[np.int64]]],
    xq: npt.NDArray[Any],
    ql: npt.NDArray[Any],
    dl: npt.NDArray[Any],
    k_map: int,
    tie_avg: bool,
    chunk: int = 250,
) -> dict[str, float]:
    """mAP@all and mAP@k_map (and the tie-averaged mAP@all) over full rankings, query blocks."""
    ap_all: list[npt.NDArray[np.float64]] = []
    ap_k: list[npt.NDArray[np.float64]] = []
    ap_tie: list[npt.NDArray[np.float64]] = []
    for s in range(0, xq.shape[0], chunk):
        d, ids = search(xq[s : s + chunk])
        if ids.shape[1] != dl.shape[0]:
            raise AssertionError("the ranking must cover the whole database for mAP@all")
        qb = ql[s : s + chunk]
        ap_all.append(metrics.average_precision(ids, qb, dl))
        ap_k.append(metrics.average_precision(ids, qb, dl, k_map))
        if tie_avg:
            ap_tie.append(metrics.average_precision(ids, qb, dl, distances=d))
    out = {
        "map_all": float(np.concatenate(ap_all).mean()),
        "map_k": float(np.concatenate(ap_k).mean()),
    }
    if tie_avg:
        out["map_all_tie"] = float(np.concatenate(ap_tie).mean())
    return out


def _train_method(
    method: str,
    nbits: int,
    sp: datasets.HashingSplit,
    fit: npt.NDArray[np.int64],
    val: npt.NDArray[np.int64],
    args: argparse.Namespace,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """A trained encoder (binary) or index builder (PQ), plus training notes."""
    d = sp.train.shape[1]
    info: dict[str, Any] = {}
    if method == "LSH":
        return quanta.LSH(d, nbits, seed=seed).train(sp.train).encode, info
    if method == "ITQ":
        return quanta.ITQ(d, nbits, niter=50, seed=seed).train(sp.train).encode, info
    if method == "PQ-ADC":
        index = quanta.IndexPQ(d, nbits // 8, 8)
        index.train(sp.train, seed=seed)
        return index, info
    from quanta import nn as qnn  # torch only from here on

    alpha = 0.0 if method.endswith("α=0") else args.alpha
    qnn.seed_everything(seed)
    if method.startswith("GH-sup"):
        model = qnn.GreedyHash(
            d,
            nbits,
            n_classes=int(sp.train_labels.max()) + 1,
            backbone=args.backbone,
            feat_dim=args.feat_dim,
            hidden=args.hidden,
            n_hidden=2,
        )
        hist = qnn.train_greedyhash(
            model, sp.train[fit], sp.train_labels[fit], epochs=args.epochs_sup,
            batch_size=args.batch_size, alpha=alpha, val=(sp.train[val], sp.train_labels[val]),
            seed=seed, device=args.device, verbose=args.verbose,
        )  # fmt: skip
    else:
        model = qnn.GreedyHash(d, nbits, backbone="none")
        hist = qnn.train_greedyhash_unsupervised(
            model, sp.train[fit], epochs=args.epochs_unsup, batch_size=args.batch_size,
            alpha=alpha, val=sp.train[val], seed=seed, device=args.device,
            verbose=args.verbose,
        )  # fmt: skip
    info = {
        "best_epoch": hist.best_epoch,
        "epochs": len(hist.loss),
        "val_name": hist.val_name,
        "val_best": hist.val[hist.best_epoch] if hist.val else None,
        "penalty_last": hist.penalty[hist.best_epoch],
        "loss_first": hist.loss[0],
        "loss_best": hist.loss[hist.best_epoch],
    }
    return model.encode, info


def run(args: argparse.Namespace, on_dataset: Callable[[list[dict[str, Any]]], None]) -> None:
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        sp = datasets.hashing_split(name, seed=args.split_seed)
        fit, val = _val_split(sp.train_labels, 50, args.seeds[0])
        n_db = sp.database.shape[0]
        print(
            f"{name}: queries {sp.queries.shape}, train {sp.train.shape} "
            f"({fit.size} fit + {val.size} validation for GreedyHash), "
            f"database {sp.database.shape}",
            flush=True,
        )
        for nbits in args.bits:
            for method, seed in (
                (m, s) for m in args.methods for s in (args.seeds if m.startswith("GH") else [0])
            ):
                t0 = time.perf_counter()
                enc, info = _train_method(method, nbits, sp, fit, val, args, seed)
                t1 = time.perf_counter()
                if method == "PQ-ADC":
                    enc.add(sp.database)
                    pq_index = enc

                    def search(q: npt.NDArray[Any]) -> tuple[Any, npt.NDArray[np.int64]]:
                        d, i = pq_index.search(q, n_db)  # noqa: B023 - used in this iteration
                        return d, np.asarray(i, dtype=np.int64)

                else:
                    index = quanta.IndexBinaryFlat(nbits)
                    codes = enc(sp.database)
                    index.add(codes)
                    rank = _hamming_ranking(index, quanta.unpack_bits(codes, nbits), nbits)
                    encode = enc

                    def search(q: npt.NDArray[Any]) -> tuple[Any, npt.NDArray[np.int64]]:
                        return rank(encode(q))  # noqa: B023 - used in this iteration

                res = _evaluate(
                    search, sp.queries, sp.query_labels, sp.database_labels, args.k_map,
                    tie_avg=method in TIE_AVG and nbits == min(args.bits) and seed == args.seeds[0],
                )  # fmt: skip
                t2 = time.perf_counter()
                row = {
                    "dataset": name, "nbits": nbits, "method": method, "seed": seed, **res, **info,
                    "train_s": t1 - t0, "eval_s": t2 - t1,
                }  # fmt: skip
                rows.append(row)
                tie = f" (tie-avg {res['map_all_tie']:.4f})" if "map_all_tie" in res else ""
                print(
                    f"  {nbits:3d} bits {method:13s} seed {seed} mAP@all {res['map_all']:.4f}{tie} "
                    f"mAP@{args.k_map} {res['map_k']:.4f}  (train {t1 - t0:.1f}s, "
                    f"eval {t2 - t1:.1f}s)",
                    flush=True,
                )
        on_dataset(rows)


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3g}"


def aggregate(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Mean and standard deviation over seeds of each (dataset, bits, method)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["nbits"], r["method"]), []).append(r)
    out: dict[tuple[str, int, str], dict[str, Any]] = {}
    for key, rs in groups.items():
        agg = dict(rs[0])  # the first seed's notes (selected epoch, penalty, tie-averaged mAP)
        for m in ("map_all", "map_k", "train_s", "eval_s"):
            v = np.array([r[m] for r in rs])
            agg[m], agg[m + "_std"] = float(v.mean()), float(v.std(ddof=1)) if len(rs) > 1 else 0.0
        agg["n_seeds"] = len(rs)
        out[key] = agg
    return out


def _pm(a: dict[str, Any], key: str) -> str:
    return f"{a[key]:.4f}" + (f" ± {a[key + '_std']:.4f}" if a["n_seeds"] > 1 else "")


CLAIMS = (  # (a, b, metric key, label): "a beats b"
    ("GH-sup", "ITQ", "map_all", "GH-sup > ITQ (mAP@all)"),
    ("ITQ", "LSH", "map_all", "ITQ > LSH (mAP@all)"),
    ("GH-unsup", "ITQ", "map_k", "GH-unsup > ITQ (mAP@{k})"),
    ("ITQ", "LSH", "map_k", "ITQ > LSH (mAP@{k})"),
    ("GH-unsup", "LSH", "map_k", "GH-unsup > LSH (mAP@{k})"),
    ("GH-sup", "GH-unsup", "map_k", "supervised > unsupervised (mAP@{k})"),
    ("GH-sup", "GH-sup α=0", "map_all", "penalty helps, supervised (mAP@all)"),
    ("GH-unsup", "GH-unsup α=0", "map_k", "penalty helps, unsupervised (mAP@{k})"),
    ("GH-sup", "PQ-ADC", "map_all", "GH-sup > PQ-ADC (mAP@all)"),
    ("GH-unsup", "PQ-ADC", "map_k", "GH-unsup > PQ-ADC (mAP@{k})"),
)


def claims_table(
    agg: dict[tuple[str, int, str], dict[str, Any]], args: argparse.Namespace
) -> list[str]:
    """One row per claim, one column per (dataset, bits): ✓/✗ with the margin a − b.

    With several seeds a margin within the sum of the two standard deviations is marked "~"
    (not resolved by the seeds run)."""
    names = list(dict.fromkeys(k[0] for k in agg))
    cols = [(n, b) for n in names for b in args.bits]
    lines = [
        "| claim | " + " | ".join(f"{n} {b}" for n, b in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for a, b, key, label in CLAIMS:
        cells = []
        for n, bits in cols:
            ra, rb = agg.get((n, bits, a)), agg.get((n, bits, b))
            if ra is None or rb is None:
                cells.append("")
                continue
            diff = ra[key] - rb[key]
            noise = ra[key + "_std"] + rb[key + "_std"]
            mark = "✓" if diff > 0 else "✗"
            if max(ra["n_seeds"], rb["n_seeds"]) > 1 and abs(diff) <= noise:
                mark = "~"
            cells.append(f"{mark} {diff:+.3f}")
        if any(cells):
            lines.append(f"| {label.format(k=args.k_map)} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(rows: list[dict[str, Any]], args: argparse.Namespace, wall_s: float) -> str:
    k = args.k_map
    lines = [
        "# GreedyHash (NeurIPS 2018): paper check on Fashion-MNIST and MNIST, setting I",
        "",
        f"- quanta {quanta.__version__}, SIMD `{quanta.simd_level()}`, numpy {np.__version__}, "
        f"torch {_torch_version()}, Python {platform.python_version()}, device `{args.device}`, "
        f"torch threads {args.threads}; total wall time {wall_s / 60:.1f} min",
        "- command: `"
        + shlex.join(["python", "-m", "quanta.experiments.greedyhash", *args.argv])
        + "`",
        "- split (`quanta.datasets.hashing_split`, seed "
        f"{args.split_seed}): train+test pooled (70 000); 1 000 queries (100/class); 5 000 "
        "training images (500/class, drawn from the database); database = the other 69 000",
        "- LSH / ITQ / PQ-ADC trained on the 5 000 training images (pixels); GreedyHash on 4 500 "
        "of them, the other 500 (50/class) being the validation set for model selection "
        "(supervised: best validation mAP@all of the validation items retrieving each other; "
        "unsupervised: lowest validation loss). Test queries are never used for selection "
        "(the paper's scripts keep the best epoch by test accuracy — §7.4 pitfall 8)",
        f"- GH-sup: `{args.backbone}` backbone from scratch (MLP: 784 → {args.hidden} → "
        f"{args.hidden} → {args.feat_dim}, BatchNorm+ReLU) → Linear → greedy sign → bias-free "
        f"classifier; cross-entropy + α·mean(| |h| − 1 |³), α = {args.alpha}; Adam lr 1e-3, "
        f"weight decay 5e-4, batch {args.batch_size}, {args.epochs_sup} epochs",
        f"- GH-unsup: Linear(784 → bits) on standardised pixels → greedy sign; loss "
        "mean((cos(b_i, b_{i+N/2}) − cos(x_i, x_{i+N/2}))²) + α·penalty with x the centred "
        f"pixels; Adam lr 1e-3, batch {args.batch_size}, {args.epochs_unsup} epochs",
        "- α=0 rows: the same training without the penalty (ablation)",
        "- ranking: Hamming distance (`IndexBinaryFlat`), PQ-ADC by asymmetric L2 (`IndexPQ`, "
        "M = bits/8 × 8-bit codebooks); ties to the lower database id, so every number is "
        "deterministic. mAP (§7.2): AP normalised by the relevant items retrieved in the top K "
        f"(K = 69 000 for mAP@all). At {min(args.bits)} bits the tie-averaged mAP@all (§7.3) of "
        "LSH, ITQ and GreedyHash (first seed) is shown in brackets: it does not depend on the "
        "tie-break. "
        "Full Hamming rankings are computed densely (±1 products + stable sort), checked "
        "against `IndexBinaryFlat.search` (top 1 000, same ids and distances) on the first "
        "query block of every row",
        "",
    ]
    agg = aggregate(rows)
    for name in dict.fromkeys(r["dataset"] for r in rows):
        lines += [
            f"## {name}",
            "",
            f"| bits | method | mAP@all | mAP@{k} | seeds | train s | eval s | selected epoch | "
            "penalty at it |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (n, bits, _), a in agg.items():
            if n != name:
                continue
            tie = f" ({a['map_all_tie']:.4f})" if "map_all_tie" in a else ""
            ep = f"{a['best_epoch'] + 1}/{a['epochs']}" if "best_epoch" in a else ""
            lines.append(
                f"| {bits} | {a['method']} | {_pm(a, 'map_all')}{tie} | {_pm(a, 'map_k')} | "
                f"{a['n_seeds']} | {a['train_s']:.1f} | {a['eval_s']:.1f} | {ep} | "
                f"{_fmt(a.get('penalty_last'))} |"
            )
        lines.append("")
    seeds_note = (
        f"mean ± standard deviation over GreedyHash seeds {args.seeds} (LSH/ITQ/PQ: seed 0); "
        "'~': the margin is within the sum of the two standard deviations"
        if len(args.seeds) > 1
        else "single seed: small margins are not resolved"
    )
    lines += [
        "## Claims",
        "",
        f"✓: the claim holds, ✗: it does not; the number is the margin (a − b); {seeds_note}. "
        "Selected epoch and penalty (mean | |h| − 1 |³ at the kept epoch) are from the first "
        "seed; without the penalty (α=0) nothing bounds h and it grows without limit (the "
        "straight-through gradient keeps pushing saturated codes), which is why the paper adds it.",
        "",
        *claims_table(agg, args),
        "",
    ]
    lines += [
        "",
        "## Paper numbers (different dataset, backbone and protocol — not comparable)",
        "",
        "Recalled from the paper's tables (ALGORITHMS.md §5.5, marked unverified there). "
        "CIFAR-10 with ImageNet-pretrained AlexNet (supervised, setting I: 1 000 queries, 5 000 "
        "training, 59 000 database, mAP@all) and VGG16 features (unsupervised: 10 000 queries, "
        "50 000 database, mAP@1000):",
        "",
        "| setting | " + " | ".join(f"{b} bits" for b in PAPER_SUP_CIFAR) + " |",
        "|---|" + "---:|" * len(PAPER_SUP_CIFAR),
        "| GreedyHash supervised, CIFAR-10 (I), mAP@all | "
        + " | ".join(f"{v:.3f}" for v in PAPER_SUP_CIFAR.values())
        + " |",
        "",
        "| setting | " + " | ".join(f"{b} bits" for b in PAPER_UNSUP_CIFAR) + " |",
        "|---|" + "---:|" * len(PAPER_UNSUP_CIFAR),
        "| GreedyHash unsupervised, CIFAR-10, mAP@1000 | "
        + " | ".join(f"{v:.3f}" for v in PAPER_UNSUP_CIFAR.values())
        + " |",
        "",
    ]
    return "\n".join(lines)


def _torch_version() -> str:
    try:
        return str(importlib.import_module("torch").__version__)
    except ImportError:
        return "n/a"


def plot(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> bool:
    try:
        plt = importlib.import_module("matplotlib")
        plt.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
        return False
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 4 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, (key, label) in enumerate((("map_all", "mAP@all"), ("map_k", f"mAP@{args.k_map}"))):
            ax = axes[i, j]
            for method in args.methods:
                pts = [
                    (bits, a[key])
                    for (n, bits, m), a in aggregate(rows).items()
                    if n == name and m == method
                ]
                if pts:
                    xs, ys = zip(*pts)
                    style = "--" if method.endswith("α=0") else "-"
                    ax.plot(xs, ys, style, marker="o", label=method)
            ax.set_title(f"{name}: {label}")
            ax.set_xlabel("bits")
            ax.set_ylabel(label)
            ax.set_xticks(args.bits)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["fashion-mnist", "mnist"])
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--backbone", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--feat-dim", type=int, default=512)
    p.add_argument("--epochs-sup", type=int, default=15)
    p.add_argument("--epochs-unsup", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--alpha", type=float, default=0.1, help="penalty weight (paper code: 0.1)")
    p.add_argument("--k-map", type=int, default=1000, help="K of the unsupervised mAP@K")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a "
                   "shared machine; small models gain little from more)")  # fmt: skip
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="GreedyHash seeds (mean ± std)"
    )
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument(
        "--quick", action="store_true", help="smoke run: fashion-mnist, 16 bits, 2 epochs"
    )
    p.add_argument("--verbose", action="store_true", help="progress bars")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.datasets, args.bits = args.datasets[:1], [16]
        args.epochs_sup, args.epochs_unsup = 2, 2
    if any(b % 8 for b in args.bits):
        p.error("--bits must be multiples of 8")
    if any(m.startswith("GH") for m in args.methods):
        torch = importlib.import_module("torch")
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "greedyhash_quick" if args.quick else "greedyhash"
    t_start = time.perf_counter()

    def write(rows: list[dict[str, Any]]) -> None:
        md = to_markdown(rows, args, time.perf_counter() - t_start)
        png = args.out / f"{stem}.png"
        if plot(rows, args, png):
            md += f"\n![mAP vs bits]({png.name})\n"
        (args.out / f"{stem}.md").write_text(md)
        (args.out / f"{stem}.json").write_text(json.dumps(rows, indent=1, default=str))
        print(f"wrote {args.out / (stem + '.md')}", flush=True)

    run(args, write)
    print((args.out / f"{stem}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
