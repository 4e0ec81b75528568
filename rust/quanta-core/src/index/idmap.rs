//! `IndexIDMap`: explicit int64 ids on top of an index that numbers its vectors by position
//! (faiss `IndexIDMap2`: it also reconstructs by id).

use super::any::{AnyIndex, Index, RangeResult};
use super::{IdSelector, IdSet, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist};
use crate::validate::{check_ids, check_shape};

/// Ids of the inner index's positions: `ids[i]` is the caller's id of inner vector `i`.
#[derive(Debug, Clone)]
pub struct IndexIDMap {
    inner: AnyIndex,
    ids: Vec<i64>,
}

impl IndexIDMap {
    /// Wrap an empty index (ids cannot be given to vectors it already holds).
    pub fn new(inner: AnyIndex) -> Result<Self> {
        if inner.ntotal() != 0 {
            return Err(Error::invalid(format!(
                "IndexIDMap needs an empty index, the {} holds {} vectors",
                inner.kind(),
                inner.ntotal()
            )));
        }
        if inner.stores_ids() {
            return Err(Error::invalid(format!(
                "the {} stores ids itself: use its add_with_ids instead of an IndexIDMap",
                inner.kind()
            )));
        }
        Ok(IndexIDMap {
            inner,
            ids: Vec::new(),
        })
    }

    /// The wrapped index.
    pub fn inner(&self) -> &dyn Index {
        &*self.inner
    }

    /// The wrapped index, mutably (to change its search defaults; adding through it would
    /// break the id map, so `add` here is the way to add).
    pub fn inner_mut(&mut self) -> &mut dyn Index {
        &mut *self.inner
    }

    /// Id of every stored vector, in position order.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// The selector on inner positions equivalent to `sel` on ids.
    fn positions(&self, sel: &IdSelector) -> IdSelector {
        let mask: Vec<bool> = self.ids.iter().map(|&id| sel.accepts(id)).collect();
        IdSelector::Allow(IdSet::from_mask(&mask))
    }

    fn translated(&self, params: &SearchParams) -> SearchParams {
        let mut p = params.clone();
        p.selector = params.selector.as_ref().map(|s| self.positions(s));
        p
    }

    fn to_id(&self, pos: i64) -> i64 {
        if pos < 0 {
            pos
        } else {
            self.ids[pos as usize]
        }
    }
}

impl Index for IndexIDMap {
    crate::index_plumbing!();

    fn d(&self) -> usize {
        self.inner.d()
    }
    fn metric(&self) -> Metric {
        self.inner.metric()
    }
    fn ntotal(&self) -> usize {
        self.ids.len()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        self.inner.train(x, ctl)
    }
    fn add(&mut self, _x: &[f32], _ctl: &Control) -> Result<()> {
        Err(Error::invalid(
            "IndexIDMap does not number vectors itself: use add_with_ids",
        ))
    }
    fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        let n = check_shape(x, self.d(), "x")?;
        check_ids(ids, n)?;
        self.inner.add(x, ctl)?;
        self.ids.extend_from_slice(ids);
        Ok(())
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let (dist, pos) = self.inner.search(q, k, &self.translated(params), ctl)?;
        Ok((dist, pos.into_iter().map(|p| self.to_id(p)).collect()))
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        let mut r = self
            .inner
            .range_search(q, radius, &self.translated(params), ctl)?;
        for id in &mut r.ids {
            *id = self.to_id(*id);
        }
        Ok(r)
    }
    fn remove_ids(&mut self, sel: &IdSelector) -> Result<usize> {
        let removed = self.inner.remove_ids(&self.positions(sel))?;
        self.ids.retain(|&id| !sel.accepts(id));
        debug_assert_eq!(self.ids.len(), self.inner.ntotal());
        Ok(removed)
    }
    fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        match self.ids.iter().position(|&x| x == id) {
            Some(p) => self.inner.reconstruct(p as i64),
            None => Err(Error::invalid(format!("id {id} is not in the index"))),
        }
    }
    fn reset(&mut self) {
        self.inner.reset();
        self.ids.clear();
    }
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
    fn stores_ids(&self) -> bool {
        true
    }
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.inner.merge_from(&*o.inner)?;
        self.ids.extend_from_slice(&o.ids);
        Ok(())
    }
}

impl Persist for IndexIDMap {
    const KIND: &'static str = "IndexIDMap";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.meta_u64("ntotal", self.ids.len() as u64)
            .section_nested("inner", &self.inner.writer())
            .section_i64("ids", &self.ids);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let inner = super::read_any(&r.nested("inner")?)?;
        let ids = r.section_i64("ids")?.to_vec();
        let n = r.meta_usize("ntotal")?;
        if ids.len() != n || inner.ntotal() != n {
            return Err(r.err(format!(
                "ntotal is {n}, but section 'ids' holds {} ids and the inner index {} vectors",
                ids.len(),
                inner.ntotal()
            )));
        }
        Ok(IndexIDMap { inner, ids })
    }
}
