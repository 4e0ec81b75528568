//! Inverted-file indexes (Jégou et al., IVFADC; faiss `IndexIVFFlat` / `IndexIVFPQ`).
//!
//! A coarse quantizer (a flat index over `nlist` k-means centroids) assigns every vector to one
//! inverted list; a search visits the `nprobe` lists whose centroids are nearest to the query and
//! scans their entries with one top-k collector per query.
//!
//! # Ids
//! Ids are arbitrary int64 values chosen by the caller (`add_with_ids`) or `ntotal ..` (`add`,
//! as faiss; after a removal these may repeat ids still present — pass explicit ids then).
//! Duplicates are allowed; `remove_ids` removes every entry with a listed id.
//!
//! # Filtered search
//! An [`IdSelector`] (allow-list or deny-list, given as ids or as a bitmap) is applied inside
//! the scan: a candidate that would enter the top-k is checked against the filter first and
//! skipped if rejected, so rejected entries never take a slot. Every allowed entry of the
//! probed lists is a candidate, hence the result holds `min(k, allowed entries in the probed
//! lists)` hits (the rest is `-1` padding). The filter does not change which lists are probed.

/// The [`Index`](crate::index::Index) methods every IVF index that owns an [`IvfBase`] as
/// `base` shares word for word: `d` and `metric` from the base, `search` with the saved
/// `nprobe` unless the parameters override it (forwarding to the inherent
/// `search(q, k, nprobe, sel, ctl)`), `remove_ids` on the lists, and stored ids. An index's
/// `impl Index` then holds only what differs (training, range search).
macro_rules! ivf_base_forward {
    ($ty:ty) => {
        fn d(&self) -> usize {
            self.base.d
        }
        fn metric(&self) -> $crate::distance::Metric {
            self.base.metric
        }
        fn search(
            &self,
            q: &[f32],
            k: usize,
            params: &$crate::index::SearchParams,
            ctl: &$crate::Control,
        ) -> $crate::Result<$crate::index::SearchResult> {
            let nprobe = params.nprobe_or(self.base.nprobe)?;
            <$ty>::search(self, q, k, nprobe, params.selector.as_ref(), ctl)
        }
        fn remove_ids(&mut self, sel: &$crate::index::IdSelector) -> $crate::Result<usize> {
            Ok(self.base.lists.remove_where(|id| sel.accepts(id)))
        }
        fn merge_from(&mut self, other: &dyn $crate::index::Index) -> $crate::Result<()> {
            let o: &$ty = $crate::index::merge_peer(&*self, other)?;
            self.base.lists.append_lists(&o.base.lists);
            Ok(())
        }
        fn remove_renumbering(&mut self, sel: &$crate::index::IdSelector) -> $crate::Result<usize> {
            let n = self.base.lists.ntotal();
            $crate::ivf::check_positions(&self.base.lists)?;
            let removed = self.base.lists.remove_where(|id| sel.accepts(id));
            if removed > 0 {
                let map = sel.renumbered_positions(n);
                self.base.lists.map_ids(|id| map[id as usize]);
            }
            Ok(removed)
        }
        fn stores_ids(&self) -> bool {
            true
        }
    };
}

