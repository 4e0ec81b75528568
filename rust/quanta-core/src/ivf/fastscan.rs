//! `IndexIVFPQFastScan`: IVFPQ with 4-bit codes whose lists are scanned by the fast-scan
//! kernel (faiss `IndexIVFPQFastScan`).
//!
//! Each list keeps its codes twice: one byte per sub-code (the [`IndexIVFPQ`] layout, used for
//! files, reconstruction and re-ranking) and packed into 32-vector blocks (`crate::fastscan`),
//! rebuilt for the lists an `add` or `remove_ids` touches and on load (so with `mmap` only the
//! byte-per-sub-code lists stay mapped).
//!
//! Search: per probed list, the float table of [`IndexIVFPQ`] (coarse term folded into the first
//! row) is quantized to u8 and the list's blocks are scanned with the shuffle kernel. With
//! `k_factor > 1` the best `k · k_factor` candidates by approximate distance are re-ranked by
//! their float ADC distance (the distance [`IndexIVFPQ`] returns); `k_factor = 1` returns the
//! approximate distances (faiss's default behaviour).

use super::pq::PqScanner;
use super::{IdSelector, IdSet, IvfTrainParams, ListScanner};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::fastscan::{
    acc_threshold, pack_codes, packed_len, scan_blocks, BlockSink, QuantizedLuts, BBS,
};
use crate::index::pq_fastscan::check_pq;
use crate::index::{Index, RangeResult, SearchParams, SearchResult};
use crate::io::{FileReader, FileWriter, Persist};
use crate::kernels::pq::{adc_block, TABLE_STRIDE};
use crate::pq::{PqTrainParams, ProductQuantizer};
use crate::simd::{level, prefetch, SimdLevel};
use crate::topk::TopK;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

use super::IndexIVFPQ;

/// Queries scanned together per list (a list's chunk of blocks is read once for all of them).
const GROUP: usize = 32;

/// IVFPQ with 4-bit codes scanned in packed blocks.
///
/// Through [`Index`]: `train` uses the training settings of the inner [`IndexIVFPQ`], `search`
/// probes [`SearchParams::nprobe`] lists or else [`nprobe`](Self::nprobe) and re-ranks with
/// [`SearchParams::k_factor`] or else [`k_factor`](Self::k_factor) (both saved).
#[derive(Debug, Clone)]
pub struct IndexIVFPQFastScan {
    inner: IndexIVFPQ,
    /// Packed blocks of every list.
    packed: Vec<Vec<u8>>,
    /// Re-ranking factor of `search` (1 = no re-ranking).
    pub k_factor: usize,
}

/// Default re-ranking factor: 1 (approximate distances, as faiss). Re-ranking k·4 candidates by
/// float ADC was measured to change no recall@1/@10 on SIFT10k, Fashion-MNIST or Gaussian data
/// (within 0.002) while costing 1.3–1.7× the search time: within a probed list the u8 tables
/// already order the best candidates correctly.
pub const DEFAULT_K_FACTOR: usize = 1;

impl IndexIVFPQFastScan {
    /// Empty, untrained index with `M` 4-bit sub-quantizers.
    pub fn new(
        d: usize,
        nlist: usize,
        m: usize,
        metric: Metric,
        by_residual: bool,
    ) -> Result<Self> {
        let inner = IndexIVFPQ::new(d, nlist, m, 4, metric, by_residual)?;
        check_pq(inner.pq())?;
        Ok(Self::wrap(inner))
    }

    /// Trained, empty index from coarse centroids and a trained 4-bit quantizer.
    pub fn from_parts(
        coarse: &[f32],
        nlist: usize,
        pq: ProductQuantizer,
        metric: Metric,
        by_residual: bool,
    ) -> Result<Self> {
        check_pq(&pq)?;
        let inner = IndexIVFPQ::from_parts(coarse, nlist, pq, metric, by_residual)?;
        Ok(Self::wrap(inner))
    }

    fn wrap(inner: IndexIVFPQ) -> Self {
        let mut s = IndexIVFPQFastScan {
            packed: vec![Vec::new(); inner.nlist()],
            inner,
            k_factor: DEFAULT_K_FACTOR,
        };
        s.repack(|_| true);
        s
    }

