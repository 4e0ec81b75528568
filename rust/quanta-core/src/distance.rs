//! Batched query × base distances: blocked inner products (GEMM from the `gemm` crate, or the
//! scalar kernel at `QUANTA_SIMD=scalar`), reduced tile by tile while the tile is in cache, so
//! the full nq × n distance matrix is never materialized.

use crate::control::Control;
use crate::error::Result;
use crate::index::IdSelector;
use crate::kernels::{l2, panel};
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;
use rayon::prelude::*;

/// Distance used by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance (smaller is closer).
    L2,
    /// Inner product (larger is closer).
    InnerProduct,
}

impl Metric {
    /// Parse "l2" / "ip" (also "inner_product").
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "inner_product" | "dot" => Ok(Metric::InnerProduct),
            other => Err(crate::Error::invalid(format!(
                "metric must be 'l2' or 'ip', got {other:?}"
            ))),
        }
    }

    /// Name as accepted by [`Metric::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
        }
    }

    /// Distance value for "no result" padding (faiss convention).
    pub fn pad(self) -> f32 {
        match self {
            Metric::L2 => f32::INFINITY,
            Metric::InnerProduct => f32::NEG_INFINITY,
        }
    }
}

/// Rows of a base tile (a 1024 × 128 f32 tile is 512 KiB: stays in L2 while queries stream by).
pub const BASE_TILE: usize = 1024;
/// Rows of a query (or k-means point) block per GEMM call.
pub const QUERY_TILE: usize = 256;

