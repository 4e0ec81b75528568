//! Exhaustive Hamming search over packed binary codes: faiss `IndexBinaryFlat`.
//!
//! Storage is two plain vectors, `codes` (n × code_size bytes, row-major) and `ids` (n × i64),
//! so a serializer can write them as they are ([`IndexBinaryFlat::from_parts`] rebuilds one).
//!
//! Search: the base is split into fixed row chunks scanned in parallel; inside a chunk, blocks of
//! codes small enough to stay in cache are compared with every query of a batch. With few
//! queries per task each code is compared directly (the per-code popcount variant measured
//! fastest on this CPU, then a SIMD "first distance below the threshold" scan); with many, each
//! block is transposed into bit planes once and every query runs the bit-sliced scan
//! (`kernels::hamming::sliced`), which yields only the codes below the query's threshold.
//! `kernels::hamming::select` measures the crossover. Selection exploits that
//! distances are small integers: a per-query reservoir of candidates is cut back to the best `k`
//! with a counting pass over the `nbits + 1` possible distances (no comparison sort). Ties go to
//! the lower id, so results do not depend on thread count or SIMD level.

use super::binary_any::BinaryIndex;
use super::{IdSelector, IdSet, SearchParams};
use crate::control::Control;
use crate::distance::result_len;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist};
use crate::kernels::hamming;
use crate::kernels::hamming::select::{plan, Plan};
use crate::kernels::hamming::sliced::{SlicedQuery, Tile, LANES};
use crate::simd::{level, SimdLevel};
use crate::validate::check_k;
use rayon::prelude::*;

/// Distance written in result slots with no result (faiss: `INT32_MAX`), id -1.
pub const PAD_DISTANCE: i32 = i32::MAX;
/// Queries per pass over the base (bounds the per-chunk collectors).
const QUERY_BATCH: usize = 1024;
/// Bytes of codes per cache block (half of a typical 64 KiB L2 slice per query batch).
const BLOCK_BYTES: usize = 32 * 1024;
/// Bytes of bit planes per block of the bit-sliced scan (each query reads about half of them).
const SLICED_BLOCK_BYTES: usize = 32 * 1024;

/// (distance, id) pairs of one query.
type Candidates = Vec<(u32, i64)>;

/// (distances nq×k, ids nq×k), faiss layout.
pub type BinarySearchResult = (Vec<i32>, Vec<i64>);

/// Range-search result, faiss layout: the results of query `i` are
/// `dist[lims[i]..lims[i+1]]` / `ids[..]`, sorted by (distance, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResult {
    /// nq + 1 offsets.
    pub lims: Vec<usize>,
    /// Hamming distances.
    pub dist: Vec<i32>,
    /// Ids.
    pub ids: Vec<i64>,
}

/// Flat index of binary codes with explicit int64 ids.
#[derive(Debug, Clone)]
pub struct IndexBinaryFlat {
    nbits: usize,
    code_size: usize,
    codes: Vec<u8>,
    ids: Vec<i64>,
    /// Id given to the next code added without explicit ids.
    next_id: i64,
    /// Ids strictly increase in storage order (true unless `add_with_ids` broke it): the scan
    /// can then reject a candidate that only ties the current k-th distance.
    ids_sorted: bool,
}

impl IndexBinaryFlat {
    /// Empty index for `nbits`-bit codes (`nbits` a positive multiple of 8).
    pub fn new(nbits: usize) -> Result<Self> {
        if nbits == 0 || !nbits.is_multiple_of(8) {
            return Err(Error::invalid(format!(
                "nbits must be a positive multiple of 8, got {nbits}"
            )));
        }
        Ok(IndexBinaryFlat {
            nbits,
            code_size: nbits / 8,
            codes: Vec::new(),
            ids: Vec::new(),
            next_id: 0,
            ids_sorted: true,
        })
    }

    /// Rebuild from stored parts (deserialization): `codes.len() == ids.len() * nbits / 8`.
    pub fn from_parts(nbits: usize, codes: Vec<u8>, ids: Vec<i64>) -> Result<Self> {
        let mut idx = Self::new(nbits)?;
        if codes.len() != ids.len() * idx.code_size {
            return Err(Error::shape(format!(
                "codes has {} bytes, expected {} ids × {} bytes",
                codes.len(),
                ids.len(),
                idx.code_size
            )));
        }
        check_ids(&ids)?;
        idx.codes = codes;
        idx.ids = ids;
        idx.refresh_id_state();
        Ok(idx)
    }

