//! The quanta file format: one versioned, checksummed binary container for every index type.
//!
//! An index is written as a *kind* tag (its type, e.g. `"IndexFlat"`), a typed key/value
//! metadata section (`d`, `metric`, `M`, `nbits`, ...) and named, typed array sections
//! (`vectors`, `codes`, `ids`, ...). Index types plug in by implementing [`Persist`]: build a
//! [`FileWriter`] in `to_file`, read a [`FileReader`] in `from_file`. Sections come back as
//! [`SharedSlice`]s, zero-copy views of the loaded file (read into memory or memory-mapped).
//!
//! # Layout
//!
//! All integers are **little-endian**, on every host (big-endian hosts write the same bytes
//! and decode sections into owned copies instead of viewing them). Offsets are from the start
//! of the file.
//!
//! Header (64 bytes):
//!
//! | offset | size | field                                                                  |
//! |-------:|-----:|------------------------------------------------------------------------|
//! |      0 |    8 | magic `89 51 55 41 4E 54 41 0A` (`"\x89QUANTA\n"`)                      |
//! |      8 |    2 | format major version (u16) — readers reject any other major            |
//! |     10 |    2 | format minor version (u16) — additions old readers may ignore          |
//! |     12 |    4 | number of sections `n` (u32), the metadata section included            |
//! |     16 |    8 | total file length in bytes (u64)                                       |
//! |     24 |    4 | flags (u32), 0; reserved                                               |
//! |     28 |    4 | header CRC-32 over bytes 0..28, 32..64 and the whole section table     |
//! |     32 |   32 | kind tag: 1..=32 printable ASCII bytes, NUL-padded                     |
//!
//! Section table (`n` × 64 bytes, at offset 64):
//!
//! | offset | size | field                                                                  |
//! |-------:|-----:|------------------------------------------------------------------------|
//! |      0 |   16 | name: 1..=16 printable ASCII bytes, NUL-padded, unique                 |
//! |     16 |    1 | dtype tag: 1 u8, 2 i32, 3 i64, 4 u64, 5 f32, 6 f64, 16 metadata        |
//! |     17 |    3 | reserved, 0                                                            |
//! |     20 |    4 | CRC-32 of the payload                                                  |
//! |     24 |    8 | payload offset (u64): multiple of 64, after the previous payload       |
//! |     32 |    8 | payload length in bytes (u64)                                          |
//! |     40 |    8 | element count (u64): length / dtype size (metadata: number of entries) |
//! |     48 |   16 | reserved, 0                                                            |
//!
//! Payloads follow in table order, each at the next multiple of 64 bytes (so `f32`/`i64`
//! arrays can be viewed in place from a page-aligned mapping); the gaps are zero bytes and the
//! file ends with the last payload. The first section is always `meta` (dtype 16): entries of
//! `tag u8` (1 u64, 2 i64, 3 f64, 4 string), `key_len u8`, key (1..=64 printable ASCII), then
//! 8 value bytes, or for a string `len u32` and UTF-8 bytes.
//!
//! The checksum is CRC-32 (IEEE, as zlib's `crc32`, via `crc32fast`).
//!
//! # Guarantees
//!
//! A reader checks magic → version → that the table fits in the file → header CRC → declared
//! vs actual file length → every section's bounds, alignment, order, length/count, zero
//! padding → every payload CRC → the metadata encoding, before any data is used; so every
//! byte of a file is covered by a check, and a truncated, corrupted or foreign file is an
//! [`Error::Format`](crate::Error::Format) naming the file and the problem. No length read
//! from a file is used to allocate before it has been checked against the file's real size.
//! Files are written atomically ([`FileWriter::write_atomic`]).

pub mod faiss;
mod format;
mod read;
mod shared;
mod write;

pub use format::{
    checksum, Dtype, MetaValue, ALIGN, MAGIC, MAX_KEY_LEN, MAX_KIND_LEN, MAX_NAME_LEN,
    VERSION_MAJOR, VERSION_MINOR,
};
pub use read::{read_index_kind, FileReader};
pub use shared::{Element, SharedSlice};
pub use write::FileWriter;

use crate::error::Result;
use std::path::Path;

/// An index type that can be saved to / loaded from a quanta file.
///
/// Implement [`Persist::KIND`], [`Persist::to_file`] and [`Persist::from_file`]; `write`,
/// `read`, `to_bytes` and `from_bytes` come for free. `from_file` must validate what it reads
/// (metadata ranges, section lengths against each other) and report problems with
/// [`FileReader::err`], so that a file that passed the checksums but is inconsistent is still
/// an `Error::Format`, never a panic.
pub trait Persist: Sized {
    /// Kind tag written in the header (e.g. `"IndexFlat"`); unique per type.
    const KIND: &'static str;

    /// A writer holding this object's metadata and (borrowed) arrays.
    fn to_file(&self) -> FileWriter<'_>;

    /// Rebuild the object from a verified file whose kind is [`Self::KIND`].
    fn from_file(r: &FileReader) -> Result<Self>;

    /// Write to `path` atomically.
    fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_file().write_atomic(path)
    }

    /// Read from `path`; with `mmap`, large arrays stay views of the mapped file (see
    /// [`FileReader::open`]).
    fn read(path: impl AsRef<Path>, mmap: bool) -> Result<Self> {
        let r = FileReader::open(path, mmap)?;
        r.expect_kind(Self::KIND)?;
        Self::from_file(&r)
    }

    /// The file in memory.
    fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_file().to_bytes()
    }

    /// Read from a file held in memory.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let r = FileReader::from_bytes(bytes)?;
        r.expect_kind(Self::KIND)?;
        Self::from_file(&r)
    }
}

#[cfg(test)]
mod tests;