/// `out[i * nx + j] = <a_i, b_j>` for row-major `a` (na × d) and `b` (nx × d).
pub fn ip_tile(lvl: SimdLevel, a: &[f32], b: &[f32], d: usize, out: &mut [f32]) {
    let na = a.len() / d;
    let nb = b.len() / d;
    debug_assert_eq!(out.len(), na * nb);
    if na == 0 || nb == 0 {
        return;
    }
    if lvl == SimdLevel::Scalar || d == 0 {
        for (i, ai) in a.chunks_exact(d.max(1)).enumerate().take(na) {
            for (j, bj) in b.chunks_exact(d.max(1)).enumerate().take(nb) {
                out[i * nb + j] = if d == 0 {
                    0.0
                } else {
                    l2::inner_product_with(lvl, ai, bj)
                };
            }
        }
        return;
    }
    // SAFETY: pointers and strides describe exactly the slices above: `a` is na×d row-major
    // (row stride d), `b` read as a d×nb matrix whose column j is row j of `b` (column stride
    // d, row stride 1), `out` is na×nb row-major. No aliasing between inputs and output.
    unsafe {
        gemm::gemm(
            na,
            nb,
            d,
            out.as_mut_ptr(),
            1,
            nb as isize,
            false,
            a.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Row-chunk size (a multiple of `BASE_TILE`) for splitting `n` base rows over the pool.
///
/// Chunks start at multiples of `BASE_TILE` whatever the thread count, so every distance is
/// computed by the same GEMM tile shape and results do not depend on the number of threads.
fn chunk_rows(n: usize) -> usize {
    let threads = crate::threads::num_threads().max(1);
    let want = n.div_ceil(threads * 4).max(1);
    want.div_ceil(BASE_TILE) * BASE_TILE
}

/// Exact k nearest neighbours of each query among the base rows.
///
/// `base_norms` (squared L2 norms of the base rows) is needed for L2 only. Returns
/// (distances nq×k, ids nq×k), padded with (`metric.pad()`, -1) when the base has fewer than k rows.
pub fn knn(
    queries: &[f32],
    base: &[f32],
    base_norms: &[f32],
    d: usize,
    k: usize,
    metric: Metric,
    ctl: &Control,
) -> Result<(Vec<f32>, Vec<i64>)> {
    knn_filtered(queries, base, base_norms, d, k, metric, None, ctl)
}

/// [`knn`] returning only base rows the selector accepts (row number = id); rejected rows are
/// masked inside the scan, so they never take a result slot.
#[allow(clippy::too_many_arguments)]
pub fn knn_filtered(
    queries: &[f32],
    base: &[f32],
    base_norms: &[f32],
    d: usize,
    k: usize,
    metric: Metric,
    sel: Option<&IdSelector>,
    ctl: &Control,
) -> Result<(Vec<f32>, Vec<i64>)> {
    let nq = queries.len() / d.max(1);
    let total = result_len(nq, k)?;
    let mut dist = Vec::new();
    let mut ids = Vec::new();
    dist.try_reserve_exact(total)
        .map_err(|_| too_large(nq, k))?;
    ids.try_reserve_exact(total).map_err(|_| too_large(nq, k))?;
    let n = base.len() / d.max(1);
    let nchunks = n.div_ceil(chunk_rows(n.max(1)));
    ctl.set_total((nq.div_ceil(QUERY_BATCH) * nchunks) as u64);
    // bounded batches keep the per-chunk collectors (chunks × batch × k) small
    for q0 in (0..nq).step_by(QUERY_BATCH) {
        let q1 = (q0 + QUERY_BATCH).min(nq);
        let (dd, ii) = knn_batch(
            &queries[q0 * d..q1 * d],
            base,
            base_norms,
            d,
            k,
            metric,
            sel,
            ctl,
        )?;
        dist.extend_from_slice(&dd);
        ids.extend_from_slice(&ii);
    }
    Ok((dist, ids))
}

/// `nq * k` result slots, or an error naming `k` when that cannot be allocated.
pub fn result_len(nq: usize, k: usize) -> Result<usize> {
    nq.checked_mul(k)
        .filter(|&t| t <= isize::MAX as usize / 8)
        .ok_or_else(|| too_large(nq, k))
}

pub(crate) fn too_large(nq: usize, k: usize) -> crate::Error {
    crate::Error::invalid(format!(
        "k={k} is too large: the result for {nq} queries would not fit in memory"
    ))
}

/// Queries per pass over the base in [`knn`].
const QUERY_BATCH: usize = 4096;

#[allow(clippy::too_many_arguments)]
fn knn_batch(
    queries: &[f32],
    base: &[f32],
    base_norms: &[f32],
    d: usize,
    k: usize,
    metric: Metric,
    sel: Option<&IdSelector>,
    ctl: &Control,
) -> Result<(Vec<f32>, Vec<i64>)> {
    let nq = queries.len() / d;
    let n = base.len() / d;
    let lvl = level();
    let mut dist = vec![metric.pad(); nq * k];
    let mut ids = vec![-1i64; nq * k];
    // per-query collectors and the final rows never hold more than n real results
    let kk = k.min(n.max(1));
    if nq == 0 {
        return Ok((dist, ids));
    }
    let chunk = chunk_rows(n.max(1));
    let nchunks = n.div_ceil(chunk);
    let threads = crate::threads::num_threads().max(1);
    // one TopK per query per chunk, merged in chunk order
    let merged = if nchunks >= threads || nq <= QUERY_TILE {
        // chunks in parallel, every query tile in each
        let partial: Vec<Result<Vec<TopK>>> = (0..nchunks)
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(n));
                let r = knn_chunk(
                    queries,
                    0..nq,
                    base,
                    base_norms,
                    d,
                    kk,
                    metric,
                    sel,
                    lo..hi,
                    ctl,
                );
                ctl.advance(1);
                r
            })
            .collect();
        merge_chunks(partial.into_iter(), nq, kk)?
    } else {
        // Fewer base chunks than threads (a coarse quantizer of nlist <= 1024 centroids is a
        // single chunk): query tiles in parallel instead, each over every chunk in order. The
        // tiles are the same `QUERY_TILE` rows as above and the chunks the same rows, so every
        // GEMM call, hence every distance and result, is the same whatever the thread count.
        let tiles: Vec<Result<Vec<TopK>>> = (0..nq.div_ceil(QUERY_TILE))
            .into_par_iter()
            .map(|t| {
                let qs = t * QUERY_TILE..((t + 1) * QUERY_TILE).min(nq);
                let parts = (0..nchunks).map(|c| {
                    let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(n));
                    let qd = &queries[qs.start * d..qs.end * d];
                    knn_chunk(
                        qd,
                        0..qs.len(),
                        base,
                        base_norms,
                        d,
                        kk,
                        metric,
                        sel,
                        lo..hi,
                        ctl,
                    )
                });
                merge_chunks(parts, qs.len(), kk)
            })
            .collect();
        ctl.advance(nchunks as u64);
        let mut all = Vec::with_capacity(nq);
        for t in tiles {
            all.extend(t?);
        }
        all
    };
    let qnorms: Vec<f32> = match metric {
        Metric::L2 => queries
            .chunks_exact(d)
            .map(|q| l2::inner_product_with(lvl, q, q))
            .collect(),
        Metric::InnerProduct => Vec::new(),
    };
    for (qi, ((h, dq), iq)) in merged
        .into_iter()
        .zip(dist.chunks_exact_mut(k))
        .zip(ids.chunks_exact_mut(k))
        .enumerate()
    {
        match metric {
            Metric::L2 => {
                let qn = qnorms[qi];
                h.write_into(dq, iq, f32::INFINITY, |key| (qn + key).max(0.0))
            }
            Metric::InnerProduct => h.write_into(dq, iq, f32::NEG_INFINITY, |key| 0.0 - key),
        }
    }
    Ok((dist, ids))
}

