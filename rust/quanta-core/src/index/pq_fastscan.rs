//! `IndexPQFastScan`: 4-bit PQ codes in the packed block layout, scanned with in-register
//! table shuffles (faiss `IndexPQFastScan`), optional re-ranking with the float ADC tables.

use super::{IdSelector, Index, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::{result_len, Metric};
use crate::error::{Error, Result};
use crate::fastscan::{
    acc_threshold, n_blocks, pack_codes, packed_len, padded_m, scan_blocks, unpack_code, BlockSink,
    HeapSink, QuantizedLuts, ScanPlan, BBS, MAX_M2_WIDE,
};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::kernels::pq::{adc_block, TABLE_STRIDE};
use crate::pq::{PqTrainParams, PqTrainReport, ProductQuantizer};
use crate::simd::level;
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_position};
use rayon::prelude::*;

/// Smallest run of blocks worth a separate task when few queries are split over threads.
const MIN_SPLIT_BLOCKS: usize = 1024;
/// Most queries one task scans together (their u8 tables: 32 × 16·M bytes, in L1/L2).
const MAX_TASK_QUERIES: usize = 32;

/// 4-bit product-quantized vectors with sequential ids (positions: `remove_ids` renumbers),
/// stored as packed 32-vector blocks.
///
/// Saved with [`Persist`] as kind `"IndexPQFastScan"`: the quantizer's metadata and sections,
/// `metric`, `ntotal`, `bbs` (32), `k_factor` and a `u8` section `blocks`
/// (`n_blocks(ntotal) × 16·m2`). [`IndexPQFastScan::train_params`] is not saved.
#[derive(Debug, Clone)]
pub struct IndexPQFastScan {
    pq: ProductQuantizer,
    metric: Metric,
    ntotal: usize,
    blocks: SharedSlice<u8>,
    /// Re-ranking factor of searches that pass none (saved with the index; 1 = none, the
    /// default, as faiss).
    pub k_factor: usize,
    /// Settings of [`Index::train`] (the explicit [`IndexPQFastScan::train`] takes its own).
    pub train_params: PqTrainParams,
}

/// Default re-ranking factor: none (faiss's behaviour; the distances are the fast-scan
/// approximations). `k_factor > 1` re-scores the best `k·k_factor` with the float ADC tables.
pub const DEFAULT_K_FACTOR: usize = 1;

/// The quantizer constraints of every fast-scan index: 4-bit codes, `padded_m(M) <= MAX_M2_WIDE`
/// (4096: past 256 the tables are scaled so the u16 sums stay exact, `crate::fastscan`).
pub(crate) fn check_pq(pq: &ProductQuantizer) -> Result<()> {
    if pq.nbits() != 4 {
        return Err(Error::invalid(format!(
            "fast scan needs nbits=4 (16 centroids per sub-quantizer), got nbits={}",
            pq.nbits()
        )));
    }
    if padded_m(pq.m()) > MAX_M2_WIDE {
        return Err(Error::invalid(format!(
            "fast scan supports M <= {MAX_M2_WIDE} sub-quantizers, got M={}",
            pq.m()
        )));
    }
    Ok(())
}

impl IndexPQFastScan {
    /// Empty, untrained index. Errors: as [`ProductQuantizer::new`], `nbits != 4`, `M > 4096`.
    pub fn new(d: usize, m: usize, nbits: usize, metric: Metric) -> Result<Self> {
        if nbits != 4 {
            return Err(Error::invalid(format!(
                "fast scan needs nbits=4 (16 centroids per sub-quantizer), got nbits={nbits}"
            )));
        }
        Self::from_pq(ProductQuantizer::new(d, m, nbits)?, metric)
    }

    /// Empty index around an existing 4-bit quantizer (trained or not, e.g. faiss centroids
    /// loaded with [`ProductQuantizer::from_centroids`]).
    pub fn from_pq(pq: ProductQuantizer, metric: Metric) -> Result<Self> {
        check_pq(&pq)?;
        Ok(IndexPQFastScan {
            pq,
            metric,
            ntotal: 0,
            blocks: SharedSlice::new(),
            k_factor: DEFAULT_K_FACTOR,
            train_params: PqTrainParams::default(),
        })
    }