    /// Rebuild the packed blocks of the lists `touched` selects.
    fn repack(&mut self, touched: impl Fn(usize) -> bool + Sync) {
        let lists = &self.inner.base.lists;
        let m = self.inner.pq.m();
        self.packed.par_iter_mut().enumerate().for_each(|(l, p)| {
            if touched(l) {
                let n = lists.list_len(l);
                p.clear();
                p.resize(packed_len(n, m), 0);
                pack_codes(lists.codes(l), m, 0, p);
            }
        });
    }

    /// The IVFPQ holding the byte-per-sub-code lists.
    pub fn ivfpq(&self) -> &IndexIVFPQ {
        &self.inner
    }
    /// Dimension.
    pub fn d(&self) -> usize {
        self.inner.d()
    }
    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.inner.nlist()
    }
    /// Metric.
    pub fn metric(&self) -> Metric {
        self.inner.metric()
    }
    /// Whether residuals are encoded.
    pub fn by_residual(&self) -> bool {
        self.inner.by_residual()
    }
    /// The 4-bit codec.
    pub fn pq(&self) -> &ProductQuantizer {
        self.inner.pq()
    }
    /// Bytes per code in the byte-per-sub-code layout (= M).
    pub fn code_size(&self) -> usize {
        self.inner.code_size()
    }
    /// Whether trained.
    pub fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    /// Stored entries.
    pub fn ntotal(&self) -> usize {
        self.inner.ntotal()
    }
    /// Coarse centroids.
    pub fn centroids(&self) -> &[f32] {
        self.inner.centroids()
    }
    /// The (byte-per-sub-code) inverted lists.
    pub fn invlists(&self) -> &super::InvertedLists<u8> {
        self.inner.invlists()
    }
    /// Whether some list is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
    /// Lists probed per query when the search parameters give none (default 1; saved).
    pub fn nprobe(&self) -> usize {
        self.inner.nprobe()
    }
    /// Set the default `nprobe` (>= 1).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        self.inner.set_nprobe(nprobe)
    }
    /// Set the default `k_factor` (>= 1).
    pub fn set_k_factor(&mut self, k_factor: usize) -> Result<()> {
        if k_factor == 0 {
            return Err(Error::invalid("k_factor must be >= 1, got 0"));
        }
        self.k_factor = k_factor;
        Ok(())
    }
    /// Coarse k-means settings of [`Index::train`] (not saved).
    pub fn train_params(&self) -> &IvfTrainParams {
        self.inner.train_params()
    }
    /// Mutable [`train_params`](Self::train_params).
    pub fn train_params_mut(&mut self) -> &mut IvfTrainParams {
        self.inner.train_params_mut()
    }
    /// PQ k-means settings of [`Index::train`] (not saved).
    pub fn pq_train_params(&self) -> &PqTrainParams {
        self.inner.pq_train_params()
    }
    /// Mutable [`pq_train_params`](Self::pq_train_params).
    pub fn pq_train_params_mut(&mut self) -> &mut PqTrainParams {
        self.inner.pq_train_params_mut()
    }

    /// Train (see [`IndexIVFPQ::train`]).
    pub fn train(
        &mut self,
        x: &[f32],
        coarse: &IvfTrainParams,
        pq: &PqTrainParams,
        ctl: &Control,
    ) -> Result<Vec<String>> {
        self.inner.train(x, coarse, pq, ctl)
    }

    fn changed(&mut self, before: Vec<usize>) {
        let after = self.inner.invlists().sizes();
        self.repack(|l| before[l] != after[l]);
    }

    /// Encode and add `x`; ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        let before = self.inner.invlists().sizes();
        let r = self.inner.add(x, ctl);
        self.changed(before);
        r
    }

    /// Encode and add `x` with the given ids.
    pub fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        let before = self.inner.invlists().sizes();
        let r = self.inner.add_with_ids(x, ids, ctl);
        self.changed(before);
        r
    }

    /// Remove every entry whose id is listed; returns how many were removed.
    pub fn remove_ids(&mut self, ids: &IdSet) -> usize {
        let before = self.inner.invlists().sizes();
        let n = self.inner.remove_ids(ids);
        self.changed(before);
        n
    }

    /// Approximate vector of id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        self.inner.reconstruct(id)
    }

    /// Remove every entry.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.packed.iter_mut().for_each(|p| p.clear());
    }

    /// k nearest entries of each query among the `nprobe` nearest lists, re-ranked from
    /// `k · k_factor` fast-scan candidates (see the module docs), filtered by `sel`.
    ///
    /// The batch is scanned list by list: each probed list's blocks are read once for all the
    /// queries probing it (the kernel shares block loads between queries), in parallel over
    /// runs of lists; each run keeps its own collectors, merged per query at the end. The
    /// float table of each query is built once; it is quantized once per query when it does
    /// not depend on the list (`by_residual = false`), else once per (query, list). Same
    /// results as [`search_per_query`](Self::search_per_query).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_kf(q, k, nprobe, self.k_factor, sel, ctl)
    }

    /// [`search`](Self::search) with re-ranking factor `k_factor` instead of the index's.
    pub fn search_kf(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        k_factor: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.check_search(k_factor)?;
        let base = &self.inner.base;
        let probes = base.probe(q, Some(k), nprobe, ctl)?;
        let (nq, np) = (probes.nq, probes.nprobe);
        let lvl = level();
        let (d, m, nlist) = (self.d(), self.inner.pq.m(), self.nlist());
        let ip = self.metric() == Metric::InnerProduct;
        let sign = if ip { -1.0 } else { 1.0 };
        let rerank = k_factor > 1;
        let hk = if rerank {
            k.saturating_mul(k_factor)
        } else {
            k
        };
        ctl.set_total(nq as u64);
        // float tables of every query (M × 16 each, without list or coarse terms)
        let tw = m * 16;
        let mut qt = vec![0f32; nq * tw];
        qt.par_chunks_mut(tw)
            .enumerate()
            .for_each(|(i, t)| self.inner.query_rows(&q[i * d..(i + 1) * d], lvl, t, 16));
        let shared = self.inner.precomputed_rows(0).is_none() && !self.by_residual();
        let shared_luts = shared.then(|| QuantizedLuts::new(&qt, nq, m, 16));
        // one pass over the probes `p` with `take(p % np)`: invert them (for each list, its
        // (query, coarse key) pairs in query order) and scan every list once for its queries
        let pass = |take: &dyn Fn(usize) -> bool,
                    bounds: &[AtomicU32]|
         -> Result<Vec<Vec<Option<TopK>>>> {
            let mut start = vec![0usize; nlist + 1];
            for (p, &l) in probes.ids.iter().enumerate() {
                if l >= 0 && take(p % np) {
                    start[l as usize + 1] += 1;
                }
            }
            for l in 0..nlist {
                start[l + 1] += start[l];
            }
            let mut fill = start.clone();
            let mut by_list = vec![(0u32, 0f32); start[nlist]];
            for (p, (&l, &key)) in probes.ids.iter().zip(&probes.dist).enumerate() {
                if l >= 0 && take(p % np) {
                    let l = l as usize;
                    by_list[fill[l]] = ((p / np) as u32, sign * key);
                    fill[l] += 1;
                }
            }
            // runs of consecutive lists of about equal work (codes × queries), a few per thread
            let lists = self.invlists();
            let work = |l: usize| (start[l + 1] - start[l]) * (lists.list_len(l) + BBS);
            let total: usize = (0..nlist).map(work).sum();
            let threads = crate::threads::num_threads().max(1);
            // (one run on one thread: every run starts its collectors empty)
            let per = if threads == 1 { 1 } else { 4 * threads };
            let target = total.div_ceil(per).max(1);
            let mut runs = Vec::new();
            let (mut r0, mut acc) = (0, 0);
            for l in 0..nlist {
                acc += work(l);
                if acc >= target {
                    runs.push(r0..l + 1);
                    (r0, acc) = (l + 1, 0);
                }
            }
            if r0 < nlist {
                runs.push(r0..nlist);
            }
            runs.into_par_iter()
                .map(|run| -> Result<Vec<Option<TopK>>> {
                    let mut heaps: Vec<Option<TopK>> = (0..nq).map(|_| None).collect();
                    let mut luts = QuantizedLuts::new(&vec![0f32; tw], 1, m, 16);
                    let mut sinks: Vec<Sink> = Vec::with_capacity(GROUP);
                    for l in run {
                        // a run may be the whole batch: stay interruptible
                        ctl.check()?;
                        let ids = lists.ids(l);
                        if ids.is_empty() {
                            continue;
                        }
                        let pre = self.inner.precomputed_rows(l);
                        let tag = rerank.then_some((l as i64) << 32);
                        for group in by_list[start[l]..start[l + 1]].chunks(GROUP) {
                            luts.clear();
                            for &(qi, ck) in group {
                                let qi = qi as usize;
                                match &shared_luts {
                                    Some(sl) => luts.push_copy(sl, qi),
                                    None => {
                                        let t = &qt[qi * tw..(qi + 1) * tw];
                                        let key0 = if self.by_residual() { ck } else { 0.0 };
                                        luts.push_sum(lvl, t, pre, key0, 16);
                                    }
                                }
                            }
                            for (s, &(qi, _)) in group.iter().enumerate() {
                                let heap = heaps[qi as usize]
                                    .take()
                                    .unwrap_or_else(|| TopK::with_capacity_hint(hk, usize::MAX));
                                sinks.push(Sink::new(
                                    heap,
                                    bounds.get(qi as usize),
                                    luts.bias(s),
                                    luts.scale(s),
                                    ids,
                                    sel,
                                    tag,
                                ));
                            }
                            scan_blocks(lvl, &luts, 0, &self.packed[l], ids.len(), &mut sinks);
                            for (sink, &(qi, _)) in sinks.drain(..).zip(group) {
                                heaps[qi as usize] = Some(sink.finish());
                            }
                        }
                    }
                    Ok(heaps)
                })
                .collect::<Result<_>>()
        };
        // first each query's nearest list (a tight bound early: the batched pass visits a
        // query's lists in list order, not nearest first), then the others under that bound
        let mut parts = pass(&|p| p == 0, &[])?;
        // shared by the runs of the second pass, which lower it as their collectors fill
        let bounds: Vec<AtomicU32> = (0..nq)
            .map(|i| {
                let t = parts
                    .iter()
                    .filter_map(|h| h[i].as_ref())
                    .map(|h| h.threshold())
                    .fold(f32::INFINITY, f32::min);
                AtomicU32::new(t.to_bits())
            })
            .collect();
        if np > 1 {
            parts.extend(pass(&|p| p > 0, &bounds)?);
        }
        // each query's collectors; the first one is the base the others are merged into
        let mut per_query: Vec<Vec<TopK>> = (0..nq).map(|_| Vec::new()).collect();
        for part in parts {
            for (mine, h) in per_query.iter_mut().zip(part) {
                mine.extend(h);
            }
        }
        let mut dist = vec![0f32; nq * k];
        let mut out_ids = vec![0i64; nq * k];
        dist.par_chunks_mut(k)
            .zip(out_ids.par_chunks_mut(k))
            .zip(per_query)
            .enumerate()
            .for_each(|(i, ((dq, iq), mine))| {
                let mut mine = mine.into_iter();
                let mut heap = mine
                    .next()
                    .unwrap_or_else(|| TopK::with_capacity_hint(hk, usize::MAX));
                for h in mine {
                    heap.merge(&h);
                }
                let heap = if rerank {
                    let row = i * np..(i + 1) * np;
                    let coarse = |l: usize| {
                        probes.ids[row.clone()]
                            .iter()
                            .position(|&c| c == l as i64)
                            .map_or(0.0, |p| sign * probes.dist[row.start + p])
                    };
                    self.rerank(heap, &qt[i * tw..(i + 1) * tw], coarse, k)
                } else {
                    heap
                };
                heap.write_into(dq, iq, self.metric().pad(), |key| sign * key);
                ctl.advance(1);
            });
        Ok((dist, out_ids))
    }

    /// Float-ADC re-ranking of the fast-scan candidates `heap` (ids `(list << 32) | offset`) of
    /// a query with float table `qt` (`M × 16`); `coarse(l)` is its coarse key to list `l`.
    /// Same arithmetic as the per-query path (`FsScanner::finish`): the table entries
    /// `qt + precomputed` are summed in `adc_block`'s order, without building the list's table.
    fn rerank(&self, heap: TopK, qt: &[f32], coarse: impl Fn(usize) -> f32, k: usize) -> TopK {
        let mut cand = heap.into_sorted();
        cand.sort_unstable_by_key(|&(_, pos)| pos);
        let lists = self.inner.invlists();
        let m = self.inner.pq.m();
        // the candidates' codes and ids are scattered over the lists (cold cache lines):
        // request them all before the first is used
        for &(_, pos) in &cand {
            let (l, o) = ((pos >> 32) as usize, (pos & 0xFFFF_FFFF) as usize);
            let code = &lists.codes(l)[o * m..(o + 1) * m];
            prefetch(&code[0]);
            prefetch(&code[m - 1]);
            prefetch(&lists.ids(l)[o]);
        }
        let mut out = TopK::new(k);
        let mut cur = usize::MAX;
        let mut key0 = 0.0;
        let mut pre = None;
        for (_, pos) in cand {
            let (l, o) = ((pos >> 32) as usize, (pos & 0xFFFF_FFFF) as usize);
            if l != cur {
                cur = l;
                key0 = if self.by_residual() { coarse(l) } else { 0.0 };
                pre = self.inner.precomputed_rows(l);
            }
            let code = &lists.codes(l)[o * m..(o + 1) * m];
            out.push(adc_sum(qt, pre, code) + key0, lists.ids(l)[o]);
        }
        out
    }

    /// [`search`](Self::search) one query at a time (each query scans its probed lists in
    /// turn); kept as the reference the batched path is tested against.
    #[doc(hidden)]
    pub fn search_per_query(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.check_search(self.k_factor)?;
        let lvl = level();
        let kf = self.k_factor;
        self.inner.base.search(q, k, nprobe, sel, ctl, |x, old| {
            self.fs_scanner(x, lvl, kf, old)
        })
    }

    /// Range search (see [`Index::range_search`]) through the per-query driver: every entry of
    /// the probed lists within `radius`, by approximate distance, or by float ADC distance when
    /// `k_factor > 1` (every candidate is then re-ranked).
    fn range_kf(
        &self,
        q: &[f32],
        radius: f32,
        nprobe: usize,
        k_factor: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.check_search(k_factor)?;
        let lvl = level();
        self.inner
            .base
            .range_search(q, radius, nprobe, sel, ctl, |x, old| {
                self.fs_scanner(x, lvl, k_factor, old)
            })
    }

    fn check_search(&self, k_factor: usize) -> Result<()> {
        if !self.inner.pq.is_trained() {
            return Err(Error::NotTrained("IndexIVFPQFastScan"));
        }
        if k_factor == 0 {
            return Err(Error::invalid("k_factor must be >= 1, got 0"));
        }
        Ok(())
    }

    fn fs_scanner<'a>(
        &'a self,
        x: &[f32],
        lvl: SimdLevel,
        kf: usize,
        old: Option<FsScanner<'a>>,
    ) -> FsScanner<'a> {
        FsScanner {
            idx: self,
            pq: self.inner.scanner(x, lvl, old.map(|o| o.pq)),
            lvl,
            rerank: kf > 1,
            k_factor: kf,
            small: vec![0f32; self.inner.pq.m() * 16],
            luts: None,
        }
    }
}

