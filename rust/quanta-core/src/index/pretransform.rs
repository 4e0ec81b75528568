//! `IndexPreTransform`: an index over linearly transformed vectors (faiss `IndexPreTransform`),
//! the transform being the OPQ rotation ([`OpqMatrix`]). Every call maps the vectors (or
//! queries) through the transform and forwards to the inner index, search parameters and
//! selector included (ids are the inner index's).

use super::any::{AnyIndex, Index, RangeResult};
use super::{IdSelector, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist};
use crate::pq::{OpqInit, OpqMatrix};
use crate::validate::check_k;

/// A transform followed by an index of dimension `transform.d_out()`.
#[derive(Debug, Clone)]
pub struct IndexPreTransform {
    transform: OpqMatrix,
    inner: AnyIndex,
}

impl IndexPreTransform {
    /// `inner` (of dimension `transform.d_out()`) behind `transform`.
    pub fn new(transform: OpqMatrix, inner: AnyIndex) -> Result<Self> {
        if inner.d() != transform.d_out() {
            return Err(Error::shape(format!(
                "index has d={}, expected the transform's d_out={}",
                inner.d(),
                transform.d_out()
            )));
        }
        Ok(IndexPreTransform { transform, inner })
    }

    /// The transform.
    pub fn transform(&self) -> &OpqMatrix {
        &self.transform
    }

    /// The wrapped index.
    pub fn inner(&self) -> &dyn Index {
        &*self.inner
    }

    /// The wrapped index, mutably (to change its search defaults).
    pub fn inner_mut(&mut self) -> &mut dyn Index {
        &mut *self.inner
    }

    fn apply(&self, x: &[f32]) -> Result<Vec<f32>> {
        self.transform.apply(x)
    }
}

impl Index for IndexPreTransform {
    crate::index_plumbing!();

    fn d(&self) -> usize {
        self.transform.d_in()
    }
    fn metric(&self) -> Metric {
        self.inner.metric()
    }
    fn ntotal(&self) -> usize {
        self.inner.ntotal()
    }
    fn is_trained(&self) -> bool {
        self.transform.is_trained() && self.inner.is_trained()
    }
    /// Trains the transform unless it is trained already, then the inner index on the
    /// transformed `x`.
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        if !self.transform.is_trained() {
            self.transform.train(x, ctl)?;
        }
        let y = self.apply(x)?;
        self.inner.train(&y, ctl)
    }
    fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        let y = self.apply(x)?;
        self.inner.add(&y, ctl)
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        let y = self.apply(x)?;
        self.inner.add_with_ids(&y, ids, ctl)
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        self.inner.search(&self.apply(q)?, k, params, ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        self.inner
            .range_search(&self.apply(q)?, radius, params, ctl)
    }
    fn remove_ids(&mut self, sel: &IdSelector) -> Result<usize> {
        self.inner.remove_ids(sel)
    }
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.inner.merge_from(&*o.inner)
    }
    fn remove_renumbering(&mut self, sel: &IdSelector) -> Result<usize> {
        self.inner.remove_renumbering(sel)
    }
    fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        self.transform.reverse(&self.inner.reconstruct(id)?)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
    // the transform does not touch ids: an OPQ over an IVF keeps the caller's ids as the IVF does
    fn stores_ids(&self) -> bool {
        self.inner.stores_ids()
    }
}

impl Persist for IndexPreTransform {
    const KIND: &'static str = "IndexPreTransform";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.section_nested("transform", &self.transform.to_file())
            .section_nested("index", &self.inner.writer());
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let tr = r.nested("transform")?;
        tr.expect_kind(OpqMatrix::KIND)?;
        let transform = OpqMatrix::from_file(&tr)?;
        let inner = super::read_any(&r.nested("index")?)?;
        IndexPreTransform::new(transform, inner).map_err(|e| r.err(e))
    }
}

/// The rotation and its training settings; section `matrix` (d_out × d_in) when trained.
impl Persist for OpqMatrix {
    const KIND: &'static str = "OPQMatrix";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.meta_u64("d_in", self.d_in() as u64)
            .meta_u64("d_out", self.d_out() as u64)
            .meta_u64("M", self.m() as u64)
            .meta_u64("niter", self.niter as u64)
            .meta_u64("niter_pq", self.niter_pq as u64)
            .meta_u64("niter_pq_0", self.niter_pq_0 as u64)
            .meta_u64("max_train_points", self.max_train_points as u64)
            .meta_u64("seed", self.seed)
            .meta_str("init", self.init.name())
            .meta_u64("trained", self.is_trained() as u64);
        if self.is_trained() {
            w.section_f32("matrix", self.matrix());
        }
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let bad = |e: Error| r.err(e);
        let mut t = OpqMatrix::new(
            r.meta_usize("d_in")?,
            r.meta_usize("M")?,
            Some(r.meta_usize("d_out")?),
        )
        .map_err(bad)?;
        t.niter = r.meta_usize("niter")?;
        t.niter_pq = r.meta_usize("niter_pq")?;
        t.niter_pq_0 = r.meta_usize("niter_pq_0")?;
        t.max_train_points = r.meta_usize("max_train_points")?;
        t.seed = r.meta_u64("seed")?;
        t.init = OpqInit::parse(r.meta_str("init")?).map_err(bad)?;
        if r.meta_u64("trained")? != 0 {
            t.set_matrix(&r.section_f32("matrix")?).map_err(bad)?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IdSet, IndexFlat};
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * d).map(|_| r.normal() as f32).collect()
    }

    #[test]
    fn forwards_and_round_trips() {
        let (d, ctl) = (8, Control::new());
        let x = data(400, d, 1);
        let flat = IndexFlat::new(d, Metric::L2).unwrap();
        let mut idx =
            IndexPreTransform::new(OpqMatrix::new(d, 2, None).unwrap(), Box::new(flat)).unwrap();
        assert!(!idx.is_trained());
        assert!(idx.add(&x, &ctl).is_err());
        idx.train(&x, &ctl).unwrap();
        idx.add(&x, &ctl).unwrap();
        assert_eq!(idx.ntotal(), 400);
        // an orthogonal map keeps L2 distances: the exact neighbours of the raw data
        let mut raw = IndexFlat::new(d, Metric::L2).unwrap();
        raw.add(&x).unwrap();
        let p = SearchParams::default();
        let (_, want) = raw.search(&x[..5 * d], 3, &ctl).unwrap();
        let (_, got) = idx.search(&x[..5 * d], 3, &p, &ctl).unwrap();
        assert_eq!(got, want);
        let sel = SearchParams::with_selector(Some(IdSelector::Deny(IdSet::from_ids(&[0]))));
        let (_, ids) = idx.search(&x[..d], 3, &sel, &ctl).unwrap();
        assert!(!ids.contains(&0));
        let back = idx.reconstruct(7).unwrap();
        for (a, b) in back.iter().zip(&x[7 * d..8 * d]) {
            assert!((a - b).abs() < 1e-4);
        }
        let loaded = IndexPreTransform::from_bytes(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.search(&x[..5 * d], 3, &p, &ctl).unwrap().1, want);
        assert_eq!(loaded.transform().matrix(), idx.transform().matrix());
        let wrong = IndexFlat::new(4, Metric::L2).unwrap();
        assert!(
            IndexPreTransform::new(OpqMatrix::new(d, 2, None).unwrap(), Box::new(wrong)).is_err()
        );
    }
}