/// Per-query collectors of the base rows `rows` for the queries `qs` (indices into
/// `queries`), query tiles of [`QUERY_TILE`] rows from `qs.start`, base tiles of [`BASE_TILE`].
#[allow(clippy::too_many_arguments)]
fn knn_chunk(
    queries: &[f32],
    qs: std::ops::Range<usize>,
    base: &[f32],
    base_norms: &[f32],
    d: usize,
    kk: usize,
    metric: Metric,
    sel: Option<&IdSelector>,
    rows: std::ops::Range<usize>,
    ctl: &Control,
) -> Result<Vec<TopK>> {
    let lvl = level();
    let (lo, hi) = (rows.start, rows.end);
    let mut heaps: Vec<TopK> = qs
        .clone()
        .map(|_| TopK::with_capacity_hint(kk, hi - lo))
        .collect();
    let mut tile = vec![0f32; QUERY_TILE.min(qs.len()) * BASE_TILE.min(hi - lo)];
    let mut b0 = lo;
    while b0 < hi {
        ctl.check()?;
        let b1 = (b0 + BASE_TILE).min(hi);
        let nb = b1 - b0;
        let btile = &base[b0 * d..b1 * d];
        for q0 in qs.clone().step_by(QUERY_TILE) {
            let q1 = (q0 + QUERY_TILE).min(qs.end);
            let t = &mut tile[..(q1 - q0) * nb];
            ip_tile(lvl, &queries[q0 * d..q1 * d], btile, d, t);
            for (r, row) in t.chunks_exact_mut(nb).enumerate() {
                to_keys(row, base_norms, b0, metric);
                if let Some(sel) = sel {
                    mask_rejected(row, b0, sel);
                }
                scan_row(lvl, row, b0 as i64, &mut heaps[q0 - qs.start + r]);
            }
        }
        b0 = b1;
    }
    Ok(heaps)
}

/// Merge per-chunk collectors (in chunk order) into one per query.
fn merge_chunks(
    parts: impl Iterator<Item = Result<Vec<TopK>>>,
    nq: usize,
    kk: usize,
) -> Result<Vec<TopK>> {
    let mut merged: Option<Vec<TopK>> = None;
    for p in parts {
        let p = p?;
        match &mut merged {
            None => merged = Some(p),
            Some(m) => {
                for (a, b) in m.iter_mut().zip(p.iter()) {
                    a.merge(b);
                }
            }
        }
    }
    Ok(merged.unwrap_or_else(|| (0..nq).map(|_| TopK::new(kk)).collect()))
}

/// Turn a row of inner products into "smaller is better" keys, in place:
/// `‖x‖² − 2⟨q,x⟩` for L2 (the query norm is added at the end), `−⟨q,x⟩` for IP.
#[inline]
fn to_keys(row: &mut [f32], base_norms: &[f32], b0: usize, metric: Metric) {
    match metric {
        Metric::L2 => {
            let nb = row.len();
            for (v, &nx) in row.iter_mut().zip(&base_norms[b0..b0 + nb]) {
                *v = nx - 2.0 * *v;
            }
        }
        Metric::InnerProduct => {
            // `0 - v`, not `-v`: a zero product must give +0.0 whatever its sign, so that
            // equal scores tie (and fall back to the id order) in every comparison
            for v in row.iter_mut() {
                *v = 0.0 - *v;
            }
        }
    }
}

/// Keys of rows the selector rejects become `+inf`, which no collector admits.
fn mask_rejected(row: &mut [f32], id0: usize, sel: &IdSelector) {
    for (j, key) in row.iter_mut().enumerate() {
        if !sel.accepts((id0 + j) as i64) {
            *key = f32::INFINITY;
        }
    }
}

/// Offer every key of `row` below the collector's threshold (ids `id0 + j`, increasing).
#[inline]
pub fn scan_row(lvl: SimdLevel, row: &[f32], id0: i64, heap: &mut TopK) {
    let mut j = 0;
    loop {
        j = l2::find_below_with(lvl, row, j, heap.threshold());
        if j >= row.len() {
            break;
        }
        heap.push(row[j], id0 + j as i64);
        j += 1;
    }
}

