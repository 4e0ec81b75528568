//! [`FileReader`]: opens a file (read into memory or memory-mapped), verifies it completely,
//! then hands out metadata and zero-copy section views.

use super::format::{
    checksum, decode_meta, format_err, parse_header, parse_table, Dtype, Entry, Header, MetaValue,
    ENTRY_LEN, HEADER_LEN, META_SECTION,
};
use super::shared::{map_file, AlignedBuf, Bytes, Element, SharedSlice};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// A verified quanta file. Opening checks magic, version, header checksum, every section's
/// bounds, alignment, length and checksum, the zero padding and the metadata encoding; after
/// that, section and metadata getters only fail for a missing name or a wrong type.
pub struct FileReader {
    bytes: Arc<Bytes>,
    origin: String,
    kind: String,
    version: (u16, u16),
    entries: Vec<Entry>,
    meta: BTreeMap<String, MetaValue>,
}

/// Prefix a format error with where the bytes came from; I/O errors already name the path.
fn located(origin: &str, e: Error) -> Error {
    match e {
        Error::Format(m) => Error::Format(format!("{origin}: {m}")),
        other => other,
    }
}

fn io_err(path: &Path, what: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: format!("cannot read {}: {what}", path.display()),
        source,
    }
}

/// Read exactly `buf.len()` bytes; a short read means the file shrank while we read it.
fn read_full(f: &mut File, buf: &mut [u8], path: &Path) -> Result<()> {
    f.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format_err(format!(
            "{}: truncated file (it shrank while being read)",
            path.display()
        )),
        _ => io_err(path, "reading", e),
    })
}

/// Open `path` and read its first bytes: (file, actual size, header, header + table bytes).
fn open_header(path: &Path) -> Result<(File, u64, Header, Vec<u8>)> {
    let mut f = File::open(path).map_err(|e| io_err(path, "opening", e))?;
    let md = f
        .metadata()
        .map_err(|e| io_err(path, "reading its size", e))?;
    if md.is_dir() {
        return Err(format_err(format!(
            "{}: is a directory, not a quanta index file",
            path.display()
        )));
    }
    let len = md.len();
    let mut head = vec![0u8; len.min(HEADER_LEN as u64) as usize];
    read_full(&mut f, &mut head, path)?;
    let h = parse_header(&head, len).map_err(|e| located(&path.display().to_string(), e))?;
    // parse_header checked that the table fits in the file: this allocation is bounded by it
    head.resize(HEADER_LEN + h.n_sections * ENTRY_LEN, 0);
    read_full(&mut f, &mut head[HEADER_LEN..], path)?;
    Ok((f, len, h, head))
}

impl FileReader {
    /// Open and verify `path`. With `mmap`, the file is memory-mapped and sections are views of
    /// the mapping (pages are loaded on demand and shared with the OS page cache); otherwise
    /// it is read into one 64-byte-aligned heap buffer and sections are views of that.
    ///
    /// Either way every checksum is verified here, which reads the whole file once: for a
    /// mapping this faults in every page, so opening costs about one sequential read of the
    /// file (then the data is hot in the page cache). Quanta files are little-endian; on a
    /// big-endian host sections are decoded into owned copies instead of viewed.
    ///
    /// A mapped file must not be modified in place while it is open (quanta never does:
    /// [`super::FileWriter::write_atomic`] replaces files by rename).
    pub fn open(path: impl AsRef<Path>, mmap: bool) -> Result<Self> {
        let path = path.as_ref();
        let (mut f, len, h, head) = open_header(path)?;
        let origin = path.display().to_string();
        let size = usize::try_from(len)
            .map_err(|_| format_err(format!("{origin}: file too large for this platform")))?;
        let bytes = if mmap {
            // SAFETY: see `map_file`'s contract, documented on this function: the mapping is
            // read-only and quanta never modifies files in place.
            let m = unsafe { map_file(&f) }.map_err(|e| io_err(path, "memory-mapping", e))?;
            if m.len() != size {
                return Err(format_err(format!(
                    "{origin}: file changed size while opening"
                )));
            }
            Bytes::Mapped(m)
        } else {
            let mut buf = AlignedBuf::zeroed(size);
            let b = buf.as_bytes_mut();
            b[..head.len()].copy_from_slice(&head);
            read_full(&mut f, &mut b[head.len()..], path)?;
            Bytes::Heap(buf)
        };
        Self::verify(Arc::new(bytes), origin, &h)
    }

