//! [`IndexLattice`]: lattice codes + asymmetric search.
//!
//! The database is a flat `Vec<u8>` of codes (`code_size` bytes each, row-major). A search
//! decodes the codes tile by tile (`BASE_TILE` rows into a small per-task buffer), multiplies the
//! tile with the query tile (the same blocked inner-product kernel as `IndexFlat`) and feeds the
//! per-query top-k collectors, so the decoded database is never materialized. Decoded vectors have
//! unit norm: inner product ranks by `⟨q, ĉ⟩`, L2 by `‖q‖² + 1 − 2⟨q, ĉ⟩`.
//!
//! Persistence: saved with [`Persist`] as kind `"IndexLattice"`: metadata `codec` (`"zn"` or
//! `"e8shell"`), `d`, `r2` (Zn) or `shells` (E8 shells, comma-separated ascending, e.g.
//! `"1,2"`), `metric`, `ntotal`, and a `u8` section `codes` (`ntotal × code_size`). Loaded with
//! `mmap`, the codes stay a view of the mapped file until the first `add` / `remove_ids` /
//! `reset`.
//!
//! Ids are positions (faiss `IndexFlat` / `IndexPQ` semantics): `remove_ids` renumbers.

use super::{E8ShellCodec, LatticeCodec, ZnSphereCodec};
use crate::control::Control;
use crate::distance::{ip_tile, result_len, Metric, BASE_TILE, QUERY_TILE};
use crate::error::Result;
use crate::index::{gather_rows, IdSelector, Index, SearchParams};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::kernels::l2;
use crate::lattice::zn::check_codes_len;
use crate::simd::level;
use crate::topk::TopK;
use crate::validate::{check_batch, check_k, check_position};
use rayon::prelude::*;

/// Queries per pass over the codes.
const QUERY_BATCH: usize = 4096;

/// Lattice codes with asymmetric (float query vs decoded code) search.
#[derive(Debug, Clone)]
pub struct IndexLattice {
    codec: LatticeCodec,
    metric: Metric,
    codes: SharedSlice<u8>,
}

/// (distances nq×k, ids nq×k), faiss layout.
pub type SearchResult = (Vec<f32>, Vec<i64>);

impl IndexLattice {
    /// Empty index over `codec`.
    pub fn new(codec: LatticeCodec, metric: Metric) -> Self {
        IndexLattice {
            codec,
            metric,
            codes: SharedSlice::new(),
        }
    }

    /// The codec.
    pub fn codec(&self) -> &LatticeCodec {
        &self.codec
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.codec.d()
    }

    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Bytes per stored code.
    pub fn code_size(&self) -> usize {
        self.codec.code_size()
    }

    /// Number of stored codes.
    pub fn ntotal(&self) -> usize {
        self.codes.len() / self.code_size()
    }

    /// Stored codes, row-major (`ntotal × code_size`).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// Whether the codes are a view of a memory-mapped file (until the first modification).
    pub fn is_mapped(&self) -> bool {
        self.codes.is_mapped()
    }

