//! `IndexPQ`: PQ codes in memory, exhaustive ADC / SDC search (faiss `IndexPQ`).

use super::{gather_rows, IdSelector, Index, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::{result_len, scan_row, Metric};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, MetaValue, Persist, SharedSlice};
use crate::kernels::l2::find_below_with;
use crate::kernels::pq::{adc_block, TABLE_STRIDE};
use crate::pq::{PqTrainParams, PqTrainReport, ProductQuantizer, SearchMode};
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_position};
use rayon::prelude::*;

/// Codes per kernel call: the distances of one block (1 KiB) stay in L1 until filtered.
const SCAN_BLOCK: usize = 256;
/// Smallest run of codes worth a separate task when one query is split over threads.
const MIN_SPLIT: usize = 1 << 15;

/// Product-quantized vectors with sequential ids (positions: `remove_ids` renumbers).
///
/// Saved with [`Persist`] as kind `"IndexPQ"`: the quantizer's metadata and sections, `metric`,
/// `ntotal`, the search defaults `mode` (`"adc"` / `"sdc"`) and `bias_correction` (0 / 1; both
/// optional on read, files written before them default to ADC without correction) and a `u8`
/// section `codes` (`ntotal × code_size`). [`IndexPQ::train_params`] is not saved.
#[derive(Debug, Clone)]
pub struct IndexPQ {
    pq: ProductQuantizer,
    metric: Metric,
    codes: SharedSlice<u8>,
    /// Settings of [`Index::train`] (the explicit [`IndexPQ::train`] takes its own).
    pub train_params: PqTrainParams,
    /// Estimator of searches that pass no `mode` (saved with the index; default ADC).
    pub mode: SearchMode,
    /// Bias correction of searches that pass none (saved; default off; L2 only, see
    /// [`IndexPQ::set_bias_correction`]).
    bias_correction: bool,
}

/// Offer the ADC distances of `codes` (ids `id0..`) to `heap`, block by block; with a
/// selector, a key below the collector's threshold enters only if its id is accepted (the
/// selector is asked for candidates only, so the unfiltered scan is the plain one).
pub(crate) fn scan_codes(
    lvl: SimdLevel,
    table: &[f32],
    m: usize,
    codes: &[u8],
    id0: i64,
    sel: Option<&IdSelector>,
    heap: &mut TopK,
) {
    let mut buf = [0f32; SCAN_BLOCK];
    for (b, blk) in codes.chunks(SCAN_BLOCK * m).enumerate() {
        let out = &mut buf[..blk.len() / m];
        adc_block(table, m, blk, out);
        let id_b = id0 + (b * SCAN_BLOCK) as i64;
        match sel {
            None => scan_row(lvl, out, id_b, heap),
            Some(s) => scan_row_filtered(lvl, out, id_b, s, heap),
        }
    }
}

/// [`scan_row`] offering only the ids `sel` accepts (ids `id0 + j`, increasing: a key below the
/// threshold is exactly a key that would enter, so the selector is asked for those only).
#[inline]
pub(crate) fn scan_row_filtered(
    lvl: SimdLevel,
    row: &[f32],
    id0: i64,
    sel: &IdSelector,
    heap: &mut TopK,
) {
    let mut j = 0;
    loop {
        j = find_below_with(lvl, row, j, heap.threshold());
        if j >= row.len() {
            break;
        }
        let id = id0 + j as i64;
        if sel.accepts(id) {
            heap.push(row[j], id);
        }
        j += 1;
    }
}

/// `"adc"` / `"sdc"`.
pub(crate) fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Adc => "adc",
        SearchMode::Sdc => "sdc",
    }
}

impl IndexPQ {
    /// Empty, untrained index (see [`ProductQuantizer::new`] for the errors).
    pub fn new(d: usize, m: usize, nbits: usize, metric: Metric) -> Result<Self> {
        Ok(Self::from_pq(ProductQuantizer::new(d, m, nbits)?, metric))
    }

