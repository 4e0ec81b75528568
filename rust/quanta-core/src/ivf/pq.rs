//! `IndexIVFPQ`: inverted lists of PQ codes of the residuals to the list centroid (IVFADC).
//!
//! # Search tables (L2, `by_residual`)
//! With `c` the list centroid and `r̂` the PQ reconstruction of the residual, the estimated
//! distance decomposes as (faiss `use_precomputed_table`, ALGORITHMS.md §2.6)
//!
//! `‖q − c − r̂‖² = ‖q − c‖² + Σ_m (‖r̂_m‖² + 2⟨c_m, r̂_m⟩) − 2 Σ_m ⟨q_m, r̂_m⟩`.
//!
//! The first term comes out of the coarse search; the middle one is query-independent and is
//! precomputed at train time (`nlist × M × ksub` floats); the last one is one table per query.
//! The table of a probed list is their sum, then the codes are scanned by the PQ ADC kernel.
//! With the inner product, `⟨q, c + r̂⟩ = ⟨q, c⟩ + Σ_m ⟨q_m, r̂_m⟩`: one table per query.

use super::{IdSelector, IvfBase, IvfTrainParams, ListScanner, SCAN_BLOCK};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::index::{Index, RangeResult, SearchParams, SearchResult};
use crate::io::{FileReader, FileWriter, Persist};
use crate::kernels::l2;
use crate::kernels::pq::{adc_block, ip_transposed_with, TABLE_STRIDE};
use crate::pq::{PqTrainParams, ProductQuantizer};
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;
use rayon::prelude::*;

/// Inverted file with product-quantized residuals (faiss `IndexIVFPQ`).
///
/// Through [`Index`]: `train` uses [`train_params`](Self::train_params) and
/// [`pq_train_params`](Self::pq_train_params), `search` probes [`SearchParams::nprobe`] lists
/// or else [`nprobe`](Self::nprobe) (saved with the index).
#[derive(Debug, Clone)]
pub struct IndexIVFPQ {
    pub(super) base: IvfBase<u8>,
    pub(super) pq: ProductQuantizer,
    by_residual: bool,
    /// `nlist × M × ksub`: ‖r_mj‖² + 2⟨c_l,m, r_mj⟩ (L2 with residuals only; empty otherwise).
    precomputed: Vec<f32>,
    /// PQ codebooks transposed per sub-quantizer (`M × dsub × ksub`) for the query tables.
    transposed: Vec<f32>,
    /// Squared norms of the PQ centroids (`M × ksub`).
    cnorms: Vec<f32>,
    train_params: IvfTrainParams,
    pq_train_params: PqTrainParams,
}

impl IndexIVFPQ {
    /// Empty, untrained index. `M` must divide `d`; `nbits` in 1..=8.
    pub fn new(
        d: usize,
        nlist: usize,
        m: usize,
        nbits: usize,
        metric: Metric,
        by_residual: bool,
    ) -> Result<Self> {
        let pq = ProductQuantizer::new(d, m, nbits)?;
        Ok(IndexIVFPQ {
            base: IvfBase::new(d, nlist, metric, m, "IndexIVFPQ")?,
            pq,
            by_residual,
            precomputed: Vec::new(),
            transposed: Vec::new(),
            cnorms: Vec::new(),
            train_params: IvfTrainParams::default(),
            pq_train_params: PqTrainParams::default(),
        })
    }

    /// Trained, empty index from given coarse centroids (`nlist × d`) and quantizer (e.g. both
    /// trained by faiss).
    pub fn from_parts(
        coarse: &[f32],
        nlist: usize,
        pq: ProductQuantizer,
        metric: Metric,
        by_residual: bool,
    ) -> Result<Self> {
        pq.require_trained()?;
        let mut idx = IndexIVFPQ {
            base: IvfBase::new(pq.d(), nlist, metric, pq.m(), "IndexIVFPQ")?,
            pq,
            by_residual,
            precomputed: Vec::new(),
            transposed: Vec::new(),
            cnorms: Vec::new(),
            train_params: IvfTrainParams::default(),
            pq_train_params: PqTrainParams::default(),
        };
        crate::distance::check_finite(coarse, idx.base.d, "coarse centroids")?;
        idx.base.set_centroids(coarse)?;
        idx.precompute();
        Ok(idx)
    }

    super::ivf_base_accessors!(u8);