/// The inherent accessors every IVF index that owns an [`IvfBase`] as `base` and its
/// [`IvfTrainParams`] as `train_params` shares word for word (`$elem`: the list element type).
macro_rules! ivf_base_accessors {
    ($elem:ty) => {
        /// Dimension.
        pub fn d(&self) -> usize {
            self.base.d
        }
        /// Number of inverted lists.
        pub fn nlist(&self) -> usize {
            self.base.nlist
        }
        /// Metric.
        pub fn metric(&self) -> $crate::distance::Metric {
            self.base.metric
        }
        /// Number of stored vectors.
        pub fn ntotal(&self) -> usize {
            self.base.lists.ntotal()
        }
        /// Coarse centroids (`nlist × d`; empty before training).
        pub fn centroids(&self) -> &[f32] {
            self.base.centroids()
        }
        /// The inverted lists (`code_len` elements per entry).
        pub fn invlists(&self) -> &$crate::ivf::InvertedLists<$elem> {
            &self.base.lists
        }
        /// Lists probed per query when the search parameters give none (default 1; saved).
        pub fn nprobe(&self) -> usize {
            self.base.nprobe
        }
        /// Set the default `nprobe` (>= 1).
        pub fn set_nprobe(&mut self, nprobe: usize) -> $crate::Result<()> {
            self.base.set_nprobe(nprobe)
        }
        /// Coarse k-means settings of [`Index::train`](crate::index::Index::train) (not saved:
        /// training happens once).
        pub fn train_params(&self) -> &$crate::ivf::IvfTrainParams {
            &self.train_params
        }
        /// Mutable [`train_params`](Self::train_params).
        pub fn train_params_mut(&mut self) -> &mut $crate::ivf::IvfTrainParams {
            &mut self.train_params
        }
        /// Remove every entry whose id is listed; returns how many were removed.
        pub fn remove_ids(&mut self, ids: &$crate::ivf::IdSet) -> usize {
            self.base.lists.remove(ids)
        }
        /// Remove every vector (the quantizers stay trained).
        pub fn reset(&mut self) {
            self.base.lists.reset();
        }
    };
}
pub(crate) use ivf_base_accessors;

mod fastscan;
mod flat;
mod lists;
mod pq;
mod pq_grouped;
mod rabitq;
mod sq;
#[cfg(test)]
mod tests;

pub use crate::index::{IdSelector, IdSet};
pub use fastscan::IndexIVFPQFastScan;
pub use flat::IndexIVFFlat;
pub use lists::InvertedLists;
pub use pq::IndexIVFPQ;
pub use rabitq::IndexIVFRaBitQ;
pub use sq::IndexIVFScalarQuantizer;

use crate::control::Control;
use crate::distance::{assign_nearest, result_len, row_norms, Metric};
use crate::error::{Error, Result};
use crate::index::{within_fn, IndexFlat, RangeResult, SearchResult};
use crate::io::{Element, FileReader, FileWriter};
use crate::kernels::l2::find_below_with;
use crate::kmeans::{self, KMeansParams};
use crate::simd::SimdLevel;
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_radius, check_shape};
use rayon::prelude::*;

/// Entries per scan block: the block's distances (1 KiB) stay in L1 until offered.
pub(crate) const SCAN_BLOCK: usize = 256;

/// That the lists' ids are positions `0..ntotal` (as the ids `add` gives), before a removal
/// renumbers them as positions.
pub(crate) fn check_positions<T: Element>(lists: &InvertedLists<T>) -> Result<()> {
    let n = lists.ntotal() as i64;
    for l in 0..lists.nlist() {
        if let Some(&bad) = lists.ids(l).iter().find(|&&id| !(0..n).contains(&id)) {
            return Err(Error::invalid(format!(
                "id {bad} is not a position in [0, {n}): only an IVF index numbered by `add` \
                 can renumber its ids after a removal"
            )));
        }
    }
    Ok(())
}
/// Rows encoded per batch in `add` (bounds the temporary residuals).
const ADD_BATCH: usize = 1 << 16;

/// Training parameters of the coarse quantizer (faiss `IndexIVF::cp`: 10 iterations).
#[derive(Debug, Clone)]
pub struct IvfTrainParams {
    /// Lloyd iterations of the coarse k-means.
    pub niter: usize,
    /// Seed of the coarse k-means (the PQ uses its own parameters).
    pub seed: u64,
    /// Subsample the coarse training set to `nlist · max_points_per_centroid` rows.
    pub max_points_per_centroid: usize,
    /// The k-means of an inner-product IVF (L2 IVFs always use squared-L2 k-means).
    pub ip_assign: CoarseAssign,
}