    /// Bits per code.
    pub fn nbits(&self) -> usize {
        self.nbits
    }
    /// Bytes per code.
    pub fn code_size(&self) -> usize {
        self.code_size
    }
    /// Number of stored codes.
    pub fn ntotal(&self) -> usize {
        self.ids.len()
    }
    /// Stored codes, row-major.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// Stored ids, in storage order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    fn check_codes(&self, codes: &[u8], arg: &str) -> Result<usize> {
        if !codes.len().is_multiple_of(self.code_size) {
            return Err(Error::shape(format!(
                "{arg} has {} bytes, not a multiple of the code size {} (nbits={})",
                codes.len(),
                self.code_size,
                self.nbits
            )));
        }
        Ok(codes.len() / self.code_size)
    }

    fn refresh_id_state(&mut self) {
        self.ids_sorted = self.ids.windows(2).all(|w| w[0] < w[1]);
        self.next_id = self.ids.iter().copied().max().map_or(0, |m| m + 1);
    }

    /// Append codes; ids continue from the largest id so far + 1 (0 for an empty index).
    pub fn add(&mut self, codes: &[u8]) -> Result<()> {
        let n = self.check_codes(codes, "codes")?;
        let first = self.next_id;
        let ids: Vec<i64> = (0..n as i64).map(|i| first + i).collect();
        self.codes.extend_from_slice(codes);
        self.ids.extend(ids);
        self.next_id = first + n as i64;
        Ok(())
    }

    /// Append codes with explicit ids (>= 0; duplicates allowed, as in faiss `IndexIDMap`).
    pub fn add_with_ids(&mut self, codes: &[u8], ids: &[i64]) -> Result<()> {
        let n = self.check_codes(codes, "codes")?;
        if ids.len() != n {
            return Err(Error::shape(format!(
                "ids has {} entries, expected one per code ({n})",
                ids.len()
            )));
        }
        check_ids(ids)?;
        let sorted = self.ids_sorted
            && ids.windows(2).all(|w| w[0] < w[1])
            && match (self.ids.last(), ids.first()) {
                (Some(a), Some(b)) => a < b,
                _ => true,
            };
        self.codes.extend_from_slice(codes);
        self.ids.extend_from_slice(ids);
        self.ids_sorted = sorted;
        if let Some(m) = ids.iter().copied().max() {
            self.next_id = self.next_id.max(m + 1);
        }
        Ok(())
    }

    /// Remove every code whose id is in `ids`; returns how many were removed. The other ids are
    /// kept as they are (faiss `IndexBinaryFlat` renumbers instead; quanta ids are stable).
    pub fn remove_ids(&mut self, ids: &[i64]) -> usize {
        if ids.is_empty() {
            return 0;
        }
        self.remove_selected(&IdSelector::Allow(IdSet::from_ids(ids)))
    }

    /// Remove every code whose id the selector accepts; returns how many were removed.
    pub fn remove_selected(&mut self, sel: &IdSelector) -> usize {
        let cs = self.code_size;
        let mut w = 0usize;
        for r in 0..self.ids.len() {
            if !sel.accepts(self.ids[r]) {
                if w != r {
                    self.ids[w] = self.ids[r];
                    self.codes.copy_within(r * cs..(r + 1) * cs, w * cs);
                }
                w += 1;
            }
        }
        let removed = self.ids.len() - w;
        self.ids.truncate(w);
        self.codes.truncate(w * cs);
        removed
    }

    /// Remove everything (ids restart at 0).
    pub fn reset(&mut self) {
        self.codes.clear();
        self.ids.clear();
        self.next_id = 0;
        self.ids_sorted = true;
    }

    /// Work split for one query batch: `(query groups, base chunk rows)`.
    ///
    /// Many queries: split the queries (every task scans the whole base with its own group, so
    /// each per-query collector sees all codes and its threshold tightens early). Few queries:
    /// split the base into fixed multiples of the cache block, ~4 per thread. Results are exact
    /// either way, so they do not depend on the split.
    ///
    /// The bit-sliced scan transposes every block it reads, once per task: there the base is
    /// always split (each block is transposed once per batch, for all of its queries).
    fn grid(&self, nq: usize, sliced: bool) -> (usize, usize) {
        let n = self.ntotal().max(1);
        let threads = crate::threads::num_threads().max(1);
        if threads == 1 {
            return (1, n);
        }
        if sliced {
            return (1, n.div_ceil(2 * threads).div_ceil(LANES) * LANES);
        }
        if nq >= 8 * threads {
            return ((2 * threads).min(nq), n);
        }
        let block = block_rows(self.code_size);
        (1, n.div_ceil(threads * 4).max(1).div_ceil(block) * block)
    }

    /// Run `scan` over the (query group × base chunk) grid in parallel; returns, per task, the
    /// first query of its group and the sink's per-query output.
    ///
    /// `force` picks the bit-sliced (`Some(true)`) or per-code scan (`Some(false)`) instead of
    /// the measured crossover (tests check that both give the same results).
    fn scan_grid<S: Sink + Send, T: Send>(
        &self,
        qs: &[u8],
        force: Option<bool>,
        ctl: &Control,
        make: impl Fn(usize) -> S + Sync,
        finish: impl Fn(S) -> Vec<T> + Sync,
    ) -> Result<Vec<(usize, Vec<T>)>> {
        let cs = self.code_size;
        let nq = qs.len() / cs;
        let n = self.ntotal();
        let lvl = level();
        let plan = plan(lvl, cs);
        // the bit-sliced scan needs enough queries per block to pay for its transpose
        let sliced = force.unwrap_or(nq >= plan.sliced_min_queries);
        let (gq, chunk) = self.grid(nq, sliced);
        let qchunk = nq.div_ceil(gq).max(1);
        let nchunks = n.div_ceil(chunk.max(1));
        let tasks: Vec<(usize, usize)> = (0..nq.div_ceil(qchunk))
            .flat_map(|a| (0..nchunks).map(move |c| (a, c)))
            .collect();
        tasks
            .into_par_iter()
            .map(|(a, c)| {
                let (qa, qb) = (a * qchunk, ((a + 1) * qchunk).min(nq));
                let lo = c * chunk;
                let hi = (lo + chunk).min(n);
                let mut sink = make(qb - qa);
                let qs = &qs[qa * cs..qb * cs];
                if sliced {
                    self.scan_sliced(lvl, qs, lo, hi, ctl, &mut sink)?;
                } else {
                    self.scan(lvl, plan, qs, lo, hi, ctl, &mut sink)?;
                }
                Ok((qa, finish(sink)))
            })
            .collect()
    }

    /// k nearest codes of each query (Hamming), ties to the lower id, padded with
    /// ([`PAD_DISTANCE`], -1) when `k > ntotal`.
    pub fn search(&self, queries: &[u8], k: usize, ctl: &Control) -> Result<BinarySearchResult> {
        self.search_forced(queries, k, None, None, ctl)
    }

    /// [`Self::search`] returning only ids the selector accepts (checked when a candidate
    /// would enter the top k, so the unfiltered scan is unchanged).
    pub fn search_filtered(
        &self,
        queries: &[u8],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<BinarySearchResult> {
        self.search_forced(queries, k, sel, None, ctl)
    }

    /// The stored code with id `id` (the first one, if `add_with_ids` gave it twice).
    pub fn reconstruct(&self, id: i64) -> Result<Vec<u8>> {
        let cs = self.code_size;
        match self.ids.iter().position(|&x| x == id) {
            Some(r) => Ok(self.codes[r * cs..(r + 1) * cs].to_vec()),
            None => Err(Error::invalid(format!("id {id} is not in the index"))),
        }
    }

    /// [`Self::search`] with the scan kind forced (see [`Self::scan_grid`]).
    fn search_forced(
        &self,
        queries: &[u8],
        k: usize,
        sel: Option<&IdSelector>,
        force: Option<bool>,
        ctl: &Control,
    ) -> Result<BinarySearchResult> {
        check_k(k)?;
        let nq = self.check_codes(queries, "queries")?;
        let total = result_len(nq, k)?;
        let mut dist = Vec::new();
        let mut ids = Vec::new();
        let oom = || {
            Error::invalid(format!(
                "k={k} is too large: the result for {nq} queries would not fit in memory"
            ))
        };
        dist.try_reserve_exact(total).map_err(|_| oom())?;
        ids.try_reserve_exact(total).map_err(|_| oom())?;
        let n = self.ntotal();
        let kk = k.min(n.max(1));
        let cs = self.code_size;
        ctl.set_total(nq.div_ceil(QUERY_BATCH) as u64);
        for q0 in (0..nq).step_by(QUERY_BATCH) {
            let q1 = (q0 + QUERY_BATCH).min(nq);
            let nqb = q1 - q0;
            let parts = self.scan_grid(
                &queries[q0 * cs..q1 * cs],
                force,
                ctl,
                |m| KnnSink {
                    sel,
                    cols: (0..m)
                        .map(|_| Collector::new(kk, self.ids_sorted))
                        .collect(),
                    hist: vec![0u32; self.nbits + 2],
                },
                |sink| sink.cols.into_iter().map(|c| c.items).collect(),
            )?;
            ctl.advance(1);
            let mut merged: Vec<Candidates> = vec![Vec::new(); nqb];
            for (qa, cols) in parts {
                for (m, c) in merged[qa..].iter_mut().zip(cols) {
                    m.extend(c);
                }
            }
            for m in merged.iter_mut() {
                m.sort_unstable();
                m.truncate(kk);
                for j in 0..k {
                    match m.get(j) {
                        Some(&(d, id)) => {
                            dist.push(d as i32);
                            ids.push(id);
                        }
                        None => {
                            dist.push(PAD_DISTANCE);
                            ids.push(-1);
                        }
                    }
                }
            }
        }
        Ok((dist, ids))
    }

    /// Every stored code at Hamming distance `< radius` of each query (faiss semantics: strict),
    /// sorted by (distance, id). `radius == 0` returns nothing.
    pub fn range_search(
        &self,
        queries: &[u8],
        radius: usize,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.range_search_forced(queries, radius, None, None, ctl)
    }

    /// [`Self::range_search`] returning only ids the selector accepts.
    pub fn range_search_filtered(
        &self,
        queries: &[u8],
        radius: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.range_search_forced(queries, radius, sel, None, ctl)
    }

    /// [`Self::range_search`] with the scan kind forced (see [`Self::scan_grid`]).
    fn range_search_forced(
        &self,
        queries: &[u8],
        radius: usize,
        sel: Option<&IdSelector>,
        force: Option<bool>,
        ctl: &Control,
    ) -> Result<RangeResult> {
        let nq = self.check_codes(queries, "queries")?;
        let thr = radius.min(self.nbits + 1) as u32;
        let cs = self.code_size;
        ctl.set_total(nq.div_ceil(QUERY_BATCH) as u64);
        let mut out = RangeResult {
            lims: vec![0],
            dist: Vec::new(),
            ids: Vec::new(),
        };
        for q0 in (0..nq).step_by(QUERY_BATCH) {
            let q1 = (q0 + QUERY_BATCH).min(nq);
            let nqb = q1 - q0;
            let parts = self.scan_grid(
                &queries[q0 * cs..q1 * cs],
                force,
                ctl,
                |m| RangeSink {
                    sel,
                    thr,
                    res: vec![Vec::new(); m],
                },
                |sink| sink.res,
            )?;
            ctl.advance(1);
            let mut merged: Vec<Candidates> = vec![Vec::new(); nqb];
            for (qa, res) in parts {
                for (m, r) in merged[qa..].iter_mut().zip(res) {
                    m.extend(r);
                }
            }
            for m in merged.iter_mut() {
                m.sort_unstable();
                out.dist.extend(m.iter().map(|&(d, _)| d as i32));
                out.ids.extend(m.iter().map(|&(_, id)| id));
                out.lims.push(out.ids.len());
            }
        }
        Ok(out)
    }

    /// Scan rows `lo..hi` for every query of `qs`: `sink.offer(q, d, id)` for each distance
    /// below `sink.thr(q)` (read again after every offer, so it may shrink during the scan).
    #[allow(clippy::too_many_arguments)]
    fn scan<S: Sink>(
        &self,
        lvl: SimdLevel,
        plan: Plan,
        qs: &[u8],
        lo: usize,
        hi: usize,
        ctl: &Control,
        sink: &mut S,
    ) -> Result<()> {
        let cs = self.code_size;
        let block = block_rows(cs);
        let mut dist = vec![0u32; block];
        let mut b0 = lo;
        while b0 < hi {
            ctl.check()?;
            let b1 = (b0 + block).min(hi);
            let nb = b1 - b0;
            let codes = &self.codes[b0 * cs..b1 * cs];
            let ids = &self.ids[b0..b1];
            for (qi, q) in qs.chunks_exact(cs).enumerate() {
                let row = &mut dist[..nb];
                hamming::hamming_many_kernel(plan.kernel, q, codes, row);
                let mut j = 0;
                loop {
                    j = hamming::find_below_u32_with(lvl, row, j, sink.thr(qi));
                    if j >= nb {
                        break;
                    }
                    sink.offer(qi, row[j], ids[j]);
                    j += 1;
                }
            }
            b0 = b1;
        }
        Ok(())
    }

    /// [`Self::scan`] by the bit-sliced kernels: each block of tiles is transposed once, then
    /// every query gets a lane mask of the codes below its threshold, whose exact distances are
    /// computed one by one (few once the threshold has settled).
    fn scan_sliced<S: Sink>(
        &self,
        lvl: SimdLevel,
        qs: &[u8],
        lo: usize,
        hi: usize,
        ctl: &Control,
        sink: &mut S,
    ) -> Result<()> {
        let cs = self.code_size;
        let queries: Vec<SlicedQuery> = qs.chunks_exact(cs).map(SlicedQuery::new).collect();
        // tiles per block: the planes of a block stay in L1/L2 while every query reads them
        let per_block = (SLICED_BLOCK_BYTES / (LANES * cs)).max(1);
        let mut tiles: Vec<Tile> = (0..per_block).map(|_| Tile::new(cs)).collect();
        let mut scratch = Vec::new();
        let mut b0 = lo;
        while b0 < hi {
            ctl.check()?;
            let b1 = (b0 + per_block * LANES).min(hi);
            let nt = (b1 - b0).div_ceil(LANES);
            for (t, tile) in tiles[..nt].iter_mut().enumerate() {
                let r0 = b0 + t * LANES;
                let r1 = (r0 + LANES).min(b1);
                tile.load_with(lvl, &self.codes[r0 * cs..r1 * cs], cs);
            }
            for (qi, (sq, q)) in queries.iter().zip(qs.chunks_exact(cs)).enumerate() {
                for (t, tile) in tiles[..nt].iter().enumerate() {
                    let mask = tile.below_with(lvl, sq, sink.thr(qi), &mut scratch);
                    let r0 = b0 + t * LANES;
                    for (w, &m) in mask.iter().enumerate() {
                        let mut m = m;
                        while m != 0 {
                            let r = r0 + 64 * w + m.trailing_zeros() as usize;
                            m &= m - 1;
                            let d =
                                hamming::hamming_with(lvl, q, &self.codes[r * cs..(r + 1) * cs]);
                            // the threshold may have dropped since the mask was computed
                            if d < sink.thr(qi) {
                                sink.offer(qi, d, self.ids[r]);
                            }
                        }
                    }
                }
            }
            b0 = b1;
        }
        Ok(())
    }
}

