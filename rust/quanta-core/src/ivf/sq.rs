//! `IndexIVFScalarQuantizer`: inverted lists of scalar-quantized codes (faiss
//! `IndexIVFScalarQuantizer`, factory `IVF{nlist},SQ{type}`).
//!
//! With `by_residual` (faiss's default) every vector is coded as its residual `x − c_l` to its
//! list centroid, and the quantizer is trained on the training set's residuals: residuals
//! spread over a much smaller range than the vectors, so the same bits resolve them finer.
//! The search folds the list into the query instead of decoding anything:
//!
//! - squared L2: `‖q − c_l − r‖²` is the quantizer's L2 key of the query `q − c_l` against `r`,
//!   so each probed list gets its own per-search query form ([`ScalarQuantizer::query`], `d`
//!   operations for the uniform and 16-bit types; one `d × d` rotation for the rotated
//!   Lloyd-Max types);
//! - inner product: `⟨q, c_l + r⟩ = ⟨q, c_l⟩ + ⟨q, r⟩`; the first term is the coarse key the
//!   search already has, the second the quantizer's key of the one query form of `q`.
//!
//! Without `by_residual` the codes are of `x` itself and one query form serves every list.

use super::{IdSelector, IvfBase, IvfTrainParams, ListScanner, SCAN_BLOCK};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::index::{Index, RangeResult, SearchParams, SearchResult};
use crate::io::{FileReader, FileWriter, Persist};
use crate::simd::{level, SimdLevel};
use crate::sq::{QuantizerType, ScalarQuantizer, SqQuery, DEFAULT_SEED};
use crate::topk::TopK;

/// Inverted file over scalar-quantized codes (faiss `IndexIVFScalarQuantizer`).
///
/// Through [`Index`]: `train` trains the coarse quantizer ([`train_params`](Self::train_params))
/// and then the scalar quantizer on the residuals (or on the vectors without `by_residual`);
/// `search` probes [`SearchParams::nprobe`] lists or else [`nprobe`](Self::nprobe) (saved).
#[derive(Debug, Clone)]
pub struct IndexIVFScalarQuantizer {
    base: IvfBase<u8>,
    sq: ScalarQuantizer,
    by_residual: bool,
    train_params: IvfTrainParams,
}

const NAME: &str = "IndexIVFScalarQuantizer";

impl IndexIVFScalarQuantizer {
    /// Empty, untrained index; `seed` draws the rotation of the Lloyd-Max types.
    pub fn new(
        d: usize,
        nlist: usize,
        qtype: QuantizerType,
        metric: Metric,
        by_residual: bool,
        seed: u64,
    ) -> Result<Self> {
        let sq = ScalarQuantizer::with_seed(d, qtype, seed)?;
        Ok(IndexIVFScalarQuantizer {
            base: IvfBase::new(d, nlist, metric, sq.code_size(), NAME)?,
            sq,
            by_residual,
            train_params: IvfTrainParams::default(),
        })
    }

    /// [`new`](Self::new) with residual coding and the default seed (faiss's defaults).
    pub fn with_defaults(
        d: usize,
        nlist: usize,
        qtype: QuantizerType,
        metric: Metric,
    ) -> Result<Self> {
        Self::new(d, nlist, qtype, metric, true, DEFAULT_SEED)
    }

    super::ivf_base_accessors!(u8);

    /// The scalar quantizer (of residuals with [`by_residual`](Self::by_residual)).
    pub fn sq(&self) -> &ScalarQuantizer {
        &self.sq
    }
    /// Bytes per stored code.
    pub fn code_size(&self) -> usize {
        self.sq.code_size()
    }
    /// Whether vectors are coded as residuals to their list centroid.
    pub fn by_residual(&self) -> bool {
        self.by_residual
    }
    /// Whether the coarse quantizer and the scalar quantizer are trained.
    pub fn is_trained(&self) -> bool {
        self.base.is_trained() && self.sq.is_trained()
    }
    /// Whether some list (or the rotation) is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.base.lists.is_mapped() || self.sq.is_mapped()
    }
    /// Train the coarse centroids, then the scalar quantizer on the residuals of `x` to their
    /// nearest centroid (on `x` itself without `by_residual`). Refused while the index holds
    /// entries.
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
        let mut warnings = self.base.train_coarse(x, params, ctl)?;
        // the k-means above checked x (shape, NaN/Inf)
        let mut sq = self.sq.clone();
        warnings.extend(if self.by_residual {
            let assign = self.base.assign(x, ctl)?;
            sq.train(&residuals(x, self.d(), self.centroids(), &assign))?
        } else {
            sq.train(x)?
        });
        self.sq = sq;
        Ok(warnings)
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
        self.require_codec()?;
        self.base.check_add(x, ids, NAME)?;
        // copies: `add_batched` borrows the base mutably while the encoder reads them
        let sq = self.sq.clone();
        let (d, by_residual) = (self.d(), self.by_residual);
        let cents = if by_residual {
            self.centroids().to_vec()
        } else {
            Vec::new()
        };
        self.base.add_batched(x, ids, ctl, |xb, assign, out, _| {
            if by_residual {
                sq.compute_codes(&residuals(xb, d, &cents, assign), out)
            } else {
                sq.compute_codes(xb, out)
            }
        })
    }

    /// Approximate vector of id `id`: the decoded code, plus its list centroid with
    /// `by_residual`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (l, o) = self.base.locate(id)?;
        let cs = self.code_size();
        let mut out = self
            .sq
            .decode(&self.base.lists.codes(l)[o * cs..(o + 1) * cs])?;
        if self.by_residual {
            self.base.add_centroid(l, &mut out);
        }
        Ok(out)
    }

    /// k nearest stored vectors of each query (by the distance to the decoded codes) among
    /// the `nprobe` nearest lists, restricted to the ids `sel` accepts.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        self.require_codec()?;
        let lvl = level();
        self.base
            .search(q, k, nprobe, sel, ctl, |x, prev| self.scanner(x, lvl, prev))
    }

    fn require_codec(&self) -> Result<()> {
        if self.sq.is_trained() {
            Ok(())
        } else {
            Err(Error::NotTrained(NAME))
        }
    }

    fn scanner<'a>(&'a self, x: &[f32], lvl: SimdLevel, prev: Option<Scanner<'a>>) -> Scanner<'a> {
        let mut s = prev.unwrap_or_else(|| Scanner {
            idx: self,
            lvl,
            q: Vec::new(),
            res: vec![0f32; self.d()],
            query: None,
        });
        s.q.clear();
        s.q.extend_from_slice(x);
        // one query form for every list unless the L2 residual query changes per list
        s.query = (!s.per_list()).then(|| self.sq.query(x, self.metric()));
        s
    }

    /// Check what a file's lists hold (16-bit float codes without inf/NaN, finite Lloyd-Max
    /// factors): a search must never see a NaN key.
    fn check_lists(&self) -> Result<()> {
        if self.ntotal() > 0 && !self.sq.is_trained() {
            return Err(Error::invalid(
                "the lists hold codes but the scalar quantizer has no trained ranges",
            ));
        }
        (0..self.nlist()).try_for_each(|l| self.sq.check_codes(self.base.lists.codes(l)))
    }
}