    /// Verify a file held in memory; the bytes are copied once into an aligned buffer.
    pub fn from_bytes(bytes: impl AsRef<[u8]>) -> Result<Self> {
        Self::from_bytes_named(bytes, "<bytes>")
    }

    /// [`from_bytes`](Self::from_bytes), with errors naming `origin` as where the bytes came
    /// from.
    pub fn from_bytes_named(bytes: impl AsRef<[u8]>, origin: &str) -> Result<Self> {
        let b = bytes.as_ref();
        let origin = origin.to_string();
        let h = parse_header(b, b.len() as u64).map_err(|e| located(&origin, e))?;
        Self::verify(Arc::new(Bytes::Heap(AlignedBuf::copy_of(b))), origin, &h)
    }

    fn verify(bytes: Arc<Bytes>, origin: String, h: &Header) -> Result<Self> {
        let all = bytes.as_slice();
        let (kind, entries) =
            parse_table(all, h, all.len() as u64).map_err(|e| located(&origin, e))?;
        let mut meta = BTreeMap::new();
        for e in &entries {
            // parse_table checked offset + len <= file size
            let payload = &all[e.offset as usize..(e.offset + e.len) as usize];
            let crc = checksum(payload);
            if crc != e.crc {
                return Err(format_err(format!(
                    "{origin}: section '{}' is corrupted (checksum mismatch: stored {:08x}, \
                     computed {crc:08x})",
                    e.name, e.crc
                )));
            }
            if e.dtype == Dtype::Meta {
                if e.name != META_SECTION {
                    return Err(format_err(format!(
                        "{origin}: metadata section has the unexpected name '{}'",
                        e.name
                    )));
                }
                meta = decode_meta(payload, e.count).map_err(|err| located(&origin, err))?;
            }
        }
        Ok(FileReader {
            bytes,
            origin,
            kind,
            version: h.version,
            entries,
            meta,
        })
    }

    /// A `Error::Format` naming this file, for index-specific checks in `from_file`.
    pub fn err(&self, msg: impl std::fmt::Display) -> Error {
        format_err(format!("{}: {msg}", self.origin))
    }

    /// The file path (or `<bytes>`), as used in error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The index type tag from the header (e.g. `"IndexFlat"`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Error unless the file holds an index of type `kind`.
    pub fn expect_kind(&self, kind: &str) -> Result<()> {
        if self.kind != kind {
            return Err(self.err(format!("holds a {}, not a {kind}", self.kind)));
        }
        Ok(())
    }

