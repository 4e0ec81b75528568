//! `IndexRefineFlat`: re-rank a base index's candidates by exact distances to the raw vectors
//! (faiss `IndexRefineFlat`). The base proposes `k * k_factor` candidates (with the call's
//! search parameters and selector, and no re-ranking of its own), which are sorted by the
//! exact squared L2 distance (or inner product), ties to the lower id.

use super::any::{AnyIndex, Index};
use super::{IndexFlat, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::{result_len, Metric};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist};
use crate::kernels::l2::{inner_product_with, l2sqr_with};
use crate::validate::{check_batch, check_k};
use rayon::prelude::*;

/// Default candidates per result (the one default policy: re-ranking measured no recall gain
/// at a higher default).
pub const DEFAULT_K_FACTOR: usize = 1;

/// A base index whose ids are positions, plus the raw vectors of those positions.
#[derive(Debug, Clone)]
pub struct IndexRefineFlat {
    base: AnyIndex,
    refine: IndexFlat,
    k_factor: usize,
}

impl IndexRefineFlat {
    /// Re-rank `base` (which must be empty: the raw vector of every id is needed).
    pub fn new(base: AnyIndex, k_factor: usize) -> Result<Self> {
        if base.ntotal() != 0 {
            return Err(Error::invalid(format!(
                "base_index must be empty: IndexRefineFlat needs the raw vectors of every \
                 stored id, got a {} with ntotal={}",
                base.kind(),
                base.ntotal()
            )));
        }
        check_k_factor(k_factor)?;
        let refine = IndexFlat::new(base.d(), base.metric())?;
        Ok(IndexRefineFlat {
            base,
            refine,
            k_factor,
        })
    }

    /// The base index.
    pub fn base(&self) -> &dyn Index {
        &*self.base
    }

    /// The base index, mutably (to change its search defaults).
    pub fn base_mut(&mut self) -> &mut dyn Index {
        &mut *self.base
    }

    /// The raw vectors.
    pub fn refine(&self) -> &IndexFlat {
        &self.refine
    }

    /// Candidates per result asked from the base index (default of `SearchParams::k_factor`).
    pub fn k_factor(&self) -> usize {
        self.k_factor
    }

    /// Set the default `k_factor` (>= 1).
    pub fn set_k_factor(&mut self, k_factor: usize) -> Result<()> {
        check_k_factor(k_factor)?;
        self.k_factor = k_factor;
        Ok(())
    }
}

fn check_k_factor(k_factor: usize) -> Result<()> {
    if k_factor == 0 {
        return Err(Error::invalid("k_factor must be >= 1, got 0"));
    }
    Ok(())
}

impl Index for IndexRefineFlat {
    crate::index_plumbing!();