    /// Whether residuals (vector − centroid) are encoded, rather than the vectors.
    pub fn by_residual(&self) -> bool {
        self.by_residual
    }
    /// The codec.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// Bytes per stored code.
    pub fn code_size(&self) -> usize {
        self.pq.code_size()
    }
    /// Whether coarse quantizer and PQ are trained.
    pub fn is_trained(&self) -> bool {
        self.base.is_trained() && self.pq.is_trained()
    }
    /// Whether some list is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.base.lists.is_mapped()
    }
    /// PQ k-means settings of [`Index::train`] (not saved).
    pub fn pq_train_params(&self) -> &PqTrainParams {
        &self.pq_train_params
    }
    /// Mutable [`pq_train_params`](Self::pq_train_params).
    pub fn pq_train_params_mut(&mut self) -> &mut PqTrainParams {
        &mut self.pq_train_params
    }

    /// Train the coarse centroids on `x`, then the PQ on the residuals of `x` (or on `x`).
    /// Refused while the index holds entries. Returns the k-means warnings.
    pub fn train(
        &mut self,
        x: &[f32],
        coarse: &IvfTrainParams,
        pq: &PqTrainParams,
        ctl: &Control,
    ) -> Result<Vec<String>> {
        if self.ntotal() > 0 {
            return Err(Error::invalid(
                "cannot train an index that already holds entries: call reset() first",
            ));
        }
        let mut warnings = self.base.train_coarse(x, coarse, ctl)?;
        let r = if self.by_residual {
            let assign = self.base.assign(x, ctl)?;
            let res = self.residuals(x, &assign);
            self.pq.train(&res, pq, ctl)?
        } else {
            self.pq.train(x, pq, ctl)?
        };
        warnings.extend(r.warnings);
        self.precompute();
        Ok(warnings)
    }

    /// `x − centroid(assign)` per row.
    fn residuals(&self, x: &[f32], assign: &[usize]) -> Vec<f32> {
        let d = self.d();
        let mut res = x.to_vec();
        res.par_chunks_mut(d)
            .zip(assign.par_iter())
            .for_each(|(r, &l)| {
                for (v, c) in r.iter_mut().zip(self.base.centroid(l)) {
                    *v -= c;
                }
            });
        res
    }

    /// Fill the search-time helpers: transposed codebooks, centroid norms and the
    /// query-independent table term (L2 with residuals).
    fn precompute(&mut self) {
        if self.pq.is_trained() {
            self.transposed = self.pq.transposed_centroids();
            self.cnorms = self.pq.centroid_norms();
        }
        if !(self.by_residual && self.base.metric == Metric::L2 && self.is_trained()) {
            self.precomputed = Vec::new();
            return;
        }
        let (m, ks, ds) = (self.pq.m(), self.pq.ksub(), self.pq.dsub());
        let norms = self.pq.centroid_norms();
        let lvl = level();
        let mut t = vec![0f32; self.nlist() * m * ks];
        t.par_chunks_mut(m * ks).enumerate().for_each(|(l, tl)| {
            let c = self.base.centroid(l);
            for q in 0..m {
                let cs = &c[q * ds..(q + 1) * ds];
                for j in 0..ks {
                    let r = &self.pq.centroids()[(q * ks + j) * ds..(q * ks + j + 1) * ds];
                    tl[q * ks + j] = norms[q * ks + j] + 2.0 * l2::inner_product_with(lvl, cs, r);
                }
            }
        });
        self.precomputed = t;
    }

    /// Encode and add `x`; ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.add_impl(x, None, ctl)
    }

    /// Encode and add `x` with the given ids (one per row).
    pub fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        self.add_impl(x, Some(ids), ctl)
    }

    fn add_impl(&mut self, x: &[f32], ids: Option<&[i64]>, ctl: &Control) -> Result<()> {
        if !self.pq.is_trained() {
            return Err(Error::NotTrained("IndexIVFPQ"));
        }
        self.base.check_add(x, ids, "IndexIVFPQ")?;
        let pq = self.pq.clone();
        let by_res = self.by_residual;
        let base_c = self.base.centroids().to_vec();
        let d = self.d();
        self.base.add_batched(x, ids, ctl, |xb, assign, out, ctl| {
            if by_res {
                let mut res = xb.to_vec();
                res.par_chunks_mut(d)
                    .zip(assign.par_iter())
                    .for_each(|(r, &l)| {
                        for (v, c) in r.iter_mut().zip(&base_c[l * d..(l + 1) * d]) {
                            *v -= c;
                        }
                    });
                pq.encode_into(&res, out, ctl)
            } else {
                pq.encode_into(xb, out, ctl)
            }
        })
    }

    /// Approximate vector of id `id` (decoded code, plus the centroid with residuals).
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (l, o) = self.base.locate(id)?;
        let m = self.pq.m();
        let mut v = self
            .pq
            .decode(&self.base.lists.codes(l)[o * m..(o + 1) * m])?;
        if self.by_residual {
            self.base.add_centroid(l, &mut v);
        }
        Ok(v)
    }

    /// k nearest entries of each query among the `nprobe` nearest lists (faiss layout, -1
    /// padding), restricted to the ids `sel` accepts.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        if !self.pq.is_trained() {
            return Err(Error::NotTrained("IndexIVFPQ"));
        }
        // the row count only picks the driver; `probe` checks the arguments
        if self.use_grouped(q.len() / self.d()) {
            let probes = self.base.probe(q, Some(k), nprobe, ctl)?;
            return self.search_grouped(probes, q, k, sel, ctl);
        }
        let lvl = level();
        self.base
            .search(q, k, nprobe, sel, ctl, |x, old| self.scanner(x, lvl, old))
    }

    /// The per-query scanner: the query table (or its query-dependent term).
    ///
    /// The inner products ⟨q_m, c_mj⟩ of every sub-vector with every centroid come from the
    /// transposed codebooks (one vectorized pass over the `ksub` centroids per dimension);
    /// then: −2⟨q_m, c_mj⟩ with precomputed tables, −⟨q_m, c_mj⟩ for the inner product,
    /// ‖q_m‖² + ‖c_mj‖² − 2⟨q_m, c_mj⟩ for L2 without residuals. Entries `j >= ksub` are +inf.
    ///
    /// `old` (the previous query's scanner on this worker) lends its buffers: only the entries
    /// `0..ksub` of each row are rewritten per query / list, the +inf tail stays.
    pub(super) fn scanner<'a>(
        &'a self,
        x: &[f32],
        lvl: SimdLevel,
        old: Option<PqScanner<'a>>,
    ) -> PqScanner<'a> {
        let n = self.pq.m() * TABLE_STRIDE;
        let per_list = !self.precomputed.is_empty();
        let (qt, table) = match old {
            Some(o) => (std::sync::Arc::try_unwrap(o.query).ok(), Some(o.table)),
            None => (None, None),
        };
        let mut qt = qt
            .filter(|v| v.len() == n)
            .unwrap_or_else(|| vec![f32::INFINITY; n]);
        self.query_rows(x, lvl, &mut qt, TABLE_STRIDE);
        let table = match table {
            _ if !per_list => Vec::new(),
            Some(t) if t.len() == n => t,
            // every entry is overwritten by `list_table` but the +inf tail
            _ => vec![f32::INFINITY; n],
        };
        PqScanner {
            idx: self,
            lvl,
            query: std::sync::Arc::new(qt),
            table,
            add_coarse: self.by_residual,
            next: None,
        }
    }

    /// The query table of [`scanner`](Self::scanner): entries `0..ksub` of the `M` rows of
    /// `out` (rows `stride >= ksub` floats apart; other entries untouched).
    pub(super) fn query_rows(&self, x: &[f32], lvl: SimdLevel, out: &mut [f32], stride: usize) {
        let (ks, ds) = (self.pq.ksub(), self.pq.dsub());
        let per_list = !self.precomputed.is_empty();
        let ip = self.base.metric == Metric::InnerProduct;
        for (q, row) in out.chunks_exact_mut(stride).enumerate() {
            let row = &mut row[..ks];
            let xs = &x[q * ds..(q + 1) * ds];
            ip_transposed_with(
                lvl,
                xs,
                &self.transposed[q * ds * ks..(q + 1) * ds * ks],
                row,
            );
            if per_list {
                row.iter_mut().for_each(|v| *v *= -2.0);
            } else if ip {
                // `0 - v`: a zero product ties with +0.0 (see distance.rs)
                row.iter_mut().for_each(|v| *v = 0.0 - *v);
            } else {
                let xn: f32 = xs.iter().map(|v| v * v).sum();
                for (v, cn) in row.iter_mut().zip(&self.cnorms[q * ks..(q + 1) * ks]) {
                    *v = (xn + cn - 2.0 * *v).max(0.0);
                }
            }
        }
    }

    /// The query-independent table term of list `list` (`M × ksub`), or `None` when the
    /// tables do not depend on the list (see the module docs).
    pub(super) fn precomputed_rows(&self, list: usize) -> Option<&[f32]> {
        if self.precomputed.is_empty() {
            return None;
        }
        let mk = self.pq.m() * self.pq.ksub();
        Some(&self.precomputed[list * mk..(list + 1) * mk])
    }
}

