//! `IndexIVFRaBitQ`: inverted lists of RaBitQ codes, each vector coded around its list's
//! centroid (faiss `IndexIVFRaBitQ`, factory `IVF{nlist},RaBitQ[{nbits}]`).
//!
//! Why around the list centroid: the estimator's error scales with `‖x − c‖·‖q − c‖`
//! (Gao & Long 2024, Thm 3.2), and both are much smaller for the list's own centroid than for
//! one global mean. The codec is the flat index's ([`RaBitQ`]) with the origin as its
//! centroid; `add` codes `x` against `c_l` ([`RaBitQ::encode_around`]), a search forms each
//! probed list's query terms from `P q − P c_l` (the rotated query once per query, the rotated
//! centroids once per index: d operations per list instead of a d² rotation).
//!
//! Entries hold the standalone code layout ([`RaBitQ::code_size`] bytes: every bit plane
//! packed LSB-first — the sign plane is the bit vector of the rotated residual's signs — then
//! the factors). The scan sums each plane over the query's nibble table (exact floats, no
//! quantized query). With more than one bit, the sign plane's 1-bit estimate and the bound of
//! both estimators (`ε₀ ‖q'‖ (e₁ + e_B)`, as in the flat index's bound-pruned mode) give a
//! lower bound of the key first; the lower planes are read only for the vectors it does not
//! rule out, so a multi-bit scan costs little more than a 1-bit one.

use super::{IdSelector, IvfBase, IvfTrainParams, ListScanner};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::index::{Index, RangeResult, SearchParams, SearchResult};
use crate::io::{FileReader, FileWriter, Persist};
use crate::rabitq::{QueryTerms, RaBitQ, DEFAULT_EPSILON};
use crate::topk::TopK;
use crate::validate::check_batch;

/// Inverted file over RaBitQ codes (faiss `IndexIVFRaBitQ`, extended to `nbits` 1..=8).
///
/// Through [`Index`]: `train` trains the coarse quantizer ([`train_params`](Self::train_params);
/// the codec needs no training), `search` probes [`SearchParams::nprobe`] lists or else
/// [`nprobe`](Self::nprobe) (saved with the index).
#[derive(Debug, Clone)]
pub struct IndexIVFRaBitQ {
    base: IvfBase<u8>,
    codec: RaBitQ,
    /// `P c_l` of every list centroid (`nlist × d`; empty until trained), derived.
    rotated_centroids: Vec<f32>,
    /// ε₀ of the multi-bit pruning bound (saved; the flat index's default).
    epsilon: f32,
    train_params: IvfTrainParams,
}

impl IndexIVFRaBitQ {
    /// Empty, untrained index; `seed` draws the rotation.
    pub fn new(d: usize, nlist: usize, nbits: usize, metric: Metric, seed: u64) -> Result<Self> {
        let codec = RaBitQ::around_origin(d, nbits, metric, seed)?;
        Ok(IndexIVFRaBitQ {
            base: IvfBase::new(d, nlist, metric, codec.code_size(), "IndexIVFRaBitQ")?,
            codec,
            rotated_centroids: Vec::new(),
            epsilon: DEFAULT_EPSILON,
            train_params: IvfTrainParams::default(),
        })
    }

    /// Trained, empty index from given coarse centroids (`nlist × d`).
    pub fn from_centroids(
        coarse: &[f32],
        d: usize,
        nbits: usize,
        metric: Metric,
        seed: u64,
    ) -> Result<Self> {
        if d == 0 || coarse.is_empty() || !coarse.len().is_multiple_of(d) {
            return Err(Error::shape(format!(
                "coarse centroids hold {} values, not a non-empty multiple of d={d}",
                coarse.len()
            )));
        }
        crate::distance::check_finite(coarse, d, "coarse centroids")?;
        let mut idx = Self::new(d, coarse.len() / d, nbits, metric, seed)?;
        idx.base.set_centroids(coarse)?;
        idx.rotate_centroids();
        Ok(idx)
    }

