//! 4-bit PQ "fast scan" (André et al. VLDB 2015 / Quick ADC; faiss `IndexPQFastScan`): the
//! packed block layout, per-query u8 distance tables, and the scan of a run of blocks into
//! top-k sinks. The SIMD kernels are in `crate::kernels::fastscan`; the index that stores
//! blocks is `crate::index::IndexPQFastScan`. IVF reuses [`scan_blocks`] for 4-bit lists.
//!
//! # Block layout (quanta-native, ALGORITHMS.md §2.9)
//! `M` 4-bit sub-codes per vector, padded to `m2 = M + (M odd)` with a dummy sub-quantizer
//! whose code is 0 and whose table row is all zeros. Vectors are grouped by [`BBS`] = 32
//! (the last block padded with zero codes, never returned); block `b` is `16·m2` bytes,
//! sub-quantizer-major: `block[16·m + j] = code[32b + j][m] | code[32b + 16 + j][m] << 4`.
//!
//! # Table quantization (faiss `round_uint8_per_column`)
//! For a float table `L[m, 0..16]` (smaller is closer): `μ_m = min_j L[m,j]`,
//! `s = max_m (max_j L[m,j] − μ_m)`, `a = 255 / s` (`a = 1` if `s == 0`),
//! `Q[m,j] = min(255, floor((L[m,j] − μ_m)·a + 0.5))` (round half up, in f32), `β = Σ_m μ_m`.
//! The approximate distance of a code is `β + acc / a` with `acc = Σ_m Q[m, code_m]` (u16,
//! exact: see the kernels' overflow note). Each entry is off by at most `0.5/a`, so
//! `|approx − float ADC| ≤ M / (2a)` (plus float rounding).

use crate::kernels::fastscan::{
    accumulate_with, block_bytes, filter_le_with, lut_stride, quantize_with,
};
use crate::simd::SimdLevel;
use crate::topk::TopK;

pub use crate::kernels::fastscan::{BBS, MAX_GROUP, MAX_M2, MAX_M2_WIDE};

/// Padded (even) sub-quantizer count for `m` sub-quantizers.
#[inline]
pub fn padded_m(m: usize) -> usize {
    m + (m & 1)
}

/// Number of blocks holding `n` vectors.
#[inline]
pub fn n_blocks(n: usize) -> usize {
    n.div_ceil(BBS)
}

/// Bytes of the packed storage of `n` vectors with `m` sub-quantizers.
#[inline]
pub fn packed_len(n: usize, m: usize) -> usize {
    n_blocks(n) * block_bytes(padded_m(m))
}

/// Write `codes` (rows of `m` bytes, one sub-code `< 16` per byte — the `ProductQuantizer`
/// layout) into slots `first..first + rows` of `blocks` (already sized, at least
/// `packed_len(first + rows, m)` bytes). Other slots are left untouched.
pub fn pack_codes(codes: &[u8], m: usize, first: usize, blocks: &mut [u8]) {
    let bb = block_bytes(padded_m(m));
    for (i, code) in codes.chunks_exact(m).enumerate() {
        let slot = first + i;
        let base = (slot / BBS) * bb + (slot % 16);
        let high = slot % BBS >= 16;
        for (q, &c) in code.iter().enumerate() {
            debug_assert!(c < 16);
            let byte = &mut blocks[base + 16 * q];
            *byte = if high {
                (*byte & 0x0F) | (c << 4)
            } else {
                (*byte & 0xF0) | (c & 0x0F)
            };
        }
    }
}

/// Read back the `m` sub-codes of slot `slot` into `out` (`out.len() == m`).
pub fn unpack_code(blocks: &[u8], m: usize, slot: usize, out: &mut [u8]) {
    let bb = block_bytes(padded_m(m));
    let base = (slot / BBS) * bb + (slot % 16);
    let shift = if slot % BBS >= 16 { 4 } else { 0 };
    for (q, o) in out.iter_mut().enumerate() {
        *o = (blocks[base + 16 * q] >> shift) & 0x0F;
    }
}

