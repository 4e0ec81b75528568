//! `IndexIVFFlat`: inverted lists of raw float vectors, exact distances inside probed lists.

use super::{IdSelector, IvfBase, IvfTrainParams, ListScanner, SCAN_BLOCK};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::index::{Index, RangeResult, SearchParams, SearchResult};
use crate::io::{FileReader, FileWriter, Persist};
use crate::kernels::l2;
use crate::simd::{level, SimdLevel};
use crate::topk::TopK;

/// Inverted file over uncompressed vectors (faiss `IndexIVFFlat`).
///
/// Through [`Index`]: `train` uses [`train_params`](Self::train_params), `search` probes
/// [`SearchParams::nprobe`] lists or else [`nprobe`](Self::nprobe) (saved with the index).
#[derive(Debug, Clone)]
pub struct IndexIVFFlat {
    base: IvfBase<f32>,
    train_params: IvfTrainParams,
}

impl IndexIVFFlat {
    /// Empty, untrained index.
    pub fn new(d: usize, nlist: usize, metric: Metric) -> Result<Self> {
        Ok(IndexIVFFlat {
            base: IvfBase::new(d, nlist, metric, d, "IndexIVFFlat")?,
            train_params: IvfTrainParams::default(),
        })
    }

    /// Trained, empty index from given coarse centroids (`nlist × d`).
    pub fn from_centroids(coarse: &[f32], d: usize, metric: Metric) -> Result<Self> {
        if d == 0 || coarse.is_empty() || !coarse.len().is_multiple_of(d) {
            return Err(Error::shape(format!(
                "coarse centroids hold {} values, not a non-empty multiple of d={d}",
                coarse.len()
            )));
        }
        crate::distance::check_finite(coarse, d, "coarse centroids")?;
        let mut idx = Self::new(d, coarse.len() / d, metric)?;
        idx.base.set_centroids(coarse)?;
        Ok(idx)
    }

    super::ivf_base_accessors!(f32);

    /// Whether the coarse quantizer is trained.
    pub fn is_trained(&self) -> bool {
        self.base.is_trained()
    }
    /// Whether some list is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.base.lists.is_mapped()
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
        self.base.train_coarse(x, params, ctl)
    }

    /// Add `x`; ids continue from `ntotal`.
    pub fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()> {
        self.base.check_add(x, None, "IndexIVFFlat")?;
        self.base.add_batched(x, None, ctl, copy_rows)
    }

    /// Add `x` with the given ids (one per row).
    pub fn add_with_ids(&mut self, x: &[f32], ids: &[i64], ctl: &Control) -> Result<()> {
        self.base.check_add(x, Some(ids), "IndexIVFFlat")?;
        self.base.add_batched(x, Some(ids), ctl, copy_rows)
    }

    /// The stored vector of id `id`.
    pub fn reconstruct(&self, id: i64) -> Result<Vec<f32>> {
        let (l, o) = self.base.locate(id)?;
        let d = self.d();
        Ok(self.base.lists.codes(l)[o * d..(o + 1) * d].to_vec())
    }

    /// k nearest stored vectors of each query among the `nprobe` nearest lists, restricted to
    /// the ids `sel` accepts.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        nprobe: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let lvl = level();
        self.base
            .search(q, k, nprobe, sel, ctl, |x, _| self.scanner(x, lvl))
    }

    fn scanner(&self, x: &[f32], lvl: SimdLevel) -> FlatScanner<'_> {
        FlatScanner {
            idx: self,
            lvl,
            q: x.to_vec(),
        }
    }
}

impl Index for IndexIVFFlat {
    crate::index_plumbing!();
    crate::index_forward!(IndexIVFFlat;
        ntotal, is_trained, add, add_with_ids, reconstruct, reset, is_mapped);

    ivf_base_forward!(IndexIVFFlat);

    fn train(&mut self, x: &[f32], ctl: &Control) -> Result<Vec<String>> {
        let p = self.train_params.clone();
        IndexIVFFlat::train(self, x, &p, ctl)
    }
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        let nprobe = params.nprobe_or(self.base.nprobe)?;
        let lvl = level();
        self.base
            .range_search(q, radius, nprobe, params.selector.as_ref(), ctl, |x, _| {
                self.scanner(x, lvl)
            })
    }
}

/// The "encoder" of IVFFlat: entries are the vectors themselves.
fn copy_rows(x: &[f32], _: &[usize], out: &mut [f32], _: &Control) -> Result<()> {
    out.copy_from_slice(x);
    Ok(())
}

#[derive(Clone)]
struct FlatScanner<'a> {
    idx: &'a IndexIVFFlat,
    lvl: SimdLevel,
    q: Vec<f32>,
}

impl ListScanner for FlatScanner<'_> {
    fn scan_list(&mut self, list: usize, _: f32, sel: Option<&IdSelector>, heap: &mut TopK) {
        let lists = &self.idx.base.lists;
        let ids = lists.ids(list);
        let d = self.idx.d();
        let ip = self.idx.base.metric == Metric::InnerProduct;
        let mut buf = [0f32; SCAN_BLOCK];
        for (blk, bid) in lists
            .codes(list)
            .chunks(SCAN_BLOCK * d)
            .zip(ids.chunks(SCAN_BLOCK))
        {
            let out = &mut buf[..bid.len()];
            for (o, v) in out.iter_mut().zip(blk.chunks_exact(d)) {
                *o = if ip {
                    // `0 - v`: a zero product ties with +0.0 (see distance.rs)
                    0.0 - l2::inner_product_with(self.lvl, &self.q, v)
                } else {
                    l2::l2sqr_with(self.lvl, &self.q, v)
                };
            }
            super::offer(self.lvl, out, bid, sel, heap);
        }
    }
}

impl Persist for IndexIVFFlat {
    const KIND: &'static str = "IndexIVFFlat";

    fn to_file(&self) -> FileWriter<'_> {
        let mut w = FileWriter::new(Self::KIND);
        self.base.write_meta(&mut w);
        w
    }

    fn from_file(r: &FileReader) -> Result<Self> {
        let base = IvfBase::read_meta(r, |d| d, "IndexIVFFlat")?;
        for l in 0..base.nlist {
            crate::distance::check_finite(base.lists.codes(l), base.d, "list_codes")
                .map_err(|e| r.err(e))?;
        }
        Ok(IndexIVFFlat {
            base,
            train_params: IvfTrainParams::default(),
        })
    }
}
