//! `IndexRaBitQ`: RaBitQ codes (1 to 8 bits per dimension) searched in two stages, in one of
//! two modes.
//!
//! # Layout
//! Bit `B − 1 − j` of every coordinate's level is *plane j*; plane 0 (the signs) is the 1-bit
//! RaBitQ code. The `scan_planes` most significant planes are stored in the 4-bit fast-scan
//! block layout (4 coordinates per nibble, `m = ceil(d/4)` sub-quantizers) and scanned with the
//! in-register table kernels of `crate::kernels::fastscan`, the query's 16-entry tables
//! quantized to u8 (the paper's query quantization); one table serves every plane, since the
//! planes' tables differ only by their weight `2^(B−1−j)`. The other planes are stored flat
//! (contiguous per vector), read only to rescore.
//!
//! # Bound-pruned search (`k_factor = 0`, the default at 1 bit)
//! The sign plane's accumulators give a 1-bit estimate and, from the per-vector factors, a
//! **lower bound** of the final distance: the u8-table rounding (`m/(2a)` in the sum) plus, for
//! multi-bit codes, `ε₀ ·` the error bounds of the 1-bit and of the full estimator. Only vectors
//! whose lower bound beats the current k-th distance are rescored exactly — every bit plane,
//! float tables. With one bit per dimension the result is exactly the 1-bit estimator (the
//! rounding margin is a hard bound); with more bits a vector is missed only if an estimator
//! leaves its ε₀ bound ([`crate::rabitq::failure_probability`]). On data without neighbour
//! structure (random vectors) the 1-bit bound is loose and most vectors get rescored.
//!
//! # Shortlist search (`k_factor ≥ 1`, the default with more bits)
//! The scanned planes give a partial estimate (the 1-bit estimator for one plane; with more,
//! the B-bit estimator with the unread planes at their mean); the best `k · k_factor` by it are
//! rescored exactly and the best k returned. This is the staged scan of turbovec-style codecs:
//! reading one plane and rescoring ~50 vectors costs less than scanning every plane (see
//! `default_shortlist` for the measurements). A true top-k vector is missed when the partial
//! estimate ranks it below the shortlist's cut; with a shortlist of every vector the result is
//! exactly the estimator.
//!
//! The returned distances are the estimates (L2: squared; inner product: similarities);
//! [`IndexRaBitQ::search_with_bounds`] also returns each one's ε₀ error bound, for a re-ranker
//! to decide what to rescore with raw vectors (or use `IndexRefineFlat`).

use super::{IdSelector, Index, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::{result_len, Metric};
use crate::error::{Error, Result};
use crate::fastscan::{
    n_blocks, pack_codes, packed_len, padded_m, unpack_code, QuantizedLuts, ScanPlan, BBS,
    MAX_GROUP, MAX_M2_WIDE,
};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::kernels::fastscan::{accumulate_with, block_bytes};
use crate::kernels::l2::find_below_with;
use crate::rabitq::{
    check_factors, nibble_sum, Encoded, QueryTerms, RaBitQ, DEFAULT_EPSILON, DEFAULT_SEED,
};
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_position};
use rayon::prelude::*;

/// Blocks per kernel call (1024 vectors: their accumulators and bounds stay in L1).
const CHUNK: usize = 32;
/// Most queries one task scans together.
const MAX_TASK_QUERIES: usize = 32;
/// Smallest run of blocks worth a separate task when few queries are split over threads.
const MIN_SPLIT_BLOCKS: usize = 512;
/// Names of the factor sections, in factor order (`crate::rabitq` module docs).
const FACTOR_SECTIONS: [&str; 5] = ["f_norm2", "f_w1", "f_e1", "f_wb", "f_eb"];
/// Names of the bit-plane sections, most significant first.
const PLANE_SECTIONS: [&str; 8] = [
    "plane0", "plane1", "plane2", "plane3", "plane4", "plane5", "plane6", "plane7",
];

