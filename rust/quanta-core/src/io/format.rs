//! Byte layout of the container (see the table in [`super`]): header, section table, metadata
//! encoding, and the checks a reader runs before it trusts any of it.
//!
//! Everything here works on byte slices and returns `Error::Format` with a reason; the caller
//! prefixes the file name.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;

/// First 8 bytes of every quanta file. The high-bit first byte and the trailing `\n` catch
/// 7-bit and newline-translating transfers (as PNG's signature does).
pub const MAGIC: [u8; 8] = *b"\x89QUANTA\n";
/// Major format version written by this build; a reader accepts exactly this major version.
pub const VERSION_MAJOR: u16 = 1;
/// Minor format version written by this build; readers accept any minor of their major.
pub const VERSION_MINOR: u16 = 0;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one section-table entry.
pub const ENTRY_LEN: usize = 64;
/// Alignment of every payload, relative to the start of the file.
pub const ALIGN: usize = 64;
/// Longest kind tag.
pub const MAX_KIND_LEN: usize = 32;
/// Longest section name.
pub const MAX_NAME_LEN: usize = 16;
/// Longest metadata key.
pub const MAX_KEY_LEN: usize = 64;
/// Name of the metadata section (dtype [`Dtype::Meta`]).
pub const META_SECTION: &str = "meta";

pub(crate) fn format_err(msg: impl fmt::Display) -> Error {
    Error::Format(msg.to_string())
}

/// Element type of a section, stored as one byte in the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `u8` (codes, bit-packed hashes).
    U8,
    /// `i32`.
    I32,
    /// `i64` (ids).
    I64,
    /// `u64` (list offsets).
    U64,
    /// `f32` (vectors, centroids).
    F32,
    /// `f64`.
    F64,
    /// The typed key/value metadata section.
    Meta,
}

impl Dtype {
    /// Tag byte in the section table.
    pub fn tag(self) -> u8 {
        match self {
            Dtype::U8 => 1,
            Dtype::I32 => 2,
            Dtype::I64 => 3,
            Dtype::U64 => 4,
            Dtype::F32 => 5,
            Dtype::F64 => 6,
            Dtype::Meta => 16,
        }
    }

    fn from_tag(t: u8) -> Option<Self> {
        Some(match t {
            1 => Dtype::U8,
            2 => Dtype::I32,
            3 => Dtype::I64,
            4 => Dtype::U64,
            5 => Dtype::F32,
            6 => Dtype::F64,
            16 => Dtype::Meta,
            _ => return None,
        })
    }

    /// Bytes per element (1 for the metadata section, whose "elements" are entries).
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Meta => 1,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// Name as in numpy (`"float32"`, ...), or `"meta"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::Meta => "meta",
        }
    }
}

