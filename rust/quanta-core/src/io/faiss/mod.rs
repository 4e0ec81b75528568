//! faiss index files, both directions: [`read_faiss_bytes`] / [`read_faiss_file`] load a file
//! written by faiss's `write_index` (or `write_index_binary`) as the quanta index with the same
//! semantics; [`to_faiss_bytes`] / [`write_faiss_file`] write a quanta index so that faiss's
//! `read_index` loads the equivalent faiss index.
//!
//! | faiss (fourcc)                                  | quanta                          |
//! |-------------------------------------------------|---------------------------------|
//! | `IndexFlatL2` / `IndexFlatIP` (`IxF2`, `IxFI`)   | `IndexFlat`                     |
//! | `IndexPQ` (`IxPq`)                               | `IndexPQ`                       |
//! | `IndexPQFastScan` (`IPfs`)                       | `IndexPQFastScan`               |
//! | `IndexIVFFlat` (`IwFl`)                          | `IndexIVFFlat`                  |
//! | `IndexIVFPQ` (`IwPQ`)                            | `IndexIVFPQ`                    |
//! | `IndexIVFPQFastScan` (`IwPf`)                    | `IndexIVFPQFastScan`            |
//! | `IndexIDMap` / `IndexIDMap2` (`IxMp`, `IxM2`)    | `IndexIDMap`                    |
//! | `IndexPreTransform` (`IxPT`) of one rotation     | `IndexPreTransform` (OPQMatrix) |
//! | `IndexRefineFlat` (`IxRF`, flat refine index)    | `IndexRefineFlat`               |
//! | `IndexBinaryFlat` / `IndexBinaryIDMap`           | `IndexBinaryFlat`               |
//!
//! The faiss layout is the content of the C++ objects, little-endian (faiss
//! `impl/index_write.cpp`): a fourcc per object, `WRITE1` scalars (`int` 4 bytes, `size_t` /
//! `idx_t` 8, `bool` 1), vectors as a `size_t` count then the values. A faiss file is input from
//! strangers: every read is bounds-checked, every count is checked against the bytes left before
//! anything is allocated, trailing bytes are an error, and the parsed index then goes through the
//! same checks as a native file. Anything wrong is an [`Error::Format`] naming the file, the
//! byte offset and the field.
//!
//! What does not carry over: faiss's direct map (quanta finds ids in the lists), precomputed
//! IVFPQ tables (recomputed on load), PQ bias correction (faiss has none: loaded PQ indexes
//! have zero bias terms, writing one with `bias_correction` on is an error), faiss's fast-scan
//! `implem`/`qbs` tuning knobs, and `IndexRefineFlat.k_factor` below 1 or fractional (rounded
//! up: quanta's is an integer).

mod codes;
mod cursor;
mod read;
mod write;

use crate::error::{Error, Result};
use crate::index::{read_index_file, LoadedIndex};
use crate::io::FileReader;
use cursor::{Cursor, Out};
use std::path::Path;

/// Deepest nesting of indexes accepted (IDMap over PreTransform over Refine over IVF is 4).
const MAX_DEPTH: usize = 8;
/// Largest IVF `nlist` accepted.
const IVF_MAX_NLIST: usize = 1 << 31;

/// faiss index fourccs and the classes they stand for (readable or not), for messages and for
/// recognizing a faiss file.
const FOURCCS: &[(&[u8; 4], &str)] = &[
    (b"IxF2", "IndexFlatL2"),
    (b"IxFI", "IndexFlatIP"),
    (b"IxFl", "IndexFlat"),
    (b"IxPq", "IndexPQ"),
    (b"IPfs", "IndexPQFastScan"),
    (b"IwFl", "IndexIVFFlat"),
    (b"IwPQ", "IndexIVFPQ"),
    (b"IwPf", "IndexIVFPQFastScan"),
    (b"IxMp", "IndexIDMap"),
    (b"IxM2", "IndexIDMap2"),
    (b"IxPT", "IndexPreTransform"),
    (b"IxRF", "IndexRefine"),
    (b"IBxF", "IndexBinaryFlat"),
    (b"IBMp", "IndexBinaryIDMap"),
    (b"IBM2", "IndexBinaryIDMap2"),
    (b"IxHe", "IndexLSH"),
    (b"IxSQ", "IndexScalarQuantizer"),
    (b"IwSq", "IndexIVFScalarQuantizer"),
    (b"IwFd", "IndexIVFFlatDedup"),
    (b"IwQR", "IndexIVFPQR"),
    (b"IvPQ", "IndexIVFPQ (pre-2018 layout)"),
    (b"IvFl", "IndexIVFFlat (pre-2018 layout)"),
    (b"IwRQ", "IndexIVFResidualQuantizer"),
    (b"IxRq", "IndexResidualQuantizer"),
    (b"IxLS", "IndexLocalSearchQuantizer"),
    (b"Ix2L", "Index2Layer"),
    (b"IxLa", "IndexLattice"),
    (b"IHNf", "IndexHNSWFlat"),
    (b"IHNp", "IndexHNSWPQ"),
    (b"IHNs", "IndexHNSWSQ"),
    (b"IHN2", "IndexHNSW2Level"),
    (b"IHc2", "IndexHNSWCagra"),
    (b"INSf", "IndexNSGFlat"),
    (b"Imiq", "MultiIndexQuantizer"),
    (b"Ixrq", "IndexRaBitQ"),
    (b"Iwrq", "IndexIVFRaBitQ"),
    (b"IRMf", "IndexRowwiseMinMax"),
    (b"IBwF", "IndexBinaryIVF"),
    (b"IBHf", "IndexBinaryHNSW"),
    (b"IBHh", "IndexBinaryHash"),
    (b"IBFf", "IndexBinaryFromFloat"),
    (b"null", "an empty index slot"),
];