    /// Empty index around an existing (trained or not) quantizer.
    pub fn from_pq(pq: ProductQuantizer, metric: Metric) -> Self {
        IndexPQ {
            pq,
            metric,
            codes: SharedSlice::new(),
            train_params: PqTrainParams::default(),
            mode: SearchMode::Adc,
            bias_correction: false,
        }
    }

    /// Bias correction of searches that pass none.
    pub fn bias_correction(&self) -> bool {
        self.bias_correction
    }

    /// Set the default bias correction; `true` is refused for the inner-product metric.
    pub fn set_bias_correction(&mut self, on: bool) -> Result<()> {
        check_bias(on, self.metric)?;
        self.bias_correction = on;
        Ok(())
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
    /// Number of stored codes.
    pub fn ntotal(&self) -> usize {
        self.codes.len() / self.pq.code_size()
    }
    /// Bytes per stored vector.
    pub fn code_size(&self) -> usize {
        self.pq.code_size()
    }
    /// Stored codes, ntotal × code_size.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// Whether the codes are still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.codes.is_mapped()
    }
    /// Whether the quantizer is trained.
    pub fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }

    /// Train the quantizer. Refused once codes were added (they would become meaningless).
    pub fn train(
        &mut self,
        x: &[f32],
        params: &PqTrainParams,
        ctl: &Control,
    ) -> Result<PqTrainReport> {
        if self.ntotal() > 0 {
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
            .map_err(|_| Error::NotTrained("IndexPQ"))?;
        let n = check_batch(x, self.d(), "x")?;
        let cs = self.code_size();
        let codes = self.codes.make_mut();
        let old = codes.len();
        codes
            .try_reserve(n * cs)
            .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
        codes.resize(old + n * cs, 0);
        if let Err(e) = self.pq.encode_into(x, &mut codes[old..], ctl) {
            codes.truncate(old);
            return Err(e);
        }
        Ok(())
    }

    /// Append already-computed codes (n × code_size bytes, validated against ksub).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQ"))?;
        self.pq.check_codes(codes, "codes")?;
        self.codes.make_mut().extend_from_slice(codes);
        Ok(())
    }

    /// Reconstruction (decoded code) of the vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let i = check_position(id, self.ntotal())?;
        let cs = self.code_size();
        self.pq.decode(&self.codes[i * cs..(i + 1) * cs])
    }

    /// Remove every code (the quantizer stays trained).
    pub fn reset(&mut self) {
        self.codes = SharedSlice::new();
    }

    /// Remove the codes whose id the selector accepts; later codes move down (ids are
    /// positions, as faiss `IndexPQ::remove_ids`). Returns how many were removed.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal();
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        self.codes = SharedSlice::from_vec(gather_rows(&self.codes, self.code_size(), &keep));
        n - keep.len()
    }

    /// Scan table of query `x` for `mode`, with bias terms when asked.
    fn query_table(
        &self,
        x: &[f32],
        mode: SearchMode,
        bias: bool,
        table: &mut [f32],
    ) -> Result<()> {
        match mode {
            SearchMode::Adc => self.pq.scan_table(x, self.metric, bias, table),
            SearchMode::Sdc => {
                // the SDC table of x is the ADC table of its reconstruction q(x); q(x) is read
                // off x's own L2 table (nearest centroid = smallest entry, lowest index on ties),
                // one table build instead of setting up the batch encoder for a single row
                self.pq.scan_table(x, Metric::L2, false, table);
                let ks = self.pq.ksub();
                let code: Vec<u8> = table
                    .chunks_exact(TABLE_STRIDE)
                    .map(|row| {
                        let mut best = 0;
                        for (j, &v) in row[..ks].iter().enumerate() {
                            if v < row[best] {
                                best = j;
                            }
                        }
                        best as u8
                    })
                    .collect();
                let mut rec = vec![0f32; self.d()];
                self.pq.decode_into(&code, &mut rec);
                self.pq.scan_table(&rec, self.metric, bias, table);
                if bias {
                    let ks = self.pq.ksub();
                    for (q, row) in table.chunks_exact_mut(TABLE_STRIDE).enumerate() {
                        let xi = self.pq.bias()[q * ks + code[q] as usize];
                        row[..ks].iter_mut().for_each(|t| *t += xi);
                    }
                }
            }
        }
        Ok(())
    }

    /// k nearest stored vectors of each query by the `mode` estimator (faiss layout, -1
    /// padding). `bias_correction` adds the per-centroid mean squared error (L2 only).
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        mode: SearchMode,
        bias_correction: bool,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_filtered(q, k, mode, bias_correction, None, ctl)
    }

    /// [`IndexPQ::search`] returning only ids the selector accepts (applied inside the scan:
    /// rejected codes never take a result slot).
    pub fn search_filtered(
        &self,
        q: &[f32],
        k: usize,
        mode: SearchMode,
        bias_correction: bool,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQ"))?;
        let nq = check_batch(q, self.d(), "queries")?;
        check_bias(bias_correction, self.metric)?;
        let total = result_len(nq, k)?;
        let mut dist = vec![0f32; total];
        let mut ids = vec![0i64; total];
        let lvl = level();
        let (d, m, cs) = (self.d(), self.pq.m(), self.code_size());
        let n = self.ntotal();
        let threads = crate::threads::num_threads().max(1);
        // few queries: also split the codes so every thread has work
        let splits = if nq >= 2 * threads {
            1
        } else {
            (2 * threads).div_ceil(nq.max(1)).min(n / MIN_SPLIT).max(1)
        };
        let run = n.div_ceil(splits).div_ceil(SCAN_BLOCK) * SCAN_BLOCK;
        let metric = self.metric;
        let sign = if metric == Metric::InnerProduct {
            -1.0
        } else {
            1.0
        };
        ctl.set_total(nq as u64);
        dist.par_chunks_mut(k)
            .zip(ids.par_chunks_mut(k))
            .enumerate()
            .try_for_each(|(i, (dq, iq))| -> Result<()> {
                ctl.check()?;
                let mut table = vec![0f32; m * TABLE_STRIDE];
                self.query_table(&q[i * d..(i + 1) * d], mode, bias_correction, &mut table)?;
                let heap = if splits == 1 {
                    let mut heap = TopK::with_capacity_hint(k, n);
                    for (c, part) in self.codes.chunks(MIN_SPLIT * cs).enumerate() {
                        ctl.check()?;
                        let id0 = (c * MIN_SPLIT) as i64;
                        scan_codes(lvl, &table, m, part, id0, sel, &mut heap);
                    }
                    heap
                } else {
                    let parts: Vec<Result<TopK>> = self
                        .codes
                        .par_chunks(run * cs)
                        .enumerate()
                        .map(|(c, part)| {
                            ctl.check()?;
                            let mut h = TopK::with_capacity_hint(k, part.len() / cs);
                            scan_codes(lvl, &table, m, part, (c * run) as i64, sel, &mut h);
                            Ok(h)
                        })
                        .collect();
                    let mut heap = TopK::with_capacity_hint(k, n);
                    for p in parts {
                        heap.merge(&p?);
                    }
                    heap
                };
                heap.write_into(dq, iq, metric.pad(), |key| sign * key);
                ctl.advance(1);
                Ok(())
            })?;
        Ok((dist, ids))
    }
}