/// Default `(k_factor, scan_planes)` for `nbits` bits per dimension. Measured on 384-d MiniLM
/// embeddings (recall) and 100k random unit vectors (speed), AMD EPYC Zen 3, 1 thread, k = 10:
/// scanning one plane and rescoring a shortlist beat scanning more planes at every `nbits`
/// (at 4 bits: 0.955 / 3640 QPS with one plane and `k_factor` 5, 0.959 / 2162 with two), and
/// the recall of the full estimator is reached at `k_factor` ≈ 4 (2 bits), 5 (3), 8 (4 and more).
/// At 1 bit the bound-pruned search is exact and as fast.
fn default_shortlist(nbits: usize) -> (usize, usize) {
    match nbits {
        1 => (0, 1),
        2 => (4, 1),
        3 => (5, 1),
        _ => (8, 1),
    }
}

/// RaBitQ-coded vectors with sequential ids (positions: `remove_ids` renumbers).
///
/// Saved as kind `"IndexRaBitQ"`: the codec (rotation, centroid, `nbits`, metric), `ntotal`,
/// `epsilon`, `k_factor`, `scan_planes`, `plane0..` (the scanned planes, fast-scan layout), `flat`
/// (the other planes, `ntotal × flat_bytes`)
/// and one f32 section per factor.
#[derive(Debug, Clone)]
pub struct IndexRaBitQ {
    codec: RaBitQ,
    ntotal: usize,
    /// The `scan_planes` most significant bit planes in the fast-scan block layout (`m`
    /// sub-quantizers of 4 coordinates each), plane 0 being the sign plane (the 1-bit code).
    planes: Vec<SharedSlice<u8>>,
    /// The other (least significant) planes, flat: `ntotal` rows of [`IndexRaBitQ::flat_bytes`]
    /// bytes, the prefix of the codec's `ex` row (which is least significant first). Only read
    /// to rescore, one vector at a time: contiguous rows cost one or two cache lines each,
    /// where a vector's nibbles in the block layout span the whole block.
    flat: SharedSlice<u8>,
    /// Factor arrays (structure of arrays: the bound pass streams three of them).
    factors: Vec<SharedSlice<f32>>,
    /// ε₀ of the pruning bound (saved; [`DEFAULT_EPSILON`]).
    pub epsilon: f32,
    /// Shortlist size per result (0: the bound-pruned search; saved).
    k_factor: usize,
    /// Planes the shortlist scan reads (1..=nbits; saved).
    scan_planes: usize,
}

/// One query's state for a scan: its terms and quantized-table constants.
struct QueryState {
    terms: QueryTerms,
    /// Largest error of the quantized sum `β + acc/a` (`m2/(2a)`, plus float slack).
    lut_err: f32,
}

impl IndexRaBitQ {
    /// Empty, untrained index (`nbits` in 1..=8, rotation drawn from `seed`).
    pub fn new(d: usize, nbits: usize, metric: Metric, seed: u64) -> Result<Self> {
        Ok(Self::from_codec(RaBitQ::new(d, nbits, metric, seed)?))
    }

    /// Empty index around a codec (trained or not).
    pub fn from_codec(codec: RaBitQ) -> Self {
        let (nf, b) = (codec.nf(), codec.nbits());
        let (k_factor, scan_planes) = default_shortlist(b);
        debug_assert!(scan_planes <= b);
        IndexRaBitQ {
            codec,
            ntotal: 0,
            planes: (0..scan_planes).map(|_| SharedSlice::new()).collect(),
            flat: SharedSlice::new(),
            factors: (0..nf).map(|_| SharedSlice::new()).collect(),
            epsilon: DEFAULT_EPSILON,
            k_factor,
            scan_planes,
        }
    }

    /// [`IndexRaBitQ::new`] with the default seed.
    pub fn with_defaults(d: usize, nbits: usize, metric: Metric) -> Result<Self> {
        Self::new(d, nbits, metric, DEFAULT_SEED)
    }