    /// The codec.
    pub fn pq(&self) -> &ProductQuantizer {
        &self.pq
    }
    /// Dimension.
    pub fn d(&self) -> usize {
        self.pq.d()
    }
    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }
    /// Number of stored vectors.
    pub fn ntotal(&self) -> usize {
        self.ntotal
    }
    /// Bytes per vector of the code (faiss: `ceil(M·4/8)`); storage adds block padding.
    pub fn code_size(&self) -> usize {
        self.pq.m().div_ceil(2)
    }
    /// Padded sub-quantizer count of the blocks (`M` rounded up to even).
    pub fn m2(&self) -> usize {
        padded_m(self.pq.m())
    }
    /// Packed blocks (`n_blocks(ntotal) × 16·m2` bytes).
    pub fn blocks(&self) -> &[u8] {
        &self.blocks
    }
    /// Whether the blocks are still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.blocks.is_mapped()
    }
    /// Whether the quantizer is trained.
    pub fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }

    /// Train the quantizer. Refused once codes were added.
    pub fn train(
        &mut self,
        x: &[f32],
        params: &PqTrainParams,
        ctl: &Control,
    ) -> Result<PqTrainReport> {
        if self.ntotal > 0 {
            return Err(Error::invalid(
                "cannot train an index that already holds codes: call reset() first",
            ));
        }
        self.pq.train(x, params, ctl)
    }

    /// Encode and append `x` (n × d); ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQFastScan"))?;
        let n = check_batch(x, self.d(), "x")?;
        let codes = self.pq.encode(x, ctl)?;
        self.append(&codes, n)
    }

    /// Append unpacked codes (n × M bytes, each `< 16`, the `ProductQuantizer` layout).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQFastScan"))?;
        let n = self.pq.check_codes(codes, "codes")?;
        self.append(codes, n)
    }

    fn append(&mut self, codes: &[u8], n: usize) -> Result<()> {
        let m = self.pq.m();
        let total = self.ntotal + n;
        let len = packed_len(total, m);
        let blocks = self.blocks.make_mut();
        blocks
            .try_reserve(len.saturating_sub(blocks.len()))
            .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
        blocks.resize(len, 0);
        pack_codes(codes, m, self.ntotal, blocks);
        self.ntotal = total;
        Ok(())
    }

    /// Unpacked codes (ntotal × M bytes).
    pub fn codes(&self) -> Vec<u8> {
        let m = self.pq.m();
        let mut out = vec![0u8; self.ntotal * m];
        for (i, c) in out.chunks_exact_mut(m.max(1)).enumerate() {
            unpack_code(&self.blocks, m, i, c);
        }
        out
    }

    /// Reconstruction (decoded code) of the vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let i = check_position(id, self.ntotal)?;
        let mut code = vec![0u8; self.pq.m()];
        unpack_code(&self.blocks, self.pq.m(), i, &mut code);
        self.pq.decode(&code)
    }

    /// Remove every code (the quantizer stays trained).
    pub fn reset(&mut self) {
        self.blocks = SharedSlice::new();
        self.ntotal = 0;
    }

    /// Remove the vectors whose id the selector accepts; later vectors move down (ids are
    /// positions, as faiss `IndexPQFastScan`). The kept codes are unpacked and packed again
    /// into fresh blocks (O(ntotal · M)). Returns how many were removed.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let (m, n) = (self.pq.m(), self.ntotal);
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        let mut codes = vec![0u8; keep.len() * m];
        for (c, &i) in codes.chunks_exact_mut(m.max(1)).zip(&keep) {
            unpack_code(&self.blocks, m, i, c);
        }
        let mut blocks = vec![0u8; packed_len(keep.len(), m)];
        pack_codes(&codes, m, 0, &mut blocks);
        self.blocks = SharedSlice::from_vec(blocks);
        self.ntotal = keep.len();
        n - keep.len()
    }

    /// k nearest stored vectors of each query. The scan ranks by the quantized-table distance;
    /// with `k_factor > 1`, the best `k·k_factor` are re-scored with the float ADC tables (the
    /// distances `IndexPQ` would return) and the best `k` of those returned. With
    /// `k_factor == 1` the distances are the approximate `β + acc/a` (as faiss returns them).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        k_factor: usize,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_filtered(q, k, k_factor, None, ctl)
    }

    /// [`IndexPQFastScan::search`] returning only ids the selector accepts (applied inside the
    /// scan, before a candidate reaches the collector: rejected vectors never take a slot).
    pub fn search_filtered(
        &self,
        q: &[f32],
        k: usize,
        k_factor: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        if k_factor == 0 {
            return Err(Error::invalid("k_factor must be >= 1"));
        }
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQFastScan"))?;
        let nq = check_batch(q, self.d(), "queries")?;
        let total = result_len(nq, k)?;
        let mut dist = vec![0f32; total];
        let mut ids = vec![0i64; total];
        if nq == 0 {
            return Ok((dist, ids));
        }
        let kk = k.saturating_mul(k_factor);
        let lvl = level();
        let (d, m) = (self.d(), self.pq.m());
        let n = self.ntotal;
        let nb = n_blocks(n);
        let bb = 16 * self.m2();
        let plan = ScanPlan::new(nq, nb, MAX_TASK_QUERIES, MIN_SPLIT_BLOCKS);
        let per_task = plan.per_task;
        let metric = self.metric;
        let sign = if metric == Metric::InnerProduct {
            -1.0
        } else {
            1.0
        };
        ctl.set_total(nq as u64);
        dist.par_chunks_mut(per_task * k)
            .zip(ids.par_chunks_mut(per_task * k))
            .enumerate()
            .try_for_each(|(g, (dg, ig))| -> Result<()> {
                ctl.check()?;
                let q0 = g * per_task;
                let ng = dg.len() / k;
                let mut tables = vec![0f32; ng * m * TABLE_STRIDE];
                for (s, t) in tables.chunks_exact_mut(m * TABLE_STRIDE).enumerate() {
                    let row = &q[(q0 + s) * d..(q0 + s + 1) * d];
                    self.pq.scan_table(row, metric, false, t);
                }
                let luts = QuantizedLuts::for_metric(&tables, ng, m, TABLE_STRIDE, metric);
                let scan = |b0: usize, b1: usize| -> Vec<TopK> {
                    let mut heaps: Vec<TopK> =
                        (0..ng).map(|_| TopK::with_capacity_hint(kk, n)).collect();
                    let nrun = (b1 * BBS).min(n).saturating_sub(b0 * BBS);
                    let id0 = (b0 * BBS) as i64;
                    let run = &self.blocks[b0 * bb..b1 * bb];
                    match sel {
                        None => {
                            let mut sinks: Vec<_> = heaps
                                .iter_mut()
                                .enumerate()
                                .map(|(s, h)| HeapSink::new(h, &luts, s, move |i| id0 + i as i64))
                                .collect();
                            scan_blocks(lvl, &luts, 0, run, nrun, &mut sinks);
                        }
                        Some(sel) => {
                            let mut sinks: Vec<_> = heaps
                                .iter_mut()
                                .enumerate()
                                .map(|(s, h)| FilterSink::new(h, &luts, s, id0, sel))
                                .collect();
                            scan_blocks(lvl, &luts, 0, run, nrun, &mut sinks);
                        }
                    }
                    heaps
                };
                let heaps = plan.scan_all(scan);
                for (s, heap) in heaps.into_iter().enumerate() {
                    let (dq, iq) = (&mut dg[s * k..(s + 1) * k], &mut ig[s * k..(s + 1) * k]);
                    if k_factor == 1 {
                        heap.write_into(dq, iq, metric.pad(), |key| sign * key);
                    } else {
                        let t = &tables[s * m * TABLE_STRIDE..(s + 1) * m * TABLE_STRIDE];
                        let mut best = TopK::with_capacity_hint(k, kk);
                        let mut code = vec![0u8; m];
                        let mut out = [0f32; 1];
                        for (_, id) in heap.into_sorted() {
                            unpack_code(&self.blocks, m, id as usize, &mut code);
                            adc_block(t, m, &code, &mut out);
                            best.push(out[0], id);
                        }
                        best.write_into(dq, iq, metric.pad(), |key| sign * key);
                    }
                }
                ctl.advance(ng as u64);
                Ok(())
            })?;
        Ok((dist, ids))
    }
}