fn check_bias(on: bool, metric: Metric) -> Result<()> {
    if on && metric != Metric::L2 {
        return Err(Error::invalid(
            "bias_correction applies to the L2 metric only (it corrects squared distances)",
        ));
    }
    Ok(())
}

impl Index for IndexPQ {
    crate::index_plumbing!();
    crate::index_forward!(IndexPQ; ntotal, add, remove_ids, reconstruct, reset, is_mapped);
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.add_codes(o.codes())
    }

    fn d(&self) -> usize {
        self.pq.d()
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn is_trained(&self) -> bool {
        self.pq.is_trained()
    }
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let params = self.train_params.clone();
        Ok(IndexPQ::train(self, x, &params, ctl)?.warnings)
    }
    /// `params.mode` / `params.bias_correction`, else the index's defaults.
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.search_filtered(
            q,
            k,
            params.mode.unwrap_or(self.mode),
            params.bias_correction.unwrap_or(self.bias_correction),
            params.selector.as_ref(),
            ctl,
        )
    }
}

impl Persist for IndexPQ {
    const KIND: &'static str = "IndexPQ";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.pq.write_meta(&mut w);
        w.meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal() as u64)
            .meta_str("mode", mode_name(self.mode))
            .meta_u64("bias_correction", self.bias_correction as u64)
            .section_u8("codes", &self.codes);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let pq = ProductQuantizer::read_meta(r)?;
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let n = r.meta_usize("ntotal")?;
        let codes = r.section_u8("codes")?;
        if n.checked_mul(pq.code_size()) != Some(codes.len()) {
            return Err(r.err(format!(
                "section 'codes' holds {} bytes, expected ntotal x code_size = {n} x {}",
                codes.len(),
                pq.code_size()
            )));
        }
        if n > 0 && !pq.is_trained() {
            return Err(r.err("the index holds codes but its quantizer is not trained"));
        }
        pq.check_codes(&codes, "codes").map_err(|e| r.err(e))?;
        let mode = match r.meta("mode") {
            None => SearchMode::Adc,
            Some(MetaValue::Str(s)) if s == "adc" => SearchMode::Adc,
            Some(MetaValue::Str(s)) if s == "sdc" => SearchMode::Sdc,
            Some(v) => return Err(r.err(format!("metadata 'mode' is {v:?}, not 'adc' or 'sdc'"))),
        };
        let bias_correction = match r.meta("bias_correction") {
            None => false,
            Some(MetaValue::U64(b @ (0 | 1))) => *b == 1,
            Some(v) => {
                return Err(r.err(format!("metadata 'bias_correction' is {v:?}, not 0 or 1")))
            }
        };
        check_bias(bias_correction, metric).map_err(|e| r.err(e))?;
        Ok(IndexPQ {
            pq,
            metric,
            codes,
            train_params: PqTrainParams::default(),
            mode,
            bias_correction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{read_any_bytes, IdSet};
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    fn trained(d: usize, m: usize, nbits: usize, metric: Metric) -> IndexPQ {
        let mut idx = IndexPQ::new(d, m, nbits, metric).unwrap();
        let p = PqTrainParams {
            niter: 4,
            ..Default::default()
        };
        idx.train(&data(1500, d, 1), &p, &Control::new()).unwrap();
        idx
    }

    #[test]
    fn filtered_search_equals_search_of_the_allowed_subset() {
        let ctl = Control::new();
        let (d, n, nq) = (16, 70_000, 5);
        let x = data(n, d, 2);
        let q = data(nq, d, 3);
        let mut r = Rng::new(4);
        let allowed: Vec<i64> = (0..n as i64).filter(|_| r.below(3) == 0).collect();
        for metric in [Metric::L2, Metric::InnerProduct] {
            let mut idx = trained(d, 4, 6, metric);
            idx.add(&x, &ctl).unwrap();
            let mut sub = IndexPQ::from_pq(idx.pq().clone(), metric);
            for &i in &allowed {
                let i = i as usize;
                sub.add_codes(&idx.codes()[i * 4..(i + 1) * 4]).unwrap();
            }
            let sel = IdSelector::Allow(IdSet::from_ids(&allowed));
            for (mode, bias) in [
                (SearchMode::Adc, false),
                (SearchMode::Sdc, metric == Metric::L2),
            ] {
                // nq = 1: the scan is split over threads; k > 256: the reservoir collector
                for (qs, k) in [(&q[..], 10), (&q[..d], 7), (&q[..2 * d], 300)] {
                    let (dw, iw) = sub.search(qs, k, mode, bias, &ctl).unwrap();
                    let iw: Vec<i64> = iw.iter().map(|&i| allowed[i as usize]).collect();
                    let (dg, ig) = idx
                        .search_filtered(qs, k, mode, bias, Some(&sel), &ctl)
                        .unwrap();
                    assert_eq!(ig, iw);
                    assert_eq!(dg, dw);
                }
            }
            // a deny selector of the complement is the same filter
            let deny = IdSelector::Deny(IdSet::from_mask(
                &(0..n)
                    .map(|i| allowed.binary_search(&(i as i64)).is_err())
                    .collect::<Vec<_>>(),
            ));
            let p = SearchParams::with_selector(Some(deny));
            assert_eq!(
                Index::search(&idx, &q, 10, &p, &ctl).unwrap(),
                idx.search_filtered(&q, 10, SearchMode::Adc, false, Some(&sel), &ctl)
                    .unwrap()
            );
        }
    }

    #[test]
    fn remove_ids_renumbers_like_faiss() {
        let ctl = Control::new();
        let (d, n) = (8, 100);
        let x = data(n, d, 5);
        let mut idx = trained(d, 2, 4, Metric::L2);
        idx.add(&x, &ctl).unwrap();
        let before = idx.codes().to_vec();
        let gone = [3i64, 50, 99, 1000, -1];
        let removed = idx.remove_ids(&IdSelector::Allow(IdSet::from_ids(&gone)));
        assert_eq!(removed, 3);
        assert_eq!(idx.ntotal(), 97);
        let want: Vec<u8> = (0..n)
            .filter(|i| ![3, 50, 99].contains(i))
            .flat_map(|i| before[i * 2..(i + 1) * 2].to_vec())
            .collect();
        assert_eq!(idx.codes(), &want[..]);
        // vector 4 is now id 3
        assert_eq!(
            idx.reconstruct(3).unwrap(),
            idx.pq().decode(&before[8..10]).unwrap()
        );
        assert_eq!(idx.remove_ids(&IdSelector::Allow(IdSet::from_ids(&[]))), 0);
        assert_eq!(idx.remove_ids(&IdSelector::Deny(IdSet::from_ids(&[]))), 97);
        assert_eq!(idx.ntotal(), 0);
    }

    #[test]
    fn search_defaults_are_used_overridden_and_saved() {
        let ctl = Control::new();
        let (d, n) = (8, 300);
        let x = data(n, d, 6);
        let mut idx = trained(d, 2, 4, Metric::L2);
        idx.add(&x, &ctl).unwrap();
        let q = &x[..5 * d];
        let none = SearchParams::default();
        let adc = idx.search(q, 4, SearchMode::Adc, false, &ctl).unwrap();
        let sdc = idx.search(q, 4, SearchMode::Sdc, true, &ctl).unwrap();
        assert_ne!(adc, sdc);
        assert_eq!(Index::search(&idx, q, 4, &none, &ctl).unwrap(), adc);
        idx.mode = SearchMode::Sdc;
        idx.set_bias_correction(true).unwrap();
        assert_eq!(Index::search(&idx, q, 4, &none, &ctl).unwrap(), sdc);
        let p = SearchParams {
            mode: Some(SearchMode::Adc),
            bias_correction: Some(false),
            ..Default::default()
        };
        assert_eq!(Index::search(&idx, q, 4, &p, &ctl).unwrap(), adc);
        // saved with the index, loaded through the kind table
        let back = read_any_bytes(&idx.to_bytes().unwrap()).unwrap();
        let back = back.downcast_ref::<IndexPQ>().unwrap();
        assert_eq!((back.mode, back.bias_correction()), (SearchMode::Sdc, true));
        assert_eq!(Index::search(back, q, 4, &none, &ctl).unwrap(), sdc);
        // a file without them (written before they existed) gets ADC, no correction
        let mut w = FileWriter::new(IndexPQ::KIND);
        idx.pq.write_meta(&mut w);
        w.meta_str("metric", "l2")
            .meta_u64("ntotal", n as u64)
            .section_u8("codes", idx.codes());
        let old = IndexPQ::from_bytes(&w.to_bytes().unwrap()).unwrap();
        assert_eq!((old.mode, old.bias_correction()), (SearchMode::Adc, false));
        // bias correction is refused for inner product, as a default too
        let mut ip = trained(d, 2, 4, Metric::InnerProduct);
        assert!(ip.set_bias_correction(true).is_err());
        assert!(!ip.bias_correction());
        // the trait's train uses the stored settings
        ip.train_params.niter = 2;
        let w = Index::train(&mut ip, &x[..20 * d], &ctl).unwrap();
        assert!(w.is_empty() || w.iter().all(|m| !m.is_empty()));
    }
}