    /// (major, minor) format version of the file.
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// Whether the file is memory-mapped.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.bytes, Bytes::Mapped(_))
    }

    /// Names of the data sections (the metadata section excluded), in file order.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| e.dtype != Dtype::Meta)
            .map(|e| e.name.as_str())
    }

    /// Whether data section `name` exists.
    pub fn has_section(&self, name: &str) -> bool {
        self.section_names().any(|n| n == name)
    }

    /// Section `name` as `T` elements: a zero-copy view of the file bytes (an owned copy on
    /// big-endian hosts). Missing section or another dtype → `Error::Format` naming it.
    pub fn section<T: Element>(&self, name: &str) -> Result<SharedSlice<T>> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name && e.dtype != Dtype::Meta)
            .ok_or_else(|| {
                let have: Vec<_> = self.section_names().collect();
                self.err(format!(
                    "missing section '{name}' (this {} file has: {})",
                    self.kind,
                    have.join(", ")
                ))
            })?;
        if e.dtype != T::DTYPE {
            return Err(self.err(format!(
                "section '{name}' holds {}, expected {}",
                e.dtype.name(),
                T::DTYPE.name()
            )));
        }
        let (offset, count) = (e.offset as usize, e.count as usize);
        Ok(
            SharedSlice::view(&self.bytes, offset, count).unwrap_or_else(|| {
                SharedSlice::decode(&self.bytes.as_slice()[offset..offset + e.len as usize])
            }),
        )
    }

    /// The nested quanta file held in section `name` (see `FileWriter::section_nested`),
    /// verified like any file; errors name this file and the section.
    pub fn nested(&self, name: &str) -> Result<FileReader> {
        let bytes = self.section_u8(name)?;
        FileReader::from_bytes(&bytes[..])
            .map_err(|e| self.err(format!("section {name:?} holds a bad nested file: {e}")))
    }

    /// `u8` section (see [`FileReader::section`]).
    pub fn section_u8(&self, name: &str) -> Result<SharedSlice<u8>> {
        self.section(name)
    }

    /// `i32` section.
    pub fn section_i32(&self, name: &str) -> Result<SharedSlice<i32>> {
        self.section(name)
    }

    /// `i64` section.
    pub fn section_i64(&self, name: &str) -> Result<SharedSlice<i64>> {
        self.section(name)
    }

    /// `u64` section.
    pub fn section_u64(&self, name: &str) -> Result<SharedSlice<u64>> {
        self.section(name)
    }

    /// `f32` section.
    pub fn section_f32(&self, name: &str) -> Result<SharedSlice<f32>> {
        self.section(name)
    }

    /// `f64` section.
    pub fn section_f64(&self, name: &str) -> Result<SharedSlice<f64>> {
        self.section(name)
    }

    /// Every metadata entry, by key.
    pub fn meta_entries(&self) -> &BTreeMap<String, MetaValue> {
        &self.meta
    }

    /// Metadata `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.meta.get(key)
    }

    fn meta_req(&self, key: &str) -> Result<&MetaValue> {
        self.meta.get(key).ok_or_else(|| {
            self.err(format!(
                "missing metadata '{key}' (required for a {})",
                self.kind
            ))
        })
    }

    fn wrong_type(&self, key: &str, v: &MetaValue, want: &str) -> Error {
        self.err(format!(
            "metadata '{key}' is a {}, expected {want}",
            v.type_name()
        ))
    }

    /// Unsigned metadata `key`; missing or another type → `Error::Format` naming the key.
    pub fn meta_u64(&self, key: &str) -> Result<u64> {
        match self.meta_req(key)? {
            MetaValue::U64(x) => Ok(*x),
            v => Err(self.wrong_type(key, v, "u64")),
        }
    }

    /// Unsigned metadata `key` as a `usize` (sizes, dimensions).
    pub fn meta_usize(&self, key: &str) -> Result<usize> {
        let v = self.meta_u64(key)?;
        usize::try_from(v).map_err(|_| self.err(format!("metadata '{key}' = {v} is too large")))
    }

    /// Signed metadata `key`.
    pub fn meta_i64(&self, key: &str) -> Result<i64> {
        match self.meta_req(key)? {
            MetaValue::I64(x) => Ok(*x),
            v => Err(self.wrong_type(key, v, "i64")),
        }
    }

    /// Float metadata `key`.
    pub fn meta_f64(&self, key: &str) -> Result<f64> {
        match self.meta_req(key)? {
            MetaValue::F64(x) => Ok(*x),
            v => Err(self.wrong_type(key, v, "f64")),
        }
    }

    /// String metadata `key`.
    pub fn meta_str(&self, key: &str) -> Result<&str> {
        match self.meta_req(key)? {
            MetaValue::Str(s) => Ok(s),
            v => Err(self.wrong_type(key, v, "string")),
        }
    }
}

/// The kind tag of the index file at `path`, reading and verifying only its header and
/// section table (cheap: the payloads are checked when the file is read). For dispatching to
/// the right type's `read`.
pub fn read_index_kind(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let (_, len, h, head) = open_header(path)?;
    let (kind, _) =
        parse_table(&head, &h, len).map_err(|e| located(&path.display().to_string(), e))?;
    Ok(kind)
}