/// [`HeapSink`] with sequential ids that asks `sel` about a candidate only once its key would
/// enter the collector (ids increase along a run, so `key < threshold` is exactly that).
struct FilterSink<'a> {
    heap: &'a mut TopK,
    bias: f32,
    scale: f32,
    id0: i64,
    sel: &'a IdSelector,
}

impl<'a> FilterSink<'a> {
    fn new(
        heap: &'a mut TopK,
        luts: &QuantizedLuts,
        q: usize,
        id0: i64,
        sel: &'a IdSelector,
    ) -> Self {
        FilterSink {
            heap,
            bias: luts.bias(q),
            scale: luts.scale(q),
            id0,
            sel,
        }
    }
}

impl BlockSink for FilterSink<'_> {
    #[inline]
    fn threshold(&self) -> u16 {
        acc_threshold(self.heap.threshold(), self.bias, self.scale)
    }

    #[inline]
    fn push(&mut self, i: usize, acc: u16) {
        let key = self.bias + acc as f32 / self.scale;
        let id = self.id0 + i as i64;
        if key < self.heap.threshold() && self.sel.accepts(id) {
            self.heap.push(key, id);
        }
    }
}

impl Index for IndexPQFastScan {
    crate::index_plumbing!();
    crate::index_forward!(IndexPQFastScan; add, remove_ids, reconstruct, reset, is_mapped);
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.add_codes(&o.codes())
    }

    fn d(&self) -> usize {
        self.pq.d()
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn ntotal(&self) -> usize {
        self.ntotal
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let params = self.train_params.clone();
        Ok(IndexPQFastScan::train(self, x, &params, ctl)?.warnings)
    }
    /// `params.k_factor`, else the index's [`IndexPQFastScan::k_factor`].
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let kf = params.k_factor_or(self.k_factor)?;
        self.search_filtered(q, k, kf, params.selector.as_ref(), ctl)
    }
}