    /// The codec.
    pub fn codec(&self) -> &RaBitQ {
        &self.codec
    }
    /// Dimension.
    pub fn d(&self) -> usize {
        self.codec.d()
    }
    /// Metric.
    pub fn metric(&self) -> Metric {
        self.codec.metric()
    }
    /// Number of stored vectors.
    pub fn ntotal(&self) -> usize {
        self.ntotal
    }
    /// Bytes per vector: every bit plane plus the correction factors.
    pub fn code_size(&self) -> usize {
        self.codec.code_size()
    }
    /// Whether some data is a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.planes.iter().any(|p| p.is_mapped())
            || self.flat.is_mapped()
            || self.factors.iter().any(|f| f.is_mapped())
    }

    /// Shortlist size per result (0: the bound-pruned search, module docs).
    pub fn k_factor(&self) -> usize {
        self.k_factor
    }
    /// Set the shortlist size per result (0: the bound-pruned search).
    pub fn set_k_factor(&mut self, k_factor: usize) -> Result<()> {
        if k_factor > 1 << 20 {
            return Err(Error::invalid(format!(
                "k_factor must be <= 2^20, got {k_factor}"
            )));
        }
        self.k_factor = k_factor;
        Ok(())
    }
    /// Bit planes the shortlist scan reads.
    pub fn scan_planes(&self) -> usize {
        self.scan_planes
    }
    /// Set the bit planes the shortlist scan reads (1..=nbits). The stored codes move between
    /// the two layouts (one pass over them).
    pub fn set_scan_planes(&mut self, planes: usize) -> Result<()> {
        let b = self.codec.nbits();
        if !(1..=b).contains(&planes) {
            return Err(Error::invalid(format!(
                "scan_planes must be in 1..={b} (nbits), got {planes}"
            )));
        }
        if planes != self.scan_planes {
            let all: Vec<usize> = (0..self.ntotal).collect();
            let e = self.extract(&all);
            let n = self.ntotal;
            self.scan_planes = planes;
            self.reset();
            self.append(&e, n)?;
        }
        Ok(())
    }

    /// Bytes per vector of the flat (unscanned) planes.
    fn flat_bytes(&self) -> usize {
        (self.codec.nbits() - self.scan_planes) * self.codec.m().div_ceil(2)
    }

    /// Set the centroid from `x` (its mean). Refused once vectors were added.
    pub fn train(&mut self, x: &[f32]) -> Result<()> {
        if self.ntotal > 0 {
            return Err(Error::invalid(
                "cannot train an index that already holds codes: call reset() first",
            ));
        }
        self.codec.train(x)
    }

    /// Encode and append `x` (n × d); ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.codec
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexRaBitQ"))?;
        let n = check_batch(x, self.d(), "x")?;
        if n == 0 {
            return Ok(());
        }
        let e = self.codec.encode_unchecked(x, ctl)?;
        self.append(&e, n)
    }

    fn append(&mut self, e: &Encoded, n: usize) -> Result<()> {
        let (m, nf, eb, fb) = (
            self.codec.m(),
            self.codec.nf(),
            self.codec.ex_bytes(),
            self.flat_bytes(),
        );
        let total = self.ntotal + n;
        let len = packed_len(total, m);
        let mut nib = vec![0u8; n * m];
        for (j, plane) in self.planes.iter_mut().enumerate() {
            let blocks = plane.make_mut();
            blocks
                .try_reserve(len.saturating_sub(blocks.len()))
                .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
            blocks.resize(len, 0);
            for (i, o) in nib.chunks_exact_mut(m).enumerate() {
                let signs = &e.signs[i * m..(i + 1) * m];
                self.codec
                    .plane_nibbles(signs, &e.ex[i * eb..(i + 1) * eb], j, o);
            }
            pack_codes(&nib, m, self.ntotal, blocks);
        }
        if fb > 0 {
            let flat = self.flat.make_mut();
            flat.try_reserve(n * fb)
                .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
            for row in e.ex.chunks_exact(eb).take(n) {
                flat.extend_from_slice(&row[..fb]);
            }
        }
        for (j, f) in self.factors.iter_mut().enumerate() {
            f.make_mut().extend((0..n).map(|i| e.factors[i * nf + j]));
        }
        self.ntotal = total;
        Ok(())
    }

    /// The stored parts of vector `i` in the codec's layout (sign nibbles, lower planes,
    /// factors); `nib` is scratch of `m` bytes.
    fn parts(&self, i: usize, signs: &mut [u8], ex: &mut [u8], f: &mut [f32], nib: &mut [u8]) {
        let (m, fb) = (self.codec.m(), self.flat_bytes());
        ex[..fb].copy_from_slice(&self.flat[i * fb..(i + 1) * fb]);
        for (j, plane) in self.planes.iter().enumerate() {
            unpack_code(plane, m, i, nib);
            self.codec.set_plane_nibbles(signs, ex, j, nib);
        }
        for (o, a) in f.iter_mut().zip(&self.factors) {
            *o = a[i];
        }
    }

    /// The codes of the vectors at positions `keep`, in the codec's layout.
    fn extract(&self, keep: &[usize]) -> Encoded {
        let (m, nf, eb) = (self.codec.m(), self.codec.nf(), self.codec.ex_bytes());
        let mut e = Encoded {
            signs: vec![0u8; keep.len() * m],
            ex: vec![0u8; keep.len() * eb],
            factors: vec![0f32; keep.len() * nf],
        };
        let mut nib = vec![0u8; m];
        for (j, &i) in keep.iter().enumerate() {
            self.parts(
                i,
                &mut e.signs[j * m..(j + 1) * m],
                &mut e.ex[j * eb..(j + 1) * eb],
                &mut e.factors[j * nf..(j + 1) * nf],
                &mut nib,
            );
        }
        e
    }

    /// Approximate reconstruction of the vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let i = check_position(id, self.ntotal)?;
        let (m, eb) = (self.codec.m(), self.codec.ex_bytes());
        let (mut signs, mut nib, mut ex) = (vec![0u8; m], vec![0u8; m], vec![0u8; eb]);
        let mut f = vec![0f32; self.codec.nf()];
        self.parts(i, &mut signs, &mut ex, &mut f, &mut nib);
        let mut out = vec![0f32; self.d()];
        self.codec.decode_one(&signs, &ex, &f, &mut out);
        Ok(out)
    }

    /// Remove every code (the codec stays trained).
    pub fn reset(&mut self) {
        let nf = self.codec.nf();
        self.planes = (0..self.scan_planes).map(|_| SharedSlice::new()).collect();
        self.flat = SharedSlice::new();
        self.factors = (0..nf).map(|_| SharedSlice::new()).collect();
        self.ntotal = 0;
    }

    /// Remove the vectors the selector accepts; later vectors move down. Returns the count.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal;
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        let e = self.extract(&keep);
        self.reset();
        self.append(&e, keep.len()).expect("smaller than before");
        n - keep.len()
    }

    /// k nearest stored vectors of each query by the RaBitQ estimate (module docs).
    pub fn search_filtered(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_impl(q, k, sel, None, ctl)
            .map(|(d, i, _)| (d, i))
    }

    /// [`IndexRaBitQ::search_filtered`] that also returns, for each result, the ε₀ error bound
    /// of its estimated distance (0 for padding): the true distance lies within
    /// `D ± bound` with probability `1 − failure_probability(epsilon)`.
    pub fn search_with_bounds(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<(Vec<f32>, Vec<i64>, Vec<f32>)> {
        self.search_impl(q, k, sel, None, ctl)
    }

    /// The search; `k_factor` overrides the index's (module docs).
    fn search_impl(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        k_factor: Option<usize>,
        ctl: &Control,
    ) -> Result<(Vec<f32>, Vec<i64>, Vec<f32>)> {
        check_k(k)?;
        let kf = k_factor.unwrap_or(self.k_factor);
        self.codec
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexRaBitQ"))?;
        let d = self.d();
        let nq = check_batch(q, d, "queries")?;
        let total = result_len(nq, k)?;
        let mut dist = vec![0f32; total];
        let mut ids = vec![0i64; total];
        let mut bounds = vec![0f32; total];
        if nq == 0 {
            return Ok((dist, ids, bounds));
        }
        let lvl = level();
        let m = self.codec.m();
        let nb = n_blocks(self.ntotal);
        let plan = ScanPlan::new(nq, nb, MAX_TASK_QUERIES, MIN_SPLIT_BLOCKS);
        let per_task = plan.per_task;
        let metric = self.metric();
        let slope = self.codec.key_slope();
        let final_e = if self.codec.nbits() == 1 { 2 } else { 4 };
        ctl.set_total(nq as u64);
        dist.par_chunks_mut(per_task * k)
            .zip(ids.par_chunks_mut(per_task * k))
            .zip(bounds.par_chunks_mut(per_task * k))
            .enumerate()
            .try_for_each(|(g, ((dg, ig), bg))| -> Result<()> {
                ctl.check()?;
                let q0 = g * per_task;
                let ng = dg.len() / k;
                let mut scratch = Vec::new();
                let terms: Vec<QueryTerms> = (0..ng)
                    .map(|s| {
                        self.codec
                            .query_terms(&q[(q0 + s) * d..(q0 + s + 1) * d], &mut scratch)
                    })
                    .collect();
                let luts = (padded_m(m) <= MAX_M2_WIDE).then(|| {
                    let mut tables = Vec::with_capacity(ng * m * 16);
                    for t in &terms {
                        tables.extend_from_slice(&t.table);
                    }
                    QuantizedLuts::new(&tables, ng, m, 16)
                });
                let states: Vec<QueryState> = terms
                    .into_iter()
                    .enumerate()
                    .map(|(s, terms)| {
                        let lut_err = luts.as_ref().map_or(0.0, |l| {
                            // each of the m2 entries is off by ≤ 0.5/a; float slack on top
                            let sum_abs: f32 = terms.table.iter().map(|v| v.abs()).sum::<f32>();
                            padded_m(m) as f32 * 0.5 / l.scale(s) + 1e-5 * sum_abs + 1e-30
                        });
                        QueryState { terms, lut_err }
                    })
                    .collect();
                let shortlist = kf > 0 && luts.is_some();
                let cap = if shortlist {
                    k.saturating_mul(kf).min(self.ntotal.max(k))
                } else {
                    k
                };
                let scan = |b0: usize, b1: usize| -> Vec<TopK> {
                    let mut heaps: Vec<TopK> = (0..ng)
                        .map(|_| {
                            if shortlist {
                                TopK::reservoir(cap)
                            } else {
                                TopK::new(cap)
                            }
                        })
                        .collect();
                    match &luts {
                        Some(l) => {
                            self.scan_fast(lvl, l, &states, (b0, b1), sel, shortlist, &mut heaps)
                        }
                        None => self.scan_exact(&states, b0, b1, sel, &mut heaps),
                    }
                    heaps
                };
                let mut heaps = plan.scan_all(scan);
                if shortlist {
                    let mut f = vec![0f32; self.codec.nf()];
                    for (h, st) in heaps.iter_mut().zip(&states) {
                        let short = std::mem::replace(h, TopK::new(1)).into_sorted();
                        let cands: Vec<usize> = short
                            .iter()
                            .filter(|&&(_, id)| id >= 0)
                            .map(|&(_, id)| id as usize)
                            .collect();
                        let mut top = TopK::new(k);
                        for &i in &cands {
                            let key = self.exact_key(&st.terms, i, &mut f);
                            top.push(key, i as i64);
                        }
                        *h = top;
                    }
                }
                let sign = if metric == Metric::InnerProduct {
                    -1.0
                } else {
                    1.0
                };
                for (s, heap) in heaps.into_iter().enumerate() {
                    let r = s * k..(s + 1) * k;
                    heap.write_into(
                        &mut dg[r.clone()],
                        &mut ig[r.clone()],
                        metric.pad(),
                        |key| sign * key,
                    );
                    let qn = states[s].terms.norm;
                    for (b, &id) in bg[r.clone()].iter_mut().zip(&ig[r]) {
                        *b = if id < 0 {
                            0.0
                        } else {
                            slope * self.epsilon * self.factors[final_e][id as usize] * qn
                        };
                    }
                }
                ctl.advance(ng as u64);
                Ok(())
            })?;
        Ok((dist, ids, bounds))
    }

    /// Exact estimate (every plane, float tables) of vector `i` for a query, as a key (smaller
    /// is closer); `f` (nf values) is scratch.
    #[inline]
    fn exact_key(&self, t: &QueryTerms, i: usize, f: &mut [f32]) -> f32 {
        let (m, b, fb) = (self.codec.m(), self.codec.nbits(), self.flat_bytes());
        let mut sums = [0f32; 8];
        for (s, plane) in sums.iter_mut().zip(&self.planes) {
            *s = block_sum(&t.table, plane, m, i);
        }
        // flat planes, least significant first: plane j (top first) is the (b−1−j)-th
        let row = &self.flat[i * fb..(i + 1) * fb];
        let pb = m.div_ceil(2);
        for (p, plane) in row.chunks_exact(pb).enumerate() {
            let nibbles = (0..m).map(|g| (plane[g / 2] >> (4 * (g % 2))) & 0x0F);
            sums[b - 1 - p] = nibble_sum(&t.table, nibbles);
        }
        for (o, a) in f.iter_mut().zip(&self.factors) {
            *o = a[i];
        }
        let ip = self
            .codec
            .ip_from_plane_sums(t, &sums[..self.codec.nbits()], f);
        self.codec.to_key(t, f[0], ip)
    }

    /// Fast scan of blocks `b0..b1` (module docs), the top planes through the fast-scan kernel
    /// (one u8 table serves every plane: they differ only by their weight). `shortlist`: the
    /// `scan_planes` planes key each vector by their partial estimate, the heaps keeping the best
    /// `k · k_factor` for the exact rescoring. Otherwise (bound-pruned): the sign plane gives a
    /// lower bound of each key, and the vectors it does not rule out enter with their exact key.
    #[allow(clippy::too_many_arguments)]
    fn scan_fast(
        &self,
        lvl: SimdLevel,
        luts: &QuantizedLuts,
        states: &[QueryState],
        (b0, b1): (usize, usize),
        sel: Option<&IdSelector>,
        shortlist: bool,
        heaps: &mut [TopK],
    ) {
        let m2 = luts.m2();
        let bb = block_bytes(m2);
        let n = self.ntotal;
        let b = self.codec.nbits();
        let s = if shortlist { self.scan_planes } else { 1 };
        let (e1, eb) = (&self.factors[2], self.factors.get(4));
        let mut f = vec![0f32; self.codec.nf()];
        let slope = self.codec.key_slope();
        let l2 = self.metric() == Metric::L2;
        let f0 = &self.factors[0];
        // one plane: the 1-bit estimator w₁(2 S₀ − Σq'); more: w_B with the unread planes at
        // their mean (each bit ½), so the estimate is centred
        let w = if s == 1 {
            &self.factors[1]
        } else {
            &self.factors[3]
        };
        let per_max = CHUNK * BBS;
        let mut acc = vec![0u16; s * MAX_GROUP * per_max];
        let mut keys = vec![0f32; per_max];
        let mut cb = b0;
        while cb < b1 {
            let ce = (cb + CHUNK).min(b1);
            let v0 = cb * BBS;
            let valid = (ce * BBS).min(n).saturating_sub(v0);
            if valid == 0 {
                break;
            }
            let per = (ce - cb) * BBS;
            for (gi, group) in states.chunks(MAX_GROUP).enumerate() {
                let qa = gi * MAX_GROUP;
                let ng = group.len();
                let tables = luts.luts(qa, ng);
                for (j, a) in acc.chunks_exact_mut(MAX_GROUP * per_max).enumerate() {
                    let chunk = &self.planes[j][cb * bb..ce * bb];
                    accumulate_with(lvl, tables, ng, m2, chunk, &mut a[..ng * per]);
                }
                for (si, st) in group.iter().enumerate() {
                    let qs = qa + si;
                    let heap = &mut heaps[qs];
                    let t = &st.terms;
                    let (bias, inv_a) = (luts.bias(qs), 1.0 / luts.scale(qs));
                    let (alpha, off) = if l2 {
                        (1.0, t.offset)
                    } else {
                        (-1.0, -t.offset)
                    };
                    let r = v0..v0 + valid;
                    let (f0c, wc) = (&f0[r.clone()], &w[r]);
                    let kc = &mut keys[..valid];
                    let a0 = &acc[si * per..si * per + valid];
                    if !shortlist {
                        // lower bound of the final key: table rounding, plus for multi-bit
                        // codes ε₀ · the bounds of the 1-bit and the full estimator
                        // (two zipped loops, not one with a branch, so both vectorize)
                        let eps_qn = self.epsilon * t.norm;
                        let lut_err = st.lut_err;
                        match eb {
                            None => {
                                for (((o, &x), &n2), &wv) in kc.iter_mut().zip(a0).zip(f0c).zip(wc)
                                {
                                    let ip = wv * (2.0 * (bias + x as f32 * inv_a) - t.sum);
                                    *o = alpha * n2 + off - slope * (ip + 2.0 * wv * lut_err);
                                }
                            }
                            Some(eb) => {
                                let rr = v0..v0 + valid;
                                let (e1c, ebc) = (&e1[rr.clone()], &eb[rr]);
                                for (((((o, &x), &n2), &wv), &ea), &ebv) in
                                    kc.iter_mut().zip(a0).zip(f0c).zip(wc).zip(e1c).zip(ebc)
                                {
                                    let ip = wv * (2.0 * (bias + x as f32 * inv_a) - t.sum);
                                    let margin = 2.0 * wv * lut_err + eps_qn * (ea + ebv);
                                    *o = alpha * n2 + off - slope * (ip + margin);
                                }
                            }
                        }
                    } else if s == 1 {
                        for (((o, &x), &n2), &wv) in kc.iter_mut().zip(a0).zip(f0c).zip(wc) {
                            let ip = wv * (2.0 * (bias + x as f32 * inv_a) - t.sum);
                            *o = alpha * n2 + off - slope * ip;
                        }
                    } else {
                        // Σ_j 2^(B−1−j) S_j ≈ inv_a · Σ_j 2^(B−1−j) acc_j + β · Σ_j 2^(B−1−j)
                        let hi = (1u32 << b) as f32;
                        let lo = (1u32 << (b - s)) as f32;
                        let c =
                            bias * (hi - lo) + (lo - 1.0) * 0.5 * t.sum - (hi - 1.0) * 0.5 * t.sum;
                        for (o, &x) in kc.iter_mut().zip(a0) {
                            *o = x as f32 * (1u32 << (b - 1)) as f32;
                        }
                        for j in 1..s {
                            let aj = &acc[j * MAX_GROUP * per_max + si * per..][..valid];
                            let wt = (1u32 << (b - 1 - j)) as f32;
                            for (o, &x) in kc.iter_mut().zip(aj) {
                                *o += x as f32 * wt;
                            }
                        }
                        for ((o, &n2), &wv) in kc.iter_mut().zip(f0c).zip(wc) {
                            *o = alpha * n2 + off - slope * wv * (*o * inv_a + c);
                        }
                    }
                    let mut i = 0;
                    loop {
                        i = find_below_with(lvl, kc, i, heap.threshold());
                        if i >= valid {
                            break;
                        }
                        let id = v0 + i;
                        if sel.is_none_or(|s| s.accepts(id as i64)) {
                            let key = if shortlist {
                                kc[i]
                            } else {
                                self.exact_key(t, id, &mut f)
                            };
                            heap.push(key, id as i64);
                        }
                        i += 1;
                    }
                }
            }
            cb = ce;
        }
    }

    /// Every vector of blocks `b0..b1` estimated exactly (no fast-scan tables: `m > 4096`).
    fn scan_exact(
        &self,
        states: &[QueryState],
        b0: usize,
        b1: usize,
        sel: Option<&IdSelector>,
        heaps: &mut [TopK],
    ) {
        let (v0, v1) = ((b0 * BBS).min(self.ntotal), (b1 * BBS).min(self.ntotal));
        let mut f = vec![0f32; self.codec.nf()];
        for i in v0..v1 {
            if sel.is_some_and(|s| !s.accepts(i as i64)) {
                continue;
            }
            for (st, heap) in states.iter().zip(heaps.iter_mut()) {
                let key = self.exact_key(&st.terms, i, &mut f);
                heap.push(key, i as i64);
            }
        }
    }
}