impl Index for IndexIVFPQFastScan {
    crate::index_plumbing!();
    crate::index_forward!(IndexIVFPQFastScan; add, add_with_ids, reset);

    fn d(&self) -> usize {
        self.inner.d()
    }
    fn metric(&self) -> Metric {
        self.inner.metric()
    }
    fn ntotal(&self) -> usize {
        self.inner.ntotal()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        Index::train(&mut self.inner, x, ctl)
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let nprobe = params.nprobe_or(self.nprobe())?;
        let kf = params.k_factor_or(self.k_factor)?;
        self.search_kf(q, k, nprobe, kf, params.selector.as_ref(), ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        let nprobe = params.nprobe_or(self.nprobe())?;
        let kf = params.k_factor_or(self.k_factor)?;
        self.range_kf(q, radius, nprobe, kf, params.selector.as_ref(), ctl)
    }
    fn remove_ids(&mut self, sel: &IdSelector) -> Result<usize> {
        let before = self.inner.invlists().sizes();
        let n = Index::remove_ids(&mut self.inner, sel)?;
        self.changed(before);
        Ok(n)
    }
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        let before = self.inner.invlists().sizes();
        Index::merge_from(&mut self.inner, &o.inner)?;
        self.changed(before);
        Ok(())
    }
    // the packed blocks hold codes only: renumbering the inner lists' ids is enough
    fn remove_renumbering(&mut self, sel: &IdSelector) -> Result<usize> {
        let before = self.inner.invlists().sizes();
        let n = Index::remove_renumbering(&mut self.inner, sel)?;
        self.changed(before);
        Ok(n)
    }
    fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        self.inner.reconstruct(id)
    }
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
    fn stores_ids(&self) -> bool {
        true
    }
}