/// `x − c_{assign[i]}` of every row of `x` (`centroids`: `nlist × d`).
fn residuals(x: &[f32], d: usize, centroids: &[f32], assign: &[usize]) -> Vec<f32> {
    let mut out = x.to_vec();
    for (row, &l) in out.chunks_exact_mut(d).zip(assign) {
        for (v, c) in row.iter_mut().zip(&centroids[l * d..(l + 1) * d]) {
            *v -= c;
        }
    }
    out
}

#[derive(Clone)]
struct Scanner<'a> {
    idx: &'a IndexIVFScalarQuantizer,
    lvl: SimdLevel,
    q: Vec<f32>,
    /// `q − c_l` of the list being scanned (L2 with residuals).
    res: Vec<f32>,
    /// The query form shared by every list (`None` when it changes per list).
    query: Option<SqQuery>,
}

impl Scanner<'_> {
    /// Whether each list needs its own query form: L2 over residual codes.
    fn per_list(&self) -> bool {
        self.idx.by_residual && self.idx.metric() == Metric::L2
    }
}

impl ListScanner for Scanner<'_> {
    fn scan_list(
        &mut self,
        list: usize,
        coarse_key: f32,
        sel: Option<&IdSelector>,
        heap: &mut TopK,
    ) {
        let idx = self.idx;
        let per_list;
        let query = match &self.query {
            Some(q) => q,
            None => {
                for ((r, a), c) in self
                    .res
                    .iter_mut()
                    .zip(&self.q)
                    .zip(idx.base.centroid(list))
                {
                    *r = a - c;
                }
                per_list = idx.sq.query(&self.res, Metric::L2);
                &per_list
            }
        };
        // inner product over residuals: the coarse key is −⟨q, c_l⟩ (module docs)
        let add = if idx.by_residual && idx.metric() == Metric::InnerProduct {
            coarse_key
        } else {
            0.0
        };
        let lists = &idx.base.lists;
        let cs = idx.code_size();
        let mut buf = [0f32; SCAN_BLOCK];
        for (blk, bid) in lists
            .codes(list)
            .chunks(SCAN_BLOCK * cs)
            .zip(lists.ids(list).chunks(SCAN_BLOCK))
        {
            let out = &mut buf[..bid.len()];
            idx.sq.distances(self.lvl, query, blk, out);
            if add != 0.0 {
                out.iter_mut().for_each(|v| *v += add);
            }
            super::offer(self.lvl, out, bid, sel, heap);
        }
    }
}

impl Index for IndexIVFScalarQuantizer {
    crate::index_plumbing!();
    crate::index_forward!(IndexIVFScalarQuantizer;
        ntotal, is_trained, add, add_with_ids, reconstruct, reset, is_mapped);

    ivf_base_forward!(IndexIVFScalarQuantizer);

    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let p = self.train_params.clone();
        IndexIVFScalarQuantizer::train(self, x, &p, ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.require_codec()?;
        let nprobe = params.nprobe_or(self.base.nprobe)?;
        let lvl = level();
        self.base.range_search(
            q,
            radius,
            nprobe,
            params.selector.as_ref(),
            ctl,
            |x, prev| self.scanner(x, lvl, prev),
        )
    }
}

impl Persist for IndexIVFScalarQuantizer {
    const KIND: &'static str = NAME;

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.sq.write_meta(&mut w);
        self.base.write_meta(&mut w);
        w.meta_u64("by_residual", self.by_residual as u64);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let sq = ScalarQuantizer::read_meta(r)?;
        let cs = sq.code_size();
        let base = IvfBase::read_meta(r, |_| cs, NAME)?;
        let by_residual = match r.meta_u64("by_residual")? {
            0 => false,
            1 => true,
            v => return Err(r.err(format!("metadata 'by_residual' must be 0 or 1, got {v}"))),
        };
        let ix = IndexIVFScalarQuantizer {
            base,
            sq,
            by_residual,
            train_params: IvfTrainParams::default(),
        };
        ix.check_lists().map_err(|e| r.err(e))?;
        Ok(ix)
    }
}