    /// Encode and append the rows of `x` (n × d).
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        let c = self.codec.encode(x, ctl)?;
        self.codes.make_mut().extend_from_slice(&c);
        Ok(())
    }

    /// Append already-encoded codes (each checked against the codec's `nv`).
    pub fn add_codes(&mut self, codes: &[u8]) -> Result<()> {
        let cs = self.code_size();
        check_codes_len(codes, cs)?;
        let mut buf = vec![0f32; self.d()];
        for (i, c) in codes.chunks_exact(cs).enumerate() {
            self.codec.decode_rows(c, &mut buf, i)?;
        }
        self.codes.make_mut().extend_from_slice(codes);
        Ok(())
    }

    /// Decoded (unit-norm) vector of id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (cs, i) = (self.code_size(), check_position(id, self.ntotal())?);
        let mut out = vec![0f32; self.d()];
        self.codec
            .decode_rows(&self.codes[i * cs..(i + 1) * cs], &mut out, i)?;
        Ok(out)
    }

    /// Remove every code.
    pub fn reset(&mut self) {
        self.codes = SharedSlice::new();
    }

    /// Remove the codes whose id the selector accepts; later codes move down (ids are
    /// positions). Returns how many were removed.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal();
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        self.codes = SharedSlice::from_vec(gather_rows(&self.codes, self.code_size(), &keep));
        n - keep.len()
    }

    /// k best stored codes of each query; padded with (`metric.pad()`, -1) when `k > ntotal`.
    pub fn search(&self, q: &[f32], k: usize, ctl: &Control) -> Result<SearchResult> {
        self.search_filtered(q, k, None, ctl)
    }

    /// [`IndexLattice::search`] returning only ids the selector accepts (applied inside the
    /// scan: rejected codes never take a result slot).
    pub fn search_filtered(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        let d = self.d();
        let nq = check_batch(q, d, "queries")?;
        let total = result_len(nq, k)?;
        let mut dist = Vec::with_capacity(total);
        let mut ids = Vec::with_capacity(total);
        let n = self.ntotal();
        let nchunks = n.div_ceil(self.chunk_rows());
        ctl.set_total((nq.div_ceil(QUERY_BATCH) * nchunks) as u64);
        for q0 in (0..nq).step_by(QUERY_BATCH) {
            let q1 = (q0 + QUERY_BATCH).min(nq);
            let (dd, ii) = self.search_batch(&q[q0 * d..q1 * d], k, sel, ctl)?;
            dist.extend_from_slice(&dd);
            ids.extend_from_slice(&ii);
        }
        Ok((dist, ids))
    }

    /// Codes per parallel task: a multiple of `BASE_TILE`, so tiles (and hence every score)
    /// are the same whatever the thread count.
    fn chunk_rows(&self) -> usize {
        let n = self.ntotal().max(1);
        let threads = crate::threads::num_threads().max(1);
        n.div_ceil(threads * 4).max(1).div_ceil(BASE_TILE) * BASE_TILE
    }

    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let d = self.d();
        let cs = self.code_size();
        let nq = queries.len() / d;
        let n = self.ntotal();
        let lvl = level();
        let metric = self.metric;
        let mut dist = vec![metric.pad(); nq * k];
        let mut ids = vec![-1i64; nq * k];
        let kk = k.min(n.max(1));
        if nq == 0 {
            return Ok((dist, ids));
        }
        let chunk = self.chunk_rows();
        let nchunks = n.div_ceil(chunk);
        let partial: Vec<Result<Vec<TopK>>> = (0..nchunks)
            .into_par_iter()
            .map(|c| {
                let lo = c * chunk;
                let hi = (lo + chunk).min(n);
                let mut heaps: Vec<TopK> = (0..nq)
                    .map(|_| TopK::with_capacity_hint(kk, hi - lo))
                    .collect();
                let mut dec = vec![0f32; BASE_TILE * d];
                let mut tile = vec![0f32; QUERY_TILE * BASE_TILE];
                let mut b0 = lo;
                while b0 < hi {
                    ctl.check()?;
                    let b1 = (b0 + BASE_TILE).min(hi);
                    let nb = b1 - b0;
                    let btile = &mut dec[..nb * d];
                    self.codec
                        .decode_rows(&self.codes[b0 * cs..b1 * cs], btile, b0)?;
                    for q0 in (0..nq).step_by(QUERY_TILE) {
                        let q1 = (q0 + QUERY_TILE).min(nq);
                        let t = &mut tile[..(q1 - q0) * nb];
                        ip_tile(lvl, &queries[q0 * d..q1 * d], btile, d, t);
                        for (r, row) in t.chunks_exact_mut(nb).enumerate() {
                            // smaller is better: 1 − 2ip (‖q‖² added at the end) or −ip
                            match metric {
                                Metric::L2 => row.iter_mut().for_each(|v| *v = 1.0 - 2.0 * *v),
                                Metric::InnerProduct => row.iter_mut().for_each(|v| *v = 0.0 - *v),
                            }
                            let heap = &mut heaps[q0 + r];
                            // ids increase along the row: a key below the threshold is one that
                            // would enter, the only ones the selector is asked about
                            let mut j = 0;
                            loop {
                                j = l2::find_below_with(lvl, row, j, heap.threshold());
                                if j >= nb {
                                    break;
                                }
                                let id = (b0 + j) as i64;
                                if sel.is_none_or(|s| s.accepts(id)) {
                                    heap.push(row[j], id);
                                }
                                j += 1;
                            }
                        }
                    }
                    b0 = b1;
                }
                ctl.advance(1);
                Ok(heaps)
            })
            .collect();
        let mut merged: Option<Vec<TopK>> = None;
        for p in partial {
            let p = p?;
            match &mut merged {
                None => merged = Some(p),
                Some(m) => m.iter_mut().zip(p.iter()).for_each(|(a, b)| a.merge(b)),
            }
        }
        let merged = merged.unwrap_or_else(|| (0..nq).map(|_| TopK::new(kk)).collect());
        for (qi, ((h, dq), iq)) in merged
            .into_iter()
            .zip(dist.chunks_exact_mut(k))
            .zip(ids.chunks_exact_mut(k))
            .enumerate()
        {
            match metric {
                Metric::L2 => {
                    let qv = &queries[qi * d..(qi + 1) * d];
                    let qn = l2::inner_product_with(lvl, qv, qv);
                    h.write_into(dq, iq, f32::INFINITY, |key| (qn + key).max(0.0))
                }
                Metric::InnerProduct => h.write_into(dq, iq, f32::NEG_INFINITY, |key| 0.0 - key),
            }
        }
        Ok((dist, ids))
    }
}