/// Round `n` up to a multiple of [`ALIGN`].
pub(crate) fn align_up(n: u64) -> Option<u64> {
    n.checked_add(ALIGN as u64 - 1)
        .map(|v| v / ALIGN as u64 * ALIGN as u64)
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`) used for the header and every payload.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Header checksum: bytes 0..28 and 32..64 of the header, then the section table.
pub(crate) fn header_checksum(header: &[u8], table: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..28]);
    h.update(&header[32..HEADER_LEN]);
    h.update(table);
    h.finalize()
}

/// Is `s` a valid kind / section name / key: 1..=max printable ASCII characters, no spaces.
pub(crate) fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Decode a NUL-padded ASCII field.
fn padded_name(field: &[u8], what: &str) -> Result<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (name, pad) = field.split_at(end);
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) || pad.iter().any(|&b| b != 0) {
        return Err(format_err(format!(
            "corrupted header: {what} is not a NUL-padded ASCII name ({})",
            hex(&field[..field.len().min(16)])
        )));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

pub(crate) fn put_padded(out: &mut [u8], s: &str) {
    out[..s.len()].copy_from_slice(s.as_bytes());
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Name well-known file types so that "this is not a quanta file" says what it is instead.
fn foreign_kind(b: &[u8]) -> Option<&'static str> {
    const KNOWN: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\x93NUMPY", "a numpy .npy file"),
        (b"PK\x03\x04", "a zip archive (or .npz)"),
        (b"\x1f\x8b", "a gzip file"),
        (
            b"IxF",
            "a faiss index file (quanta.read_index reads faiss files)",
        ),
        (
            b"IxP",
            "a faiss index file (quanta.read_index reads faiss files)",
        ),
        (
            b"Iw",
            "a faiss index file (quanta.read_index reads faiss files)",
        ),
        (
            b"IB",
            "a faiss binary index file (quanta.read_index reads faiss files)",
        ),
        (b"\x80", "a Python pickle"),
        (b"\x7fELF", "an ELF binary"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| b.starts_with(m))
        .map(|&(_, what)| what)
}

/// The fixed 64-byte header, decoded but not yet checksum-verified.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub version: (u16, u16),
    pub n_sections: usize,
    pub file_len: u64,
    pub crc: u32,
}

/// Check magic and version, decode the header. `actual_len` is the real size of the file;
/// `bytes` holds at least its first `min(actual_len, HEADER_LEN)` bytes.
pub(crate) fn parse_header(bytes: &[u8], actual_len: u64) -> Result<Header> {
    if actual_len == 0 {
        return Err(format_err("empty file (0 bytes), not a quanta index file"));
    }
    let head = &bytes[..bytes.len().min(HEADER_LEN)];
    if head.len() < MAGIC.len() || head[..MAGIC.len()] != MAGIC {
        if let Some(what) = foreign_kind(head) {
            return Err(format_err(format!(
                "not a quanta index file: this is {what}"
            )));
        }
        // a strict prefix of the magic is a truncated quanta file, reported below
        if head.len() >= MAGIC.len() || !MAGIC.starts_with(head) {
            return Err(format_err(format!(
                "not a quanta index file: it starts with {} instead of the quanta magic {}",
                hex(&head[..head.len().min(MAGIC.len())]),
                hex(&MAGIC)
            )));
        }
    }
    if actual_len < HEADER_LEN as u64 {
        return Err(format_err(format!(
            "truncated file: {actual_len} bytes, shorter than the {HEADER_LEN}-byte header"
        )));
    }
    let version = (u16_at(head, 8), u16_at(head, 10));
    if version.0 != VERSION_MAJOR {
        let newer = if version.0 > VERSION_MAJOR {
            " (written by a newer quanta: upgrade quanta to read it)"
        } else {
            ""
        };
        return Err(format_err(format!(
            "unsupported format version {}.{}{newer}; this build reads version {VERSION_MAJOR}.x",
            version.0, version.1
        )));
    }
    let n_sections = u32_at(head, 12) as usize;
    let file_len = u64_at(head, 16);
    let table_end = (HEADER_LEN as u64).saturating_add(n_sections as u64 * ENTRY_LEN as u64);
    if table_end > actual_len {
        return Err(format_err(format!(
            "truncated or corrupted file: the header announces {n_sections} sections whose \
             table needs {table_end} bytes, but the file has {actual_len}"
        )));
    }
    Ok(Header {
        version,
        n_sections,
        file_len,
        crc: u32_at(head, 28),
    })
}

/// One section-table entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub crc: u32,
    pub offset: u64,
    pub len: u64,
    pub count: u64,
}

impl Entry {
    pub(crate) fn encode(&self, out: &mut [u8]) {
        put_padded(&mut out[..MAX_NAME_LEN], &self.name);
        out[16] = self.dtype.tag();
        out[20..24].copy_from_slice(&self.crc.to_le_bytes());
        out[24..32].copy_from_slice(&self.offset.to_le_bytes());
        out[32..40].copy_from_slice(&self.len.to_le_bytes());
        out[40..48].copy_from_slice(&self.count.to_le_bytes());
    }
}

/// Verify the header checksum, then decode the kind and the section table and check that
/// every section lies inside the file, aligned, in order, without overlap, with consistent
/// lengths and unique names. `bytes` holds at least header + table; `actual_len` is the real
/// file size. Nothing is allocated from a length field before it is checked against the size.
pub(crate) fn parse_table(
    bytes: &[u8],
    h: &Header,
    actual_len: u64,
) -> Result<(String, Vec<Entry>)> {
    let table = &bytes[HEADER_LEN..HEADER_LEN + h.n_sections * ENTRY_LEN];
    let crc = header_checksum(&bytes[..HEADER_LEN], table);
    if crc != h.crc {
        return Err(format_err(format!(
            "corrupted header: checksum mismatch (stored {:08x}, computed {crc:08x})",
            h.crc
        )));
    }
    if h.file_len != actual_len {
        return Err(format_err(if actual_len < h.file_len {
            format!(
                "truncated file: {actual_len} bytes, the header says {}",
                h.file_len
            )
        } else {
            format!(
                "{} unexpected trailing bytes after the end of the file ({actual_len} bytes, \
                 the header says {})",
                actual_len - h.file_len,
                h.file_len
            )
        }));
    }
    let kind = padded_name(&bytes[32..32 + MAX_KIND_LEN], "the kind tag")?;
    let mut entries = Vec::with_capacity(h.n_sections);
    let mut seen = std::collections::HashSet::new();
    let mut prev_end = (HEADER_LEN + table.len()) as u64;
    for e in table.chunks_exact(ENTRY_LEN) {
        let name = padded_name(&e[..MAX_NAME_LEN], "a section name")?;
        let dtype = Dtype::from_tag(e[16]).ok_or_else(|| {
            format_err(format!(
                "section '{name}' has unknown dtype tag {} (written by a newer quanta?)",
                e[16]
            ))
        })?;
        let entry = Entry {
            name,
            dtype,
            crc: u32_at(e, 20),
            offset: u64_at(e, 24),
            len: u64_at(e, 32),
            count: u64_at(e, 40),
        };
        let name = &entry.name;
        if !seen.insert(name.clone()) {
            return Err(format_err(format!("duplicate section '{name}'")));
        }
        let end = entry
            .offset
            .checked_add(entry.len)
            .filter(|&e| e <= actual_len);
        let Some(end) = end else {
            return Err(format_err(format!(
                "section '{name}' ({} bytes at offset {}) extends past the end of the file \
                 ({actual_len} bytes)",
                entry.len, entry.offset
            )));
        };
        if !entry.offset.is_multiple_of(ALIGN as u64) || entry.offset < prev_end {
            return Err(format_err(format!(
                "section '{name}' has a bad offset {} (must be a multiple of {ALIGN}, \
                 at or after {prev_end})",
                entry.offset
            )));
        }
        if dtype != Dtype::Meta && entry.count.checked_mul(dtype.size() as u64) != Some(entry.len) {
            return Err(format_err(format!(
                "section '{name}': {} bytes do not hold {} {} elements",
                entry.len,
                entry.count,
                dtype.name()
            )));
        }
        check_zero(bytes, prev_end, entry.offset)?;
        prev_end = end;
        entries.push(entry);
    }
    check_zero(bytes, prev_end, actual_len)?;
    Ok((kind, entries))
}

/// Padding between payloads must be zero: with it, every byte of a file is covered by a check.
fn check_zero(bytes: &[u8], from: u64, to: u64) -> Result<()> {
    if from >= to || bytes.len() < to as usize {
        // nothing to check, or only the header was read (kind peek)
        return Ok(());
    }
    if let Some(p) = bytes[from as usize..to as usize]
        .iter()
        .position(|&b| b != 0)
    {
        return Err(format_err(format!(
            "corrupted file: nonzero padding byte at offset {}",
            from as usize + p
        )));
    }
    Ok(())
}

/// Value of a metadata entry.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Unsigned integer (sizes, counts, flags).
    U64(u64),
    /// Signed integer.
    I64(i64),
    /// Float.
    F64(f64),
    /// UTF-8 string (metric names, layouts).
    Str(String),
}

impl MetaValue {
    fn tag(&self) -> u8 {
        match self {
            MetaValue::U64(_) => 1,
            MetaValue::I64(_) => 2,
            MetaValue::F64(_) => 3,
            MetaValue::Str(_) => 4,
        }
    }

    /// Type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
            MetaValue::Str(_) => "string",
        }
    }
}

/// Encode metadata entries: per entry `tag u8, key_len u8, key, value` where a value is 8
/// little-endian bytes, or for strings `len u32` + UTF-8 bytes.
pub(crate) fn encode_meta(entries: &[(String, MetaValue)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        out.push(v.tag());
        out.push(k.len() as u8);
        out.extend_from_slice(k.as_bytes());
        match v {
            MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
            MetaValue::Str(s) => {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(format_err(format!(
                "corrupted metadata: entry at byte {} runs past the end of the section",
                self.at
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
}

/// Decode `count` metadata entries filling `b` exactly.
pub(crate) fn decode_meta(b: &[u8], count: u64) -> Result<BTreeMap<String, MetaValue>> {
    let mut c = Cursor { b, at: 0 };
    let mut map = BTreeMap::new();
    for _ in 0..count {
        let head = c.take(2)?;
        let (tag, klen) = (head[0], head[1] as usize);
        let key = std::str::from_utf8(c.take(klen)?)
            .ok()
            .filter(|k| valid_name(k, MAX_KEY_LEN))
            .ok_or_else(|| format_err("corrupted metadata: a key is not a short ASCII name"))?
            .to_string();
        let v = match tag {
            1..=3 => {
                let raw = u64_at(c.take(8)?, 0);
                match tag {
                    1 => MetaValue::U64(raw),
                    2 => MetaValue::I64(raw as i64),
                    _ => MetaValue::F64(f64::from_bits(raw)),
                }
            }
            4 => {
                let n = u32_at(c.take(4)?, 0) as usize;
                let s = std::str::from_utf8(c.take(n)?).map_err(|_| {
                    format_err(format!("corrupted metadata: value of '{key}' is not UTF-8"))
                })?;
                MetaValue::Str(s.to_string())
            }
            t => {
                return Err(format_err(format!(
                    "metadata '{key}' has unknown type tag {t} (written by a newer quanta?)"
                )))
            }
        };
        if map.insert(key.clone(), v).is_some() {
            return Err(format_err(format!("duplicate metadata key '{key}'")));
        }
    }
    if c.at != b.len() {
        return Err(format_err(format!(
            "corrupted metadata: {} unexpected bytes after {count} entries",
            b.len() - c.at
        )));
    }
    Ok(map)
}