/// u8 distance tables of a batch of queries, with the per-query scale `a` and bias `β`
/// (module docs).
#[derive(Debug, Clone)]
pub struct QuantizedLuts {
    m2: usize,
    nq: usize,
    data: Vec<u8>,
    scale: Vec<f32>,
    bias: Vec<f32>,
}

impl QuantizedLuts {
    /// Quantize `nq` float tables. `tables` holds `nq × m` rows of `row_stride >= 16` floats,
    /// of which entries `0..16` are used; smaller must mean closer (negate inner products).
    /// Entries must be finite. Panics if `m == 0`, `padded_m(m) > MAX_M2_WIDE` or sizes
    /// disagree.
    pub fn new(tables: &[f32], nq: usize, m: usize, row_stride: usize) -> Self {
        let m2 = padded_m(m);
        assert!(m > 0 && m2 <= MAX_M2_WIDE, "QuantizedLuts: m = {m}");
        let mut luts = QuantizedLuts {
            m2,
            nq,
            data: vec![0u8; nq * lut_stride(m2)],
            scale: vec![1f32; nq],
            bias: vec![0f32; nq],
        };
        luts.refill(tables, m, row_stride);
        luts
    }

    /// [`QuantizedLuts::new`] for tables of `metric` (given smaller-is-closer, as always).
    /// Inner-product tables are quantized as faiss quantizes them: from the products
    /// themselves (not their negation: 8-bit rounding is not symmetric), then each row is
    /// mirrored to `K_m − Q` (`K_m` its largest entry) so that the smallest accumulator is
    /// still the best. The ranking is then exactly faiss's `IndexPQFastScan` ranking, and
    /// [`to_distance`](Self::to_distance) still gives the negated approximate product.
    pub fn for_metric(
        tables: &[f32],
        nq: usize,
        m: usize,
        row_stride: usize,
        metric: crate::distance::Metric,
    ) -> Self {
        if metric == crate::distance::Metric::L2 {
            return Self::new(tables, nq, m, row_stride);
        }
        let products: Vec<f32> = tables.iter().map(|v| -v).collect();
        let mut luts = Self::new(&products, nq, m, row_stride);
        let stride = lut_stride(luts.m2);
        for q in 0..nq {
            let mut k_sum = 0u32;
            for row in luts.data[q * stride..q * stride + 16 * m].chunks_exact_mut(16) {
                let k = row.iter().copied().max().unwrap_or(0);
                k_sum += u32::from(k);
                row.iter_mut().for_each(|v| *v = k - *v);
            }
            // β + Σ Q / a is the product; Σ (K − Q) = ΣK − Σ Q, so its negation is
            // (−β − ΣK / a) + acc / a
            luts.bias[q] = -luts.bias[q] - k_sum as f32 / luts.scale[q];
        }
        luts
    }

    /// Quantize new float tables (same `nq` and `m`) into these buffers, without allocating
    /// (IVF re-quantizes one table per probed list). Same result as [`QuantizedLuts::new`].
    pub fn refill(&mut self, tables: &[f32], m: usize, row_stride: usize) {
        let nq = self.nq;
        assert_eq!(padded_m(m), self.m2, "QuantizedLuts: m");
        assert!(row_stride >= 16, "QuantizedLuts: row_stride");
        assert_eq!(
            tables.len(),
            nq * m * row_stride,
            "QuantizedLuts: tables size"
        );
        let stride = lut_stride(self.m2);
        let lvl = crate::simd::level();
        for q in 0..nq {
            let t = &tables[q * m * row_stride..(q + 1) * m * row_stride];
            let lut = &mut self.data[q * stride..(q + 1) * stride];
            let (a, b) = quantize_with(lvl, t, None, 0.0, row_stride, lut);
            self.scale[q] = a;
            self.bias[q] = b;
        }
    }

