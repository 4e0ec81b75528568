//! [`FileWriter`]: collects metadata and borrowed sections, then lays them out, checksums them
//! and writes the file atomically (temporary file in the same directory, fsync, rename, fsync
//! of the directory).

use super::format::{
    align_up, checksum, encode_meta, header_checksum, put_padded, valid_name, Dtype, Entry,
    MetaValue, ENTRY_LEN, HEADER_LEN, MAGIC, MAX_KEY_LEN, MAX_KIND_LEN, MAX_NAME_LEN, META_SECTION,
    VERSION_MAJOR, VERSION_MINOR,
};
use super::shared::{le_bytes, Element};
use crate::error::{Error, Result};
use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

struct Pending<'a> {
    name: String,
    dtype: Dtype,
    bytes: Cow<'a, [u8]>,
    count: u64,
}

/// Builder of one quanta file. Sections borrow the caller's arrays (nothing is copied on
/// little-endian hosts); invalid names are reported by [`FileWriter::to_bytes`] /
/// [`FileWriter::write_atomic`].
///
/// ```
/// # use quanta_core::io::{FileReader, FileWriter};
/// let vectors = vec![1.0f32, 2.0, 3.0, 4.0];
/// let mut w = FileWriter::new("Example");
/// w.meta_u64("d", 2).meta_str("metric", "l2");
/// w.section_f32("vectors", &vectors);
/// let r = FileReader::from_bytes(w.to_bytes()?)?;
/// assert_eq!(r.kind(), "Example");
/// assert_eq!(r.meta_u64("d")?, 2);
/// assert_eq!(&*r.section_f32("vectors")?, &vectors[..]);
/// # Ok::<(), quanta_core::Error>(())
/// ```
pub struct FileWriter<'a> {
    kind: String,
    meta: Vec<(String, MetaValue)>,
    sections: Vec<Pending<'a>>,
    error: Option<String>,
}

impl<'a> FileWriter<'a> {
    /// A file of index type `kind` (1..=32 printable ASCII characters, e.g. `"IndexFlat"`).
    pub fn new(kind: &str) -> Self {
        let mut w = FileWriter {
            kind: kind.to_string(),
            meta: Vec::new(),
            sections: Vec::new(),
            error: None,
        };
        if !valid_name(kind, MAX_KIND_LEN) {
            w.fail(format!(
                "kind {kind:?} must be 1..={MAX_KIND_LEN} printable ASCII characters"
            ));
        }
        w
    }

    fn fail(&mut self, msg: String) {
        self.error.get_or_insert(msg);
    }

