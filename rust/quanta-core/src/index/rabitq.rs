//! `IndexRaBitQ`: RaBitQ codes (1 to 8 bits per dimension) searched in two stages.
//!
//! 1. **Fast scan of the sign plane.** The top bit of every coordinate's code is the 1-bit
//!    RaBitQ code; stored in the 4-bit fast-scan block layout (4 coordinates per nibble,
//!    `m = ceil(d/4)` sub-quantizers), it is scanned with the in-register table kernels of
//!    `crate::kernels::fastscan`, the query's 16-entry tables quantized to u8 (the paper's query
//!    quantization). Each accumulator gives a 1-bit estimate and, from the per-vector factors,
//!    a **lower bound** of the final distance: the u8-table rounding (`m/(2a)` in the sum) plus,
//!    for multi-bit codes, `ε₀ ·` the error bounds of the 1-bit and of the full estimator.
//! 2. **Rescoring.** Only vectors whose lower bound beats the current k-th distance are
//!    rescored exactly — every bit plane, float tables — and enter the top-k. With one bit per
//!    dimension the result is exactly the 1-bit estimator (the rounding margin is a hard bound);
//!    with more bits a vector is missed only if an estimator leaves its ε₀ bound
//!    ([`crate::rabitq::failure_probability`]).
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
use crate::rabitq::{check_factors, Encoded, QueryTerms, RaBitQ, DEFAULT_EPSILON, DEFAULT_SEED};
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

/// RaBitQ-coded vectors with sequential ids (positions: `remove_ids` renumbers).
///
/// Saved as kind `"IndexRaBitQ"`: the codec (rotation, centroid, `nbits`, metric), `ntotal`,
/// `epsilon`, `blocks` (sign plane, fast-scan layout), `ex` (lower planes, `ntotal × ex_bytes`)
/// and one f32 section per factor.
#[derive(Debug, Clone)]
pub struct IndexRaBitQ {
    codec: RaBitQ,
    ntotal: usize,
    blocks: SharedSlice<u8>,
    ex: SharedSlice<u8>,
    /// Factor arrays (structure of arrays: the bound pass streams three of them).
    factors: Vec<SharedSlice<f32>>,
    /// ε₀ of the pruning bound (saved; [`DEFAULT_EPSILON`]).
    pub epsilon: f32,
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
        let nf = codec.nf();
        IndexRaBitQ {
            codec,
            ntotal: 0,
            blocks: SharedSlice::new(),
            ex: SharedSlice::new(),
            factors: (0..nf).map(|_| SharedSlice::new()).collect(),
            epsilon: DEFAULT_EPSILON,
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
        self.blocks.is_mapped() || self.ex.is_mapped() || self.factors.iter().any(|f| f.is_mapped())
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
        let (m, nf, eb) = (self.codec.m(), self.codec.nf(), self.codec.ex_bytes());
        let total = self.ntotal + n;
        let blocks = self.blocks.make_mut();
        let len = packed_len(total, m);
        blocks
            .try_reserve(len.saturating_sub(blocks.len()))
            .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
        blocks.resize(len, 0);
        pack_codes(&e.signs, m, self.ntotal, blocks);
        self.ex.make_mut().extend_from_slice(&e.ex[..n * eb]);
        for (j, f) in self.factors.iter_mut().enumerate() {
            f.make_mut().extend((0..n).map(|i| e.factors[i * nf + j]));
        }
        self.ntotal = total;
        Ok(())
    }

