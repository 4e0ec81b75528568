//! The one index protocol: [`Index`], implemented by every float-vector index, and
//! [`AnyIndex`], an owned index of any type, as composites hold them and [`read_any`] loads them.
//!
//! Shared behaviour lives here once: argument checks (`validate`), the range search every index
//! gets from its k-NN search unless it has a faster one, and the kind → type table of files.

use super::{IdSelector, IndexFlat, SearchParams, SearchResult};
use crate::control::Control;
use crate::distance::Metric;
use crate::error::{Error, Result};
use crate::io::{FileReader, FileWriter, Persist};
use crate::ivf::{
    IndexIVFFlat, IndexIVFPQ, IndexIVFPQFastScan, IndexIVFRaBitQ, IndexIVFScalarQuantizer,
};
use crate::validate::{check_batch, check_radius};
use std::any::Any;
use std::fmt;
use std::path::Path;

/// Range-search result, faiss layout: the hits of query `i` are `dist[lims[i]..lims[i+1]]` /
/// `ids[..]`, best first (ascending L2, descending inner product), ties by id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeResult {
    /// nq + 1 offsets.
    pub lims: Vec<usize>,
    /// Distances (L2) or similarities (inner product).
    pub dist: Vec<f32>,
    /// Ids.
    pub ids: Vec<i64>,
}

/// An index over float vectors (faiss `Index`): train, add, search, persist.
///
/// Ids: indexes that number vectors by position (`IndexFlat`, `IndexPQ`, ...) return
/// `Unsupported`-style errors from `add_with_ids` (wrap them in `IndexIDMap`); IVF indexes
/// store explicit ids. Every search honours [`SearchParams::selector`] inside its scan.
pub trait Index: Send + Sync + fmt::Debug + 'static {
    /// Kind tag of its files (`"IndexFlat"`, ...), as [`Persist::KIND`].
    fn kind(&self) -> &'static str;
    /// Dimension.
    fn d(&self) -> usize;
    /// Metric.
    fn metric(&self) -> Metric;
    /// Number of stored vectors.
    fn ntotal(&self) -> usize;
    /// Whether `add`/`search` may be called.
    fn is_trained(&self) -> bool {
        true
    }
    /// Learn the index's parameters from `x` (n × d) with its default training settings;
    /// returns warnings (e.g. too few training points). No-op for indexes without training.
    fn train(&mut self, x: &[f32], _ctl: &Control) -> Result<Vec<String>> {
        check_batch(x, self.d(), "x")?;
        Ok(Vec::new())
    }
    /// Append `x` (n × d); ids continue from `ntotal` (or as the index numbers them).
    fn add(&mut self, x: &[f32], ctl: &Control) -> Result<()>;
    /// Append `x` with explicit ids.
    fn add_with_ids(&mut self, _x: &[f32], _ids: &[i64], _ctl: &Control) -> Result<()> {
        Err(unsupported(
            self.kind(),
            "add_with_ids",
            "wrap it in IndexIDMap",
        ))
    }
    /// k best stored vectors of each query (nq × k, padded with (`metric.pad()`, -1)).
    fn search(
        &self,
        q: &[f32],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<SearchResult>;
    /// Every stored vector within `radius` of each query (L2: distance `< radius`; inner
    /// product: similarity `> radius`, as faiss). The default runs the k-NN search with
    /// `k = ntotal` over small query batches, so approximate indexes return what their
    /// search would (IVF: the probed lists only).
    fn range_search(
        &self,
        q: &[f32],
        radius: f32,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<RangeResult> {
        range_by_knn(self, q, radius, params, ctl)
    }
    /// Remove every entry the selector accepts; returns how many were removed.
    fn remove_ids(&mut self, _sel: &IdSelector) -> Result<usize> {
        Err(unsupported(
            self.kind(),
            "remove_ids",
            "use an IVF index or IndexIDMap",
        ))
    }
    /// Remove every entry the selector accepts from an index whose ids are its positions
    /// `0..ntotal`, and renumber the rest so that they stay positions (what a composite
    /// keeping its own per-position data, `IndexRefineFlat`, needs of its base). Indexes
    /// numbering by position do that in `remove_ids`; IVF indexes remap their stored ids.
    fn remove_renumbering(&mut self, sel: &IdSelector) -> Result<usize> {
        if self.stores_ids() {
            return Err(unsupported(
                self.kind(),
                "removal by position",
                "its ids are not positions",
            ));
        }
        self.remove_ids(sel)
    }
    /// Move a copy of every entry of `other` into this index: `other` must be of the same kind
    /// with the same trained parameters and search defaults ([`check_same_training`]). Indexes
    /// that store ids keep `other`'s ids; positional ones append (`other`'s id `i` becomes
    /// `ntotal + i`), as faiss's `merge_from` with `add_id = 0`.
    fn merge_from(&mut self, _other: &dyn Index) -> Result<()> {
        Err(unsupported(
            self.kind(),
            "merge_from",
            "re-add the vectors (or use an IVF index, whose lists merge)",
        ))
    }
    /// The (decoded) vector with id `id`.
    fn reconstruct(&self, id: i64) -> Result<Vec<f32>>;
    /// Remove every vector; training is kept.
    fn reset(&mut self);
    /// Whether some data is still a view of a memory-mapped file.
    fn is_mapped(&self) -> bool {
        false
    }
    /// Whether the index keeps the caller's ids itself (`add_with_ids`; IVF indexes), rather
    /// than numbering its vectors by position: such an index needs no `IndexIDMap` (and its
    /// `remove_ids` does not renumber, which an id map over it relies on).
    fn stores_ids(&self) -> bool {
        false
    }
    /// The file writer of [`Persist::to_file`] (object-safe form).
    fn writer(&self) -> FileWriter<'_>;
    /// A deep copy.
    fn clone_box(&self) -> AnyIndex;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to the concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// An owned index of any type.
pub type AnyIndex = Box<dyn Index>;

impl Clone for AnyIndex {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl dyn Index {
    /// The concrete index, if it is a `T`.
    pub fn downcast_ref<T: Index>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }

    /// The concrete index, if it is a `T`.
    pub fn downcast_mut<T: Index>(&mut self) -> Option<&mut T> {
        self.as_any_mut().downcast_mut()
    }

    /// Save atomically to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        self.writer().write_atomic(path)
    }

    /// The file, in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.writer().to_bytes()
    }
}