#[derive(Clone)]
struct FsScanner<'a> {
    idx: &'a IndexIVFPQFastScan,
    pq: PqScanner<'a>,
    lvl: SimdLevel,
    rerank: bool,
    k_factor: usize,
    /// `M × 16` float table of the current list.
    small: Vec<f32>,
    /// Its quantized form (buffers reused from list to list).
    luts: Option<QuantizedLuts>,
}

/// Candidates of one list into the heap: real ids, or `(list << 32) | offset` when re-ranking.
struct Sink<'a> {
    heap: TopK,
    /// Known upper bound on the final threshold (the threshold of a full collector of the same
    /// query: an earlier pass's, another run's through `shared`, or this one's; all merged at
    /// the end): keys above it can never be returned.
    bound: f32,
    /// The query's bound shared by the runs of a pass, lowered once per list visit
    /// ([`Sink::finish`]: not per candidate, the runs' threads would fight over its cache line).
    shared: Option<&'a AtomicU32>,
    bias: f32,
    scale: f32,
    /// Accumulator bound of the current threshold ([`acc_threshold`]), kept up to date by `push`.
    thr: u16,
    ids: &'a [i64],
    sel: Option<&'a IdSelector>,
    tag: Option<i64>,
}

/// Lower the shared bound (f32 bits) to `t` if `t` is smaller (bounds only ever decrease, so
/// any interleaving of the runs leaves a valid bound and the same results).
fn lower(s: &AtomicU32, t: f32) {
    let mut cur = s.load(Ordering::Relaxed);
    while t < f32::from_bits(cur) {
        match s.compare_exchange_weak(cur, t.to_bits(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(c) => cur = c,
        }
    }
}

impl<'a> Sink<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        heap: TopK,
        shared: Option<&'a AtomicU32>,
        bias: f32,
        scale: f32,
        ids: &'a [i64],
        sel: Option<&'a IdSelector>,
        tag: Option<i64>,
    ) -> Self {
        let bound = shared.map_or(f32::INFINITY, |s| f32::from_bits(s.load(Ordering::Relaxed)));
        let bound = heap.threshold().min(bound);
        let thr = acc_threshold(bound, bias, scale);
        Sink {
            heap,
            bound,
            shared,
            bias,
            scale,
            thr,
            ids,
            sel,
            tag,
        }
    }
}