    fn rotate_centroids(&mut self) {
        let c = self.base.centroids();
        let mut out = vec![0f32; c.len()];
        if !c.is_empty() {
            self.codec.rotation().apply(c, &mut out);
        }
        self.rotated_centroids = out;
    }

    super::ivf_base_accessors!(u8);

    /// Bits per dimension.
    pub fn nbits(&self) -> usize {
        self.codec.nbits()
    }
    /// Bytes per stored code (planes and factors).
    pub fn code_size(&self) -> usize {
        self.codec.code_size()
    }
    /// The codec (its centroid is the origin: each list supplies its own).
    pub fn codec(&self) -> &RaBitQ {
        &self.codec
    }
    /// Whether the coarse quantizer is trained.
    pub fn is_trained(&self) -> bool {
        self.base.is_trained()
    }
    /// Whether some list is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.base.lists.is_mapped() || self.codec.rotation().is_mapped()
    }
    /// ε₀ of the multi-bit pruning bound.
    pub fn epsilon(&self) -> f32 {
        self.epsilon
    }
    /// Set ε₀ (finite, in `[0, 100]`; larger prunes less: 1.9 misses a true candidate with
    /// probability about 1e-3 per vector and bound, [`crate::rabitq::failure_probability`]).
    pub fn set_epsilon(&mut self, epsilon: f32) -> Result<()> {
        if !(epsilon.is_finite() && (0.0..=100.0).contains(&epsilon)) {
            return Err(Error::invalid(format!(
                "epsilon must be a finite number in [0, 100], got {epsilon}"
            )));
        }
        self.epsilon = epsilon;
        Ok(())
    }
    /// Train the coarse centroids (refused while the index holds vectors).
    pub fn train(
        &mut self,
        x: &[f32],
        params: &IvfTrainParams,
        ctl: &Control,
    ) -> Result<Vec<String>> {
        if self.ntotal() > 0 {
            return Err(Error::invalid(
                "cannot train an index that already holds entries: call reset() first",
            ));
        }
        let w = self.base.train_coarse(x, params, ctl)?;
        self.rotate_centroids();
        Ok(w)
    }

    /// Add `x`; ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.add_impl(x, None, ctl)
    }

    /// Add `x` with the given ids (one per row).
    pub fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        self.add_impl(x, Some(ids), ctl)
    }

    fn add_impl(&mut self, x: &[f32], ids: Option<&[i64]>, ctl: &Control) -> Result<()> {
        self.base.check_add(x, ids, "IndexIVFRaBitQ")?;
        let codec = self.codec.clone();
        let cents = self.base.centroids().to_vec();
        let d = self.d();
        self.base.add_batched(x, ids, ctl, |xb, assign, out, ctl| {
            let of = |i: usize| &cents[assign[i] * d..(assign[i] + 1) * d];
            let e = codec.encode_around(xb, &of, ctl)?;
            out.copy_from_slice(&codec.to_flat(&e));
            Ok(())
        })
    }

    /// Approximate vector of id `id`: its list centroid plus the decoded residual.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (l, o) = self.base.locate(id)?;
        let cs = self.code_size();
        let e = self
            .codec
            .from_flat(&self.base.lists.codes(l)[o * cs..(o + 1) * cs])?;
        let mut out = vec![0f32; self.d()];
        self.codec.decode_one(&e.signs, &e.ex, &e.factors, &mut out);
        self.base.add_centroid(l, &mut out);
        Ok(out)
    }

    /// k nearest stored vectors of each query (by the estimated distance) among the `nprobe`
    /// nearest lists, restricted to the ids `sel` accepts.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let rq = self.rotated_queries(q)?;
        self.base.search(q, k, nprobe, sel, ctl, |x, prev| {
            self.scanner(q, &rq, x, prev)
        })
    }

    /// `P q` of every query, as one matrix product: rotating each query alone (a one-row
    /// product) measured ~15 % of a 384-d search at nprobe 32.
    fn rotated_queries(&self, q: &[f32]) -> Result<Vec<f32>> {
        check_batch(q, self.d(), "queries")?;
        let mut out = vec![0f32; q.len()];
        self.codec.rotation().apply(q, &mut out);
        Ok(out)
    }

    /// The scanner of query `x`, a row of the batch `q` whose rotations are `rq`.
    fn scanner<'a>(
        &'a self,
        q: &[f32],
        rq: &[f32],
        x: &[f32],
        prev: Option<Scanner<'a>>,
    ) -> Scanner<'a> {
        let d = self.d();
        let mut s = prev.unwrap_or_else(|| Scanner {
            idx: self,
            q: Vec::new(),
            rq: vec![0f32; d],
            res: vec![0f32; d],
        });
        s.q.clear();
        s.q.extend_from_slice(x);
        // the search drivers hand out rows of `q`: the row number is the pointer offset
        let row = (x.as_ptr() as usize).wrapping_sub(q.as_ptr() as usize) / (4 * d);
        match rq.get(row * d..(row + 1) * d) {
            Some(r) if std::ptr::eq(x.as_ptr(), q[row * d..].as_ptr()) => s.rq.copy_from_slice(r),
            _ => self.codec.rotation().apply_one(x, &mut s.rq),
        }
        s
    }

    /// Check what a file's lists hold: finite factors with the signs the metric allows.
    fn check_lists(&self) -> Result<()> {
        let (nf, cs) = (self.codec.nf(), self.code_size());
        let off = cs - 4 * nf;
        let mut f = Vec::new();
        for l in 0..self.nlist() {
            f.clear();
            for code in self.base.lists.codes(l).chunks_exact(cs) {
                f.extend((0..nf).map(|j| factor(code, off, j)));
            }
            crate::rabitq::check_factors(&f, nf, self.metric(), "list_codes")?;
        }
        Ok(())
    }
}