    /// The stored parts of vector `i` (sign nibbles into `signs`, ex bytes, factors).
    fn parts<'a>(&'a self, i: usize, signs: &mut [u8], f: &mut [f32]) -> &'a [u8] {
        unpack_code(&self.blocks, self.codec.m(), i, signs);
        for (o, a) in f.iter_mut().zip(&self.factors) {
            *o = a[i];
        }
        let eb = self.codec.ex_bytes();
        &self.ex[i * eb..(i + 1) * eb]
    }

    /// Approximate reconstruction of the vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let i = check_position(id, self.ntotal)?;
        let mut signs = vec![0u8; self.codec.m()];
        let mut f = vec![0f32; self.codec.nf()];
        let ex = self.parts(i, &mut signs, &mut f);
        let mut out = vec![0f32; self.d()];
        self.codec.decode_one(&signs, ex, &f, &mut out);
        Ok(out)
    }

    /// Remove every code (the codec stays trained).
    pub fn reset(&mut self) {
        let nf = self.codec.nf();
        self.blocks = SharedSlice::new();
        self.ex = SharedSlice::new();
        self.factors = (0..nf).map(|_| SharedSlice::new()).collect();
        self.ntotal = 0;
    }

    /// Remove the vectors the selector accepts; later vectors move down. Returns the count.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal;
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        let (m, nf, eb) = (self.codec.m(), self.codec.nf(), self.codec.ex_bytes());
        let mut e = Encoded {
            signs: vec![0u8; keep.len() * m],
            ex: Vec::with_capacity(keep.len() * eb),
            factors: Vec::with_capacity(keep.len() * nf),
        };
        let mut f = vec![0f32; nf];
        for (j, &i) in keep.iter().enumerate() {
            let ex = self.parts(i, &mut e.signs[j * m..(j + 1) * m], &mut f);
            e.ex.extend_from_slice(ex);
            e.factors.extend_from_slice(&f);
        }
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
        self.search_impl(q, k, sel, ctl).map(|(d, i, _)| (d, i))
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
        self.search_impl(q, k, sel, ctl)
    }

    fn search_impl(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<(Vec<f32>, Vec<i64>, Vec<f32>)> {
        check_k(k)?;
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
                let scan = |b0: usize, b1: usize| -> Vec<TopK> {
                    let mut heaps: Vec<TopK> = (0..ng).map(|_| TopK::new(k)).collect();
                    match &luts {
                        Some(l) => self.scan_fast(lvl, l, &states, b0, b1, sel, &mut heaps),
                        None => self.scan_exact(&states, b0, b1, sel, &mut heaps),
                    }
                    heaps
                };
                let heaps = plan.scan_all(scan);
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

    /// Exact estimate (every plane) of vector `i` for a query, as a key (smaller is closer).
    #[inline]
    fn exact_key(&self, t: &QueryTerms, i: usize, signs: &mut [u8], f: &mut [f32]) -> f32 {
        let ex = self.parts(i, signs, f);
        let (ip, _) = self.codec.estimate_ip(t, signs, ex, f);
        self.codec.to_key(t, f[0], ip)
    }

    /// Stage 1 + 2 over blocks `b0..b1` (module docs).
    #[allow(clippy::too_many_arguments)]
    fn scan_fast(
        &self,
        lvl: SimdLevel,
        luts: &QuantizedLuts,
        states: &[QueryState],
        b0: usize,
        b1: usize,
        sel: Option<&IdSelector>,
        heaps: &mut [TopK],
    ) {
        let m2 = luts.m2();
        let bb = block_bytes(m2);
        let n = self.ntotal;
        let multi = self.codec.nbits() > 1;
        let slope = self.codec.key_slope();
        let l2 = self.metric() == Metric::L2;
        let (f0, w1, e1) = (&self.factors[0], &self.factors[1], &self.factors[2]);
        let eb_all = if multi { Some(&self.factors[4]) } else { None };
        let mut acc = vec![0u16; MAX_GROUP * CHUNK * BBS];
        let mut lb = vec![0f32; CHUNK * BBS];
        let mut signs = vec![0u8; self.codec.m()];
        let mut f = vec![0f32; self.codec.nf()];
        let mut cb = b0;
        while cb < b1 {
            let ce = (cb + CHUNK).min(b1);
            let v0 = cb * BBS;
            let valid = (ce * BBS).min(n).saturating_sub(v0);
            if valid == 0 {
                break;
            }
            let per = (ce - cb) * BBS;
            let chunk = &self.blocks[cb * bb..ce * bb];
            for (gi, group) in states.chunks(MAX_GROUP).enumerate() {
                let qa = gi * MAX_GROUP;
                let ng = group.len();
                let tables = luts.luts(qa, ng);
                let a = &mut acc[..ng * per];
                accumulate_with(lvl, tables, ng, m2, chunk, a);
                for (s, st) in group.iter().enumerate() {
                    let qs = qa + s;
                    let heap = &mut heaps[qs];
                    let t = &st.terms;
                    let (bias, inv_a) = (luts.bias(qs), 1.0 / luts.scale(qs));
                    let eps_qn = self.epsilon * t.norm;
                    let (alpha, off) = if l2 {
                        (1.0, t.offset)
                    } else {
                        (-1.0, -t.offset)
                    };
                    let r = v0..v0 + valid;
                    let (f0c, w1c) = (&f0[r.clone()], &w1[r.clone()]);
                    let lbc = &mut lb[..valid];
                    let ac = &a[s * per..s * per + valid];
                    // lower bound of the final key of every vector of the chunk (vectorized)
                    match eb_all {
                        None => {
                            for (((o, &x), &n2), &w) in lbc.iter_mut().zip(ac).zip(f0c).zip(w1c) {
                                let s1 = bias + x as f32 * inv_a;
                                let ip = w * (2.0 * s1 - t.sum);
                                *o = alpha * n2 + off - slope * (ip + 2.0 * w * st.lut_err);
                            }
                        }
                        Some(eb) => {
                            let (e1c, ebc) = (&e1[r.clone()], &eb[r]);
                            for (((((o, &x), &n2), &w), &ea), &eb) in
                                lbc.iter_mut().zip(ac).zip(f0c).zip(w1c).zip(e1c).zip(ebc)
                            {
                                let s1 = bias + x as f32 * inv_a;
                                let ip = w * (2.0 * s1 - t.sum);
                                *o = alpha * n2 + off
                                    - slope * (ip + 2.0 * w * st.lut_err + eps_qn * (ea + eb));
                            }
                        }
                    }
                    let mut i = 0;
                    loop {
                        i = find_below_with(lvl, lbc, i, heap.threshold());
                        if i >= valid {
                            break;
                        }
                        let id = v0 + i;
                        if sel.is_none_or(|s| s.accepts(id as i64)) {
                            let key = self.exact_key(t, id, &mut signs, &mut f);
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
        let mut signs = vec![0u8; self.codec.m()];
        let mut f = vec![0f32; self.codec.nf()];
        for i in v0..v1 {
            if sel.is_some_and(|s| !s.accepts(i as i64)) {
                continue;
            }
            for (st, heap) in states.iter().zip(heaps.iter_mut()) {
                let key = self.exact_key(&st.terms, i, &mut signs, &mut f);
                heap.push(key, i as i64);
            }
        }
    }
}

impl Index for IndexRaBitQ {
    crate::index_plumbing!();
    crate::index_forward!(IndexRaBitQ; ntotal, add, remove_ids, reconstruct, reset, is_mapped);

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
        self.search_filtered(q, k, params.selector.as_ref(), ctl)
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
            .section_u8("blocks", &self.blocks)
            .section_u8("ex", &self.ex);
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
        let (m, nf, eb) = (codec.m(), codec.nf(), codec.ex_bytes());
        let blocks = r.section_u8("blocks")?;
        let want = n_blocks(n).checked_mul(block_bytes(padded_m(m)));
        if want != Some(blocks.len()) {
            return Err(r.err(format!(
                "section 'blocks' holds {} bytes, expected {want:?} for ntotal={n}",
                blocks.len()
            )));
        }
        let ex = r.section_u8("ex")?;
        if n.checked_mul(eb) != Some(ex.len()) {
            return Err(r.err(format!(
                "section 'ex' holds {} bytes, expected ntotal x {eb}",
                ex.len()
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
            check_factors(&inter, nf, codec.metric(), "factors").map_err(|e| r.err(e))?;
        }
        Ok(IndexRaBitQ {
            codec,
            ntotal: n,
            blocks,
            ex,
            factors,
            epsilon: epsilon as f32,
        })
    }
}

#[cfg(test)]
mod tests;