impl Sink<'_> {
    /// End of the list visit: publish the bound, return the collector.
    fn finish(self) -> TopK {
        if let Some(s) = self.shared {
            lower(s, self.bound);
        }
        self.heap
    }
}

impl BlockSink for Sink<'_> {
    #[inline]
    fn threshold(&self) -> u16 {
        self.thr
    }

    #[inline]
    fn push(&mut self, i: usize, acc: u16) {
        // the id is only read when needed (filter, or no re-ranking): cold cache lines
        if self.sel.is_none_or(|s| s.accepts(self.ids[i])) {
            let key = self.bias + acc as f32 / self.scale;
            let id = match self.tag {
                Some(t) => t | i as i64,
                None => self.ids[i],
            };
            self.heap.push(key, id);
            // the threshold only moves when a candidate enters
            let t = self.heap.threshold();
            if t < self.bound {
                self.bound = t;
                self.thr = acc_threshold(t, self.bias, self.scale);
            }
        }
    }
}

impl ListScanner for FsScanner<'_> {
    fn scan_list(
        &mut self,
        list: usize,
        coarse_key: f32,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    ) {
        let ids = self.idx.inner.invlists().ids(list);
        if ids.is_empty() {
            return;
        }
        let key0 = self.pq.key0(coarse_key);
        let table = self.pq.list_table(list);
        for (dst, src) in self
            .small
            .chunks_exact_mut(16)
            .zip(table.chunks_exact(TABLE_STRIDE))
        {
            dst.copy_from_slice(&src[..16]);
        }
        self.small[..16].iter_mut().for_each(|v| *v += key0);
        let m = self.idx.inner.pq.m();
        let luts = match &mut self.luts {
            Some(l) => {
                l.refill(&self.small, m, 16);
                l
            }
            None => self.luts.insert(QuantizedLuts::new(&self.small, 1, m, 16)),
        };
        let mut sink = [Sink::new(
            std::mem::replace(heap, TopK::new(0)),
            None,
            luts.bias(0),
            luts.scale(0),
            ids,
            sel,
            self.rerank.then_some((list as i64) << 32),
        )];
        scan_blocks(
            self.lvl,
            luts,
            0,
            &self.idx.packed[list],
            ids.len(),
            &mut sink,
        );
        let [sink] = sink;
        *heap = sink.finish();
    }

    fn heap_k(&self, k: usize) -> usize {
        if self.rerank {
            k.saturating_mul(self.k_factor)
        } else {
            k
        }
    }

    fn finish(&mut self, heap: TopK, probes: &[(usize, f32)], k: usize) -> TopK {
        if !self.rerank {
            return heap;
        }
        let mut cand = heap.into_sorted();
        cand.sort_unstable_by_key(|&(_, pos)| pos);
        let idx = self.idx;
        let lists = idx.inner.invlists();
        let m = idx.inner.pq.m();
        let mut out = TopK::new(k);
        let mut cur = usize::MAX;
        let mut key0 = 0.0;
        let mut one = [0f32; 1];
        for (_, pos) in cand {
            let (l, o) = ((pos >> 32) as usize, (pos & 0xFFFF_FFFF) as usize);
            if l != cur {
                // candidates are grouped by list: one table per distinct list
                cur = l;
                let ck = probes.iter().find(|p| p.0 == l).map_or(0.0, |p| p.1);
                key0 = self.pq.key0(ck);
                self.pq.list_table(l);
            }
            let table = self.pq.current_table();
            adc_block(table, m, &lists.codes(l)[o * m..(o + 1) * m], &mut one);
            out.push(one[0] + key0, lists.ids(l)[o]);
        }
        out
    }
}

