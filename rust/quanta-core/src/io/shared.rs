//! [`SharedSlice`]: an array that is either owned or a zero-copy view into the bytes of a loaded
//! file (a heap buffer or a memory map), and the backing storage of those views.
//!
//! This file holds all of the io module's `unsafe` code: mapping a file, viewing an aligned
//! byte range as `&[T]`, viewing `&[T]` as bytes, and viewing the 64-byte-aligned heap buffer
//! as bytes. Every view is bounds- and alignment-checked when it is created.

use super::format::Dtype;
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

mod sealed {
    pub trait Sealed {}
}

/// Element types a section can hold: `u8`, `i32`, `i64`, `u64`, `f32`, `f64`.
///
/// Sealed: every bit pattern of these types is a valid value, which is what makes viewing file
/// bytes as `&[T]` sound.
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialEq + fmt::Debug + Default + 'static
{
    /// Tag stored in the section table.
    const DTYPE: Dtype;
    /// Size in bytes (`size_of::<Self>()`).
    const SIZE: usize;
    /// Value from exactly `SIZE` little-endian bytes.
    fn from_le(b: &[u8]) -> Self;
    /// Append the little-endian bytes of `self`.
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $tag:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: Dtype = $tag;
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

element!(u8, Dtype::U8);
element!(i32, Dtype::I32);
element!(i64, Dtype::I64);
element!(u64, Dtype::U64);
element!(f32, Dtype::F32);
element!(f64, Dtype::F64);

/// One 64-byte block; a `Vec<Block>` is a 64-byte-aligned byte buffer.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A zero-initialised heap buffer whose start is 64-byte aligned.
pub(crate) struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes. Callers pass the size of a real file or slice, never a length read
    /// from inside a file.
    pub(crate) fn zeroed(len: usize) -> Self {
        AlignedBuf {
            blocks: vec![Block([0; 64]); len.div_ceil(64)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub(crate) fn copy_of(bytes: &[u8]) -> Self {
        let mut b = Self::zeroed(bytes.len());
        b.as_bytes_mut().copy_from_slice(bytes);
        b
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: `blocks` owns `blocks.len() * 64 >= len` initialised bytes (Block is a
        // repr(C) array of u8 without padding); u8 has alignment 1; the borrow of `self`
        // keeps the allocation alive and unaliased by writers.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`; the `&mut self` borrow makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// The bytes of a loaded file: read into the heap, or memory-mapped. Immutable once built.
pub(crate) enum Bytes {
    Heap(AlignedBuf),
    Mapped(memmap2::Mmap),
}

impl Bytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Heap(b) => b.as_bytes(),
            Bytes::Mapped(m) => m,
        }
    }
}

/// Map `file` read-only.
///
/// # Safety
///
/// The caller must ensure the file is not modified or truncated while the mapping lives:
/// the mapping's bytes are handed out as `&[u8]`, which Rust assumes immutable. quanta itself
/// never writes a file in place ([`super::FileWriter::write_atomic`] replaces it by rename, which
/// leaves existing mappings of the old file intact); other processes must do the same.
pub(crate) unsafe fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: forwarded to the caller (see `# Safety`).
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// `s` as little-endian bytes: borrowed on little-endian hosts, converted on big-endian ones.
pub(crate) fn le_bytes<T: Element>(s: &[T]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: T is one of the sealed plain numeric types (no padding, every byte
        // initialised); the byte slice covers exactly the same memory as `s`, u8 has
        // alignment 1, and the lifetime is tied to `s`.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s))
        })
    } else {
        let mut out = Vec::with_capacity(std::mem::size_of_val(s));
        for &v in s {
            v.put_le(&mut out);
        }
        Cow::Owned(out)
    }
}

enum Repr<T: Element> {
    Owned(Arc<Vec<T>>),
    /// `len` elements starting `offset` bytes into `bytes`; checked in [`SharedSlice::view`].
    View {
        bytes: Arc<Bytes>,
        offset: usize,
        len: usize,
    },
}

/// An immutable array of `T` that is either owned or a zero-copy view into a loaded file
/// (faiss's `MaybeOwnedVector`).
///
/// Derefs to `&[T]`; `clone` is cheap (a reference count); [`SharedSlice::make_mut`] turns it
/// into an owned, exclusively held `Vec<T>` (copying the view, or the vector if shared) for
/// indexes that `add` after loading. A view keeps the whole file buffer or mapping alive.
pub struct SharedSlice<T: Element> {
    repr: Repr<T>,
}

impl<T: Element> SharedSlice<T> {
    /// Empty, owned.
    pub fn new() -> Self {
        Self::from_vec(Vec::new())
    }

    /// Owning `v` (no copy).
    pub fn from_vec(v: Vec<T>) -> Self {
        SharedSlice {
            repr: Repr::Owned(Arc::new(v)),
        }
    }

    /// View of `len` elements at byte `offset` of `bytes`, or `None` when that range is out of
    /// bounds or misaligned for `T`, or the host is big-endian (file bytes are little-endian).
    pub(crate) fn view(bytes: &Arc<Bytes>, offset: usize, len: usize) -> Option<Self> {
        let all = bytes.as_slice();
        let end = len.checked_mul(T::SIZE)?.checked_add(offset)?;
        if cfg!(target_endian = "big") || end > all.len() {
            return None;
        }
        let start = all[offset..].as_ptr();
        if !(start as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        Some(SharedSlice {
            repr: Repr::View {
                bytes: Arc::clone(bytes),
                offset,
                len,
            },
        })
    }

    /// Owned copy decoded from little-endian bytes (the portable fallback of [`Self::view`]).
    pub(crate) fn decode(b: &[u8]) -> Self {
        Self::from_vec(b.chunks_exact(T::SIZE).map(T::from_le).collect())
    }

    /// Elements `start .. start + len` as their own slice: a narrower view of the same file
    /// bytes when this is a view (no copy), an owned copy otherwise. Used to hand out one
    /// inverted list of a concatenated section. Panics if the range is out of bounds.
    pub fn slice(&self, start: usize, len: usize) -> Self {
        assert!(
            start.checked_add(len).is_some_and(|e| e <= self.len()),
            "SharedSlice::slice: range out of bounds"
        );
        match &self.repr {
            Repr::View { bytes, offset, .. } => SharedSlice {
                repr: Repr::View {
                    bytes: Arc::clone(bytes),
                    offset: offset + start * T::SIZE,
                    len,
                },
            },
            Repr::Owned(v) => Self::from_vec(v[start..start + len].to_vec()),
        }
    }

    /// Whether this is a view into a loaded file (memory-mapped or read into memory).
    pub fn is_view(&self) -> bool {
        matches!(self.repr, Repr::View { .. })
    }

    /// Whether this is a view into a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        match &self.repr {
            Repr::View { bytes, .. } => matches!(**bytes, Bytes::Mapped(_)),
            Repr::Owned(_) => false,
        }
    }

    /// The elements as an owned, unshared `Vec` to modify: copies a view (first write after a
    /// load) or a vector shared with a clone; free otherwise.
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        if let Repr::View { .. } = self.repr {
            self.repr = Repr::Owned(Arc::new(self.to_vec()));
        }
        match &mut self.repr {
            Repr::Owned(v) => Arc::make_mut(v),
            Repr::View { .. } => unreachable!("replaced by an owned vector above"),
        }
    }

    /// The elements as a `Vec` (no copy when owned and unshared).
    pub fn into_vec(self) -> Vec<T> {
        match self.repr {
            Repr::Owned(v) => Arc::try_unwrap(v).unwrap_or_else(|v| (*v).clone()),
            Repr::View { .. } => self.to_vec(),
        }
    }
}

impl<T: Element> Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.repr {
            Repr::Owned(v) => v,
            Repr::View { bytes, offset, len } => {
                let p = bytes.as_slice()[*offset..].as_ptr();
                // SAFETY: `view` checked that `offset + len * size_of::<T>()` lies inside the
                // buffer and that `p` is aligned for T; the buffer is immutable and kept alive
                // by the Arc we borrow from; T is a sealed plain numeric type, so any bytes are
                // a valid value, and the host is little-endian like the file.
                unsafe { std::slice::from_raw_parts(p.cast::<T>(), *len) }
            }
        }
    }
}

impl<T: Element> Default for SharedSlice<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Owned(v) => Repr::Owned(Arc::clone(v)),
            Repr::View { bytes, offset, len } => Repr::View {
                bytes: Arc::clone(bytes),
                offset: *offset,
                len: *len,
            },
        };
        SharedSlice { repr }
    }
}

impl<T: Element> From<Vec<T>> for SharedSlice<T> {
    fn from(v: Vec<T>) -> Self {
        Self::from_vec(v)
    }
}

impl<T: Element> PartialEq for SharedSlice<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Element> fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