    fn d(&self) -> usize {
        self.base.d()
    }
    fn metric(&self) -> Metric {
        self.base.metric()
    }
    fn ntotal(&self) -> usize {
        self.refine.ntotal()
    }
    fn is_trained(&self) -> bool {
        self.base.is_trained()
    }
    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        self.base.train(x, ctl)
    }
    fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        if !self.base.is_trained() {
            return Err(Error::NotTrained("IndexRefineFlat's base index"));
        }
        check_batch(x, self.d(), "x")?;
        self.base.add(x, ctl)?;
        self.refine.add(x)
    }
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        let kf = params.k_factor_or(self.k_factor)?;
        let d = self.d();
        let nq = check_batch(q, d, "queries")?;
        let pad = self.metric().pad();
        let total = result_len(nq, k)?;
        let (mut dist, mut ids) = (vec![pad; total], vec![-1i64; total]);
        let n = self.ntotal();
        if n == 0 || nq == 0 {
            return Ok((dist, ids));
        }
        let kk = k.saturating_mul(kf).min(n);
        let base_params = SearchParams {
            k_factor: Some(1),
            ..params.clone()
        };
        let (_, cand) = self.base.search(q, kk, &base_params, ctl)?;
        if let Some(&bad) = cand.iter().find(|&&c| c >= n as i64) {
            return Err(Error::invalid(format!(
                "the base index returned id {bad}, not a position in [0, {n}): \
                 IndexRefineFlat needs a base index numbering its vectors by position"
            )));
        }
        let (lvl, ip) = (crate::simd::level(), self.metric() == Metric::InnerProduct);
        let data = self.refine.data();
        dist.par_chunks_mut(k)
            .zip(ids.par_chunks_mut(k))
            .enumerate()
            .for_each(|(qi, (dr, ir))| {
                let qv = &q[qi * d..(qi + 1) * d];
                let mut c: Vec<(f32, i64)> = cand[qi * kk..(qi + 1) * kk]
                    .iter()
                    .filter(|&&c| c >= 0)
                    .map(|&c| {
                        let v = &data[c as usize * d..(c as usize + 1) * d];
                        let key = if ip {
                            -inner_product_with(lvl, qv, v)
                        } else {
                            l2sqr_with(lvl, qv, v)
                        };
                        (key, c)
                    })
                    .collect();
                c.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for (j, (key, id)) in c.into_iter().take(k).enumerate() {
                    dr[j] = if ip { -key } else { key };
                    ir[j] = id;
                }
            });
        Ok((dist, ids))
    }
    /// Ids are positions (as faiss's `IndexRefineFlat` over a positional index): removing
    /// renumbers the rest, in the base (an IVF base remaps its ids) and in the raw vectors alike.
    fn remove_ids(&mut self, sel: &super::IdSelector) -> Result<usize> {
        let removed = self.base.remove_renumbering(sel)?;
        let raw = self.refine.remove_ids(sel);
        if raw != removed {
            return Err(Error::invalid(format!(
                "IndexRefineFlat: the base index removed {removed} entries, the raw vectors \
                 {raw}: the base's ids are not the refine positions"
            )));
        }
        Ok(removed)
    }
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        if self.base.stores_ids() {
            // the base's ids are positions: another index's would need renumbering
            return Err(super::unsupported(
                Self::KIND,
                "merge_from over an IVF base",
                "re-add the vectors",
            ));
        }
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        self.base.merge_from(&*o.base)?;
        self.refine.add(o.refine.data())
    }
    fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        self.refine.reconstruct(id)
    }
    fn reset(&mut self) {
        self.base.reset();
        self.refine.reset();
    }
    fn is_mapped(&self) -> bool {
        self.base.is_mapped()
    }
}

