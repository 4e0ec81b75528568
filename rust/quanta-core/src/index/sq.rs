//! `IndexScalarQuantizer`: scalar-quantized codes in memory, exhaustive scan on the codes
//! (faiss `IndexScalarQuantizer`).

use super::pq::scan_row_filtered;
use super::{gather_rows, IdSelector, Index, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::{result_len, scan_row, Metric};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::simd::{level, SimdLevel};
use crate::sq::{QuantizerType, ScalarQuantizer, SqQuery};
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_position};
use rayon::prelude::*;

/// Codes per kernel call: the keys of one block (1 KiB) stay in L1 until offered.
const SCAN_BLOCK: usize = 256;
/// Smallest run of codes worth a separate task when one query is split over threads.
const MIN_SPLIT: usize = 1 << 15;
/// Rows encoded per `compute_codes` call in `add` (bounds temporaries; progress granularity).
const ADD_ROWS: usize = 1 << 16;

/// Scalar-quantized vectors with sequential ids (positions: `remove_ids` renumbers).
///
/// Saved with [`Persist`] as kind `"IndexScalarQuantizer"`: the quantizer's metadata and
/// sections ([`ScalarQuantizer::write_meta`]), `metric`, `ntotal` and a `u8` section `codes`
/// (`ntotal × code_size`), which a memory-mapped load leaves a view of the file.
#[derive(Debug, Clone)]
pub struct IndexScalarQuantizer {
    sq: ScalarQuantizer,
    metric: Metric,
    codes: SharedSlice<u8>,
}

impl IndexScalarQuantizer {
    /// Empty index (untrained for the uniform types).
    pub fn new(d: usize, qtype: QuantizerType, metric: Metric) -> Result<Self> {
        Ok(Self::from_sq(ScalarQuantizer::new(d, qtype)?, metric))
    }

    /// Empty index around a quantizer.
    pub fn from_sq(sq: ScalarQuantizer, metric: Metric) -> Self {
        IndexScalarQuantizer {
            sq,
            metric,
            codes: SharedSlice::new(),
        }
    }