/// Saved as kind `"IndexBinaryFlat"`: metadata `nbits`, `ntotal`; sections `codes` (`u8`,
/// `ntotal × nbits/8`) and `ids` (`i64`, `ntotal`, each `>= 0`; duplicates allowed).
impl Persist for IndexBinaryFlat {
    const KIND: &'static str = "IndexBinaryFlat";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.meta_u64("nbits", self.nbits as u64)
            .meta_u64("ntotal", self.ntotal() as u64)
            .section_u8("codes", &self.codes)
            .section_i64("ids", &self.ids);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let nbits = r.meta_usize("nbits")?;
        if nbits == 0 || !nbits.is_multiple_of(8) {
            return Err(r.err(format!(
                "metadata 'nbits' is {nbits}, not a positive multiple of 8"
            )));
        }
        let n = r.meta_usize("ntotal")?;
        let codes = r.section_u8("codes")?;
        let ids = r.section_i64("ids")?;
        if ids.len() != n {
            return Err(r.err(format!(
                "section 'ids' holds {} ids, expected ntotal = {n}",
                ids.len()
            )));
        }
        if n.checked_mul(nbits / 8) != Some(codes.len()) {
            return Err(r.err(format!(
                "section 'codes' holds {} bytes, expected ntotal x code_size = {n} x {}",
                codes.len(),
                nbits / 8
            )));
        }
        IndexBinaryFlat::from_parts(nbits, codes.into_vec(), ids.into_vec()).map_err(|e| r.err(e))
    }
}