/// The k-means of an inner-product IVF's coarse centroids.
///
/// faiss trains them with spherical k-means whose assignment is the `IndexFlatIP` quantizer
/// (largest inner product, centroids normalized after each update), and so does quanta by
/// default. Measured against plain squared-L2 k-means (`benches/ivf_ip_coarse.py`, results in
/// `benches/results/<cpu>/ivf_ip_coarse.md`): on unit-norm embeddings both give the same
/// recall for the same vectors scanned; on vectors whose norms spread, L2 k-means gives more
/// recall at equal nprobe only by making very unbalanced lists (imbalance 9 vs 1) that scan
/// 4–9× more vectors, and less recall than the spherical k-means at equal vectors scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoarseAssign {
    /// faiss's: assignment by largest inner product, centroids normalized after each update.
    Spherical,
    /// Squared-L2 k-means (lists are still assigned by inner product).
    L2,
}

impl Default for IvfTrainParams {
    fn default() -> Self {
        IvfTrainParams {
            niter: 10,
            seed: 1234,
            max_points_per_centroid: 256,
            ip_assign: CoarseAssign::Spherical,
        }
    }
}

/// Offer the keys of one scanned block (`ids[j]` for `out[j]`) to `heap`, skipping rejected
/// ids before they reach it. Ids are arbitrary, so a key equal to the threshold may still win on
/// its id: keys up to and including the threshold are offered.
#[inline]
pub(crate) fn offer(
    lvl: SimdLevel,
    out: &[f32],
    ids: &[i64],
    sel: Option<&IdSelector>,
    heap: &mut TopK,
) {
    let mut j = 0;
    loop {
        j = find_below_with(lvl, out, j, heap.threshold().next_up());
        if j >= out.len() {
            break;
        }
        let id = ids[j];
        if sel.is_none_or(|s| s.accepts(id)) {
            heap.push(out[j], id);
        }
        j += 1;
    }
}

/// Scans the entries of one list for one query (holding the query's tables).
pub(crate) trait ListScanner: Clone + Send + Sync {
    /// Offer every entry of list `list` to `heap`; `coarse_key` is the query's key to the list
    /// centroid (squared L2, or the negated inner product), added by scanners that need it.
    fn scan_list(
        &mut self,
        list: usize,
        coarse_key: f32,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    );

    /// The list the next [`scan_list`](Self::scan_list) call will scan after this one (`None`
    /// after the last): scanners that stream per-list data from memory prefetch it while
    /// they scan the current list.
    fn set_next_list(&mut self, _next: Option<usize>) {}

    /// Size of the collector the scan fills (more than `k` when `finish` re-ranks).
    fn heap_k(&self, k: usize) -> usize {
        k
    }

    /// Turn the scan's collector into the final top-`k` (re-ranking hook; `probes` are the
    /// probed `(list, coarse_key)` pairs).
    fn finish(&mut self, heap: TopK, _probes: &[(usize, f32)], _k: usize) -> TopK {
        heap
    }
}

/// Scan `probes` in order, telling the scanner which list comes next (for its prefetches).
fn scan_probes<S: ListScanner>(
    scanner: &mut S,
    probes: &[(usize, f32)],
    sel: Option<&IdSelector>,
    heap: &mut TopK,
) {
    for (j, &(l, key)) in probes.iter().enumerate() {
        scanner.set_next_list(probes.get(j + 1).map(|p| p.0));
        scanner.scan_list(l, key, sel, heap);
    }
}