/// Per-query scan state of IVFPQ (also used by the 4-bit fast-scan lists for their float
/// tables).
#[derive(Clone)]
pub(super) struct PqScanner<'a> {
    idx: &'a IndexIVFPQ,
    lvl: SimdLevel,
    /// The query's table (full ADC table, or the −2⟨q, r⟩ term with precomputed tables).
    query: std::sync::Arc<Vec<f32>>,
    /// Per-list table buffer (precomputed tables only).
    table: Vec<f32>,
    add_coarse: bool,
    /// The list scanned after the current one (see [`ListScanner::set_next_list`]).
    next: Option<usize>,
}

impl PqScanner<'_> {
    /// The float table of list `list` (`M × 256`, entries past ksub +inf), without the coarse
    /// term.
    pub(super) fn list_table(&mut self, list: usize) -> &[f32] {
        if self.table.is_empty() {
            return &self.query;
        }
        self.idx.add_list_term(list, &self.query, &mut self.table);
        &self.table
    }

    /// The table [`list_table`](Self::list_table) built last (the query table without
    /// precomputed tables).
    pub(super) fn current_table(&self) -> &[f32] {
        if self.table.is_empty() {
            &self.query
        } else {
            &self.table
        }
    }

    /// The coarse term to add for a list at key `coarse_key` (0 without residuals).
    pub(super) fn key0(&self, coarse_key: f32) -> f32 {
        if self.add_coarse {
            coarse_key
        } else {
            0.0
        }
    }
}