/// Factor `j` of a standalone code whose factors start at byte `off`.
#[inline]
fn factor(code: &[u8], off: usize, j: usize) -> f32 {
    let b = &code[off + 4 * j..off + 4 * j + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// `Σ_g T[16 g + nibble_g]` over one packed plane (two nibbles per byte, low first; `m` groups).
#[inline]
fn plane_sum(table: &[f32], plane: &[u8], m: usize) -> f32 {
    // eight accumulators over 4-byte (8-group) steps: the walk is a chain of dependent adds
    // on fewer (measured: 2 accumulators ~95 ns per 384-d vector, latency-bound); the fixed
    // 128-entry windows let the compiler drop the bounds checks
    let (t, p) = (&table[..m * 16], &plane[..m.div_ceil(2)]);
    let mut acc = [0f32; 8];
    for (tt, pp) in t.chunks_exact(128).zip(p.chunks_exact(4)) {
        for k in 0..4 {
            let b = pp[k];
            acc[2 * k] += tt[32 * k + (b & 0x0F) as usize];
            acc[2 * k + 1] += tt[32 * k + 16 + (b >> 4) as usize];
        }
    }
    for g in (m / 8) * 8..m {
        acc[g % 8] += t[16 * g + ((p[g / 2] >> (4 * (g % 2))) & 0x0F) as usize];
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

#[derive(Clone)]
struct Scanner<'a> {
    idx: &'a IndexIVFRaBitQ,
    q: Vec<f32>,
    /// `P q`.
    rq: Vec<f32>,
    /// `P q − P c_l` of the list being scanned.
    res: Vec<f32>,
}

impl Scanner<'_> {
    /// The query's terms for list `list`.
    fn terms(&mut self, list: usize) -> QueryTerms {
        let idx = self.idx;
        let d = idx.d();
        let pc = &idx.rotated_centroids[list * d..(list + 1) * d];
        let mut s2 = 0f32;
        for ((r, &a), &b) in self.res.iter_mut().zip(&self.rq).zip(pc) {
            *r = a - b;
            s2 += *r * *r;
        }
        let offset = match idx.metric() {
            // ‖q − c‖² = ‖P q − P c‖² (P orthogonal)
            Metric::L2 => s2,
            Metric::InnerProduct => (self.q.iter().zip(idx.base.centroid(list)))
                .map(|(a, b)| a * b)
                .sum(),
        };
        idx.codec.terms_of_rotated(&self.res, offset)
    }
}

impl ListScanner for Scanner<'_> {
    fn scan_list(&mut self, list: usize, _: f32, sel: Option<&IdSelector>, heap: &mut TopK) {
        let t = self.terms(list);
        let idx = self.idx;
        let codec = &idx.codec;
        let (b, m, nf) = (codec.nbits(), codec.m(), codec.nf());
        let pb = m.div_ceil(2);
        let cs = codec.code_size();
        let off = b * pb;
        let lists = &idx.base.lists;
        let margin = idx.epsilon * t.norm;
        let mut f = [0f32; 8];
        let mut sums = [0f32; 8];
        for (code, &id) in lists.codes(list).chunks_exact(cs).zip(lists.ids(list)) {
            let s0 = plane_sum(&t.table, code, m);
            for (j, v) in f[..nf].iter_mut().enumerate() {
                *v = factor(code, off, j);
            }
            let ip1 = f[1] * (2.0 * s0 - t.sum);
            let key = if b == 1 {
                codec.to_key(&t, f[0], ip1)
            } else {
                // lower bound of the key from the sign plane (module docs)
                let lb = codec.to_key(&t, f[0], ip1 + margin * (f[2] + f[4]));
                if lb > heap.threshold() {
                    continue;
                }
                sums[0] = s0;
                // plane j (bit B−1−j) is stored at ex plane B−1−j, after the sign plane
                for (j, s) in sums.iter_mut().enumerate().take(b).skip(1) {
                    let p = pb * (1 + b - 1 - j);
                    *s = plane_sum(&t.table, &code[p..p + pb], m);
                }
                codec.to_key(&t, f[0], codec.ip_from_plane_sums(&t, &sums[..b], &f[..nf]))
            };
            if key <= heap.threshold() && sel.is_none_or(|s| s.accepts(id)) {
                heap.push(key, id);
            }
        }
    }
}

impl Index for IndexIVFRaBitQ {
    crate::index_plumbing!();
    crate::index_forward!(IndexIVFRaBitQ;
        ntotal, is_trained, add, add_with_ids, reconstruct, reset, is_mapped);

    ivf_base_forward!(IndexIVFRaBitQ);

    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let p = self.train_params.clone();
        IndexIVFRaBitQ::train(self, x, &p, ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        let nprobe = params.nprobe_or(self.base.nprobe)?;
        let rq = self.rotated_queries(q)?;
        self.base.range_search(
            q,
            radius,
            nprobe,
            params.selector.as_ref(),
            ctl,
            |x, prev| self.scanner(q, &rq, x, prev),
        )
    }
}

impl Persist for IndexIVFRaBitQ {
    const KIND: &'static str = "IndexIVFRaBitQ";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.base.write_meta(&mut w);
        w.meta_f64("epsilon", self.epsilon as f64);
        self.codec.write_to(&mut w);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let codec = RaBitQ::read_from(r)?;
        if codec.centroid().iter().any(|&c| c != 0.0) || !codec.is_trained() {
            return Err(r.err("the codec of an IVF RaBitQ index must have the origin as centroid"));
        }
        let cs = codec.code_size();
        let base = IvfBase::read_meta(r, |_| cs, "IndexIVFRaBitQ")?;
        if base.d != codec.d() || base.metric != codec.metric() {
            return Err(r.err(format!(
                "metadata 'd'/'metric' ({}, {}) differ from the codec's ({}, {})",
                base.d,
                base.metric.name(),
                codec.d(),
                codec.metric().name()
            )));
        }
        let mut ix = IndexIVFRaBitQ {
            base,
            codec,
            rotated_centroids: Vec::new(),
            epsilon: DEFAULT_EPSILON,
            train_params: IvfTrainParams::default(),
        };
        let eps = r.meta_f64("epsilon")?;
        ix.set_epsilon(eps as f32).map_err(|e| r.err(e))?;
        ix.check_lists().map_err(|e| r.err(e))?;
        ix.rotate_centroids();
        Ok(ix)
    }
}