impl Index for IndexLattice {
    crate::index_plumbing!();
    crate::index_forward!(IndexLattice; ntotal, add, remove_ids, reconstruct, reset, is_mapped);

    fn d(&self) -> usize {
        self.codec.d()
    }
    fn metric(&self) -> Metric {
        self.metric
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

impl Persist for IndexLattice {
    const KIND: &'static str = "IndexLattice";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        match &self.codec {
            LatticeCodec::Zn(c) => {
                w.meta_str("codec", "zn").meta_u64("r2", c.r2() as u64);
            }
            LatticeCodec::E8Shell(c) => {
                let shells: Vec<String> = c.shells().iter().map(|m| m.to_string()).collect();
                w.meta_str("codec", "e8shell")
                    .meta_str("shells", &shells.join(","));
            }
        }
        w.meta_u64("d", self.d() as u64)
            .meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal() as u64)
            .section_u8("codes", &self.codes);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let d = r.meta_usize("d")?;
        let codec = match r.meta_str("codec")? {
            "zn" => {
                let r2 = r.meta_u64("r2")?;
                let r2 = u32::try_from(r2)
                    .map_err(|_| r.err(format!("metadata 'r2' is {r2}, out of range")))?;
                LatticeCodec::Zn(ZnSphereCodec::new(d, r2).map_err(|e| r.err(e))?)
            }
            "e8shell" => {
                let s = r.meta_str("shells")?;
                let shells = s
                    .split(',')
                    .map(|m| {
                        m.parse::<u32>()
                            .ok()
                            .filter(|_| m.bytes().all(|b| b.is_ascii_digit()))
                    })
                    .collect::<Option<Vec<u32>>>()
                    .ok_or_else(|| {
                        r.err(format!("metadata 'shells' is {s:?}, not a list of shells"))
                    })?;
                let c = E8ShellCodec::new(d, &shells).map_err(|e| r.err(e))?;
                if c.shells() != &shells[..] {
                    return Err(r.err(format!(
                        "metadata 'shells' is {s:?}, not in increasing order"
                    )));
                }
                LatticeCodec::E8Shell(c)
            }
            other => {
                return Err(r.err(format!(
                    "metadata 'codec' is {other:?}, not 'zn' or 'e8shell'"
                )))
            }
        };
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let n = r.meta_usize("ntotal")?;
        let codes = r.section_u8("codes")?;
        let cs = codec.code_size();
        if n.checked_mul(cs) != Some(codes.len()) {
            return Err(r.err(format!(
                "section 'codes' holds {} bytes, expected ntotal x code_size = {n} x {cs}",
                codes.len()
            )));
        }
        codec.check_codes(&codes).map_err(|e| r.err(e))?;
        Ok(IndexLattice {
            codec,
            metric,
            codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn search_matches_brute_force_over_decoded() {
        let ctl = Control::new();
        let mut r = Rng::new(1);
        let d = 16;
        let x: Vec<f32> = (0..d * 3000).map(|_| r.normal() as f32).collect();
        let q: Vec<f32> = (0..d * 7).map(|_| r.normal() as f32).collect();
        for codec in [
            LatticeCodec::Zn(ZnSphereCodec::new(d, 10).unwrap()),
            LatticeCodec::E8Shell(E8ShellCodec::new(d, &[1, 2]).unwrap()),
        ] {
            for metric in [Metric::InnerProduct, Metric::L2] {
                let mut idx = IndexLattice::new(codec.clone(), metric);
                idx.add(&x, &ctl).unwrap();
                assert_eq!(idx.ntotal(), 3000);
                let dec = codec.decode(idx.codes(), &ctl).unwrap();
                let (dd, ii) = idx.search(&q, 5, &ctl).unwrap();
                for (qi, qv) in q.chunks_exact(d).enumerate() {
                    let mut s: Vec<(f64, i64)> = dec
                        .chunks_exact(d)
                        .enumerate()
                        .map(|(j, v)| {
                            let ip: f64 = qv.iter().zip(v).map(|(a, b)| (a * b) as f64).sum();
                            (if metric == Metric::L2 { -2.0 * ip } else { -ip }, j as i64)
                        })
                        .collect();
                    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    for j in 0..5 {
                        let want = s[j];
                        let got = ii[qi * 5 + j];
                        assert!(got == want.1 || (s[j].0 - s[j + 1].0).abs() < 1e-4);
                    }
                    assert!(dd[qi * 5] >= dd[qi * 5 + 4] || metric == Metric::L2);
                }
                let (_, i2) = idx.search(&q, 4000, &ctl).unwrap();
                assert_eq!(i2[3999], -1);
                assert_eq!(idx.reconstruct(3).unwrap(), dec[3 * d..4 * d].to_vec());
                let mut other = IndexLattice::new(codec.clone(), metric);
                other.add_codes(idx.codes()).unwrap();
                assert_eq!(other.codes(), idx.codes());
                assert!(other.add_codes(&[1]).is_err() || codec.code_size() == 1);
            }
        }
    }
}

#[cfg(test)]
mod protocol_tests {
    use super::*;
    use crate::index::{read_any_bytes, IdSet};
    use crate::rng::Rng;

    #[test]
    fn filters_remove_ids_and_mmap_view() {
        let ctl = Control::new();
        let mut r = Rng::new(9);
        let d = 16;
        let n = 5000;
        let x: Vec<f32> = (0..d * n).map(|_| r.normal() as f32).collect();
        let q: Vec<f32> = (0..d * 4).map(|_| r.normal() as f32).collect();
        let codec = LatticeCodec::Zn(ZnSphereCodec::new(d, 10).unwrap());
        let cs = codec.code_size();
        let mut idx = IndexLattice::new(codec.clone(), Metric::L2);
        idx.add(&x, &ctl).unwrap();
        let allowed: Vec<i64> = (0..n as i64).filter(|i| i % 3 != 1).collect();
        let sel = IdSelector::Allow(IdSet::from_ids(&allowed));
        let (dg, ig) = idx.search_filtered(&q, 10, Some(&sel), &ctl).unwrap();
        assert!(ig.iter().all(|&i| i % 3 != 1));
        // the same as an index of the allowed codes only (ids mapped back)
        let mut sub = IndexLattice::new(codec, Metric::L2);
        for &i in &allowed {
            let i = i as usize;
            sub.add_codes(&idx.codes()[i * cs..(i + 1) * cs]).unwrap();
        }
        let (dw, iw) = sub.search(&q, 10, &ctl).unwrap();
        for (a, b) in dg.iter().zip(&dw) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} {b}");
        }
        let iw: Vec<i64> = iw.iter().map(|&i| allowed[i as usize]).collect();
        let same = ig.iter().zip(&iw).filter(|(a, b)| a == b).count();
        assert!(same + 2 >= ig.len(), "{same}/{}", ig.len());
        // remove_ids: positions renumber
        let before = idx.codes().to_vec();
        let gone = IdSelector::Allow(IdSet::from_ids(&[0, 2, 4999]));
        assert_eq!(Index::remove_ids(&mut idx, &gone).unwrap(), 3);
        assert_eq!(idx.ntotal(), n - 3);
        assert_eq!(idx.codes()[..cs], before[cs..2 * cs]);
        assert_eq!(idx.codes()[cs..2 * cs], before[3 * cs..4 * cs]);
        // through the kind table
        let back = read_any_bytes(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(back.kind(), "IndexLattice");
        assert_eq!(
            back.search(&q, 5, &SearchParams::default(), &ctl).unwrap(),
            idx.search(&q, 5, &ctl).unwrap()
        );
    }
}