/// `Σ_g T[16 g + code_g]` for the code in slot `slot` of fast-scan blocks of `m` groups (the
/// fused form of `unpack_code` + `nibble_sum`: this runs once per rescored vector per plane).
#[inline]
fn block_sum(table: &[f32], blocks: &[u8], m: usize, slot: usize) -> f32 {
    let bb = block_bytes(padded_m(m));
    let base = (slot / BBS) * bb + (slot % 16);
    let shift = if slot % BBS >= 16 { 4 } else { 0 };
    let bytes = &blocks[base..base + 16 * (m - 1) + 1];
    let (mut a, mut b) = (0f32, 0f32);
    let mut rows = table.chunks_exact(16).zip(bytes.iter().step_by(16));
    while let Some((r, &c)) = rows.next() {
        a += r[((c >> shift) & 0x0F) as usize];
        if let Some((r, &c)) = rows.next() {
            b += r[((c >> shift) & 0x0F) as usize];
        }
    }
    a + b
}

impl Index for IndexRaBitQ {
    crate::index_plumbing!();
    crate::index_forward!(IndexRaBitQ; ntotal, add, remove_ids, reconstruct, reset, is_mapped);
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        // through the codec's layout: the block-packed planes are re-packed at their new offsets
        let all: Vec<usize> = (0..o.ntotal).collect();
        self.append(&o.extract(&all), o.ntotal)
    }

    fn d(&self) -> usize {
        self.codec.d()
    }
    fn metric(&self) -> Metric {
        self.codec.metric()
    }
    fn is_trained(&self) -> bool {
        self.codec.is_trained()
    }
    fn train(&mut self, x: &[f32], _ctl: &Control) -> Result<Vec<String>> {
        IndexRaBitQ::train(self, x)?;
        Ok(Vec::new())
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_impl(q, k, params.selector.as_ref(), params.k_factor, ctl)
            .map(|(d, i, _)| (d, i))
    }
}