/// Float ADC distance of one 4-bit code whose table entry `(m, c)` is `qt[16m + c]` plus
/// `pre[16m + c]` when given: the same adds in the same order as `kernels::pq::adc_block`
/// over the full table (`even` and `odd` partial sums over alternate sub-quantizers, then
/// `even + odd`), so the result is bit-identical to the per-query path.
#[inline]
fn adc_sum(qt: &[f32], pre: Option<&[f32]>, code: &[u8]) -> f32 {
    let entry = |j: usize| {
        let e = 16 * j + code[j] as usize;
        match pre {
            Some(p) => qt[e] + p[e],
            None => qt[e],
        }
    };
    let m = code.len();
    let (mut even, mut odd) = (0f32, 0f32);
    let mut j = 0;
    while j + 1 < m {
        even += entry(j);
        odd += entry(j + 1);
        j += 2;
    }
    if j < m {
        even += entry(j);
    }
    even + odd
}

impl Persist for IndexIVFPQFastScan {
    const KIND: &'static str = "IndexIVFPQFastScan";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.inner.write_parts(&mut w);
        w.meta_u64("k_factor", self.k_factor as u64);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let inner = IndexIVFPQ::read_parts(r, "IndexIVFPQFastScan")?;
        // a file must never reach the kernels' size asserts: same checks as the constructors
        check_pq(inner.pq()).map_err(|e| r.err(e))?;
        let kf = r.meta_usize("k_factor")?;
        if kf == 0 {
            return Err(r.err("metadata 'k_factor' is 0"));
        }
        let mut s = Self::wrap(inner);
        s.k_factor = kf;
        Ok(s)
    }
}