/// Receiver of scan results.
trait Sink {
    /// Only distances below this are offered for query `q`.
    fn thr(&self, q: usize) -> u32;
    /// One candidate of query `q`.
    fn offer(&mut self, q: usize, d: u32, id: i64);
}

/// Whether the selector (if any) accepts `id`: checked only for candidates below the
/// threshold, so rejected codes never take a slot and the unfiltered scan is unchanged.
#[inline]
fn accepted(sel: Option<&IdSelector>, id: i64) -> bool {
    sel.is_none_or(|s| s.accepts(id))
}

struct KnnSink<'a> {
    sel: Option<&'a IdSelector>,
    cols: Vec<Collector>,
    hist: Vec<u32>,
}

impl Sink for KnnSink<'_> {
    #[inline]
    fn thr(&self, q: usize) -> u32 {
        self.cols[q].thr
    }
    #[inline]
    fn offer(&mut self, q: usize, d: u32, id: i64) {
        if accepted(self.sel, id) {
            self.cols[q].push(d, id, &mut self.hist)
        }
    }
}

struct RangeSink<'a> {
    sel: Option<&'a IdSelector>,
    thr: u32,
    res: Vec<Vec<(u32, i64)>>,
}

impl Sink for RangeSink<'_> {
    #[inline]
    fn thr(&self, _q: usize) -> u32 {
        self.thr
    }
    #[inline]
    fn offer(&mut self, q: usize, d: u32, id: i64) {
        if accepted(self.sel, id) {
            self.res[q].push((d, id))
        }
    }
}