/// Nearest centroid (squared L2, lowest index on ties) of every row of `x`.
///
/// Returns (labels, squared distances clamped at 0). `x_norms` and `c_norms` are the squared
/// row norms. Parallel over row blocks; each block's result is independent of the others.
pub fn assign_nearest(
    x: &[f32],
    x_norms: &[f32],
    centroids: &[f32],
    c_norms: &[f32],
    d: usize,
    ctl: &Control,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let n = x.len() / d;
    let mut labels = vec![0u32; n];
    let mut dists = vec![0f32; n];
    labels
        .par_chunks_mut(QUERY_TILE)
        .zip(dists.par_chunks_mut(QUERY_TILE))
        .enumerate()
        .try_for_each(|(blk, (lab, dis))| -> Result<()> {
            ctl.check()?;
            let r0 = blk * QUERY_TILE;
            let rows = lab.len();
            let mut out = vec![Nearest2::default(); rows];
            nearest2_block(
                &x[r0 * d..(r0 + rows) * d],
                &x_norms[r0..r0 + rows],
                centroids,
                c_norms,
                d,
                &mut out,
            );
            for (r, o) in out.iter().enumerate() {
                lab[r] = o.label;
                dis[r] = o.d1;
            }
            Ok(())
        })?;
    Ok((labels, dists))
}

/// Nearest and second-nearest centroid distances of one point.
#[derive(Debug, Clone, Copy)]
pub struct Nearest2 {
    /// Index of the nearest centroid (lowest on ties).
    pub label: u32,
    /// Squared distance to it, clamped at 0.
    pub d1: f32,
    /// Squared distance to the second nearest (equal to `d1` on a tie, `inf` if k == 1).
    pub d2: f32,
}

impl Default for Nearest2 {
    fn default() -> Self {
        Nearest2 {
            label: 0,
            d1: f32::INFINITY,
            d2: f32::INFINITY,
        }
    }
}

/// Longest vectors whose nearest centroids are found without GEMM: for short vectors (PQ
/// sub-spaces, d = 4..16) a GEMM call is mostly packing overhead, while a broadcast-FMA loop
/// over transposed centroids keeps every operand in registers.
const DIRECT_MAX_D: usize = 16;

/// [`nearest2_block`] for `d <= DIRECT_MAX_D`: inner products against transposed centroids
/// (d × k), then the same fused argmin / second-min kernel.
fn nearest2_direct(
    lvl: SimdLevel,
    xb: &[f32],
    xb_norms: &[f32],
    centroids: &[f32],
    c_norms: &[f32],
    d: usize,
    out: &mut [Nearest2],
) {
    let k = c_norms.len();
    let mut ct = vec![0f32; d * k];
    for (j, c) in centroids.chunks_exact(d).enumerate() {
        for (i, &v) in c.iter().enumerate() {
            ct[i * k + j] = v;
        }
    }
    let mut ip = vec![0f32; k];
    for ((row, &xn), o) in xb.chunks_exact(d).zip(xb_norms).zip(out.iter_mut()) {
        crate::kernels::pq::ip_transposed_with(lvl, row, &ct, &mut ip);
        let (j, v, v2) = l2::argmin2_shifted_with(lvl, c_norms, &ip);
        *o = Nearest2 {
            label: j as u32,
            d1: (xn + v).max(0.0),
            d2: (xn + v2).max(0.0),
        };
    }
}