    /// Set metadata `key` (1..=64 printable ASCII characters); a second call replaces it.
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        if !valid_name(key, MAX_KEY_LEN) {
            self.fail(format!(
                "metadata key {key:?} must be 1..={MAX_KEY_LEN} printable ASCII characters"
            ));
        } else if let MetaValue::Str(s) = &value {
            if u32::try_from(s.len()).is_err() {
                self.fail(format!("metadata '{key}' is longer than 4 GiB"));
            }
        }
        match self.meta.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.meta.push((key.to_string(), value)),
        }
        self
    }

    /// Set an unsigned metadata value.
    pub fn meta_u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.meta(key, MetaValue::U64(v))
    }

    /// Set a signed metadata value.
    pub fn meta_i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.meta(key, MetaValue::I64(v))
    }

    /// Set a float metadata value.
    pub fn meta_f64(&mut self, key: &str, v: f64) -> &mut Self {
        self.meta(key, MetaValue::F64(v))
    }

    /// Set a string metadata value.
    pub fn meta_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.meta(key, MetaValue::Str(v.to_string()))
    }

    /// Add section `name` (1..=16 printable ASCII characters, unique, not `"meta"`) holding
    /// `data`, borrowed until the file is written.
    pub fn section<T: Element>(&mut self, name: &str, data: &'a [T]) -> &mut Self {
        if !valid_name(name, MAX_NAME_LEN) {
            self.fail(format!(
                "section name {name:?} must be 1..={MAX_NAME_LEN} printable ASCII characters"
            ));
        } else if name == META_SECTION || self.sections.iter().any(|s| s.name == name) {
            self.fail(format!("section name '{name}' is reserved or used twice"));
        }
        self.sections.push(Pending {
            name: name.to_string(),
            dtype: T::DTYPE,
            bytes: le_bytes(data),
            count: data.len() as u64,
        });
        self
    }

    /// Add section `name` holding `data`, owned by the writer (for arrays assembled only to be
    /// written, e.g. inverted lists concatenated into one section).
    pub fn section_owned<T: Element>(&mut self, name: &str, data: Vec<T>) -> &mut Self {
        let count = data.len() as u64;
        let bytes = std::borrow::Cow::Owned(le_bytes(&data).into_owned());
        self.section(name, &[] as &[T]);
        let last = self.sections.last_mut().expect("section just pushed");
        last.bytes = bytes;
        last.count = count;
        self
    }

    /// Add section `name` holding a whole nested quanta file (a composite's inner index), read
    /// back with [`FileReader::nested`]; an error of the nested writer surfaces when this one
    /// is written.
    pub fn section_nested(&mut self, name: &str, inner: &FileWriter<'_>) -> &mut Self {
        match inner.to_bytes() {
            Ok(bytes) => self.section_owned(name, bytes),
            Err(e) => {
                self.fail(format!("section {name:?}: {e}"));
                self
            }
        }
    }

    /// Add a `u8` section.
    pub fn section_u8(&mut self, name: &str, data: &'a [u8]) -> &mut Self {
        self.section(name, data)
    }

    /// Add an `i32` section.
    pub fn section_i32(&mut self, name: &str, data: &'a [i32]) -> &mut Self {
        self.section(name, data)
    }

    /// Add an `i64` section.
    pub fn section_i64(&mut self, name: &str, data: &'a [i64]) -> &mut Self {
        self.section(name, data)
    }

    /// Add a `u64` section.
    pub fn section_u64(&mut self, name: &str, data: &'a [u64]) -> &mut Self {
        self.section(name, data)
    }

    /// Add an `f32` section.
    pub fn section_f32(&mut self, name: &str, data: &'a [f32]) -> &mut Self {
        self.section(name, data)
    }

    /// Add an `f64` section.
    pub fn section_f64(&mut self, name: &str, data: &'a [f64]) -> &mut Self {
        self.section(name, data)
    }

    /// Header + table, the metadata payload, and (offset, bytes) of every payload.
    fn layout(&self) -> Result<(Vec<u8>, Vec<u8>, u64)> {
        if let Some(e) = &self.error {
            return Err(Error::invalid(e));
        }
        let meta = encode_meta(&self.meta);
        let n = self.sections.len() + 1;
        let table_end = (HEADER_LEN + n * ENTRY_LEN) as u64;
        let mut entries = Vec::with_capacity(n);
        let mut end = table_end;
        let payloads = std::iter::once((META_SECTION, Dtype::Meta, &meta[..], self.meta.len()))
            .chain(
                self.sections
                    .iter()
                    .map(|s| (s.name.as_str(), s.dtype, &*s.bytes, s.count as usize)),
            );
        for (name, dtype, bytes, count) in payloads {
            let offset = align_up(end).ok_or_else(|| Error::invalid("file too large"))?;
            end = offset + bytes.len() as u64;
            entries.push(Entry {
                name: name.to_string(),
                dtype,
                crc: checksum(bytes),
                offset,
                len: bytes.len() as u64,
                count: count as u64,
            });
        }
        let mut head = vec![0u8; table_end as usize];
        head[..8].copy_from_slice(&MAGIC);
        head[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        head[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        head[12..16].copy_from_slice(&(n as u32).to_le_bytes());
        head[16..24].copy_from_slice(&end.to_le_bytes());
        put_padded(&mut head[32..32 + MAX_KIND_LEN], &self.kind);
        for (e, out) in entries
            .iter()
            .zip(head[HEADER_LEN..].chunks_exact_mut(ENTRY_LEN))
        {
            e.encode(out);
        }
        let (h, table) = head.split_at(HEADER_LEN);
        let crc = header_checksum(h, table);
        head[28..32].copy_from_slice(&crc.to_le_bytes());
        Ok((head, meta, end))
    }

    /// Stream the file to `out`; returns its length in bytes.
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64> {
        let (head, meta, total) = self.layout()?;
        let io = |source| Error::Io {
            context: "writing a quanta file".into(),
            source,
        };
        out.write_all(&head).map_err(io)?;
        let mut at = head.len() as u64;
        let zeros = [0u8; 64];
        let payloads = std::iter::once(&meta[..]).chain(self.sections.iter().map(|s| &*s.bytes));
        for bytes in payloads {
            let pad = align_up(at).unwrap_or(at) - at;
            out.write_all(&zeros[..pad as usize]).map_err(io)?;
            out.write_all(bytes).map_err(io)?;
            at += pad + bytes.len() as u64;
        }
        debug_assert_eq!(at, total);
        Ok(total)
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }

    /// Write the file to `path` atomically: into a temporary file in the same directory, which
    /// is flushed to disk (`fsync`) and then renamed over `path`; the directory is synced too.
    /// Readers see the old file or the new one, never a partial one; on error the temporary
    /// file is removed and `path` is untouched. Memory maps of a previous file at `path` stay
    /// valid (they keep the old inode).
    pub fn write_atomic(&self, path: impl AsRef<Path>) -> Result<()> {
        // fail on bad names before touching the file system
        if let Some(e) = &self.error {
            return Err(Error::invalid(e));
        }
        write_atomic_with(path.as_ref(), |out| self.write_to(out).map(|_| ()))
    }
}

/// Write a file atomically with `write` (see [`FileWriter::write_atomic`]); also used for
/// files in other formats (faiss).
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let io = |what: &str, source| Error::Io {
        context: format!("cannot write {}: {what}", path.display()),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} is not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = TempFile(Some(dir.join(tmp_name)));
    let tmp_path = tmp.path();
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp_path)
        .map_err(|e| io("creating a temporary file in its directory", e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(|e| match e {
        Error::Io { source, .. } => io("writing", source),
        other => other,
    })?;
    let file = out
        .into_inner()
        .map_err(|e| io("writing", e.into_error()))?;
    file.sync_all().map_err(|e| io("syncing to disk", e))?;
    drop(file);
    fs::rename(tmp_path, path).map_err(|e| io("renaming the temporary file", e))?;
    tmp.keep();
    match sync_dir(&dir) {
        // the file is in place; some file systems cannot open or sync a directory
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidInput | ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            Ok(())
        }
        r => r.map_err(|e| io("syncing its directory", e)),
    }
}

/// Removes the temporary file on drop unless kept.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("path is set until keep()")
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Make the rename durable: fsync the directory entry (Unix only; a no-op elsewhere).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}