impl BinaryIndex for IndexBinaryFlat {
    fn kind(&self) -> &'static str {
        Self::KIND
    }
    fn nbits(&self) -> usize {
        self.nbits
    }
    fn code_size(&self) -> usize {
        self.code_size
    }
    fn ntotal(&self) -> usize {
        self.ids.len()
    }
    fn add(&mut self, codes: &[u8], _ctl: &Control) -> Result<()> {
        IndexBinaryFlat::add(self, codes)
    }
    fn add_with_ids(&mut self, codes: &[u8], ids: &[i64], _ctl: &Control) -> Result<()> {
        IndexBinaryFlat::add_with_ids(self, codes, ids)
    }
    fn search(
        &self,
        q: &[u8],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<BinarySearchResult> {
        self.search_filtered(q, k, params.selector.as_ref(), ctl)
    }
    fn range_search(
        &self,
        q: &[u8],
        radius: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.range_search_filtered(q, radius, params.selector.as_ref(), ctl)
    }
    fn remove_ids(&mut self, sel: &IdSelector) -> Result<usize> {
        Ok(self.remove_selected(sel))
    }
    fn reconstruct(&self, id: i64) -> Result<Vec<u8>> {
        IndexBinaryFlat::reconstruct(self, id)
    }
    fn reset(&mut self) {
        IndexBinaryFlat::reset(self)
    }
    fn writer(&self) -> FileWriter<'_> {
        self.to_file()
    }
    fn clone_box(&self) -> super::binary_any::AnyBinaryIndex {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

fn check_ids(ids: &[i64]) -> Result<()> {
    if let Some(p) = ids.iter().position(|&i| i < 0) {
        return Err(Error::invalid(format!(
            "ids must be >= 0 (-1 marks a missing result), got {} at position {p}",
            ids[p]
        )));
    }
    Ok(())
}

/// Codes per cache block.
fn block_rows(code_size: usize) -> usize {
    (BLOCK_BYTES / code_size.max(1)).clamp(64, 8192)
}

/// Per-query top-k over small integer distances: a reservoir of up to `2k` candidates, cut back
/// to the best `k` by a counting pass over the distance values.
struct Collector {
    k: usize,
    /// Only distances `< thr` can still enter (see `cut`).
    thr: u32,
    items: Vec<(u32, i64)>,
    /// Ids arrive in increasing order: a distance equal to the k-th can never win its tie.
    strict: bool,
}

impl Collector {
    fn new(k: usize, strict: bool) -> Self {
        Collector {
            k,
            thr: u32::MAX,
            items: Vec::with_capacity((2 * k).min(1 << 16)),
            strict,
        }
    }

    #[inline]
    fn push(&mut self, d: u32, id: i64, hist: &mut [u32]) {
        self.items.push((d, id));
        if self.items.len() >= 2 * self.k {
            self.cut(hist);
        }
    }

    /// Keep the k best (distance, id) and lower the threshold to the k-th distance.
    fn cut(&mut self, hist: &mut [u32]) {
        let k = self.k;
        hist.fill(0);
        let top = hist.len() - 1;
        for &(d, _) in &self.items {
            hist[(d as usize).min(top)] += 1;
        }
        // kth = smallest t with count(d <= t) >= k
        let mut cum = 0usize;
        let mut kth = top;
        for (t, &c) in hist.iter().enumerate() {
            cum += c as usize;
            if cum >= k {
                kth = t;
                break;
            }
        }
        let kth = kth as u32;
        let below = cum - hist[kth as usize] as usize;
        let mut room = k - below; // slots left for distance == kth
        if !self.strict {
            // ids not in scan order: the kept ties at kth must be the lowest ids
            self.items.sort_unstable();
        }
        self.items.retain(|&(d, _)| {
            if d < kth {
                true
            } else if d == kth && room > 0 {
                room -= 1;
                true
            } else {
                false
            }
        });
        // strict: a later id at distance kth loses the tie, so require d < kth;
        // otherwise it may still beat a kept one on the id: admit d <= kth
        self.thr = if self.strict { kth } else { kth + 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn brute(codes: &[u8], ids: &[i64], q: &[u8], cs: usize, k: usize) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = codes
            .chunks_exact(cs)
            .zip(ids)
            .map(|(c, &id)| (hamming::scalar::hamming(c, q) as i32, id))
            .collect();
        v.sort_unstable();
        v.truncate(k);
        while v.len() < k {
            v.push((PAD_DISTANCE, -1));
        }
        v
    }

    #[test]
    fn search_matches_brute_force() {
        let mut r = Rng::new(3);
        for &nbits in &[8usize, 24, 64, 128, 256, 512, 520] {
            let cs = nbits / 8;
            for &n in &[0usize, 1, 7, 300, 5000] {
                // few distinct bytes: many ties
                let codes: Vec<u8> = (0..n * cs).map(|_| (r.below(4) as u8) * 17).collect();
                let qs: Vec<u8> = (0..5 * cs).map(|_| (r.below(4) as u8) * 17).collect();
                let mut idx = IndexBinaryFlat::new(nbits).unwrap();
                idx.add(&codes).unwrap();
                for (&k, force) in [1usize, 3, 10, 64, n + 2]
                    .iter()
                    .flat_map(|k| [None, Some(false), Some(true)].map(|f| (k, f)))
                {
                    let (d, i) = idx
                        .search_forced(&qs, k, None, force, &Control::new())
                        .unwrap();
                    for q in 0..5 {
                        let want = brute(&codes, idx.ids(), &qs[q * cs..(q + 1) * cs], cs, k);
                        let got: Vec<(i32, i64)> =
                            (0..k).map(|j| (d[q * k + j], i[q * k + j])).collect();
                        assert_eq!(got, want, "nbits={nbits} n={n} k={k} {force:?}");
                    }
                }
                for force in [None, Some(false), Some(true)] {
                    let rr = idx
                        .range_search_forced(&qs, nbits / 3, None, force, &Control::new())
                        .unwrap();
                    assert_eq!(rr.lims.len(), 6);
                    for q in 0..5 {
                        let all = brute(&codes, idx.ids(), &qs[q * cs..(q + 1) * cs], cs, n);
                        let want: Vec<(i32, i64)> = all
                            .into_iter()
                            .filter(|&(d, _)| d < (nbits / 3) as i32)
                            .collect();
                        let got: Vec<(i32, i64)> = (rr.lims[q]..rr.lims[q + 1])
                            .map(|j| (rr.dist[j], rr.ids[j]))
                            .collect();
                        assert_eq!(got, want);
                    }
                }
            }
        }
    }

    #[test]
    fn unsorted_ids_and_removal() {
        let mut r = Rng::new(4);
        let cs = 8;
        let n = 3000;
        let codes: Vec<u8> = (0..n * cs).map(|_| (r.below(2) as u8) * 255).collect();
        let ids: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 10007).collect();
        let mut idx = IndexBinaryFlat::new(64).unwrap();
        idx.add_with_ids(&codes, &ids).unwrap();
        let q: Vec<u8> = (0..cs).map(|_| (r.below(2) as u8) * 255).collect();
        for &k in &[1usize, 5, 100] {
            for force in [None, Some(false), Some(true)] {
                let (d, i) = idx
                    .search_forced(&q, k, None, force, &Control::new())
                    .unwrap();
                let want = brute(&codes, &ids, &q, cs, k);
                let got: Vec<(i32, i64)> = d.into_iter().zip(i).collect();
                assert_eq!(got, want);
            }
        }
        assert_eq!(idx.remove_ids(&[ids[0], ids[5], 123_456]), 2);
        assert_eq!(idx.ntotal(), n - 2);
        assert!(!idx.ids().contains(&ids[0]));
        assert_eq!(idx.codes().len(), (n - 2) * cs);
        assert!(idx.add_with_ids(&codes[..cs], &[-1]).is_err());
        assert!(idx.add(&codes[..cs - 1]).is_err());
        assert!(IndexBinaryFlat::new(12).is_err());
        let back =
            IndexBinaryFlat::from_parts(64, idx.codes().to_vec(), idx.ids().to_vec()).unwrap();
        assert_eq!(back.ids(), idx.ids());
    }

    #[test]
    fn filtered_search_matches_brute_force_on_the_subset() {
        let mut r = Rng::new(5);
        let (cs, n) = (16usize, 4000usize);
        let codes: Vec<u8> = (0..n * cs).map(|_| (r.below(4) as u8) * 17).collect();
        let ids: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 10007).collect();
        let qs: Vec<u8> = (0..40 * cs).map(|_| (r.below(4) as u8) * 17).collect();
        let mut idx = IndexBinaryFlat::new(8 * cs).unwrap();
        idx.add_with_ids(&codes, &ids).unwrap();
        let allowed: Vec<i64> = ids.iter().copied().filter(|i| i % 3 == 0).collect();
        for sel in [
            IdSelector::Allow(IdSet::from_ids(&allowed)),
            IdSelector::Deny(IdSet::from_ids(&allowed)),
        ] {
            let keep: Vec<usize> = (0..n).filter(|&j| sel.accepts(ids[j])).collect();
            let sub_codes: Vec<u8> = keep
                .iter()
                .flat_map(|&j| codes[j * cs..(j + 1) * cs].iter().copied())
                .collect();
            let sub_ids: Vec<i64> = keep.iter().map(|&j| ids[j]).collect();
            for (k, force) in [(1usize, Some(false)), (10, Some(true)), (50, None)] {
                let (d, i) = idx
                    .search_forced(&qs, k, Some(&sel), force, &Control::new())
                    .unwrap();
                for q in 0..40 {
                    let want = brute(&sub_codes, &sub_ids, &qs[q * cs..(q + 1) * cs], cs, k);
                    let got: Vec<(i32, i64)> =
                        (0..k).map(|j| (d[q * k + j], i[q * k + j])).collect();
                    assert_eq!(got, want, "k={k} {force:?}");
                }
            }
            let rr = idx
                .range_search_filtered(&qs, 40, Some(&sel), &Control::new())
                .unwrap();
            assert!(rr.ids.iter().all(|&id| sel.accepts(id)));
            let full = idx.range_search(&qs, 40, &Control::new()).unwrap();
            let kept = full.ids.iter().filter(|&&id| sel.accepts(id)).count();
            assert_eq!(rr.ids.len(), kept);
        }
        assert_eq!(
            idx.reconstruct(ids[7]).unwrap(),
            codes[7 * cs..8 * cs].to_vec()
        );
        assert!(idx.reconstruct(-5).is_err());
        let deny = IdSelector::Allow(IdSet::from_ids(&allowed));
        assert_eq!(idx.remove_selected(&deny), allowed.len());
        assert!(idx.ids().iter().all(|i| i % 3 != 0));
    }
}