impl ListScanner for PqScanner<'_> {
    fn scan_list(
        &mut self,
        list: usize,
        coarse_key: f32,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    ) {
        let idx = self.idx;
        let lists = &idx.base.lists;
        let ids = lists.ids(list);
        if ids.is_empty() {
            return;
        }
        let key0 = self.key0(coarse_key);
        let (lvl, next) = (self.lvl, self.next);
        let table = self.list_table(list);
        idx.scan_codes(lvl, list, table, key0, next, sel, heap);
    }

    fn set_next_list(&mut self, next: Option<usize>) {
        self.next = next;
    }
}

/// Codes scanned between two prefetch bursts.
const PREFETCH_STEP: usize = 32;

/// Spreads prefetches of the next list's data over the scan of the current one.
///
/// Why: the per-list table reads the list's precomputed term (`M × ksub` floats: 32 KiB at
/// PQ32), and `nlist` of those (32 MiB at IVF1024,PQ32) do not stay in cache, so building the
/// table streamed from DRAM and cost about as much as scanning a 300-code list. The scan
/// itself is bound by table lookups (L1 hits) and leaves the memory system idle, so the next
/// list's term and codes are requested while it runs, a few lines per [`PREFETCH_STEP`]
/// codes (a burst of hundreds of misses at once would stall the scan's own loads).
struct Prefetcher<'a> {
    /// The next list's precomputed term (16 floats a line), then its codes (64 bytes a line).
    pre: &'a [f32],
    codes: &'a [u8],
    /// Next line to request: `pre` lines first, then `codes` lines.
    pos: usize,
    lines: usize,
    /// Lines per scanned code, in 1/256ths (rounded up: both regions are covered by the end).
    rate: usize,
    due: usize,
}

impl<'a> Prefetcher<'a> {
    fn new(next: Option<(&'a [f32], &'a [u8])>, codes: usize) -> Self {
        let (pre, next_codes) = next.unwrap_or((&[], &[]));
        let lines = pre.len().div_ceil(16) + next_codes.len().div_ceil(64);
        Prefetcher {
            pre,
            codes: next_codes,
            pos: 0,
            lines,
            rate: (lines * 256).div_ceil(codes.max(1)),
            due: 0,
        }
    }

    /// Request the lines due before scanning `codes` more codes.
    #[inline]
    fn step(&mut self, codes: usize) {
        if self.pos >= self.lines {
            return;
        }
        self.due += codes * self.rate;
        let until = (self.due / 256).min(self.lines);
        let first = self.pre.len().div_ceil(16);
        while self.pos < until {
            if self.pos < first {
                crate::simd::prefetch(&self.pre[self.pos * 16]);
            } else {
                crate::simd::prefetch(&self.codes[(self.pos - first) * 64]);
            }
            self.pos += 1;
        }
    }
}