impl Persist for IndexPQFastScan {
    const KIND: &'static str = "IndexPQFastScan";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.pq.write_meta(&mut w);
        w.meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal as u64)
            .meta_u64("bbs", BBS as u64)
            .meta_u64("k_factor", self.k_factor as u64)
            .section_u8("blocks", &self.blocks);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let pq = ProductQuantizer::read_meta(r)?;
        check_pq(&pq).map_err(|e| r.err(e))?;
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let bbs = r.meta_usize("bbs")?;
        if bbs != BBS {
            return Err(r.err(format!("metadata 'bbs' is {bbs}, only {BBS} is supported")));
        }
        let n = r.meta_usize("ntotal")?;
        let blocks = r.section_u8("blocks")?;
        let want = n
            .checked_add(BBS)
            .map(|_| packed_len(n, pq.m()))
            .ok_or_else(|| r.err(format!("metadata 'ntotal' = {n} is too large")))?;
        if blocks.len() != want {
            return Err(r.err(format!(
                "section 'blocks' holds {} bytes, expected {want} for ntotal={n} and M={}",
                blocks.len(),
                pq.m()
            )));
        }
        if n > 0 && !pq.is_trained() {
            return Err(r.err("the index holds codes but its quantizer is not trained"));
        }
        let k_factor = r.meta_usize("k_factor")?;
        if k_factor == 0 {
            return Err(r.err("metadata 'k_factor' is 0"));
        }
        Ok(IndexPQFastScan {
            pq,
            metric,
            ntotal: n,
            blocks,
            k_factor,
            train_params: PqTrainParams::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexPQ;
    use crate::pq::SearchMode;
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn full_rerank_equals_index_pq_and_scan_is_close() {
        let (d, n, nq, k) = (12, 700, 9, 7);
        let x = data(n, d, 1);
        let q = data(nq, d, 2);
        let ctl = Control::new();
        for (m, metric) in [(3, Metric::L2), (4, Metric::InnerProduct), (6, Metric::L2)] {
            let mut fs = IndexPQFastScan::new(d, m, 4, metric).unwrap();
            let params = PqTrainParams {
                niter: 5,
                ..PqTrainParams::default()
            };
            fs.train(&x, &params, &ctl).unwrap();
            // added in two pieces: the second starts inside a partial block
            fs.add(&x[..333 * d], &ctl).unwrap();
            fs.add(&x[333 * d..], &ctl).unwrap();
            let mut pq = IndexPQ::from_pq(fs.pq().clone(), metric);
            pq.add(&x, &ctl).unwrap();
            assert_eq!(fs.codes(), pq.codes());
            // re-ranking every candidate = exhaustive float ADC
            let (dw, iw) = pq.search(&q, k, SearchMode::Adc, false, &ctl).unwrap();
            let (dg, ig) = fs.search(&q, k, n, &ctl).unwrap();
            assert_eq!(ig, iw, "M={m}");
            assert_eq!(dg, dw, "M={m}");
            // the plain scan: approximate distances within M/(2a) of float ADC for its ids
            let (da, ia) = fs.search(&q, k, 1, &ctl).unwrap();
            let same = ia.iter().zip(&iw).filter(|(a, b)| a == b).count();
            assert!(same * 10 >= ia.len() * 6, "M={m}: {same}/{}", ia.len());
            for (&dv, &id) in da.iter().zip(&ia) {
                assert!(id >= 0 && (id as usize) < n && dv.is_finite());
            }
        }
    }

    /// Past M = 256 (4 bits per dimension of 384-d data): the scan, with its u16 thresholds and
    /// SIMD filter, returns exactly the k best of a brute-force evaluation of the same quantized
    /// tables (no candidate lost), the sums are exact (row-maximum sums <= 65535), full
    /// re-ranking equals `IndexPQ`, and the index round-trips through a file.
    #[test]
    fn wide_m_scan_equals_brute_force_of_the_quantized_tables() {
        let (d, n, nq, k) = (384, 1500, 12, 10);
        let x = data(n, d, 7);
        let q = data(nq, d, 8);
        let ctl = Control::new();
        for metric in [Metric::InnerProduct, Metric::L2] {
            let mut fs = IndexPQFastScan::new(d, d, 4, metric).unwrap();
            assert_eq!(fs.m2(), 384);
            let params = PqTrainParams {
                niter: 4,
                ..PqTrainParams::default()
            };
            fs.train(&x, &params, &ctl).unwrap();
            fs.add(&x[..700 * d], &ctl).unwrap();
            fs.add(&x[700 * d..], &ctl).unwrap();
            let m = fs.pq().m();
            let codes = fs.codes();
            let mut tables = vec![0f32; nq * m * TABLE_STRIDE];
            for (s, t) in tables.chunks_exact_mut(m * TABLE_STRIDE).enumerate() {
                fs.pq().scan_table(&q[s * d..(s + 1) * d], metric, false, t);
            }
            let luts = QuantizedLuts::for_metric(&tables, nq, m, TABLE_STRIDE, metric);
            let sign = if metric == Metric::InnerProduct {
                -1.0
            } else {
                1.0
            };
            let (dg, ig) = fs.search(&q, k, 1, &ctl).unwrap();
            for s in 0..nq {
                let lut = luts.lut(s);
                assert!(crate::kernels::fastscan::row_max_sum(lut) <= u16::MAX as u32);
                let mut all: Vec<(f32, i64)> = (0..n)
                    .map(|i| {
                        let acc: u32 = (0..m)
                            .map(|j| lut[16 * j + codes[i * m + j] as usize] as u32)
                            .sum();
                        (luts.to_distance(s, acc as u16), i as i64)
                    })
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let want: Vec<f32> = all[..k].iter().map(|e| sign * e.0).collect();
                assert_eq!(&dg[s * k..(s + 1) * k], &want[..], "{metric:?} q={s}");
                // ids: the same, up to the order of equal keys (and which of several keys tied
                // at the k-th place is kept)
                for (j, &id) in ig[s * k..(s + 1) * k].iter().enumerate() {
                    let key = all.iter().find(|e| e.1 == id).unwrap().0;
                    assert_eq!(sign * key, dg[s * k + j], "{metric:?} q={s} id={id}");
                }
            }
            // re-ranking every candidate = exhaustive float ADC
            let mut pq = IndexPQ::from_pq(fs.pq().clone(), metric);
            pq.add(&x, &ctl).unwrap();
            let (dw, iw) = pq.search(&q, k, SearchMode::Adc, false, &ctl).unwrap();
            let (dr, ir) = fs.search(&q, k, n, &ctl).unwrap();
            assert_eq!((dr, ir), (dw, iw.clone()), "{metric:?}");
            let same = ig.iter().filter(|i| iw.contains(i)).count();
            assert!(same * 10 >= ig.len() * 8, "{metric:?}: {same}/{}", ig.len());
            let back = IndexPQFastScan::from_bytes(&fs.to_bytes().unwrap()).unwrap();
            assert_eq!(back.codes(), codes);
            assert_eq!(back.search(&q, k, 1, &ctl).unwrap(), (dg, ig));
        }
        // the limit: M = 4096 is accepted, M = 4097 (padded 4098) is not
        assert!(IndexPQFastScan::new(4096, 4096, 4, Metric::L2).is_ok());
        let e = IndexPQFastScan::new(4097, 4097, 4, Metric::L2).unwrap_err();
        assert!(e.to_string().contains("M <= 4096"), "{e}");
    }

    #[test]
    fn padding_and_errors() {
        let ctl = Control::new();
        let x = data(40, 8, 3);
        assert!(IndexPQFastScan::new(8, 2, 8, Metric::L2).is_err());
        let mut fs = IndexPQFastScan::new(8, 2, 4, Metric::L2).unwrap();
        assert!(matches!(
            fs.search(&x[..8], 1, 1, &ctl),
            Err(Error::NotTrained(_))
        ));
        fs.train(&x, &PqTrainParams::default(), &ctl).unwrap();
        fs.add(&x[..3 * 8], &ctl).unwrap();
        let (dd, ii) = fs.search(&x[..8], 5, 4, &ctl).unwrap();
        assert_eq!(&ii[3..], &[-1, -1]);
        assert!(dd[4].is_infinite());
        assert!(fs.search(&x[..8], 0, 1, &ctl).is_err());
        assert!(fs.search(&x[..8], 1, 0, &ctl).is_err());
        assert!(fs.reconstruct(3).is_err());
        assert_eq!(fs.reconstruct(2).unwrap().len(), 8);
    }

    #[test]
    fn persist_round_trip_and_inconsistent_files() {
        let ctl = Control::new();
        let x = data(100, 10, 4);
        let mut fs = IndexPQFastScan::new(10, 5, 4, Metric::InnerProduct).unwrap();
        fs.train(&x, &PqTrainParams::default(), &ctl).unwrap();
        fs.add(&x[..45 * 10], &ctl).unwrap();
        let back = IndexPQFastScan::from_bytes(&fs.to_bytes().unwrap()).unwrap();
        assert_eq!(back.ntotal(), 45);
        assert_eq!(back.metric(), Metric::InnerProduct);
        assert_eq!(back.codes(), fs.codes());
        assert_eq!(
            back.search(&x[..30], 4, 2, &ctl).unwrap(),
            fs.search(&x[..30], 4, 2, &ctl).unwrap()
        );
        // a file whose blocks do not match ntotal, or with another block size, is refused
        let bad = |ntotal: u64, bbs: u64| {
            let mut w = FileWriter::new(IndexPQFastScan::KIND);
            fs.pq.write_meta(&mut w);
            w.meta_str("metric", "ip")
                .meta_u64("ntotal", ntotal)
                .meta_u64("bbs", bbs)
                .section_u8("blocks", fs.blocks());
            let e = IndexPQFastScan::from_bytes(&w.to_bytes().unwrap()).unwrap_err();
            assert!(matches!(e, Error::Format(_)), "{e}");
            e.to_string()
        };
        let m = bad(70, 32);
        assert!(m.contains("section 'blocks'"), "{m}");
        let m = bad(45, 64);
        assert!(m.contains("bbs"), "{m}");
    }
}

#[cfg(test)]
mod protocol_tests {
    use super::*;
    use crate::index::{read_any_bytes, IdSet};
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn filtered_search_equals_search_of_the_allowed_subset() {
        let ctl = Control::new();
        let (d, m, n) = (15, 5, 70_000);
        let x = data(n, d, 1);
        let q = data(40, d, 2);
        let mut idx = IndexPQFastScan::new(d, m, 4, Metric::L2).unwrap();
        let p = PqTrainParams {
            niter: 4,
            ..Default::default()
        };
        idx.train(&x[..2000 * d], &p, &ctl).unwrap();
        idx.add(&x, &ctl).unwrap();
        let codes = idx.codes();
        let mut r = Rng::new(3);
        let allowed: Vec<i64> = (0..n as i64).filter(|_| r.below(4) == 0).collect();
        let mut sub = IndexPQFastScan::from_pq(idx.pq().clone(), Metric::L2).unwrap();
        let kept: Vec<u8> = allowed
            .iter()
            .flat_map(|&i| codes[i as usize * m..(i as usize + 1) * m].to_vec())
            .collect();
        sub.add_codes(&kept).unwrap();
        let sel = IdSelector::Allow(IdSet::from_ids(&allowed));
        // 40 queries: several query groups; 1 query: the blocks are split over threads
        for (qs, k, kf) in [
            (&q[..], 10, 1),
            (&q[..d], 10, 1),
            (&q[..], 7, 3),
            (&q[..d], 300, 1),
        ] {
            let (dw, iw) = sub.search(qs, k, kf, &ctl).unwrap();
            let iw: Vec<i64> = iw.iter().map(|&i| allowed[i as usize]).collect();
            let (dg, ig) = idx.search_filtered(qs, k, kf, Some(&sel), &ctl).unwrap();
            assert_eq!(ig, iw, "k={k} kf={kf}");
            assert_eq!(dg, dw, "k={k} kf={kf}");
        }
    }

    #[test]
    fn remove_ids_repacks_and_k_factor_default_is_saved() {
        let ctl = Control::new();
        let (d, m, n) = (9, 3, 100);
        let x = data(n, d, 4);
        let mut idx = IndexPQFastScan::new(d, m, 4, Metric::InnerProduct).unwrap();
        assert_eq!(idx.k_factor, 1);
        idx.train(&data(500, d, 5), &PqTrainParams::default(), &ctl)
            .unwrap();
        idx.add(&x, &ctl).unwrap();
        let before = idx.codes();
        let gone = [0i64, 17, 31, 32, 99];
        let sel = IdSelector::Allow(IdSet::from_ids(&gone));
        assert_eq!(Index::remove_ids(&mut idx, &sel).unwrap(), 5);
        assert_eq!(idx.ntotal(), 95);
        assert_eq!(idx.blocks().len(), packed_len(95, m));
        let want: Vec<u8> = (0..n)
            .filter(|i| !gone.contains(&(*i as i64)))
            .flat_map(|i| before[i * m..(i + 1) * m].to_vec())
            .collect();
        assert_eq!(idx.codes(), want);
        // still appendable after the repack (partial last block)
        idx.add(&x[..d], &ctl).unwrap();
        assert_eq!(idx.codes()[95 * m..], before[..m]);
        // k_factor: the stored default, overridden per call, saved
        idx.k_factor = 5;
        let q = &x[..3 * d];
        let five = idx.search(q, 4, 5, &ctl).unwrap();
        let none = SearchParams::default();
        assert_eq!(Index::search(&idx, q, 4, &none, &ctl).unwrap(), five);
        let one = SearchParams {
            k_factor: Some(1),
            ..Default::default()
        };
        assert_eq!(
            Index::search(&idx, q, 4, &one, &ctl).unwrap(),
            idx.search(q, 4, 1, &ctl).unwrap()
        );
        let back = read_any_bytes(&idx.to_bytes().unwrap()).unwrap();
        let back = back.downcast_ref::<IndexPQFastScan>().unwrap();
        assert_eq!(back.k_factor, 5);
        assert_eq!(Index::search(back, q, 4, &none, &ctl).unwrap(), five);
        let zero = SearchParams {
            k_factor: Some(0),
            ..Default::default()
        };
        assert!(Index::search(&idx, q, 4, &zero, &ctl).is_err());
    }
}