impl Persist for IndexRefineFlat {
    const KIND: &'static str = "IndexRefineFlat";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.meta_u64("k_factor", self.k_factor as u64)
            .section_nested("base", &self.base.writer())
            .section_nested("refine", &self.refine.to_file());
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let k_factor = match r.meta("k_factor") {
            Some(_) => r.meta_usize("k_factor")?,
            None => DEFAULT_K_FACTOR,
        };
        check_k_factor(k_factor).map_err(|e| r.err(e))?;
        let base = super::read_any(&r.nested("base")?)?;
        let fr = r.nested("refine")?;
        fr.expect_kind(IndexFlat::KIND)?;
        let refine = IndexFlat::from_file(&fr)?;
        if refine.d() != base.d()
            || refine.metric() != base.metric()
            || refine.ntotal() != base.ntotal()
        {
            return Err(r.err(format!(
                "the refine vectors (d={}, {}, ntotal={}) do not match the base index (d={}, \
                 {}, ntotal={})",
                refine.d(),
                refine.metric().name(),
                refine.ntotal(),
                base.d(),
                base.metric().name(),
                base.ntotal()
            )));
        }
        Ok(IndexRefineFlat {
            base,
            refine,
            k_factor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IdSelector, IdSet};

    /// Removal renumbers positions in the raw vectors and in the base alike, for a positional
    /// base and for an IVF base (which remaps its stored ids): the results equal those of a
    /// refine index built from the kept vectors only.
    #[test]
    fn remove_ids_renumbers_base_and_raw_vectors() {
        let ctl = Control::new();
        let (n, d) = (60usize, 4usize);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32) * 0.1).collect();
        let doomed: Vec<i64> = vec![0, 7, 8, 30, 59];
        let kept: Vec<f32> = (0..n)
            .filter(|i| !doomed.contains(&(*i as i64)))
            .flat_map(|i| x[i * d..(i + 1) * d].to_vec())
            .collect();
        let bases: Vec<Box<dyn Fn() -> AnyIndex>> = vec![
            Box::new(move || Box::new(IndexFlat::new(d, Metric::L2).unwrap())),
            Box::new(move || {
                let mut ivf = crate::ivf::IndexIVFFlat::new(d, 3, Metric::L2).unwrap();
                Index::train(&mut ivf, &x_train(), &Control::new()).unwrap();
                ivf.set_nprobe(3).unwrap();
                Box::new(ivf)
            }),
        ];
        fn x_train() -> Vec<f32> {
            (0..240).map(|i| ((i * 37 % 101) as f32) * 0.1).collect()
        }
        for make in &bases {
            let mut idx = IndexRefineFlat::new(make(), 4).unwrap();
            idx.add(&x, &ctl).unwrap();
            let sel = IdSelector::Allow(IdSet::from_ids(&doomed));
            assert_eq!(idx.remove_ids(&sel).unwrap(), doomed.len());
            assert_eq!(idx.ntotal(), n - doomed.len());
            let mut fresh = IndexRefineFlat::new(make(), 4).unwrap();
            fresh.add(&kept, &ctl).unwrap();
            let p = SearchParams::default();
            assert_eq!(
                idx.search(&x[..3 * d], 5, &p, &ctl).unwrap(),
                fresh.search(&x[..3 * d], 5, &p, &ctl).unwrap()
            );
            assert_eq!(idx.reconstruct(7).unwrap(), fresh.reconstruct(7).unwrap());
        }
    }

    #[test]
    fn reranks_exactly_and_round_trips() {
        let ctl = Control::new();
        let x = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0];
        let base = IndexFlat::new(2, Metric::L2).unwrap();
        let mut idx = IndexRefineFlat::new(Box::new(base), 2).unwrap();
        let (dd, ii) = idx
            .search(&[0.0, 0.0], 2, &SearchParams::default(), &ctl)
            .unwrap();
        assert_eq!(ii, vec![-1, -1]);
        assert!(dd.iter().all(|v| v.is_infinite()));
        idx.add(&x, &ctl).unwrap();
        let p = SearchParams::default();
        let (dd, ii) = idx.search(&[2.1, 0.0], 2, &p, &ctl).unwrap();
        assert_eq!(ii, vec![2, 3]);
        assert!((dd[0] - 0.01).abs() < 1e-5);
        let sel = SearchParams::with_selector(Some(IdSelector::Deny(IdSet::from_ids(&[2]))));
        assert_eq!(
            idx.search(&[2.1, 0.0], 2, &sel, &ctl).unwrap().1,
            vec![3, 1]
        );
        let p0 = SearchParams {
            k_factor: Some(0),
            ..Default::default()
        };
        assert!(idx.search(&[2.1, 0.0], 2, &p0, &ctl).is_err());
        let loaded = IndexRefineFlat::from_bytes(&idx.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.k_factor(), 2);
        assert_eq!(
            loaded.search(&[2.1, 0.0], 2, &p, &ctl).unwrap().1,
            vec![2, 3]
        );
        assert_eq!(loaded.reconstruct(3).unwrap(), vec![3.0, 0.0]);
        // a non-empty base or a zero k_factor is refused
        let mut full = IndexFlat::new(2, Metric::L2).unwrap();
        full.add(&x).unwrap();
        assert!(IndexRefineFlat::new(Box::new(full), 1).is_err());
        let empty = IndexFlat::new(2, Metric::L2).unwrap();
        assert!(IndexRefineFlat::new(Box::new(empty), 0).is_err());
    }
}