impl IndexIVFPQ {
    /// `out = query + precomputed term of list` over the entries `0..ksub` of each row (the
    /// per-list table with precomputed tables; `out`'s other entries stay +inf).
    pub(super) fn add_list_term(&self, list: usize, query: &[f32], out: &mut [f32]) {
        let ks = self.pq.ksub();
        let pre = self.precomputed_rows(list).expect("precomputed tables");
        for ((dst, src), p) in out
            .chunks_exact_mut(TABLE_STRIDE)
            .zip(query.chunks_exact(TABLE_STRIDE))
            .zip(pre.chunks_exact(ks))
        {
            for ((a, b), c) in dst[..ks].iter_mut().zip(&src[..ks]).zip(p) {
                *a = b + c;
            }
        }
    }

    /// Offer every entry of list `list` to `heap`: `key0 + ADC(table)` per code, in blocks,
    /// prefetching list `next`'s data meanwhile (see [`Prefetcher`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scan_codes(
        &self,
        lvl: SimdLevel,
        list: usize,
        table: &[f32],
        key0: f32,
        next: Option<usize>,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    ) {
        let lists = &self.base.lists;
        let ids = lists.ids(list);
        let m = self.pq.m();
        let mut ahead = Prefetcher::new(next.map(|l| self.next_list_data(l)), ids.len());
        let mut buf = [0f32; SCAN_BLOCK];
        for (blk, bid) in lists
            .codes(list)
            .chunks(SCAN_BLOCK * m)
            .zip(ids.chunks(SCAN_BLOCK))
        {
            let out = &mut buf[..bid.len()];
            for (c, o) in blk
                .chunks(PREFETCH_STEP * m)
                .zip(out.chunks_mut(PREFETCH_STEP))
            {
                ahead.step(o.len());
                adc_block(table, m, c, o);
            }
            out.iter_mut().for_each(|v| *v += key0);
            super::offer(lvl, out, bid, sel, heap);
        }
    }

    /// What scanning list `l` reads first: its precomputed table term (if any) and its codes.
    fn next_list_data(&self, l: usize) -> (&[f32], &[u8]) {
        (
            self.precomputed_rows(l).unwrap_or(&[]),
            self.base.lists.codes(l),
        )
    }
}

impl IndexIVFPQ {
    /// Metadata and sections of this index into `w` (shared with the fast-scan variant).
    pub(super) fn write_parts<'a>(&'a self, w: &mut FileWriter<'a>) {
        self.pq.write_meta(w);
        self.base.write_meta(w);
        w.meta_u64("by_residual", self.by_residual as u64);
    }

    /// Read what [`write_parts`](Self::write_parts) wrote, checking every field.
    pub(super) fn read_parts(r: &FileReader, name: &'static str) -> Result<Self> {
        let pq = ProductQuantizer::read_meta(r)?;
        let m = pq.m();
        let base = IvfBase::read_meta(r, |_| m, name)?;
        if base.d != pq.d() {
            return Err(r.err("metadata 'd' differs between the quantizer and the index"));
        }
        let by_residual = match r.meta_u64("by_residual")? {
            0 => false,
            1 => true,
            v => return Err(r.err(format!("metadata 'by_residual' is {v}, not 0 or 1"))),
        };
        if base.lists.ntotal() > 0 && !pq.is_trained() {
            return Err(r.err("the index holds codes but its quantizer is not trained"));
        }
        for l in 0..base.nlist {
            pq.check_codes(base.lists.codes(l), "list_codes")
                .map_err(|e| r.err(e))?;
        }
        let mut idx = IndexIVFPQ {
            base,
            pq,
            by_residual,
            precomputed: Vec::new(),
            transposed: Vec::new(),
            cnorms: Vec::new(),
            train_params: IvfTrainParams::default(),
            pq_train_params: PqTrainParams::default(),
        };
        idx.precompute();
        Ok(idx)
    }
}

impl Index for IndexIVFPQ {
    crate::index_plumbing!();
    crate::index_forward!(IndexIVFPQ;
        ntotal, is_trained, add, add_with_ids, reconstruct, reset, is_mapped);

    ivf_base_forward!(IndexIVFPQ);

    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let (cp, pp) = (self.train_params.clone(), self.pq_train_params.clone());
        IndexIVFPQ::train(self, x, &cp, &pp, ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        if !self.pq.is_trained() {
            return Err(Error::NotTrained("IndexIVFPQ"));
        }
        let nprobe = params.nprobe_or(self.base.nprobe)?;
        let lvl = level();
        let sel = params.selector.as_ref();
        self.base
            .range_search(q, radius, nprobe, sel, ctl, |x, old| {
                self.scanner(x, lvl, old)
            })
    }
}

impl Persist for IndexIVFPQ {
    const KIND: &'static str = "IndexIVFPQ";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.write_parts(&mut w);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        Self::read_parts(r, "IndexIVFPQ")
    }
}