/// That `b` can be merged into `a`: same kind, and the same file once both are emptied (so
/// the same trained parameters, codebooks, rotations and search defaults, compared exactly).
pub fn check_same_training(a: &dyn Index, b: &dyn Index) -> Result<()> {
    if a.kind() != b.kind() {
        return Err(Error::invalid(format!(
            "cannot merge a {} into a {}",
            b.kind(),
            a.kind()
        )));
    }
    let empty = |x: &dyn Index| -> Result<Vec<u8>> {
        let mut c = x.clone_box();
        c.reset();
        c.writer().to_bytes()
    };
    if empty(a)? != empty(b)? {
        return Err(Error::invalid(format!(
            "cannot merge these {} indexes: their trained parameters (centroids, codebooks, \
             rotation) or search defaults differ; train once and copy the trained index",
            a.kind()
        )));
    }
    Ok(())
}

/// `other` as this index's own type, once [`check_same_training`] allowed merging it into
/// `this`: what every `merge_from` starts with.
pub fn merge_peer<'a, T: Index>(this: &T, other: &'a dyn Index) -> Result<&'a T> {
    check_same_training(this, other)?;
    Ok(other
        .as_any()
        .downcast_ref::<T>()
        .expect("check_same_training compared the kinds"))
}

/// The error of an operation an index type does not support.
pub fn unsupported(kind: &str, op: &str, hint: &str) -> Error {
    Error::invalid(format!("{kind} does not support {op}: {hint}"))
}

/// Implements the plumbing methods of [`Index`] (`kind`, `writer`, `clone_box`, `as_any*`)
/// for a type that is `Persist + Clone`.
#[macro_export]
macro_rules! index_plumbing {
    () => {
        fn kind(&self) -> &'static str {
            <Self as $crate::io::Persist>::KIND
        }
        fn writer(&self) -> $crate::io::FileWriter<'_> {
            <Self as $crate::io::Persist>::to_file(self)
        }
        fn clone_box(&self) -> $crate::index::AnyIndex {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    };
}

/// Implements [`Index`] methods that forward to the type's inherent methods of the same name
/// (`index_forward!(IndexPQ; ntotal, add, reconstruct, reset, is_mapped)`), so an index's
/// `impl Index` holds only what differs from its inherent API.
#[macro_export]
macro_rules! index_forward {
    ($ty:ty; $($m:ident),* $(,)?) => { $( $crate::index_forward!(@one $ty, $m); )* };
    (@one $ty:ty, ntotal) => {
        fn ntotal(&self) -> usize { <$ty>::ntotal(self) }
    };
    (@one $ty:ty, is_trained) => {
        fn is_trained(&self) -> bool { <$ty>::is_trained(self) }
    };
    (@one $ty:ty, add) => {
        fn add(&mut self, x: &[f32], ctl: &$crate::Control) -> $crate::Result<()> {
            <$ty>::add(self, x, ctl)
        }
    };
    (@one $ty:ty, add_with_ids) => {
        fn add_with_ids(
            &mut self, x: &[f32], ids: &[i64], ctl: &$crate::Control,
        ) -> $crate::Result<()> {
            <$ty>::add_with_ids(self, x, ids, ctl)
        }
    };
    (@one $ty:ty, remove_ids) => {
        fn remove_ids(&mut self, sel: &$crate::index::IdSelector) -> $crate::Result<usize> {
            Ok(<$ty>::remove_ids(self, sel))
        }
    };
    (@one $ty:ty, reconstruct) => {
        fn reconstruct(&self, id: i64) -> $crate::Result<Vec<f32>> { <$ty>::reconstruct(self, id) }
    };
    (@one $ty:ty, reset) => {
        fn reset(&mut self) { <$ty>::reset(self) }
    };
    (@one $ty:ty, is_mapped) => {
        fn is_mapped(&self) -> bool { <$ty>::is_mapped(self) }
    };
}