/// The order in which a batch's queries are scanned: nearby queries next to each other.
///
/// Why: nearby queries probe mostly the same lists, and a list's data (codes, and for IVFPQ
/// its 32 KiB precomputed table term at PQ32) is then still in cache from the previous query
/// instead of coming from DRAM again (IVFPQ also groups [`LOCALITY_LEAF`] queries and scans
/// them list by list). The order is a recursive median split of the batch along its principal
/// direction, down to leaves of [`LOCALITY_LEAF`] rows (about `6·nq·d·log2(nq / LOCALITY_LEAF)`
/// operations, small next to the search). Deterministic, and
/// each query's result does not depend on when it is scanned, so this changes timing only.
///
/// Below [`LOCALITY_MIN_NPROBE`] probes the split would cost about as much as the scan it
/// speeds up (one ~300-code list per query), so the batch order is kept.
pub(crate) fn locality_order(q: &[f32], d: usize, nprobe: usize) -> Vec<usize> {
    let nq = q.len() / d.max(1);
    let mut order: Vec<usize> = (0..nq).collect();
    if d > 0 && nprobe >= LOCALITY_MIN_NPROBE {
        kd_split(q, d, &mut order);
    }
    order
}

/// Fewest probes per query for which [`locality_order`] reorders the batch (measured on
/// IVF1024,PQ32, AMD EPYC Zen 3: a net loss at nprobe 1-2, a gain from nprobe 8).
const LOCALITY_MIN_NPROBE: usize = 4;

/// Rows per leaf of [`locality_order`] (a multiple of every group size that uses it).
pub(crate) const LOCALITY_LEAF: usize = 8;

/// Power-iteration steps for the splitting direction of [`kd_split`].
const SPLIT_ITERS: usize = 4;

