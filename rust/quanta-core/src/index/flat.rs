//! Exact (brute-force) search over raw float vectors: faiss `IndexFlatL2` / `IndexFlatIP`.

use super::{gather_rows, IdSelector, Index, SearchParams};
use crate::control::Control;
use crate::distance::{check_finite, knn_filtered, row_norms, Metric};
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist, SharedSlice};
use crate::validate::{check_batch, check_k, check_position, check_shape};

/// Flat index holding the vectors themselves; ids are insertion positions.
///
/// Saved with [`Persist`] as kind `"IndexFlat"`: metadata `d`, `metric`, `ntotal` and an f32
/// section `vectors`. Loaded with `mmap`, the vectors stay a view of the mapped file until the
/// first `add` (which copies them into memory) or `reset`; the file itself is never modified.
#[derive(Debug, Clone)]
pub struct IndexFlat {
    d: usize,
    metric: Metric,
    data: SharedSlice<f32>,
    /// Squared norms of the stored rows (L2 only), computed once at `add`.
    norms: Vec<f32>,
}

/// (distances nq×k, ids nq×k), faiss layout.
pub type SearchResult = (Vec<f32>, Vec<i64>);

impl IndexFlat {
    /// Empty index of dimension `d`.
    pub fn new(d: usize, metric: Metric) -> Result<Self> {
        if d == 0 {
            return Err(Error::invalid("d must be >= 1"));
        }
        Ok(IndexFlat {
            d,
            metric,
            data: SharedSlice::new(),
            norms: Vec::new(),
        })
    }

    /// Dimension.
    pub fn d(&self) -> usize {
        self.d
    }

    /// Metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of stored vectors.
    pub fn ntotal(&self) -> usize {
        self.data.len() / self.d
    }

    /// Stored vectors, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Whether the vectors are a view of a memory-mapped file (until the first `add`/`reset`).
    pub fn is_mapped(&self) -> bool {
        self.data.is_mapped()
    }

    /// Append vectors (n × d, row-major); ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32]) -> Result<()> {
        check_batch(x, self.d, "x")?;
        self.data.make_mut().extend_from_slice(x);
        if self.metric == Metric::L2 {
            self.norms.extend(row_norms(x, self.d));
        }
        Ok(())
    }

    /// k nearest stored vectors of each query; padded with -1 when `k > ntotal`.
    pub fn search(&self, q: &[f32], k: usize, ctl: &Control) -> Result<SearchResult> {
        self.search_filtered(q, k, None, ctl)
    }

    /// [`IndexFlat::search`] returning only ids the selector accepts.
    pub fn search_filtered(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        check_batch(q, self.d, "queries")?;
        self.search_prechecked(q, k, sel, ctl)
    }

    /// [`IndexFlat::search_filtered`] for queries whose values the caller has already checked
    /// (finite): only `k` and the shape are checked here, so a batch is scanned for NaN/Inf
    /// once per call (IVF indexes search their coarse quantizer this way).
    pub(crate) fn search_prechecked(
        &self,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        check_k(k)?;
        check_shape(q, self.d, "queries")?;
        knn_filtered(q, &self.data, &self.norms, self.d, k, self.metric, sel, ctl)
    }

    /// Remove the vectors the selector accepts; later vectors move down (ids are positions,
    /// as in faiss `IndexFlat::remove_ids`). Returns how many were removed.
    pub fn remove_ids(&mut self, sel: &IdSelector) -> usize {
        let n = self.ntotal();
        let Some(keep) = sel.kept_positions(n) else {
            return 0;
        };
        let data = gather_rows(&self.data, self.d, &keep);
        if self.metric == Metric::L2 {
            self.norms = keep.iter().map(|&i| self.norms[i]).collect();
        }
        self.data = SharedSlice::from_vec(data);
        n - keep.len()
    }

    /// Copy of the vector with id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let i = check_position(id, self.ntotal())?;
        Ok(self.data[i * self.d..(i + 1) * self.d].to_vec())
    }

    /// Remove every vector.
    pub fn reset(&mut self) {
        self.data = SharedSlice::new();
        self.norms.clear();
    }
}

impl Index for IndexFlat {
    crate::index_plumbing!();
    crate::index_forward!(IndexFlat; ntotal, remove_ids, reconstruct, reset, is_mapped);

    fn d(&self) -> usize {
        self.d
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn add(&mut self, x: &[f32], _ctl: &Control) -> Result<()> {
        IndexFlat::add(self, x)
    }
    fn merge_from(&mut self, other: &dyn Index) -> Result<()> {
        let o: &Self = crate::index::merge_peer(&*self, other)?;
        IndexFlat::add(self, o.data())
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

impl Persist for IndexFlat {
    const KIND: &'static str = "IndexFlat";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        w.meta_u64("d", self.d as u64)
            .meta_str("metric", self.metric.name())
            .meta_u64("ntotal", self.ntotal() as u64)
            .section_f32("vectors", &self.data);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let d = r.meta_usize("d")?;
        if d == 0 {
            return Err(r.err("metadata 'd' is 0"));
        }
        let metric = r.meta_str("metric")?;
        let metric = Metric::parse(metric)
            .map_err(|_| r.err(format!("metadata 'metric' is {metric:?}, not 'l2' or 'ip'")))?;
        let n = r.meta_usize("ntotal")?;
        let data = r.section_f32("vectors")?;
        if n.checked_mul(d) != Some(data.len()) {
            return Err(r.err(format!(
                "section 'vectors' holds {} floats, expected ntotal x d = {n} x {d}",
                data.len()
            )));
        }
        // the same invariant as `add`: search never sees NaN/Inf
        check_finite(&data, d, "vectors").map_err(|e| r.err(e))?;
        let norms = match metric {
            Metric::L2 => row_norms(&data, d),
            Metric::InnerProduct => Vec::new(),
        };
        Ok(IndexFlat {
            d,
            metric,
            data,
            norms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_search_reconstruct() {
        let mut idx = IndexFlat::new(2, Metric::L2).unwrap();
        idx.add(&[0.0, 0.0, 1.0, 0.0, 5.0, 5.0]).unwrap();
        assert_eq!(idx.ntotal(), 3);
        let (d, i) = idx.search(&[0.9, 0.0], 2, &Control::new()).unwrap();
        assert_eq!(i, vec![1, 0]);
        assert!((d[0] - 0.01).abs() < 1e-6);
        assert_eq!(idx.reconstruct(2).unwrap(), vec![5.0, 5.0]);
        assert!(idx.reconstruct(3).is_err());
        assert!(idx.search(&[0.0, 0.0], 0, &Control::new()).is_err());
        assert!(idx.add(&[1.0]).is_err());
        assert!(idx.add(&[f32::INFINITY, 0.0]).is_err());
        idx.reset();
        assert_eq!(idx.ntotal(), 0);
    }
}