/// Load any index from a verified file: the kind tag picks the type.
pub fn read_any(r: &FileReader) -> Result<AnyIndex> {
    fn load<T: Index + Persist>(r: &FileReader) -> Result<AnyIndex> {
        Ok(Box::new(T::from_file(r)?))
    }
    let loader: fn(&FileReader) -> Result<AnyIndex> = match r.kind() {
        IndexFlat::KIND => load::<IndexFlat>,
        super::IndexIDMap::KIND => load::<super::IndexIDMap>,
        super::IndexPreTransform::KIND => load::<super::IndexPreTransform>,
        super::IndexRefineFlat::KIND => load::<super::IndexRefineFlat>,
        super::IndexPQ::KIND => load::<super::IndexPQ>,
        super::IndexPQFastScan::KIND => load::<super::IndexPQFastScan>,
        super::IndexRaBitQ::KIND => load::<super::IndexRaBitQ>,
        super::IndexScalarQuantizer::KIND => load::<super::IndexScalarQuantizer>,
        crate::lattice::IndexLattice::KIND => load::<crate::lattice::IndexLattice>,
        IndexIVFFlat::KIND => load::<IndexIVFFlat>,
        IndexIVFPQ::KIND => load::<IndexIVFPQ>,
        IndexIVFPQFastScan::KIND => load::<IndexIVFPQFastScan>,
        IndexIVFRaBitQ::KIND => load::<IndexIVFRaBitQ>,
        IndexIVFScalarQuantizer::KIND => load::<IndexIVFScalarQuantizer>,
        other => {
            return Err(r.err(format!(
                "holds an index of kind {other:?}, which is not a float-vector index this \
                 version of quanta can read"
            )))
        }
    };
    loader(r)
}

/// Load any index from `path` (`mmap`: large arrays stay views of the mapped file).
pub fn read_any_path(path: impl AsRef<Path>, mmap: bool) -> Result<AnyIndex> {
    read_any(&FileReader::open(path, mmap)?)
}

/// Load any index from a file held in memory.
pub fn read_any_bytes(bytes: &[u8]) -> Result<AnyIndex> {
    read_any(&FileReader::from_bytes(bytes)?)
}

/// Queries per k = ntotal search in [`range_by_knn`]: bounds the temporary `nq × ntotal`
/// result to about 2^22 entries (48 MiB).
fn range_batch(ntotal: usize) -> usize {
    ((1usize << 22) / ntotal.max(1)).max(1)
}

/// Range search through the k-NN search (see [`Index::range_search`]).
pub fn range_by_knn<I: Index + ?Sized>(
    index: &I,
    q: &[f32],
    radius: f32,
    params: &SearchParams,
    ctl: &Control,
) -> Result<RangeResult> {
    check_radius(radius)?;
    let d = index.d();
    let nq = check_batch(q, d, "queries")?;
    let n = index.ntotal();
    let mut out = RangeResult {
        lims: vec![0],
        ..Default::default()
    };
    if n == 0 {
        out.lims.resize(nq + 1, 0);
        return Ok(out);
    }
    let within = within_fn(index.metric(), radius);
    let batch = range_batch(n);
    for q0 in (0..nq).step_by(batch) {
        let q1 = (q0 + batch).min(nq);
        let (dist, ids) = index.search(&q[q0 * d..q1 * d], n, params, ctl)?;
        for qi in 0..q1 - q0 {
            let row = qi * n..(qi + 1) * n;
            for (&dv, &id) in dist[row.clone()].iter().zip(&ids[row]) {
                // results are sorted best first: the first miss ends the row
                if id < 0 || !within(dv) {
                    break;
                }
                out.dist.push(dv);
                out.ids.push(id);
            }
            out.lims.push(out.ids.len());
        }
    }
    Ok(out)
}

/// Whether a distance is inside the range (faiss semantics: L2 `< r`, inner product `> r`).
pub fn within_fn(metric: Metric, radius: f32) -> impl Fn(f32) -> bool {
    move |v| match metric {
        Metric::L2 => v < radius,
        Metric::InnerProduct => v > radius,
    }
}
