//! `IndexPQ`: PQ codes in memory, exhaustive ADC / SDC search (faiss `IndexPQ`).

use super::SearchResult;
use crate::control::Control;
use crate::distance::{result_len, scan_row, Metric};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::kernels::pq::{adc_block, TABLE_STRIDE};
use crate::pq::{PqTrainParams, PqTrainReport, ProductQuantizer, SearchMode};
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;
use crate::validate::{check_batch, check_k};
use rayon::prelude::*;

/// Codes per kernel call: the distances of one block (1 KiB) stay in L1 until filtered.
const SCAN_BLOCK: usize = 256;
/// Smallest run of codes worth a separate task when one query is split over threads.
const MIN_SPLIT: usize = 1 << 15;

/// Product-quantized vectors with sequential ids.
#[derive(Debug, Clone)]
pub struct IndexPQ {
    pq: ProductQuantizer,
    metric: Metric,
    codes: SharedSlice<u8>,
}

/// Offer the ADC distances of `codes` (ids `id0..`) to `heap`, block by block.
pub(crate) fn scan_codes(
    lvl: SimdLevel,
    table: &[f32],
    m: usize,
    codes: &[u8],
    id0: i64,
    heap: &mut TopK,
) {
    let mut buf = [0f32; SCAN_BLOCK];
    for (b, blk) in codes.chunks(SCAN_BLOCK * m).enumerate() {
        let out = &mut buf[..blk.len() / m];
        adc_block(table, m, blk, out);
        scan_row(lvl, out, id0 + (b * SCAN_BLOCK) as i64, heap);
    }
}

impl IndexPQ {
    /// Empty, untrained index (see [`ProductQuantizer::new`] for the errors).
    pub fn new(d: usize, m: usize, nbits: usize, metric: Metric) -> Result<Self> {
        Ok(IndexPQ {
            pq: ProductQuantizer::new(d, m, nbits)?,
            metric,
            codes: SharedSlice::new(),
        })
    }

    /// Empty index around an existing (trained or not) quantizer.
    pub fn from_pq(pq: ProductQuantizer, metric: Metric) -> Self {
        IndexPQ {
            pq,
            metric,
            codes: SharedSlice::new(),
        }
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
        let n = self.ntotal();
        if id < 0 || id as usize >= n {
            return Err(Error::invalid(format!("id {id} is out of range [0, {n})")));
        }
        let cs = self.code_size();
        let i = id as usize;
        self.pq.decode(&self.codes[i * cs..(i + 1) * cs])
    }

    /// Remove every code (the quantizer stays trained).
    pub fn reset(&mut self) {
        self.codes = SharedSlice::new();
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
        check_k(k)?;
        self.pq
            .require_trained()
            .map_err(|_| Error::NotTrained("IndexPQ"))?;
        let nq = check_batch(q, self.d(), "queries")?;
        if bias_correction && self.metric != Metric::L2 {
            return Err(Error::invalid(
                "bias_correction applies to the L2 metric only (it corrects squared distances)",
            ));
        }
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
                        scan_codes(lvl, &table, m, part, (c * MIN_SPLIT) as i64, &mut heap);
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
                            scan_codes(lvl, &table, m, part, (c * run) as i64, &mut h);
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

impl Persist for IndexPQ {
    const KIND: &'static str = "IndexPQ";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.pq.write_meta(&mut w);
        w.meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal() as u64)
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
        Ok(IndexPQ { pq, metric, codes })
    }
}