/// Halve `rows` at the median of their projections on (an approximation of) their principal
/// direction, recursively. Axis-aligned splits (a k-d tree on coordinates) barely separate
/// clusters in 128 dimensions — every coordinate overlaps — while the principal direction of a
/// mixture runs between clusters.
fn kd_split(q: &[f32], d: usize, rows: &mut [usize]) {
    if rows.len() <= LOCALITY_LEAF {
        return;
    }
    let x = |i: usize| &q[i * d..(i + 1) * d];
    let mut mean = vec![0f32; d];
    for &i in rows.iter() {
        mean.iter_mut().zip(x(i)).for_each(|(m, &v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= rows.len() as f32);
    // start from the first row's offset: deterministic, and not orthogonal to the spread
    let mut dir: Vec<f32> = x(rows[0]).iter().zip(&mean).map(|(v, m)| v - m).collect();
    for _ in 0..SPLIT_ITERS {
        let mut next = vec![0f32; d];
        for &i in rows.iter() {
            let p: f32 = x(i)
                .iter()
                .zip(&mean)
                .zip(&dir)
                .map(|((v, m), u)| (v - m) * u)
                .sum();
            next.iter_mut()
                .zip(x(i).iter().zip(&mean))
                .for_each(|(n, (v, m))| *n += p * (v - m));
        }
        let norm = next.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            break;
        }
        dir = next.into_iter().map(|v| v / norm).collect();
    }
    // split at a leaf boundary so that leaves never straddle two halves
    let mid = (rows.len() / 2).div_ceil(LOCALITY_LEAF) * LOCALITY_LEAF;
    if mid >= rows.len() {
        return;
    }
    let proj = |i: usize| x(i).iter().zip(&dir).map(|(v, u)| v * u).sum::<f32>();
    let mut keyed: Vec<(f32, usize)> = rows.iter().map(|&i| (proj(i), i)).collect();
    keyed.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (r, (_, i)) in rows.iter_mut().zip(keyed) {
        *r = i;
    }
    let (left, right) = rows.split_at_mut(mid);
    kd_split(q, d, left);
    kd_split(q, d, right);
}

/// Coarse search of a batch (`nq × nprobe` keys as the flat quantizer returns them, list ids
/// with -1 padding).
pub(crate) struct Probes {
    pub nq: usize,
    pub nprobe: usize,
    pub dist: Vec<f32>,
    pub ids: Vec<i64>,
}

/// What IVF indexes share: coarse quantizer, metric, lists.
#[derive(Debug, Clone)]
pub(crate) struct IvfBase<T: Element> {
    pub d: usize,
    pub nlist: usize,
    pub metric: Metric,
    /// Flat index over the centroids; empty until trained.
    pub quantizer: IndexFlat,
    pub lists: InvertedLists<T>,
    /// Type name for errors ("IndexIVFPQ is not trained").
    pub name: &'static str,
    /// Lists probed per query when the search parameters give none (saved with the index).
    pub nprobe: usize,
}

/// Default `nprobe` of every IVF index (faiss: 1); also that of files written before it was
/// saved.
pub const DEFAULT_NPROBE: usize = 1;

impl<T: Element> IvfBase<T> {
    pub fn new(
        d: usize,
        nlist: usize,
        metric: Metric,
        code_len: usize,
        name: &'static str,
    ) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        if nlist == 0 {
            return Err(Error::invalid("nlist must be >= 1"));
        }
        Ok(IvfBase {
            d,
            nlist,
            metric,
            quantizer: IndexFlat::new(d, metric)?,
            lists: InvertedLists::new(nlist, code_len),
            name,
            nprobe: DEFAULT_NPROBE,
        })
    }

    /// Set the default `nprobe` (>= 1; larger than `nlist` probes every list).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        if nprobe == 0 {
            return Err(Error::invalid("nprobe must be >= 1, got 0"));
        }
        self.nprobe = nprobe;
        Ok(())
    }

    pub fn is_trained(&self) -> bool {
        self.quantizer.ntotal() == self.nlist
    }

    pub fn centroids(&self) -> &[f32] {
        self.quantizer.data()
    }

    pub fn centroid(&self, l: usize) -> &[f32] {
        &self.quantizer.data()[l * self.d..(l + 1) * self.d]
    }

    /// `v += c_l`: a decoded residual of list `l` back to a vector.
    pub fn add_centroid(&self, l: usize, v: &mut [f32]) {
        for (a, c) in v.iter_mut().zip(self.centroid(l)) {
            *a += c;
        }
    }

    /// Set the coarse centroids (nlist × d).
    pub fn set_centroids(&mut self, c: &[f32]) -> Result<()> {
        if c.len() != self.nlist * self.d {
            return Err(Error::shape(format!(
                "coarse centroids hold {} values, expected nlist x d = {} x {}",
                c.len(),
                self.nlist,
                self.d
            )));
        }
        let mut q = IndexFlat::new(self.d, self.metric)?;
        q.add(c)?;
        self.quantizer = q;
        Ok(())
    }

    /// Train the coarse centroids with k-means on `x`: squared L2, or for an inner-product IVF
    /// faiss's spherical inner-product k-means as [`IvfTrainParams::ip_assign`] says.
    pub fn train_coarse(
        &mut self,
        x: &[f32],
        params: &IvfTrainParams,
        ctl: &Control,
    ) -> Result<Vec<String>> {
        // k-means checks the values (NaN/Inf) before any use of them: one pass per call
        let n = check_shape(x, self.d, "x")?;
        if n < self.nlist {
            return Err(Error::invalid(format!(
                "x has {n} rows, fewer than nlist={}: cannot train {} coarse centroids",
                self.nlist, self.nlist
            )));
        }
        let mut p = KMeansParams::new(self.nlist);
        p.niter = params.niter.max(1);
        p.seed = params.seed;
        p.max_points_per_centroid = params.max_points_per_centroid.max(1);
        let spherical =
            self.metric == Metric::InnerProduct && params.ip_assign == CoarseAssign::Spherical;
        p.inner_product = spherical;
        p.spherical = spherical;
        let r = kmeans::train(x, self.d, &p, None, ctl)?;
        self.set_centroids(&r.centroids)?;
        Ok(r.warnings)
    }

    /// List of every row of `x` (nearest centroid, lowest index on ties; largest inner
    /// product for that metric). `x` has been checked (shape, finite) by the caller.
    pub fn assign(&self, x: &[f32], ctl: &Control) -> Result<Vec<usize>> {
        if self.metric == Metric::InnerProduct {
            let (_, ids) = self.quantizer.search_prechecked(x, 1, None, ctl)?;
            return Ok(ids.into_iter().map(|i| i as usize).collect());
        }
        // the fused GEMM + argmin of k-means, cheaper than a top-1 search
        let c = self.centroids();
        let (labels, _) = assign_nearest(
            x,
            &row_norms(x, self.d),
            c,
            &row_norms(c, self.d),
            self.d,
            ctl,
        )?;
        Ok(labels.into_iter().map(|l| l as usize).collect())
    }

    /// Checks shared by `add` / `add_with_ids`: trained, batch shape, ids length.
    pub fn check_add(&self, x: &[f32], ids: Option<&[i64]>, what: &'static str) -> Result<usize> {
        if !self.is_trained() {
            return Err(Error::NotTrained(what));
        }
        let n = check_batch(x, self.d, "x")?;
        if let Some(ids) = ids {
            if ids.len() != n {
                return Err(Error::shape(format!(
                    "ids has {} entries, expected one per row of x ({n})",
                    ids.len()
                )));
            }
        }
        Ok(n)
    }

    /// Add `x` in batches: `encode(rows, lists, out)` writes the codes of a batch.
    pub fn add_batched(
        &mut self,
        x: &[f32],
        ids: Option<&[i64]>,
        ctl: &Control,
        encode: impl Fn(&[f32], &[usize], &mut [T], &Control) -> Result<()>,
    ) -> Result<()> {
        let d = self.d;
        let n = x.len() / d;
        let start = self.lists.ntotal() as i64;
        let cl = self.lists.code_len();
        for b0 in (0..n).step_by(ADD_BATCH) {
            let b1 = (b0 + ADD_BATCH).min(n);
            let xb = &x[b0 * d..b1 * d];
            let assign = self.assign(xb, ctl)?;
            let mut codes = vec![T::default(); (b1 - b0) * cl];
            encode(xb, &assign, &mut codes, ctl)?;
            let bid: Vec<i64> = match ids {
                Some(ids) => ids[b0..b1].to_vec(),
                None => (b0..b1).map(|i| start + i as i64).collect(),
            };
            self.lists.append(&assign, &codes, &bid);
        }
        Ok(())
    }

    /// `(list, offset)` of id `id`, or an error naming it.
    pub fn locate(&self, id: i64) -> Result<(usize, usize)> {
        self.lists
            .find(id)
            .ok_or_else(|| Error::invalid(format!("id {id} is not in the index")))
    }

    /// Argument checks and coarse search of a batch: the `nprobe` nearest lists of each query.
    /// `k` is that of a k-NN search (`None` for a range search). The queries are checked for
    /// NaN/Inf here, once: nothing after this checks them again.
    pub fn probe(
        &self,
        q: &[f32],
        k: Option<usize>,
        nprobe: usize,
        ctl: &Control,
    ) -> Result<Probes> {
        if let Some(k) = k {
            check_k(k)?;
        }
        if nprobe == 0 {
            return Err(Error::invalid("nprobe must be >= 1, got 0"));
        }
        if !self.is_trained() {
            return Err(Error::NotTrained(self.name));
        }
        let nq = check_batch(q, self.d, "queries")?;
        let nprobe = nprobe.min(self.nlist);
        if let Some(k) = k {
            result_len(nq, k)?;
        }
        let (dist, ids) = self.quantizer.search_prechecked(q, nprobe, None, ctl)?;
        Ok(Probes {
            nq,
            nprobe,
            dist,
            ids,
        })
    }

    /// Search driver: coarse search, then `scanner` over the probed lists of every query.
    /// Parallel over queries, and over lists when there are fewer queries than threads.
    ///
    /// `make_scanner(query, previous)` gets back the scanner of the previous query handled by
    /// the same worker, so scanners can recycle their buffers: allocating (and filling) fresh
    /// per-query tables measured ~12 % of an IVFPQ search at nprobe = 8.
    pub fn search<S: ListScanner>(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
        make_scanner: impl Fn(&[f32], Option<S>) -> S + Sync,
    ) -> Result<SearchResult> {
        let probes = self.probe(q, Some(k), nprobe, ctl)?;
        let nq = probes.nq;
        let heaps = self.scan_queries(q, &probes, sel, ctl, |_| k, make_scanner, |h| h)?;
        let sign = self.sign();
        let mut dist = vec![0f32; nq * k];
        let mut ids = vec![0i64; nq * k];
        for (i, heap) in heaps {
            let (dq, iq) = (&mut dist[i * k..(i + 1) * k], &mut ids[i * k..(i + 1) * k]);
            heap.write_into(dq, iq, self.metric.pad(), |key| sign * key);
        }
        Ok((dist, ids))
    }

    /// Range-search driver: every entry of the probed lists within `radius` (L2: distance
    /// `< radius`; inner product: similarity `> radius`), as the k-NN search with `k` = the
    /// number of entries in the probed lists would return it, query by query, best first.
    pub fn range_search<S: ListScanner>(
        &self,
        q: &[f32],
        radius: f32,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
        make_scanner: impl Fn(&[f32], Option<S>) -> S + Sync,
    ) -> Result<RangeResult> {
        check_radius(radius)?;
        let probes = self.probe(q, None, nprobe, ctl)?;
        let (sign, within) = (self.sign(), within_fn(self.metric, radius));
        // each query's collector holds every candidate of its probed lists: keep only the hits
        // (best first, so the first miss ends the row) while the others are still scanned
        let hits = |heap: TopK| -> Vec<(f32, i64)> {
            (heap.into_sorted().into_iter())
                .map(|(key, id)| (sign * key, id))
                .take_while(|&(v, _)| within(v))
                .collect()
        };
        let found =
            self.scan_queries(q, &probes, sel, ctl, |cand| cand.max(1), make_scanner, hits)?;
        let mut rows: Vec<Vec<(f32, i64)>> = vec![Vec::new(); probes.nq];
        for (i, row) in found {
            rows[i] = row;
        }
        let mut out = RangeResult {
            lims: Vec::with_capacity(probes.nq + 1),
            ..Default::default()
        };
        out.lims.push(0);
        for row in rows {
            out.dist.extend(row.iter().map(|p| p.0));
            out.ids.extend(row.iter().map(|p| p.1));
            out.lims.push(out.ids.len());
        }
        Ok(out)
    }

    /// +1 (L2), or -1 (inner product): output value = `sign · key`.
    fn sign(&self) -> f32 {
        if self.metric == Metric::InnerProduct {
            -1.0
        } else {
            1.0
        }
    }

    /// The scan of [`search`](Self::search) / [`range_search`](Self::range_search): for every
    /// query `i` (in locality order), `(i, out(collector))`, the collector of its probed lists
    /// holding their best `k_of(candidates)` entries (`candidates`: the entries of its probed
    /// lists).
    #[allow(clippy::too_many_arguments)]
    fn scan_queries<S: ListScanner, R: Send>(
        &self,
        q: &[f32],
        probes: &Probes,
        sel: Option<&IdSelector>,
        ctl: &Control,
        k_of: impl Fn(usize) -> usize + Sync,
        make_scanner: impl Fn(&[f32], Option<S>) -> S + Sync,
        out: impl Fn(TopK) -> R + Sync,
    ) -> Result<Vec<(usize, R)>> {
        let Probes {
            nq,
            nprobe,
            dist: ref cd,
            ids: ref ci,
        } = *probes;
        let sign = self.sign();
        let threads = crate::threads::num_threads().max(1);
        let split = nq < threads && nprobe > 1;
        let d = self.d;
        ctl.set_total(nq as u64);
        let order = locality_order(q, d, nprobe);
        let one = |i: usize, slot: &mut Option<S>| -> Result<(usize, R)> {
            ctl.check()?;
            let mut scanner = make_scanner(&q[i * d..(i + 1) * d], slot.take());
            let probes: Vec<(usize, f32)> = (0..nprobe)
                .filter(|&p| ci[i * nprobe + p] >= 0)
                .map(|p| (ci[i * nprobe + p] as usize, sign * cd[i * nprobe + p]))
                .collect();
            let cand: usize = probes.iter().map(|&(l, _)| self.lists.list_len(l)).sum();
            let k = k_of(cand);
            let hk = scanner.heap_k(k);
            let heap = if split {
                let per = probes.len().div_ceil(2 * threads).max(1);
                let parts: Vec<TopK> = probes
                    .par_chunks(per)
                    .map(|chunk| {
                        let mut s = scanner.clone();
                        let mut h = TopK::with_capacity_hint(hk, cand);
                        scan_probes(&mut s, chunk, sel, &mut h);
                        h
                    })
                    .collect();
                let mut heap = TopK::with_capacity_hint(hk, cand);
                for p in &parts {
                    heap.merge(p);
                }
                heap
            } else {
                let mut heap = TopK::with_capacity_hint(hk, cand);
                scan_probes(&mut scanner, &probes, sel, &mut heap);
                heap
            };
            let heap = scanner.finish(heap, &probes, k);
            *slot = Some(scanner);
            ctl.advance(1);
            Ok((i, out(heap)))
        };
        order
            .par_iter()
            .map_init(|| None, |slot, &i| one(i, slot))
            .collect()
    }

    /// Metadata and sections shared by IVF files.
    pub fn write_meta<'a>(&'a self, w: &mut FileWriter<'a>) {
        w.meta_u64("d", self.d as u64)
            .meta_u64("nlist", self.nlist as u64)
            .meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.lists.ntotal() as u64)
            .meta_u64("nprobe", self.nprobe as u64)
            .section_f32("coarse", self.quantizer.data());
        self.lists.write(w);
    }

    /// Read what [`write_meta`](Self::write_meta) wrote.
    pub fn read_meta(
        r: &FileReader,
        code_len: impl Fn(usize) -> usize,
        name: &'static str,
    ) -> Result<Self> {
        let d = r.meta_usize("d")?;
        let nlist = r.meta_usize("nlist")?;
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        // bound the nlist-sized allocations by what the file really holds before making them
        let n_offsets = r.section_u64("list_offsets")?.len();
        if nlist.checked_add(1) != Some(n_offsets) {
            return Err(r.err(format!(
                "metadata 'nlist' is {nlist} but section 'list_offsets' holds {n_offsets} \
                 entries (expected nlist + 1)"
            )));
        }
        let mut base = IvfBase::new(d, nlist, metric, code_len(d), name).map_err(|e| r.err(e))?;
        let coarse = r.section_f32("coarse")?;
        if !coarse.is_empty() {
            base.set_centroids(&coarse).map_err(|e| r.err(e))?;
        }
        base.lists = InvertedLists::read(r, nlist, code_len(d))?;
        if base.lists.ntotal() != r.meta_usize("ntotal")? {
            return Err(r.err("metadata 'ntotal' does not match the inverted lists"));
        }
        if base.lists.ntotal() > 0 && !base.is_trained() {
            return Err(r.err("the index holds entries but its coarse quantizer is not trained"));
        }
        // files written before nprobe was saved search with the default
        if r.meta("nprobe").is_some() {
            let nprobe = r.meta_usize("nprobe")?;
            if nprobe == 0 {
                return Err(r.err("metadata 'nprobe' is 0"));
            }
            base.nprobe = nprobe;
        }
        Ok(base)
    }
}