impl Persist for IndexRaBitQ {
    const KIND: &'static str = "IndexRaBitQ";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.codec.write_to(&mut w);
        w.meta_u64("ntotal", self.ntotal as u64)
            .meta_f64("epsilon", self.epsilon as f64)
            .meta_u64("bbs", BBS as u64)
            .meta_u64("k_factor", self.k_factor as u64)
            .meta_u64("scan_planes", self.scan_planes as u64);
        for (name, p) in PLANE_SECTIONS.iter().zip(&self.planes) {
            w.section_u8(name, p);
        }
        w.section_u8("flat", &self.flat);
        for (name, f) in FACTOR_SECTIONS.iter().zip(&self.factors) {
            w.section_f32(name, f);
        }
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let codec = RaBitQ::read_from(r)?;
        let n = r.meta_usize("ntotal")?;
        let bbs = r.meta_usize("bbs")?;
        if bbs != BBS {
            return Err(r.err(format!("metadata 'bbs' is {bbs}, only {BBS} is supported")));
        }
        let epsilon = r.meta_f64("epsilon")?;
        if !(epsilon.is_finite() && (0.0..=100.0).contains(&epsilon)) {
            return Err(r.err(format!("metadata 'epsilon' is {epsilon}, not in [0, 100]")));
        }
        if n > 0 && !codec.is_trained() {
            return Err(r.err("the index holds codes but its codec is not trained"));
        }
        let (m, nf) = (codec.m(), codec.nf());
        let mut ix = IndexRaBitQ::from_codec(codec);
        let scan_planes = r.meta_usize("scan_planes")?;
        ix.set_scan_planes(scan_planes).map_err(|e| r.err(e))?;
        let want = n_blocks(n).checked_mul(block_bytes(padded_m(m)));
        let mut planes = Vec::with_capacity(scan_planes);
        for name in &PLANE_SECTIONS[..scan_planes] {
            let p = r.section_u8(name)?;
            if want != Some(p.len()) {
                return Err(r.err(format!(
                    "section '{name}' holds {} bytes, expected {want:?} for ntotal={n}",
                    p.len()
                )));
            }
            planes.push(p);
        }
        let flat = r.section_u8("flat")?;
        if n.checked_mul(ix.flat_bytes()) != Some(flat.len()) {
            return Err(r.err(format!(
                "section 'flat' holds {} bytes, expected ntotal x {}",
                flat.len(),
                ix.flat_bytes()
            )));
        }
        let mut factors = Vec::with_capacity(nf);
        for name in &FACTOR_SECTIONS[..nf] {
            let f = r.section_f32(name)?;
            if f.len() != n {
                return Err(r.err(format!(
                    "section '{name}' holds {} values, expected {n}",
                    f.len()
                )));
            }
            factors.push(f);
        }
        let mut inter = vec![0f32; nf];
        for i in 0..n {
            for (o, f) in inter.iter_mut().zip(&factors) {
                *o = f[i];
            }
            check_factors(&inter, nf, ix.metric(), "factors").map_err(|e| r.err(e))?;
        }
        ix.set_k_factor(r.meta_usize("k_factor")?)
            .map_err(|e| r.err(e))?;
        ix.ntotal = n;
        ix.planes = planes;
        ix.flat = flat;
        ix.factors = factors;
        ix.epsilon = epsilon as f32;
        Ok(ix)
    }
}

#[cfg(test)]
mod tests;