    /// The codec.
    pub fn sq(&self) -> &ScalarQuantizer {
        &self.sq
    }
    /// Dimension.
    pub fn d(&self) -> usize {
        self.sq.d()
    }
    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }
    /// Bytes per stored vector.
    pub fn code_size(&self) -> usize {
        self.sq.code_size()
    }
    /// Number of stored codes.
    pub fn ntotal(&self) -> usize {
        self.codes.len() / self.code_size()
    }
    /// Stored codes, ntotal × code_size.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }
    /// Whether the codes (or the rotation) are still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.codes.is_mapped() || self.sq.is_mapped()
    }
    /// Whether the quantizer is trained.
    pub fn is_trained(&self) -> bool {
        self.sq.is_trained()
    }

    fn require_trained(&self) -> Result<()> {
        if self.sq.is_trained() {
            Ok(())
        } else {
            Err(Error::NotTrained("IndexScalarQuantizer"))
        }
    }

    /// Train the quantizer; refused once codes were added (they would become meaningless).
    pub fn train(&mut self, x: &[f32]) -> Result<Vec<String>> {
        if self.ntotal() > 0 {
            return Err(Error::invalid(
                "cannot train an index that already holds codes: call reset() first",
            ));
        }
        self.sq.train(x)
    }

    /// Encode and append `x` (n × d); ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.require_trained()?;
        let n = check_batch(x, self.d(), "x")?;
        let (d, cs) = (self.d(), self.code_size());
        let codes = self.codes.make_mut();
        let old = codes.len();
        codes
            .try_reserve(n * cs)
            .map_err(|_| Error::invalid(format!("cannot allocate codes for {n} vectors")))?;
        codes.resize(old + n * cs, 0);
        ctl.set_total(n as u64);
        for (xb, cb) in x
            .chunks(ADD_ROWS * d)
            .zip(codes[old..].chunks_mut(ADD_ROWS * cs))
        {
            if let Err(e) = ctl.check().and_then(|_| self.sq.compute_codes(xb, cb)) {
                codes.truncate(old);
                return Err(e);
            }
            ctl.advance((xb.len() / d) as u64);
        }
        Ok(())
    }

    /// Decoded vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (cs, i) = (self.code_size(), check_position(id, self.ntotal())?);
        self.sq.decode(&self.codes[i * cs..(i + 1) * cs])
    }

    /// Remove every code (the quantizer stays trained).
    pub fn reset(&mut self) {
        self.codes = SharedSlice::new();
    }

    /// Remove the codes whose id the selector accepts; later codes move down (ids are
    /// positions, as faiss). Returns how many were removed.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal();
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        self.codes = SharedSlice::from_vec(gather_rows(&self.codes, self.code_size(), &keep));
        n - keep.len()
    }

    /// Offer the keys of `codes` (ids `id0..`) to `heap`, block by block; with a selector only
    /// candidates that would enter are asked about.
    fn scan(
        &self,
        lvl: SimdLevel,
        query: &SqQuery,
        codes: &[u8],
        id0: i64,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    ) {
        let cs = self.code_size();
        let mut buf = [0f32; SCAN_BLOCK];
        for (b, blk) in codes.chunks(SCAN_BLOCK * cs).enumerate() {
            let out = &mut buf[..blk.len() / cs];
            self.sq.distances(lvl, query, blk, out);
            let id_b = id0 + (b * SCAN_BLOCK) as i64;
            match sel {
                None => scan_row(lvl, out, id_b, heap),
                Some(s) => scan_row_filtered(lvl, out, id_b, s, heap),
            }
        }
    }

    /// k nearest stored vectors of each query (faiss layout: squared L2 ascending or inner
    /// products descending, -1 padding), only ids the selector accepts.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        self.require_trained()?;
        let nq = check_batch(q, self.d(), "queries")?;
        let total = result_len(nq, k)?;
        let mut dist = vec![0f32; total];
        let mut ids = vec![0i64; total];
        let lvl = level();
        let (d, cs, n) = (self.d(), self.code_size(), self.ntotal());
        let threads = crate::threads::num_threads().max(1);
        // few queries: also split the codes so every thread has work (as IndexPQ)
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
                let query = self.sq.query(&q[i * d..(i + 1) * d], metric);
                let heap = if splits == 1 {
                    let mut heap = TopK::with_capacity_hint(k, n);
                    for (c, part) in self.codes.chunks(MIN_SPLIT * cs).enumerate() {
                        ctl.check()?;
                        self.scan(lvl, &query, part, (c * MIN_SPLIT) as i64, sel, &mut heap);
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
                            self.scan(lvl, &query, part, (c * run) as i64, sel, &mut h);
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

impl Index for IndexScalarQuantizer {
    crate::index_plumbing!();
    crate::index_forward!(IndexScalarQuantizer; ntotal, is_trained, add, remove_ids, reconstruct, reset, is_mapped);
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.codes.make_mut().extend_from_slice(o.codes());
        Ok(())
    }

    fn d(&self) -> usize {
        self.sq.d()
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn train(&mut self, x: &[f32], _ctl: &Control) -> Result<Vec<String>> {
        IndexScalarQuantizer::train(self, x)
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        IndexScalarQuantizer::search(self, q, k, params.selector.as_ref(), ctl)
    }
}

impl Persist for IndexScalarQuantizer {
    const KIND: &'static str = "IndexScalarQuantizer";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.sq.write_meta(&mut w);
        w.meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal() as u64)
            .section_u8("codes", &self.codes);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let sq = ScalarQuantizer::read_meta(r)?;
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let n = r.meta_usize("ntotal")?;
        let codes = r.section_u8("codes")?;
        if n.checked_mul(sq.code_size()) != Some(codes.len()) {
            return Err(r.err(format!(
                "section 'codes' holds {} bytes, expected ntotal x code_size = {n} x {}",
                codes.len(),
                sq.code_size()
            )));
        }
        if n > 0 && !sq.is_trained() {
            return Err(r.err("the index holds codes but its quantizer is not trained"));
        }
        sq.check_codes(&codes).map_err(|e| r.err(e))?;
        Ok(IndexScalarQuantizer { sq, metric, codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{read_any_bytes, IdSet, IndexFlat};
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn search_filter_persist_remove() {
        let ctl = Control::new();
        let (d, n) = (24, 40_000);
        let x = data(n, d, 1);
        let q = data(3, d, 2);
        let allowed: Vec<i64> = (0..n as i64).filter(|i| i % 3 == 0).collect();
        let sel = IdSelector::Allow(IdSet::from_ids(&allowed));
        for qt in QuantizerType::ALL {
            for metric in [Metric::L2, Metric::InnerProduct] {
                let mut idx = IndexScalarQuantizer::new(d, qt, metric).unwrap();
                if !idx.is_trained() {
                    assert!(matches!(idx.add(&x, &ctl), Err(Error::NotTrained(_))));
                }
                Index::train(&mut idx, &x, &ctl).unwrap();
                idx.add(&x, &ctl).unwrap();
                // nq = 1 splits the scan over threads; both paths give the same answer
                let (d3, i3) = idx.search(&q, 10, None, &ctl).unwrap();
                let (d1, i1) = idx.search(&q[..d], 10, None, &ctl).unwrap();
                assert_eq!((&d3[..10], &i3[..10]), (&d1[..], &i1[..]));
                // the filtered search is the search of the allowed subset
                let mut sub = IndexScalarQuantizer::from_sq(idx.sq().clone(), metric);
                let cs = idx.code_size();
                let mut sc = Vec::new();
                for &i in &allowed {
                    sc.extend_from_slice(&idx.codes()[i as usize * cs..(i as usize + 1) * cs]);
                }
                sub.codes = SharedSlice::from_vec(sc);
                let (dw, iw) = sub.search(&q, 7, None, &ctl).unwrap();
                let iw: Vec<i64> = iw.iter().map(|&i| allowed[i as usize]).collect();
                assert_eq!(idx.search(&q, 7, Some(&sel), &ctl).unwrap(), (dw, iw));
                // round trip through the kind table
                let back = read_any_bytes(&idx.to_bytes().unwrap()).unwrap();
                let p = SearchParams::default();
                assert_eq!(
                    back.search(&q, 5, &p, &ctl).unwrap(),
                    Index::search(&idx, &q, 5, &p, &ctl).unwrap()
                );
                // recall against exact search is sane for every type
                let mut flat = IndexFlat::new(d, metric).unwrap();
                flat.add(&x).unwrap();
                let (_, gt) = flat.search(&q, 1, &ctl).unwrap();
                let (_, got) = idx.search(&q, 50, None, &ctl).unwrap();
                for (qi, g) in gt.iter().enumerate() {
                    assert!(
                        got[qi * 50..(qi + 1) * 50].contains(g),
                        "{qt:?} {metric:?} q{qi}"
                    );
                }
                assert_eq!(idx.remove_ids(&sel), allowed.len());
                assert_eq!(idx.ntotal(), n - allowed.len());
                assert!(idx.search(&q, 0, None, &ctl).is_err());
                assert!(idx.add(&[f32::NAN; 24], &ctl).is_err());
            }
        }
    }

    /// A file whose codes would give NaN/inf distances, or that does not fit its metadata,
    /// is refused at load.
    #[test]
    fn corrupt_files_are_refused() {
        let ctl = Control::new();
        let d = 4;
        let x = data(10, d, 3);
        let write = |idx: &IndexScalarQuantizer, codes: &[u8], n: u64| {
            let mut w = FileWriter::new(IndexScalarQuantizer::KIND);
            idx.sq().write_meta(&mut w);
            w.meta_str("metric", "l2")
                .meta_u64("ntotal", n)
                .section_u8("codes", codes);
            w.to_bytes().unwrap()
        };
        for qt in [QuantizerType::Fp16, QuantizerType::Bf16, QuantizerType::Lm2] {
            let mut idx = IndexScalarQuantizer::new(d, qt, Metric::L2).unwrap();
            idx.add(&x, &ctl).unwrap();
            let good = idx.codes().to_vec();
            assert!(IndexScalarQuantizer::from_bytes(&write(&idx, &good, 10)).is_ok());
            let mut bad = good.clone();
            // all-ones bytes: an inf/NaN half, or a NaN scale factor
            let at = idx.code_size() - 8;
            bad[at..at + 4].fill(0xff);
            let e = IndexScalarQuantizer::from_bytes(&write(&idx, &bad, 10)).unwrap_err();
            assert!(
                e.to_string().contains("inf/NaN") || e.to_string().contains("non-finite"),
                "{e}"
            );
            assert!(IndexScalarQuantizer::from_bytes(&write(&idx, &good, 9)).is_err());
        }
        // codes under an untrained uniform quantizer
        let idx = IndexScalarQuantizer::new(d, QuantizerType::QT8, Metric::L2).unwrap();
        let e = IndexScalarQuantizer::from_bytes(&write(&idx, &[0u8; 8], 2)).unwrap_err();
        assert!(e.to_string().contains("not trained"), "{e}");
    }
}