/// [`Nearest2`] of each row of a block `xb` (at most [`QUERY_TILE`] rows), single-threaded:
/// GEMM tiles of up to 4096 centroids, then the fused argmin / second-min kernel (short vectors:
/// [`nearest2_direct`]).
pub fn nearest2_block(
    xb: &[f32],
    xb_norms: &[f32],
    centroids: &[f32],
    c_norms: &[f32],
    d: usize,
    out: &mut [Nearest2],
) {
    let lvl = level();
    let rows = xb_norms.len();
    let k = c_norms.len();
    if d <= DIRECT_MAX_D {
        nearest2_direct(lvl, xb, xb_norms, centroids, c_norms, d, out);
        return;
    }
    if d <= panel::PANEL_MAX_D && panels_beat_gemm(lvl) {
        let panels = panel::Panels::pack(centroids, d);
        nearest2_panels(lvl, xb, xb_norms, &panels, c_norms, out);
        return;
    }
    let ct = k.min(BASE_TILE * 4);
    let mut tile = vec![0f32; rows * ct];
    let mut best = vec![(0u32, f32::INFINITY, f32::INFINITY); rows];
    for c0 in (0..k).step_by(ct.max(1)) {
        let c1 = (c0 + ct).min(k);
        let nc = c1 - c0;
        let t = &mut tile[..rows * nc];
        ip_tile(lvl, xb, &centroids[c0 * d..c1 * d], d, t);
        for (r, row) in t.chunks_exact(nc).enumerate() {
            let (j, v, v2) = l2::argmin2_shifted_with(lvl, &c_norms[c0..c1], row);
            let b = &mut best[r];
            // strict: an equal value in a later tile has a higher index
            if v < b.1 {
                b.2 = b.1.min(v2);
                b.0 = (c0 + j) as u32;
                b.1 = v;
            } else {
                b.2 = b.2.min(v);
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        let (j, v, v2) = best[r];
        *o = Nearest2 {
            label: j,
            d1: (xb_norms[r] + v).max(0.0),
            d2: (xb_norms[r] + v2).max(0.0),
        };
    }
}

/// Whether the panel kernel (AVX2) or the `gemm` crate computes the inner products of the
/// nearest-centroid search at `lvl`.
///
/// At the AVX2 level the panel kernel (measured on AMD EPYC Zen 3: `kernels::panel`). At the
/// AVX-512 level it depends on how the core executes 512-bit FMAs, which the feature bits do
/// not say: AMD Zen 4 splits each into two 256-bit halves, so `gemm`'s AVX-512 micro-kernel has
/// no more peak than the AVX2 panel kernel and still pays for packing both operands (issue 15:
/// k-means 0.84x faiss time on Zen 4 with `gemm`); Intel server cores (Sapphire Rapids) have
/// two full-width FMA ports, on which `gemm`'s AVX-512 kernel measured 0.53x faiss time. So: the
/// panel kernel everywhere except on Intel at the AVX-512 level. Results differ between the two
/// paths only in float rounding, and the choice is fixed per CPU, so runs on one machine are
/// reproducible.
pub(crate) fn panels_beat_gemm(lvl: SimdLevel) -> bool {
    match lvl {
        SimdLevel::Scalar => false,
        SimdLevel::Avx2 => true,
        SimdLevel::Avx512 => crate::simd::vendor() != crate::simd::Vendor::Intel,
    }
}

/// Bytes of packed centroids one chunk of the panel search keeps hot (in L2) while every row
/// of the block meets them.
const PANEL_CHUNK_BYTES: usize = 128 * 1024;

/// [`nearest2_block`] through the panel kernel: for each chunk of centroid panels and each group
/// of [`panel::MR`] rows, the inner products land in an L1-sized tile that the fused argmin /
/// second-min kernel reads at once; chunks merge as the tiles of the GEMM path do (strict `<`:
/// the lower index wins ties), so both paths pick the same labels up to float rounding.
fn nearest2_panels(
    lvl: SimdLevel,
    xb: &[f32],
    xb_norms: &[f32],
    panels: &panel::Panels,
    c_norms: &[f32],
    out: &mut [Nearest2],
) {
    use panel::{MR, NR};
    let (d, k, np) = (panels.d(), panels.k(), panels.len());
    let rows = xb_norms.len();
    let chunk = (PANEL_CHUNK_BYTES / (d * NR * 4)).clamp(1, np.max(1));
    let width = chunk * NR;
    let mut tile = vec![0f32; MR * width];
    let mut best = vec![(0u32, f32::INFINITY, f32::INFINITY); rows];
    for p0 in (0..np).step_by(chunk) {
        let p1 = (p0 + chunk).min(np);
        let (c0, c1) = (p0 * NR, (p1 * NR).min(k));
        for r0 in (0..rows).step_by(MR) {
            let mr = MR.min(rows - r0);
            let xs = &xb[r0 * d..(r0 + mr) * d];
            for p in p0..p1 {
                let o = &mut tile[(p - p0) * NR..];
                panel::ip_rows_panel_with(lvl, xs, mr, d, panels.panel(p), o, width);
            }
            for r in 0..mr {
                let row = &tile[r * width..r * width + (c1 - c0)];
                let (j, v, v2) = l2::argmin2_shifted_with(lvl, &c_norms[c0..c1], row);
                let b = &mut best[r0 + r];
                if v < b.1 {
                    b.2 = b.1.min(v2);
                    b.0 = (c0 + j) as u32;
                    b.1 = v;
                } else {
                    b.2 = b.2.min(v);
                }
            }
        }
    }
    for (r, o) in out.iter_mut().enumerate() {
        let (j, v, v2) = best[r];
        *o = Nearest2 {
            label: j,
            d1: (xb_norms[r] + v).max(0.0),
            d2: (xb_norms[r] + v2).max(0.0),
        };
    }
}

/// Squared L2 norms of the rows of `x`, in parallel.
pub fn row_norms(x: &[f32], d: usize) -> Vec<f32> {
    let n = x.len() / d.max(1);
    let mut out = vec![0f32; n];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut(4096).enumerate().for_each(|(c, o)| {
        let xs = &x[c * 4096 * d..(c * 4096 + o.len()) * d];
        l2::norms_sqr(xs, d, o);
    });
    out
}

/// Error naming `arg` if `x` holds NaN/Inf (checked in parallel).
pub fn check_finite(x: &[f32], d: usize, arg: &'static str) -> Result<()> {
    const CH: usize = 1 << 16;
    let first = x
        .par_chunks(CH)
        .enumerate()
        .filter_map(|(c, s)| l2::first_non_finite(s).map(|p| c * CH + p))
        .min();
    match first {
        None => Ok(()),
        Some(p) => Err(crate::Error::NonFinite {
            arg,
            row: p / d.max(1),
            col: p % d.max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn randv(n: usize, r: &mut Rng) -> Vec<f32> {
        (0..n).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn knn_matches_brute_force() {
        let mut r = Rng::new(1);
        let d = 13;
        let (n, nq, k) = (3000, 37, 7);
        let base = randv(n * d, &mut r);
        let q = randv(nq * d, &mut r);
        let norms = row_norms(&base, d);
        for metric in [Metric::L2, Metric::InnerProduct] {
            let (dist, ids) = knn(&q, &base, &norms, d, k, metric, &Control::new()).unwrap();
            for i in 0..nq {
                let qi = &q[i * d..(i + 1) * d];
                let mut all: Vec<(f64, i64)> = (0..n)
                    .map(|j| {
                        let bj = &base[j * d..(j + 1) * d];
                        let v: f64 = match metric {
                            Metric::L2 => qi
                                .iter()
                                .zip(bj)
                                .map(|(a, b)| ((a - b) as f64).powi(2))
                                .sum(),
                            Metric::InnerProduct => {
                                -qi.iter().zip(bj).map(|(a, b)| (a * b) as f64).sum::<f64>()
                            }
                        };
                        (v, j as i64)
                    })
                    .collect();
                all.sort_by(|a, b| a.partial_cmp(b).unwrap());
                for j in 0..k {
                    assert_eq!(ids[i * k + j], all[j].1, "metric {metric:?} q{i} rank {j}");
                    let want = if metric == Metric::L2 {
                        all[j].0
                    } else {
                        -all[j].0
                    };
                    assert!((dist[i * k + j] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()));
                }
            }
        }
    }

    #[test]
    fn knn_pads_when_base_is_small() {
        let base = vec![0.0f32, 1.0, 2.0];
        let norms = row_norms(&base, 1);
        let (dist, ids) = knn(&[0.5], &base, &norms, 1, 5, Metric::L2, &Control::new()).unwrap();
        assert_eq!(ids, vec![0, 1, 2, -1, -1]);
        assert_eq!(dist[0], 0.25);
        assert!(dist[4].is_infinite());
    }

    #[test]
    fn assign_picks_lowest_index_on_ties() {
        // two identical centroids: every point goes to index 0
        let c = vec![1.0f32, 1.0, 1.0, 1.0];
        let x = vec![0.0f32, 0.0, 2.0, 2.0];
        let (lab, dis) = assign_nearest(
            &x,
            &row_norms(&x, 2),
            &c,
            &row_norms(&c, 2),
            2,
            &Control::new(),
        )
        .unwrap();
        assert_eq!(lab, vec![0, 0]);
        assert_eq!(dis, vec![2.0, 2.0]);
    }

    #[test]
    fn finite_check_names_position() {
        let mut x = vec![0.0f32; 30];
        x[17] = f32::NAN;
        match check_finite(&x, 5, "x") {
            Err(crate::Error::NonFinite { arg, row, col }) => {
                assert_eq!((arg, row, col), ("x", 3, 2))
            }
            other => panic!("{other:?}"),
        }
    }
}