    /// Drop every table, keeping the buffers (then [`push_table`](Self::push_table) /
    /// [`push_copy`](Self::push_copy) build a batch table by table).
    pub fn clear(&mut self) {
        self.nq = 0;
        self.data.clear();
        self.scale.clear();
        self.bias.clear();
    }

    /// Quantize one more float table (`m` rows of `row_stride >= 16` floats, as
    /// [`QuantizedLuts::new`]); it becomes query `nq()`.
    pub fn push_table(&mut self, table: &[f32], row_stride: usize) {
        self.push_sum(crate::simd::level(), table, None, 0.0, row_stride)
    }

    /// Quantize one more float table given as a sum of terms (IVF: the query's table, the
    /// list's precomputed term `p` and the coarse term `key0` in row 0, see
    /// [`quantize_with`](crate::kernels::fastscan::quantize_with)) at level `lvl`, without
    /// building the float table; it becomes query `nq()`.
    pub fn push_sum(
        &mut self,
        lvl: SimdLevel,
        table: &[f32],
        p: Option<&[f32]>,
        key0: f32,
        row_stride: usize,
    ) {
        assert!(row_stride >= 16, "QuantizedLuts: row_stride");
        assert_eq!(
            padded_m(table.len() / row_stride),
            self.m2,
            "QuantizedLuts: m"
        );
        let stride = lut_stride(self.m2);
        let at = self.data.len();
        self.data.resize(at + stride, 0);
        let (a, b) = quantize_with(lvl, table, p, key0, row_stride, &mut self.data[at..]);
        self.scale.push(a);
        self.bias.push(b);
        self.nq += 1;
    }

    /// Append a copy of query `q`'s table of `other` (same `m2`).
    pub fn push_copy(&mut self, other: &QuantizedLuts, q: usize) {
        assert_eq!(other.m2, self.m2, "QuantizedLuts: m");
        self.data.extend_from_slice(other.lut(q));
        self.scale.push(other.scale[q]);
        self.bias.push(other.bias[q]);
        self.nq += 1;
    }

    /// Padded sub-quantizer count the tables (and blocks) use.
    pub fn m2(&self) -> usize {
        self.m2
    }
    /// Number of queries.
    pub fn nq(&self) -> usize {
        self.nq
    }
    /// Query `q`'s table, `16·m2` entries rounded up to a multiple of 64 bytes (zero rows).
    pub fn lut(&self, q: usize) -> &[u8] {
        let s = lut_stride(self.m2);
        &self.data[q * s..(q + 1) * s]
    }
    /// The tables of queries `q0..q0 + nq`, consecutive (one kernel call's `luts`).
    pub fn luts(&self, q0: usize, nq: usize) -> &[u8] {
        let s = lut_stride(self.m2);
        &self.data[q0 * s..(q0 + nq) * s]
    }
    /// Scale `a` of query `q` (accumulator units per distance unit).
    pub fn scale(&self, q: usize) -> f32 {
        self.scale[q]
    }
    /// Bias `β` of query `q`.
    pub fn bias(&self, q: usize) -> f32 {
        self.bias[q]
    }
    /// Approximate distance `β + acc / a` of an accumulator value for query `q`.
    #[inline]
    pub fn to_distance(&self, q: usize, acc: u16) -> f32 {
        self.bias[q] + acc as f32 / self.scale[q]
    }
}

/// How an exhaustive fast-scan search splits its work over threads: tasks of `per_task`
/// queries (a multiple of the kernel group, at most `max_task_queries`, about 8 tasks per thread
/// for load balance; the run is read from memory once per task), and, when there are few query
/// tasks, the blocks too (`splits` runs of `run` blocks, each at least `min_split_blocks`), so
/// every thread has work. Shared by the flat fast-scan indexes.
#[derive(Debug, Clone, Copy)]
pub struct ScanPlan {
    /// Queries per task.
    pub per_task: usize,
    /// Block runs per task (1: the whole base).
    pub splits: usize,
    /// Blocks per run.
    pub run: usize,
    nb: usize,
}

