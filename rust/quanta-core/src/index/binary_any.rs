//! The binary sibling of [`Index`](super::Index): [`BinaryIndex`], implemented by every index
//! over packed binary codes (Hamming distance), and [`AnyBinaryIndex`] / [`read_any_binary`].
//!
//! Same shape as `Index` with `u8` codes (n × `code_size` bytes) for vectors and `i32`
//! distances; search parameters are the same [`SearchParams`] (binary indexes read the
//! selector only).

use super::binary::{BinarySearchResult, RangeResult as BinaryRangeResult};
use super::{unsupported, AnyIndex, IdSelector, IndexBinaryFlat, SearchParams};
use crate::control::Control;
use crate::error::Result;
use crate::io::{FileReader, FileWriter, Persist};
use std::any::Any;
use std::fmt;
use std::path::Path;

/// An index over packed binary codes (faiss `IndexBinary`). Every search honours
/// [`SearchParams::selector`] inside its scan.
pub trait BinaryIndex: Send + Sync + fmt::Debug + 'static {
    /// Kind tag of its files, as [`Persist::KIND`].
    fn kind(&self) -> &'static str;
    /// Bits per code (faiss calls it `d`).
    fn nbits(&self) -> usize;
    /// Bytes per code.
    fn code_size(&self) -> usize {
        self.nbits().div_ceil(8)
    }
    /// Number of stored codes.
    fn ntotal(&self) -> usize;
    /// Whether `add`/`search` may be called.
    fn is_trained(&self) -> bool {
        true
    }
    /// Append codes (n × code_size bytes).
    fn add(&mut self, codes: &[u8], ctl: &Control) -> Result<()>;
    /// Append codes with explicit ids.
    fn add_with_ids(&mut self, _codes: &[u8], _ids: &[i64], _ctl: &Control) -> Result<()> {
        Err(unsupported(
            self.kind(),
            "add_with_ids",
            "it numbers codes itself",
        ))
    }
    /// k nearest codes of each query (nq × k, padded with (`i32::MAX`, -1)).
    fn search(
        &self,
        q: &[u8],
        k: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<BinarySearchResult>;
    /// Every code at Hamming distance `< radius` of each query (faiss semantics).
    fn range_search(
        &self,
        q: &[u8],
        radius: usize,
        params: &SearchParams,
        ctl: &Control,
    ) -> Result<BinaryRangeResult>;
    /// Remove every entry the selector accepts; returns how many were removed.
    fn remove_ids(&mut self, _sel: &IdSelector) -> Result<usize> {
        Err(unsupported(self.kind(), "remove_ids", "rebuild it"))
    }
    /// The stored code with id `id`.
    fn reconstruct(&self, id: i64) -> Result<Vec<u8>>;
    /// Remove every code.
    fn reset(&mut self);
    /// The file writer of [`Persist::to_file`] (object-safe form).
    fn writer(&self) -> FileWriter<'_>;
    /// A deep copy.
    fn clone_box(&self) -> AnyBinaryIndex;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to the concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// An owned binary index of any type.
pub type AnyBinaryIndex = Box<dyn BinaryIndex>;

impl Clone for AnyBinaryIndex {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl dyn BinaryIndex {
    /// The concrete index, if it is a `T`.
    pub fn downcast_ref<T: BinaryIndex>(&self) -> Option<&T> {
        self.as_any().downcast_ref()
    }

    /// The concrete index, if it is a `T`.
    pub fn downcast_mut<T: BinaryIndex>(&mut self) -> Option<&mut T> {
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

/// Whether files of kind `kind` hold a binary index ([`read_any_binary`] loads them).
pub fn is_binary_kind(kind: &str) -> bool {
    kind == IndexBinaryFlat::KIND
}

/// Load any binary index from a verified file: the kind tag picks the type.
pub fn read_any_binary(r: &FileReader) -> Result<AnyBinaryIndex> {
    match r.kind() {
        IndexBinaryFlat::KIND => Ok(Box::new(IndexBinaryFlat::from_file(r)?)),
        other => Err(r.err(format!(
            "holds an index of kind {other:?}, which is not a binary index this version of \
             quanta can read"
        ))),
    }
}

/// An index of either family, as [`read_index_file`] loads it.
#[derive(Debug)]
pub enum LoadedIndex {
    /// A float-vector index.
    Float(AnyIndex),
    /// A binary index.
    Binary(AnyBinaryIndex),
}

/// Load an index of either family from a verified file.
pub fn read_index_file(r: &FileReader) -> Result<LoadedIndex> {
    Ok(if is_binary_kind(r.kind()) {
        LoadedIndex::Binary(read_any_binary(r)?)
    } else {
        LoadedIndex::Float(super::read_any(r)?)
    })
}