/// Binary-index fourccs (faiss `read_index_binary`).
fn is_binary_fourcc(h: &[u8; 4]) -> bool {
    h[0] == b'I' && h[1] == b'B'
}

/// "faiss IndexHNSWFlat ('IHNf')", or the bytes escaped when they name no faiss class.
fn fourcc_name(h: &[u8; 4]) -> String {
    let shown: String = h
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    match FOURCCS.iter().find(|(f, _)| *f == h) {
        Some((_, name)) => format!("faiss {name} ('{shown}')"),
        None => format!("fourcc '{shown}' (not a faiss index type)"),
    }
}

/// Kinds of quanta index a faiss file can hold ([`to_faiss_bytes`] refuses the others).
pub const FAISS_KINDS: &[&str] = &[
    "IndexFlat",
    "IndexPQ",
    "IndexPQFastScan",
    "IndexScalarQuantizer",
    "IndexIVFFlat",
    "IndexIVFPQ",
    "IndexIVFPQFastScan",
    "IndexIVFScalarQuantizer",
    "IndexIDMap",
    "IndexPreTransform",
    "IndexRefineFlat",
    "IndexBinaryFlat",
];

/// Whether the file at `path` starts like a faiss index file (false if it cannot be read:
/// the quanta reader then reports why).
pub fn is_faiss_file(path: impl AsRef<Path>) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path.as_ref())
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_faiss(&head)
}

/// Whether `prefix` (the first 4 bytes of a file, at least) starts like a faiss index file.
pub fn is_faiss(prefix: &[u8]) -> bool {
    prefix.len() >= 4 && FOURCCS.iter().any(|(f, _)| prefix[..4] == f[..])
}

/// Load the faiss index file held in `bytes`; errors name `origin`.
pub fn read_faiss_bytes(bytes: &[u8], origin: &str) -> Result<LoadedIndex> {
    let mut c = Cursor::new(bytes, origin);
    let h = c.fourcc("fourcc")?;
    let native = if is_binary_fourcc(&h) {
        read::binary(&mut c, h)?
    } else {
        // index() reads the fourcc itself
        c = Cursor::new(bytes, origin);
        read::index(&mut c, 0)?.w
    };
    if !c.at_end() {
        return Err(c.err(format!("{} trailing bytes after the index", c.remaining())));
    }
    let file = native.to_bytes()?;
    let r = FileReader::from_bytes_named(&file, &format!("{origin} (faiss file)"))?;
    read_index_file(&r)
}

/// Load the faiss index file at `path`.
pub fn read_faiss_file(path: impl AsRef<Path>) -> Result<LoadedIndex> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err(Error::Format(format!(
            "{}: is a directory, not an index file",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        context: format!("cannot read {}", path.display()),
        source,
    })?;
    read_faiss_bytes(&bytes, &path.display().to_string())
}

/// The faiss file of the index whose quanta file is `native` (float or binary).
pub fn to_faiss_bytes(native: &FileReader) -> Result<Vec<u8>> {
    let mut o = Out::default();
    if crate::index::is_binary_kind(native.kind()) {
        write::binary(&mut o, native)?;
    } else {
        write::index(&mut o, native)?;
    }
    Ok(o.buf)
}

/// Write the faiss file of `native` to `path` atomically (temporary file, fsync, rename).
pub fn write_faiss_file(native: &FileReader, path: impl AsRef<Path>) -> Result<()> {
    let bytes = to_faiss_bytes(native)?;
    crate::io::write::write_atomic_with(path.as_ref(), |out| {
        use std::io::Write;
        out.write_all(&bytes).map_err(|source| Error::Io {
            context: "writing".into(),
            source,
        })
    })
}

#[cfg(test)]
mod tests;