impl ScanPlan {
    /// The plan for `nq` queries over `nb` blocks with the current thread count.
    pub fn new(nq: usize, nb: usize, max_task_queries: usize, min_split_blocks: usize) -> Self {
        let threads = crate::threads::num_threads().max(1);
        let per_task = nq
            .div_ceil(8 * threads)
            .next_multiple_of(MAX_GROUP)
            .clamp(MAX_GROUP, max_task_queries);
        let groups = nq.div_ceil(per_task);
        let splits = if groups >= 2 * threads {
            1
        } else {
            (2 * threads)
                .div_ceil(groups)
                .min(nb / min_split_blocks)
                .max(1)
        };
        ScanPlan {
            per_task,
            splits,
            run: nb.div_ceil(splits).max(1),
            nb,
        }
    }

    /// `scan(b0, b1)` (one top-k collector per query of the task, over blocks `b0..b1`) over
    /// the whole base: once, or per run in parallel with the collectors merged.
    pub fn scan_all<F>(&self, scan: F) -> Vec<TopK>
    where
        F: Fn(usize, usize) -> Vec<TopK> + Sync,
    {
        use rayon::prelude::*;
        let nb = self.nb;
        if self.splits == 1 {
            return scan(0, nb);
        }
        let parts: Vec<Vec<TopK>> = (0..self.splits)
            .into_par_iter()
            .map(|s| scan((s * self.run).min(nb), ((s + 1) * self.run).min(nb)))
            .collect();
        let mut it = parts.into_iter();
        let mut acc = it.next().expect("splits >= 1");
        for p in it {
            for (a, h) in acc.iter_mut().zip(&p) {
                a.merge(h);
            }
        }
        acc
    }
}

/// Receives the candidates of a scan for one query.
pub trait BlockSink {
    /// Accumulator values above this are never offered (`u16::MAX`: offer everything).
    /// Re-read before each offer, but a SIMD pass filters a run of blocks with the value it
    /// had at the run's start; `push` must still check its own collector.
    fn threshold(&self) -> u16;
    /// Offer vector `i` (position inside the scanned run, `i < n`) with accumulator `acc`.
    fn push(&mut self, i: usize, acc: u16);
}

/// The largest accumulator value worth offering to a collector whose float threshold is `t`,
/// for a table with bias `β` and scale `a`: `floor((t − β)·a) + 1` clamped to the u16 range
/// (one unit of slack covers the float rounding of `β + acc / a`); `u16::MAX` when `t` is not
/// finite. No call to `floorf` (the truncating cast is the floor of a non-negative value).
#[inline]
pub fn acc_threshold(t: f32, bias: f32, scale: f32) -> u16 {
    if !t.is_finite() {
        return u16::MAX;
    }
    let x = (t - bias) * scale;
    if x >= 0.0 {
        if x >= (u16::MAX - 1) as f32 {
            u16::MAX
        } else {
            x as u16 + 1
        }
    } else {
        // x < 0 (or NaN): floor(x) + 1 <= 0
        0
    }
}

/// A [`TopK`] of float distances fed from accumulators: key `β + acc / a`, id `id_of(i)`.
/// Heaps filled from different tables (IVF lists) stay comparable because keys are floats.
pub struct HeapSink<'a, F: Fn(usize) -> i64> {
    heap: &'a mut TopK,
    bias: f32,
    scale: f32,
    id_of: F,
}

impl<'a, F: Fn(usize) -> i64> HeapSink<'a, F> {
    /// Sink for query `q` of `luts`, pushing into `heap` with ids `id_of(i)`.
    pub fn new(heap: &'a mut TopK, luts: &QuantizedLuts, q: usize, id_of: F) -> Self {
        HeapSink {
            heap,
            bias: luts.bias(q),
            scale: luts.scale(q),
            id_of,
        }
    }
}

impl<F: Fn(usize) -> i64> BlockSink for HeapSink<'_, F> {
    #[inline]
    fn threshold(&self) -> u16 {
        acc_threshold(self.heap.threshold(), self.bias, self.scale)
    }

    #[inline]
    fn push(&mut self, i: usize, acc: u16) {
        self.heap
            .push(self.bias + acc as f32 / self.scale, (self.id_of)(i));
    }
}

/// Blocks per kernel call (32 blocks = 1024 vectors: distances 2 KiB per query, in L1).
const CHUNK: usize = 32;

/// Scan a run of packed blocks for queries `q0 .. q0 + sinks.len()` of `luts`.
///
/// `blocks` holds (at least) `n_blocks(n)` blocks of `16·luts.m2()` bytes; only the first `n`
/// vectors are offered (`sinks[s]` receives `(i, acc)` for query `q0 + s`, `i` in `0..n`, in
/// increasing `i`). Runs at level `lvl` (results identical at every level). The kernels load a
/// block once for up to [`MAX_GROUP`] queries, and the run is walked in chunks of 32 blocks that
/// every query scans before the next chunk, so passing many queries at once (16–32) reads the
/// codes from memory once for all of them. Single-threaded: parallelize over queries or
/// block ranges outside (block ranges: pass `&blocks[b0 * bytes..]` and map `i` to `32·b0 + i`).
///
/// Panics if the sizes disagree.
pub fn scan_blocks<S: BlockSink>(
    lvl: SimdLevel,
    luts: &QuantizedLuts,
    q0: usize,
    blocks: &[u8],
    n: usize,
    sinks: &mut [S],
) {
    let m2 = luts.m2;
    let bb = block_bytes(m2);
    let stride = lut_stride(m2);
    let nb = n_blocks(n);
    assert!(
        blocks.len() >= nb * bb,
        "scan_blocks: {n} vectors need {nb} blocks"
    );
    assert!(
        q0 + sinks.len() <= luts.nq,
        "scan_blocks: queries out of range"
    );
    let mut dist = [0u16; MAX_GROUP * CHUNK * BBS];
    let mut idx = [0u32; CHUNK * BBS];
    // chunk-major: a chunk of blocks (at most 32 × 16·m2 bytes) stays in L1/L2 while every
    // query group scans it, so the codes come from memory once per call, not once per group
    let mut cb = 0;
    while cb < nb {
        let ce = (cb + CHUNK).min(nb);
        let per = (ce - cb) * BBS;
        let valid = per.min(n - cb * BBS);
        let chunk = &blocks[cb * bb..ce * bb];
        for (g, group) in sinks.chunks_mut(MAX_GROUP).enumerate() {
            let qa = q0 + g * MAX_GROUP;
            let ng = group.len();
            let tables = &luts.data[qa * stride..(qa + ng) * stride];
            let d = &mut dist[..ng * per];
            accumulate_with(lvl, tables, ng, m2, chunk, d);
            for (s, sink) in group.iter_mut().enumerate() {
                let ds = &d[s * per..s * per + valid];
                // SIMD filter passes over segments of 1, 1, 2, 4, … blocks (a collector that is
                // still filling — the first list an IVF query scans — tightens early, and a
                // full one costs a few filter calls per chunk), the threshold re-read before
                // each offer
                let (mut i0, mut seg) = (0, BBS);
                while i0 < valid {
                    let end = (i0 + seg).min(valid);
                    let c = filter_le_with(lvl, &ds[i0..end], sink.threshold(), &mut idx);
                    for &i in &idx[..c] {
                        let i = i0 + i as usize;
                        let acc = ds[i];
                        if acc <= sink.threshold() {
                            sink.push(cb * BBS + i, acc);
                        }
                    }
                    if i0 > 0 {
                        seg *= 2;
                    }
                    i0 = end;
                }
            }
        }
        cb = ce;
    }
}

#[cfg(test)]
mod tests;
